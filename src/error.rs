//! The top-level error type: one variant per layer, each wrapping that layer's own
//! enum. Layers never see each other's errors except through this type, and the
//! Python bindings map it to the exception hierarchy exactly once
//! (`python::errors`). No pyo3 here.

use thiserror::Error;

pub use crate::catalog::CatalogError;
pub use crate::config::ConfigError;
pub use crate::lakehouse::LakehouseError;
pub use crate::rowstore::RowStoreError;
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
    /// The threads that run queries could not be started.
    #[error("cannot start lakewave's execution threads")]
    Runtime(#[source] std::io::Error),
    /// A bug: a panic caught at the API boundary, so the process survives.
    #[error("internal error in lakewave while running {what}: {message}")]
    Panic { what: String, message: String },
    /// The caller asked to stop (Ctrl-C): nothing was published.
    #[error("interrupted: {what} was cancelled and left nothing half-done")]
    Interrupted { what: String },
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
    LakehouseError => Lakehouse
);

/// The broad kind of an error, which is what the Python hierarchy is built on
/// (PEP 249 names, refined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A malformed option or connection argument.
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
    /// I/O, files, object stores.
    Operational,
    /// A statement or feature lakewave does not support.
    NotSupported,
    /// The user interrupted the call.
    Interrupted,
    /// A bug in lakewave.
    Internal,
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
            Error::Interrupted { .. } => ErrorKind::Interrupted,
            Error::Panic { .. } => ErrorKind::Internal,
            Error::Runtime(_) => ErrorKind::Operational,
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
}
