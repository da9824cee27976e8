"""A DB-API 2.0 (PEP 249) cursor. Each cursor has a session of its own on its
connection's instance (its own ``use_secondary_engine``, variables, current
database and transaction), as DuckDB's cursors do.

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

    from lakewave import _internal
    from lakewave.connection import Connection

apilevel = "2.0"
threadsafety = 1
#: Placeholders are ``$1``, ``$2``, ... (PEP 249's "numeric" style with ``$``).
paramstyle = "numeric"


class Cursor:
    """Runs statements on its own session and fetches their rows, streaming
    them from one execution."""

    arraysize: int = 1

    def __init__(self, connection: Connection, session: _internal.Connection) -> None:
        self._connection = connection
        self._session = session
        self._execution: _internal.Execution | None = None
        self._closed = False
        self.description: list[tuple[str, str, None, None, None, None, None]] | None = None
        #: Rows the last INSERT/UPDATE/DELETE/REPLACE changed; -1 for queries
        #: (their rows are streamed, not counted first) and before any statement.
        self.rowcount = -1

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def session_id(self) -> int:
        """This cursor's session id (``CONNECTION_ID()``)."""
        return int(self._session.session_id())

    def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> Cursor:
        """Run a statement; its rows are then fetched from one execution."""
        self._check_open()
        self._end_execution()
        result = self._session.sql(operation, list(parameters) if parameters is not None else None)
        self._execution = result.execute()
        affected = result.rows_affected
        self.rowcount = -1 if affected is None else int(affected)
        self.description = [
            (name, kind, None, None, None, None, None)
            for name, kind in zip(result.columns(), result.column_types(), strict=True)
        ]
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> Cursor:
        """Run a statement once per parameter sequence; ``rowcount`` is the
        total of the rows changed."""
        total = 0
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)
            total += max(self.rowcount, 0)
        self.rowcount = total
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._fetching().fetch(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        size = self.arraysize if size is None else size
        if size < 0:
            raise ProgrammingError("fetchmany size must not be negative")
        return list(self._fetching().fetch(size))

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._fetching().fetch())

    def fetch_record_batch(self) -> pyarrow.RecordBatchReader:
        """The rows not fetched yet, streamed from the same execution."""
        import pyarrow as pa

        return pa.RecordBatchReader.from_stream(self._fetching().reader())

    def fetch_arrow_table(self) -> pyarrow.Table:
        """The rows not fetched yet as a pyarrow Table (from the same
        execution: the statement does not run again)."""
        return self.fetch_record_batch().read_all()

    def setinputsizes(self, sizes: object) -> None:
        """DB-API: accepted and ignored."""

    def setoutputsize(self, size: object, column: object = None) -> None:
        """DB-API: accepted and ignored."""

    def close(self) -> None:
        """End the cursor's session; its open transaction is rolled back."""
        if self._closed:
            return
        self._end_execution()
        self._closed = True
        self._session.close()

    @property
    def closed(self) -> bool:
        return self._closed or bool(self._session.closed)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _end_execution(self) -> None:
        if self._execution is not None:
            self._execution.close()
            self._execution = None

    def _check_open(self) -> None:
        if self.closed:
            raise InterfaceError("the cursor is closed")

    def _fetching(self) -> _internal.Execution:
        self._check_open()
        if self._execution is None:
            raise ProgrammingError("no statement has been executed on this cursor")
        return self._execution
