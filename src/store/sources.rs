//! Tables loaded from files (external tables). Every chunk holds rows of one
//! source file, so a table can be brought to a new set of files by touching
//! only the files that changed: the chunks of removed or rewritten files are
//! left out of the next snapshot (their memory goes back when the last query
//! reading them ends), chunks are built for the added files, and every other
//! chunk is shared with the previous snapshot.
//!
//! Files have no placement key: the rows of a file are cut into chunks of
//! `chunk_rows` and each chunk goes to the partition holding the fewest rows,
//! so small files do not splinter into a sliver per partition.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use rayon::prelude::*;

use super::StoreError;
use super::chunk::{Chunk, ColumnEncoding, choose_encodings, physical_schema};
use super::loader::{SAMPLE_ROWS, compact, logical_schema_of, normalise, reserve};
use super::memory::NodeMemory;
use super::table::{ColumnarTable, Partition};
use crate::catalog::TableName;

/// Builds the next snapshot of a table loaded from files.
pub struct SourceTableBuilder {
    name: TableName,
    version: u64,
    logical_schema: SchemaRef,
    /// Chosen from the first file's rows for a new table, inherited otherwise.
    encodings: Option<(Vec<ColumnEncoding>, SchemaRef)>,
    partitions: Vec<Partition>,
    nodes: Vec<Arc<NodeMemory>>,
    chunk_rows: usize,
    dictionary_max_ratio: f64,
    rows_added: u64,
    /// Rows of the file being added that do not fill a chunk yet.
    pending: Option<(Arc<str>, Vec<RecordBatch>, usize)>,
}

impl SourceTableBuilder {
    /// An empty table; `partition_nodes[i]` is the node of partition `i`.
    pub fn new(
        name: TableName,
        version: u64,
        source_schema: &Schema,
        partition_nodes: &[usize],
        nodes: &[Arc<NodeMemory>],
        chunk_rows: usize,
        dictionary_max_ratio: f64,
    ) -> Self {
        SourceTableBuilder {
            name,
            version,
            logical_schema: logical_schema_of(source_schema),
            encodings: None,
            partitions: partition_nodes
                .iter()
                .map(|&node| Partition {
                    node,
                    chunks: Vec::new(),
                })
                .collect(),
            nodes: nodes.to_vec(),
            chunk_rows,
            dictionary_max_ratio,
            rows_added: 0,
            pending: None,
        }
    }

    /// The next version of `base`: its chunks, except those of the files in
    /// `removed`, with its schema and encodings.
    pub fn from_table(
        base: &ColumnarTable,
        removed: &HashSet<String>,
        nodes: &[Arc<NodeMemory>],
        chunk_rows: usize,
    ) -> Self {
        let partitions = base
            .partitions
            .iter()
            .map(|partition| Partition {
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
            })
            .collect();
        SourceTableBuilder {
            name: base.name.clone(),
            version: base.version + 1,
            logical_schema: Arc::clone(&base.logical_schema),
            encodings: Some((base.encodings.clone(), Arc::clone(&base.physical_schema))),
            partitions,
            nodes: nodes.to_vec(),
            chunk_rows,
            dictionary_max_ratio: 0.0,
            rows_added: 0,
            pending: None,
        }
    }

    pub fn logical_schema(&self) -> &SchemaRef {
        &self.logical_schema
    }

    /// Rows added so far.
    pub fn rows_added(&self) -> u64 {
        self.rows_added
    }

    /// Add rows of a file. A file may come in several parts, one after the
    /// other: its rows are cut into full chunks as they arrive, and its last
    /// short chunk is cut when another file starts or the build finishes.
    /// Chunks are encoded in parallel; each takes memory on the node of the
    /// partition it goes to, and a node that runs out fails the whole build
    /// (nothing built so far is published).
    pub fn add_file(
        &mut self,
        source: Arc<str>,
        batches: Vec<RecordBatch>,
    ) -> Result<(), StoreError> {
        let batches = batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| normalise(&self.name, &self.logical_schema, &[], b))
            .collect::<Result<Vec<_>, _>>()?;
        if self
            .pending
            .as_ref()
            .is_some_and(|(current, _, _)| *current != source)
        {
            self.flush()?;
        }
        let (_, pending, rows) = self
            .pending
            .get_or_insert_with(|| (Arc::clone(&source), Vec::new(), 0));
        *rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
        pending.extend(batches);
        let chunk_rows = self.chunk_rows.max(1);
        let full = (*rows / chunk_rows) * chunk_rows;
        if full > 0 {
            let mut pieces = cut(pending, chunk_rows);
            let rest = if full < *rows { pieces.pop() } else { None };
            *pending = rest.unwrap_or_default();
            *rows -= full;
            self.store(&source, pieces)?;
        }
        Ok(())
    }

    /// Cut the last short chunk of the file being added.
    fn flush(&mut self) -> Result<(), StoreError> {
        if let Some((source, pending, rows)) = self.pending.take()
            && rows > 0
        {
            self.store(&source, vec![pending])?;
        }
        Ok(())
    }

    /// Encode pieces of `source` into chunks and place them.
    fn store(
        &mut self,
        source: &Arc<str>,
        pieces: Vec<Vec<RecordBatch>>,
    ) -> Result<(), StoreError> {
        let (encodings, physical) = match &self.encodings {
            Some(chosen) => chosen.clone(),
            None => {
                let mut sample = Vec::new();
                let mut rows = 0;
                for batch in pieces.iter().flatten() {
                    if rows >= SAMPLE_ROWS {
                        break;
                    }
                    rows += batch.num_rows();
                    sample.push(batch.clone());
                }
                let encodings =
                    choose_encodings(&self.logical_schema, &sample, self.dictionary_max_ratio);
                let physical = physical_schema(&self.logical_schema, &encodings);
                self.encodings = Some((encodings.clone(), Arc::clone(&physical)));
                (encodings, physical)
            }
        };
        let name = &self.name;
        let chunks: Vec<Chunk> = pieces
            .par_iter()
            .map(|piece| {
                let arrow_error = |source| StoreError::Arrow {
                    table: name.clone(),
                    source,
                };
                let logical = compact(piece).map_err(arrow_error)?;
                Ok(Chunk::build(logical, &encodings, &physical)
                    .map_err(arrow_error)?
                    .with_source(Arc::clone(source)))
            })
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

    /// The finished snapshot.
    pub fn finish(mut self) -> Result<ColumnarTable, StoreError> {
        self.flush()?;
        let (encodings, physical_schema) = self.encodings.unwrap_or_else(|| {
            let encodings = vec![ColumnEncoding::Plain; self.logical_schema.fields().len()];
            let physical = physical_schema(&self.logical_schema, &encodings);
            (encodings, physical)
        });
        Ok(ColumnarTable {
            name: self.name,
            version: self.version,
            logical_schema: self.logical_schema,
            physical_schema,
            encodings,
            placement: Vec::new(),
            partitions: self.partitions,
        })
    }
}

/// Cut batches into groups of slices of `rows` rows each (the last shorter).
fn cut(batches: &[RecordBatch], rows: usize) -> Vec<Vec<RecordBatch>> {
    let mut pieces = Vec::new();
    let mut current = Vec::new();
    let mut current_rows = 0;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (rows - current_rows).min(batch.num_rows() - offset);
            current.push(batch.slice(offset, take));
            current_rows += take;
            offset += take;
            if current_rows == rows {
                pieces.push(std::mem::take(&mut current));
                current_rows = 0;
            }
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

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
        let mut builder =
            SourceTableBuilder::new(name, 1, &schema, &[0, 1, 0, 1], &nodes, 100, 0.5);
        builder
            .add_file("a".into(), vec![batch(0, 250), batch(250, 30)])
            .unwrap();
        builder.add_file("b".into(), vec![batch(1000, 10)]).unwrap();
        builder.add_file("empty".into(), vec![]).unwrap();
        let first = builder.finish().unwrap();
        assert_eq!(first.rows(), 290);
        assert_eq!(files(&first), vec![("a".into(), 280), ("b".into(), 10)]);
        // Chunks of 100 rows at most, spread over the partitions.
        assert_eq!(first.chunk_count(), 4);
        assert!(first.partitions.iter().all(|p| !p.chunks.is_empty()));
        let used = nodes[0].used() + nodes[1].used();

        let removed: HashSet<String> = ["a".to_string()].into();
        let mut next = SourceTableBuilder::from_table(&first, &removed, &nodes, 100);
        next.add_file("c".into(), vec![batch(2000, 5)]).unwrap();
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
        let mut builder = SourceTableBuilder::new(
            TableName::new("db", "t"),
            1,
            &schema,
            &[0, 0],
            &nodes,
            100,
            0.5,
        );
        for part in 0..7 {
            builder
                .add_file("a".into(), vec![batch(part * 30, 30)])
                .unwrap();
        }
        builder.add_file("b".into(), vec![batch(500, 5)]).unwrap();
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
        let mut builder = SourceTableBuilder::new(
            TableName::new("db", "t"),
            1,
            &schema,
            &[0],
            &nodes,
            100,
            0.5,
        );
        let error = match builder.add_file("big".into(), vec![batch(0, 10_000)]) {
            Err(error) => error,
            Ok(()) => builder.finish().unwrap_err(),
        };
        assert!(matches!(error, StoreError::OutOfMemory { .. }), "{error}");
        assert_eq!(nodes[0].used(), 0);
    }
}
