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
    there) and runs each time its rows are read. It implements the Arrow PyCapsule
    stream interface, so pyarrow, polars, pandas (through pyarrow), DuckDB and
    any other Arrow consumer read it directly, batch by batch, without a copy::

        >>> import lakewave as lw
        >>> db = lw.connect()
        >>> res = db.sql("SELECT 1 AS one")
        >>> res.fetchall()
        [(1,)]
        >>> import pyarrow as pa
        >>> pa.table(res).column("one").to_pylist()
        [1]
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: _internal.QueryResult) -> None:
        self._inner = inner

    @property
    def statement(self) -> str:
        """The SQL statement this result belongs to."""
        return self._inner.statement

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

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Run the query and return every row as a tuple of Python values."""
        return list(self._inner.rows())

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        """Run the query and return its first ``size`` rows."""
        return list(self._inner.rows(size))

    def fetchone(self) -> tuple[Any, ...] | None:
        """Run the query and return its first row, or ``None``."""
        rows = self._inner.rows(1)
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
