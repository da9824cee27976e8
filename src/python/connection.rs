//! `lakewave._internal.Connection`: one session on an instance. The first
//! connection opens the instance and owns it; `new_session()` gives another
//! session on the same instance (a cursor). Conversions only: everything is
//! done by the instance's API.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3_arrow::input::AnyRecordBatch;

use super::convert::python_to_scalar;
use super::errors::{InterfaceError, to_pyerr};
use super::result::QueryResult;
use super::wait::wait;
use crate::error::Error;
use crate::instance::{
    EngineConfig, InsertMode, Instance, LoadOptions, LoadProgress, LoadSource, Session, TableName,
    TableStatus,
};

#[pyclass(frozen, module = "lakewave._internal")]
pub struct Connection {
    instance: Arc<Instance>,
    session: Arc<Session>,
    /// The connection that opened the instance closes it.
    owns_instance: bool,
}

impl Connection {
    fn name(&self, name: &str) -> PyResult<TableName> {
        TableName::parse(name, &self.session.current_database())
            .map_err(|e| to_pyerr(Error::from(e)))
    }

    fn check_open(&self) -> PyResult<()> {
        if self.instance.is_closed() || self.session.is_killed() {
            return Err(to_pyerr(if self.instance.is_closed() {
                Error::Closed
            } else {
                Error::SessionKilled {
                    session: self.session.id(),
                }
            }));
        }
        Ok(())
    }

    fn options(
        &self,
        name: &str,
        primary_key: Vec<String>,
        partition_by: Vec<String>,
        replace: bool,
    ) -> PyResult<LoadOptions> {
        Ok(LoadOptions {
            name: self.name(name)?,
            primary_key,
            partition_by,
            replace,
        })
    }
}

/// Report progress to a Python callable, at most once per group of batches.
fn progress_reporter(callback: Option<Py<PyAny>>) -> impl FnMut(LoadProgress) + Send {
    move |progress: LoadProgress| {
        if let Some(callback) = &callback {
            Python::attach(|py| {
                // A failing progress bar must not fail the load.
                let _ = callback.call1(py, (progress.rows, progress.bytes));
            });
        }
    }
}

fn status_dict<'py>(py: Python<'py>, status: &TableStatus) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("database", &status.name.database)?;
    dict.set_item("table", &status.name.table)?;
    dict.set_item("rows", status.rows)?;
    dict.set_item("bytes", status.bytes)?;
    dict.set_item("chunks", status.chunks)?;
    dict.set_item("partitions", status.partitions)?;
    dict.set_item("version", status.version)?;
    dict.set_item("dictionary_columns", status.dictionary_columns.clone())?;
    Ok(dict)
}

#[pymethods]
impl Connection {
    #[new]
    #[pyo3(signature = (path, options))]
    fn new(
        py: Python<'_>,
        path: Option<String>,
        options: HashMap<String, String>,
    ) -> PyResult<Self> {
        let config =
            EngineConfig::from_options(options.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(|e| to_pyerr(e.into()))?;
        // Opening reloads the loaded tables of an existing database: slow work.
        let instance = wait(py, move |_cancel| {
            Instance::open(config, path.as_deref().map(std::path::Path::new))
        })?;
        let session = Arc::new(instance.session().map_err(to_pyerr)?);
        Ok(Connection {
            instance,
            session,
            owns_instance: true,
        })
    }

    /// Another session on the same instance (same tables, own settings and
    /// transaction).
    fn new_session(&self) -> PyResult<Self> {
        self.check_open()?;
        let session = Arc::new(self.instance.session().map_err(to_pyerr)?);
        Ok(Connection {
            instance: Arc::clone(&self.instance),
            session,
            owns_instance: false,
        })
    }

    #[pyo3(signature = (text, params=None))]
    fn sql(
        &self,
        py: Python<'_>,
        text: &str,
        params: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<QueryResult> {
        self.check_open()?;
        let params = params
            .unwrap_or_default()
            .iter()
            .map(python_to_scalar)
            .collect::<PyResult<Vec<_>>>()?;
        let session = Arc::clone(&self.session);
        let instance = Arc::clone(&self.instance);
        let text = text.to_string();
        let result = wait(py, move |cancel| {
            instance.block_on(cancel, &text, session.sql(&text, &params, cancel))
        })?;
        Ok(QueryResult::new(Arc::clone(&self.instance), result))
    }

    #[pyo3(signature = (name, data, primary_key, partition_by, replace, source_name, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn load_arrow<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        data: AnyRecordBatch,
        primary_key: Vec<String>,
        partition_by: Vec<String>,
        replace: bool,
        source_name: String,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.check_open()?;
        let options = self.options(name, primary_key, partition_by, replace)?;
        let reader = data.into_reader()?;
        let schema = reader.schema();
        let session = Arc::clone(&self.session);
        let mut report = progress_reporter(progress);
        let status = wait(py, move |cancel| {
            let source = reader.map(|batch| {
                batch.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            });
            session.load_batches(&options, schema, source, &source_name, cancel, &mut report)
        })?;
        status_dict(py, &status)
    }

    #[pyo3(signature = (name, location, format, primary_key, partition_by, replace, storage_options))]
    #[allow(clippy::too_many_arguments)]
    fn load_files<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        location: String,
        format: Option<String>,
        primary_key: Vec<String>,
        partition_by: Vec<String>,
        replace: bool,
        storage_options: BTreeMap<String, String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.check_open()?;
        let options = self.options(name, primary_key, partition_by, replace)?;
        let format = format
            .map(|f| crate::instance::file_format_named(&f).map_err(to_pyerr))
            .transpose()?;
        let source = LoadSource {
            location,
            format,
            storage_options,
        };
        let session = Arc::clone(&self.session);
        let instance = Arc::clone(&self.instance);
        let status = wait(py, move |cancel| {
            instance.block_on(
                cancel,
                "load",
                session.load_files(&options, &source, cancel),
            )
        })?;
        status_dict(py, &status)
    }

    /// Insert rows from any Arrow producer into a row-store table (columns by
    /// name). `mode` is "insert", "replace" or "ignore".
    fn insert_arrow(
        &self,
        py: Python<'_>,
        name: &str,
        data: AnyRecordBatch,
        mode: &str,
    ) -> PyResult<u64> {
        self.check_open()?;
        let name = self.name(name)?;
        let mode = match mode {
            "insert" => InsertMode::Insert,
            "replace" => InsertMode::Replace,
            "ignore" => InsertMode::Ignore,
            other => {
                return Err(InterfaceError::new_err(format!(
                    "mode must be 'insert', 'replace' or 'ignore', not '{other}'"
                )));
            }
        };
        let reader = data.into_reader()?;
        let schema = reader.schema();
        let session = Arc::clone(&self.session);
        let instance = Arc::clone(&self.instance);
        wait(py, move |cancel| {
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crate::instance::bulk_source_error(&name, e))?;
            instance.block_on(
                cancel,
                "insert",
                session.insert_batches(&name, schema, batches, mode),
            )
        })
    }

    /// Define an external table from keyword arguments.
    #[pyo3(signature = (name, format, options, locations, columns, storage_options, refresh_interval, if_not_exists))]
    #[allow(clippy::too_many_arguments)]
    fn create_external_table(
        &self,
        py: Python<'_>,
        name: &str,
        format: &str,
        options: Vec<(String, String)>,
        locations: Vec<String>,
        columns: Option<Vec<(String, String)>>,
        storage_options: BTreeMap<String, String>,
        refresh_interval: Option<f64>,
        if_not_exists: bool,
    ) -> PyResult<bool> {
        self.check_open()?;
        let refresh_interval = match refresh_interval {
            Some(seconds) if !(seconds > 0.0 && seconds.is_finite()) => {
                return Err(InterfaceError::new_err(format!(
                    "refresh_interval must be a positive number of seconds, not {seconds}"
                )));
            }
            Some(seconds) => Some(std::time::Duration::from_secs_f64(seconds)),
            None => None,
        };
        let def = crate::instance::external_definition(
            self.name(name)?,
            format,
            &options,
            locations,
            columns,
            storage_options,
            refresh_interval,
        )
        .map_err(to_pyerr)?;
        let session = Arc::clone(&self.session);
        let instance = Arc::clone(&self.instance);
        wait(py, move |cancel| {
            instance.block_on(
                cancel,
                "create_external_table",
                session.define_external(def, if_not_exists),
            )
        })
    }

    /// Refresh (or load) tables, as HEATWAVE_LOAD with refresh does:
    /// `[(name, what was done)]`.
    fn refresh(&self, py: Python<'_>, tables: Vec<String>) -> PyResult<Vec<(String, String)>> {
        self.check_open()?;
        let names = tables
            .iter()
            .map(|t| self.name(t))
            .collect::<PyResult<Vec<_>>>()?;
        let session = Arc::clone(&self.session);
        let instance = Arc::clone(&self.instance);
        wait(py, move |cancel| {
            instance.block_on(cancel, "refresh", session.refresh_tables(&names, cancel))
        })
    }

    /// SECONDARY_UNLOAD then SECONDARY_LOAD of one table.
    fn reload(&self, py: Python<'_>, table: &str) -> PyResult<()> {
        self.check_open()?;
        let name = self.name(table)?;
        let session = Arc::clone(&self.session);
        let instance = Arc::clone(&self.instance);
        wait(py, move |cancel| {
            instance.block_on(cancel, "reload", session.reload_table(&name, cancel))
        })
    }

    /// Every table in the cluster with its HeatWave status (rpd_tables).
    fn loaded_tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for row in self.instance.loaded_tables() {
            let dict = PyDict::new(py);
            dict.set_item("id", row.id)?;
            dict.set_item("name", row.name.to_string())?;
            dict.set_item("schema_name", &row.name.database)?;
            dict.set_item("table_name", &row.name.table)?;
            dict.set_item("pool_type", row.pool_type)?;
            dict.set_item("load_status", row.load_status)?;
            dict.set_item("snapshot_scn", row.snapshot_scn)?;
            dict.set_item("source_position", row.source_position)?;
            dict.set_item("nrows", row.rows)?;
            dict.set_item("size_bytes", row.size_bytes)?;
            dict.set_item("stale_reason", row.stale_reason)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// Every session of the instance (SHOW PROCESSLIST).
    fn processes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for process in self.instance.processes() {
            let dict = PyDict::new(py);
            dict.set_item("id", process.id)?;
            dict.set_item("user", &process.user)?;
            dict.set_item("host", &process.host)?;
            dict.set_item("db", &process.database)?;
            dict.set_item("command", process.command)?;
            dict.set_item("time", process.time)?;
            dict.set_item("state", process.state)?;
            dict.set_item("info", &process.info)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// The change log's consumers and their applied positions.
    fn log_consumers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for consumer in self.instance.log_consumers().map_err(to_pyerr)? {
            list.append((consumer.name, consumer.position))?;
        }
        Ok(list)
    }

    /// Propagate every committed change to the cluster now.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let instance = Arc::clone(&self.instance);
        wait(py, move |_| instance.sync())
    }

    /// The database file (None for an in-memory database).
    fn path(&self) -> Option<String> {
        self.instance.path().map(|p| p.display().to_string())
    }

    fn offload_mode(&self) -> &'static str {
        self.session.offload_mode().name()
    }

    fn in_transaction(&self) -> bool {
        self.session.in_transaction()
    }

    fn session_id(&self) -> u64 {
        self.session.id()
    }

    fn tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for status in self.instance.tables() {
            list.append(status_dict(py, &status)?)?;
        }
        Ok(list)
    }

    fn nodes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for node in self.instance.nodes() {
            let dict = PyDict::new(py);
            dict.set_item("node", node.id)?;
            dict.set_item("status", "AVAIL_RNSTATE")?;
            dict.set_item("memory_budget", node.budget)?;
            dict.set_item("memory_used", node.used)?;
            dict.set_item("partitions", node.partitions)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let config = self.instance.config();
        let dict = PyDict::new(py);
        dict.set_item("nodes", config.shape.nodes)?;
        dict.set_item("memory_per_node", config.shape.memory_per_node)?;
        dict.set_item("partitions_per_node", config.shape.partitions_per_node)?;
        dict.set_item("threads", config.shape.threads)?;
        dict.set_item("query_memory", config.query_memory)?;
        Ok(dict)
    }

    fn current_database(&self) -> String {
        self.session.current_database()
    }

    /// End this session; the connection that opened the instance closes it
    /// (every session ends, propagation stops, the file is released).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let instance = Arc::clone(&self.instance);
        let session = Arc::clone(&self.session);
        let owns = self.owns_instance;
        py.detach(move || {
            session.close();
            if owns {
                instance.close();
            }
        });
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.instance.is_closed() || self.session.is_killed()
    }

    /// Serve this connection's instance on the network.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (host, mysql_port, flight_port, status_port, user, password, users_file, check_user, max_connections, max_allowed_packet, tls_certificate, tls_key))]
    fn serve(
        &self,
        py: Python<'_>,
        host: String,
        mysql_port: u16,
        flight_port: Option<u16>,
        status_port: Option<u16>,
        user: &str,
        password: &str,
        users_file: Option<&str>,
        check_user: Option<&str>,
        max_connections: usize,
        max_allowed_packet: usize,
        tls_certificate: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
    ) -> PyResult<super::server::Server> {
        self.check_open()?;
        let tls = super::server::tls_files(tls_certificate, tls_key)?;
        let options = crate::server::ServerOptions {
            host,
            mysql_port,
            flight_port,
            status_port,
            tls,
            users: super::server::users(user, password, users_file, check_user)?,
            max_connections,
            max_allowed_packet,
            ..crate::server::ServerOptions::default()
        };
        super::server::Server::start(py, Arc::clone(&self.instance), options)
    }

    /// Join the HA group of a group file as `member` (see `lakewave serve
    /// --group`).
    fn join_group(
        &self,
        py: Python<'_>,
        file: std::path::PathBuf,
        member: &str,
        running: std::collections::BTreeMap<String, String>,
    ) -> PyResult<super::group::GroupMember> {
        self.check_open()?;
        super::group::join(py, &self.instance, &file, member, running)
    }
}
