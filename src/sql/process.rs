//! The sessions of an instance and what each is running: MySQL's process
//! list. Every session registers here with an id (`CONNECTION_ID()`); every
//! statement it runs (including a query's execution while its rows are
//! read) registers with a [`Cancel`], so `KILL QUERY id` stops it wherever it
//! is, and `KILL id` ends the session: its statements are stopped, its open
//! transaction rolled back, and it takes no more statements.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use super::SqlError;
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::rowstore::DbConnection;

/// One row of `SHOW PROCESSLIST`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessInfo {
    pub id: u64,
    pub user: String,
    pub host: String,
    pub database: String,
    /// "Query" while a statement runs, else "Sleep" ("Killed" once killed).
    pub command: &'static str,
    /// Seconds in the current command.
    pub time: u64,
    pub state: &'static str,
    /// The running statement (secrets redacted), if any.
    pub info: Option<String>,
}

struct Running {
    token: u64,
    text: String,
    started: Instant,
    cancel: Cancel,
}

/// A registered session.
pub struct SessionSlot {
    pub id: u64,
    /// Who the session is; a server's session starts as "unauthenticated
    /// user" (as in MySQL's process list) until its client logs in.
    user: Mutex<String>,
    host: Mutex<String>,
    /// Fires when the session is killed, so that a connection waiting for
    /// its client's next command closes at once.
    ended: Cancel,
    database: Mutex<String>,
    idle_since: Mutex<Instant>,
    running: Mutex<Vec<Running>>,
    killed: AtomicBool,
    next_token: AtomicU64,
    conn: Weak<DbConnection>,
}

impl SessionSlot {
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub fn set_user(&self, user: &str, host: &str) {
        *self.user.lock() = user.to_string();
        *self.host.lock() = host.to_string();
    }

    /// `user@host`, as `USER()` answers.
    pub fn account(&self) -> String {
        format!("{}@{}", self.user.lock(), self.host.lock())
    }

    /// Wait until the session is killed.
    pub async fn killed(&self) {
        self.ended.cancelled().await
    }

    pub fn set_database(&self, database: &str) {
        *self.database.lock() = database.to_string();
    }

    /// Register a statement as running, with the cancel that stops it. Fails
    /// when the session was killed.
    pub fn begin(self: &Arc<Self>, text: &str) -> Result<RunningStatement> {
        if self.is_killed() {
            return Err(Error::SessionKilled { session: self.id });
        }
        let cancel = Cancel::new();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        if let Some(conn) = self.conn.upgrade() {
            conn.clear_interrupt();
        }
        let conn = self.conn.clone();
        // A statement blocked in SQLite (a scan, a lock wait) cannot check
        // the flag: interrupt it.
        let interrupt = cancel.on_cancel(move || {
            if let Some(conn) = conn.upgrade() {
                conn.interrupt();
            }
        });
        self.running.lock().push(Running {
            token,
            text: super::abbreviate(text),
            started: Instant::now(),
            cancel: cancel.clone(),
        });
        Ok(RunningStatement {
            slot: Arc::clone(self),
            token,
            cancel,
            _interrupt: interrupt,
        })
    }

    fn info(&self) -> ProcessInfo {
        let running = self.running.lock();
        let current = running.last();
        let since = current
            .map(|r| r.started)
            .unwrap_or(*self.idle_since.lock());
        ProcessInfo {
            id: self.id,
            user: self.user.lock().clone(),
            host: self.host.lock().clone(),
            database: self.database.lock().clone(),
            command: if self.is_killed() {
                "Killed"
            } else if current.is_some() {
                "Query"
            } else {
                "Sleep"
            },
            time: since.elapsed().as_secs(),
            state: if current.is_some() { "executing" } else { "" },
            info: current.map(|r| r.text.clone()),
        }
    }

    fn cancel_running(&self) {
        for running in self.running.lock().iter() {
            running.cancel.cancel();
        }
    }
}

/// A statement registered as running; dropping it ends the registration.
pub struct RunningStatement {
    slot: Arc<SessionSlot>,
    token: u64,
    cancel: Cancel,
    _interrupt: crate::cancel::HookGuard,
}

impl RunningStatement {
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }
}

impl Drop for RunningStatement {
    fn drop(&mut self) {
        let mut running = self.slot.running.lock();
        running.retain(|r| r.token != self.token);
        if running.is_empty() {
            *self.slot.idle_since.lock() = Instant::now();
        }
    }
}

/// Every session of one instance.
#[derive(Default)]
pub struct SessionRegistry {
    sessions: RwLock<BTreeMap<u64, Arc<SessionSlot>>>,
    next_id: AtomicU64,
}

impl SessionRegistry {
    pub fn register(
        &self,
        user: &str,
        host: &str,
        database: &str,
        conn: &Arc<DbConnection>,
    ) -> Arc<SessionSlot> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = Arc::new(SessionSlot {
            id,
            user: Mutex::new(user.to_string()),
            host: Mutex::new(host.to_string()),
            ended: Cancel::new(),
            database: Mutex::new(database.to_string()),
            idle_since: Mutex::new(Instant::now()),
            running: Mutex::default(),
            killed: AtomicBool::new(false),
            next_token: AtomicU64::new(0),
            conn: Arc::downgrade(conn),
        });
        self.sessions.write().insert(id, Arc::clone(&slot));
        slot
    }

    pub fn unregister(&self, id: u64) {
        self.sessions.write().remove(&id);
    }

    pub fn count(&self) -> usize {
        self.sessions.read().len()
    }

    pub fn list(&self) -> Vec<ProcessInfo> {
        self.sessions.read().values().map(|s| s.info()).collect()
    }

    fn slot(&self, id: u64) -> Result<Arc<SessionSlot>> {
        self.sessions
            .read()
            .get(&id)
            .cloned()
            .ok_or_else(|| SqlError::NoSuchSession { id }.into())
    }

    /// `KILL QUERY id`: stop what session `id` is running (it stays open).
    pub fn kill_query(&self, id: u64) -> Result<()> {
        self.slot(id)?.cancel_running();
        Ok(())
    }

    /// `KILL id`: end session `id`. Its statements are stopped and its open
    /// transaction is rolled back (on a thread of its own, once the
    /// interrupted statement has let go of the connection).
    pub fn kill(&self, id: u64) -> Result<()> {
        let slot = self.slot(id)?;
        slot.killed.store(true, Ordering::Release);
        slot.cancel_running();
        slot.ended.cancel();
        if let Some(conn) = slot.conn.upgrade() {
            conn.interrupt();
            let _ = std::thread::Builder::new()
                .name("lakewave-kill".into())
                .spawn(move || {
                    let _ = conn.rollback();
                });
        }
        self.unregister(id);
        Ok(())
    }

    /// Every session is ended (the instance closes).
    pub fn kill_all(&self) {
        let ids: Vec<u64> = self.sessions.read().keys().copied().collect();
        for id in ids {
            let _ = self.kill(id);
        }
    }
}

impl super::Session {
    /// `SHOW [FULL] PROCESSLIST`.
    pub(super) fn show_processlist(&self, text: &str) -> super::QueryResult {
        use arrow::datatypes::{DataType, Field, Schema};
        let sessions = self.services.sessions.list();
        let schema = Arc::new(Schema::new(vec![
            Field::new("Id", DataType::Int64, false),
            Field::new("User", DataType::Utf8, true),
            Field::new("Host", DataType::Utf8, true),
            Field::new("db", DataType::Utf8, true),
            Field::new("Command", DataType::Utf8, true),
            Field::new("Time", DataType::Int64, false),
            Field::new("State", DataType::Utf8, true),
            Field::new("Info", DataType::Utf8, true),
        ]));
        let batch = arrow::array::RecordBatch::try_new(
            Arc::clone(&schema),
            super::status::process_columns(&sessions),
        )
        .expect("the process list's columns");
        super::QueryResult::ready(text, schema, vec![batch])
    }

    /// `KILL QUERY id` / `KILL [CONNECTION] id`.
    pub(super) fn kill(&self, id: u64, query_only: bool, text: &str) -> Result<super::QueryResult> {
        if query_only {
            self.services.sessions.kill_query(id)?;
            return Ok(super::QueryResult::status(
                text,
                format!("the statement of session {id} was interrupted"),
            ));
        }
        self.services.sessions.kill(id)?;
        Ok(super::QueryResult::status(
            text,
            format!("session {id} was killed"),
        ))
    }
}
