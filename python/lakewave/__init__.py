"""lakewave: an embeddable re-creation of MySQL HeatWave.

An in-memory, columnar, partitioned cluster that runs analytic SQL (DataFusion)
over loaded tables, driven from Python and returning Arrow.

>>> import lakewave as lw
>>> db = lw.connect(nodes=2)
>>> db.sql("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)").fetchall()
[('loaded 2 rows into main.t',)]
>>> db.sql("SELECT count(*) AS n FROM t").fetchall()
[(2,)]
"""

from lakewave._internal import __version__
from lakewave.connection import Connection, LoadedTable, TableInfo, connect
from lakewave.cursor import Cursor, apilevel, paramstyle, threadsafety
from lakewave.exceptions import (
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
from lakewave.group import GroupMember
from lakewave.result import Result
from lakewave.server import Server

__all__ = [
    "LoadedTable",
    "CatalogError",
    "ColumnNotFoundError",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Error",
    "GroupMember",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "OutOfMemoryError",
    "QueryInterruptedError",
    "ProgrammingError",
    "Result",
    "Server",
    "SqlSyntaxError",
    "TableExistsError",
    "TableInfo",
    "TableNotFoundError",
    "Warning",
    "__version__",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
]
