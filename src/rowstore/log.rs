//! The change log and its consumers. Triggers append the key of every changed
//! row of a loaded table to `_lw_changes` in the writing transaction; a
//! consumer reads the log and the current rows of the keys it names in one
//! read snapshot ([`LogReader::snapshot`]) and records in the file how far it
//! has applied it (`_lw_consumers`). The log is pruned only below the lowest
//! position of every consumer, so a consumer that is away (a restarting
//! instance, later a replica) finds everything it has not applied.
//!
//! Sequence numbers are row ids: a new one is always above the largest
//! present, and pruning never deletes the largest, so they only grow
//! (cheaper than AUTOINCREMENT, which updates `sqlite_sequence` on every
//! logged row).

use std::time::{Duration, SystemTime};

use arrow::array::RecordBatch;
use rusqlite::Connection;
use rusqlite::types::{Value, ValueRef};

use super::scan::scan_where;
use super::types::ColumnDecoder;
use super::{Database, Result, RowStoreError, quote, quoted_table};
use crate::catalog::RowTable;

fn trigger_names(table: &RowTable) -> [String; 3] {
    ["ins", "upd", "del"].map(|op| quote(&format!("_lw_{op}_{}", table.id)))
}

pub(super) fn drop_triggers(table: &RowTable) -> Vec<String> {
    trigger_names(table)
        .iter()
        .map(|t| format!("DROP TRIGGER IF EXISTS {t}"))
        .collect()
}

/// The capture triggers: every changed key goes to the log in the writing
/// transaction. An update that changes the key logs the old key as well.
pub(super) fn create_triggers(table: &RowTable) -> Vec<String> {
    let [ins, upd, del] = trigger_names(table);
    let keys: Vec<String> = table
        .primary_key
        .iter()
        .map(|&i| quote(&table.columns[i].name))
        .collect();
    let slots = (0..keys.len())
        .map(|i| format!("k{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = |row: &str| {
        keys.iter()
            .map(|k| format!("{row}.{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let key_changed = keys
        .iter()
        .map(|k| format!("OLD.{k} IS NOT NEW.{k}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let id = table.id;
    let name = quoted_table(&table.name);
    vec![
        format!(
            "CREATE TRIGGER {ins} AFTER INSERT ON {name} BEGIN \
             INSERT INTO _lw_changes(tbl, {slots}) VALUES ({id}, {}); END",
            values("NEW")
        ),
        format!(
            "CREATE TRIGGER {upd} AFTER UPDATE ON {name} BEGIN \
             INSERT INTO _lw_changes(tbl, {slots}) VALUES ({id}, {}); \
             INSERT INTO _lw_changes(tbl, {slots}) SELECT {id}, {} WHERE {key_changed}; END",
            values("NEW"),
            values("OLD")
        ),
        format!(
            "CREATE TRIGGER {del} AFTER DELETE ON {name} BEGIN \
             INSERT INTO _lw_changes(tbl, {slots}) VALUES ({id}, {}); END",
            values("OLD")
        ),
    ]
}

fn log_error(action: &str, e: rusqlite::Error) -> RowStoreError {
    RowStoreError::sqlite_on("_lw_changes", action, e)
}

/// A consumer's recorded position in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerPosition {
    pub name: String,
    /// Every change up to this sequence number is applied.
    pub position: i64,
    pub updated_at: SystemTime,
}

/// A consumer's own connection to the log.
pub struct LogReader {
    conn: Connection,
    lock_wait: Duration,
}

impl LogReader {
    pub fn open(db: &Database) -> Result<LogReader> {
        Ok(LogReader {
            conn: db.connect()?,
            lock_wait: db.lock_wait(),
        })
    }

    /// The highest change sequence number committed (0 when none).
    pub fn last_seq(&self) -> Result<i64> {
        last_seq(&self.conn)
    }

    /// Run `read` in one read snapshot of the file: the log and the rows it
    /// names agree. A failure to end the snapshot is reported, not ignored.
    pub fn snapshot<T, E: From<RowStoreError>>(
        &self,
        read: impl FnOnce(&Snapshot<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn
            .execute_batch("BEGIN")
            .map_err(|e| log_error("starting a read snapshot", e))?;
        let outcome = read(&Snapshot { conn: &self.conn });
        let ended = self
            .conn
            .execute_batch("COMMIT")
            .map_err(|e| log_error("ending a read snapshot", e));
        if ended.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let value = outcome?;
        ended?;
        Ok(value)
    }

    /// The recorded position of `consumer`, if it has one.
    pub fn position(&self, consumer: &str) -> Result<Option<i64>> {
        match self.conn.query_row(
            "SELECT position FROM _lw_consumers WHERE name = ?",
            [consumer],
            |r| r.get(0),
        ) {
            Ok(position) => Ok(Some(position)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(log_error("reading consumer positions", e)),
        }
    }

    /// Record that `consumer` has applied every change up to `position`.
    pub fn set_position(&self, consumer: &str, position: i64) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO _lw_consumers(name, position, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(name) DO UPDATE SET position = ?2, updated_at = ?3",
                rusqlite::params![consumer, position, now],
            )
            .map(|_| ())
            .map_err(|e| log_error("recording a consumer position", e))
    }

    /// Forget a consumer (its position no longer holds the log back).
    pub fn remove_consumer(&self, consumer: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM _lw_consumers WHERE name = ?", [consumer])
            .map(|_| ())
            .map_err(|e| log_error("removing a consumer", e))
    }

    pub fn consumers(&self) -> Result<Vec<ConsumerPosition>> {
        consumers(&self.conn)
    }

    /// Delete the changes every consumer has applied, keeping the newest
    /// entry so that sequence numbers keep growing. Never waits for a
    /// writer: a busy file simply keeps the log a little longer (`Ok(None)`).
    pub fn prune(&self) -> Result<Option<usize>> {
        let _ = self.conn.busy_timeout(Duration::from_millis(0));
        let pruned = self.conn.execute(
            "DELETE FROM _lw_changes \
             WHERE seq <= (SELECT min(position) FROM _lw_consumers) \
               AND seq < (SELECT max(seq) FROM _lw_changes)",
            [],
        );
        let _ = self.conn.busy_timeout(self.lock_wait);
        match pruned {
            Ok(n) => Ok(Some(n)),
            Err(e) => match log_error("pruning", e) {
                RowStoreError::LockWait { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Entries still in the log (for status and tests).
    pub fn entries(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT count(*) FROM _lw_changes", [], |r| r.get(0))
            .map_err(|e| log_error("counting", e))
    }
}

/// Every consumer's position.
pub fn consumers(conn: &Connection) -> Result<Vec<ConsumerPosition>> {
    let mut stmt = conn
        .prepare("SELECT name, position, updated_at FROM _lw_consumers ORDER BY name")
        .map_err(|e| log_error("reading consumer positions", e))?;
    stmt.query_map([], |r| {
        Ok(ConsumerPosition {
            name: r.get(0)?,
            position: r.get(1)?,
            updated_at: SystemTime::UNIX_EPOCH
                + Duration::from_millis(r.get::<_, i64>(2)?.max(0) as u64),
        })
    })
    .and_then(|rows| rows.collect())
    .map_err(|e| log_error("reading consumer positions", e))
}

fn last_seq(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM _lw_changes", [], |r| {
        r.get(0)
    })
    .map_err(|e| log_error("reading", e))
}

/// One read snapshot of the log and the tables.
pub struct Snapshot<'a> {
    conn: &'a Connection,
}

impl Snapshot<'_> {
    pub fn last_seq(&self) -> Result<i64> {
        last_seq(self.conn)
    }

    /// Ids of the tables with changes in `(after, upto]`.
    pub fn changed_tables(&self, after: i64, upto: i64) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT tbl FROM _lw_changes WHERE seq > ? AND seq <= ?")
            .map_err(|e| log_error("reading", e))?;
        stmt.query_map([after, upto], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| log_error("reading", e))
    }

    /// The distinct keys changed in `(after, upto]`, as a batch of the key columns.
    pub fn changed_keys(&self, table: &RowTable, after: i64, upto: i64) -> Result<RecordBatch> {
        let slots: Vec<String> = (0..table.primary_key.len())
            .map(|i| format!("k{i}"))
            .collect();
        let sql = format!(
            "SELECT DISTINCT {} FROM _lw_changes WHERE tbl = ? AND seq > ? AND seq <= ?",
            slots.join(", ")
        );
        let sqlite_error = |e| RowStoreError::sqlite(&table.name, "reading the change log", e);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sqlite_error)?;
        let mut rows = stmt.query([table.id, after, upto]).map_err(sqlite_error)?;
        let mut decoders: Vec<ColumnDecoder> = table
            .primary_key
            .iter()
            .map(|&i| ColumnDecoder::new(&table.columns[i].sql_type, 1024))
            .collect();
        let bad_value = |message: String| RowStoreError::BadValue {
            table: table.name.clone(),
            column: table.key_names().join(", "),
            row: None,
            problem: super::ValueProblem::Incorrect,
            message,
        };
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            for (i, decoder) in decoders.iter_mut().enumerate() {
                let value: ValueRef<'_> = row.get_ref(i).map_err(sqlite_error)?;
                decoder.push(value).map_err(bad_value)?;
            }
        }
        let arrays = decoders
            .iter_mut()
            .map(|d| d.finish())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_value(e.to_string()))?;
        RecordBatch::try_new(table.key_schema(), arrays).map_err(|e| bad_value(e.to_string()))
    }

    /// The current rows (all columns) of the keys changed in `(after, upto]`.
    pub fn changed_rows(
        &self,
        table: &RowTable,
        after: i64,
        upto: i64,
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>> {
        let keys: Vec<String> = table
            .primary_key
            .iter()
            .map(|&i| quote(&table.columns[i].name))
            .collect();
        let slots: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
        let left = if keys.len() == 1 {
            keys[0].clone()
        } else {
            format!("({})", keys.join(", "))
        };
        let condition = format!(
            "{left} IN (SELECT {} FROM _lw_changes WHERE tbl = ? AND seq > ? AND seq <= ?)",
            slots.join(", ")
        );
        let params = [
            Value::Integer(table.id),
            Value::Integer(after),
            Value::Integer(upto),
        ];
        let columns: Vec<usize> = (0..table.columns.len()).collect();
        let mut batches = Vec::new();
        scan_where::<RowStoreError>(
            self.conn,
            table,
            &columns,
            false,
            Some((&condition, &params)),
            batch_rows,
            &mut |batch| {
                batches.push(batch);
                Ok(())
            },
        )?;
        Ok(batches)
    }

    /// Every row of `table` in this snapshot, streamed to `each`.
    pub fn scan_table<E: From<RowStoreError>>(
        &self,
        table: &RowTable,
        batch_rows: usize,
        each: &mut dyn FnMut(RecordBatch) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let columns: Vec<usize> = (0..table.columns.len()).collect();
        scan_where(self.conn, table, &columns, false, None, batch_rows, each)
    }
}
