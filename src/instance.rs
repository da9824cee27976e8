//! An instance: the DB system (row store), the catalog, the cluster, the
//! propagator between them, the sessions on it and the runtimes that drive
//! them. This is the engine's front door: the Python bindings (and, later,
//! the servers) use only what this module offers and re-exports. Its entry
//! points block the calling thread (never a runtime worker) while async work
//! runs on the instance's tokio runtime and CPU-heavy work on rayon.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;

use crate::cancel::Cancel;
use crate::catalog::Catalog;
use crate::changes::Propagator;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::lakehouse::ExternalTables;
use crate::rowstore::Database;
use crate::sql::Services;

pub use crate::catalog::{TableName, is_secret};
pub use crate::cluster::{NodeStatus, TableStatus};
pub use crate::config::EngineConfig;
pub use crate::rowstore::InsertMode;
pub use crate::rowstore::log::ConsumerPosition;
pub use crate::sql::{
    CATALOG_NAME, LoadOptions, LoadSource, OffloadMode, ProcessInfo, QueryResult, RefreshOutcome,
    ResultStream, Session, TableRow, bulk_source_error, conform, datafusion_error,
    external_definition, file_format_named, split_statements,
};
pub use crate::store::LoadProgress;

/// The kinds of tables a catalog listing names.
pub const TABLE_TYPES: [&str; 3] = ["TABLE", "EXTERNAL TABLE", "VIEW"];

fn table_type(kind: crate::catalog::EntryKind) -> &'static str {
    use crate::catalog::EntryKind;
    match kind {
        EntryKind::RowTable | EntryKind::ClusterTable => TABLE_TYPES[0],
        EntryKind::ExternalTable => TABLE_TYPES[1],
        EntryKind::View => TABLE_TYPES[2],
    }
}

/// How often the automatic refresh looks for external tables that are due.
const AUTO_REFRESH_TICK: Duration = Duration::from_millis(100);

/// Who a session is, for the process list, when nobody said.
const EMBEDDED_USER: &str = "lakewave";
const EMBEDDED_HOST: &str = "localhost";

pub struct Instance {
    /// Always `Some` until the instance is dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    services: Arc<Services>,
    closed: AtomicBool,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.services.propagator.shutdown();
        if let Some(source) = &self.services.source {
            source.shutdown();
        }
        // The last holder may be a task (a server's connection outliving
        // `close()` at interpreter exit, say): a runtime dropped inside an
        // asynchronous context panics, so it is shut down in the background
        // there instead of waiting for its blocking threads.
        if let Some(runtime) = self.runtime.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            runtime.shutdown_background();
        }
    }
}

impl Instance {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the instance")
    }

    /// Open the DB system at `path` (`None`: a private in-memory one), bring
    /// its loaded tables back into the cluster and start propagation.
    pub fn open(config: EngineConfig, path: Option<&Path>) -> Result<Arc<Instance>> {
        config.check_fits_machine()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.shape.threads)
            .thread_name("lakewave-exec")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (db, stored) = Database::open(path, config.lock_wait)?;
        let catalog = Arc::new(Catalog::new(stored.databases, stored.entries));
        let propagation = config.propagation.clone();
        let propagation_for_source = config.propagation.clone();
        let config_source = config.source.clone();
        let cluster = Arc::new(Cluster::new(config));
        let propagator = Propagator::start(
            Arc::clone(&db),
            Arc::clone(&catalog),
            Arc::clone(&cluster),
            propagation,
        )?;
        let source = config_source.map(|source| {
            crate::source::Source::new(
                source,
                Arc::clone(&cluster),
                Arc::clone(&catalog),
                Arc::clone(&db),
                propagation_for_source,
                runtime.handle().clone(),
            )
        });
        if let Some(source) = &source {
            // The server must be usable before anything is promised: every
            // unmet requirement is named at once.
            let checked = runtime.block_on(crate::source::server::check(source.config()));
            if let Err(error) = checked {
                propagator.shutdown();
                db.release();
                return Err(error);
            }
        }
        let services = {
            let _runtime = runtime.enter();
            let mut services = Services::new(
                catalog,
                db,
                cluster,
                propagator,
                Arc::new(ExternalTables::default()),
            )?;
            services.source = source;
            Arc::new(services)
        };
        let instance = Arc::new(Instance {
            runtime: Some(runtime),
            services,
            closed: AtomicBool::new(false),
        });
        instance.restore_external_tables()?;
        instance.restore_source_tables();
        instance.start_auto_refresh()?;
        Ok(instance)
    }

    /// Define again the external tables of the database file, and load the
    /// ones that were loaded. A table whose files are gone stays defined and
    /// is reported, so the rest of the instance still opens.
    fn restore_external_tables(&self) -> Result<()> {
        let session = self.session()?;
        let cancel = Cancel::default();
        let failures = self.runtime().block_on(session.restore_externals(&cancel));
        for (name, error) in failures {
            eprintln!(
                "lakewave: external table {name} could not be restored: {}",
                error.chain_message()
            );
        }
        session.close();
        Ok(())
    }

    /// Load again the source tables that were loaded when the instance was
    /// last open, from new snapshots. A table that fails is reported and
    /// stays on the server (its reason in `rpd_tables`).
    fn restore_source_tables(&self) {
        let Some(source) = &self.services.source else {
            return;
        };
        match self.runtime().block_on(source.restore()) {
            Ok(outcomes) => {
                for (name, outcome) in outcomes {
                    if let Err(error) = outcome {
                        eprintln!(
                            "lakewave: source table {name} could not be loaded again: {}",
                            error.chain_message()
                        );
                    }
                }
            }
            Err(error) => eprintln!(
                "lakewave: the loaded source tables could not be read: {}",
                error.chain_message()
            ),
        }
    }

    /// Refresh every loaded external table whose `REFRESH_INTERVAL` has run
    /// out, on a task of the instance's runtime (it ends with the runtime). A
    /// failed refresh keeps the loaded version and is reported in
    /// `rpd_tables.STALE_REASON`; it is tried again after another interval.
    fn start_auto_refresh(&self) -> Result<()> {
        let session = self.session_for("event_scheduler", EMBEDDED_HOST)?;
        let services = Arc::clone(&self.services);
        self.runtime().spawn(async move {
            let cancel = Cancel::default();
            loop {
                tokio::time::sleep(AUTO_REFRESH_TICK).await;
                for name in session.external_refresh_due() {
                    if let Err(error) = session.refresh_external(&name, &cancel).await {
                        services.externals.set_refresh_error(
                            &name,
                            format!("automatic refresh failed: {}", error.chain_message()),
                        );
                    }
                }
            }
        });
        Ok(())
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    pub fn config(&self) -> &EngineConfig {
        self.services.config()
    }

    /// The database file (`None` for a private in-memory one).
    pub fn path(&self) -> Option<&Path> {
        let db = &self.services.db;
        (!db.is_scratch()).then(|| db.path())
    }

    /// A new session of the embedded user.
    pub fn session(&self) -> Result<Session> {
        self.session_for(EMBEDDED_USER, EMBEDDED_HOST)
    }

    /// A new session for `user` connecting from `host`.
    pub fn session_for(&self, user: &str, host: &str) -> Result<Session> {
        self.check_open()?;
        let _guard = self.runtime().enter();
        Session::open(Arc::clone(&self.services), user, host)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Close the instance: end every session (rolling back their open
    /// transactions), stop propagation and record its position. Later calls
    /// fail with `Error::Closed`.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.services.sessions.kill_all();
        self.services.propagator.shutdown();
        if let Some(source) = &self.services.source {
            source.shutdown();
        }
        self.services.db.release();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Block the calling (non-runtime) thread on a future, unless cancelled.
    pub fn block_on<F: Future<Output = Result<T>>, T>(
        &self,
        cancel: &Cancel,
        what: &str,
        future: F,
    ) -> Result<T> {
        self.check_open()?;
        self.runtime()
            .block_on(cancel.run(future))
            .unwrap_or_else(|| {
                Err(Error::Interrupted {
                    what: what.to_string(),
                })
            })
    }

    /// The runtime's handle, for servers that run their listeners on it.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime().handle().clone()
    }

    /// When the instance was opened (a status port's uptime).
    pub fn started(&self) -> std::time::Instant {
        self.services.started
    }

    /// The name `@@hostname` answers.
    pub fn name(&self) -> &str {
        &self.config().instance_name
    }

    /// Enter the runtime, for code that creates DataFusion streams.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime().enter()
    }

    /// Wait for the next item of a stream from a non-runtime thread.
    pub fn next_blocking<S: futures::Stream + Unpin>(&self, stream: &mut S) -> Option<S::Item> {
        self.runtime().block_on(stream.next())
    }

    /// Rows of a result gathered on the runtime (one execution).
    pub fn collect(
        &self,
        result: &QueryResult,
        cancel: &Cancel,
    ) -> Result<Vec<arrow::array::RecordBatch>> {
        self.block_on(cancel, result.statement(), result.collect(cancel))
    }

    /// Propagate every committed change to the cluster now.
    pub fn sync(&self) -> Result<()> {
        self.check_open()?;
        self.services.propagator.flush()
    }

    /// `rpd_tables` joined with `rpd_table_id`: every table in the cluster.
    pub fn loaded_tables(&self) -> Vec<TableRow> {
        crate::sql::table_rows(&self.services)
    }

    pub fn tables(&self) -> Vec<TableStatus> {
        self.services.cluster.table_status()
    }

    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.services.cluster.node_status()
    }

    /// The databases of the catalog, in name order.
    pub fn database_names(&self) -> Vec<String> {
        let mut names = self.services.catalog.database_names();
        names.sort();
        names
    }

    /// Every table and view as (database, name, type), the type one of
    /// [`TABLE_TYPES`]: what the endpoints' catalog listings show.
    pub fn table_listing(&self) -> Vec<(String, String, &'static str)> {
        let catalog = &self.services.catalog;
        let mut listing = Vec::new();
        for database in self.database_names() {
            for table in catalog.names(&database) {
                let kind = match catalog.resolve(&TableName::new(database.clone(), table.clone())) {
                    Some(entry) => table_type(entry.kind()),
                    None => continue,
                };
                listing.push((database.clone(), table, kind));
            }
        }
        listing
    }

    /// Every session and what it runs.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.services.sessions.list()
    }

    /// `KILL id`: end session `id` (its statement stops, its transaction
    /// rolls back).
    pub fn kill_session(&self, id: u64) -> Result<()> {
        self.services.sessions.kill(id)
    }

    /// The change log's consumers and how far each has applied it.
    pub fn log_consumers(&self) -> Result<Vec<ConsumerPosition>> {
        let reader = crate::rowstore::log::LogReader::open(&self.services.db)?;
        Ok(reader.consumers()?)
    }
}
