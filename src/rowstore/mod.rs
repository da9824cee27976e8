//! The DB system: the transactional row store that owns the data of record, on
//! SQLite (bundled, WAL). It owns the database file, the persisted definitions of
//! row-store tables (declared MySQL types, primary key, whether the table is
//! loaded into the cluster) and the change log with the triggers that fill it.
//!
//! Capture is a transactional outbox: while a table is loaded, triggers append
//! the key of every inserted, updated or deleted row to `_lw_changes` inside the
//! writing transaction, whoever the writer is (lakewave or another SQLite
//! client). A crash can therefore neither lose a committed change nor invent
//! one; the propagator (`changes`) reads the log and the rows it names in one
//! read snapshot. This module knows nothing of the cluster, DataFusion plans or
//! Python; it reads and writes Arrow batches and SQLite rows only.

mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, Int64Builder, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use parking_lot::{Mutex, RwLock};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, params};
use thiserror::Error;

use crate::catalog::{DEFAULT_DATABASE, TableName};
use crate::error::ErrorKind;

pub use types::{Bindable, ColumnDecoder, SqlType, Storage, to_column_type};

/// Primary keys of loaded tables are logged in this many key columns.
pub const MAX_KEY_COLUMNS: usize = 4;

/// The hidden column a scan adds when asked for row ids (DML uses it).
pub const ROWID_COLUMN: &str = "__lw_rowid";

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
    #[error("table '{0}' already exists")]
    TableExists(TableName),
    #[error("table '{0}' does not exist")]
    TableNotFound(TableName),
    #[error("database '{0}' does not exist")]
    DatabaseNotFound(String),
    #[error("database '{0}' already exists")]
    DatabaseExists(String),
    #[error("duplicate primary key in table '{table}': {message}")]
    DuplicateKey { table: TableName, message: String },
    #[error("constraint violated in table '{table}': {message}")]
    Constraint { table: TableName, message: String },
    #[error("bad value for table '{table}', column '{column}': {message}")]
    BadValue {
        table: TableName,
        column: String,
        message: String,
    },
    #[error("invalid definition of table '{table}': {message}")]
    Definition { table: TableName, message: String },
    #[error(
        "the database file is read-only, so {action} on '{table}' was refused; nothing changed"
    )]
    ReadOnly { table: String, action: String },
    #[error("the disk is full: {action} on '{table}' was rolled back; nothing changed")]
    DiskFull { table: String, action: String },
    #[error("SQLite failed while {action} on '{table}'")]
    Sqlite {
        table: String,
        action: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Transaction(String),
}

impl RowStoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RowStoreError::TableExists(_) | RowStoreError::DatabaseExists(_) => {
                ErrorKind::TableExists
            }
            RowStoreError::TableNotFound(_) | RowStoreError::DatabaseNotFound(_) => {
                ErrorKind::TableNotFound
            }
            RowStoreError::DuplicateKey { .. } | RowStoreError::Constraint { .. } => {
                ErrorKind::Integrity
            }
            RowStoreError::BadValue { .. } => ErrorKind::Data,
            RowStoreError::Definition { .. } | RowStoreError::Transaction(_) => {
                ErrorKind::Programming
            }
            RowStoreError::Open { .. }
            | RowStoreError::ReadOnly { .. }
            | RowStoreError::DiskFull { .. }
            | RowStoreError::Sqlite { .. } => ErrorKind::Operational,
        }
    }

    /// Classify a SQLite failure while `action` ran on `table`.
    pub fn sqlite(table: &TableName, action: &str, error: rusqlite::Error) -> RowStoreError {
        let code = error.sqlite_error().map(|e| (e.code, e.extended_code));
        let message = match &error {
            rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
            other => other.to_string(),
        };
        match code {
            Some((ErrorCode::ConstraintViolation, extended))
                if extended == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || extended == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                RowStoreError::DuplicateKey {
                    table: table.clone(),
                    message,
                }
            }
            Some((ErrorCode::ConstraintViolation, _)) => RowStoreError::Constraint {
                table: table.clone(),
                message,
            },
            Some((ErrorCode::ReadOnly, _)) => RowStoreError::ReadOnly {
                table: table.to_string(),
                action: action.to_string(),
            },
            Some((ErrorCode::DiskFull, _)) => RowStoreError::DiskFull {
                table: table.to_string(),
                action: action.to_string(),
            },
            _ => RowStoreError::Sqlite {
                table: table.to_string(),
                action: action.to_string(),
                source: error,
            },
        }
    }
}

type Result<T, E = RowStoreError> = std::result::Result<T, E>;

/// One column of a row-store table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: bool,
    /// Filled in by SQLite when inserted as NULL (a single integer key).
    pub auto_increment: bool,
}

/// A row-store table's definition, as persisted in `_lw_tables`.
#[derive(Debug, Clone)]
pub struct RowTable {
    pub id: i64,
    pub name: TableName,
    pub columns: Vec<ColumnDef>,
    /// Positions of the primary key columns.
    pub primary_key: Vec<usize>,
    /// `ALTER TABLE ... SECONDARY_LOAD` was run and not undone.
    pub loaded: bool,
}

impl RowTable {
    /// The SQLite table name: the bare name in the default database,
    /// `database.table` (one quoted identifier) in others.
    pub fn sqlite_name(name: &TableName) -> String {
        if name.database == DEFAULT_DATABASE {
            name.table.clone()
        } else {
            format!("{}.{}", name.database, name.table)
        }
    }

    pub fn quoted(&self) -> String {
        quote(&Self::sqlite_name(&self.name))
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.sql_type.arrow_type(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn key_names(&self) -> Vec<String> {
        self.primary_key
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }

    /// The key columns' Arrow schema (the layout of changed-key batches).
    pub fn key_schema(&self) -> SchemaRef {
        Arc::new(
            self.schema()
                .project(&self.primary_key)
                .expect("key positions"),
        )
    }

    fn integer_key(&self) -> bool {
        self.primary_key.len() == 1
            && matches!(
                self.columns[self.primary_key[0]].sql_type,
                SqlType::Int | SqlType::BigInt
            )
    }

    fn create_sql(&self) -> String {
        let rowid_key = self.integer_key();
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = quote(&c.name);
                let (storage, check) = c.sql_type.sqlite_column(&name);
                let mut text = format!("{name} {storage}");
                if rowid_key && self.primary_key == [i] {
                    // A rowid alias: the table is clustered on its key.
                    text.push_str(" PRIMARY KEY");
                    if !c.auto_increment {
                        text.push_str(" NOT NULL");
                    }
                } else if !c.nullable || self.primary_key.contains(&i) {
                    text.push_str(" NOT NULL");
                }
                if let Some(check) = check {
                    text.push_str(&format!(" CHECK ({check})"));
                }
                text
            })
            .collect();
        if !self.primary_key.is_empty() && !rowid_key {
            parts.push(format!(
                "PRIMARY KEY ({})",
                self.primary_key
                    .iter()
                    .map(|&i| quote(&self.columns[i].name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        format!(
            "CREATE TABLE {} ({}) STRICT",
            self.quoted(),
            parts.join(", ")
        )
    }

    fn column_list(&self, columns: &[usize]) -> String {
        columns
            .iter()
            .map(|&i| quote(&self.columns[i].name))
            .collect::<Vec<_>>()
            .join(", ")
    }
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

/// The DB system shared by an instance's connections and its propagator.
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    /// Holds the file of an in-memory database; `None` for a named file.
    _scratch: Option<ScratchDir>,
    tables: RwLock<BTreeMap<TableName, Arc<RowTable>>>,
    databases: RwLock<BTreeSet<String>>,
}

const META_SQL: &str = "
CREATE TABLE IF NOT EXISTS _lw_databases(name TEXT PRIMARY KEY) STRICT;
CREATE TABLE IF NOT EXISTS _lw_tables(
    id INTEGER PRIMARY KEY, db TEXT NOT NULL, name TEXT NOT NULL,
    primary_key TEXT NOT NULL, loaded INTEGER NOT NULL DEFAULT 0, UNIQUE(db, name)) STRICT;
CREATE TABLE IF NOT EXISTS _lw_columns(
    table_id INTEGER NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, nullable INTEGER NOT NULL, auto_increment INTEGER NOT NULL,
    PRIMARY KEY (table_id, position)) STRICT;
CREATE TABLE IF NOT EXISTS _lw_changes(
    seq INTEGER PRIMARY KEY, tbl INTEGER NOT NULL,
    k0 ANY, k1 ANY, k2 ANY, k3 ANY) STRICT;
CREATE TABLE IF NOT EXISTS _lw_external(
    db TEXT NOT NULL, name TEXT NOT NULL, ddl TEXT NOT NULL,
    loaded INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (db, name)) STRICT;
INSERT OR IGNORE INTO _lw_databases VALUES ('main');
";

impl Database {
    /// Open (or create) the database file at `path`; `None` makes a private
    /// database that disappears when the instance closes. An in-memory database
    /// is a file in a scratch folder (on /dev/shm when there is one) so that the
    /// propagator can read it through its own connection, as with a named file.
    pub fn open(path: Option<&Path>) -> Result<Arc<Database>> {
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
                std::fs::create_dir_all(&dir).map_err(|e| RowStoreError::Open {
                    path: dir.display().to_string(),
                    source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
                })?;
                (dir.join("memory.db"), Some(ScratchDir(dir)))
            }
        };
        let db = Database {
            path,
            _scratch: scratch,
            tables: RwLock::default(),
            databases: RwLock::default(),
        };
        let conn = db.connect()?;
        let open_error = |source| RowStoreError::Open {
            path: db.path.display().to_string(),
            source,
        };
        // WAL lets readers (queries, the propagator) run beside the writer.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") && !db.read_only(&conn) {
            return Err(open_error(rusqlite::Error::InvalidQuery));
        }
        if !db.read_only(&conn) {
            conn.execute_batch(META_SQL).map_err(open_error)?;
        }
        db.reload_definitions(&conn).map_err(open_error)?;
        Ok(Arc::new(db))
    }

    fn read_only(&self, conn: &Connection) -> bool {
        conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_scratch(&self) -> bool {
        self._scratch.is_some()
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
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_error)?;
        // Durable at every commit against a process crash; a power loss may
        // lose the last commits but never corrupts the file.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_error)?;
        // REPLACE's implicit deletes must fire the capture triggers.
        conn.pragma_update(None, "recursive_triggers", "ON")
            .map_err(open_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn reload_definitions(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut databases = BTreeSet::new();
        let mut stmt = conn.prepare("SELECT name FROM _lw_databases")?;
        for name in stmt.query_map([], |r| r.get::<_, String>(0))? {
            databases.insert(name?);
        }
        databases.insert(DEFAULT_DATABASE.to_string());
        let mut tables = BTreeMap::new();
        let mut stmt =
            conn.prepare("SELECT id, db, name, primary_key, loaded FROM _lw_tables ORDER BY id")?;
        let rows: Vec<(i64, String, String, String, i64)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut columns_stmt = conn.prepare(
            "SELECT name, type, nullable, auto_increment FROM _lw_columns WHERE table_id = ? ORDER BY position",
        )?;
        for (id, db, name, key, loaded) in rows {
            let columns = columns_stmt
                .query_map([id], |r| {
                    let type_text: String = r.get(1)?;
                    Ok(ColumnDef {
                        name: r.get(0)?,
                        sql_type: SqlType::parse(&type_text).unwrap_or(SqlType::Text),
                        nullable: r.get::<_, i64>(2)? != 0,
                        auto_increment: r.get::<_, i64>(3)? != 0,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let primary_key = key
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.parse().ok())
                .collect();
            let name = TableName::new(db, name);
            tables.insert(
                name.clone(),
                Arc::new(RowTable {
                    id,
                    name,
                    columns,
                    primary_key,
                    loaded: loaded != 0,
                }),
            );
        }
        *self.databases.write() = databases;
        *self.tables.write() = tables;
        Ok(())
    }

    pub fn table(&self, name: &TableName) -> Option<Arc<RowTable>> {
        self.tables.read().get(name).cloned()
    }

    pub fn table_by_id(&self, id: i64) -> Option<Arc<RowTable>> {
        self.tables.read().values().find(|t| t.id == id).cloned()
    }

    pub fn tables(&self) -> Vec<Arc<RowTable>> {
        self.tables.read().values().cloned().collect()
    }

    pub fn table_names(&self, database: &str) -> Vec<String> {
        self.tables
            .read()
            .keys()
            .filter(|n| n.database == database)
            .map(|n| n.table.clone())
            .collect()
    }

    pub fn has_database(&self, name: &str) -> bool {
        self.databases.read().contains(name)
    }

    /// Persisted external table definitions: name, DDL text, loaded flag.
    pub fn external_ddls(&self) -> Result<Vec<(TableName, String, bool)>> {
        let conn = self.connect()?;
        let read = || -> rusqlite::Result<Vec<(TableName, String, bool)>> {
            let mut stmt =
                conn.prepare("SELECT db, name, ddl, loaded FROM _lw_external ORDER BY db, name")?;
            stmt.query_map([], |r| {
                Ok((
                    TableName::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    r.get(2)?,
                    r.get::<_, i64>(3)? != 0,
                ))
            })?
            .collect()
        };
        read().map_err(|e| {
            RowStoreError::sqlite(
                &TableName::new("", "_lw_external"),
                "reading external tables",
                e,
            )
        })
    }

    pub fn database_names(&self) -> Vec<String> {
        self.databases.read().iter().cloned().collect()
    }
}

/// What a session's connection is doing.
#[derive(Debug, Default, Clone, Copy)]
struct TxnState {
    /// Between BEGIN and COMMIT/ROLLBACK.
    explicit: bool,
    /// The open transaction has written something.
    dirty: bool,
}

/// One session's SQLite connection, with MySQL's transaction behaviour on top:
/// autocommit by default, `BEGIN` ... `COMMIT`/`ROLLBACK`, and statement-level
/// atomicity (a failing statement undoes only itself).
pub struct DbConnection {
    db: Arc<Database>,
    conn: Mutex<Connection>,
    state: Mutex<TxnState>,
    /// Bytes of rows written and not yet committed (a hint for the propagator).
    pending: AtomicU64,
    /// Called after every commit that wrote something, with `pending`.
    on_commit: Box<dyn Fn(u64) + Send + Sync>,
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

impl DbConnection {
    pub fn open(
        db: Arc<Database>,
        on_commit: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<DbConnection> {
        let conn = db.connect()?;
        Ok(DbConnection {
            db,
            conn: Mutex::new(conn),
            state: Mutex::default(),
            pending: AtomicU64::new(0),
            on_commit,
        })
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    pub fn in_transaction(&self) -> bool {
        self.state.lock().explicit
    }

    /// The open transaction has uncommitted writes (its reads must stay here).
    pub fn has_uncommitted_writes(&self) -> bool {
        let state = self.state.lock();
        state.explicit && state.dirty
    }

    fn txn_error(action: &str, e: rusqlite::Error) -> RowStoreError {
        RowStoreError::Sqlite {
            table: "(transaction)".into(),
            action: action.into(),
            source: e,
        }
    }

    /// `BEGIN`: as in MySQL, an open transaction is committed first.
    pub fn begin(&self) -> Result<()> {
        self.commit()?;
        self.conn
            .lock()
            .execute_batch("BEGIN")
            .map_err(|e| Self::txn_error("BEGIN", e))?;
        *self.state.lock() = TxnState {
            explicit: true,
            dirty: false,
        };
        Ok(())
    }

    pub fn commit(&self) -> Result<()> {
        let state = *self.state.lock();
        if !state.explicit {
            return Ok(());
        }
        self.conn
            .lock()
            .execute_batch("COMMIT")
            .map_err(|e| Self::txn_error("COMMIT", e))?;
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
                .map_err(|e| Self::txn_error("ROLLBACK", e))?;
        }
        *self.state.lock() = TxnState::default();
        self.pending.store(0, Ordering::Release);
        Ok(())
    }

    /// Run `f` as one atomic statement: inside the open transaction under a
    /// savepoint, or in its own transaction. On error nothing `f` did remains.
    pub fn write<T>(
        &self,
        table: &TableName,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let explicit = self.state.lock().explicit;
        let conn = self.conn.lock();
        let (open, keep, undo) = if explicit {
            (
                "SAVEPOINT lw_statement",
                "RELEASE lw_statement",
                "ROLLBACK TO lw_statement; RELEASE lw_statement",
            )
        } else {
            ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
        };
        conn.execute_batch(open)
            .map_err(|e| RowStoreError::sqlite(table, "starting a write", e))?;
        match f(&conn) {
            Ok(value) => {
                if let Err(e) = conn.execute_batch(keep) {
                    let _ = conn.execute_batch(undo);
                    return Err(RowStoreError::sqlite(table, "committing", e));
                }
                drop(conn);
                if explicit {
                    self.state.lock().dirty = true;
                } else {
                    (self.on_commit)(self.pending.swap(0, Ordering::AcqRel));
                }
                Ok(value)
            }
            Err(e) => {
                let _ = conn.execute_batch(undo);
                Err(e)
            }
        }
    }

    /// Run `f` on the connection for reading (sees the open transaction's writes).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn.lock())
    }

    /// DDL commits the open transaction first, as in MySQL.
    fn ddl<T>(&self, table: &TableName, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.commit()?;
        self.write(table, f)
    }

    pub fn create_database(&self, name: &str, if_not_exists: bool) -> Result<bool> {
        if self.db.has_database(name) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(RowStoreError::DatabaseExists(name.to_string()))
            };
        }
        let table = TableName::new(name, "");
        self.ddl(&table, |conn| {
            conn.execute("INSERT INTO _lw_databases VALUES (?)", [name])
                .map_err(|e| RowStoreError::sqlite(&table, "CREATE DATABASE", e))?;
            Ok(())
        })?;
        self.db.databases.write().insert(name.to_string());
        Ok(true)
    }

    /// Create a table. `columns` and `primary_key` are checked here.
    pub fn create_table(
        &self,
        name: &TableName,
        columns: Vec<ColumnDef>,
        primary_key: Vec<usize>,
    ) -> Result<Arc<RowTable>> {
        if !self.db.has_database(&name.database) {
            return Err(RowStoreError::DatabaseNotFound(name.database.clone()));
        }
        if self.db.table(name).is_some() {
            return Err(RowStoreError::TableExists(name.clone()));
        }
        let definition = |message: String| RowStoreError::Definition {
            table: name.clone(),
            message,
        };
        if columns.is_empty() {
            return Err(definition("a table needs at least one column".into()));
        }
        let mut seen = BTreeSet::new();
        for c in &columns {
            if c.name.starts_with("__lw_") {
                return Err(definition(format!(
                    "column names starting with __lw_ are reserved ('{}')",
                    c.name
                )));
            }
            if !seen.insert(c.name.clone()) {
                return Err(definition(format!("column '{}' is declared twice", c.name)));
            }
            if c.auto_increment
                && (primary_key.len() != 1
                    || columns[primary_key[0]].name != c.name
                    || !matches!(c.sql_type, SqlType::Int | SqlType::BigInt))
            {
                return Err(definition(format!(
                    "AUTO_INCREMENT column '{}' must be the table's only primary key column and an INT or BIGINT",
                    c.name
                )));
            }
        }
        let sqlite_name = RowTable::sqlite_name(name);
        let mut table = RowTable {
            id: 0,
            name: name.clone(),
            columns,
            primary_key,
            loaded: false,
        };
        let created = self.ddl(name, |conn| {
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
            conn.execute_batch(&table.create_sql())
                .map_err(|e| RowStoreError::sqlite(name, "CREATE TABLE", e))?;
            let key = table
                .primary_key
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(",");
            conn.execute(
                "INSERT INTO _lw_tables(db, name, primary_key) VALUES (?, ?, ?)",
                params![name.database, name.table, key],
            )
            .map_err(|e| RowStoreError::sqlite(name, "CREATE TABLE", e))?;
            let id = conn.last_insert_rowid();
            for (position, c) in table.columns.iter().enumerate() {
                conn.execute(
                    "INSERT INTO _lw_columns VALUES (?, ?, ?, ?, ?, ?)",
                    params![
                        id,
                        position as i64,
                        c.name,
                        c.sql_type.to_string(),
                        c.nullable as i64,
                        c.auto_increment as i64
                    ],
                )
                .map_err(|e| RowStoreError::sqlite(name, "CREATE TABLE", e))?;
            }
            Ok(id)
        })?;
        table.id = created;
        let table = Arc::new(table);
        self.db
            .tables
            .write()
            .insert(name.clone(), Arc::clone(&table));
        Ok(table)
    }

    pub fn drop_table(&self, name: &TableName) -> Result<()> {
        let table = self.table(name)?;
        self.ddl(name, |conn| {
            conn.execute_batch(&format!("DROP TABLE {}", table.quoted()))
                .map_err(|e| RowStoreError::sqlite(name, "DROP TABLE", e))?;
            conn.execute("DELETE FROM _lw_columns WHERE table_id = ?", [table.id])
                .and_then(|_| conn.execute("DELETE FROM _lw_tables WHERE id = ?", [table.id]))
                .map_err(|e| RowStoreError::sqlite(name, "DROP TABLE", e))?;
            Ok(())
        })?;
        self.db.tables.write().remove(name);
        Ok(())
    }

    /// Persist an external table's definition (its DDL text).
    pub fn save_external(&self, name: &TableName, ddl: &str) -> Result<()> {
        self.ddl(name, |conn| {
            conn.execute(
                "INSERT INTO _lw_external(db, name, ddl) VALUES (?, ?, ?)",
                params![name.database, name.table, ddl],
            )
            .map(|_| ())
            .map_err(|e| RowStoreError::sqlite(name, "CREATE EXTERNAL TABLE", e))
        })
    }

    pub fn remove_external(&self, name: &TableName) -> Result<()> {
        self.ddl(name, |conn| {
            conn.execute(
                "DELETE FROM _lw_external WHERE db = ? AND name = ?",
                params![name.database, name.table],
            )
            .map(|_| ())
            .map_err(|e| RowStoreError::sqlite(name, "DROP TABLE", e))
        })
    }

    pub fn set_external_loaded(&self, name: &TableName, loaded: bool) -> Result<()> {
        self.ddl(name, |conn| {
            conn.execute(
                "UPDATE _lw_external SET loaded = ? WHERE db = ? AND name = ?",
                params![loaded as i64, name.database, name.table],
            )
            .map(|_| ())
            .map_err(|e| RowStoreError::sqlite(name, "SECONDARY_LOAD", e))
        })
    }

    /// `TRUNCATE`: a DELETE of every row, so that a loaded table's triggers log
    /// it and the cluster follows like any other change.
    pub fn truncate(&self, name: &TableName) -> Result<u64> {
        let table = self.table(name)?;
        self.ddl(name, |conn| {
            conn.execute(&format!("DELETE FROM {}", table.quoted()), [])
                .map(|n| n as u64)
                .map_err(|e| RowStoreError::sqlite(name, "TRUNCATE", e))
        })
    }

    /// `ALTER TABLE ... RENAME TO`. SQLite renames the capture triggers too.
    pub fn rename_table(&self, name: &TableName, to: &TableName) -> Result<Arc<RowTable>> {
        let table = self.table(name)?;
        if self.db.table(to).is_some() {
            return Err(RowStoreError::TableExists(to.clone()));
        }
        if !self.db.has_database(&to.database) {
            return Err(RowStoreError::DatabaseNotFound(to.database.clone()));
        }
        self.ddl(name, |conn| {
            conn.execute_batch(&format!(
                "ALTER TABLE {} RENAME TO {}",
                table.quoted(),
                quote(&RowTable::sqlite_name(to))
            ))
            .and_then(|_| {
                conn.execute(
                    "UPDATE _lw_tables SET db = ?, name = ? WHERE id = ?",
                    params![to.database, to.table, table.id],
                )
                .map(|_| ())
            })
            .map_err(|e| RowStoreError::sqlite(name, "RENAME", e))
        })?;
        let renamed = Arc::new(RowTable {
            name: to.clone(),
            ..table.as_ref().clone()
        });
        let mut tables = self.db.tables.write();
        tables.remove(name);
        tables.insert(to.clone(), Arc::clone(&renamed));
        Ok(renamed)
    }

    /// `ALTER TABLE ... ADD COLUMN` (nullable, filled with NULL).
    pub fn add_column(&self, name: &TableName, column: ColumnDef) -> Result<Arc<RowTable>> {
        let table = self.table(name)?;
        if table.column_index(&column.name).is_some() {
            return Err(RowStoreError::Definition {
                table: name.clone(),
                message: format!("column '{}' already exists", column.name),
            });
        }
        if !column.nullable || column.auto_increment {
            return Err(RowStoreError::Definition {
                table: name.clone(),
                message: format!(
                    "an added column must be nullable ('{}' is NOT NULL or AUTO_INCREMENT)",
                    column.name
                ),
            });
        }
        let quoted = quote(&column.name);
        let (storage, check) = column.sql_type.sqlite_column(&quoted);
        let check = check.map(|c| format!(" CHECK ({c})")).unwrap_or_default();
        let position = table.columns.len() as i64;
        self.ddl(name, |conn| {
            conn.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {quoted} {storage}{check}",
                table.quoted()
            ))
            .and_then(|_| {
                conn.execute(
                    "INSERT INTO _lw_columns VALUES (?, ?, ?, ?, 1, 0)",
                    params![table.id, position, column.name, column.sql_type.to_string()],
                )
                .map(|_| ())
            })
            .map_err(|e| RowStoreError::sqlite(name, "ADD COLUMN", e))
        })?;
        let mut columns = table.columns.clone();
        columns.push(column);
        self.replace_definition(RowTable {
            columns,
            ..table.as_ref().clone()
        })
    }

    /// `ALTER TABLE ... DROP COLUMN` (not a key column).
    pub fn drop_column(&self, name: &TableName, column: &str) -> Result<Arc<RowTable>> {
        let table = self.table(name)?;
        let Some(index) = table.column_index(column) else {
            return Err(RowStoreError::Definition {
                table: name.clone(),
                message: format!("column '{column}' does not exist"),
            });
        };
        if table.primary_key.contains(&index) {
            return Err(RowStoreError::Definition {
                table: name.clone(),
                message: format!("column '{column}' is part of the primary key"),
            });
        }
        if table.columns.len() == 1 {
            return Err(RowStoreError::Definition {
                table: name.clone(),
                message: "cannot drop a table's only column".into(),
            });
        }
        self.ddl(name, |conn| {
            conn.execute_batch(&format!(
                "ALTER TABLE {} DROP COLUMN {}",
                table.quoted(),
                quote(column)
            ))
            .and_then(|_| {
                conn.execute(
                    "DELETE FROM _lw_columns WHERE table_id = ? AND position = ?",
                    params![table.id, index as i64],
                )
            })
            .and_then(|_| {
                conn.execute(
                    "UPDATE _lw_columns SET position = position - 1 WHERE table_id = ? AND position > ?",
                    params![table.id, index as i64],
                )
            })
            .map_err(|e| RowStoreError::sqlite(name, "DROP COLUMN", e))?;
            let key = table
                .primary_key
                .iter()
                .map(|&k| if k > index { k - 1 } else { k }.to_string())
                .collect::<Vec<_>>()
                .join(",");
            conn.execute(
                "UPDATE _lw_tables SET primary_key = ? WHERE id = ?",
                params![key, table.id],
            )
            .map_err(|e| RowStoreError::sqlite(name, "DROP COLUMN", e))?;
            Ok(())
        })?;
        let mut columns = table.columns.clone();
        columns.remove(index);
        let primary_key = table
            .primary_key
            .iter()
            .map(|&k| if k > index { k - 1 } else { k })
            .collect();
        self.replace_definition(RowTable {
            columns,
            primary_key,
            ..table.as_ref().clone()
        })
    }

    fn replace_definition(&self, table: RowTable) -> Result<Arc<RowTable>> {
        let table = Arc::new(table);
        self.db
            .tables
            .write()
            .insert(table.name.clone(), Arc::clone(&table));
        Ok(table)
    }

    pub fn table(&self, name: &TableName) -> Result<Arc<RowTable>> {
        self.db
            .table(name)
            .ok_or_else(|| RowStoreError::TableNotFound(name.clone()))
    }

    /// Start (or stop) capturing a table's changes: create (drop) its triggers
    /// and persist the loaded flag, in one transaction. Returns the last change
    /// sequence number at that moment.
    pub fn set_capture(&self, name: &TableName, on: bool) -> Result<Arc<RowTable>> {
        let table = self.table(name)?;
        if on && table.primary_key.is_empty() {
            return Err(RowStoreError::Definition {
                table: name.clone(),
                message: "a table needs a primary key to be loaded into the cluster \
                          (changes are propagated by key)"
                    .into(),
            });
        }
        if on && table.primary_key.len() > MAX_KEY_COLUMNS {
            return Err(RowStoreError::Definition {
                table: name.clone(),
                message: format!(
                    "a loaded table's primary key may have at most {MAX_KEY_COLUMNS} columns"
                ),
            });
        }
        self.ddl(name, |conn| {
            let sqlite_error = |e| RowStoreError::sqlite(name, "SECONDARY_LOAD", e);
            for sql in drop_triggers(&table) {
                conn.execute_batch(&sql).map_err(sqlite_error)?;
            }
            if on {
                for sql in create_triggers(&table) {
                    conn.execute_batch(&sql).map_err(sqlite_error)?;
                }
            }
            conn.execute(
                "UPDATE _lw_tables SET loaded = ? WHERE id = ?",
                params![on as i64, table.id],
            )
            .map_err(sqlite_error)?;
            Ok(())
        })?;
        self.replace_definition(RowTable {
            loaded: on,
            ..table.as_ref().clone()
        })
    }

    /// Insert rows (columns already of the table's types, in table order; a
    /// column missing from `columns` is NULL or auto-assigned).
    pub fn insert(
        &self,
        table: &RowTable,
        columns: &[usize],
        batch: &RecordBatch,
        mode: InsertMode,
    ) -> Result<u64> {
        let bindables = bindable_columns(table, columns, batch)?;
        self.pending
            .fetch_add(batch.get_array_memory_size() as u64, Ordering::AcqRel);
        for (position, &column) in columns.iter().enumerate() {
            let c = &table.columns[column];
            let not_null = !c.nullable || table.primary_key.contains(&column);
            if not_null && !c.auto_increment && batch.column(position).null_count() > 0 {
                return Err(RowStoreError::Constraint {
                    table: table.name.clone(),
                    message: format!("column '{}' cannot be NULL", c.name),
                });
            }
        }
        for (index, c) in table.columns.iter().enumerate() {
            let not_null = !c.nullable || table.primary_key.contains(&index);
            if not_null && !c.auto_increment && !columns.contains(&index) {
                return Err(RowStoreError::Constraint {
                    table: table.name.clone(),
                    message: format!("column '{}' has no value and cannot be NULL", c.name),
                });
            }
        }
        let verb = match mode {
            InsertMode::Insert => "INSERT",
            InsertMode::Replace => "INSERT OR REPLACE",
            InsertMode::Ignore => "INSERT OR IGNORE",
        };
        let sql = format!(
            "{verb} INTO {} ({}) VALUES ({})",
            table.quoted(),
            table.column_list(columns),
            vec!["?"; columns.len()].join(", ")
        );
        self.write(&table.name, |conn| {
            let action = verb.to_string();
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| RowStoreError::sqlite(&table.name, &action, e))?;
            let mut changed = 0u64;
            for row in 0..batch.num_rows() {
                for (i, column) in bindables.iter().enumerate() {
                    stmt.raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(column.value(row)))
                        .map_err(|e| RowStoreError::sqlite(&table.name, &action, e))?;
                }
                changed += stmt
                    .raw_execute()
                    .map_err(|e| RowStoreError::sqlite(&table.name, &action, e))?
                    as u64;
            }
            Ok(changed)
        })
    }

    /// Set `columns` of the rows with the given row ids to `values`.
    pub fn update(
        &self,
        table: &RowTable,
        rowids: &Int64Array,
        columns: &[usize],
        values: &RecordBatch,
    ) -> Result<u64> {
        let bindables = bindable_columns(table, columns, values)?;
        self.pending
            .fetch_add(values.get_array_memory_size() as u64, Ordering::AcqRel);
        for (position, &column) in columns.iter().enumerate() {
            let c = &table.columns[column];
            if (!c.nullable || table.primary_key.contains(&column))
                && values.column(position).null_count() > 0
            {
                return Err(RowStoreError::Constraint {
                    table: table.name.clone(),
                    message: format!("column '{}' cannot be NULL", c.name),
                });
            }
        }
        let assignments = columns
            .iter()
            .enumerate()
            .map(|(i, &c)| format!("{} = ?{}", quote(&table.columns[c].name), i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE {} SET {assignments} WHERE rowid = ?{}",
            table.quoted(),
            columns.len() + 1
        );
        self.write(&table.name, |conn| {
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| RowStoreError::sqlite(&table.name, "UPDATE", e))?;
            let mut changed = 0u64;
            for row in 0..values.num_rows() {
                for (i, column) in bindables.iter().enumerate() {
                    stmt.raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(column.value(row)))
                        .map_err(|e| RowStoreError::sqlite(&table.name, "UPDATE", e))?;
                }
                stmt.raw_bind_parameter(columns.len() + 1, rowids.value(row))
                    .map_err(|e| RowStoreError::sqlite(&table.name, "UPDATE", e))?;
                changed += stmt
                    .raw_execute()
                    .map_err(|e| RowStoreError::sqlite(&table.name, "UPDATE", e))?
                    as u64;
            }
            Ok(changed)
        })
    }

    pub fn delete(&self, table: &RowTable, rowids: &Int64Array) -> Result<u64> {
        self.pending
            .fetch_add(rowids.len() as u64 * 64, Ordering::AcqRel);
        let sql = format!("DELETE FROM {} WHERE rowid = ?", table.quoted());
        self.write(&table.name, |conn| {
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| RowStoreError::sqlite(&table.name, "DELETE", e))?;
            let mut changed = 0u64;
            for rowid in rowids.iter().flatten() {
                changed += stmt
                    .execute([rowid])
                    .map_err(|e| RowStoreError::sqlite(&table.name, "DELETE", e))?
                    as u64;
            }
            Ok(changed)
        })
    }
}

fn bindable_columns(
    table: &RowTable,
    columns: &[usize],
    batch: &RecordBatch,
) -> Result<Vec<Bindable>> {
    columns
        .iter()
        .enumerate()
        .map(|(position, &column)| {
            let c = &table.columns[column];
            to_column_type(batch.column(position), &c.sql_type)
                .and_then(|array| Bindable::new(&array, &c.sql_type))
                .map_err(|e| RowStoreError::BadValue {
                    table: table.name.clone(),
                    column: c.name.clone(),
                    message: e.to_string(),
                })
        })
        .collect()
}

fn trigger_names(table: &RowTable) -> [String; 3] {
    ["ins", "upd", "del"].map(|op| quote(&format!("_lw_{op}_{}", table.id)))
}

fn drop_triggers(table: &RowTable) -> Vec<String> {
    trigger_names(table)
        .iter()
        .map(|t| format!("DROP TRIGGER IF EXISTS {t}"))
        .collect()
}

/// The capture triggers: every changed key goes to the log in the writing
/// transaction. An update that changes the key logs the old key as well.
fn create_triggers(table: &RowTable) -> Vec<String> {
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
    let name = table.quoted();
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

/// Read rows of `table` into batches of at most `batch_rows`: the given
/// columns, optionally preceded by the row id, filtered by an SQL condition
/// over the table (with `?` parameters).
pub fn read_rows(
    conn: &Connection,
    table: &RowTable,
    columns: &[usize],
    with_rowid: bool,
    condition: Option<(&str, &[Value])>,
    batch_rows: usize,
) -> Result<Vec<RecordBatch>> {
    let mut fields: Vec<Field> = Vec::new();
    if with_rowid {
        fields.push(rowid_field());
    }
    let schema = table.schema();
    fields.extend(columns.iter().map(|&i| schema.field(i).clone()));
    let schema = Arc::new(Schema::new(fields));
    let mut select: Vec<String> = Vec::new();
    if with_rowid {
        select.push("rowid".into());
    }
    select.extend(columns.iter().map(|&i| quote(&table.columns[i].name)));
    if select.is_empty() {
        select.push("NULL".into());
    }
    let mut sql = format!("SELECT {} FROM {}", select.join(", "), table.quoted());
    let no_params: &[Value] = &[];
    let params = match condition {
        Some((text, params)) => {
            sql.push_str(" WHERE ");
            sql.push_str(text);
            params
        }
        None => no_params,
    };
    let sqlite_error = |e| RowStoreError::sqlite(&table.name, "reading", e);
    let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(sqlite_error)?;
    let batch_rows = batch_rows.max(1);
    let new_decoders = || -> (Option<Int64Builder>, Vec<ColumnDecoder>) {
        (
            with_rowid.then(|| Int64Builder::with_capacity(batch_rows)),
            columns
                .iter()
                .map(|&i| ColumnDecoder::new(&table.columns[i].sql_type, batch_rows))
                .collect(),
        )
    };
    let (mut rowids, mut decoders) = new_decoders();
    let mut batches = Vec::new();
    let mut pending = 0usize;
    let offset = usize::from(with_rowid);
    let finish = |rowids: &mut Option<Int64Builder>,
                  decoders: &mut Vec<ColumnDecoder>,
                  rows: usize|
     -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::new();
        if let Some(b) = rowids {
            arrays.push(Arc::new(b.finish()));
        }
        for (decoder, &column) in decoders.iter_mut().zip(columns) {
            arrays.push(decoder.finish().map_err(|e| RowStoreError::BadValue {
                table: table.name.clone(),
                column: table.columns[column].name.clone(),
                message: e.to_string(),
            })?);
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&schema), arrays, &options).map_err(|e| {
            RowStoreError::BadValue {
                table: table.name.clone(),
                column: "(row)".into(),
                message: e.to_string(),
            }
        })
    };
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        if let Some(b) = rowids.as_mut() {
            b.append_value(row.get::<_, i64>(0).map_err(sqlite_error)?);
        }
        for (i, (decoder, &column)) in decoders.iter_mut().zip(columns).enumerate() {
            let value = row.get_ref(i + offset).map_err(sqlite_error)?;
            decoder
                .push(value)
                .map_err(|message| RowStoreError::BadValue {
                    table: table.name.clone(),
                    column: table.columns[column].name.clone(),
                    message,
                })?;
        }
        pending += 1;
        if pending == batch_rows {
            batches.push(finish(&mut rowids, &mut decoders, pending)?);
            pending = 0;
        }
    }
    if pending > 0 || batches.is_empty() {
        batches.push(finish(&mut rowids, &mut decoders, pending)?);
    }
    Ok(batches)
}

/// The change log, as the propagator reads it.
pub mod log {
    use super::*;

    /// The highest change sequence number committed (0 when none).
    ///
    /// Sequence numbers are row ids: a new one is always above the largest
    /// present, and `prune` never deletes the largest, so they only grow
    /// (cheaper than AUTOINCREMENT, which updates `sqlite_sequence` on every
    /// logged row).
    pub fn last_seq(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row("SELECT coalesce(max(seq), 0) FROM _lw_changes", [], |r| {
            r.get(0)
        })
    }

    /// Ids of the tables with changes in `(after, upto]`.
    pub fn changed_tables(conn: &Connection, after: i64, upto: i64) -> rusqlite::Result<Vec<i64>> {
        let mut stmt =
            conn.prepare_cached("SELECT DISTINCT tbl FROM _lw_changes WHERE seq > ? AND seq <= ?")?;
        stmt.query_map([after, upto], |r| r.get(0))?.collect()
    }

    fn key_condition(table: &RowTable) -> String {
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
        format!(
            "{left} IN (SELECT {} FROM _lw_changes WHERE tbl = ? AND seq > ? AND seq <= ?)",
            slots.join(", ")
        )
    }

    /// The distinct keys changed in `(after, upto]`, as a batch of the key columns.
    pub fn changed_keys(
        conn: &Connection,
        table: &RowTable,
        after: i64,
        upto: i64,
    ) -> Result<RecordBatch> {
        let slots: Vec<String> = (0..table.primary_key.len())
            .map(|i| format!("k{i}"))
            .collect();
        let sql = format!(
            "SELECT DISTINCT {} FROM _lw_changes WHERE tbl = ? AND seq > ? AND seq <= ?",
            slots.join(", ")
        );
        let sqlite_error = |e| RowStoreError::sqlite(&table.name, "reading the change log", e);
        let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_error)?;
        let mut rows = stmt.query([table.id, after, upto]).map_err(sqlite_error)?;
        let mut decoders: Vec<ColumnDecoder> = table
            .primary_key
            .iter()
            .map(|&i| ColumnDecoder::new(&table.columns[i].sql_type, 1024))
            .collect();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            for (i, decoder) in decoders.iter_mut().enumerate() {
                let value: ValueRef<'_> = row.get_ref(i).map_err(sqlite_error)?;
                decoder
                    .push(value)
                    .map_err(|message| RowStoreError::BadValue {
                        table: table.name.clone(),
                        column: table.columns[table.primary_key[i]].name.clone(),
                        message,
                    })?;
            }
        }
        let arrays = decoders
            .iter_mut()
            .map(|d| d.finish())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RowStoreError::BadValue {
                table: table.name.clone(),
                column: table.key_names().join(", "),
                message: e.to_string(),
            })?;
        RecordBatch::try_new(table.key_schema(), arrays).map_err(|e| RowStoreError::BadValue {
            table: table.name.clone(),
            column: table.key_names().join(", "),
            message: e.to_string(),
        })
    }

    /// The current rows (all columns) of the keys changed in `(after, upto]`.
    pub fn changed_rows(
        conn: &Connection,
        table: &RowTable,
        after: i64,
        upto: i64,
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>> {
        let condition = key_condition(table);
        let params = [
            Value::Integer(table.id),
            Value::Integer(after),
            Value::Integer(upto),
        ];
        let columns: Vec<usize> = (0..table.columns.len()).collect();
        read_rows(
            conn,
            table,
            &columns,
            false,
            Some((&condition, &params)),
            batch_rows,
        )
    }

    /// Forget applied changes, keeping the newest entry so that sequence
    /// numbers keep growing.
    pub fn prune(conn: &Connection, upto: i64) -> rusqlite::Result<usize> {
        conn.execute(
            "DELETE FROM _lw_changes WHERE seq <= ? AND seq < (SELECT max(seq) FROM _lw_changes)",
            [upto],
        )
    }
}
