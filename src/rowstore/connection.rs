//! One session's SQLite connection, with MySQL's transaction behaviour on top:
//! autocommit by default, `BEGIN` ... `COMMIT`/`ROLLBACK`, and statement-level
//! atomicity (a failing statement undoes only itself).
//!
//! SQLite lets one writer in at a time. A writing statement takes the write
//! lock before it reads the rows it will change, so that what it read is what
//! it writes (no lost updates between sessions): in autocommit with `BEGIN
//! IMMEDIATE`, inside a transaction by a first write to `_lw_meta`. Waiting for
//! the lock is bounded by the lock wait timeout (MySQL's 1205); a transaction
//! whose snapshot is older than another's commit cannot take it and is rolled
//! back (1213), as a deadlock victim is in MySQL.
//!
//! Every call here blocks; callers run them on a blocking thread. A call can
//! be interrupted from another thread ([`DbConnection::interrupt`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::Connection;

use super::changeset::Capture;
use super::{Database, Result, RowStoreError};
use crate::catalog::TableName;

/// Statements run inside a transaction just before its COMMIT, in place of
/// the commit gate: how a group member's state machine records the log
/// position it applied in the same transaction as the changes.
pub type BeforeCommit = Box<dyn FnMut(&Connection) -> rusqlite::Result<()> + Send>;

/// What a session's connection is doing.
#[derive(Debug, Default, Clone, Copy)]
struct TxnState {
    /// Between BEGIN and COMMIT/ROLLBACK.
    explicit: bool,
    /// The open transaction has written something.
    dirty: bool,
    /// The open transaction holds SQLite's write lock.
    write_locked: bool,
}

/// How INSERT treats a row whose key exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    /// Fail with a duplicate-key error.
    Insert,
    /// Delete the old row and insert the new one (MySQL's REPLACE).
    Replace,
    /// Keep the old row (INSERT IGNORE).
    Ignore,
}

pub struct DbConnection {
    db: Arc<Database>,
    conn: Mutex<Connection>,
    interrupt: rusqlite::InterruptHandle,
    /// Set by [`DbConnection::interrupt`]: a lock wait checks it (SQLite's
    /// own busy wait does not look at interruptions).
    interrupted: AtomicBool,
    state: Mutex<TxnState>,
    /// Bytes of rows written and not yet committed (a hint for the propagator).
    pending: AtomicU64,
    /// Called after every commit that wrote something, with `pending`.
    on_commit: Box<dyn Fn(u64) + Send + Sync>,
    /// The rows this connection changed, recorded once the database has a
    /// commit gate (an HA group member); `None` until then.
    capture: Mutex<Option<Capture>>,
    /// Set on a group member's applier: runs before each COMMIT, and the
    /// gate is not consulted.
    before_commit: Mutex<Option<BeforeCommit>>,
}

fn txn_error(action: &str, e: rusqlite::Error) -> RowStoreError {
    RowStoreError::sqlite_on("(transaction)", action, e)
}

impl DbConnection {
    pub fn open(
        db: Arc<Database>,
        on_commit: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<DbConnection> {
        let conn = db.connect()?;
        let interrupt = conn.get_interrupt_handle();
        Ok(DbConnection {
            db,
            conn: Mutex::new(conn),
            interrupt,
            interrupted: AtomicBool::new(false),
            state: Mutex::default(),
            pending: AtomicU64::new(0),
            on_commit,
            capture: Mutex::new(None),
            before_commit: Mutex::new(None),
        })
    }

    /// Make this connection a group member's applier: `before` runs inside
    /// every transaction just before it commits, and the commit gate is
    /// not consulted (what it commits is already committed by the group).
    pub fn set_before_commit(&self, before: Option<BeforeCommit>) {
        *self.before_commit.lock() = before;
    }

    /// Record row changes from now on if the database has a commit gate.
    fn capture_if_gated(&self, conn: &mut Connection) {
        if self.db.commit_gate().is_none() || self.before_commit.lock().is_some() {
            return;
        }
        let mut capture = self.capture.lock();
        if capture.is_none() {
            let installed = Capture::default();
            installed.install(conn);
            *capture = Some(installed);
        }
    }

    /// Before COMMIT on `conn`: the applier's statements, or the commit
    /// gate's decision on what this transaction changed. An error means the
    /// transaction must not commit.
    fn prepare_commit(&self, conn: &Connection) -> Result<Option<Box<dyn CommitTicket>>> {
        if let Some(before) = self.before_commit.lock().as_mut() {
            before(conn).map_err(|e| txn_error("recording the applied position", e))?;
            return Ok(None);
        }
        let Some(gate) = self.db.commit_gate() else {
            return Ok(None);
        };
        let Some(capture) = self.capture.lock().clone() else {
            return Ok(None);
        };
        let captured = capture.take(conn)?;
        gate.prepare(conn, captured)
            .map(Some)
            .map_err(|source| RowStoreError::Refused {
                source: Box::new(source),
            })
    }

    fn forget_capture(&self) {
        if let Some(capture) = self.capture.lock().as_ref() {
            capture.clear();
        }
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Stop whatever SQLite is doing on this connection now (a scan, a lock
    /// wait): it fails with an interruption.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
        self.interrupt.interrupt();
    }

    /// Forget an interruption (a new statement starts).
    pub fn clear_interrupt(&self) {
        self.interrupted.store(false, Ordering::Release);
    }

    /// Run `attempt` until it does not fail for another session's lock, for
    /// at most the lock wait timeout, stopping at once when interrupted.
    fn wait_for_lock(
        &self,
        conn: &rusqlite::Connection,
        table: &TableName,
        attempt: impl Fn(&rusqlite::Connection) -> rusqlite::Result<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + self.db.lock_wait();
        let _ = conn.busy_timeout(Duration::ZERO);
        let outcome = loop {
            let error = match attempt(conn) {
                Ok(()) => break Ok(()),
                Err(e) => RowStoreError::sqlite(table, "taking the write lock", e),
            };
            if !matches!(error, RowStoreError::LockWait { .. }) {
                break Err(error);
            }
            if self.interrupted.load(Ordering::Acquire) {
                break Err(RowStoreError::Interrupted {
                    action: format!("waiting for the write lock on '{table}'"),
                });
            }
            if Instant::now() >= deadline {
                break Err(error);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = conn.busy_timeout(self.db.lock_wait());
        outcome
    }

    pub fn in_transaction(&self) -> bool {
        self.state.lock().explicit
    }

    /// The open transaction has uncommitted writes (its reads must stay here).
    pub fn has_uncommitted_writes(&self) -> bool {
        let state = self.state.lock();
        state.explicit && state.dirty
    }

    /// `BEGIN`: as in MySQL, an open transaction is committed first.
    pub fn begin(&self) -> Result<()> {
        self.commit()?;
        self.conn
            .lock()
            .execute_batch("BEGIN")
            .map_err(|e| txn_error("BEGIN", e))?;
        *self.state.lock() = TxnState {
            explicit: true,
            ..TxnState::default()
        };
        Ok(())
    }

    /// `COMMIT`. A failed commit leaves the transaction open and says so.
    pub fn commit(&self) -> Result<()> {
        let state = *self.state.lock();
        if !state.explicit {
            return Ok(());
        }
        let conn = self.conn.lock();
        let ticket = match self.prepare_commit(&conn) {
            Ok(ticket) => ticket,
            Err(refused) => {
                // Refused by the gate: this transaction can never commit here.
                drop(conn);
                let _ = self.rollback();
                return Err(refused);
            }
        };
        let committed = conn.execute_batch("COMMIT");
        if let Some(ticket) = ticket {
            if committed.is_err() && !conn.is_autocommit() {
                // The group has it: it is applied again from the log.
                let _ = conn.execute_batch("ROLLBACK");
            }
            ticket.finished(committed.is_ok());
        }
        drop(conn);
        committed.map_err(|source| {
            match RowStoreError::sqlite_on("(transaction)", "COMMIT", source) {
                RowStoreError::Sqlite { source, .. } => RowStoreError::Commit { source },
                classified => classified,
            }
        })?;
        *self.state.lock() = TxnState::default();
        if state.dirty {
            (self.on_commit)(self.pending.swap(0, Ordering::AcqRel));
        }
        Ok(())
    }

    pub fn rollback(&self) -> Result<()> {
        let state = *self.state.lock();
        if !state.explicit {
            return Ok(());
        }
        let conn = self.conn.lock();
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")
                .map_err(|e| txn_error("ROLLBACK", e))?;
        }
        self.forget_capture();
        *self.state.lock() = TxnState::default();
        self.pending.store(0, Ordering::Release);
        Ok(())
    }

    /// Start one atomic writing statement on `table`: its reads and writes
    /// then happen under the write lock, and the returned guard commits
    /// (`finish`) or undoes them (dropped). Inside a transaction it is a
    /// savepoint; in autocommit, a transaction of its own.
    pub fn begin_statement(self: &Arc<Self>, table: &TableName) -> Result<StatementTxn> {
        let explicit = self.state.lock().explicit;
        let mut conn = self.conn.lock();
        self.capture_if_gated(&mut conn);
        if explicit {
            if !self.state.lock().write_locked {
                // The first write of a transaction takes SQLite's write lock;
                // fails at once if another session committed since this
                // transaction's snapshot.
                let taken = self.wait_for_lock(&conn, table, |conn| {
                    conn.execute(
                        "UPDATE _lw_meta SET value = value WHERE key = 'catalog_format'",
                        [],
                    )
                    .map(|_| ())
                });
                if let Err(error) = taken {
                    drop(conn);
                    if matches!(error, RowStoreError::Conflict { .. }) {
                        // As a MySQL deadlock victim: the whole transaction goes.
                        let _ = self.rollback();
                    }
                    return Err(error);
                }
                self.state.lock().write_locked = true;
            }
            conn.execute_batch("SAVEPOINT lw_statement")
                .map_err(|e| RowStoreError::sqlite(table, "starting a statement", e))?;
        } else {
            self.wait_for_lock(&conn, table, |conn| conn.execute_batch("BEGIN IMMEDIATE"))?;
        }
        Ok(StatementTxn {
            conn: Arc::clone(self),
            table: table.clone(),
            explicit,
            done: false,
        })
    }

    /// Run `f` as one atomic writing statement (see [`begin_statement`]).
    ///
    /// [`begin_statement`]: DbConnection::begin_statement
    pub fn write<T>(
        self: &Arc<Self>,
        table: &TableName,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let statement = self.begin_statement(table)?;
        let value = self.with_conn(f)?;
        statement.finish()?;
        Ok(value)
    }

    /// Run `f` on the connection (it sees the open transaction's writes).
    pub fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn.lock())
    }

    /// DDL commits the open transaction first, as in MySQL.
    pub(super) fn ddl<T>(
        self: &Arc<Self>,
        table: &TableName,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.commit()?;
        self.write(table, f)
    }

    pub(super) fn add_pending(&self, bytes: u64) {
        self.pending.fetch_add(bytes, Ordering::AcqRel);
    }
}

/// One writing statement in progress: dropped without `finish`, it undoes
/// everything the statement did.
pub struct StatementTxn {
    conn: Arc<DbConnection>,
    table: TableName,
    explicit: bool,
    done: bool,
}

impl StatementTxn {
    /// Keep what the statement did: release the savepoint, or commit.
    pub fn finish(mut self) -> Result<()> {
        self.done = true;
        let keep = if self.explicit {
            "RELEASE lw_statement"
        } else {
            "COMMIT"
        };
        let conn = self.conn.conn.lock();
        let ticket = if self.explicit {
            None
        } else {
            match self.conn.prepare_commit(&conn) {
                Ok(ticket) => ticket,
                Err(refused) => {
                    drop(conn);
                    self.undo();
                    return Err(refused);
                }
            }
        };
        let kept = conn.execute_batch(keep);
        if let Some(ticket) = ticket {
            if kept.is_err() && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            ticket.finished(kept.is_ok());
        }
        drop(conn);
        if let Err(e) = kept {
            self.undo();
            return Err(RowStoreError::sqlite(&self.table, "committing", e));
        }
        if self.explicit {
            self.conn.state.lock().dirty = true;
        } else {
            (self.conn.on_commit)(self.conn.pending.swap(0, Ordering::AcqRel));
        }
        Ok(())
    }

    fn undo(&self) {
        let undo = if self.explicit {
            "ROLLBACK TO lw_statement; RELEASE lw_statement"
        } else {
            "ROLLBACK"
        };
        let conn = self.conn.conn.lock();
        if !conn.is_autocommit() {
            let _ = conn.execute_batch(undo);
        }
        if !self.explicit {
            self.conn.pending.store(0, Ordering::Release);
            self.conn.forget_capture();
        }
    }
}

/// Decides whether a session's transaction may commit, and makes what it
/// changed durable elsewhere first: an HA group's primary replicates it to a
/// majority of members before it commits here.
pub trait CommitGate: Send + Sync {
    /// Called inside the open transaction on `conn`, just before COMMIT, with
    /// what it changed. An error rolls the transaction back. The ticket is
    /// told whether the COMMIT then succeeded.
    fn prepare(
        &self,
        conn: &Connection,
        captured: super::changeset::Captured,
    ) -> std::result::Result<Box<dyn CommitTicket>, crate::Error>;
}

/// A transaction the gate let through, told how its COMMIT ended.
pub trait CommitTicket: Send {
    fn finished(self: Box<Self>, committed: bool);
}

impl Drop for StatementTxn {
    fn drop(&mut self) {
        if !self.done {
            self.undo();
        }
    }
}
