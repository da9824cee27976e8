//! Building a table snapshot from a stream of record batches. The loader works on
//! groups of batches: each group is split by placement on all cores (rayon),
//! then every partition cuts its pending rows into chunks in parallel, encoding
//! them and taking memory on its node as it goes. If a node runs out of memory
//! the load stops at once and everything built so far is dropped, which gives
//! back every reservation: a failed load leaves nothing behind.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::array::{Array, MutableArrayData, make_array};
use arrow::compute::cast;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use rayon::prelude::*;

use super::StoreError;
use super::chunk::{Chunk, ColumnEncoding, choose_encodings, logical_type, physical_schema};
use super::memory::NodeMemory;
use super::placement::Partitioner;
use super::table::{ColumnarTable, Partition};
use crate::catalog::TableName;

/// Rows examined to choose column encodings.
pub(super) const SAMPLE_ROWS: usize = 100_000;

/// Where a load has got to, for progress bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadProgress {
    pub rows: u64,
    pub bytes: u64,
}

struct PartitionBuilder {
    node: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    chunks: Vec<Arc<Chunk>>,
    node_memory: Arc<NodeMemory>,
    bytes: u64,
}

pub struct TableLoader {
    name: TableName,
    version: u64,
    logical_schema: SchemaRef,
    encodings: Option<Vec<ColumnEncoding>>,
    physical_schema: Option<SchemaRef>,
    /// Batches held back until enough rows are seen to choose encodings.
    sample: Vec<RecordBatch>,
    partitioner: Partitioner,
    partitions: Vec<PartitionBuilder>,
    chunk_rows: usize,
    dictionary_max_ratio: f64,
    sequence: usize,
    progress: LoadProgress,
    /// The placement key columns, which must not hold NULL.
    non_null: Vec<usize>,
}

impl TableLoader {
    /// `partition_nodes[i]` is the node that owns partition `i`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: TableName,
        version: u64,
        source_schema: &Schema,
        key_columns: &[usize],
        partition_nodes: &[usize],
        nodes: &[Arc<NodeMemory>],
        chunk_rows: usize,
        dictionary_max_ratio: f64,
    ) -> Self {
        let logical_schema = logical_schema_of(source_schema);
        let partitioner = if key_columns.is_empty() {
            Partitioner::RoundRobin {
                partitions: partition_nodes.len(),
            }
        } else {
            Partitioner::Hash {
                columns: key_columns.to_vec(),
                partitions: partition_nodes.len(),
            }
        };
        let partitions = partition_nodes
            .iter()
            .map(|&node| PartitionBuilder {
                node,
                pending: Vec::new(),
                pending_rows: 0,
                chunks: Vec::new(),
                node_memory: Arc::clone(&nodes[node]),
                bytes: 0,
            })
            .collect();
        TableLoader {
            name,
            version,
            logical_schema,
            encodings: None,
            physical_schema: None,
            sample: Vec::new(),
            partitioner,
            partitions,
            chunk_rows,
            dictionary_max_ratio,
            sequence: 0,
            progress: LoadProgress::default(),
            non_null: key_columns.to_vec(),
        }
    }

    pub fn logical_schema(&self) -> &SchemaRef {
        &self.logical_schema
    }

    pub fn progress(&self) -> LoadProgress {
        self.progress
    }

    /// Add a group of source batches. Larger groups use the cores better.
    pub fn push(&mut self, batches: Vec<RecordBatch>) -> Result<(), StoreError> {
        let batches = batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| self.normalise(b))
            .collect::<Result<Vec<_>, _>>()?;
        if self.encodings.is_none() {
            self.sample.extend(batches);
            let rows: usize = self.sample.iter().map(|b| b.num_rows()).sum();
            if rows < SAMPLE_ROWS {
                return Ok(());
            }
            self.choose_encodings();
            let held = std::mem::take(&mut self.sample);
            return self.place(held);
        }
        self.place(batches)
    }

    /// Cut the last chunks and return the finished snapshot.
    pub fn finish(mut self) -> Result<ColumnarTable, StoreError> {
        if self.encodings.is_none() {
            self.choose_encodings();
            let held = std::mem::take(&mut self.sample);
            self.place(held)?;
        }
        let physical = self.physical_schema.clone().expect("encodings chosen");
        let encodings = self.encodings.clone().expect("encodings chosen");
        let name = self.name.clone();
        let rows_loaded = self.progress.rows;
        self.partitions
            .par_iter_mut()
            .try_for_each(|p| p.cut(0, &encodings, &physical, &name, rows_loaded))?;
        Ok(ColumnarTable {
            name: self.name,
            version: self.version,
            logical_schema: self.logical_schema,
            physical_schema: physical,
            encodings,
            placement: self.non_null.clone(),
            partitions: self
                .partitions
                .into_iter()
                .map(|p| Partition {
                    node: p.node,
                    chunks: p.chunks,
                })
                .collect(),
        })
    }

    fn choose_encodings(&mut self) {
        let encodings = choose_encodings(
            &self.logical_schema,
            &self.sample,
            self.dictionary_max_ratio,
        );
        self.physical_schema = Some(physical_schema(&self.logical_schema, &encodings));
        self.encodings = Some(encodings);
    }

    fn normalise(&self, batch: RecordBatch) -> Result<RecordBatch, StoreError> {
        normalise(&self.name, &self.logical_schema, &self.non_null, batch)
    }

    fn place(&mut self, batches: Vec<RecordBatch>) -> Result<(), StoreError> {
        if batches.is_empty() {
            return Ok(());
        }
        let first_sequence = self.sequence;
        self.sequence += batches.len();
        let partitioner = &self.partitioner;
        let pieces: Vec<Vec<(usize, RecordBatch)>> = batches
            .par_iter()
            .enumerate()
            .map(|(i, batch)| partitioner.split(batch, first_sequence + i))
            .collect::<Result<_, _>>()
            .map_err(|source| StoreError::Arrow {
                table: self.name.clone(),
                source,
            })?;
        for (partition, piece) in pieces.into_iter().flatten() {
            self.progress.rows += piece.num_rows() as u64;
            let builder = &mut self.partitions[partition];
            builder.pending_rows += piece.num_rows();
            builder.pending.push(piece);
        }
        let physical = self.physical_schema.clone().expect("encodings chosen");
        let encodings = self.encodings.clone().expect("encodings chosen");
        let chunk_rows = self.chunk_rows;
        let name = &self.name;
        let rows_loaded = self.progress.rows;
        self.partitions
            .par_iter_mut()
            .try_for_each(|p| p.cut(chunk_rows, &encodings, &physical, name, rows_loaded))?;
        self.progress.bytes = self.partitions.iter().map(|p| p.bytes).sum();
        Ok(())
    }
}

impl PartitionBuilder {
    /// Turn pending rows into chunks of `chunk_rows`; with `chunk_rows == 0`,
    /// everything pending becomes one last (possibly short) chunk. Each chunk is
    /// copied once, from zero-copy slices of the pending pieces, into compact
    /// buffers that it owns.
    fn cut(
        &mut self,
        chunk_rows: usize,
        encodings: &[ColumnEncoding],
        physical: &SchemaRef,
        name: &TableName,
        rows_loaded: u64,
    ) -> Result<(), StoreError> {
        let arrow_error = |source| StoreError::Arrow {
            table: name.clone(),
            source,
        };
        let size = if chunk_rows == 0 {
            self.pending_rows
        } else {
            chunk_rows
        };
        while size > 0 && self.pending_rows >= size {
            let pieces = self.take_front(size);
            let compact = compact(&pieces).map_err(arrow_error)?;
            let chunk = Chunk::build(compact, encodings, physical).map_err(arrow_error)?;
            let chunk = reserve(chunk, &self.node_memory, name, rows_loaded)?;
            self.bytes += chunk.bytes;
            self.chunks.push(Arc::new(chunk));
        }
        Ok(())
    }

    /// Remove the first `rows` pending rows, as slices of the pending pieces.
    fn take_front(&mut self, rows: usize) -> Vec<RecordBatch> {
        let mut taken = Vec::new();
        let mut needed = rows;
        let mut consumed = 0;
        for piece in &self.pending {
            if needed == 0 {
                break;
            }
            if piece.num_rows() <= needed {
                needed -= piece.num_rows();
                taken.push(piece.clone());
                consumed += 1;
            } else {
                taken.push(piece.slice(0, needed));
                needed = 0;
            }
        }
        self.pending.drain(..consumed);
        if let Some(first) = self.pending.first_mut() {
            let already = taken.last().map(|b| b.num_rows()).unwrap_or(0);
            if taken.len() > consumed {
                *first = first.slice(already, first.num_rows() - already);
            }
        }
        self.pending_rows -= rows;
        taken
    }
}

/// The schema lakewave stores for a source schema (see [`logical_type`]).
pub(super) fn logical_schema_of(source_schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        source_schema
            .fields()
            .iter()
            .map(|f| {
                Field::new(f.name(), logical_type(f.data_type()), f.is_nullable())
                    .with_metadata(f.metadata().clone())
            })
            .collect::<Vec<_>>(),
        source_schema.metadata().clone(),
    ))
}

/// Check a source batch against a table's logical schema and convert it to the
/// logical types; `non_null` columns (placement keys) must hold no NULL.
pub(super) fn normalise(
    name: &TableName,
    logical_schema: &SchemaRef,
    non_null: &[usize],
    batch: RecordBatch,
) -> Result<RecordBatch, StoreError> {
    let invalid = |column: Option<&String>, reason: String| StoreError::InvalidData {
        table: name.clone(),
        column: column.cloned(),
        reason,
    };
    let schema = batch.schema();
    if schema.fields().len() != logical_schema.fields().len() {
        return Err(invalid(
            None,
            format!(
                "a batch has {} columns where the first had {}",
                schema.fields().len(),
                logical_schema.fields().len()
            ),
        ));
    }
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (index, (column, field)) in batch
        .columns()
        .iter()
        .zip(logical_schema.fields())
        .enumerate()
    {
        let source_field = schema.field(index);
        if source_field.name() != field.name()
            || logical_type(source_field.data_type()) != *field.data_type()
        {
            return Err(invalid(
                Some(field.name()),
                format!(
                    "a batch has column '{}' of type {} where the first had '{}' of type {}",
                    source_field.name(),
                    source_field.data_type(),
                    field.name(),
                    field.data_type()
                ),
            ));
        }
        if non_null.contains(&index) && column.null_count() > 0 {
            return Err(invalid(
                Some(field.name()),
                "NULL in a primary key or placement key column".to_string(),
            ));
        }
        if column.data_type() == field.data_type() {
            columns.push(Arc::clone(column));
        } else {
            columns.push(
                cast(column, field.data_type()).map_err(|source| StoreError::Arrow {
                    table: name.clone(),
                    source,
                })?,
            );
        }
    }
    RecordBatch::try_new(Arc::clone(logical_schema), columns).map_err(|source| StoreError::Arrow {
        table: name.clone(),
        source,
    })
}

/// Hold node memory for a new chunk, or fail naming the node and what is free.
pub(super) fn reserve(
    mut chunk: Chunk,
    node: &Arc<NodeMemory>,
    name: &TableName,
    rows_loaded: u64,
) -> Result<Chunk, StoreError> {
    let mut reservation = node.reservation();
    if let Err(free) = reservation.try_grow(chunk.bytes) {
        return Err(StoreError::OutOfMemory {
            table: name.clone(),
            node: node.id,
            needed: chunk.bytes,
            free,
            budget: node.budget,
            rows_loaded,
        });
    }
    chunk.memory = Some(Arc::new(reservation));
    Ok(chunk)
}

/// Copy pieces (often zero-copy slices of larger source batches) into one batch
/// whose buffers hold exactly its rows, so a chunk never keeps a source buffer
/// alive and its memory accounting is exact. `concat` would hand a single slice
/// back uncopied.
pub(super) fn compact(pieces: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    let schema = pieces[0].schema();
    let rows: usize = pieces.iter().map(|b| b.num_rows()).sum();
    let columns = (0..schema.fields().len())
        .map(|column| {
            let data: Vec<_> = pieces.iter().map(|b| b.column(column).to_data()).collect();
            let mut out = MutableArrayData::new(data.iter().collect(), false, rows);
            for (index, piece) in pieces.iter().enumerate() {
                out.try_extend(index, 0, piece.num_rows())?;
            }
            Ok(make_array(out.freeze()))
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    RecordBatch::try_new(schema, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn compaction_copies_slices_into_exact_buffers() {
        let big: Arc<dyn Array> = Arc::new(Int64Array::from_iter_values(0..100_000));
        let schema = Arc::new(Schema::new(vec![Field::new(
            "v",
            arrow::datatypes::DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![big]).unwrap();
        let slice = batch.slice(10, 100);
        let out = compact(std::slice::from_ref(&slice)).unwrap();
        assert_eq!(out.num_rows(), 100);
        assert!(
            out.get_array_memory_size() < 4096,
            "{}",
            out.get_array_memory_size()
        );
        let values = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(values.value(0), 10);
        let two = compact(&[batch.slice(0, 3), batch.slice(99_998, 2)]).unwrap();
        let values = two.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(values.values().to_vec(), vec![0, 1, 2, 99_998, 99_999]);
    }
}
