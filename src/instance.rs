//! An instance: the DB system (row store), the catalog, the cluster, the
//! propagator between them and the runtimes that drive them, shared by every
//! connection. It offers blocking entry points (load a table, run a
//! statement) that the Python bindings call with the GIL released; async work
//! runs on the instance's tokio runtime and CPU-heavy loading on rayon.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;

use crate::cancel::Cancel;
use crate::catalog::Catalog;
use crate::changes::Propagator;
use crate::cluster::{BatchSource, Cluster, LoadRequest, TableStatus};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::lakehouse::external::ExternalCatalog;
use crate::lakehouse::{self, LakehouseError};
use crate::rowstore::Database;
use crate::sql::Session;
use crate::store::{LoadProgress, StoreError};

/// How often the automatic refresh looks for external tables that are due.
const AUTO_REFRESH_TICK: std::time::Duration = std::time::Duration::from_millis(100);

pub struct Instance {
    runtime: tokio::runtime::Runtime,
    cluster: Arc<Cluster>,
    db: Arc<Database>,
    propagator: Arc<Propagator>,
    externals: Arc<ExternalCatalog>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.propagator.shutdown();
    }
}

impl Instance {
    /// Open the DB system at `path` (`None`: a private in-memory one), bring
    /// its loaded tables back into the cluster and start propagation.
    pub fn open(config: EngineConfig, path: Option<&Path>) -> Result<Arc<Instance>> {
        let threads = config.shape.threads;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("lakewave-exec")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let db = Database::open(path)?;
        let catalog = Arc::new(Catalog::default());
        for name in db.database_names() {
            catalog.create_database(&name);
        }
        let propagation = config.propagation.clone();
        let cluster = Arc::new(Cluster::new(config, catalog));
        let propagator = Propagator::start(Arc::clone(&db), Arc::clone(&cluster), propagation)?;
        let instance = Arc::new(Instance {
            runtime,
            cluster,
            db,
            propagator,
            externals: Arc::default(),
        });
        instance.restore_external_tables()?;
        instance.start_auto_refresh()?;
        Ok(instance)
    }

    /// Refresh every loaded external table whose `REFRESH_INTERVAL` has run
    /// out, on a task of the instance's runtime (it ends with the runtime). A
    /// failed refresh keeps the loaded version and is reported in
    /// `rpd_tables.STALE_REASON`; it is tried again after another interval.
    fn start_auto_refresh(&self) -> Result<()> {
        let session = self.session()?;
        let externals = Arc::clone(&self.externals);
        self.runtime.spawn(async move {
            let cancel = Cancel::default();
            loop {
                tokio::time::sleep(AUTO_REFRESH_TICK).await;
                for name in externals.refresh_due() {
                    if let Err(error) = session.refresh_external(&name, &cancel).await {
                        externals.set_refresh_error(
                            &name,
                            format!("automatic refresh failed: {}", error.chain_message()),
                        );
                    }
                }
            }
        });
        Ok(())
    }

    /// Define again the external tables of the database file, and load the
    /// ones that were loaded. A definition whose files are gone is kept on
    /// file but left out, so the rest of the instance still opens.
    fn restore_external_tables(&self) -> Result<()> {
        let saved = self.db.external_ddls()?;
        if saved.is_empty() {
            return Ok(());
        }
        let session = self.session()?;
        let cancel = Cancel::default();
        for (name, ddl, loaded) in saved {
            let restored = self.block_on(
                &cancel,
                &ddl,
                session.restore_external(&ddl, loaded, &cancel),
            );
            if let Err(e) = restored {
                eprintln!(
                    "lakewave: external table {name} could not be restored: {}",
                    e.chain_message()
                );
            }
        }
        Ok(())
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    pub fn propagator(&self) -> &Arc<Propagator> {
        &self.propagator
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn session(&self) -> Result<Session> {
        let _guard = self.runtime.enter();
        Session::new(
            Arc::clone(&self.cluster),
            Arc::clone(&self.db),
            Arc::clone(&self.propagator),
            Arc::clone(&self.externals),
        )
    }

    /// Block the calling (non-runtime) thread on a future, unless cancelled.
    pub fn block_on<F: Future<Output = Result<T>>, T>(
        &self,
        cancel: &Cancel,
        what: &str,
        future: F,
    ) -> Result<T> {
        self.runtime
            .block_on(cancel.run(future))
            .unwrap_or_else(|| {
                Err(Error::Interrupted {
                    what: what.to_string(),
                })
            })
    }

    /// Enter the runtime, for code that creates DataFusion streams.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime.enter()
    }

    /// Wait for the next item of a stream from a non-runtime thread.
    pub fn next_blocking<S: futures::Stream + Unpin>(&self, stream: &mut S) -> Option<S::Item> {
        self.runtime.block_on(stream.next())
    }

    /// Load batches from any Arrow producer.
    pub fn load_batches(
        &self,
        request: &LoadRequest,
        schema: SchemaRef,
        source: BatchSource<'_>,
        cancel: &Cancel,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<TableStatus> {
        self.cluster.load(request, schema, source, cancel, progress)
    }

    /// Load a Parquet file or folder.
    pub fn load_parquet(
        &self,
        request: &LoadRequest,
        path: &str,
        cancel: &Cancel,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<TableStatus> {
        let threads = self.cluster.config().shape.threads;
        let opened = self
            .runtime
            .block_on(lakehouse::parquet_stream(path, threads))
            .map_err(|e| file_error(request, e))?;
        let (schema, mut stream) = opened;
        let source: BatchSource<'_> = Box::new(std::iter::from_fn(move || {
            self.next_blocking(&mut stream).map(|item| {
                item.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
        }));
        self.cluster.load(request, schema, source, cancel, progress)
    }

    /// Rows of a finished query gathered on the runtime.
    pub fn collect(
        &self,
        result: &crate::sql::QueryResult,
        cancel: &Cancel,
    ) -> Result<Vec<RecordBatch>> {
        self.block_on(cancel, result.statement(), result.collect())
    }
}

fn file_error(request: &LoadRequest, error: LakehouseError) -> Error {
    match error {
        LakehouseError::Read { path, source } => StoreError::Source {
            table: request.name.clone(),
            source_name: path,
            source: Box::new(source),
        }
        .into(),
        other => StoreError::InvalidData {
            table: request.name.clone(),
            column: None,
            reason: other.to_string(),
        }
        .into(),
    }
}
