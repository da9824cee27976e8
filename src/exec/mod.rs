//! Execution over the cluster: the DataFusion table provider for a loaded table
//! ([`ClusterTableProvider`]), its scan operator ([`ClusterScanExec`], one
//! execution partition per store partition) and chunk pruning by zone maps.
//! It reads `store` snapshots and never changes them; it knows nothing of the
//! catalog's registry, SQL text or Python.

mod provider;
mod pruning;
mod scan;

pub use provider::ClusterTableProvider;
pub use pruning::ChunkStatistics;
pub use scan::ClusterScanExec;
