//! Building a table snapshot from record batches: the one place where rows
//! become chunks. Every load goes through a [`TableBuilder`] with a layout:
//!
//! - by key (`Layout::Hash`): rows are hashed on the placement columns, so
//!   equal keys share a partition (and the planner can be told so);
//! - round-robin: rows are dealt to partitions in turn;
//! - by file (`Layout::ByFile`): each chunk holds rows of one source file,
//!   and goes to the partition with the fewest rows, so a refresh can drop
//!   the chunks of one file and keep every other.
//!
//! Batches arrive in groups; each group is normalised and split on all cores
//! (rayon), and every partition cuts its pending rows into chunks of
//! `chunk_rows`, encoding them and taking memory on its node as it goes. A
//! node that runs out of memory fails the build at once, and dropping the
//! builder gives back every reservation: a failed load leaves nothing
//! behind. Encodings are chosen from the first `SAMPLE_ROWS` rows.
//!
//! The helpers [`normalise`], [`Pending`], [`encode_chunk`] and [`reserve`] are
//! shared with applying change batches (`delta`).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, MutableArrayData, RecordBatch, make_array};
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

/// How a table's rows are laid out over its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// By a hash of the columns at these positions.
    Hash(Vec<usize>),
    RoundRobin,
    /// A chunk per piece of a source file, on the least-filled partition.
    ByFile,
}

/// Rows waiting to fill a chunk: slices of source batches, in order.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pieces: Vec<RecordBatch>,
    rows: usize,
}

impl Pending {
    pub(super) fn push(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.rows += batch.num_rows();
            self.pieces.push(batch);
        }
    }

    /// The pieces of each chunk of `size` rows that the pending rows fill;
    /// `size == 0` takes everything pending as one (possibly short) chunk.
    pub(super) fn take_chunks(&mut self, size: usize) -> Vec<Vec<RecordBatch>> {
        let size = if size == 0 { self.rows } else { size };
        let mut chunks = Vec::new();
        while size > 0 && self.rows >= size {
            chunks.push(self.take_front(size));
        }
        chunks
    }

    /// Remove the first `rows` pending rows, as slices of the pending pieces.
    fn take_front(&mut self, rows: usize) -> Vec<RecordBatch> {
        let mut taken = Vec::new();
        let mut needed = rows;
        let mut consumed = 0;
        for piece in &self.pieces {
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
        self.pieces.drain(..consumed);
        if taken.len() > consumed
            && let Some(first) = self.pieces.first_mut()
        {
            let already = taken.last().map(|b| b.num_rows()).unwrap_or(0);
            *first = first.slice(already, first.num_rows() - already);
        }
        self.rows -= rows;
        taken
    }
}

/// The chosen encodings and the physical schema they give.
type Encodings = (Vec<ColumnEncoding>, SchemaRef);

struct PartitionBuild {
    node: usize,
    chunks: Vec<Arc<Chunk>>,
    pending: Pending,
}

impl PartitionBuild {
    fn rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.rows() as u64).sum()
    }
}

/// Builds one version of a table.
pub struct TableBuilder {
    name: TableName,
    version: u64,
    logical_schema: SchemaRef,
    encodings: Option<Encodings>,
    /// Batches held back (with their file) until encodings are chosen.
    held: Vec<(Option<Arc<str>>, RecordBatch)>,
    held_rows: usize,
    layout: Layout,
    partitioner: Option<Partitioner>,
    partitions: Vec<PartitionBuild>,
    /// The file being added (by-file layout) and its rows short of a chunk.
    file: Option<(Arc<str>, Pending)>,
    nodes: Vec<Arc<NodeMemory>>,
    chunk_rows: usize,
    dictionary_max_ratio: f64,
    sequence: usize,
    rows_added: u64,
}

impl TableBuilder {
    /// An empty table; `partition_nodes[i]` is the node of partition `i`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: TableName,
        version: u64,
        source_schema: &Schema,
        layout: Layout,
        partition_nodes: &[usize],
        nodes: &[Arc<NodeMemory>],
        chunk_rows: usize,
        dictionary_max_ratio: f64,
    ) -> Self {
        let partitioner = match &layout {
            Layout::Hash(columns) => Some(Partitioner::Hash {
                columns: columns.clone(),
                partitions: partition_nodes.len(),
            }),
            Layout::RoundRobin => Some(Partitioner::RoundRobin {
                partitions: partition_nodes.len(),
            }),
            Layout::ByFile => None,
        };
        TableBuilder {
            name,
            version,
            logical_schema: logical_schema_of(source_schema),
            encodings: None,
            held: Vec::new(),
            held_rows: 0,
            layout,
            partitioner,
            partitions: partition_nodes
                .iter()
                .map(|&node| PartitionBuild {
                    node,
                    chunks: Vec::new(),
                    pending: Pending::default(),
                })
                .collect(),
            file: None,
            nodes: nodes.to_vec(),
            chunk_rows: chunk_rows.max(1),
            dictionary_max_ratio,
            sequence: 0,
            rows_added: 0,
        }
    }

    /// The next version of `base` (laid out by file): its chunks, except
    /// those of the files in `removed`, with its schema and encodings.
    pub fn from_table(
        base: &ColumnarTable,
        removed: &HashSet<String>,
        nodes: &[Arc<NodeMemory>],
        chunk_rows: usize,
    ) -> Self {
        let partitions = base
            .partitions
            .iter()
            .map(|partition| PartitionBuild {
                node: partition.node,
                chunks: partition
                    .chunks
                    .iter()
                    .filter(|chunk| {
                        chunk
                            .source
                            .as_deref()
                            .is_none_or(|source| !removed.contains(source))
                    })
                    .cloned()
                    .collect(),
                pending: Pending::default(),
            })
            .collect();
        TableBuilder {
            name: base.name.clone(),
            version: base.version + 1,
            logical_schema: Arc::clone(&base.logical_schema),
            encodings: Some((base.encodings.clone(), Arc::clone(&base.physical_schema))),
            held: Vec::new(),
            held_rows: 0,
            layout: Layout::ByFile,
            partitioner: None,
            partitions,
            file: None,
            nodes: nodes.to_vec(),
            chunk_rows: chunk_rows.max(1),
            dictionary_max_ratio: 0.0,
            sequence: 0,
            rows_added: 0,
        }
    }

    pub fn logical_schema(&self) -> &SchemaRef {
        &self.logical_schema
    }

    pub fn progress(&self) -> LoadProgress {
        LoadProgress {
            rows: self.rows_added + self.held_rows as u64,
            bytes: self
                .partitions
                .iter()
                .flat_map(|p| p.chunks.iter())
                .map(|c| c.bytes)
                .sum(),
        }
    }

    /// Add a group of batches (key or round-robin layout). Larger groups use
    /// the cores better.
    pub fn push(&mut self, batches: Vec<RecordBatch>) -> Result<(), StoreError> {
        self.accept(None, batches)
    }

    /// Add rows of a file (by-file layout). A file may come in several parts,
    /// one after the other: its rows are cut into full chunks as they arrive,
    /// and its last short chunk when another file starts or the build ends.
    pub fn push_file(
        &mut self,
        source: Arc<str>,
        batches: Vec<RecordBatch>,
    ) -> Result<(), StoreError> {
        self.accept(Some(source), batches)
    }

    /// Cut the last chunks and return the finished snapshot.
    pub fn finish(mut self) -> Result<ColumnarTable, StoreError> {
        if self.encodings.is_none() {
            self.choose_encodings();
            self.replay_held()?;
        }
        self.flush_file()?;
        let (encodings, physical) = self.encodings.clone().expect("encodings chosen");
        let name = self.name.clone();
        let nodes = self.nodes.clone();
        let rows_loaded = self.rows_added;
        self.partitions.par_iter_mut().try_for_each(|p| {
            cut_partition(p, 0, &encodings, &physical, &nodes, &name, rows_loaded)
        })?;
        let placement = match &self.layout {
            Layout::Hash(columns) => columns.clone(),
            _ => Vec::new(),
        };
        Ok(ColumnarTable {
            name: self.name,
            version: self.version,
            logical_schema: self.logical_schema,
            physical_schema: physical,
            encodings,
            placement,
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

    fn accept(
        &mut self,
        source: Option<Arc<str>>,
        batches: Vec<RecordBatch>,
    ) -> Result<(), StoreError> {
        let non_null = match &self.layout {
            Layout::Hash(columns) => columns.clone(),
            _ => Vec::new(),
        };
        let batches = batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| normalise(&self.name, &self.logical_schema, &non_null, &b))
            .collect::<Result<Vec<_>, _>>()?;
        if self.encodings.is_some() {
            return self.place(source, batches);
        }
        for batch in batches {
            self.held_rows += batch.num_rows();
            self.held.push((source.clone(), batch));
        }
        if self.held_rows >= SAMPLE_ROWS {
            self.choose_encodings();
            self.replay_held()?;
        }
        Ok(())
    }

    fn choose_encodings(&mut self) {
        let sample: Vec<RecordBatch> = self.held.iter().map(|(_, b)| b.clone()).collect();
        let encodings = choose_encodings(&self.logical_schema, &sample, self.dictionary_max_ratio);
        let physical = physical_schema(&self.logical_schema, &encodings);
        self.encodings = Some((encodings, physical));
    }

    /// Place the held batches, in order, now that encodings are chosen.
    fn replay_held(&mut self) -> Result<(), StoreError> {
        let held = std::mem::take(&mut self.held);
        self.held_rows = 0;
        let mut group: Vec<RecordBatch> = Vec::new();
        let mut group_source: Option<Arc<str>> = None;
        for (source, batch) in held {
            if source != group_source && !group.is_empty() {
                self.place(group_source.take(), std::mem::take(&mut group))?;
            }
            group_source = source;
            group.push(batch);
        }
        if !group.is_empty() {
            self.place(group_source, group)?;
        }
        Ok(())
    }

    fn place(
        &mut self,
        source: Option<Arc<str>>,
        batches: Vec<RecordBatch>,
    ) -> Result<(), StoreError> {
        match self.layout {
            Layout::ByFile => {
                let source = source.unwrap_or_else(|| Arc::from(""));
                self.place_file(source, batches)
            }
            _ => self.place_split(batches),
        }
    }

    /// Key or round-robin: split every batch over the partitions, then let
    /// each partition cut its full chunks.
    fn place_split(&mut self, batches: Vec<RecordBatch>) -> Result<(), StoreError> {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        if batches.is_empty() {
            return Ok(());
        }
        let first_sequence = self.sequence;
        self.sequence += batches.len();
        let partitioner = self.partitioner.as_ref().expect("split layouts partition");
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
            self.rows_added += piece.num_rows() as u64;
            self.partitions[partition].pending.push(piece);
        }
        let (encodings, physical) = self.encodings.clone().expect("encodings chosen");
        let chunk_rows = self.chunk_rows;
        let name = &self.name;
        let nodes = &self.nodes;
        let rows_loaded = self.rows_added;
        self.partitions.par_iter_mut().try_for_each(|p| {
            cut_partition(
                p,
                chunk_rows,
                &encodings,
                &physical,
                nodes,
                name,
                rows_loaded,
            )
        })
    }

    /// By file: cut the file's full chunks and put each on the partition
    /// holding the fewest rows.
    fn place_file(
        &mut self,
        source: Arc<str>,
        batches: Vec<RecordBatch>,
    ) -> Result<(), StoreError> {
        if self
            .file
            .as_ref()
            .is_some_and(|(current, _)| *current != source)
        {
            self.flush_file()?;
        }
        let (_, pending) = self
            .file
            .get_or_insert_with(|| (Arc::clone(&source), Pending::default()));
        for batch in batches {
            pending.push(batch);
        }
        let pieces = pending.take_chunks(self.chunk_rows);
        self.store_file_chunks(&source, pieces)
    }

    /// Cut the last short chunk of the file being added.
    fn flush_file(&mut self) -> Result<(), StoreError> {
        if let Some((source, mut pending)) = self.file.take() {
            let pieces = pending.take_chunks(0);
            self.store_file_chunks(&source, pieces)?;
        }
        Ok(())
    }

    fn store_file_chunks(
        &mut self,
        source: &Arc<str>,
        pieces: Vec<Vec<RecordBatch>>,
    ) -> Result<(), StoreError> {
        if pieces.is_empty() {
            return Ok(());
        }
        let (encodings, physical) = self.encodings.clone().expect("encodings chosen");
        let name = &self.name;
        let chunks: Vec<Chunk> = pieces
            .par_iter()
            .map(|piece| encode_chunk(name, piece, &encodings, &physical, Some(source)))
            .collect::<Result<_, StoreError>>()?;
        for chunk in chunks {
            let rows = chunk.rows() as u64;
            let target = self
                .partitions
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.rows())
                .map(|(i, _)| i)
                .expect("a table has partitions");
            let partition = &mut self.partitions[target];
            let chunk = reserve(
                chunk,
                &self.nodes[partition.node],
                &self.name,
                self.rows_added,
            )?;
            partition.chunks.push(Arc::new(chunk));
            self.rows_added += rows;
        }
        Ok(())
    }
}

/// Cut a partition's pending rows into chunks (`size == 0`: everything
/// pending, as one last chunk) and hold memory for them on its node.
fn cut_partition(
    partition: &mut PartitionBuild,
    size: usize,
    encodings: &[ColumnEncoding],
    physical: &SchemaRef,
    nodes: &[Arc<NodeMemory>],
    name: &TableName,
    rows_loaded: u64,
) -> Result<(), StoreError> {
    for pieces in partition.pending.take_chunks(size) {
        let chunk = encode_chunk(name, &pieces, encodings, physical, None)?;
        let chunk = reserve(chunk, &nodes[partition.node], name, rows_loaded)?;
        partition.chunks.push(Arc::new(chunk));
    }
    Ok(())
}

/// One chunk from pieces of logical rows: copied into exact buffers, then
/// encoded; `source` is the file its rows came from.
pub(super) fn encode_chunk(
    name: &TableName,
    pieces: &[RecordBatch],
    encodings: &[ColumnEncoding],
    physical: &SchemaRef,
    source: Option<&Arc<str>>,
) -> Result<Chunk, StoreError> {
    let arrow_error = |source| StoreError::Arrow {
        table: name.clone(),
        source,
    };
    let logical = compact(pieces).map_err(arrow_error)?;
    let chunk = Chunk::build(logical, encodings, physical).map_err(arrow_error)?;
    Ok(match source {
        Some(source) => chunk.with_source(Arc::clone(source)),
        None => chunk,
    })
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

/// Check a batch against a table's logical schema (same column count,
/// names and stored types) and convert it to the logical types; `non_null`
/// columns (placement keys) must hold no NULL.
pub(super) fn normalise(
    name: &TableName,
    logical_schema: &SchemaRef,
    non_null: &[usize],
    batch: &RecordBatch,
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
                "a batch has {} columns where the table has {}",
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
                    "a batch has column '{}' of type {} where the table has '{}' of type {}",
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
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::DataType;

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

    fn batch(from: i64, rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tag", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + rows)),
                Arc::new(StringArray::from_iter_values(
                    (from..from + rows).map(|i| format!("t{}", i % 3)),
                )),
            ],
        )
        .unwrap()
    }

    fn files(table: &ColumnarTable) -> Vec<(String, u64)> {
        let mut out: std::collections::BTreeMap<String, u64> = Default::default();
        for partition in &table.partitions {
            for chunk in &partition.chunks {
                *out.entry(chunk.source.as_deref().unwrap().to_string())
                    .or_default() += chunk.rows() as u64;
            }
        }
        out.into_iter().collect()
    }

    #[test]
    fn refresh_keeps_unchanged_files_and_frees_removed_ones() {
        let nodes = vec![NodeMemory::new(0, 1 << 30), NodeMemory::new(1, 1 << 30)];
        let name = TableName::new("db", "t");
        let schema = batch(0, 1).schema();
        let mut builder = TableBuilder::new(
            name,
            1,
            &schema,
            Layout::ByFile,
            &[0, 1, 0, 1],
            &nodes,
            100,
            0.5,
        );
        builder
            .push_file("a".into(), vec![batch(0, 250), batch(250, 30)])
            .unwrap();
        builder
            .push_file("b".into(), vec![batch(1000, 10)])
            .unwrap();
        builder.push_file("empty".into(), vec![]).unwrap();
        let first = builder.finish().unwrap();
        assert_eq!(first.rows(), 290);
        assert_eq!(files(&first), vec![("a".into(), 280), ("b".into(), 10)]);
        // Chunks of 100 rows at most, spread over the partitions.
        assert_eq!(first.chunk_count(), 4);
        assert!(first.partitions.iter().all(|p| !p.chunks.is_empty()));
        let used = nodes[0].used() + nodes[1].used();

        let removed: HashSet<String> = ["a".to_string()].into();
        let mut next = TableBuilder::from_table(&first, &removed, &nodes, 100);
        next.push_file("c".into(), vec![batch(2000, 5)]).unwrap();
        let second = next.finish().unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(files(&second), vec![("b".into(), 10), ("c".into(), 5)]);
        assert_eq!(second.encodings, first.encodings);
        // b's chunk is shared, not copied.
        let shared = |t: &ColumnarTable| {
            t.partitions
                .iter()
                .flat_map(|p| p.chunks.iter())
                .find(|c| c.source.as_deref() == Some("b"))
                .cloned()
                .unwrap()
        };
        assert!(Arc::ptr_eq(&shared(&first), &shared(&second)));
        drop(first);
        assert!(nodes[0].used() + nodes[1].used() < used);
    }

    #[test]
    fn a_file_in_parts_makes_full_chunks() {
        let nodes = vec![NodeMemory::new(0, 1 << 30)];
        let schema = batch(0, 1).schema();
        let mut builder = TableBuilder::new(
            TableName::new("db", "t"),
            1,
            &schema,
            Layout::ByFile,
            &[0, 0],
            &nodes,
            100,
            0.5,
        );
        for part in 0..7 {
            builder
                .push_file("a".into(), vec![batch(part * 30, 30)])
                .unwrap();
        }
        builder.push_file("b".into(), vec![batch(500, 5)]).unwrap();
        let table = builder.finish().unwrap();
        let mut sizes: Vec<(String, usize)> = table
            .partitions
            .iter()
            .flat_map(|p| p.chunks.iter())
            .map(|c| (c.source.as_deref().unwrap().to_string(), c.rows()))
            .collect();
        sizes.sort();
        // 210 rows of a: two full chunks and one of 10; b's 5 rows alone.
        assert_eq!(
            sizes,
            vec![
                ("a".to_string(), 10),
                ("a".to_string(), 100),
                ("a".to_string(), 100),
                ("b".to_string(), 5)
            ]
        );
        let ids = table
            .partitions
            .iter()
            .flat_map(|p| p.chunks.iter())
            .map(|c| c.rows())
            .sum::<usize>();
        assert_eq!(ids, 215);
    }

    #[test]
    fn out_of_memory_fails_the_file() {
        let nodes = vec![NodeMemory::new(0, 2_000)];
        let schema = batch(0, 1).schema();
        let mut builder = TableBuilder::new(
            TableName::new("db", "t"),
            1,
            &schema,
            Layout::ByFile,
            &[0],
            &nodes,
            100,
            0.5,
        );
        let error = match builder.push_file("big".into(), vec![batch(0, 10_000)]) {
            Err(error) => error,
            Ok(()) => builder.finish().unwrap_err(),
        };
        assert!(matches!(error, StoreError::OutOfMemory { .. }), "{error}");
        assert_eq!(nodes[0].used(), 0);
    }

    #[test]
    fn keyed_rows_stay_together_and_failures_give_memory_back() {
        let nodes = vec![NodeMemory::new(0, 1 << 30), NodeMemory::new(1, 1 << 30)];
        let schema = batch(0, 1).schema();
        let mut builder = TableBuilder::new(
            TableName::new("db", "t"),
            1,
            &schema,
            Layout::Hash(vec![0]),
            &[0, 1, 0, 1],
            &nodes,
            64,
            0.5,
        );
        builder.push(vec![batch(0, 500), batch(500, 500)]).unwrap();
        builder.push(vec![batch(0, 10)]).unwrap();
        let table = builder.finish().unwrap();
        assert_eq!(table.rows(), 1010);
        assert_eq!(table.placement, vec![0]);
        // The ten repeated keys sit in the partitions of their first copies.
        for partition in &table.partitions {
            let ids: Vec<i64> = partition
                .chunks
                .iter()
                .flat_map(|c| {
                    let live = c.live_slice_projected(0, c.stored_rows(), None).unwrap();
                    live.column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .values()
                        .to_vec()
                })
                .collect();
            let low: Vec<&i64> = ids.iter().filter(|&&i| i < 10).collect();
            assert!(
                low.len().is_multiple_of(2),
                "a key and its copy share a partition"
            );
        }
        let used = nodes[0].used() + nodes[1].used();
        assert!(used > 0);
        drop(table);
        assert_eq!(nodes[0].used() + nodes[1].used(), 0);

        let mut nulls = TableBuilder::new(
            TableName::new("db", "t"),
            1,
            &schema,
            Layout::Hash(vec![1]),
            &[0],
            &nodes,
            64,
            0.5,
        );
        let with_null = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(StringArray::from(vec![None::<&str>])),
            ],
        )
        .unwrap();
        let error = nulls.push(vec![with_null]).unwrap_err();
        assert!(matches!(error, StoreError::InvalidData { .. }), "{error}");
    }
}
