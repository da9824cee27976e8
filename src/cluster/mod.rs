//! The cluster: its nodes (each with a memory budget), the placement of store
//! partitions on nodes, and the registry of loaded table snapshots. Loading runs
//! here: a source of record batches goes through a `store::TableLoader` and the
//! finished snapshot is published in one step, together with its catalog
//! definition, so a query sees the old table or the new one, never a mix.
//!
//! Everything runs in-process for now; a node is an accounting and placement
//! unit. Distribution across processes (`datafusion-distributed`) will route each
//! partition's scan to the process that owns its node.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parking_lot::RwLock;

use crate::cancel::Cancel;
use crate::catalog::{Catalog, Placement, TableDef, TableName};
use crate::config::EngineConfig;
use crate::error::Result;
use crate::store::{
    ChangeSet, ColumnarTable, LoadProgress, NodeMemory, SourceTableBuilder, StoreError, TableLoader,
};

/// Batches handed to the loader at once: enough to keep every core busy.
const GROUP_ROWS: usize = 1 << 20;

/// What a caller asks to load.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    pub name: TableName,
    pub primary_key: Vec<String>,
    /// Data placement keys; the primary key when empty.
    pub placement_keys: Vec<String>,
    /// Replace an existing table (it stays as it was if the load fails).
    pub replace: bool,
    /// Describes the source in errors: a path, "a pyarrow.Table", a query.
    pub source_name: String,
}

/// One node's state, for status tables and Python.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub id: usize,
    pub budget: u64,
    pub used: u64,
    pub partitions: usize,
}

/// One loaded table's state.
#[derive(Debug, Clone)]
pub struct TableStatus {
    pub name: TableName,
    pub rows: u64,
    pub bytes: u64,
    pub chunks: usize,
    pub partitions: usize,
    pub version: u64,
    pub dictionary_columns: Vec<String>,
}

pub type BatchSource<'a> = Box<
    dyn Iterator<Item = std::result::Result<RecordBatch, Box<dyn std::error::Error + Send + Sync>>>
        + 'a,
>;

/// The rows of one source file (an external table's file) and its name.
pub type SourceFile = (Arc<str>, Vec<RecordBatch>);

pub type FileSource<'a> = Box<
    dyn Iterator<Item = std::result::Result<SourceFile, Box<dyn std::error::Error + Send + Sync>>>
        + 'a,
>;

#[derive(Debug)]
pub struct Cluster {
    config: EngineConfig,
    nodes: Vec<Arc<NodeMemory>>,
    catalog: Arc<Catalog>,
    tables: RwLock<HashMap<TableName, Arc<ColumnarTable>>>,
}

impl Cluster {
    pub fn new(config: EngineConfig, catalog: Arc<Catalog>) -> Self {
        let nodes = (0..config.shape.nodes)
            .map(|id| NodeMemory::new(id, config.shape.memory_per_node))
            .collect();
        Cluster {
            config,
            nodes,
            catalog,
            tables: RwLock::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Partition `i` lives on node `i % nodes`, so consecutive partitions (and
    /// the rows hashed to them) spread over every node.
    pub fn partition_nodes(&self) -> Vec<usize> {
        let nodes = self.nodes.len();
        (0..nodes * self.config.shape.partitions_per_node)
            .map(|i| i % nodes)
            .collect()
    }

    pub fn table(&self, name: &TableName) -> Option<Arc<ColumnarTable>> {
        self.tables.read().get(name).cloned()
    }

    /// Load a table from a stream of batches with the given schema. Nothing is
    /// visible until the whole stream is stored; on any error (bad data, out of
    /// memory, a failing source, cancellation) everything built is dropped and
    /// an existing table of that name stays as it was.
    pub fn load(
        &self,
        request: &LoadRequest,
        schema: SchemaRef,
        source: BatchSource<'_>,
        cancel: &Cancel,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<TableStatus> {
        let version = self.catalog.check_create(&request.name, request.replace)?;
        let keys = if request.placement_keys.is_empty() {
            &request.primary_key
        } else {
            &request.placement_keys
        };
        let def = TableDef {
            name: request.name.clone(),
            schema: Arc::clone(&schema),
            primary_key: request.primary_key.clone(),
            placement: if keys.is_empty() {
                Placement::RoundRobin
            } else {
                Placement::Hash(keys.clone())
            },
            version,
        };
        def.validate_columns()?;
        let key_columns: Vec<usize> = keys
            .iter()
            .map(|k| schema.index_of(k).expect("validated above"))
            .collect();
        let mut loader = TableLoader::new(
            request.name.clone(),
            version,
            &schema,
            &key_columns,
            &self.partition_nodes(),
            &self.nodes,
            self.config.chunk_rows,
            self.config.dictionary_max_ratio,
        );
        let mut group = Vec::new();
        let mut group_rows = 0;
        for batch in source {
            if cancel.is_cancelled() {
                return Err(StoreError::Interrupted {
                    table: request.name.clone(),
                }
                .into());
            }
            let batch = batch.map_err(|source| StoreError::Source {
                table: request.name.clone(),
                source_name: request.source_name.clone(),
                source,
            })?;
            group_rows += batch.num_rows();
            group.push(batch);
            if group_rows >= GROUP_ROWS {
                loader.push(std::mem::take(&mut group))?;
                group_rows = 0;
                progress(loader.progress());
            }
        }
        loader.push(group)?;
        let table = loader.finish()?;
        progress(LoadProgress {
            rows: table.rows(),
            bytes: table.bytes(),
        });
        let def = TableDef {
            schema: Arc::clone(&table.logical_schema),
            ..def
        };
        self.publish(def, table)
    }

    /// Load a table from files, recording in every chunk the file its rows
    /// came from, so that [`Cluster::refresh_files`] can later replace only
    /// the files that changed. Atomic as [`Cluster::load`] is.
    pub fn load_files(
        &self,
        request: &LoadRequest,
        schema: SchemaRef,
        files: FileSource<'_>,
        cancel: &Cancel,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<TableStatus> {
        let version = self.catalog.check_create(&request.name, request.replace)?;
        let mut builder = SourceTableBuilder::new(
            request.name.clone(),
            version,
            &schema,
            &self.partition_nodes(),
            &self.nodes,
            self.config.chunk_rows,
            self.config.dictionary_max_ratio,
        );
        let def = TableDef {
            name: request.name.clone(),
            schema: Arc::clone(builder.logical_schema()),
            primary_key: Vec::new(),
            placement: Placement::RoundRobin,
            version,
        };
        def.validate_columns()?;
        self.add_files(
            &mut builder,
            &request.name,
            &request.source_name,
            files,
            cancel,
            progress,
        )?;
        self.publish(def, builder.finish()?)
    }

    /// The next version of a table loaded with [`Cluster::load_files`]: the
    /// chunks of the `removed` files are left out, `added` files are loaded,
    /// every other chunk is shared. Published in one step (a query sees the
    /// old version or the new one); on any error nothing changes. `Ok(None)`
    /// when the table is not loaded or was replaced meanwhile.
    pub fn refresh_files(
        &self,
        name: &TableName,
        removed: &std::collections::HashSet<String>,
        added: FileSource<'_>,
        source_name: &str,
        cancel: &Cancel,
    ) -> Result<Option<TableStatus>> {
        let Some(current) = self.table(name) else {
            return Ok(None);
        };
        let mut builder =
            SourceTableBuilder::from_table(&current, removed, &self.nodes, self.config.chunk_rows);
        self.add_files(&mut builder, name, source_name, added, cancel, &mut |_| {})?;
        let next = builder.finish()?;
        let status = Self::status_of(&next);
        Ok(self
            .replace_if_current(name, &current, next)
            .then_some(status))
    }

    /// Publish `next` as the new snapshot of `name` if `current` is still the
    /// published one; `false` when the table was unloaded or replaced since.
    fn replace_if_current(
        &self,
        name: &TableName,
        current: &Arc<ColumnarTable>,
        next: ColumnarTable,
    ) -> bool {
        let mut tables = self.tables.write();
        match tables.get(name) {
            Some(t) if Arc::ptr_eq(t, current) => {
                tables.insert(name.clone(), Arc::new(next));
                true
            }
            _ => false,
        }
    }

    fn add_files(
        &self,
        builder: &mut SourceTableBuilder,
        name: &TableName,
        source_name: &str,
        files: FileSource<'_>,
        cancel: &Cancel,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<()> {
        for file in files {
            if cancel.is_cancelled() {
                return Err(StoreError::Interrupted {
                    table: name.clone(),
                }
                .into());
            }
            let (source, batches) = file.map_err(|source| StoreError::Source {
                table: name.clone(),
                source_name: source_name.to_string(),
                source,
            })?;
            builder.add_file(source, batches)?;
            progress(LoadProgress {
                rows: builder.rows_added(),
                bytes: 0,
            });
        }
        Ok(())
    }

    /// Publish a newly loaded table with its definition; returns its status.
    fn publish(&self, def: TableDef, table: ColumnarTable) -> Result<TableStatus> {
        let status = Self::status_of(&table);
        // Take the registry lock first so that the catalog and the data change
        // together for every reader.
        let mut tables = self.tables.write();
        let name = def.name.clone();
        self.catalog.put(def)?;
        tables.insert(name, Arc::new(table));
        Ok(status)
    }

    /// Apply one propagated batch of changes to a loaded table and publish the
    /// new snapshot. `Ok(false)` when the table was unloaded or replaced while
    /// the batch was built (the batch no longer applies).
    pub fn apply_changes(&self, name: &TableName, changes: &ChangeSet<'_>) -> Result<bool> {
        let Some(current) = self.table(name) else {
            return Ok(false);
        };
        let next = current.apply_changes(changes, &self.nodes, self.config.chunk_rows)?;
        Ok(self.replace_if_current(name, &current, next))
    }

    /// Move a loaded table to a new name (its data is kept).
    pub fn rename(&self, name: &TableName, to: &TableName) -> Result<()> {
        let mut tables = self.tables.write();
        let Some(current) = tables.get(name).cloned() else {
            return Ok(());
        };
        let Some(def) = self.catalog.table(name) else {
            return Ok(());
        };
        self.catalog.remove(name)?;
        self.catalog.put(TableDef {
            name: to.clone(),
            ..def.as_ref().clone()
        })?;
        tables.remove(name);
        tables.insert(
            to.clone(),
            Arc::new(ColumnarTable {
                name: to.clone(),
                version: current.version,
                logical_schema: Arc::clone(&current.logical_schema),
                physical_schema: Arc::clone(&current.physical_schema),
                encodings: current.encodings.clone(),
                placement: current.placement.clone(),
                partitions: current.partitions.clone(),
            }),
        );
        Ok(())
    }

    /// Drop a table from the cluster and the catalog; its memory is given back
    /// when the last query reading it finishes.
    pub fn unload(&self, name: &TableName) -> Result<()> {
        let mut tables = self.tables.write();
        self.catalog.remove(name)?;
        tables.remove(name);
        Ok(())
    }

    pub fn node_status(&self) -> Vec<NodeStatus> {
        let partition_nodes = self.partition_nodes();
        self.nodes
            .iter()
            .map(|node| NodeStatus {
                id: node.id,
                budget: node.budget,
                used: node.used(),
                partitions: partition_nodes.iter().filter(|&&n| n == node.id).count(),
            })
            .collect()
    }

    pub fn table_status(&self) -> Vec<TableStatus> {
        let mut out: Vec<TableStatus> = self
            .tables
            .read()
            .values()
            .map(|t| Self::status_of(t))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn status_of(table: &ColumnarTable) -> TableStatus {
        TableStatus {
            name: table.name.clone(),
            rows: table.rows(),
            bytes: table.bytes(),
            chunks: table.chunk_count(),
            partitions: table.partitions.len(),
            version: table.version,
            dictionary_columns: table
                .logical_schema
                .fields()
                .iter()
                .zip(&table.encodings)
                .filter(|(_, e)| e.is_dictionary())
                .map(|(f, _)| f.name().clone())
                .collect(),
        }
    }
}
