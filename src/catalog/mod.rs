//! The catalog: the one namespace of an instance. Every name is exactly one
//! [`Entry`]: a row-store table, a table that lives only in the cluster, an
//! external table or a view. The catalog alone decides whether a name exists
//! and what it is; every other layer asks it, and a statement resolves each
//! name once, here.
//!
//! It holds definitions, never data: rows are the row store's, the cluster's
//! or the lakehouse's business, keyed by the names defined here. The catalog
//! does not write the database file either: the row store persists entries
//! (in the form [`persist`] gives them) in the same SQLite transaction as the
//! DDL they describe, and the caller then publishes the change here, holding
//! [`Catalog::ddl`] so that no two DDL statements interleave.

mod entry;
mod name;
pub mod persist;
mod types;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::RwLock;
use thiserror::Error;

use crate::error::{ErrorKind, MySqlCode, codes};

pub use entry::{
    ClusterTable, CsvOptions, Entry, EntryKind, ExternalTableDef, FileFormat, Placement, RowTable,
    View, is_secret,
};
pub use name::{DEFAULT_DATABASE, TableName};

/// The hidden column a row-store scan adds first when asked for row ids
/// (UPDATE and DELETE are planned over it).
pub const ROWID_COLUMN: &str = "__lw_rowid";
pub use types::{ColumnDef, MAX_DECIMAL_PRECISION, SqlType};

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("table '{0}' does not exist")]
    TableNotFound(TableName),
    #[error("unknown database '{0}'")]
    DatabaseNotFound(String),
    #[error("database '{0}' already exists")]
    DatabaseExists(String),
    #[error("'{name}' already exists as {}", kind.article())]
    TableExists { name: TableName, kind: EntryKind },
    #[error("'{name}' is not a valid table name: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("table '{table}' has no column '{column}' (columns: {columns})")]
    ColumnNotFound {
        table: TableName,
        column: String,
        columns: String,
    },
    #[error("'{name}' is {}, not {wanted}", kind.article())]
    WrongKind {
        name: TableName,
        kind: EntryKind,
        wanted: &'static str,
    },
    #[error("view '{0}' refers to itself (directly or through other views)")]
    ViewRecursion(TableName),
    #[error("the catalog entry of '{name}' in the database file cannot be read: {reason}")]
    Corrupt { name: TableName, reason: String },
}

impl CatalogError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::TableNotFound(_) | CatalogError::DatabaseNotFound(_) => {
                ErrorKind::TableNotFound
            }
            CatalogError::TableExists { .. } | CatalogError::DatabaseExists(_) => {
                ErrorKind::TableExists
            }
            CatalogError::InvalidName { .. }
            | CatalogError::WrongKind { .. }
            | CatalogError::ViewRecursion(_) => ErrorKind::Programming,
            CatalogError::ColumnNotFound { .. } => ErrorKind::ColumnNotFound,
            CatalogError::Corrupt { .. } => ErrorKind::Operational,
        }
    }

    pub fn code(&self) -> MySqlCode {
        match self {
            CatalogError::TableNotFound(_) => codes::NO_SUCH_TABLE,
            CatalogError::DatabaseNotFound(_) => codes::BAD_DB,
            CatalogError::DatabaseExists(_) => codes::DB_CREATE_EXISTS,
            CatalogError::TableExists { .. } => codes::TABLE_EXISTS,
            CatalogError::InvalidName { .. } => codes::WRONG_TABLE_NAME,
            CatalogError::ColumnNotFound { .. } => codes::BAD_FIELD,
            CatalogError::WrongKind { .. } => codes::WRONG_OBJECT,
            CatalogError::ViewRecursion(_) => codes::VIEW_RECURSIVE,
            CatalogError::Corrupt { .. } => codes::UNKNOWN_ERROR,
        }
    }
}

#[derive(Debug, Default)]
struct Namespace {
    databases: BTreeMap<String, BTreeMap<String, Entry>>,
    by_id: HashMap<i64, TableName>,
}

/// Ids of entries that are not persisted (cluster tables) start here, far
/// above the row ids SQLite gives persisted entries.
const TRANSIENT_ID_BASE: i64 = 1 << 40;

/// The namespace of one instance.
#[derive(Debug)]
pub struct Catalog {
    namespace: RwLock<Namespace>,
    /// Held by a DDL statement from its checks until it has published its
    /// change, so that two DDL statements never decide on the same state.
    ddl: tokio::sync::Mutex<()>,
    next_transient_id: AtomicI64,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new([DEFAULT_DATABASE.to_string()], Vec::new())
    }
}

impl Catalog {
    /// A catalog holding these databases and entries (as read from the
    /// database file); the default database always exists.
    pub fn new(databases: impl IntoIterator<Item = String>, entries: Vec<Entry>) -> Catalog {
        let mut namespace = Namespace::default();
        namespace
            .databases
            .insert(DEFAULT_DATABASE.to_string(), BTreeMap::new());
        for database in databases {
            namespace.databases.entry(database).or_default();
        }
        for entry in entries {
            let name = entry.name().clone();
            namespace.by_id.insert(entry.id(), name.clone());
            namespace
                .databases
                .entry(name.database.clone())
                .or_default()
                .insert(name.table, entry);
        }
        Catalog {
            namespace: RwLock::new(namespace),
            ddl: tokio::sync::Mutex::new(()),
            next_transient_id: AtomicI64::new(TRANSIENT_ID_BASE),
        }
    }

    /// Serialises DDL: hold it from the first check to the last publish.
    pub fn ddl(&self) -> &tokio::sync::Mutex<()> {
        &self.ddl
    }

    /// An id for an entry that is not persisted.
    pub fn transient_id(&self) -> i64 {
        self.next_transient_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn database_names(&self) -> Vec<String> {
        self.namespace.read().databases.keys().cloned().collect()
    }

    pub fn has_database(&self, name: &str) -> bool {
        self.namespace.read().databases.contains_key(name)
    }

    /// The entry a name stands for, if any.
    pub fn resolve(&self, name: &TableName) -> Option<Entry> {
        self.namespace
            .read()
            .databases
            .get(&name.database)
            .and_then(|tables| tables.get(&name.table))
            .cloned()
    }

    pub fn require(&self, name: &TableName) -> Result<Entry, CatalogError> {
        self.resolve(name).ok_or_else(|| self.not_found(name))
    }

    /// "no such table", or "no such database" when that is the reason.
    pub fn not_found(&self, name: &TableName) -> CatalogError {
        if self.has_database(&name.database) {
            CatalogError::TableNotFound(name.clone())
        } else {
            CatalogError::DatabaseNotFound(name.database.clone())
        }
    }

    pub fn by_id(&self, id: i64) -> Option<Entry> {
        let namespace = self.namespace.read();
        let name = namespace.by_id.get(&id)?;
        namespace
            .databases
            .get(&name.database)
            .and_then(|tables| tables.get(&name.table))
            .cloned()
    }

    /// The row-store table `name`, or why it is not one.
    pub fn row_table(&self, name: &TableName) -> Result<std::sync::Arc<RowTable>, CatalogError> {
        match self.require(name)? {
            Entry::Row(table) => Ok(table),
            other => Err(CatalogError::WrongKind {
                name: name.clone(),
                kind: other.kind(),
                wanted: "a table of the row store",
            }),
        }
    }

    /// Names in a database, sorted.
    pub fn names(&self, database: &str) -> Vec<String> {
        self.namespace
            .read()
            .databases
            .get(database)
            .map(|tables| tables.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every entry, in name order.
    pub fn entries(&self) -> Vec<Entry> {
        self.namespace
            .read()
            .databases
            .values()
            .flat_map(|tables| tables.values().cloned())
            .collect()
    }

    /// Check that `name` may be created: its database exists and no entry of
    /// any kind holds the name.
    pub fn check_free(&self, name: &TableName) -> Result<(), CatalogError> {
        let namespace = self.namespace.read();
        let tables = namespace
            .databases
            .get(&name.database)
            .ok_or_else(|| CatalogError::DatabaseNotFound(name.database.clone()))?;
        match tables.get(&name.table) {
            Some(existing) => Err(CatalogError::TableExists {
                name: name.clone(),
                kind: existing.kind(),
            }),
            None => Ok(()),
        }
    }

    pub fn create_database(&self, name: &str) -> Result<(), CatalogError> {
        let mut namespace = self.namespace.write();
        if namespace.databases.contains_key(name) {
            return Err(CatalogError::DatabaseExists(name.to_string()));
        }
        namespace
            .databases
            .insert(name.to_string(), BTreeMap::new());
        Ok(())
    }

    /// Remove a database and every entry in it; returns the entries.
    pub fn drop_database(&self, name: &str) -> Result<Vec<Entry>, CatalogError> {
        let mut namespace = self.namespace.write();
        let tables = namespace
            .databases
            .remove(name)
            .ok_or_else(|| CatalogError::DatabaseNotFound(name.to_string()))?;
        let entries: Vec<Entry> = tables.into_values().collect();
        for entry in &entries {
            namespace.by_id.remove(&entry.id());
        }
        Ok(entries)
    }

    /// Add an entry under a free name.
    pub fn insert(&self, entry: Entry) -> Result<(), CatalogError> {
        let mut namespace = self.namespace.write();
        let name = entry.name().clone();
        let tables = namespace
            .databases
            .get_mut(&name.database)
            .ok_or_else(|| CatalogError::DatabaseNotFound(name.database.clone()))?;
        if let Some(existing) = tables.get(&name.table) {
            return Err(CatalogError::TableExists {
                name,
                kind: existing.kind(),
            });
        }
        tables.insert(name.table.clone(), entry.clone());
        namespace.by_id.insert(entry.id(), name);
        Ok(())
    }

    /// Put `entry` in place of whatever holds its name (a changed
    /// definition, or a table replaced whole); returns what was there.
    pub fn replace(&self, entry: Entry) -> Result<Option<Entry>, CatalogError> {
        let mut namespace = self.namespace.write();
        let name = entry.name().clone();
        let tables = namespace
            .databases
            .get_mut(&name.database)
            .ok_or_else(|| CatalogError::DatabaseNotFound(name.database.clone()))?;
        let previous = tables.insert(name.table.clone(), entry.clone());
        if let Some(previous) = &previous {
            namespace.by_id.remove(&previous.id());
        }
        namespace.by_id.insert(entry.id(), name);
        Ok(previous)
    }

    /// Remove the entry of `name`, if it is still the one with id `id`.
    pub fn remove(&self, name: &TableName, id: i64) -> Option<Entry> {
        let mut namespace = self.namespace.write();
        let tables = namespace.databases.get_mut(&name.database)?;
        if tables.get(&name.table).map(Entry::id) != Some(id) {
            return None;
        }
        let removed = tables.remove(&name.table)?;
        namespace.by_id.remove(&id);
        Some(removed)
    }

    /// Move an entry to a free name.
    pub fn rename(&self, from: &TableName, to: &TableName) -> Result<Entry, CatalogError> {
        let mut namespace = self.namespace.write();
        if !namespace.databases.contains_key(&to.database) {
            return Err(CatalogError::DatabaseNotFound(to.database.clone()));
        }
        if let Some(existing) = namespace
            .databases
            .get(&to.database)
            .and_then(|t| t.get(&to.table))
        {
            return Err(CatalogError::TableExists {
                name: to.clone(),
                kind: existing.kind(),
            });
        }
        let entry = namespace
            .databases
            .get_mut(&from.database)
            .and_then(|tables| tables.remove(&from.table))
            .ok_or_else(|| CatalogError::TableNotFound(from.clone()))?;
        let moved = entry.renamed(to);
        namespace
            .databases
            .get_mut(&to.database)
            .expect("checked above")
            .insert(to.table.clone(), moved.clone());
        namespace.by_id.insert(moved.id(), to.clone());
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn view(id: i64, name: &str) -> Entry {
        Entry::View(Arc::new(View {
            id,
            name: TableName::parse(name, DEFAULT_DATABASE).unwrap(),
            sql: "SELECT 1".into(),
            database: DEFAULT_DATABASE.into(),
            columns: vec![],
        }))
    }

    #[test]
    fn one_name_one_entry_of_any_kind() {
        let catalog = Catalog::default();
        catalog.insert(view(1, "v")).unwrap();
        let again = catalog.insert(view(2, "v")).unwrap_err();
        assert_eq!(again.code(), codes::TABLE_EXISTS);
        assert!(again.to_string().contains("a view"), "{again}");
        assert!(catalog.check_free(&TableName::new("main", "v")).is_err());
        assert!(matches!(
            catalog.check_free(&TableName::new("nope", "v")),
            Err(CatalogError::DatabaseNotFound(_))
        ));
        let moved = catalog
            .rename(&TableName::new("main", "v"), &TableName::new("main", "w"))
            .unwrap();
        assert_eq!(moved.name().table, "w");
        assert_eq!(catalog.by_id(1).unwrap().name().table, "w");
        // A stale id does not remove a newer entry of the same name.
        assert!(catalog.remove(&TableName::new("main", "w"), 99).is_none());
        assert!(catalog.remove(&TableName::new("main", "w"), 1).is_some());
        assert!(catalog.resolve(&TableName::new("main", "w")).is_none());
    }
}
