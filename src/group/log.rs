//! The member's Raft log and vote, in a SQLite file of their own beside the
//! database (`raft.db` in the member's directory). It is a separate file
//! because a primary's session holds the database's write lock while its
//! transaction is being replicated, and the log must be written meanwhile.
//! Every write is a transaction in WAL mode with `synchronous = NORMAL`, as
//! the database itself: an entry or a vote is in the file (the kernel's
//! page cache) before openraft is told so, which survives the process being
//! killed; an fsync per entry would survive a power loss of a majority of
//! the group's machines at once, at several times the commit latency. The
//! commit index is not persisted (openraft learns it from the leader).
//!
//! Entries are postcard-encoded, keyed by index. Every call runs on a
//! blocking thread, never on the runtime's workers.

// openraft's StorageError is what its storage traits return; our helpers return
// it too rather than box it only to unbox it at every trait method.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError, Vote};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension};

use super::GroupError;
use super::raft::{Entry, LogId, StorageError, TypeConfig};

#[derive(Clone)]
pub struct LogStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries(idx INTEGER PRIMARY KEY, entry BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
";

fn read_err<E: std::error::Error + 'static>(e: E) -> StorageError {
    StorageError::from(StorageIOError::read_logs(&e))
}

fn write_err<E: std::error::Error + 'static>(e: E) -> StorageError {
    StorageError::from(StorageIOError::write_logs(&e))
}

impl LogStore {
    pub fn open(path: &Path) -> Result<LogStore, GroupError> {
        let storage = |source| GroupError::Storage {
            path: path.display().to_string(),
            action: "opening the Raft log",
            source,
        };
        let conn = Connection::open(path).map_err(storage)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(storage)?;
        conn.execute_batch(SCHEMA).map_err(storage)?;
        Ok(LogStore {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || f(&mut conn.lock()))
            .await
            .map_err(|e| StorageError::from(StorageIOError::read_logs(&e)))?
    }

    fn state<T: for<'de> serde::Deserialize<'de>>(
        conn: &Connection,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        let value: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM state WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(read_err)?;
        value
            .map(|v| postcard::from_bytes(&v).map_err(read_err))
            .transpose()
    }

    fn set_state<T: serde::Serialize>(
        conn: &Connection,
        key: &str,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = postcard::to_stdvec(value).map_err(write_err)?;
        conn.execute(
            "INSERT OR REPLACE INTO state(key, value) VALUES (?1, ?2)",
            rusqlite::params![key, bytes],
        )
        .map_err(write_err)?;
        Ok(())
    }

    fn read_range(
        conn: &Connection,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut statement = conn
            .prepare_cached("SELECT entry FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")
            .map_err(read_err)?;
        let end = end
            .map(|e| e.min(i64::MAX as u64) as i64)
            .unwrap_or(i64::MAX);
        let rows = statement
            .query_map(rusqlite::params![start as i64, end], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .map_err(read_err)?;
        let mut out = Vec::new();
        for row in rows {
            let bytes = row.map_err(read_err)?;
            out.push(postcard::from_bytes(&bytes).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Some(i + 1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        self.blocking(move |conn| Self::read_range(conn, start, end))
            .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.blocking(|conn| {
            let purged: Option<LogId> = Self::state(conn, "purged")?;
            let last: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT entry FROM entries ORDER BY idx DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(read_err)?;
            let last = last
                .map(|b| postcard::from_bytes::<Entry>(&b).map_err(read_err))
                .transpose()?
                .map(|e| e.log_id);
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last.or(purged),
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |conn| {
            Self::set_state(conn, "vote", &vote).map_err(|_| {
                StorageError::from(StorageIOError::write_vote(openraft::AnyError::error(
                    "cannot save the vote",
                )))
            })
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.blocking(|conn| Self::state(conn, "vote")).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, postcard::to_stdvec(&e).map_err(write_err)?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let written = self
            .blocking(move |conn| {
                let txn = conn.transaction().map_err(write_err)?;
                {
                    let mut insert = txn
                        .prepare_cached(
                            "INSERT OR REPLACE INTO entries(idx, entry) VALUES (?1, ?2)",
                        )
                        .map_err(write_err)?;
                    for (index, bytes) in &encoded {
                        insert
                            .execute(rusqlite::params![*index as i64, bytes])
                            .map_err(write_err)?;
                    }
                }
                txn.commit().map_err(write_err)?;
                Ok(())
            })
            .await;
        // Committed: in the file.
        match &written {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        written
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |conn| {
            conn.execute("DELETE FROM entries WHERE idx >= ?1", [log_id.index as i64])
                .map_err(write_err)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |conn| {
            let txn = conn.transaction().map_err(write_err)?;
            Self::set_state(&txn, "purged", &log_id)?;
            txn.execute("DELETE FROM entries WHERE idx <= ?1", [log_id.index as i64])
                .map_err(write_err)?;
            txn.commit().map_err(write_err)?;
            Ok(())
        })
        .await
    }
}
