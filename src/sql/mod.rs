//! The SQL front end. A [`Session`] is one client's view of an instance: its
//! settings (`use_secondary_engine`, user variables, current database,
//! `autocommit`), its transaction on the row store and the statement it is
//! running. It parses a batch of statements, answers the ones lakewave owns
//! (DDL on the one catalog, DML on the row store, HeatWave's statements,
//! `SET`, `SHOW PROCESSLIST`, `KILL`) and hands queries to DataFusion.
//!
//! Every statement resolves the names it reads once, against the catalog
//! ([`resolve`]): that decides where it runs (the cluster or the row store,
//! and why not the cluster) and takes the table snapshots it reads; planning
//! sees exactly those, and `EXPLAIN` prints them. Errors are classified here,
//! once, into [`SqlError`] with a MySQL error number, and name the statement.
//!
//! Results leave in logical types: a dictionary-encoded column (an internal
//! encoding of the store) is decoded on the way out, so users see the types they
//! loaded.

mod arithmetic;
mod ddl;
mod dml;
mod explain;
mod external;
mod external_ddl;
mod heatwave;
mod load;
mod lookup;
mod markers;
mod names;
mod output;
mod process;
mod replicated;
mod resolve;
mod result;
mod rows;
mod services;
mod session;
mod set;
mod show;
mod split;
mod status;
mod upstream;
mod variables;

use arrow::error::ArrowError;
use datafusion::common::{DataFusionError, SchemaError};
use thiserror::Error;

use crate::error::{Error, ErrorKind, MySqlCode, codes};

pub use dml::source_error as bulk_source_error;
pub use external::{RefreshOutcome, external_definition, file_format_named};
pub use load::{LoadOptions, LoadSource};
pub use markers::number_markers;
pub use output::{conform, logical_schema};
pub use process::ProcessInfo;
pub use replicated::Replication;
pub use resolve::{CATALOG_NAME, Engine, Route};
pub use result::{QueryResult, ResultStream};
pub use services::Services;
pub use session::Session;
pub use split::{OffloadMode, split_statements};
pub use status::{TableRow, table_rows};

#[derive(Debug, Error)]
pub enum SqlError {
    #[error("syntax error in `{statement}`: {message}")]
    Syntax { statement: String, message: String },
    #[error("table '{table}' does not exist (in `{statement}`)")]
    TableNotFound { statement: String, table: String },
    #[error("unknown database '{database}' (in `{statement}`)")]
    DatabaseNotFound { statement: String, database: String },
    #[error("column '{column}' does not exist (in `{statement}`){}", if valid.is_empty() { String::new() } else { format!("; valid columns: {valid}") })]
    ColumnNotFound {
        statement: String,
        column: String,
        valid: String,
    },
    #[error("cannot plan `{statement}`: {message}")]
    Plan { statement: String, message: String },
    #[error("`{statement}` failed: {message}")]
    Execution {
        statement: String,
        message: String,
        kind: ErrorKind,
        code: MySqlCode,
    },
    #[error("not supported: {what} (in `{statement}`)")]
    NotSupported { statement: String, what: String },
    #[error("use_secondary_engine is FORCED and `{statement}` cannot be offloaded: {reason}")]
    NotOffloaded { statement: String, reason: String },
    #[error("variable '{name}' can't be set to the value of '{value}'{}", if expected.is_empty() { String::new() } else { format!(" (expected {expected})") })]
    BadVariableValue {
        name: String,
        value: String,
        expected: String,
    },
    #[error("unknown system variable '{name}'")]
    UnknownVariable { name: String },
    #[error("table '{table}' is read only: it is {what} (in `{statement}`)")]
    ReadOnlyTable {
        statement: String,
        table: String,
        what: String,
    },
    #[error("the target table '{table}' of the {verb} is not updatable: it is a view")]
    NotUpdatable { table: String, verb: String },
    #[error("incorrect arguments to {what}: {message}")]
    WrongArguments { what: String, message: String },
    #[error("{kind} {name} does not exist")]
    UnknownRoutine { kind: &'static str, name: String },
    #[error("unknown thread id: {id}")]
    NoSuchSession { id: u64 },
    #[error(
        "column count doesn't match value count: INSERT into '{table}' gives {values} values per row for {columns} columns"
    )]
    ValueCount {
        table: String,
        values: usize,
        columns: usize,
    },
}

impl SqlError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SqlError::Syntax { .. } => ErrorKind::Syntax,
            SqlError::TableNotFound { .. } | SqlError::DatabaseNotFound { .. } => {
                ErrorKind::TableNotFound
            }
            SqlError::ColumnNotFound { .. } => ErrorKind::ColumnNotFound,
            SqlError::Plan { .. }
            | SqlError::BadVariableValue { .. }
            | SqlError::UnknownVariable { .. }
            | SqlError::WrongArguments { .. }
            | SqlError::UnknownRoutine { .. }
            | SqlError::ValueCount { .. } => ErrorKind::Programming,
            SqlError::Execution { kind, .. } => *kind,
            SqlError::NotSupported { .. }
            | SqlError::NotOffloaded { .. }
            | SqlError::ReadOnlyTable { .. }
            | SqlError::NotUpdatable { .. } => ErrorKind::NotSupported,
            SqlError::NoSuchSession { .. } => ErrorKind::Operational,
        }
    }

    pub fn code(&self) -> MySqlCode {
        match self {
            SqlError::Syntax { .. } => codes::PARSE_ERROR,
            SqlError::TableNotFound { .. } => codes::NO_SUCH_TABLE,
            SqlError::DatabaseNotFound { .. } => codes::BAD_DB,
            SqlError::ColumnNotFound { .. } => codes::BAD_FIELD,
            SqlError::Plan { .. } => codes::UNKNOWN_ERROR,
            SqlError::Execution { code, .. } => *code,
            SqlError::NotSupported { .. } => codes::NOT_SUPPORTED_YET,
            SqlError::NotOffloaded { .. } => codes::SECONDARY_ENGINE,
            SqlError::BadVariableValue { .. } => codes::WRONG_VALUE_FOR_VAR,
            SqlError::UnknownVariable { .. } => codes::UNKNOWN_SYSTEM_VARIABLE,
            SqlError::ReadOnlyTable { .. } => codes::OPEN_AS_READONLY,
            SqlError::NotUpdatable { .. } => codes::NON_UPDATABLE_TABLE,
            SqlError::WrongArguments { .. } => codes::SP_WRONG_NO_OF_ARGS,
            SqlError::UnknownRoutine { .. } => codes::SP_DOES_NOT_EXIST,
            SqlError::NoSuchSession { .. } => codes::NO_SUCH_THREAD,
            SqlError::ValueCount { .. } => codes::WRONG_VALUE_COUNT_ON_ROW,
        }
    }
}

/// Classify a DataFusion error raised while handling `statement`, from its
/// variant (never its text). An error of lakewave's own that travelled
/// through DataFusion (a row-store scan that was interrupted, a file that
/// cannot be read) comes back out as itself.
pub fn datafusion_error(statement: &str, error: DataFusionError) -> Error {
    let error = match own_error(error) {
        Ok(own) => return own,
        Err(other) => other,
    };
    let statement = abbreviate(statement);
    // DataFusion's own message already carries its context chain.
    let message = error.to_string();
    let execution = |kind, code| SqlError::Execution {
        statement: statement.clone(),
        message: message.clone(),
        kind,
        code,
    };
    let classified = match error.find_root() {
        DataFusionError::SQL(parse, _) => SqlError::Syntax {
            statement,
            message: parse.to_string(),
        },
        DataFusionError::SchemaError(schema_error, _) => match schema_error.as_ref() {
            SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => SqlError::ColumnNotFound {
                statement,
                column: field.name().to_string(),
                valid: valid_fields
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => {
                execution(ErrorKind::Programming, codes::DUP_FIELDNAME)
            }
            _ => SqlError::Plan { statement, message },
        },
        DataFusionError::Plan(_) => SqlError::Plan { statement, message },
        DataFusionError::NotImplemented(what) => SqlError::NotSupported {
            statement,
            what: what.clone(),
        },
        DataFusionError::ResourcesExhausted(_) => {
            execution(ErrorKind::OutOfMemory, codes::OUT_OF_RESOURCES)
        }
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::DivideByZero => execution(ErrorKind::Data, MySqlCode::new(1365, "22012")),
            ArrowError::ArithmeticOverflow(_) => {
                execution(ErrorKind::Data, MySqlCode::new(1690, "22003"))
            }
            ArrowError::CastError(_) | ArrowError::ParseError(_) => {
                execution(ErrorKind::Data, codes::TRUNCATED_WRONG_VALUE_FOR_FIELD)
            }
            _ => execution(ErrorKind::Data, codes::UNKNOWN_ERROR),
        },
        DataFusionError::Internal(_) => execution(ErrorKind::Internal, codes::INTERNAL_ERROR),
        _ => execution(ErrorKind::Operational, codes::UNKNOWN_ERROR),
    };
    classified.into()
}

/// The lakewave error inside a DataFusion error, if that is what it carries.
fn own_error(error: DataFusionError) -> std::result::Result<Error, DataFusionError> {
    type Boxed = Box<dyn std::error::Error + Send + Sync>;
    fn unbox(boxed: Boxed) -> std::result::Result<Error, Boxed> {
        let boxed = match boxed.downcast::<Error>() {
            Ok(own) => return Ok(*own),
            Err(other) => other,
        };
        let boxed = match boxed.downcast::<crate::rowstore::RowStoreError>() {
            Ok(e) => return Ok((*e).into()),
            Err(other) => other,
        };
        let boxed = match boxed.downcast::<crate::lakehouse::LakehouseError>() {
            Ok(e) => return Ok((*e).into()),
            Err(other) => other,
        };
        match boxed.downcast::<crate::store::StoreError>() {
            Ok(e) => Ok((*e).into()),
            Err(other) => Err(other),
        }
    }
    match error {
        DataFusionError::External(boxed) => unbox(boxed).map_err(DataFusionError::External),
        DataFusionError::Context(context, inner) => {
            own_error(*inner).map_err(|inner| DataFusionError::Context(context, Box::new(inner)))
        }
        DataFusionError::Diagnostic(diagnostic, inner) => own_error(*inner)
            .map_err(|inner| DataFusionError::Diagnostic(diagnostic, Box::new(inner))),
        DataFusionError::ArrowError(arrow, backtrace) => match *arrow {
            ArrowError::ExternalError(boxed) => unbox(boxed).map_err(|boxed| {
                DataFusionError::ArrowError(Box::new(ArrowError::ExternalError(boxed)), backtrace)
            }),
            other => Err(DataFusionError::ArrowError(Box::new(other), backtrace)),
        },
        other => Err(other),
    }
}

/// A failure of lakewave's own while running `statement` (a bug).
pub(super) fn internal_error(statement: &str, error: impl std::fmt::Display) -> Error {
    SqlError::Execution {
        statement: abbreviate(statement),
        message: error.to_string(),
        kind: ErrorKind::Internal,
        code: codes::INTERNAL_ERROR,
    }
    .into()
}

/// A blocking task of `statement` that panicked or was cancelled.
fn task_failed(statement: &str, error: tokio::task::JoinError) -> Error {
    SqlError::Execution {
        statement: abbreviate(statement),
        message: error.to_string(),
        kind: ErrorKind::Internal,
        code: codes::INTERNAL_ERROR,
    }
    .into()
}

/// Keep statements in messages readable, and secrets out of them: the
/// values of secret storage options are replaced before a statement is
/// shown anywhere (errors, `SHOW PROCESSLIST`).
pub fn abbreviate(statement: &str) -> String {
    let redacted = external::redact_statement(statement);
    let flat: String = redacted.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 200 {
        let cut: String = flat.chars().take(197).collect();
        format!("{cut}...")
    } else {
        flat
    }
}
