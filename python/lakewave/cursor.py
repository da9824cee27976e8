"""A DB-API 2.0 (PEP 249) cursor over a :class:`lakewave.Connection`.

>>> import lakewave as lw
>>> cur = lw.connect().cursor()
>>> cur.execute("SELECT $1 + 1 AS answer", [41]).fetchone()
(42,)
>>> [d[0] for d in cur.description]
['answer']
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lakewave.exceptions import InterfaceError, ProgrammingError

if TYPE_CHECKING:
    import pyarrow

    from lakewave.connection import Connection
    from lakewave.result import Result

apilevel = "2.0"
threadsafety = 1
#: Placeholders are ``$1``, ``$2``, ... (PEP 249's "numeric" style with ``$``).
paramstyle = "numeric"


class Cursor:
    """Runs statements and fetches their rows as tuples."""

    arraysize: int = 1

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._result: Result | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._position = 0
        self._closed = False
        self.description: list[tuple[str, str, None, None, None, None, None]] | None = None
        self.rowcount = -1

    @property
    def connection(self) -> Connection:
        return self._connection

    def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> Cursor:
        """Run a statement; its rows are then available to the fetch methods."""
        self._check_open()
        result = self._connection.sql(operation, parameters)
        self._result = result
        self._rows = result.fetchall()
        self._position = 0
        self.rowcount = len(self._rows)
        types = _type_names(result)
        self.description = [
            (name, kind, None, None, None, None, None)
            for name, kind in zip(result.columns, types, strict=True)
        ]
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> Cursor:
        """Run a statement once per parameter sequence."""
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        self._check_result()
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        self._check_result()
        size = self.arraysize if size is None else size
        rows = self._rows[self._position : self._position + size]
        self._position += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        self._check_result()
        rows = self._rows[self._position :]
        self._position = len(self._rows)
        return rows

    def fetch_arrow_table(self) -> pyarrow.Table:
        """The last statement's result as a pyarrow Table (runs it again)."""
        self._check_result()
        assert self._result is not None
        return self._result.arrow()

    def setinputsizes(self, sizes: object) -> None:
        """DB-API: accepted and ignored."""

    def setoutputsize(self, size: object, column: object = None) -> None:
        """DB-API: accepted and ignored."""

    def close(self) -> None:
        self._closed = True
        self._rows = []
        self._result = None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")

    def _check_result(self) -> None:
        self._check_open()
        if self._result is None:
            raise ProgrammingError("no statement has been executed on this cursor")


def _type_names(result: Result) -> list[str]:
    return [str(t) for t in result._inner.column_types()]
