//! The DB system: the transactional row store that owns the data of record, on
//! SQLite (bundled, WAL). It owns the database file: the SQLite tables of
//! row-store tables, the persisted catalog (`_lw_catalog`, written in the same
//! transaction as the DDL it describes), the change log with the triggers that
//! fill it, and the positions of the log's consumers.
//!
//! Capture is a transactional outbox: while a table is loaded, triggers append
//! the key of every inserted, updated or deleted row to `_lw_changes` inside the
//! writing transaction, whoever the writer is (lakewave or another SQLite
//! client). A crash can therefore neither lose a committed change nor invent
//! one; consumers (the propagator, later replicas) read the log and the rows it
//! names in one read snapshot ([`log`]) and record how far they got, and the
//! log is pruned only below every consumer.
//!
//! This module knows nothing of the cluster, DataFusion plans, SQL text or
//! Python: it takes catalog definitions and Arrow batches, and returns Arrow
//! batches and rows. It decides no names: the catalog does.

pub mod changeset;
mod connection;
mod ddl;
mod dml;
pub mod log;
mod memory;
mod scan;
mod types;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::datatypes::Field;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use thiserror::Error;

use crate::catalog::{self, DEFAULT_DATABASE, Entry, ROWID_COLUMN, TableName};
use crate::error::{ErrorKind, MySqlCode, codes};

pub use connection::{
    BeforeCommit, CommitGate, CommitTicket, DbConnection, InsertMode, StatementTxn,
};
pub use dml::Inserted;
pub use scan::{FilterOp, RowFilter, read_rows, scan_rows};
pub use types::{
    Bindable, ColumnDecoder, Storage, ValueError, ValueProblem, sqlite_column, storage,
    to_column_type,
};

/// How much of a database file SQLite reads through a memory mapping
/// (address space, not memory: pages stay the kernel's).
const MMAP_BYTES: i64 = 1 << 34;

/// Primary keys of loaded tables are logged in this many key columns.
pub const MAX_KEY_COLUMNS: usize = 4;

/// The row id column as a scan with row ids returns it (first).
pub fn rowid_field() -> Field {
    Field::new(ROWID_COLUMN, arrow::datatypes::DataType::Int64, false)
}

#[derive(Debug, Error)]
pub enum RowStoreError {
    #[error("cannot open the database '{path}'")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the database '{path}' is already open in another lakewave instance{}; \
         two instances on one file would each prune the change log for itself",
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    InUse {
        path: String,
        holder: Option<String>,
    },
    #[error("cannot lock the database '{path}'")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the database '{path}' was written by an older lakewave (catalog format {found}, \
         this version reads {expected}); export its tables and load them again"
    )]
    OldFormat {
        path: String,
        found: i64,
        expected: i64,
    },
    #[error("a SQLite table named '{0}' already exists in the database file")]
    TableExists(TableName),
    #[error("duplicate entry in table '{table}': {message}")]
    DuplicateKey { table: TableName, message: String },
    #[error("column '{column}' of table '{table}' cannot be NULL")]
    NullValue { table: TableName, column: String },
    #[error("column '{column}' of table '{table}' has no value and no default")]
    NoDefault { table: TableName, column: String },
    #[error("constraint violated in table '{table}': {message}")]
    Constraint {
        table: TableName,
        message: String,
        /// A NOT NULL column got a NULL (else a CHECK failed).
        not_null: bool,
    },
    #[error("bad value for table '{table}', column '{column}'{}: {message}",
        row.map(|r| format!(" at row {}", r + 1)).unwrap_or_default())]
    BadValue {
        table: TableName,
        column: String,
        row: Option<usize>,
        problem: ValueProblem,
        message: String,
    },
    #[error("invalid definition of table '{table}': {message}")]
    Definition {
        table: TableName,
        message: String,
        code: MySqlCode,
    },
    #[error(
        "the database file is read-only, so {action} on '{table}' was refused; nothing changed"
    )]
    ReadOnly { table: String, action: String },
    #[error("the disk is full: {action} on '{table}' was rolled back; nothing changed")]
    DiskFull { table: String, action: String },
    #[error(
        "lock wait timeout exceeded while {action} on '{table}': another session holds the \
         write lock; try restarting the transaction"
    )]
    LockWait { table: String, action: String },
    #[error(
        "{action} on '{table}' conflicts with a transaction that committed after this one \
         began; the transaction was rolled back, try restarting it"
    )]
    Conflict { table: String, action: String },
    #[error("{action} was interrupted")]
    Interrupted { action: String },
    #[error("COMMIT failed; the transaction is still open (retry COMMIT or ROLLBACK)")]
    Commit {
        #[source]
        source: rusqlite::Error,
    },
    /// The commit gate (an HA group) did not let the transaction commit.
    #[error("the transaction was rolled back: {source}")]
    Refused {
        #[source]
        source: Box<crate::Error>,
    },
    #[error("SQLite failed while {action} on '{table}'")]
    Sqlite {
        table: String,
        action: String,
        #[source]
        source: rusqlite::Error,
    },
}

impl RowStoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RowStoreError::TableExists(_) => ErrorKind::TableExists,
            RowStoreError::DuplicateKey { .. }
            | RowStoreError::NullValue { .. }
            | RowStoreError::NoDefault { .. }
            | RowStoreError::Constraint { .. } => ErrorKind::Integrity,
            RowStoreError::BadValue { .. } => ErrorKind::Data,
            RowStoreError::Definition { .. } => ErrorKind::Programming,
            RowStoreError::Interrupted { .. } => ErrorKind::Interrupted,
            RowStoreError::Refused { source } => source.kind(),
            RowStoreError::Open { .. }
            | RowStoreError::InUse { .. }
            | RowStoreError::Lock { .. }
            | RowStoreError::OldFormat { .. }
            | RowStoreError::ReadOnly { .. }
            | RowStoreError::DiskFull { .. }
            | RowStoreError::LockWait { .. }
            | RowStoreError::Conflict { .. }
            | RowStoreError::Commit { .. }
            | RowStoreError::Sqlite { .. } => ErrorKind::Operational,
        }
    }

    pub fn code(&self) -> MySqlCode {
        match self {
            RowStoreError::Open { .. }
            | RowStoreError::InUse { .. }
            | RowStoreError::Lock { .. }
            | RowStoreError::OldFormat { .. } => MySqlCode::new(1016, "HY000"),
            RowStoreError::TableExists(_) => codes::TABLE_EXISTS,
            RowStoreError::DuplicateKey { .. } => codes::DUP_ENTRY,
            RowStoreError::NullValue { .. } => codes::BAD_NULL,
            RowStoreError::NoDefault { .. } => codes::NO_DEFAULT_FOR_FIELD,
            RowStoreError::Constraint { not_null: true, .. } => codes::BAD_NULL,
            RowStoreError::Constraint { .. } => MySqlCode::new(3819, "HY000"),
            RowStoreError::BadValue { problem, .. } => match problem {
                ValueProblem::TooLong => codes::DATA_TOO_LONG,
                ValueProblem::OutOfRange => codes::WARN_DATA_OUT_OF_RANGE,
                ValueProblem::BadTemporal => codes::TRUNCATED_WRONG_VALUE,
                ValueProblem::Incorrect => codes::TRUNCATED_WRONG_VALUE_FOR_FIELD,
            },
            RowStoreError::Definition { code, .. } => *code,
            RowStoreError::ReadOnly { .. } => codes::OPEN_AS_READONLY,
            RowStoreError::DiskFull { .. } => codes::DISK_FULL,
            RowStoreError::LockWait { .. } => codes::LOCK_WAIT_TIMEOUT,
            RowStoreError::Conflict { .. } => codes::LOCK_DEADLOCK,
            RowStoreError::Interrupted { .. } => codes::QUERY_INTERRUPTED,
            RowStoreError::Commit { .. } => codes::ERROR_DURING_COMMIT,
            RowStoreError::Refused { source } => source.code(),
            RowStoreError::Sqlite { .. } => codes::GET_ERRNO,
        }
    }

    /// Classify a SQLite failure while `action` ran on `table`, from SQLite's
    /// result codes.
    pub fn sqlite(table: &TableName, action: &str, error: rusqlite::Error) -> RowStoreError {
        Self::sqlite_on(&table.to_string(), action, error)
    }

    pub fn sqlite_on(table: &str, action: &str, error: rusqlite::Error) -> RowStoreError {
        let code = error.sqlite_error().map(|e| (e.code, e.extended_code));
        let message = match &error {
            rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
            other => other.to_string(),
        };
        let name = || {
            TableName::parse(table, DEFAULT_DATABASE).unwrap_or_else(|_| TableName::new("", table))
        };
        match code {
            Some((ErrorCode::ConstraintViolation, extended))
                if extended == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || extended == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                RowStoreError::DuplicateKey {
                    table: name(),
                    message,
                }
            }
            Some((ErrorCode::ConstraintViolation, extended)) => RowStoreError::Constraint {
                table: name(),
                message,
                not_null: extended == rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL,
            },
            Some((ErrorCode::ReadOnly, _)) => RowStoreError::ReadOnly {
                table: table.to_string(),
                action: action.to_string(),
            },
            Some((ErrorCode::DiskFull, _)) => RowStoreError::DiskFull {
                table: table.to_string(),
                action: action.to_string(),
            },
            Some((ErrorCode::DatabaseBusy, extended))
                if extended == rusqlite::ffi::SQLITE_BUSY_SNAPSHOT =>
            {
                RowStoreError::Conflict {
                    table: table.to_string(),
                    action: action.to_string(),
                }
            }
            Some((ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked, _)) => {
                RowStoreError::LockWait {
                    table: table.to_string(),
                    action: action.to_string(),
                }
            }
            Some((ErrorCode::OperationInterrupted, _)) => RowStoreError::Interrupted {
                action: format!("{action} on '{table}'"),
            },
            _ => RowStoreError::Sqlite {
                table: table.to_string(),
                action: action.to_string(),
                source: error,
            },
        }
    }

    fn definition(table: &TableName, code: MySqlCode, message: impl Into<String>) -> Self {
        RowStoreError::Definition {
            table: table.clone(),
            message: message.into(),
            code,
        }
    }
}

pub(crate) type Result<T, E = RowStoreError> = std::result::Result<T, E>;

/// The SQLite table name: the bare name in the default database,
/// `database.table` (one quoted identifier) in others.
pub fn sqlite_name(name: &TableName) -> String {
    if name.database == DEFAULT_DATABASE {
        name.table.clone()
    } else {
        format!("{}.{}", name.database, name.table)
    }
}

/// `name` quoted as a SQLite identifier.
pub fn quoted_table(name: &TableName) -> String {
    quote(&sqlite_name(name))
}

pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A folder deleted when the database that lives in it closes.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static SCRATCH: AtomicU64 = AtomicU64::new(0);

/// What a database file holds besides its tables' rows: the databases and
/// the catalog entries, as read when it was opened.
#[derive(Debug, Default)]
pub struct StoredCatalog {
    pub databases: Vec<String>,
    pub entries: Vec<Entry>,
}

/// The DB system file shared by an instance's sessions, its propagator and
/// (later) its replicas. Holding it holds the file's instance lock.
pub struct Database {
    path: PathBuf,
    /// Holds the file of an in-memory database; `None` for a named file.
    _scratch: Option<ScratchDir>,
    /// The exclusive lock that keeps a second instance off this file.
    lock: parking_lot::Mutex<Option<File>>,
    read_only: bool,
    /// How long a writer waits for another session's write lock.
    lock_wait: Duration,
    /// Set once when the instance joins an HA group: every session's commit
    /// passes through it.
    gate: std::sync::OnceLock<Arc<dyn CommitGate>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("gated", &self.gate.get().is_some())
            .finish_non_exhaustive()
    }
}

const META_SQL: &str = "
CREATE TABLE IF NOT EXISTS _lw_meta(key TEXT PRIMARY KEY, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS _lw_databases(name TEXT PRIMARY KEY) STRICT;
CREATE TABLE IF NOT EXISTS _lw_catalog(
    id INTEGER PRIMARY KEY, db TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    definition TEXT NOT NULL, UNIQUE(db, name)) STRICT;
CREATE TABLE IF NOT EXISTS _lw_changes(
    seq INTEGER PRIMARY KEY, tbl INTEGER NOT NULL,
    k0 ANY, k1 ANY, k2 ANY, k3 ANY) STRICT;
CREATE TABLE IF NOT EXISTS _lw_consumers(
    name TEXT PRIMARY KEY, position INTEGER NOT NULL, updated_at INTEGER NOT NULL) STRICT;
INSERT OR IGNORE INTO _lw_databases VALUES ('main');
";

impl Database {
    /// Open (or create) the database file at `path`; `None` makes a private
    /// database that disappears when the instance closes. An in-memory database
    /// is a file in a scratch folder (on /dev/shm when there is one) so that the
    /// propagator can read it through its own connection, as with a named file.
    ///
    /// A named file is locked for this instance: a second instance on the
    /// same file is refused (`InUse`) until this one closes or its process
    /// dies.
    pub fn open(
        path: Option<&Path>,
        lock_wait: Duration,
    ) -> Result<(Arc<Database>, StoredCatalog)> {
        memory::use_process_allocator();
        // SQLite's and DuckDB's name for a private in-memory database.
        let path = path.filter(|p| *p != Path::new(":memory:"));
        let (path, scratch) = match path {
            Some(p) => (p.to_path_buf(), None),
            None => {
                let base = Path::new("/dev/shm");
                let base = if base.is_dir() {
                    base.to_path_buf()
                } else {
                    std::env::temp_dir()
                };
                let dir = base.join(format!(
                    "lakewave-{}-{}",
                    std::process::id(),
                    SCRATCH.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&dir).map_err(|source| RowStoreError::Lock {
                    path: dir.display().to_string(),
                    source,
                })?;
                (dir.join("memory.db"), Some(ScratchDir(dir)))
            }
        };
        let mut db = Database {
            path,
            _scratch: scratch,
            lock: parking_lot::Mutex::new(None),
            read_only: false,
            lock_wait,
            gate: std::sync::OnceLock::new(),
        };
        let conn = db.connect()?;
        db.read_only = conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false);
        if db._scratch.is_none() {
            *db.lock.get_mut() = db.lock_file()?;
        }
        let open_error = |source| RowStoreError::Open {
            path: db.path.display().to_string(),
            source,
        };
        // WAL lets readers (queries, the propagator) run beside the writer.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") && !db.read_only {
            return Err(open_error(rusqlite::Error::InvalidQuery));
        }
        db.check_format(&conn)?;
        if !db.read_only {
            conn.execute_batch(META_SQL).map_err(open_error)?;
            conn.execute(
                "INSERT OR IGNORE INTO _lw_meta VALUES ('catalog_format', ?)",
                [catalog::persist::FORMAT_VERSION],
            )
            .map_err(open_error)?;
        }
        let stored = db.read_catalog(&conn)?;
        Ok((Arc::new(db), stored))
    }

    /// Take the file's instance lock (an advisory lock on a file beside the
    /// database, released by the kernel if the process dies).
    fn lock_file(&self) -> Result<Option<File>> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push("-lakewave-lock");
        let lock_path = PathBuf::from(lock_path);
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
        {
            Ok(file) => file,
            // A read-only folder: only readers can be here, and they never
            // prune the log, so there is nothing to guard.
            Err(_) if self.read_only => return Ok(None),
            Err(source) => {
                return Err(RowStoreError::Lock {
                    path: lock_path.display().to_string(),
                    source,
                });
            }
        };
        let locked = if self.read_only {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path)
                    .ok()
                    .map(|text| text.trim().to_string())
                    .filter(|text| !text.is_empty());
                return Err(RowStoreError::InUse {
                    path: self.path.display().to_string(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(RowStoreError::Lock {
                    path: lock_path.display().to_string(),
                    source,
                });
            }
        }
        if !self.read_only {
            let mut writer = &file;
            let _ = file.set_len(0);
            let _ = writeln!(writer, "process {}", std::process::id());
        }
        Ok(Some(file))
    }

    /// Refuse files written with an older catalog layout.
    fn check_format(&self, conn: &Connection) -> Result<()> {
        let open_error = |source| RowStoreError::Open {
            path: self.path.display().to_string(),
            source,
        };
        let has = |table: &str| -> Result<bool> {
            conn.query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?",
                [table],
                |r| r.get(0),
            )
            .map_err(open_error)
        };
        if has("_lw_tables")? && !has("_lw_catalog")? {
            return Err(RowStoreError::OldFormat {
                path: self.path.display().to_string(),
                found: 1,
                expected: catalog::persist::FORMAT_VERSION,
            });
        }
        if has("_lw_meta")? {
            let found: Option<i64> = conn
                .query_row(
                    "SELECT value FROM _lw_meta WHERE key = 'catalog_format'",
                    [],
                    |r| r.get(0),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    other => Err(open_error(other)),
                })?;
            if let Some(found) = found
                && found != catalog::persist::FORMAT_VERSION
            {
                return Err(RowStoreError::OldFormat {
                    path: self.path.display().to_string(),
                    found,
                    expected: catalog::persist::FORMAT_VERSION,
                });
            }
        }
        Ok(())
    }

    fn read_catalog(&self, conn: &Connection) -> Result<StoredCatalog> {
        let open_error = |source| RowStoreError::Open {
            path: self.path.display().to_string(),
            source,
        };
        let has_catalog: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = '_lw_catalog'",
                [],
                |r| r.get(0),
            )
            .map_err(open_error)?;
        if !has_catalog {
            // A read-only file lakewave never wrote: nothing of ours in it.
            return Ok(StoredCatalog::default());
        }
        let mut databases = Vec::new();
        let mut stmt = conn
            .prepare("SELECT name FROM _lw_databases ORDER BY name")
            .map_err(open_error)?;
        for name in stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(open_error)?
        {
            databases.push(name.map_err(open_error)?);
        }
        let mut stmt = conn
            .prepare("SELECT id, db, name, definition FROM _lw_catalog ORDER BY id")
            .map_err(open_error)?;
        let rows: Vec<(i64, String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(open_error)?
            .collect::<rusqlite::Result<_>>()
            .map_err(open_error)?;
        let mut entries = Vec::new();
        for (id, db, name, definition) in rows {
            let name = TableName::new(db, name);
            let entry =
                catalog::persist::decode(id, name.clone(), &definition).map_err(|reason| {
                    RowStoreError::Definition {
                        table: name.clone(),
                        message: format!("its stored definition cannot be read: {reason}"),
                        code: codes::UNKNOWN_ERROR,
                    }
                })?;
            entries.push(entry);
        }
        Ok(StoredCatalog { databases, entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Give up the file's instance lock (the instance is closing), so that
    /// another instance may open the file.
    pub fn release(&self) {
        self.lock.lock().take();
    }

    pub fn is_scratch(&self) -> bool {
        self._scratch.is_some()
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn lock_wait(&self) -> Duration {
        self.lock_wait
    }

    /// Route every session's commit through `gate` from now on; `false` if
    /// one was set already.
    pub fn set_commit_gate(&self, gate: Arc<dyn CommitGate>) -> bool {
        self.gate.set(gate).is_ok()
    }

    pub fn commit_gate(&self) -> Option<&Arc<dyn CommitGate>> {
        self.gate.get()
    }

    /// A new SQLite connection on the database file.
    pub fn connect(&self) -> Result<Connection> {
        let open_error = |source| RowStoreError::Open {
            path: self.path.display().to_string(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = match Connection::open_with_flags(&self.path, flags) {
            Ok(c) => c,
            Err(_) if self.path.exists() => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_error)?,
            Err(e) => return Err(open_error(e)),
        };
        conn.busy_timeout(self.lock_wait).map_err(open_error)?;
        // Durable at every commit against a process crash; a power loss may
        // lose the last commits but never corrupts the file.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_error)?;
        // REPLACE's implicit deletes must fire the capture triggers.
        conn.pragma_update(None, "recursive_triggers", "ON")
            .map_err(open_error)?;
        // Pages are read in place from the kernel's page cache: without a
        // mapping each session's connection copies every page it reads into
        // a cache of its own (64 sessions, 64 copies, each faulted in).
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)
            .map_err(open_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}
