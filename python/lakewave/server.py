"""Serving an instance on the network: the MySQL protocol and a status port.

>>> import lakewave as lw
>>> db = lw.connect()
>>> server = db.serve(mysql_port=0)
>>> server.mysql_port > 0
True
>>> server.close()
"""

from __future__ import annotations

from lakewave import _internal


class Server:
    """A running server of one instance. Clients connect to ``host:mysql_port``
    with any MySQL driver or the ``mariadb``/``mysql`` command-line client; each
    connection is a session of its own. Closing the server (or the connection
    that started it) cancels running statements and ends every connection."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _internal.Server) -> None:
        self._inner = inner

    @property
    def host(self) -> str:
        return str(self._inner.host)

    @property
    def mysql_port(self) -> int:
        """The MySQL protocol's port (the bound one when 0 was asked for)."""
        return int(self._inner.mysql_port)

    @property
    def status_port(self) -> int | None:
        """The HTTP status port (``GET /health``), if one was asked for."""
        port = self._inner.status_port
        return None if port is None else int(port)

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return int(self._inner.connections)

    @property
    def closed(self) -> bool:
        return bool(self._inner.closed)

    def close(self, grace: float = 5.0) -> None:
        """Stop listening, cancel what is running and end every connection,
        waiting up to ``grace`` seconds for them to close."""
        self._inner.close(grace)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.connections} connections"
        return f"<lakewave.Server mysql://{self.host}:{self.mysql_port} ({state})>"
