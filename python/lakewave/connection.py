"""Connections: the entry point to a lakewave instance."""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from lakewave import _internal
from lakewave._progress import reporter
from lakewave.exceptions import InterfaceError
from lakewave.group import GroupMember
from lakewave.result import Result
from lakewave.server import Server

if TYPE_CHECKING:
    from lakewave.cursor import Cursor


class LoadedTable(TypedDict):
    """A row of HeatWave's ``performance_schema.rpd_tables`` joined with
    ``rpd_table_id``, as :meth:`Connection.loaded_tables` reports it."""

    id: int
    name: str
    schema_name: str
    table_name: str
    pool_type: str
    load_status: str
    snapshot_scn: int
    nrows: int
    size_bytes: int
    stale_reason: str | None


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
    path: str | os.PathLike[str] | None = None,
    *,
    nodes: int | None = None,
    memory_per_node: int | str | None = None,
    threads: int | None = None,
    config: Mapping[str, object] | None = None,
    source: str | None = None,
) -> Connection:
    """Open an in-process lakewave instance and connect to it.

    Args:
        path: The DB system's database file (SQLite, created if missing).
            Tables loaded into the cluster when it was last open are loaded
            again, and propagation resumes. ``None`` (the default) or
            ``":memory:"`` makes a private in-memory database that
            disappears with the instance.
        nodes: Number of cluster nodes (default 1). Tables are spread over them.
        memory_per_node: How much each node may hold, as bytes or a size such
            as ``"4GiB"`` (default: half the machine's memory split over nodes).
        threads: Execution threads (default: every core).
        config: Further options, as strings or numbers: ``partitions_per_node``,
            ``query_memory`` (memory for joins, sorts and aggregates before they
            spill), ``chunk_rows``, ``batch_rows``, ``dictionary_max_ratio``,
            ``spill_dir``, ``propagation_interval`` (default ``200ms``),
            ``propagation_batch_bytes`` (default ``64MB``) and
            ``read_your_writes`` (default ``true``). Unknown keys raise
            :class:`InterfaceError`.
        source: A MariaDB server to be the DB system instead of the embedded
            row store, as ``"mysql://user:password@host:3306/database"``
            (URL options: ``server_id``, ``ssl_mode``, ``barrier_timeout``).
            Statements run on that server; queries over tables loaded with
            ``ALTER TABLE t SECONDARY_LOAD`` run in the cluster, which follows
            the server's binlog. ``path`` then keeps only lakewave's own
            metadata (which tables are loaded), so a restart loads them again.
            A server that lacks a requirement (``log_bin``, ``binlog_format=ROW``,
            ...) fails here with every problem named.

    >>> import lakewave as lw
    >>> db = lw.connect(nodes=2, memory_per_node="1GiB")
    >>> db.shape["nodes"]
    2
    """
    options: dict[str, str] = {}
    for key, value in (config or {}).items():
        options[str(key)] = str(value)
    for key, value in (
        ("nodes", nodes),
        ("memory_per_node", memory_per_node),
        ("threads", threads),
        ("source", source),
    ):
        if value is not None:
            options[key] = str(value)
    file = os.fspath(path) if path is not None else None
    return Connection(_internal.Connection(file, options))


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

    __slots__ = ("_cursors", "_inner", "_servers", "__weakref__")

    def __init__(self, inner: _internal.Connection) -> None:
        self._inner = inner
        self._cursors: weakref.WeakSet[Cursor] = weakref.WeakSet()
        self._servers: list[Server] = []

    def sql(self, query: str, params: Sequence[Any] | None = None) -> Result:
        """Run one or more SQL statements; return the last one's result.

        Queries are planned now and run when the result is read. ``params``
        bind ``$1``, ``$2``, ... placeholders (and ``?`` in order).
        ``CREATE TABLE t (...)``, ``INSERT``, ``UPDATE``, ``DELETE``,
        ``REPLACE``, ``BEGIN``/``COMMIT``/``ROLLBACK`` work on the row store;
        ``ALTER TABLE t SECONDARY_LOAD`` loads a table into the cluster and
        keeps it current; ``SET use_secondary_engine = ON | OFF | FORCED``
        chooses where SELECTs run. ``CREATE [OR REPLACE] TABLE t AS SELECT ...``
        loads the query's rows straight into the cluster (a read-only snapshot
        table). ``EXPLAIN`` says which engine runs the statement and why.

        >>> import lakewave as lw
        >>> db = lw.connect()
        >>> _ = db.sql("CREATE TABLE t (id INT PRIMARY KEY, v DECIMAL(8,2))")
        >>> db.sql("INSERT INTO t VALUES (1, 2.50), (2, 4.00)").fetchone()
        (2,)
        >>> _ = db.sql("ALTER TABLE t SECONDARY_LOAD")
        >>> db.sql("SELECT sum(v) FROM t").fetchone()
        (Decimal('6.50'),)
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
        format: str | None = None,
        storage_options: Mapping[str, str] | None = None,
        progress: bool | None = None,
    ) -> TableInfo:
        """Load a table straight into the cluster (a read-only SNAPSHOT table).

        Args:
            name: ``table`` or ``database.table``.
            source: Files, as a path or URL (a file, a folder, a glob;
                ``s3://``, ``gs://``, ``az://``, ``oci://``, ``http(s)://``),
                read by the same readers as external tables; or any Arrow
                producer: a pyarrow Table or RecordBatchReader, a polars
                DataFrame, a pandas DataFrame (through pyarrow), anything with
                ``__arrow_c_stream__`` or ``__arrow_c_array__``.
            primary_key: Key column(s); rows are hash-partitioned by it. Without
                one, rows are spread round-robin.
            partition_by: Data placement keys that override the primary key for
                partitioning (e.g. the join key).
            replace: Replace an existing table loaded straight into the
                cluster. If the load fails, the old table stays as it was.
            format: For files: ``"parquet"``, ``"csv"``, ``"json"``,
                ``"avro"`` or ``"delta"`` (default: from the file name; a
                folder is Parquet, or Delta when it has a ``_delta_log``).
            storage_options: For object stores, as for external tables.
            progress: Show a progress bar for Arrow sources (default: when
                interactive and tqdm is installed, unless ``LAKEWAVE_PROGRESS=0``).

        The load is atomic: on any error (bad data, out of memory, Ctrl-C)
        nothing becomes visible and all memory is given back. A name already
        taken by a table, view or external table is refused.
        """
        keys = _names(primary_key, "primary_key")
        placement = _names(partition_by, "partition_by")
        if isinstance(source, (str, os.PathLike)):
            location = os.fspath(source)
            return self._inner.load_files(
                name,
                location,
                format,
                keys,
                placement,
                replace,
                _string_map(storage_options, "storage_options"),
            )
        if format is not None or storage_options is not None:
            raise InterfaceError("format and storage_options apply to files, not to Arrow data")
        report, close = reporter(name, progress)
        try:
            data, described = _arrow_source(source)
            return self._inner.load_arrow(name, data, keys, placement, replace, described, report)
        finally:
            close()

    def insert(self, table: str, source: Any, *, mode: str = "insert") -> int:
        """Insert rows from any Arrow producer into a row-store table, in one
        transaction; columns are matched by name and converted to the table's
        types. Returns the number of rows written.

        Args:
            table: ``table`` or ``database.table`` (made by ``CREATE TABLE``).
            source: a pyarrow Table or RecordBatchReader, a polars or pandas
                DataFrame, anything with ``__arrow_c_stream__``.
            mode: ``"insert"`` (a duplicate key is an :class:`IntegrityError`),
                ``"replace"`` (MySQL's REPLACE) or ``"ignore"`` (INSERT IGNORE).

        >>> import lakewave as lw, pyarrow as pa
        >>> db = lw.connect()
        >>> _ = db.sql("CREATE TABLE t (id INT PRIMARY KEY, name TEXT)")
        >>> db.insert("t", pa.table({"id": [1, 2], "name": ["a", "b"]}))
        2
        """
        data, _ = _arrow_source(source)
        return int(self._inner.insert_arrow(table, data, mode))

    def create_external_table(
        self,
        name: str,
        location: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        format: str = "parquet",
        columns: Mapping[str, str] | None = None,
        options: Mapping[str, object] | None = None,
        storage_options: Mapping[str, str] | None = None,
        refresh_interval: float | None = None,
        if_not_exists: bool = False,
    ) -> None:
        """Define an external table over files read in place (the Pythonic form
        of ``CREATE EXTERNAL TABLE ... FILE_FORMAT = (...) FILES = (...)``).

        Args:
            name: ``table`` or ``database.table``.
            location: a file, a folder (every file of the format below it), a
                glob pattern, or a list of them; local paths or ``file://``.
            format: ``"parquet"``, ``"csv"``, ``"json"`` (newline-delimited),
                ``"avro"`` or ``"delta"`` (the table's root folder;
                ``options={"version": n}`` reads an older version).
            columns: ``{"name": "MySQL type"}``; inferred from the files when
                omitted. Declared columns must match the files' columns.
            options: CSV options ``header`` (default true), ``field_delimiter``,
                ``quotation_marks``, ``null_value``. Unknown keys are errors.
            storage_options: object store settings for ``s3://``, ``oci://``,
                ``gs://``, ``az://`` locations: ``endpoint``, ``region``,
                ``access_key_id``, ``secret_access_key``, ``allow_http``, or the
                object_store keys (``aws_*``, ``google_*``, ``azure_*``). Secret
                values are not kept in the database file.
            refresh_interval: seconds; once loaded, the table is refreshed on
                its own this often (``REFRESH_INTERVAL``), as :meth:`refresh`
                does. A failed automatic refresh keeps the loaded version and
                shows in ``loaded_tables()`` as ``stale_reason``.

        ``ALTER TABLE name SECONDARY_LOAD`` then loads it into the cluster;
        ``DROP TABLE`` removes the definition, never the files.

        >>> import lakewave as lw, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.csv").write_text("id;name\\n1;pen\\n2;ink\\n")
        >>> db = lw.connect()
        >>> db.create_external_table("items", folder / "a.csv", format="csv", options={"field_delimiter": ";"})
        >>> db.sql("SELECT count(*) FROM items").fetchone()
        (2,)
        """

        locations = [location] if isinstance(location, (str, os.PathLike)) else list(location)
        if not locations:
            raise InterfaceError("location names no file or folder")
        settings: list[tuple[str, str]] = []
        for key, value in (options or {}).items():
            if isinstance(value, bool):
                value = "ON" if value else "OFF"
            settings.append((str(key), str(value)))
        self._inner.create_external_table(
            name,
            format,
            settings,
            [os.fspath(p) for p in locations],
            None if columns is None else [(str(c), str(t)) for c, t in columns.items()],
            _string_map(storage_options, "storage_options"),
            None if refresh_interval is None else float(refresh_interval),
            if_not_exists,
        )

    def refresh(self, *tables: str) -> dict[str, str]:
        """Bring external tables up to date with their files, as
        ``CALL sys.HEATWAVE_LOAD(..., JSON_OBJECT('refresh_external_tables',
        TRUE))`` does: a loaded table gets only what changed since its loaded
        version (for Delta, the commits after it; for plain files, the files
        added, removed or rewritten), a table that is not loaded is loaded.
        Queries keep running and see the old or the new version, never a mix.

        Returns ``{table: what was done}``.

        >>> import lakewave as lw, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.csv").write_text("id\\n1\\n2\\n")
        >>> db = lw.connect()
        >>> db.create_external_table("items", folder, format="csv")
        >>> db.refresh("items")
        {'main.items': 'loaded'}
        >>> _ = (folder / "b.csv").write_text("id\\n3\\n")
        >>> db.refresh("items")
        {'main.items': 'refreshed (1 file added, 0 removed)'}
        >>> db.sql("SELECT count(*) FROM items").fetchone()
        (3,)
        """
        if not tables:
            raise InterfaceError("refresh() needs at least one table name")
        return dict(self._inner.refresh([str(t) for t in tables]))

    def loaded_tables(self) -> list[LoadedTable]:
        """Every table in the cluster with its HeatWave status: POOL_TYPE
        (TRANSACTIONAL when changes propagate to it, SNAPSHOT for tables
        loaded straight into the cluster), LOAD_STATUS (``AVAIL_RPDGSTABSTATE``
        or ``STALE_RPDGSTABSTATE`` with a ``stale_reason``), SNAPSHOT_SCN and
        NROWS, as ``performance_schema.rpd_tables`` shows them."""
        return list(self._inner.loaded_tables())

    def reload(self, table: str) -> None:
        """Reload a row-store table into the cluster from its current rows
        (what ``SECONDARY_UNLOAD`` + ``SECONDARY_LOAD`` do), e.g. after it
        became stale."""
        self._inner.reload(table)

    def sync(self) -> None:
        """Propagate every committed change to the cluster now (queries that
        are offloaded already do this for the tables they read)."""
        self._inner.sync()

    @property
    def path(self) -> str | None:
        """The database file, or ``None`` for an in-memory database."""
        return self._inner.path()

    @property
    def use_secondary_engine(self) -> str:
        """This connection's offload mode: ``"ON"``, ``"OFF"`` or ``"FORCED"``."""
        return self._inner.offload_mode()

    @property
    def in_transaction(self) -> bool:
        """Whether a ``BEGIN`` is open on this connection."""
        return bool(self._inner.in_transaction())

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

    @property
    def session_id(self) -> int:
        """This connection's session id (``CONNECTION_ID()``, ``SHOW PROCESSLIST``)."""
        return int(self._inner.session_id())

    def processes(self) -> list[dict[str, Any]]:
        """Every session of the instance and what it is running, as
        ``SHOW PROCESSLIST`` shows them."""
        return list(self._inner.processes())

    def serve(
        self,
        *,
        host: str = "127.0.0.1",
        mysql_port: int = 3306,
        flight_port: int | None = None,
        status_port: int | None = None,
        user: str = "root",
        password: str = "",
        users_file: str | os.PathLike[str] | None = None,
        check_user: str | None = "haproxy",
        max_connections: int = 151,
        max_allowed_packet: int = 64 * 2**20,
        tls_certificate: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
    ) -> Server:
        """Serve this connection's instance over the MySQL protocol (and an
        HTTP status port answering ``GET /health``), on the instance's own
        threads; returns at once with a :class:`~lakewave.server.Server`.

        Args:
            host: The address to listen on (default loopback only).
            mysql_port: 0 picks a free port; read it back from the server.
            flight_port: The Arrow Flight SQL port (``None``: none; 0: a free
                one). ADBC's Flight SQL driver connects to
                ``grpc://host:flight_port`` (``grpc+tls://`` with TLS).
            status_port: The HTTP status port (``None``: none; 0: a free one).
            user, password: The one account, unless ``users_file`` is given.
            users_file: A file of ``user:password`` lines.
            check_user: A password-less user that may log in and run nothing,
                for HAProxy's ``option mysql-check`` (``None``: no such user).
            max_connections: Clients beyond this get error 1040.
            max_allowed_packet: Larger packets get error 1153.
            tls_certificate, tls_key: PEM files of a certificate chain and its
                private key: both endpoints then offer TLS.

        The server stops with :meth:`Server.close` or when this connection
        closes.
        """
        inner = self._inner.serve(
            host,
            int(mysql_port),
            None if flight_port is None else int(flight_port),
            None if status_port is None else int(status_port),
            user,
            password,
            None if users_file is None else os.fspath(users_file),
            check_user,
            int(max_connections),
            int(max_allowed_packet),
            None if tls_certificate is None else os.fspath(tls_certificate),
            None if tls_key is None else os.fspath(tls_key),
        )
        server = Server(inner, tls=tls_certificate is not None)
        self._servers.append(server)
        return server

    def join_group(
        self, file: str | os.PathLike[str], member: str, running: Mapping[str, object] | None = None
    ) -> GroupMember:
        """Make this instance member ``member`` of the HA group described by
        the group file ``file`` (see ``lakewave group init``): from now on
        every commit is replicated to a majority of the group's voting
        members before it is acknowledged, DDL and loads run on every member
        in the group's order, and writes are refused (error 1290) unless this
        member is the primary. The database must be a file. ``running`` is
        the options this instance was opened with, which the member reports as
        its shape and configuration. ``lakewave serve --group FILE --member
        NAME`` does this and serves the member's ports.
        """
        options = {str(k): str(v) for k, v in (running or {}).items()}
        return GroupMember(self._inner.join_group(os.fspath(file), member, options))

    def cursor(self) -> Cursor:
        """A DB-API 2.0 cursor with a session of its own on this connection's
        instance (its own settings and transaction), as DuckDB's cursors are.
        It is closed with the connection."""
        from lakewave.cursor import Cursor

        cursor = Cursor(self, self._inner.new_session())
        self._cursors.add(cursor)
        return cursor

    def commit(self) -> None:
        """DB-API: commit the open transaction (if any); outside one, every
        statement commits as it runs (autocommit)."""
        if self.in_transaction:
            self.sql("COMMIT")

    def rollback(self) -> None:
        """DB-API: roll back the open transaction (if any)."""
        if self.in_transaction:
            self.sql("ROLLBACK")

    def close(self) -> None:
        """End this connection's session and its cursors' sessions (their open
        transactions are rolled back). The connection made by
        :func:`connect` also closes the instance: propagation stops and the
        database file can be opened again. Later calls raise
        :class:`InterfaceError`."""
        for server in self._servers:
            server.close()
        for cursor in list(self._cursors):
            cursor.close()
        self._inner.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the session was killed)."""
        return bool(self._inner.closed)

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


def _string_map(values: Mapping[str, object] | None, what: str) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InterfaceError(f"{what} must be a mapping of option names to values")
    return {str(k): str(v) for k, v in values.items()}
