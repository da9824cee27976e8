//! The DataFusion view of the catalog: one DataFusion catalog ("lakewave") whose
//! schemas are lakewave databases and whose tables are row-store tables, tables
//! loaded straight into the cluster, and views. A row-store table resolves to
//! its cluster copy when the statement being planned is offloaded (the session's
//! routing flag) and to a scan of SQLite otherwise. Lookups always go to the
//! row store, the catalog and the cluster, so what SQL sees is never a stale
//! copy. Views created with `CREATE VIEW` live here, per database.
//! `performance_schema` is answered from live status (`status`).
//!
//! A second catalog, "lakewave_rowid", exposes row-store tables with their
//! SQLite row id; only the statements UPDATE and DELETE are rewritten into.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::datasource::TableType;
use parking_lot::RwLock;

use crate::catalog::TableName;
use crate::changes::Propagator;
use crate::cluster::Cluster;
use crate::exec::{ClusterTableProvider, RowStoreTableProvider};
use crate::lakehouse::external::ExternalCatalog;
use crate::rowstore::{Database, DbConnection};

pub const CATALOG_NAME: &str = "lakewave";
pub const ROWID_CATALOG_NAME: &str = "lakewave_rowid";
pub const PERFORMANCE_SCHEMA: &str = "performance_schema";

type Views = Arc<RwLock<HashMap<TableName, Arc<dyn TableProvider>>>>;

/// What a session's catalog resolves names against.
#[derive(Clone)]
pub struct Sources {
    pub cluster: Arc<Cluster>,
    pub conn: Arc<DbConnection>,
    pub propagator: Arc<Propagator>,
    /// Set per statement: resolve loaded row-store tables to the cluster.
    pub offload: Arc<AtomicBool>,
    pub externals: Arc<ExternalCatalog>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sources")
    }
}

impl Sources {
    fn db(&self) -> &Arc<Database> {
        self.conn.database()
    }

    /// The provider a table name resolves to for the statement being planned.
    fn provider(&self, name: &TableName) -> Option<Arc<dyn TableProvider>> {
        let batch_rows = self.cluster.config().batch_rows;
        if let Some(row_table) = self.db().table(name) {
            let offloaded = self.offload.load(Ordering::Acquire)
                && self
                    .propagator
                    .table(name)
                    .is_some_and(|t| t.is_available());
            if offloaded && let Some(table) = self.cluster.table(name) {
                return Some(Arc::new(ClusterTableProvider::new(table, batch_rows)));
            }
            return Some(Arc::new(RowStoreTableProvider::new(
                Arc::clone(&self.conn),
                row_table,
                false,
                batch_rows,
            )));
        }
        if let Some(external) = self.externals.get(name) {
            let offloaded = self.offload.load(Ordering::Acquire) && self.externals.is_loaded(name);
            if offloaded && let Some(table) = self.cluster.table(name) {
                return Some(Arc::new(ClusterTableProvider::new(table, batch_rows)));
            }
            return Some(external.provider);
        }
        self.cluster
            .table(name)
            .map(|table| -> Arc<dyn TableProvider> {
                Arc::new(ClusterTableProvider::new(table, batch_rows))
            })
    }

    fn exists(&self, name: &TableName) -> bool {
        self.db().table(name).is_some()
            || self.cluster.table(name).is_some()
            || self.externals.get(name).is_some()
    }
}

#[derive(Debug)]
pub struct ClusterCatalog {
    sources: Sources,
    views: Views,
}

impl ClusterCatalog {
    pub fn new(sources: Sources) -> Self {
        ClusterCatalog {
            sources,
            views: Arc::default(),
        }
    }
}

impl CatalogProvider for ClusterCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.sources.cluster.catalog().database_names();
        names.push(PERFORMANCE_SCHEMA.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == PERFORMANCE_SCHEMA {
            return Some(Arc::new(super::status::PerformanceSchema::new(
                self.sources.clone(),
            )));
        }
        self.sources
            .cluster
            .catalog()
            .has_database(name)
            .then(|| -> Arc<dyn SchemaProvider> {
                Arc::new(DatabaseSchema {
                    database: name.to_string(),
                    sources: self.sources.clone(),
                    views: Arc::clone(&self.views),
                })
            })
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.sources.cluster.catalog().create_database(name);
        Ok(None)
    }
}

#[derive(Debug)]
pub struct DatabaseSchema {
    database: String,
    sources: Sources,
    views: Views,
}

impl DatabaseSchema {
    fn name(&self, table: &str) -> TableName {
        TableName::new(self.database.clone(), table)
    }
}

#[async_trait]
impl SchemaProvider for DatabaseSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.sources.cluster.catalog().table_names(&self.database);
        names.extend(self.sources.db().table_names(&self.database));
        names.extend(self.sources.externals.names(&self.database));
        names.dedup();
        names.extend(
            self.views
                .read()
                .keys()
                .filter(|n| n.database == self.database)
                .map(|n| n.table.clone()),
        );
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let name = self.name(name);
        if let Some(provider) = self.sources.provider(&name) {
            return Ok(Some(provider));
        }
        Ok(self.views.read().get(&name).cloned())
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        // Only views come through here: tables are created by loading them.
        if table.table_type() != TableType::View {
            return exec_err!("tables are created by loading data, not registered");
        }
        let name = self.name(&name);
        if self.sources.exists(&name) {
            return exec_err!("a table named '{name}' already exists");
        }
        Ok(self.views.write().insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.views.write().remove(&self.name(name)))
    }

    fn table_exist(&self, name: &str) -> bool {
        let name = self.name(name);
        self.sources.exists(&name) || self.views.read().contains_key(&name)
    }
}

/// Row-store tables with their SQLite row id as a first column, for the
/// queries UPDATE and DELETE are rewritten into.
#[derive(Debug)]
pub struct RowIdCatalog {
    pub sources: Sources,
}

impl CatalogProvider for RowIdCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.sources.db().database_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        Some(Arc::new(RowIdSchema {
            database: name.to_string(),
            sources: self.sources.clone(),
        }))
    }
}

#[derive(Debug)]
struct RowIdSchema {
    database: String,
    sources: Sources,
}

#[async_trait]
impl SchemaProvider for RowIdSchema {
    fn table_names(&self) -> Vec<String> {
        self.sources.db().table_names(&self.database)
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let name = TableName::new(self.database.clone(), name);
        Ok(self
            .sources
            .db()
            .table(&name)
            .map(|table| -> Arc<dyn TableProvider> {
                Arc::new(RowStoreTableProvider::new(
                    Arc::clone(&self.sources.conn),
                    table,
                    true,
                    self.sources.cluster.config().batch_rows,
                ))
            }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.sources
            .db()
            .table(&TableName::new(self.database.clone(), name))
            .is_some()
    }
}
