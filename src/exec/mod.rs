//! Execution: the DataFusion table providers and scans. Over the cluster,
//! [`ClusterTableProvider`] and [`ClusterScanExec`] (one execution partition per
//! store partition, chunk pruning by zone maps) read `store` snapshots and never
//! change them. Over the row store, [`RowsTableProvider`] reads a table
//! through a [`RowScanner`] (the front end's, over a session's connection), for
//! queries that are not offloaded.
//! Nothing here knows SQL text, routing decisions or Python.

mod provider;
mod pruning;
mod rows;
mod scan;
mod yielding;

pub use provider::ClusterTableProvider;
pub use pruning::ChunkStatistics;
pub use rows::{Comparison, ComparisonOp, RowScanner, RowsScanExec, RowsTableProvider};
pub use scan::ClusterScanExec;
pub use yielding::YieldAfterJoins;
