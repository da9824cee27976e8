//! Execution: the DataFusion table providers and scans. Over the cluster,
//! [`ClusterTableProvider`] and [`ClusterScanExec`] (one execution partition per
//! store partition, chunk pruning by zone maps) read `store` snapshots and never
//! change them. Over the row store, [`RowStoreTableProvider`] reads a table
//! through a session's SQLite connection, for queries that are not offloaded.
//! Nothing here knows SQL text, routing decisions or Python.

mod provider;
mod pruning;
mod rowstore;
mod scan;

pub use provider::ClusterTableProvider;
pub use pruning::ChunkStatistics;
pub use rowstore::{RowStoreScanExec, RowStoreTableProvider};
pub use scan::ClusterScanExec;
