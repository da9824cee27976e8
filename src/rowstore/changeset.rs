//! Row changesets: what one transaction did to the row store's tables, as the
//! final image of every row it inserted or updated and the row id of every
//! row it deleted. A group's primary builds one at commit from what SQLite's
//! update hook saw on the session's connection ([`Capture`]), and every other
//! member applies it to its own file ([`apply`]): replaying row images, not
//! statements, so that `RAND()`, `NOW()`, auto-increment values and the
//! order of concurrent sessions cannot make members differ.
//!
//! Values are SQLite's own (integer, real, text, blob, null), so nothing is
//! converted on the way; row ids travel too, so every member's tables have
//! the same row ids (the capture triggers and the change log key on them).
//!
//! This module writes no position and decides no policy: the caller (the
//! commit gate, the group's state machine) owns both.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;
use rusqlite::hooks::Action;
use rusqlite::types::{Value, ValueRef};
use serde::{Deserialize, Serialize};

use super::{Result, RowStoreError, quote};

/// One SQLite value, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl SqlValue {
    fn read(value: ValueRef<'_>) -> SqlValue {
        match value {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Integer(i),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(i) => Value::Integer(*i),
            SqlValue::Real(f) => Value::Real(*f),
            SqlValue::Text(t) => Value::Text(t.clone()),
            SqlValue::Blob(b) => Value::Blob(b.clone()),
        }
    }
}

/// The changes of one table: rows by row id, as they are after the
/// transaction (`upserts`), and the row ids it removed (`deletes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableChanges {
    /// The SQLite table name.
    pub table: String,
    /// The columns of every upserted row, in order (row id not included).
    pub columns: Vec<String>,
    pub upserts: Vec<(i64, Vec<SqlValue>)>,
    pub deletes: Vec<i64>,
}

/// What one transaction changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Changeset {
    pub tables: Vec<TableChanges>,
}

impl Changeset {
    pub fn is_empty(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.upserts.is_empty() && t.deletes.is_empty())
    }

    /// Rows inserted, updated or deleted.
    pub fn rows(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.upserts.len() + t.deletes.len())
            .sum()
    }

    /// A rough size in bytes (for the propagator's batching hint).
    pub fn bytes(&self) -> u64 {
        let value = |v: &SqlValue| match v {
            SqlValue::Text(t) => t.len() as u64 + 8,
            SqlValue::Blob(b) => b.len() as u64 + 8,
            _ => 8,
        };
        self.tables
            .iter()
            .map(|t| {
                t.upserts
                    .iter()
                    .map(|(_, row)| 8 + row.iter().map(value).sum::<u64>())
                    .sum::<u64>()
                    + 8 * t.deletes.len() as u64
            })
            .sum()
    }
}

/// Which tables a transaction touched, as the update hook reports them on
/// one connection: data tables with the row ids it changed, and whether it
/// changed the catalog itself (DDL, which a changeset cannot carry).
#[derive(Debug, Default)]
struct Touched {
    rows: BTreeMap<String, BTreeSet<i64>>,
    catalog: bool,
}

/// The update hook's record for one connection, taken at each commit and
/// cleared at each rollback.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    touched: Arc<Mutex<Touched>>,
}

/// What a finished transaction leaves for its commit: the data changes and
/// whether the catalog changed too.
#[derive(Debug, Default)]
pub struct Captured {
    pub changes: Changeset,
    pub catalog_changed: bool,
}

impl Capture {
    /// Start recording every row change made through `conn`.
    pub fn install(&self, conn: &mut Connection) {
        let touched = Arc::clone(&self.touched);
        conn.update_hook(Some(
            move |_action: Action, _db: &str, table: &str, rowid: i64| {
                let mut touched = touched.lock();
                if table.starts_with("_lw_catalog") || table.starts_with("_lw_databases") {
                    touched.catalog = true;
                } else if !table.starts_with("_lw_") && !table.starts_with("sqlite_") {
                    touched
                        .rows
                        .entry(table.to_string())
                        .or_default()
                        .insert(rowid);
                }
            },
        ))
        .ok();
    }

    /// Forget what was recorded (the transaction rolled back).
    pub fn clear(&self) {
        *self.touched.lock() = Touched::default();
    }

    /// Build the changeset of the open transaction on `conn` (which must be
    /// the connection the hook is installed on, before its COMMIT): each
    /// touched row as it now is, or its deletion. Clears the record.
    pub fn take(&self, conn: &Connection) -> Result<Captured> {
        let touched = std::mem::take(&mut *self.touched.lock());
        let mut changes = Changeset::default();
        for (table, rowids) in touched.rows {
            changes.tables.push(read_rows(conn, &table, &rowids)?);
        }
        Ok(Captured {
            changes,
            catalog_changed: touched.catalog,
        })
    }
}

fn sqlite_error(table: &str, action: &str, e: rusqlite::Error) -> RowStoreError {
    RowStoreError::sqlite_on(table, action, e)
}

/// The current image of `rowids` in `table`: present rows are upserts,
/// missing ones deletes.
fn read_rows(conn: &Connection, table: &str, rowids: &BTreeSet<i64>) -> Result<TableChanges> {
    let action = "reading the changed rows for the group";
    let sql = format!(
        "SELECT _rowid_ AS _lw_rowid, * FROM {} WHERE _rowid_ = ?1",
        quote(table)
    );
    let mut statement = conn
        .prepare_cached(&sql)
        .map_err(|e| sqlite_error(table, action, e))?;
    let columns: Vec<String> = statement
        .column_names()
        .skip(1)
        .map(str::to_string)
        .collect();
    let width = columns.len();
    let mut changes = TableChanges {
        table: table.to_string(),
        columns,
        upserts: Vec::new(),
        deletes: Vec::new(),
    };
    for &rowid in rowids {
        let mut rows = statement
            .query([rowid])
            .map_err(|e| sqlite_error(table, action, e))?;
        match rows.next().map_err(|e| sqlite_error(table, action, e))? {
            Some(row) => {
                let mut values = Vec::with_capacity(width);
                for i in 1..=width {
                    let value = row.get_ref(i).map_err(|e| sqlite_error(table, action, e))?;
                    values.push(SqlValue::read(value));
                }
                changes.upserts.push((rowid, values));
            }
            None => changes.deletes.push(rowid),
        }
    }
    Ok(changes)
}

/// Whether `table`'s INTEGER PRIMARY KEY is its row id (then the row id is
/// not named separately on insert).
fn rowid_alias(conn: &Connection, table: &str) -> Result<Option<String>> {
    let action = "reading the table's columns";
    let mut statement = conn
        .prepare(&format!("PRAGMA table_info({})", quote(table)))
        .map_err(|e| sqlite_error(table, action, e))?;
    let mut keys = Vec::new();
    let mut rows = statement
        .query([])
        .map_err(|e| sqlite_error(table, action, e))?;
    while let Some(row) = rows.next().map_err(|e| sqlite_error(table, action, e))? {
        let name: String = row.get(1).map_err(|e| sqlite_error(table, action, e))?;
        let declared: String = row.get(2).map_err(|e| sqlite_error(table, action, e))?;
        let pk: i64 = row.get(5).map_err(|e| sqlite_error(table, action, e))?;
        if pk > 0 {
            keys.push((name, declared));
        }
    }
    Ok(match keys.as_slice() {
        [(name, declared)] if declared.eq_ignore_ascii_case("INTEGER") => Some(name.clone()),
        _ => None,
    })
}

/// Apply `changes` on `conn` inside the caller's open transaction: deletes
/// first, then every row image with its row id (replacing whatever holds
/// that row id or key). The connection's own triggers fire as for any
/// write, so the member's change log (and its propagator) see the changes.
pub fn apply(conn: &Connection, changes: &Changeset) -> Result<()> {
    let action = "applying a replicated change";
    for table in &changes.tables {
        let name = &table.table;
        if !table.deletes.is_empty() {
            let mut delete = conn
                .prepare_cached(&format!("DELETE FROM {} WHERE _rowid_ = ?1", quote(name)))
                .map_err(|e| sqlite_error(name, action, e))?;
            for rowid in &table.deletes {
                delete
                    .execute([rowid])
                    .map_err(|e| sqlite_error(name, action, e))?;
            }
        }
        if table.upserts.is_empty() {
            continue;
        }
        let alias = rowid_alias(conn, name)?;
        let named_rowid = alias
            .as_ref()
            .is_none_or(|a| !table.columns.iter().any(|c| c == a));
        let mut columns: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
        if named_rowid {
            columns.insert(0, "_rowid_".into());
        }
        let slots = (1..=columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT OR REPLACE INTO {} ({}) VALUES ({slots})",
            quote(name),
            columns.join(", ")
        );
        let mut insert = conn
            .prepare_cached(&sql)
            .map_err(|e| sqlite_error(name, action, e))?;
        let mut values: Vec<Value> = Vec::with_capacity(columns.len());
        for (rowid, row) in &table.upserts {
            values.clear();
            if named_rowid {
                values.push(Value::Integer(*rowid));
            }
            values.extend(row.iter().map(SqlValue::to_value));
            insert
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(|e| sqlite_error(name, action, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB, r REAL);
             CREATE TABLE k (a TEXT, b INTEGER, PRIMARY KEY (a, b));",
        )
        .unwrap();
        conn
    }

    #[test]
    fn a_captured_transaction_applied_elsewhere_gives_the_same_rows() {
        let mut primary = database();
        let capture = Capture::default();
        capture.install(&mut primary);
        primary
            .execute_batch(
                "INSERT INTO t VALUES (1, 'one', x'00ff', 1.5), (2, 'two', NULL, NULL), (3, 'x', NULL, 0);
                 INSERT INTO k VALUES ('a', 1), ('b', 2);",
            )
            .unwrap();
        capture.clear();
        let secondary = database();
        secondary
            .execute_batch(
                "INSERT INTO t VALUES (1, 'one', x'00ff', 1.5), (2, 'two', NULL, NULL), (3, 'x', NULL, 0);
                 INSERT INTO k VALUES ('a', 1), ('b', 2);",
            )
            .unwrap();

        primary.execute_batch("BEGIN").unwrap();
        primary
            .execute_batch(
                "UPDATE t SET v = 'uno' WHERE id = 1; DELETE FROM t WHERE id = 2;
                 INSERT INTO t VALUES (4, 'four', x'01', -2.25);
                 INSERT INTO t VALUES (5, 'gone', NULL, NULL); DELETE FROM t WHERE id = 5;
                 REPLACE INTO k VALUES ('a', 1); DELETE FROM k WHERE a = 'b';
                 INSERT INTO k VALUES ('c', 3);",
            )
            .unwrap();
        let captured = capture.take(&primary).unwrap();
        primary.execute_batch("COMMIT").unwrap();
        assert!(!captured.catalog_changed);
        // t: rows 1, 2, 4 and 5 (inserted and deleted: a deletion); k: the
        // replacing row, the deleted one and the new one.
        assert_eq!(captured.changes.rows(), 7);

        // Through the wire format, as a group entry carries it.
        let bytes = postcard::to_stdvec(&captured.changes).unwrap();
        let changes: Changeset = postcard::from_bytes(&bytes).unwrap();
        secondary.execute_batch("BEGIN").unwrap();
        apply(&secondary, &changes).unwrap();
        secondary.execute_batch("COMMIT").unwrap();

        let dump = |conn: &Connection, sql: &str| -> Vec<String> {
            let mut s = conn.prepare(sql).unwrap();
            s.query_map([], |row| {
                let n = row.as_ref().column_count();
                Ok((0..n)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
        };
        for sql in [
            "SELECT _rowid_, * FROM t ORDER BY id",
            "SELECT _rowid_, * FROM k ORDER BY a, b",
        ] {
            assert_eq!(dump(&primary, sql), dump(&secondary, sql), "{sql}");
        }
        assert_eq!(
            dump(&secondary, "SELECT v FROM t WHERE id = 1"),
            ["Text([117, 110, 111])"]
        );
    }

    #[test]
    fn a_rolled_back_transaction_leaves_nothing_to_replicate() {
        let mut conn = database();
        let capture = Capture::default();
        capture.install(&mut conn);
        conn.execute_batch("BEGIN; INSERT INTO t VALUES (1, 'a', NULL, NULL); ROLLBACK")
            .unwrap();
        capture.clear();
        conn.execute_batch("BEGIN").unwrap();
        let captured = capture.take(&conn).unwrap();
        assert!(captured.changes.is_empty());
    }
}
