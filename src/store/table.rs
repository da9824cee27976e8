//! A loaded table: an immutable snapshot of partitions of chunks.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;

use super::chunk::{Chunk, ColumnEncoding};
use crate::catalog::TableName;

/// The chunks of one partition and the memory they hold on its node.
#[derive(Debug, Clone)]
pub struct Partition {
    pub node: usize,
    pub chunks: Vec<Arc<Chunk>>,
}

impl Partition {
    pub fn rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.rows() as u64).sum()
    }

    /// Node memory held by this partition's chunks.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.bytes).sum()
    }
}

/// One version of a table in the cluster. Readers clone the `Arc` and keep a
/// consistent view for as long as they need it.
#[derive(Debug)]
pub struct ColumnarTable {
    pub name: TableName,
    pub version: u64,
    /// What users see: strings as Utf8, binaries as Binary.
    pub logical_schema: SchemaRef,
    /// What is held: dictionary-encoded columns where chosen.
    pub physical_schema: SchemaRef,
    pub encodings: Vec<ColumnEncoding>,
    /// The columns rows were hash-placed by (empty for round-robin). Rows are in
    /// partition `hash(columns) % partitions`, with DataFusion's repartitioning
    /// hash, so the scan can declare that partitioning to the planner.
    pub placement: Vec<usize>,
    pub partitions: Vec<Partition>,
}

impl ColumnarTable {
    pub fn rows(&self) -> u64 {
        self.partitions.iter().map(Partition::rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.partitions.iter().map(Partition::bytes).sum()
    }

    pub fn chunk_count(&self) -> usize {
        self.partitions.iter().map(|p| p.chunks.len()).sum()
    }

    /// Bytes held on each node, indexed by node id.
    pub fn bytes_per_node(&self, nodes: usize) -> Vec<u64> {
        let mut out = vec![0; nodes];
        for partition in &self.partitions {
            out[partition.node] += partition.bytes();
        }
        out
    }

    /// The smallest minimum, largest maximum and total null count of a column
    /// over the given chunks.
    pub fn column_bounds<'a>(
        chunks: impl Iterator<Item = &'a Arc<Chunk>>,
        column: usize,
    ) -> (Option<ScalarValue>, Option<ScalarValue>, u64, bool) {
        let mut min: Option<ScalarValue> = None;
        let mut max: Option<ScalarValue> = None;
        let mut nulls = 0;
        // Bounds are exact only when every non-empty chunk had them.
        let mut exact = true;
        for chunk in chunks {
            // Deleted rows leave the bounds loose.
            exact &= chunk.live.is_none();
            let zone = &chunk.zone_maps[column];
            nulls += zone.null_count;
            match (&zone.min, &zone.max) {
                (Some(lo), Some(hi)) => {
                    if min
                        .as_ref()
                        .is_none_or(|m| lo.partial_cmp(m) == Some(std::cmp::Ordering::Less))
                    {
                        min = Some(lo.clone());
                    }
                    if max
                        .as_ref()
                        .is_none_or(|m| hi.partial_cmp(m) == Some(std::cmp::Ordering::Greater))
                    {
                        max = Some(hi.clone());
                    }
                }
                _ if zone.null_count as usize == chunk.stored_rows() => {}
                _ => exact = false,
            }
        }
        (min, max, nulls, exact)
    }
}
