//! What an instance knows of its external tables at run time: each opened
//! table (its provider and data files, as last listed), what the cluster copy
//! of each loaded one was built from, when it was last brought up to date and
//! why its last automatic refresh failed, and the object stores they read.
//! Keyed by name; whether a name exists, and what it is, is the catalog's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::execution::object_store::DefaultObjectStoreRegistry;
use parking_lot::RwLock;

use super::external::ExternalTable;
use super::files::DataFile;
use crate::catalog::TableName;

/// What a loaded external table's cluster copy was built from.
#[derive(Debug, Clone)]
pub struct LoadedFiles {
    /// The Delta version loaded, if a Delta table.
    pub version: Option<i64>,
    pub files: Arc<Vec<DataFile>>,
    pub refreshed_at: Instant,
    /// Why the last automatic refresh failed, until one succeeds.
    pub refresh_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct ExternalTables {
    opened: RwLock<BTreeMap<TableName, ExternalTable>>,
    loaded: RwLock<BTreeMap<TableName, LoadedFiles>>,
    /// Loads and refreshes of external tables run one at a time, so two
    /// refreshes never diff against the same loaded version.
    load_lock: tokio::sync::Mutex<()>,
    stores: Arc<DefaultObjectStoreRegistry>,
}

impl ExternalTables {
    pub fn object_stores(&self) -> Arc<DefaultObjectStoreRegistry> {
        Arc::clone(&self.stores)
    }

    /// The table as last opened, if it was.
    pub fn opened(&self, name: &TableName) -> Option<ExternalTable> {
        self.opened.read().get(name).cloned()
    }

    pub fn set_opened(&self, table: ExternalTable) {
        self.opened.write().insert(table.def.name.clone(), table);
    }

    /// Held while an external table is loaded or refreshed.
    pub fn load_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.load_lock
    }

    pub fn loaded(&self, name: &TableName) -> Option<LoadedFiles> {
        self.loaded.read().get(name).cloned()
    }

    /// Record what the cluster copy of `name` now holds.
    pub fn set_loaded(&self, name: &TableName, version: Option<i64>, files: Arc<Vec<DataFile>>) {
        self.loaded.write().insert(
            name.clone(),
            LoadedFiles {
                version,
                files,
                refreshed_at: Instant::now(),
                refresh_error: None,
            },
        );
    }

    /// The cluster no longer holds a copy of `name`.
    pub fn set_unloaded(&self, name: &TableName) {
        self.loaded.write().remove(name);
    }

    /// The table is gone: forget everything about it.
    pub fn forget(&self, name: &TableName) {
        self.opened.write().remove(name);
        self.loaded.write().remove(name);
    }

    /// The table was renamed.
    pub fn rename(&self, from: &TableName, to: &TableName) {
        let mut opened = self.opened.write();
        if let Some(mut table) = opened.remove(from) {
            table.def.name = to.clone();
            opened.insert(to.clone(), table);
        }
        let mut loaded = self.loaded.write();
        if let Some(files) = loaded.remove(from) {
            loaded.insert(to.clone(), files);
        }
    }

    /// Of `candidates` (loaded tables with their refresh interval), those
    /// whose interval has run out since they were last brought up to date
    /// (or last tried).
    pub fn refresh_due(&self, candidates: &[(TableName, Duration)]) -> Vec<TableName> {
        let loaded = self.loaded.read();
        candidates
            .iter()
            .filter(|(name, interval)| {
                loaded
                    .get(name)
                    .is_none_or(|l| l.refreshed_at.elapsed() >= *interval)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// An automatic refresh failed: keep the loaded version, say why, and
    /// try again after another interval.
    pub fn set_refresh_error(&self, name: &TableName, reason: String) {
        if let Some(loaded) = self.loaded.write().get_mut(name) {
            loaded.refreshed_at = Instant::now();
            loaded.refresh_error = Some(reason);
        }
    }
}
