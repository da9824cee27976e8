//! The member's state machine: committed log entries applied in order to the
//! member's own database, exactly once across crashes. The position applied
//! (`_lw_group.applied`) is written in the same SQLite transaction as the
//! changes it stands for, so after a crash openraft resumes at the first
//! entry whose changes are not in the file.
//!
//! On the member that proposed an entry, a session is waiting with the
//! transaction still open ([`Pending`]): applying it means telling that
//! session to commit, at this position, and waiting until it has. Anywhere
//! else (or when that session is gone) the changeset is applied here. A
//! replicated statement runs in this member's applier session.

// openraft's StorageError is what its storage traits return; our helpers return
// it too rather than box it only to unbox it at every trait method.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension};

use super::raft::{
    Entry, LogId, Request, Response, StorageError, StoredMembership, Token, TypeConfig,
};
use crate::cancel::Cancel;
use crate::rowstore::changeset;
use crate::sql::{QueryResult, Services, Session};

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS _lw_group(key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT";

/// Record `log_id` as applied, inside the caller's transaction on `conn`.
pub fn write_applied(conn: &Connection, log_id: &LogId) -> rusqlite::Result<()> {
    let bytes = postcard::to_stdvec(log_id)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT OR REPLACE INTO _lw_group(key, value) VALUES ('applied', ?1)",
        [bytes],
    )?;
    Ok(())
}

fn write_membership(conn: &Connection, membership: &StoredMembership) -> rusqlite::Result<()> {
    let bytes = postcard::to_stdvec(membership)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT OR REPLACE INTO _lw_group(key, value) VALUES ('membership', ?1)",
        [bytes],
    )?;
    Ok(())
}

fn read_value<T: for<'de> serde::Deserialize<'de>>(
    conn: &Connection,
    key: &str,
) -> Result<Option<T>, StorageError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM _lw_group WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| StorageError::from(StorageIOError::read_state_machine(&e)))?;
    bytes
        .map(|b| {
            postcard::from_bytes(&b)
                .map_err(|e| StorageError::from(StorageIOError::read_state_machine(&e)))
        })
        .transpose()
}

/// What the member that proposed an entry is told when it is applied.
pub enum Handover {
    /// Commit the waiting transaction now, recording `log_id`; say on `done`
    /// whether the COMMIT succeeded.
    Commit {
        log_id: LogId,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    /// The proposal failed before it was applied (no leader, deposed).
    Failed(crate::Error),
}

/// A session waiting for its proposal.
pub enum Waiter {
    /// A transaction, on its blocking thread.
    Commit(std::sync::mpsc::Sender<Handover>),
    /// A replicated statement: its outcome as this member's applier ran it.
    Statement(tokio::sync::oneshot::Sender<crate::Result<QueryResult>>),
}

/// Proposals of this process not yet applied, by token.
#[derive(Default)]
pub struct Pending {
    waiting: Mutex<HashMap<Token, Waiter>>,
}

impl Pending {
    pub fn insert(&self, token: Token, waiter: Waiter) {
        self.waiting.lock().insert(token, waiter);
    }

    /// Take the waiter of `token`: `None` when it was taken (by the state
    /// machine, or by the session giving up).
    pub fn take(&self, token: &Token) -> Option<Waiter> {
        self.waiting.lock().remove(token)
    }
}

pub struct StateMachine {
    services: Arc<Services>,
    /// One connection for applying changesets.
    conn: Arc<Mutex<Connection>>,
    /// Runs replicated statements; its commits record `applying`.
    applier: Arc<Session>,
    applying: Arc<Mutex<Option<LogId>>>,
    pending: Arc<Pending>,
    /// This process's proposals carry this member id and incarnation.
    me: (u64, u64),
}

fn sm_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::from(StorageIOError::write_state_machine(AnyError::error(
        e.to_string(),
    )))
}

impl StateMachine {
    pub fn open(
        services: Arc<Services>,
        pending: Arc<Pending>,
        me: (u64, u64),
    ) -> crate::Result<StateMachine> {
        let db = Arc::clone(&services.db);
        let conn = db.connect()?;
        conn.execute_batch(SCHEMA).map_err(|e| {
            crate::rowstore::RowStoreError::sqlite_on("_lw_group", "creating the group's state", e)
        })?;
        let applying: Arc<Mutex<Option<LogId>>> = Arc::default();
        let at = Arc::clone(&applying);
        let applier = Session::open_applier(
            Arc::clone(&services),
            Box::new(move |conn: &Connection| match *at.lock() {
                Some(log_id) => write_applied(conn, &log_id),
                None => Ok(()),
            }),
        )?;
        Ok(StateMachine {
            services,
            conn: Arc::new(Mutex::new(conn)),
            applier: Arc::new(applier),
            applying,
            pending,
            me,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || f(&conn.lock()))
            .await
            .map_err(sm_error)?
    }

    /// One transaction on the applier connection: `f`, then the position.
    /// Waits for the write lock as long as it takes: a primary's session
    /// that holds it gives it up within the commit timeout.
    async fn transaction(
        &self,
        log_id: LogId,
        f: impl FnOnce(&Connection) -> Result<(), StorageError> + Send + 'static,
    ) -> Result<(), StorageError> {
        self.blocking(move |conn| {
            loop {
                match conn.execute_batch("BEGIN IMMEDIATE") {
                    Ok(()) => break,
                    Err(e)
                        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                            || e.sqlite_error_code()
                                == Some(rusqlite::ErrorCode::DatabaseLocked) =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(sm_error(e)),
                }
            }
            let done = f(conn).and_then(|()| write_applied(conn, &log_id).map_err(sm_error));
            match done {
                Ok(()) => conn.execute_batch("COMMIT").map_err(sm_error),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        })
        .await
    }

    async fn apply_changes(
        &self,
        log_id: LogId,
        origin: Token,
        changes: changeset::Changeset,
    ) -> Result<(), StorageError> {
        if (origin.member, origin.incarnation) == self.me
            && let Some(Waiter::Commit(session)) = self.pending.take(&origin)
        {
            let (done, committed) = tokio::sync::oneshot::channel();
            if session.send(Handover::Commit { log_id, done }).is_ok()
                && committed.await == Ok(true)
            {
                return Ok(());
            }
            // The session could not commit: the group has the entry, so it
            // is applied here as anywhere else.
        }
        let bytes = changes.bytes();
        self.transaction(log_id, move |conn| {
            changeset::apply(conn, &changes).map_err(sm_error)
        })
        .await?;
        self.services.propagator.note_commit(bytes);
        Ok(())
    }

    async fn apply_statement(
        &self,
        log_id: LogId,
        origin: Token,
        database: String,
        text: String,
    ) -> Result<(), StorageError> {
        *self.applying.lock() = Some(log_id);
        self.applier.set_current_database(&database);
        let outcome = self.applier.sql(&text, &[], &Cancel::new()).await;
        *self.applying.lock() = None;
        // A statement that committed nothing (it failed the same way
        // everywhere, or changed only the cluster) still moves the position.
        self.transaction(log_id, |_| Ok(())).await?;
        if (origin.member, origin.incarnation) == self.me
            && let Some(Waiter::Statement(session)) = self.pending.take(&origin)
        {
            let _ = session.send(outcome);
        }
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = NoSnapshots;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let (applied, membership) = self
            .blocking(|conn| {
                let applied: Option<LogId> = read_value(conn, "applied")?;
                let membership: Option<StoredMembership> = read_value(conn, "membership")?;
                Ok((applied, membership.unwrap_or_default()))
            })
            .await?;
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut answers = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            match entry.payload {
                EntryPayload::Blank => self.transaction(log_id, |_| Ok(())).await?,
                EntryPayload::Membership(membership) => {
                    let stored = StoredMembership::new(Some(log_id), membership);
                    self.transaction(log_id, move |conn| {
                        write_membership(conn, &stored).map_err(sm_error)
                    })
                    .await?
                }
                EntryPayload::Normal(Request::Changes { origin, changes }) => {
                    self.apply_changes(log_id, origin, changes).await?
                }
                EntryPayload::Normal(Request::Statement {
                    origin,
                    database,
                    text,
                }) => self.apply_statement(log_id, origin, database, text).await?,
            }
            answers.push(Response);
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> NoSnapshots {
        NoSnapshots
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        Err(StorageError::from(StorageIOError::write_snapshot(
            Some(meta.signature()),
            AnyError::error(
                "a lakewave member catches up from the log only (the group never compacts it); \
                 it cannot install a snapshot",
            ),
        )))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(None)
    }
}

/// The group keeps its whole log (its snapshot policy is `Never`), so no
/// snapshot is ever asked for.
pub struct NoSnapshots;

impl RaftSnapshotBuilder<TypeConfig> for NoSnapshots {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        Err(StorageError::from(StorageIOError::write_snapshot(
            None,
            AnyError::error("a lakewave group keeps its whole log and builds no snapshot"),
        )))
    }
}
