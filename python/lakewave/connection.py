"""Connections: the entry point to a lakewave instance."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from lakewave import _internal
from lakewave._progress import reporter
from lakewave.exceptions import InterfaceError
from lakewave.result import Result

if TYPE_CHECKING:
    from lakewave.cursor import Cursor


class TableInfo(TypedDict):
    """What :meth:`Connection.load` and :meth:`Connection.tables` report."""

    database: str
    table: str
    rows: int
    bytes: int
    chunks: int
    partitions: int
    version: int
    dictionary_columns: list[str]


def connect(
    *,
    nodes: int | None = None,
    memory_per_node: int | str | None = None,
    threads: int | None = None,
    config: Mapping[str, object] | None = None,
) -> Connection:
    """Start an in-process lakewave instance and connect to it.

    Args:
        nodes: Number of cluster nodes (default 1). Tables are spread over them.
        memory_per_node: How much each node may hold, as bytes or a size such
            as ``"4GiB"`` (default: half the machine's memory split over nodes).
        threads: Execution threads (default: every core).
        config: Further options, as strings or numbers: ``partitions_per_node``,
            ``query_memory`` (memory for joins, sorts and aggregates before they
            spill), ``chunk_rows``, ``batch_rows``, ``dictionary_max_ratio``,
            ``spill_dir``. Unknown keys raise :class:`InterfaceError`.

    >>> import lakewave as lw
    >>> db = lw.connect(nodes=2, memory_per_node="1GiB")
    >>> db.shape["nodes"]
    2
    """
    options: dict[str, str] = {}
    for key, value in (config or {}).items():
        options[str(key)] = str(value)
    for key, value in (("nodes", nodes), ("memory_per_node", memory_per_node), ("threads", threads)):
        if value is not None:
            options[key] = str(value)
    return Connection(_internal.Connection(options))


class Connection:
    """A connection to a lakewave instance: run SQL, load tables, inspect the
    cluster. Use :func:`connect` to make one.

    >>> import lakewave as lw
    >>> db = lw.connect()
    >>> import pyarrow as pa
    >>> info = db.load("orders", pa.table({"id": [1, 2, 3], "amount": [9.5, 3.0, 4.25]}), primary_key="id")
    >>> info["rows"]
    3
    >>> db.sql("SELECT sum(amount) FROM orders").fetchone()
    (16.75,)
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: _internal.Connection) -> None:
        self._inner = inner

    def sql(self, query: str, params: Sequence[Any] | None = None) -> Result:
        """Run one or more SQL statements; return the last one's result.

        Queries are planned now and run when the result is read. ``params``
        bind ``$1``, ``$2``, ... placeholders (and ``?`` in order).
        ``CREATE [OR REPLACE] TABLE t AS SELECT ...`` loads the query's rows into
        the cluster; ``DROP TABLE t`` unloads it; ``EXPLAIN`` shows the plan and
        the chunks that zone maps pruned.
        """
        return Result(self._inner.sql(query, list(params) if params is not None else None))

    def load(
        self,
        name: str,
        source: Any,
        *,
        primary_key: str | Sequence[str] | None = None,
        partition_by: str | Sequence[str] | None = None,
        replace: bool = False,
        progress: bool | None = None,
    ) -> TableInfo:
        """Load a table into the cluster.

        Args:
            name: ``table`` or ``database.table``.
            source: A Parquet file or a folder of them (a path), or any Arrow
                producer: a pyarrow Table or RecordBatchReader, a polars
                DataFrame, a pandas DataFrame (through pyarrow), anything with
                ``__arrow_c_stream__`` or ``__arrow_c_array__``.
            primary_key: Key column(s); rows are hash-partitioned by it. Without
                one, rows are spread round-robin.
            partition_by: Data placement keys that override the primary key for
                partitioning (e.g. the join key).
            replace: Replace an existing table. If the load fails, the old table
                stays as it was.
            progress: Show a progress bar (default: when interactive and tqdm is
                installed, unless ``LAKEWAVE_PROGRESS=0``).

        The load is atomic: on any error (bad data, out of memory, Ctrl-C)
        nothing becomes visible and all memory is given back.
        """
        keys = _names(primary_key, "primary_key")
        placement = _names(partition_by, "partition_by")
        report, close = reporter(name, progress)
        try:
            if isinstance(source, (str, os.PathLike)):
                path = os.fspath(source)
                if os.path.isfile(path) and not path.endswith(".parquet"):
                    raise InterfaceError(
                        f"cannot load '{path}': lakewave loads Parquet files and folders, "
                        "or any Arrow producer"
                    )
                return self._inner.load_parquet(name, path, keys, placement, replace, report)
            data, described = _arrow_source(source)
            return self._inner.load_arrow(name, data, keys, placement, replace, described, report)
        finally:
            close()

    def tables(self) -> list[TableInfo]:
        """The tables loaded in the cluster."""
        return list(self._inner.tables())

    def nodes(self) -> list[dict[str, Any]]:
        """Each node's status, memory budget and memory in use."""
        return list(self._inner.nodes())

    @property
    def shape(self) -> dict[str, int]:
        """The cluster's shape: nodes, memory per node, partitions, threads."""
        return dict(self._inner.shape())

    def cursor(self) -> Cursor:
        """A DB-API 2.0 cursor on this connection."""
        from lakewave.cursor import Cursor

        return Cursor(self)

    def commit(self) -> None:
        """DB-API: statements take effect as they run, so there is nothing to commit."""

    def rollback(self) -> None:
        """DB-API: there is never an open transaction to roll back."""

    def close(self) -> None:
        """DB-API: the instance is freed when its last connection is garbage collected."""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _names(value: str | Sequence[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    names = list(value)
    if not all(isinstance(n, str) for n in names):
        raise InterfaceError(f"{what} must be a column name or a list of column names")
    return names


def _arrow_source(source: Any) -> tuple[Any, str]:
    kind = type(source)
    described = f"a {kind.__module__}.{kind.__qualname__}"
    if hasattr(source, "__arrow_c_stream__") or hasattr(source, "__arrow_c_array__"):
        return source, described
    if kind.__module__.startswith("pandas"):
        try:
            import pyarrow as pa
        except ImportError as error:
            raise InterfaceError("loading a pandas DataFrame needs pyarrow installed") from error
        return pa.Table.from_pandas(source, preserve_index=False), described
    raise InterfaceError(
        f"cannot load {described}: expected a Parquet path or an Arrow producer "
        "(an object with __arrow_c_stream__ or __arrow_c_array__)"
    )
