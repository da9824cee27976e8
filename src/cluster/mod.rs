//! The cluster: its nodes (each with a memory budget), the placement of store
//! partitions on nodes, and the registry of loaded table snapshots. A new
//! snapshot (a load, a refresh, a propagated batch) is published in one step,
//! so a query sees the old table or the new one, never a mix.
//!
//! The cluster holds data, not names: the catalog decides which tables exist
//! and what they are; the cluster keeps the snapshots of those that are
//! loaded, keyed by name. Snapshots are built by the load service (`load`)
//! with [`Cluster::builder`].
//!
//! Everything runs in-process for now; a node is an accounting and placement
//! unit. Distribution across processes (`datafusion-distributed`) will route each
//! partition's scan to the process that owns its node.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::Schema;
use parking_lot::RwLock;

use crate::catalog::TableName;
use crate::config::EngineConfig;
use crate::error::Result;
use crate::store::{ChangeSet, ColumnarTable, Layout, NodeMemory, TableBuilder};

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

#[derive(Debug)]
pub struct Cluster {
    config: EngineConfig,
    nodes: Vec<Arc<NodeMemory>>,
    tables: RwLock<HashMap<TableName, Arc<ColumnarTable>>>,
}

impl Cluster {
    pub fn new(config: EngineConfig) -> Self {
        let nodes = (0..config.shape.nodes)
            .map(|id| NodeMemory::new(id, config.shape.memory_per_node))
            .collect();
        Cluster {
            config,
            nodes,
            tables: RwLock::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
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

    /// A builder for a new version of `name` on this cluster's nodes.
    pub fn builder(&self, name: &TableName, schema: &Schema, layout: Layout) -> TableBuilder {
        let version = self.table(name).map(|t| t.version + 1).unwrap_or(1);
        TableBuilder::new(
            name.clone(),
            version,
            schema,
            layout,
            &self.partition_nodes(),
            &self.nodes,
            self.config.chunk_rows,
            self.config.dictionary_max_ratio,
        )
    }

    /// A builder for the next version of a table laid out by file, keeping
    /// the chunks of every file but the `removed` ones.
    pub fn refresh_builder(
        &self,
        current: &ColumnarTable,
        removed: &std::collections::HashSet<String>,
    ) -> TableBuilder {
        TableBuilder::from_table(current, removed, &self.nodes, self.config.chunk_rows)
    }

    /// Publish a snapshot under its name, replacing any previous one (whose
    /// memory is given back when the last query reading it ends).
    pub fn publish(&self, table: ColumnarTable) -> TableStatus {
        let status = Self::status_of(&table);
        self.tables
            .write()
            .insert(table.name.clone(), Arc::new(table));
        status
    }

    /// Publish `next` as the new snapshot of `name` if `current` is still the
    /// published one; `false` when the table was unloaded or replaced since.
    pub fn replace_if_current(
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
    pub fn rename(&self, name: &TableName, to: &TableName) {
        let mut tables = self.tables.write();
        let Some(current) = tables.remove(name) else {
            return;
        };
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
    }

    /// Drop a table's snapshot; its memory is given back when the last query
    /// reading it finishes. `false` when it was not loaded.
    pub fn unload(&self, name: &TableName) -> bool {
        self.tables.write().remove(name).is_some()
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

    pub fn status_of(table: &ColumnarTable) -> TableStatus {
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
