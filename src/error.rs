//! The top-level error type: one variant per layer, each wrapping that layer's own
//! enum. Layers never see each other's errors except through this type, and the
//! Python bindings map it to the exception hierarchy exactly once
//! (`python::errors`). No pyo3 here.
//!
//! Every error carries a MySQL error number and SQLSTATE ([`MySqlCode`]), chosen
//! by the layer that raised it from what it knows (never by reading another
//! library's message text), so a wire protocol can send it as it is.

use thiserror::Error;

pub use crate::catalog::CatalogError;
pub use crate::config::ConfigError;
pub use crate::group::GroupError;
pub use crate::lakehouse::LakehouseError;
pub use crate::rowstore::RowStoreError;
pub use crate::server::ServerError;
pub use crate::source::SourceError;
pub use crate::sql::SqlError;
pub use crate::store::StoreError;

/// Any error lakewave returns. The message names the statement, table, column,
/// file or option at fault, and `std::error::Error::source` carries the chain.
///
/// The layer errors are boxed so that `Result<T>` stays small on the happy path.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(Box<ConfigError>),
    #[error(transparent)]
    Catalog(Box<CatalogError>),
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error(transparent)]
    Sql(Box<SqlError>),
    #[error(transparent)]
    RowStore(Box<RowStoreError>),
    #[error(transparent)]
    Lakehouse(Box<LakehouseError>),
    #[error(transparent)]
    Server(Box<ServerError>),
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    Group(Box<GroupError>),
    /// The threads that run queries could not be started.
    #[error("cannot start lakewave's execution threads")]
    Runtime(#[source] std::io::Error),
    /// A bug: a panic caught at the API boundary, so the process survives.
    #[error("internal error in lakewave while running {what}: {message}")]
    Panic { what: String, message: String },
    /// The caller asked to stop (Ctrl-C, `KILL QUERY`): nothing was published.
    #[error("query execution was interrupted: {what} was cancelled and left nothing half-done")]
    Interrupted { what: String },
    /// The session was ended (`KILL`, `close()`) and takes no more statements.
    #[error("session {session} was killed; open a new connection")]
    SessionKilled { session: u64 },
    /// The connection or instance was closed by its owner.
    #[error("the connection is closed")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! from_layer {
    ($($layer:ident => $variant:ident),*) => {
        $(impl From<$layer> for Error {
            fn from(error: $layer) -> Self {
                Error::$variant(Box::new(error))
            }
        })*
    };
}

from_layer!(
    ConfigError => Config,
    CatalogError => Catalog,
    StoreError => Store,
    SqlError => Sql,
    RowStoreError => RowStore,
    LakehouseError => Lakehouse,
    ServerError => Server,
    SourceError => Source,
    GroupError => Group
);

/// The broad kind of an error, which is what the Python hierarchy is built on
/// (PEP 249 names, refined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A malformed option or connection argument, or a closed connection.
    Interface,
    /// SQL that does not parse.
    Syntax,
    /// A table or database that does not exist.
    TableNotFound,
    /// A column that does not exist.
    ColumnNotFound,
    /// A table that already exists.
    TableExists,
    /// Valid SQL that cannot be planned (type errors, wrong arity, ...).
    Programming,
    /// Input data that cannot be stored (bad type, NULL in a key, ...).
    Data,
    /// A constraint of the row store: a duplicate key, a NULL in a NOT NULL
    /// column.
    Integrity,
    /// The cluster has no room for the data.
    OutOfMemory,
    /// I/O, files, object stores, lock waits.
    Operational,
    /// A statement or feature lakewave does not support.
    NotSupported,
    /// The user interrupted the call.
    Interrupted,
    /// A bug in lakewave.
    Internal,
}

/// A MySQL error number and its SQLSTATE, as a MySQL server sends them in an
/// ERR packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MySqlCode {
    pub errno: u16,
    pub sqlstate: &'static str,
}

impl MySqlCode {
    pub const fn new(errno: u16, sqlstate: &'static str) -> Self {
        MySqlCode { errno, sqlstate }
    }
}

/// The MySQL error numbers lakewave raises (names as in MySQL's
/// `mysqld_error.h`).
pub mod codes {
    use super::MySqlCode;

    pub const DB_CREATE_EXISTS: MySqlCode = MySqlCode::new(1007, "HY000");
    pub const DB_DROP_EXISTS: MySqlCode = MySqlCode::new(1008, "HY000");
    pub const FILE_NOT_FOUND: MySqlCode = MySqlCode::new(1017, "HY000");
    pub const DISK_FULL: MySqlCode = MySqlCode::new(1021, "HY000");
    pub const GET_ERRNO: MySqlCode = MySqlCode::new(1030, "HY000");
    pub const OPEN_AS_READONLY: MySqlCode = MySqlCode::new(1036, "HY000");
    pub const OUT_OF_RESOURCES: MySqlCode = MySqlCode::new(1041, "HY000");
    pub const ACCESS_DENIED: MySqlCode = MySqlCode::new(1045, "28000");
    pub const BAD_NULL: MySqlCode = MySqlCode::new(1048, "23000");
    pub const BAD_DB: MySqlCode = MySqlCode::new(1049, "42000");
    pub const TABLE_EXISTS: MySqlCode = MySqlCode::new(1050, "42S01");
    pub const BAD_TABLE: MySqlCode = MySqlCode::new(1051, "42S02");
    pub const BAD_FIELD: MySqlCode = MySqlCode::new(1054, "42S22");
    pub const DUP_FIELDNAME: MySqlCode = MySqlCode::new(1060, "42S21");
    pub const DUP_ENTRY: MySqlCode = MySqlCode::new(1062, "23000");
    pub const PARSE_ERROR: MySqlCode = MySqlCode::new(1064, "42000");
    pub const MULTIPLE_PRI_KEY: MySqlCode = MySqlCode::new(1068, "42000");
    pub const KEY_COLUMN_DOES_NOT_EXIST: MySqlCode = MySqlCode::new(1072, "42000");
    pub const WRONG_AUTO_KEY: MySqlCode = MySqlCode::new(1075, "42000");
    pub const CANT_REMOVE_ALL_FIELDS: MySqlCode = MySqlCode::new(1090, "42000");
    pub const CANT_DROP_FIELD_OR_KEY: MySqlCode = MySqlCode::new(1091, "42000");
    pub const NO_SUCH_THREAD: MySqlCode = MySqlCode::new(1094, "HY000");
    pub const WRONG_TABLE_NAME: MySqlCode = MySqlCode::new(1103, "42000");
    pub const UNKNOWN_ERROR: MySqlCode = MySqlCode::new(1105, "HY000");
    pub const TABLE_MUST_HAVE_COLUMNS: MySqlCode = MySqlCode::new(1113, "42000");
    pub const WRONG_VALUE_COUNT_ON_ROW: MySqlCode = MySqlCode::new(1136, "21S01");
    pub const NO_SUCH_TABLE: MySqlCode = MySqlCode::new(1146, "42S02");
    pub const REQUIRES_PRIMARY_KEY: MySqlCode = MySqlCode::new(1173, "42000");
    pub const ERROR_DURING_COMMIT: MySqlCode = MySqlCode::new(1180, "HY000");
    pub const UNKNOWN_SYSTEM_VARIABLE: MySqlCode = MySqlCode::new(1193, "HY000");
    pub const LOCK_WAIT_TIMEOUT: MySqlCode = MySqlCode::new(1205, "HY000");
    pub const WRONG_ARGUMENTS: MySqlCode = MySqlCode::new(1210, "HY000");
    pub const LOCK_DEADLOCK: MySqlCode = MySqlCode::new(1213, "40001");
    pub const WRONG_VALUE_FOR_VAR: MySqlCode = MySqlCode::new(1231, "42000");
    pub const NOT_SUPPORTED_YET: MySqlCode = MySqlCode::new(1235, "42000");
    pub const WARN_DATA_OUT_OF_RANGE: MySqlCode = MySqlCode::new(1264, "22003");
    pub const NON_UPDATABLE_TABLE: MySqlCode = MySqlCode::new(1288, "HY000");
    pub const TRUNCATED_WRONG_VALUE: MySqlCode = MySqlCode::new(1292, "22007");
    pub const SP_DOES_NOT_EXIST: MySqlCode = MySqlCode::new(1305, "42000");
    pub const QUERY_INTERRUPTED: MySqlCode = MySqlCode::new(1317, "70100");
    pub const SP_WRONG_NO_OF_ARGS: MySqlCode = MySqlCode::new(1318, "42000");
    pub const WRONG_OBJECT: MySqlCode = MySqlCode::new(1347, "HY000");
    pub const VIEW_INVALID: MySqlCode = MySqlCode::new(1356, "HY000");
    pub const NO_DEFAULT_FOR_FIELD: MySqlCode = MySqlCode::new(1364, "HY000");
    pub const TRUNCATED_WRONG_VALUE_FOR_FIELD: MySqlCode = MySqlCode::new(1366, "HY000");
    pub const DATA_TOO_LONG: MySqlCode = MySqlCode::new(1406, "22001");
    pub const VIEW_RECURSIVE: MySqlCode = MySqlCode::new(1462, "HY000");
    pub const INTERNAL_ERROR: MySqlCode = MySqlCode::new(1815, "HY000");
    pub const ENGINE_OUT_OF_MEMORY: MySqlCode = MySqlCode::new(3015, "HY000");
    pub const SESSION_WAS_KILLED: MySqlCode = MySqlCode::new(3169, "HY000");
    pub const SECONDARY_ENGINE_PLUGIN: MySqlCode = MySqlCode::new(3877, "HY000");
    pub const SECONDARY_ENGINE: MySqlCode = MySqlCode::new(3889, "HY000");
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Interface,
            Error::Catalog(e) => e.kind(),
            Error::Store(e) => e.kind(),
            Error::Sql(e) => e.kind(),
            Error::RowStore(e) => e.kind(),
            Error::Lakehouse(e) => e.kind(),
            Error::Server(e) => e.kind(),
            Error::Source(e) => e.kind(),
            Error::Group(e) => e.kind(),
            Error::Interrupted { .. } => ErrorKind::Interrupted,
            Error::Panic { .. } => ErrorKind::Internal,
            Error::Runtime(_) => ErrorKind::Operational,
            Error::SessionKilled { .. } | Error::Closed => ErrorKind::Interface,
        }
    }

    /// The MySQL error number and SQLSTATE a MySQL server would send.
    pub fn code(&self) -> MySqlCode {
        match self {
            Error::Config(e) => e.code(),
            Error::Catalog(e) => e.code(),
            Error::Store(e) => e.code(),
            Error::Sql(e) => e.code(),
            Error::RowStore(e) => e.code(),
            Error::Lakehouse(e) => e.code(),
            Error::Server(e) => e.code(),
            Error::Source(e) => e.code(),
            Error::Group(e) => e.code(),
            Error::Interrupted { .. } => codes::QUERY_INTERRUPTED,
            Error::Panic { .. } => codes::INTERNAL_ERROR,
            Error::Runtime(_) => codes::OUT_OF_RESOURCES,
            Error::SessionKilled { .. } | Error::Closed => codes::SESSION_WAS_KILLED,
        }
    }

    /// The message followed by every distinct message in the source chain.
    pub fn chain_message(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            let text = err.to_string();
            if !out.contains(&text) {
                out.push_str("\n  caused by: ");
                out.push_str(&text);
            }
            source = err.source();
        }
        out
    }

    /// Whether this is (or wraps) an interruption, wherever it was caught.
    pub fn is_interrupted(&self) -> bool {
        self.kind() == ErrorKind::Interrupted
    }
}
