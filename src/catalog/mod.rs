//! The catalog: databases, table names and table definitions (schema, primary
//! key, placement keys, version). It is the single answer to "what tables exist"
//! for every other layer. It never reads or holds table data: the cluster's
//! storage (`store`) and, later, the row store and the lakehouse do that, keyed by
//! the [`TableName`]s defined here.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parking_lot::RwLock;
use thiserror::Error;

use crate::error::ErrorKind;

pub const DEFAULT_DATABASE: &str = "main";

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("table '{0}' does not exist")]
    TableNotFound(TableName),
    #[error("database '{0}' does not exist")]
    DatabaseNotFound(String),
    #[error("table '{0}' already exists (pass replace=True to replace it)")]
    TableExists(TableName),
    #[error("'{name}' is not a valid table name: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("table '{table}' has no column '{column}' (columns: {columns})")]
    ColumnNotFound {
        table: TableName,
        column: String,
        columns: String,
    },
}

impl CatalogError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::TableNotFound(_) | CatalogError::DatabaseNotFound(_) => {
                ErrorKind::TableNotFound
            }
            CatalogError::TableExists(_) => ErrorKind::TableExists,
            CatalogError::InvalidName { .. } => ErrorKind::Programming,
            CatalogError::ColumnNotFound { .. } => ErrorKind::ColumnNotFound,
        }
    }
}

/// A database-qualified table name, normalised the way SQL resolves identifiers:
/// unquoted parts are lower-cased, quoted parts (`"Name"` or `` `Name` ``) kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub database: String,
    pub table: String,
}

impl TableName {
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        TableName {
            database: database.into(),
            table: table.into(),
        }
    }

    /// Parse `table` or `database.table`.
    pub fn parse(text: &str, default_database: &str) -> Result<Self, CatalogError> {
        let invalid = |reason: &str| CatalogError::InvalidName {
            name: text.to_string(),
            reason: reason.to_string(),
        };
        let parts = split_identifiers(text).map_err(|r| invalid(&r))?;
        match parts.as_slice() {
            [table] => Ok(TableName::new(default_database, table.clone())),
            [database, table] => Ok(TableName::new(database.clone(), table.clone())),
            _ => Err(invalid("expected 'table' or 'database.table'")),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

fn split_identifiers(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        match chars.peek() {
            Some(&quote) if quote == '"' || quote == '`' => {
                chars.next();
                loop {
                    match chars.next() {
                        Some(c) if c == quote => {
                            if chars.peek() == Some(&quote) {
                                chars.next();
                                part.push(quote);
                            } else {
                                break;
                            }
                        }
                        Some(c) => part.push(c),
                        None => return Err("unterminated quoted identifier".into()),
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == '.' {
                        break;
                    }
                    if !(c.is_alphanumeric() || c == '_' || c == '$') {
                        return Err(format!("unexpected character '{c}' (quote the name)"));
                    }
                    part.push(c.to_ascii_lowercase());
                    chars.next();
                }
            }
        }
        if part.is_empty() {
            return Err("empty name".into());
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("unexpected character '{c}' after a quoted name")),
        }
    }
}

/// How a table's rows are spread over the cluster's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// By a hash of these columns (the primary key, or data placement keys).
    Hash(Vec<String>),
    /// Evenly, in arrival order, when the table has no key.
    RoundRobin,
}

/// What the catalog knows of a table: never its data.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: TableName,
    /// The schema users see (logical types, as loaded or declared).
    pub schema: SchemaRef,
    pub primary_key: Vec<String>,
    pub placement: Placement,
    /// Bumped every time the table is (re)loaded or its definition changes.
    pub version: u64,
}

impl TableDef {
    /// Check that every key column exists, naming the first that does not.
    pub fn validate_columns(&self) -> Result<(), CatalogError> {
        let mut keys: Vec<&String> = self.primary_key.iter().collect();
        if let Placement::Hash(columns) = &self.placement {
            keys.extend(columns.iter());
        }
        for column in keys {
            if self.schema.field_with_name(column).is_err() {
                return Err(CatalogError::ColumnNotFound {
                    table: self.name.clone(),
                    column: column.clone(),
                    columns: self
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }
}

/// Databases and the definitions of their tables.
#[derive(Debug)]
pub struct Catalog {
    databases: RwLock<BTreeMap<String, BTreeMap<String, Arc<TableDef>>>>,
}

impl Default for Catalog {
    fn default() -> Self {
        let mut databases = BTreeMap::new();
        databases.insert(DEFAULT_DATABASE.to_string(), BTreeMap::new());
        Catalog {
            databases: RwLock::new(databases),
        }
    }
}

impl Catalog {
    pub fn database_names(&self) -> Vec<String> {
        self.databases.read().keys().cloned().collect()
    }

    pub fn has_database(&self, name: &str) -> bool {
        self.databases.read().contains_key(name)
    }

    /// Create a database; `Ok(false)` when it already existed.
    pub fn create_database(&self, name: &str) -> bool {
        let mut databases = self.databases.write();
        if databases.contains_key(name) {
            return false;
        }
        databases.insert(name.to_string(), BTreeMap::new());
        true
    }

    pub fn table_names(&self, database: &str) -> Vec<String> {
        self.databases
            .read()
            .get(database)
            .map(|tables| tables.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn table(&self, name: &TableName) -> Option<Arc<TableDef>> {
        self.databases
            .read()
            .get(&name.database)
            .and_then(|tables| tables.get(&name.table))
            .cloned()
    }

    pub fn require(&self, name: &TableName) -> Result<Arc<TableDef>, CatalogError> {
        self.table(name)
            .ok_or_else(|| CatalogError::TableNotFound(name.clone()))
    }

    /// Check that `name` may be created (or replaced when `replace`), without
    /// changing anything. Returns the version the new definition will carry.
    pub fn check_create(&self, name: &TableName, replace: bool) -> Result<u64, CatalogError> {
        let databases = self.databases.read();
        let tables = databases
            .get(&name.database)
            .ok_or_else(|| CatalogError::DatabaseNotFound(name.database.clone()))?;
        match tables.get(&name.table) {
            Some(_) if !replace => Err(CatalogError::TableExists(name.clone())),
            Some(existing) => Ok(existing.version + 1),
            None => Ok(1),
        }
    }

    /// Publish a definition, replacing any previous one; returns the previous.
    pub fn put(&self, def: TableDef) -> Result<Option<Arc<TableDef>>, CatalogError> {
        let mut databases = self.databases.write();
        let tables = databases
            .get_mut(&def.name.database)
            .ok_or_else(|| CatalogError::DatabaseNotFound(def.name.database.clone()))?;
        Ok(tables.insert(def.name.table.clone(), Arc::new(def)))
    }

    pub fn remove(&self, name: &TableName) -> Result<Arc<TableDef>, CatalogError> {
        let mut databases = self.databases.write();
        databases
            .get_mut(&name.database)
            .and_then(|tables| tables.remove(&name.table))
            .ok_or_else(|| CatalogError::TableNotFound(name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_sql_identifier_rules() {
        let n = TableName::parse("Orders", "main").unwrap();
        assert_eq!(n, TableName::new("main", "orders"));
        let n = TableName::parse("Shop.\"MixedCase\"", "main").unwrap();
        assert_eq!(n, TableName::new("shop", "MixedCase"));
        let n = TableName::parse("`a.b`", "main").unwrap();
        assert_eq!(n.table, "a.b");
        assert!(TableName::parse("a.b.c", "main").is_err());
        assert!(TableName::parse("", "main").is_err());
        assert!(TableName::parse("bad name", "main").is_err());
    }
}
