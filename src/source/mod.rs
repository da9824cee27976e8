//! A MySQL-family server (MariaDB 10.11, MySQL 8) as the DB system, beside the
//! embedded row store: lakewave is then that server's HeatWave cluster.
//!
//! This module owns everything lakewave knows of such a server: connections
//! to it ([`server`]: the preflight, statements run on it and their results
//! as Arrow), loading a table from a consistent snapshot ([`snapshot`]), and
//! the binlog reader that keeps loaded tables equal to the server ([`tail`]):
//! it reads the row-based binlog as a replica from the snapshot's position,
//! applies whole transactions to the cluster in batches (every
//! `propagation_interval`, at `propagation_batch_bytes`, or at once when a
//! query waits at the read-your-writes barrier) and publishes the binlog
//! position the cluster has reached (the SCN of source tables).
//!
//! It builds cluster tables only through `load` and `cluster`, registers them
//! in the catalog as cluster tables, and keeps which tables are loaded in the
//! instance's own metadata file, with a checkpoint of each beside it
//! ([`checkpoint`]), so that a restart resumes from the binlog position of
//! its checkpoints instead of reading every table again. It parses
//! no SQL of users (the session routes statements) and knows nothing of
//! Python.

mod checkpoint;
pub mod server;
mod snapshot;
mod tail;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use mysql_async::Value;
use parking_lot::Mutex;
use thiserror::Error;

use crate::catalog::{Catalog, TableName};
use crate::cluster::Cluster;
use crate::config::{PropagationConfig, SourceConfig};
use crate::error::{ErrorKind, MySqlCode, codes};
use crate::rowstore::Database;

pub use server::{ServerConnection, ServerOutcome};
pub use types::SourceColumn;

/// MySQL's "binary logging not possible" for a server the source cannot use.
const BINLOG_IMPOSSIBLE: MySqlCode = MySqlCode::new(1598, "HY000");
/// The client's "can't connect to server" and "lost connection".
const CONNECT_FAILED: MySqlCode = MySqlCode::new(2003, "HY000");
/// A replica's "fatal error reading the binlog" (purged logs, bad events).
const BINLOG_READ_FAILED: MySqlCode = MySqlCode::new(1236, "HY000");

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("cannot connect to the source server {server}")]
    Connect {
        server: String,
        #[source]
        source: mysql_async::Error,
    },
    /// The server refused a statement: its own error number and SQLSTATE.
    #[error("the source server {server} refused {statement}: {message}")]
    Server {
        server: String,
        statement: String,
        errno: u16,
        sqlstate: String,
        message: String,
    },
    #[error("the connection to the source server {server} failed during {statement}")]
    Io {
        server: String,
        statement: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("the source server {server} cannot be used as lakewave's DB system: {}", problems.join("; "))]
    Preflight {
        server: String,
        problems: Vec<String>,
    },
    #[error("table {table} cannot be loaded into the cluster: {reason}")]
    Unloadable { table: TableName, reason: String },
    #[error(
        "table {table} has no primary key; the cluster needs one to apply the binlog's changes"
    )]
    NoPrimaryKey { table: TableName },
    #[error("table {table} does not exist on the source server {server}")]
    TableNotFound { table: TableName, server: String },
    #[error("table {table}: {message}")]
    Value { table: TableName, message: String },
    #[error("reading the binlog of {server} at {position}: {message}")]
    Binlog {
        server: String,
        position: String,
        message: String,
    },
    #[error("lakewave's record of loaded source tables in {path}: {message}")]
    Metadata { path: String, message: String },
    #[error("the checkpoint of table {table} in {path}: {message}")]
    Checkpoint {
        table: TableName,
        path: String,
        message: String,
    },
    #[error("a value the source server returned for {statement} cannot be read: {message}")]
    ResultValue { statement: String, message: String },
    #[error("internal error in lakewave while {what}: {message}")]
    Task { what: String, message: String },
}

impl SourceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SourceError::Connect { .. }
            | SourceError::Io { .. }
            | SourceError::Binlog { .. }
            | SourceError::Metadata { .. }
            | SourceError::Checkpoint { .. }
            | SourceError::Preflight { .. } => ErrorKind::Operational,
            SourceError::Server {
                errno, sqlstate, ..
            } => server_kind(*errno, sqlstate),
            SourceError::Unloadable { .. } => ErrorKind::NotSupported,
            SourceError::NoPrimaryKey { .. } => ErrorKind::Programming,
            SourceError::TableNotFound { .. } => ErrorKind::TableNotFound,
            SourceError::Value { .. } | SourceError::ResultValue { .. } => ErrorKind::Data,
            SourceError::Task { .. } => ErrorKind::Internal,
        }
    }

    pub fn code(&self) -> MySqlCode {
        match self {
            SourceError::Connect { .. } | SourceError::Io { .. } => CONNECT_FAILED,
            SourceError::Server {
                errno, sqlstate, ..
            } => MySqlCode::new(*errno, static_sqlstate(sqlstate)),
            SourceError::Preflight { .. } => BINLOG_IMPOSSIBLE,
            SourceError::Unloadable { .. } => codes::SECONDARY_ENGINE_PLUGIN,
            SourceError::NoPrimaryKey { .. } => codes::REQUIRES_PRIMARY_KEY,
            SourceError::TableNotFound { .. } => codes::NO_SUCH_TABLE,
            SourceError::Value { .. } | SourceError::ResultValue { .. } => {
                codes::TRUNCATED_WRONG_VALUE_FOR_FIELD
            }
            SourceError::Task { .. } => codes::INTERNAL_ERROR,
            SourceError::Binlog { .. } => BINLOG_READ_FAILED,
            SourceError::Metadata { .. } | SourceError::Checkpoint { .. } => codes::GET_ERRNO,
        }
    }
}

/// The Python class of a server's error, from its SQLSTATE class (as
/// PyMySQL and mysql-connector choose theirs).
fn server_kind(errno: u16, sqlstate: &str) -> ErrorKind {
    match (errno, sqlstate) {
        (1064, _) => ErrorKind::Syntax,
        (1146 | 1051 | 1049, _) | (_, "42S02") => ErrorKind::TableNotFound,
        (1050, _) | (_, "42S01") => ErrorKind::TableExists,
        (_, "42S22") => ErrorKind::ColumnNotFound,
        (1317, _) | (_, "70100") => ErrorKind::Interrupted,
        (_, s) if s.starts_with("23") => ErrorKind::Integrity,
        (_, s) if s.starts_with("22") => ErrorKind::Data,
        (_, s) if s.starts_with("42") || s.starts_with("21") => ErrorKind::Programming,
        (_, "0A000") => ErrorKind::NotSupported,
        _ => ErrorKind::Operational,
    }
}

/// SQLSTATEs are five characters from a small set; the ones servers send
/// are kept as they are, anything else is the general "HY000".
fn static_sqlstate(state: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "HY000", "23000", "42000", "42S01", "42S02", "42S21", "42S22", "21S01", "22001", "22003",
        "22007", "22012", "22023", "25000", "28000", "3D000", "40001", "70100", "0A000", "08S01",
        "HY001", "XA100", "22018", "21000", "44000", "42S12",
    ];
    KNOWN
        .iter()
        .find(|known| **known == state)
        .copied()
        .unwrap_or("HY000")
}

/// A place in the server's binlog: a file and an offset in it, and the
/// GTID of the transaction that ends there when the server sent one. Two
/// positions are the same place when file and offset are.
#[derive(Debug, Clone)]
pub struct Position {
    pub file: String,
    pub offset: u64,
    pub gtid: Option<String>,
}

impl PartialEq for Position {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file && self.offset == other.offset
    }
}

impl Eq for Position {}

impl Position {
    /// The file's sequence number (`binlog.000042` → 42): files sort by it.
    fn sequence(&self) -> u64 {
        self.file
            .rsplit('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Position {
    /// As one number that orders like the position: the file's number
    /// times 2³² plus the offset (`rpd_tables.SNAPSHOT_SCN`).
    pub fn as_scn(&self) -> i64 {
        ((self.sequence() as i64) << 32) | (self.offset as i64 & 0xffff_ffff)
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.sequence(), &self.file, self.offset).cmp(&(
            other.sequence(),
            &other.file,
            other.offset,
        ))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

/// A loaded table's definition, as read from the server at load time.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: TableName,
    pub columns: Vec<SourceColumn>,
    /// Positions of the primary key columns, in key order.
    pub key: Vec<usize>,
}

impl TableDef {
    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }

    fn key_columns(&self) -> Vec<SourceColumn> {
        self.key.iter().map(|&i| self.columns[i].clone()).collect()
    }
}

/// Where a source table stands.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceStatus {
    /// A snapshot is being read; changes are kept aside until it is in.
    Loading,
    /// In the cluster and following the binlog.
    Available,
    /// Not usable by queries (they run on the server), with why; a reload is
    /// under way or failed.
    Stale { reason: String },
}

/// Where a table's cluster copy was last read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// A consistent snapshot read from the server.
    Server,
    /// The table's checkpoint file, followed by the binlog from its position.
    Checkpoint,
}

impl Recovery {
    /// As `rpd_tables.RECOVERY_SOURCE` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::Server => "MySQL",
            Recovery::Checkpoint => "Checkpoint",
        }
    }
}

/// What `rpd_tables` and routing see of a source table.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub def: Arc<TableDef>,
    pub status: SourceStatus,
    /// The binlog position the cluster's copy is current at.
    pub scn: Option<Position>,
    /// The binlog position of the table's last checkpoint (what a restart
    /// resumes from), if one was written.
    pub persisted: Option<Position>,
    pub recovery: Recovery,
    pub load_started: SystemTime,
    pub load_finished: Option<SystemTime>,
    pub changes_applied: u64,
    pub batches_applied: u64,
}

/// One key's last change in a run of transactions.
#[derive(Debug, Clone)]
struct Change {
    /// Where the transaction that made it ends.
    end: Position,
    key: Vec<Value>,
    /// The row after the change; `None` when it was deleted.
    row: Option<Vec<Value>>,
}

/// Changes per table, by encoded key; a later change to a key replaces the
/// earlier one (the cluster needs only each key's last state).
type Changes = BTreeMap<TableName, HashMap<Vec<u8>, Change>>;

/// A replica id for an instance: unlikely to clash with a real replica's,
/// and different for every instance of a process (the server drops a
/// replica when another registers with its id).
fn replica_id() -> u32 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let instance = NEXT.fetch_add(1, Ordering::Relaxed) as u32;
    0x4c00_0000 | ((std::process::id() & 0xfff) << 12) | (instance & 0xfff)
}

/// A statement as messages show it: its first 200 characters.
pub fn shorten(statement: &str) -> String {
    let trimmed = statement.trim();
    match trimmed.char_indices().nth(200) {
        Some((cut, _)) => format!("'{}...'", &trimmed[..cut]),
        None => format!("'{trimmed}'"),
    }
}

fn task_failed(what: &str, error: tokio::task::JoinError) -> crate::Error {
    SourceError::Task {
        what: what.to_string(),
        message: error.to_string(),
    }
    .into()
}

fn encode_key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        out.extend_from_slice(value.as_sql(false).as_bytes());
        out.push(0x1f);
    }
    out
}

fn value_bytes(values: &[Value]) -> usize {
    values
        .iter()
        .map(|v| match v {
            Value::Bytes(b) => b.len() + 8,
            _ => 16,
        })
        .sum()
}

#[derive(Default)]
struct State {
    tables: BTreeMap<TableName, Tracked>,
    /// The last error of the binlog reader, until it reads again.
    tail_error: Option<String>,
    /// Where the binlog reader starts (or restarts after a purge).
    tail_running: bool,
}

struct Tracked {
    table: SourceTable,
    /// Which load built (or is building) the copy: a load publishes only
    /// while it is the table's latest.
    load: u64,
    /// Changes with positions after `from` apply to this table; earlier ones
    /// are in its snapshot.
    from: Option<Position>,
    /// Changes read while the snapshot was loading.
    buffer: HashMap<Vec<u8>, Change>,
    /// `changes_applied` when the last checkpoint was taken (`None`: the
    /// copy has none yet): a checkpoint is due when they differ.
    checkpointed_changes: Option<u64>,
}

/// The counters `global_status` shows for the source.
#[derive(Debug, Clone, Default)]
pub struct SourceStats {
    pub transactions: u64,
    pub batches: u64,
    pub rows: u64,
    pub reconnects: u64,
}

/// The attached server, its loaded tables and the binlog reader.
pub struct Source {
    config: SourceConfig,
    /// The server id this instance reads the binlog as.
    replica_id: u32,
    cluster: Arc<Cluster>,
    catalog: Arc<Catalog>,
    metadata: Arc<Database>,
    propagation: PropagationConfig,
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    stats: Mutex<SourceStats>,
    /// Ids of loads, so that a superseded load cannot publish.
    next_load: AtomicU64,
    /// The position the cluster has applied the binlog to.
    applied: tokio::sync::watch::Sender<Option<Position>>,
    /// Queries waiting at the barrier: the reader applies at once for them.
    waiting: AtomicUsize,
    wake: tokio::sync::Notify,
    /// Cluster changes and snapshot switches one at a time.
    apply: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
    stop: tokio::sync::Notify,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({})", self.config.display())
    }
}

impl Source {
    pub fn new(
        config: SourceConfig,
        cluster: Arc<Cluster>,
        catalog: Arc<Catalog>,
        metadata: Arc<Database>,
        propagation: PropagationConfig,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Source> {
        let replica_id = config.server_id.unwrap_or_else(replica_id);
        Arc::new(Source {
            config,
            replica_id,
            cluster,
            catalog,
            metadata,
            propagation,
            runtime,
            state: Mutex::default(),
            stats: Mutex::default(),
            next_load: AtomicU64::new(1),
            applied: tokio::sync::watch::channel(None).0,
            waiting: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            apply: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
        })
    }

    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// `user@host:port`, as messages name the server.
    pub fn server(&self) -> String {
        self.config.display()
    }

    /// A source table's state, if lakewave tracks it.
    pub fn table(&self, name: &TableName) -> Option<SourceTable> {
        self.state
            .lock()
            .tables
            .get(name)
            .map(|tracked| tracked.table.clone())
    }

    pub fn tables(&self) -> Vec<SourceTable> {
        self.state
            .lock()
            .tables
            .values()
            .map(|tracked| tracked.table.clone())
            .collect()
    }

    pub fn stats(&self) -> SourceStats {
        self.stats.lock().clone()
    }

    /// The binlog reader's last error, while it is failing.
    pub fn tail_error(&self) -> Option<String> {
        self.state.lock().tail_error.clone()
    }

    /// The binlog position the cluster has applied.
    pub fn applied(&self) -> Option<Position> {
        self.applied.borrow().clone()
    }

    /// Wait until the cluster has applied the binlog up to `target`; `false`
    /// when the wait timed out.
    pub async fn wait_applied(&self, target: &Position) -> bool {
        let mut receiver = self.applied.subscribe();
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
        let reached = tokio::time::timeout(
            self.config.barrier_timeout,
            receiver.wait_for(|applied| applied.as_ref().is_some_and(|a| a >= target)),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        reached
    }

    /// Stop the binlog reader (the instance is closing).
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_waiters();
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stop following a table and drop its cluster copy (SECONDARY_UNLOAD,
    /// or DROP TABLE seen in the binlog).
    pub async fn unload(&self, name: &TableName) -> Result<bool, crate::Error> {
        let _apply = self.apply.lock().await;
        let removed = self.state.lock().tables.remove(name).is_some();
        if removed {
            self.cluster.unload(name);
            if let Some(entry) = self.catalog.resolve(name) {
                self.catalog.remove(name, entry.id());
            }
            self.forget(name).await?;
        }
        Ok(removed)
    }

    fn mark_stale(&self, name: &TableName, reason: String) {
        if let Some(tracked) = self.state.lock().tables.get_mut(name) {
            tracked.table.status = SourceStatus::Stale { reason };
        }
    }
}
