//! The DataFusion view of the catalog: one DataFusion catalog ("lakewave") whose
//! schemas are lakewave databases and whose tables are the cluster's loaded
//! tables. Lookups always go to the catalog and the cluster, so what SQL sees is
//! never a stale copy. Views created with `CREATE VIEW` live here, per database.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::datasource::TableType;
use parking_lot::RwLock;

use crate::catalog::TableName;
use crate::cluster::Cluster;
use crate::exec::ClusterTableProvider;

pub const CATALOG_NAME: &str = "lakewave";

type Views = Arc<RwLock<HashMap<TableName, Arc<dyn TableProvider>>>>;

#[derive(Debug)]
pub struct ClusterCatalog {
    cluster: Arc<Cluster>,
    views: Views,
}

impl ClusterCatalog {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        ClusterCatalog {
            cluster,
            views: Arc::default(),
        }
    }
}

impl CatalogProvider for ClusterCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.cluster.catalog().database_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.cluster
            .catalog()
            .has_database(name)
            .then(|| -> Arc<dyn SchemaProvider> {
                Arc::new(DatabaseSchema {
                    database: name.to_string(),
                    cluster: Arc::clone(&self.cluster),
                    views: Arc::clone(&self.views),
                })
            })
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.cluster.catalog().create_database(name);
        Ok(None)
    }
}

#[derive(Debug)]
pub struct DatabaseSchema {
    database: String,
    cluster: Arc<Cluster>,
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
        let mut names = self.cluster.catalog().table_names(&self.database);
        names.extend(
            self.views
                .read()
                .keys()
                .filter(|n| n.database == self.database)
                .map(|n| n.table.clone()),
        );
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let name = self.name(name);
        if let Some(table) = self.cluster.table(&name) {
            let batch_rows = self.cluster.config().batch_rows;
            return Ok(Some(Arc::new(ClusterTableProvider::new(table, batch_rows))));
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
        if self.cluster.table(&name).is_some() {
            return exec_err!("a table named '{name}' already exists");
        }
        Ok(self.views.write().insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.views.write().remove(&self.name(name)))
    }

    fn table_exist(&self, name: &str) -> bool {
        let name = self.name(name);
        self.cluster.table(&name).is_some() || self.views.read().contains_key(&name)
    }
}
