//! What every session of an instance shares: the catalog, the DB system, the
//! cluster, the propagator, the external tables' state, the session registry
//! and one DataFusion runtime (one memory pool and spill space for all
//! queries, one registry of object stores).

use std::sync::Arc;
use std::time::Instant;

use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

use super::process::SessionRegistry;
use crate::catalog::Catalog;
use crate::changes::Propagator;
use crate::cluster::Cluster;
use crate::config::EngineConfig;
use crate::error::Result;
use crate::lakehouse::ExternalTables;
use crate::rowstore::Database;

pub struct Services {
    pub catalog: Arc<Catalog>,
    pub db: Arc<Database>,
    pub cluster: Arc<Cluster>,
    pub propagator: Arc<Propagator>,
    pub externals: Arc<ExternalTables>,
    pub sessions: SessionRegistry,
    pub runtime_env: Arc<RuntimeEnv>,
    pub started: Instant,
    /// The MariaDB server that is the DB system, when one is attached.
    pub source: Option<Arc<crate::source::Source>>,
    /// The HA group this instance is a member of, once it has joined one.
    pub group: std::sync::OnceLock<Arc<dyn super::Replication>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Services")
    }
}

impl Services {
    pub fn new(
        catalog: Arc<Catalog>,
        db: Arc<Database>,
        cluster: Arc<Cluster>,
        propagator: Arc<Propagator>,
        externals: Arc<ExternalTables>,
    ) -> Result<Services> {
        let config = cluster.config();
        let mut disk = DiskManagerBuilder::default();
        if let Some(dir) = &config.spill_dir {
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.into()]));
        }
        let runtime_env = RuntimeEnvBuilder::new()
            .with_object_store_registry(externals.object_stores())
            .with_memory_pool(Arc::new(FairSpillPool::new(config.query_memory as usize)))
            .with_disk_manager_builder(disk)
            // No cached file listings: external tables must see files added
            // in place at the next query, and a refresh must see them at once.
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .build_arc()
            .map_err(|e| super::datafusion_error("starting the query runtime", e))?;
        Ok(Services {
            catalog,
            db,
            cluster,
            propagator,
            externals,
            sessions: SessionRegistry::default(),
            runtime_env,
            started: Instant::now(),
            source: None,
            group: std::sync::OnceLock::new(),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        self.cluster.config()
    }
}
