//! `lakewave._internal.Connection`: one session on an instance.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3_arrow::input::AnyRecordBatch;

use super::convert::python_to_scalar;
use super::errors::to_pyerr;
use super::result::QueryResult;
use super::wait::wait;
use crate::catalog::TableName;
use crate::cluster::{LoadRequest, TableStatus};
use crate::config::EngineConfig;
use crate::error::Error;
use crate::instance::Instance;
use crate::rowstore::InsertMode;
use crate::sql::Session;
use crate::store::LoadProgress;

#[pyclass(frozen, module = "lakewave._internal")]
pub struct Connection {
    instance: Arc<Instance>,
    session: Arc<Session>,
}

impl Connection {
    fn request(
        &self,
        name: &str,
        primary_key: Vec<String>,
        partition_by: Vec<String>,
        replace: bool,
        source_name: String,
    ) -> PyResult<LoadRequest> {
        let name = TableName::parse(name, &self.session.current_database())
            .map_err(|e| to_pyerr(Error::from(e)))?;
        Ok(LoadRequest {
            name,
            primary_key,
            placement_keys: partition_by,
            replace,
            source_name,
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
        Ok(Connection { instance, session })
    }

    /// A second connection on the same instance (same tables, own settings).
    fn duplicate(&self) -> PyResult<Self> {
        let session = Arc::new(self.instance.session().map_err(to_pyerr)?);
        Ok(Connection {
            instance: Arc::clone(&self.instance),
            session,
        })
    }

    #[pyo3(signature = (text, params=None))]
    fn sql(
        &self,
        py: Python<'_>,
        text: &str,
        params: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<QueryResult> {
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
        let request = self.request(name, primary_key, partition_by, replace, source_name)?;
        let reader = data.into_reader()?;
        let schema = reader.schema();
        let instance = Arc::clone(&self.instance);
        let mut report = progress_reporter(progress);
        let status = wait(py, move |cancel| {
            let source = Box::new(reader.map(|batch| {
                batch.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }));
            instance.load_batches(&request, schema, source, cancel, &mut report)
        })?;
        status_dict(py, &status)
    }

    #[pyo3(signature = (name, path, primary_key, partition_by, replace, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn load_parquet<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        path: String,
        primary_key: Vec<String>,
        partition_by: Vec<String>,
        replace: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let request = self.request(
            name,
            primary_key,
            partition_by,
            replace,
            format!("'{path}'"),
        )?;
        let instance = Arc::clone(&self.instance);
        let mut report = progress_reporter(progress);
        let status = wait(py, move |cancel| {
            instance.load_parquet(&request, &path, cancel, &mut report)
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
        let name = TableName::parse(name, &self.session.current_database())
            .map_err(|e| to_pyerr(e.into()))?;
        let mode = match mode {
            "insert" => InsertMode::Insert,
            "replace" => InsertMode::Replace,
            "ignore" => InsertMode::Ignore,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "mode must be 'insert', 'replace' or 'ignore', not '{other}'"
                )));
            }
        };
        let reader = data.into_reader()?;
        let schema = reader.schema();
        let session = Arc::clone(&self.session);
        let instance = Arc::clone(&self.instance);
        wait(py, move |cancel| {
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| {
                crate::error::Error::from(crate::rowstore::RowStoreError::BadValue {
                    table: name.clone(),
                    column: "(source)".into(),
                    message: e.to_string(),
                })
            })?;
            instance.block_on(
                cancel,
                "insert",
                session.insert_batches(&name, schema, batches, mode),
            )
        })
    }

    /// Every table in the cluster with its HeatWave status (rpd_tables).
    fn loaded_tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for row in self.session.loaded_tables() {
            let dict = PyDict::new(py);
            dict.set_item("id", row.id)?;
            dict.set_item("name", row.name.to_string())?;
            dict.set_item("schema_name", &row.name.database)?;
            dict.set_item("table_name", &row.name.table)?;
            dict.set_item("pool_type", row.pool_type)?;
            dict.set_item("load_status", row.load_status)?;
            dict.set_item("snapshot_scn", row.snapshot_scn)?;
            dict.set_item("nrows", row.rows)?;
            dict.set_item("size_bytes", row.size_bytes)?;
            dict.set_item("stale_reason", row.stale_reason)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// Propagate every committed change to the cluster now.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let instance = Arc::clone(&self.instance);
        wait(py, move |_| instance.propagator().flush())
    }

    /// The database file (None for an in-memory database).
    fn path(&self) -> Option<String> {
        let db = self.instance.database();
        (!db.is_scratch()).then(|| db.path().display().to_string())
    }

    fn offload_mode(&self) -> &'static str {
        self.session.offload_mode().name()
    }

    fn in_transaction(&self) -> bool {
        self.session.connection().in_transaction()
    }

    fn tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for status in self.instance.cluster().table_status() {
            list.append(status_dict(py, &status)?)?;
        }
        Ok(list)
    }

    fn nodes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for node in self.instance.cluster().node_status() {
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
        let config = self.instance.cluster().config();
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
}
