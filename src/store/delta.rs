//! Applying a batch of propagated changes to a table: the rows of every changed
//! key are marked deleted (a new delete mask on a shared batch), and the current
//! rows of those keys are appended as new chunks. The result is a new snapshot;
//! the old one is untouched, so a query sees the table before or after the
//! batch, never in between.
//!
//! Chunks that lose more than half their rows are rewritten without them, and
//! many small appended chunks are merged, so a long stream of small batches
//! does not degrade scans.

use std::sync::Arc;

use ahash::AHashSet;
use arrow::array::{ArrayRef, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::cast;
use arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;

use super::StoreError;
use super::builder::{Pending, encode_chunk, normalise, reserve};
use super::chunk::Chunk;
use super::memory::NodeMemory;
use super::placement::Partitioner;
use super::table::{ColumnarTable, Partition};

/// Merge small chunks once a partition has this many.
const SMALL_CHUNKS_BEFORE_MERGE: usize = 8;

/// `column` in the logical type `target` (dictionaries decoded, other
/// representations cast); unchanged when it already is.
fn as_logical(
    column: &ArrayRef,
    target: &arrow::datatypes::DataType,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    if column.data_type() == target {
        Ok(Arc::clone(column))
    } else {
        cast(column, target)
    }
}

/// One propagated batch for one table.
pub struct ChangeSet<'a> {
    /// Every key inserted, updated or deleted: the key columns only, in the
    /// order of the table's key (its placement columns), logical types.
    pub keys: &'a RecordBatch,
    /// The current rows of those keys (the ones that still exist), full rows in
    /// the table's logical schema.
    pub rows: &'a [RecordBatch],
}

impl ColumnarTable {
    /// A new snapshot with `changes` applied. Fails whole (out of memory, bad
    /// data), leaving this snapshot as it is.
    pub fn apply_changes(
        &self,
        changes: &ChangeSet<'_>,
        nodes: &[Arc<NodeMemory>],
        chunk_rows: usize,
    ) -> Result<ColumnarTable, StoreError> {
        let arrow_error = |source| StoreError::Arrow {
            table: self.name.clone(),
            source,
        };
        if self.placement.is_empty() {
            return Err(StoreError::InvalidData {
                table: self.name.clone(),
                column: None,
                reason: "changes need a keyed table (it was loaded without a primary key)".into(),
            });
        }
        let partitions = self.partitions.len();
        let key_fields: Vec<SortField> = self
            .placement
            .iter()
            .map(|&c| SortField::new(self.logical_schema.field(c).data_type().clone()))
            .collect();
        let converter = RowConverter::new(key_fields).map_err(arrow_error)?;

        // The changed keys of each partition, and their range on the first key
        // column, to skip chunks whose zone maps exclude them all.
        let key_partitioner = Partitioner::Hash {
            columns: (0..self.placement.len()).collect(),
            partitions,
        };
        let mut keys: Vec<AHashSet<Box<[u8]>>> = vec![AHashSet::new(); partitions];
        let mut ranges: Vec<Option<(ScalarValue, ScalarValue)>> = vec![None; partitions];
        if changes.keys.num_rows() > 0 {
            let assignment = key_partitioner.assign(changes.keys).map_err(arrow_error)?;
            let rows = converter
                .convert_columns(changes.keys.columns())
                .map_err(arrow_error)?;
            let first = changes.keys.column(0);
            for (i, &p) in assignment.iter().enumerate() {
                keys[p].insert(rows.row(i).as_ref().into());
                let value =
                    ScalarValue::try_from_array(first, i).map_err(|e| StoreError::InvalidData {
                        table: self.name.clone(),
                        column: None,
                        reason: e.to_string(),
                    })?;
                ranges[p] = Some(match ranges[p].take() {
                    None => (value.clone(), value),
                    Some((lo, hi)) => (
                        if value < lo { value.clone() } else { lo },
                        if value > hi { value } else { hi },
                    ),
                });
            }
        }

        // The new rows of each partition.
        let row_partitioner = Partitioner::Hash {
            columns: self.placement.clone(),
            partitions,
        };
        let mut appended: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
        for batch in changes.rows {
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = normalise(&self.name, &self.logical_schema, &self.placement, batch)?;
            for (p, piece) in row_partitioner.split(&batch, 0).map_err(arrow_error)? {
                appended[p].push(piece);
            }
        }

        // One thread: propagation runs beside writers and queries and must not
        // take every core from them.
        let rebuilt: Vec<Partition> = self
            .partitions
            .iter()
            .zip(appended)
            .enumerate()
            .map(|(p, (partition, appended))| {
                self.apply_to_partition(
                    partition,
                    &keys[p],
                    ranges[p].as_ref(),
                    appended,
                    &converter,
                    &nodes[partition.node],
                    chunk_rows,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(ColumnarTable {
            name: self.name.clone(),
            version: self.version + 1,
            logical_schema: Arc::clone(&self.logical_schema),
            physical_schema: Arc::clone(&self.physical_schema),
            encodings: self.encodings.clone(),
            placement: self.placement.clone(),
            partitions: rebuilt,
        })
    }

    /// The visible rows of a chunk in logical types.
    pub fn decode(&self, chunk: &Chunk) -> Result<RecordBatch, StoreError> {
        let arrow_error = |source| StoreError::Arrow {
            table: self.name.clone(),
            source,
        };
        let live = chunk
            .live_slice_projected(0, chunk.stored_rows(), None)
            .map_err(arrow_error)?;
        let columns = live
            .columns()
            .iter()
            .zip(self.logical_schema.fields())
            .map(|(column, field)| as_logical(column, field.data_type()))
            .collect::<Result<Vec<ArrayRef>, _>>()
            .map_err(arrow_error)?;
        RecordBatch::try_new(Arc::clone(&self.logical_schema), columns).map_err(arrow_error)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_to_partition(
        &self,
        partition: &Partition,
        keys: &AHashSet<Box<[u8]>>,
        range: Option<&(ScalarValue, ScalarValue)>,
        mut appended: Vec<RecordBatch>,
        converter: &RowConverter,
        node: &Arc<NodeMemory>,
        chunk_rows: usize,
    ) -> Result<Partition, StoreError> {
        let arrow_error = |source| StoreError::Arrow {
            table: self.name.clone(),
            source,
        };
        if keys.is_empty() && appended.is_empty() {
            return Ok(Partition {
                node: partition.node,
                chunks: partition.chunks.clone(),
            });
        }
        let first_key = self.placement[0];
        let mut chunks: Vec<Arc<Chunk>> = Vec::with_capacity(partition.chunks.len() + 1);
        for chunk in &partition.chunks {
            let zone = &chunk.zone_maps[first_key];
            let may_hold = match (range, &zone.min, &zone.max) {
                (None, _, _) => false,
                (Some((lo, hi)), Some(min), Some(max)) => !(hi < min || lo > max),
                _ => true,
            };
            if !may_hold {
                chunks.push(Arc::clone(chunk));
                continue;
            }
            let key_arrays = self
                .placement
                .iter()
                .map(|&c| {
                    as_logical(
                        chunk.batch.column(c),
                        self.logical_schema.field(c).data_type(),
                    )
                })
                .collect::<Result<Vec<ArrayRef>, _>>()
                .map_err(arrow_error)?;
            let rows = converter
                .convert_columns(&key_arrays)
                .map_err(arrow_error)?;
            let stored = chunk.stored_rows();
            let mut live: Vec<bool> = match &chunk.live {
                Some(mask) => mask.iter().collect(),
                None => vec![true; stored],
            };
            let mut deleted = 0;
            for (i, alive) in live.iter_mut().enumerate() {
                if *alive && keys.contains(rows.row(i).as_ref()) {
                    *alive = false;
                    deleted += 1;
                }
            }
            if deleted == 0 {
                chunks.push(Arc::clone(chunk));
                continue;
            }
            let remaining = chunk.rows() - deleted;
            let mask = BooleanBuffer::from(live);
            if remaining == 0 {
                continue;
            }
            if remaining * 2 < stored {
                // Mostly deleted: carry the survivors over with the new rows.
                let survivors = self.decode(&chunk.with_live(mask))?;
                appended.push(survivors);
                continue;
            }
            chunks.push(Arc::new(chunk.with_live(mask)));
        }
        // Fold small chunks into the appended rows once they pile up.
        let small = chunks
            .iter()
            .filter(|c| c.stored_rows() < chunk_rows / 4)
            .count();
        if small >= SMALL_CHUNKS_BEFORE_MERGE {
            let mut kept = Vec::with_capacity(chunks.len());
            for chunk in chunks {
                if chunk.stored_rows() < chunk_rows / 4 {
                    appended.push(self.decode(&chunk)?);
                } else {
                    kept.push(chunk);
                }
            }
            chunks = kept;
        }
        let mut pending = Pending::default();
        for batch in appended {
            pending.push(batch);
        }
        let mut pieces = pending.take_chunks(chunk_rows);
        pieces.extend(pending.take_chunks(0));
        for piece in pieces {
            let chunk = encode_chunk(
                &self.name,
                &piece,
                &self.encodings,
                &self.physical_schema,
                None,
            )?;
            chunks.push(Arc::new(reserve(chunk, node, &self.name, 0)?));
        }
        Ok(Partition {
            node: partition.node,
            chunks,
        })
    }
}
