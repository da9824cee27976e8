//! The exception hierarchy (PEP 249 names, refined) and the one place where a
//! [`crate::Error`] becomes a Python exception. The message carries the whole
//! source chain; `errno` and `sqlstate` carry the MySQL error number and
//! SQLSTATE.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use crate::error::{Error, ErrorKind};

create_exception!(
    lakewave,
    LakewaveError,
    PyException,
    "Base class of every lakewave error."
);
create_exception!(lakewave, Warning, PyException, "DB-API warning.");
create_exception!(
    lakewave,
    InterfaceError,
    LakewaveError,
    "Bad arguments or options to the API."
);
create_exception!(
    lakewave,
    DatabaseError,
    LakewaveError,
    "Errors raised by the database."
);
create_exception!(
    lakewave,
    DataError,
    DatabaseError,
    "Input data that cannot be stored or converted."
);
create_exception!(
    lakewave,
    OperationalError,
    DatabaseError,
    "I/O and resource errors."
);
create_exception!(
    lakewave,
    OutOfMemoryError,
    OperationalError,
    "The cluster has no room for the data."
);
create_exception!(
    lakewave,
    QueryInterruptedError,
    OperationalError,
    "The statement was stopped (KILL QUERY, or its session was killed); nothing was half-done."
);
create_exception!(
    lakewave,
    IntegrityError,
    DatabaseError,
    "A constraint was violated."
);
create_exception!(lakewave, InternalError, DatabaseError, "A bug in lakewave.");
create_exception!(
    lakewave,
    ProgrammingError,
    DatabaseError,
    "SQL or API misuse."
);
create_exception!(
    lakewave,
    SqlSyntaxError,
    ProgrammingError,
    "SQL that does not parse."
);
create_exception!(
    lakewave,
    CatalogError,
    ProgrammingError,
    "A table, database or column problem."
);
create_exception!(
    lakewave,
    TableNotFoundError,
    CatalogError,
    "A table or database does not exist."
);
create_exception!(
    lakewave,
    TableExistsError,
    CatalogError,
    "A table already exists."
);
create_exception!(
    lakewave,
    ColumnNotFoundError,
    CatalogError,
    "A column does not exist."
);
create_exception!(
    lakewave,
    NotSupportedError,
    DatabaseError,
    "A statement or feature lakewave does not support."
);

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("Error", py.get_type::<LakewaveError>())?;
    module.add("Warning", py.get_type::<Warning>())?;
    module.add("InterfaceError", py.get_type::<InterfaceError>())?;
    module.add("DatabaseError", py.get_type::<DatabaseError>())?;
    module.add("DataError", py.get_type::<DataError>())?;
    module.add("OperationalError", py.get_type::<OperationalError>())?;
    module.add("OutOfMemoryError", py.get_type::<OutOfMemoryError>())?;
    module.add(
        "QueryInterruptedError",
        py.get_type::<QueryInterruptedError>(),
    )?;
    module.add("IntegrityError", py.get_type::<IntegrityError>())?;
    module.add("InternalError", py.get_type::<InternalError>())?;
    module.add("ProgrammingError", py.get_type::<ProgrammingError>())?;
    module.add("SqlSyntaxError", py.get_type::<SqlSyntaxError>())?;
    module.add("CatalogError", py.get_type::<CatalogError>())?;
    module.add("TableNotFoundError", py.get_type::<TableNotFoundError>())?;
    module.add("TableExistsError", py.get_type::<TableExistsError>())?;
    module.add("ColumnNotFoundError", py.get_type::<ColumnNotFoundError>())?;
    module.add("NotSupportedError", py.get_type::<NotSupportedError>())?;
    Ok(())
}

pub fn to_pyerr(error: Error) -> PyErr {
    let message = error.chain_message();
    let code = error.code();
    let err = match error.kind() {
        ErrorKind::Interface => InterfaceError::new_err(message),
        ErrorKind::Syntax => SqlSyntaxError::new_err(message),
        ErrorKind::TableNotFound => TableNotFoundError::new_err(message),
        ErrorKind::ColumnNotFound => ColumnNotFoundError::new_err(message),
        ErrorKind::TableExists => TableExistsError::new_err(message),
        ErrorKind::Programming => ProgrammingError::new_err(message),
        ErrorKind::Data => DataError::new_err(message),
        ErrorKind::OutOfMemory => OutOfMemoryError::new_err(message),
        ErrorKind::Integrity => IntegrityError::new_err(message),
        ErrorKind::Operational => OperationalError::new_err(message),
        ErrorKind::NotSupported => NotSupportedError::new_err(message),
        ErrorKind::Interrupted => QueryInterruptedError::new_err(message),
        ErrorKind::Internal => InternalError::new_err(message),
    };
    Python::attach(|py| {
        let value = err.value(py);
        let _ = value.setattr("errno", code.errno);
        let _ = value.setattr("sqlstate", code.sqlstate);
    });
    err
}
