"""The exception hierarchy (PEP 249 names, refined).

Every error lakewave raises is a subclass of :class:`Error`; its message names
the statement, table, column, file or option at fault and carries the chain of
causes (``caused by:`` lines), and it has the MySQL error number and SQLSTATE a
MySQL server would send, as ``errno`` and ``sqlstate`` (1146/42S02 for a table
that does not exist, 1062/23000 for a duplicate key, 1317/70100 for an
interrupted query, ...)::

    Error
    ├── InterfaceError            bad arguments or options
    └── DatabaseError
        ├── DataError             input data that cannot be stored or converted
        ├── OperationalError      I/O, files, resources
        │   ├── OutOfMemoryError  the cluster has no room for a load
        │   └── QueryInterruptedError  KILL QUERY stopped the statement
        ├── IntegrityError        a violated constraint
        ├── InternalError         a bug in lakewave
        ├── ProgrammingError      SQL or API misuse
        │   ├── SqlSyntaxError
        │   └── CatalogError
        │       ├── TableNotFoundError
        │       ├── TableExistsError
        │       └── ColumnNotFoundError
        └── NotSupportedError

Ctrl-C during a long call raises ``KeyboardInterrupt`` after the work has
stopped; nothing is left half-done.
"""

from lakewave._internal import (
    CatalogError,
    ColumnNotFoundError,
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    OutOfMemoryError,
    ProgrammingError,
    QueryInterruptedError,
    SqlSyntaxError,
    TableExistsError,
    TableNotFoundError,
    Warning,
)

__all__ = [
    "CatalogError",
    "ColumnNotFoundError",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "OutOfMemoryError",
    "QueryInterruptedError",
    "ProgrammingError",
    "SqlSyntaxError",
    "TableExistsError",
    "TableNotFoundError",
    "Warning",
]
