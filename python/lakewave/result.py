"""Query results: Arrow streams that any Arrow consumer can read."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from lakewave import _internal

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow


class Result:
    """The result of :meth:`lakewave.Connection.sql`.

    A query is planned when ``sql()`` returns (so syntax and name errors surface
    there, and the tables it reads are fixed: the same snapshots however often it
    is read). ``fetchone``/``fetchmany``/``fetchall`` advance over one execution,
    started by the first fetch. The whole-result methods (``arrow()``,
    ``to_pandas()``, ``pl()``, and the Arrow PyCapsule stream interface that
    pyarrow, polars, DuckDB and any other Arrow consumer read directly, batch by
    batch, without a copy) each run the query once more, from the start::

        >>> import lakewave as lw
        >>> db = lw.connect()
        >>> res = db.sql("SELECT 1 AS one")
        >>> res.fetchall()
        [(1,)]
        >>> res.fetchall()
        []
        >>> import pyarrow as pa
        >>> pa.table(res).column("one").to_pylist()
        [1]
    """

    __slots__ = ("_execution", "_inner")

    def __init__(self, inner: _internal.QueryResult) -> None:
        self._inner = inner
        self._execution: _internal.Execution | None = None

    @property
    def statement(self) -> str:
        """The SQL statement this result belongs to."""
        return self._inner.statement

    @property
    def rows_affected(self) -> int | None:
        """Rows an INSERT, UPDATE, DELETE or REPLACE changed; ``None`` for
        queries and DDL."""
        return self._inner.rows_affected

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return self._inner.columns()

    @property
    def schema(self) -> Any:
        """The Arrow schema: a ``pyarrow.Schema`` when pyarrow is installed,
        otherwise an object with ``__arrow_c_schema__``."""
        raw = self._inner.schema()
        try:
            import pyarrow as pa
        except ImportError:
            return raw
        return pa.schema(raw)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Run the query and export its batches as an Arrow C stream."""
        return self._inner.stream().__arrow_c_stream__(requested_schema)

    def reader(self) -> pyarrow.RecordBatchReader:
        """Run the query and return a ``pyarrow.RecordBatchReader`` that yields
        batches as they are computed (nothing is materialised first)."""
        import pyarrow as pa

        return pa.RecordBatchReader.from_stream(self)

    def arrow(self) -> pyarrow.Table:
        """Run the query and return a ``pyarrow.Table``."""
        return self.reader().read_all()

    def to_pandas(self) -> pandas.DataFrame:
        """Run the query and return a ``pandas.DataFrame`` (needs pyarrow)."""
        return self.arrow().to_pandas()

    df = to_pandas

    def pl(self) -> polars.DataFrame:
        """Run the query and return a ``polars.DataFrame``."""
        import polars

        return polars.DataFrame(self)

    def _fetching(self) -> _internal.Execution:
        if self._execution is None:
            self._execution = self._inner.execute()
        return self._execution

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The rows not fetched yet, as tuples of Python values."""
        return list(self._fetching().fetch())

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        """The next ``size`` rows (fewer at the end)."""
        if size < 0:
            raise ValueError("size must not be negative")
        return list(self._fetching().fetch(size))

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or ``None`` when every row was fetched."""
        rows = self._fetching().fetch(1)
        return rows[0] if rows else None

    def show(self, limit: int = 20) -> None:
        """Print the first ``limit`` rows as a table."""
        print(self._inner.to_text(limit))

    def __str__(self) -> str:
        return self._inner.to_text(20)

    def __repr__(self) -> str:
        return self._inner.to_text(20)

    def _repr_html_(self) -> str:
        limit = 20
        rows = self._inner.rows(limit + 1)
        head = "".join(f"<th>{html.escape(name)}</th>" for name in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell_html(v)}</td>" for v in row) + "</tr>" for row in rows[:limit]
        )
        more = f"<p>showing the first {limit} rows</p>" if len(rows) > limit else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cell_html(value: object) -> str:
    if value is None:
        return "<i>NULL</i>"
    return html.escape(str(value))
