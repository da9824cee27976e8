//! The cluster's columnar storage: immutable chunks of Arrow arrays grouped into
//! partitions, with per-chunk zone maps, dictionary encoding of low-cardinality
//! strings, and memory accounted per node.
//!
//! A loaded table is a [`ColumnarTable`]: an immutable snapshot. Nothing in it is
//! ever mutated in place; a reload or a propagated change batch (`delta`)
//! builds a new snapshot that shares unchanged chunks, and readers holding the old
//! `Arc` keep a consistent view. This module knows nothing of SQL, DataFusion
//! plans or Python; it must not reach into the catalog's registry, only use its
//! types.
//!
//! ```text
//! ColumnarTable ─┬─ Partition 0 (node 0) ─ [Chunk ≤64Ki rows | zone maps] [Chunk] …
//!                ├─ Partition 1 (node 1) ─ [Chunk] …
//!                └─ …            every partition holds a Reservation on its node
//! ```

mod builder;
mod chunk;
mod delta;
mod memory;
mod placement;
mod table;

use arrow::error::ArrowError;
use thiserror::Error;

use crate::catalog::TableName;
use crate::config::human_bytes;
use crate::error::{ErrorKind, MySqlCode, codes};

pub use builder::{Layout, LoadProgress, TableBuilder};
pub use chunk::{Chunk, ColumnEncoding, ZoneMap, logical_type};
pub use delta::ChangeSet;
pub use memory::{NodeMemory, Reservation};
pub use placement::Partitioner;
pub use table::{ColumnarTable, Partition};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "out of memory loading table '{table}': node {node} needs {} more but has {} free of {} \
         (after {rows_loaded} rows); nothing was loaded. Give the cluster more memory \
         (memory_per_node) or more nodes",
        human_bytes(*needed), human_bytes(*free), human_bytes(*budget)
    )]
    OutOfMemory {
        table: TableName,
        node: usize,
        needed: u64,
        free: u64,
        budget: u64,
        rows_loaded: u64,
    },
    #[error("bad data for table '{table}'{}: {reason}", column.as_ref().map(|c| format!(", column '{c}'")).unwrap_or_default())]
    InvalidData {
        table: TableName,
        column: Option<String>,
        reason: String,
    },
    #[error("could not read the data for table '{table}' from {source_name}")]
    Source {
        table: TableName,
        source_name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("arrow error while storing table '{table}'")]
    Arrow {
        table: TableName,
        #[source]
        source: ArrowError,
    },
    #[error("loading table '{table}' was interrupted; nothing was loaded")]
    Interrupted { table: TableName },
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::OutOfMemory { .. } => ErrorKind::OutOfMemory,
            StoreError::InvalidData { .. } | StoreError::Arrow { .. } => ErrorKind::Data,
            StoreError::Source { .. } => ErrorKind::Data,
            StoreError::Interrupted { .. } => ErrorKind::Interrupted,
        }
    }

    pub fn code(&self) -> MySqlCode {
        match self {
            StoreError::OutOfMemory { .. } => codes::ENGINE_OUT_OF_MEMORY,
            StoreError::InvalidData { .. } | StoreError::Arrow { .. } => {
                codes::TRUNCATED_WRONG_VALUE_FOR_FIELD
            }
            StoreError::Source { .. } => codes::SECONDARY_ENGINE_PLUGIN,
            StoreError::Interrupted { .. } => codes::QUERY_INTERRUPTED,
        }
    }
}
