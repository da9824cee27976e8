//! DDL on the database file: SQLite tables and their persisted catalog
//! entries change together, in one transaction. The catalog has already
//! checked the names; this checks what SQLite and the change log need of a
//! definition, and returns the definitions as they now are.

use std::collections::BTreeSet;
use std::sync::Arc;

use rusqlite::{Connection, params};

use super::log::{create_triggers, drop_triggers};
use super::types::sqlite_column;
use super::{DbConnection, MAX_KEY_COLUMNS, Result, RowStoreError, quote, quoted_table};
use crate::catalog::{self, ColumnDef, Entry, RowTable, SqlType, TableName};
use crate::error::codes;

/// The `CREATE TABLE` SQLite runs for a definition.
fn create_sql(table: &RowTable) -> String {
    let rowid_key = table.integer_key();
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = quote(&c.name);
            let (storage, check) = sqlite_column(&c.sql_type, &name);
            let mut text = format!("{name} {storage}");
            if rowid_key && table.primary_key == [i] {
                // A rowid alias: the table is clustered on its key.
                text.push_str(" PRIMARY KEY");
                if !c.auto_increment {
                    text.push_str(" NOT NULL");
                }
            } else if !c.nullable || table.primary_key.contains(&i) {
                text.push_str(" NOT NULL");
            }
            if let Some(check) = check {
                text.push_str(&format!(" CHECK ({check})"));
            }
            text
        })
        .collect();
    if !table.primary_key.is_empty() && !rowid_key {
        parts.push(format!(
            "PRIMARY KEY ({})",
            table
                .primary_key
                .iter()
                .map(|&i| quote(&table.columns[i].name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    format!(
        "CREATE TABLE {} ({}) STRICT",
        quoted_table(&table.name),
        parts.join(", ")
    )
}

/// Check what a new definition must satisfy.
fn check_definition(table: &RowTable) -> Result<()> {
    let name = &table.name;
    if table.columns.is_empty() {
        return Err(RowStoreError::definition(
            name,
            codes::TABLE_MUST_HAVE_COLUMNS,
            "a table needs at least one column",
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &table.columns {
        if c.name.starts_with("__lw_") {
            return Err(RowStoreError::definition(
                name,
                crate::error::MySqlCode::new(1166, "42000"),
                format!(
                    "column names starting with __lw_ are reserved ('{}')",
                    c.name
                ),
            ));
        }
        if !seen.insert(c.name.clone()) {
            return Err(RowStoreError::definition(
                name,
                codes::DUP_FIELDNAME,
                format!("column '{}' is declared twice", c.name),
            ));
        }
        if c.auto_increment
            && (table.primary_key.len() != 1
                || table.columns[table.primary_key[0]].name != c.name
                || !matches!(c.sql_type, SqlType::Int | SqlType::BigInt))
        {
            return Err(RowStoreError::definition(
                name,
                codes::WRONG_AUTO_KEY,
                format!(
                    "AUTO_INCREMENT column '{}' must be the table's only primary key column and an INT or BIGINT",
                    c.name
                ),
            ));
        }
    }
    Ok(())
}

fn encoded(table: &RowTable) -> String {
    catalog::persist::encode(&Entry::Row(Arc::new(table.clone())))
        .expect("row tables are persisted")
        .1
}

fn update_definition(conn: &Connection, table: &RowTable, action: &str) -> Result<()> {
    conn.execute(
        "UPDATE _lw_catalog SET db = ?, name = ?, definition = ? WHERE id = ?",
        params![
            table.name.database,
            table.name.table,
            encoded(table),
            table.id
        ],
    )
    .map(|_| ())
    .map_err(|e| RowStoreError::sqlite(&table.name, action, e))
}

impl DbConnection {
    pub fn create_database(self: &Arc<Self>, name: &str) -> Result<()> {
        let table = TableName::new(name, "");
        self.ddl(&table, |conn| {
            conn.execute("INSERT INTO _lw_databases VALUES (?)", [name])
                .map(|_| ())
                .map_err(|e| RowStoreError::sqlite(&table, "CREATE DATABASE", e))
        })
    }

    /// `DROP DATABASE`: its row-store tables' SQLite tables and every entry.
    pub fn drop_database(self: &Arc<Self>, name: &str, entries: &[Entry]) -> Result<()> {
        let table = TableName::new(name, "");
        self.ddl(&table, |conn| {
            let sqlite_error = |e| RowStoreError::sqlite(&table, "DROP DATABASE", e);
            for entry in entries {
                if let Entry::Row(row) = entry {
                    conn.execute_batch(&format!(
                        "DROP TABLE IF EXISTS {}",
                        quoted_table(&row.name)
                    ))
                    .map_err(sqlite_error)?;
                }
            }
            conn.execute("DELETE FROM _lw_catalog WHERE db = ?", [name])
                .and_then(|_| conn.execute("DELETE FROM _lw_databases WHERE name = ?", [name]))
                .map(|_| ())
                .map_err(sqlite_error)
        })
    }

    /// Create a row-store table; returns it with the id the catalog keeps.
    pub fn create_table(self: &Arc<Self>, table: &RowTable) -> Result<RowTable> {
        check_definition(table)?;
        let name = &table.name;
        let sqlite_name = super::sqlite_name(name);
        let id = self.ddl(name, |conn| {
            let exists: bool = conn
                .query_row(
                    "SELECT count(*) > 0 FROM sqlite_schema WHERE name = ? COLLATE NOCASE",
                    [&sqlite_name],
                    |r| r.get(0),
                )
                .map_err(|e| RowStoreError::sqlite(name, "CREATE TABLE", e))?;
            if exists {
                return Err(RowStoreError::TableExists(name.clone()));
            }
            conn.execute_batch(&create_sql(table))
                .map_err(|e| RowStoreError::sqlite(name, "CREATE TABLE", e))?;
            conn.execute(
                "INSERT INTO _lw_catalog(db, name, kind, definition) VALUES (?, ?, 'table', ?)",
                params![name.database, name.table, encoded(table)],
            )
            .map_err(|e| RowStoreError::sqlite(name, "CREATE TABLE", e))?;
            Ok(conn.last_insert_rowid())
        })?;
        Ok(RowTable {
            id,
            ..table.clone()
        })
    }

    pub fn drop_table(self: &Arc<Self>, table: &RowTable) -> Result<()> {
        let name = &table.name;
        self.ddl(name, |conn| {
            conn.execute_batch(&format!("DROP TABLE {}", quoted_table(name)))
                .and_then(|_| conn.execute("DELETE FROM _lw_catalog WHERE id = ?", [table.id]))
                .map(|_| ())
                .map_err(|e| RowStoreError::sqlite(name, "DROP TABLE", e))
        })
    }

    /// Persist a new entry that has no SQLite table (an external table or a
    /// view); returns its id.
    pub fn insert_entry(self: &Arc<Self>, entry: &Entry) -> Result<i64> {
        let name = entry.name();
        let (kind, definition) =
            catalog::persist::encode(entry).expect("only persisted entries are saved");
        self.ddl(name, |conn| {
            conn.execute(
                "INSERT INTO _lw_catalog(db, name, kind, definition) VALUES (?, ?, ?, ?)",
                params![name.database, name.table, kind, definition],
            )
            .map_err(|e| RowStoreError::sqlite(name, "saving the definition", e))?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// Persist a changed definition of an entry (same id).
    pub fn update_entry(self: &Arc<Self>, entry: &Entry) -> Result<()> {
        let name = entry.name();
        let (_, definition) =
            catalog::persist::encode(entry).expect("only persisted entries are saved");
        self.ddl(name, |conn| {
            conn.execute(
                "UPDATE _lw_catalog SET db = ?, name = ?, definition = ? WHERE id = ?",
                params![name.database, name.table, definition, entry.id()],
            )
            .map(|_| ())
            .map_err(|e| RowStoreError::sqlite(name, "saving the definition", e))
        })
    }

    pub fn delete_entry(self: &Arc<Self>, entry: &Entry) -> Result<()> {
        let name = entry.name();
        self.ddl(name, |conn| {
            conn.execute("DELETE FROM _lw_catalog WHERE id = ?", [entry.id()])
                .map(|_| ())
                .map_err(|e| RowStoreError::sqlite(name, "removing the definition", e))
        })
    }

    /// `TRUNCATE`: a DELETE of every row, so that a loaded table's triggers log
    /// it and the cluster follows like any other change.
    pub fn truncate(self: &Arc<Self>, table: &RowTable) -> Result<u64> {
        let name = &table.name;
        self.ddl(name, |conn| {
            conn.execute(&format!("DELETE FROM {}", quoted_table(name)), [])
                .map(|n| n as u64)
                .map_err(|e| RowStoreError::sqlite(name, "TRUNCATE", e))
        })
    }

    /// `ALTER TABLE ... RENAME TO`. SQLite renames the capture triggers too.
    pub fn rename_table(self: &Arc<Self>, table: &RowTable, to: &TableName) -> Result<RowTable> {
        let renamed = RowTable {
            name: to.clone(),
            ..table.clone()
        };
        self.ddl(&table.name, |conn| {
            conn.execute_batch(&format!(
                "ALTER TABLE {} RENAME TO {}",
                quoted_table(&table.name),
                quoted_table(to)
            ))
            .map_err(|e| RowStoreError::sqlite(&table.name, "RENAME", e))?;
            update_definition(conn, &renamed, "RENAME")
        })?;
        Ok(renamed)
    }

    /// `ALTER TABLE ... ADD COLUMN` (nullable, filled with NULL).
    pub fn add_column(self: &Arc<Self>, table: &RowTable, column: ColumnDef) -> Result<RowTable> {
        let name = &table.name;
        if table.column_index(&column.name).is_some() {
            return Err(RowStoreError::definition(
                name,
                codes::DUP_FIELDNAME,
                format!("column '{}' already exists", column.name),
            ));
        }
        if !column.nullable || column.auto_increment {
            return Err(RowStoreError::definition(
                name,
                codes::NOT_SUPPORTED_YET,
                format!(
                    "an added column must be nullable ('{}' is NOT NULL or AUTO_INCREMENT)",
                    column.name
                ),
            ));
        }
        let quoted = quote(&column.name);
        let (storage, check) = sqlite_column(&column.sql_type, &quoted);
        let check = check.map(|c| format!(" CHECK ({c})")).unwrap_or_default();
        let mut columns = table.columns.clone();
        columns.push(column);
        let changed = RowTable {
            columns,
            ..table.clone()
        };
        self.ddl(name, |conn| {
            conn.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {quoted} {storage}{check}",
                quoted_table(name)
            ))
            .map_err(|e| RowStoreError::sqlite(name, "ADD COLUMN", e))?;
            update_definition(conn, &changed, "ADD COLUMN")
        })?;
        Ok(changed)
    }

    /// `ALTER TABLE ... DROP COLUMN` (not a key column).
    pub fn drop_column(self: &Arc<Self>, table: &RowTable, column: &str) -> Result<RowTable> {
        let name = &table.name;
        let Some(index) = table.column_index(column) else {
            return Err(RowStoreError::definition(
                name,
                codes::CANT_DROP_FIELD_OR_KEY,
                format!("column '{column}' does not exist"),
            ));
        };
        if table.primary_key.contains(&index) {
            return Err(RowStoreError::definition(
                name,
                codes::NOT_SUPPORTED_YET,
                format!("column '{column}' is part of the primary key"),
            ));
        }
        if table.columns.len() == 1 {
            return Err(RowStoreError::definition(
                name,
                codes::CANT_REMOVE_ALL_FIELDS,
                "cannot drop a table's only column",
            ));
        }
        let mut columns = table.columns.clone();
        columns.remove(index);
        let changed = RowTable {
            columns,
            primary_key: table
                .primary_key
                .iter()
                .map(|&k| if k > index { k - 1 } else { k })
                .collect(),
            ..table.clone()
        };
        self.ddl(name, |conn| {
            conn.execute_batch(&format!(
                "ALTER TABLE {} DROP COLUMN {}",
                quoted_table(name),
                quote(column)
            ))
            .map_err(|e| RowStoreError::sqlite(name, "DROP COLUMN", e))?;
            update_definition(conn, &changed, "DROP COLUMN")
        })?;
        Ok(changed)
    }

    /// Start (or stop) capturing a table's changes: create (drop) its triggers
    /// and persist the loaded flag, in one transaction.
    pub fn set_capture(self: &Arc<Self>, table: &RowTable, on: bool) -> Result<RowTable> {
        let name = &table.name;
        if on && table.primary_key.is_empty() {
            return Err(RowStoreError::definition(
                name,
                codes::REQUIRES_PRIMARY_KEY,
                "a table needs a primary key to be loaded into the cluster \
                 (changes are propagated by key)",
            ));
        }
        if on && table.primary_key.len() > MAX_KEY_COLUMNS {
            return Err(RowStoreError::definition(
                name,
                codes::NOT_SUPPORTED_YET,
                format!("a loaded table's primary key may have at most {MAX_KEY_COLUMNS} columns"),
            ));
        }
        let changed = RowTable {
            loaded: on,
            ..table.clone()
        };
        self.ddl(name, |conn| {
            let sqlite_error = |e| RowStoreError::sqlite(name, "SECONDARY_LOAD", e);
            for sql in drop_triggers(table) {
                conn.execute_batch(&sql).map_err(sqlite_error)?;
            }
            if on {
                for sql in create_triggers(table) {
                    conn.execute_batch(&sql).map_err(sqlite_error)?;
                }
            }
            update_definition(conn, &changed, "SECONDARY_LOAD")
        })?;
        Ok(changed)
    }
}
