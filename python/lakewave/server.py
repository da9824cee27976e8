"""Serving an instance on the network: the MySQL protocol, Arrow Flight SQL
and a status port.

>>> import lakewave as lw
>>> db = lw.connect()
>>> server = db.serve(mysql_port=0, flight_port=0)
>>> server.mysql_port > 0 and server.flight_port > 0
True
>>> server.close()
"""

from __future__ import annotations

from lakewave import _internal


class Server:
    """A running server of one instance. Clients connect to ``host:mysql_port``
    with any MySQL driver or the ``mariadb``/``mysql`` command-line client, and
    to :attr:`flight_uri` with ADBC's Flight SQL driver; each connection (each
    Flight SQL login) is a session of its own. Closing the server (or the connection
    that started it) cancels running statements and ends every connection."""

    __slots__ = ("_inner", "_tls")

    def __init__(self, inner: _internal.Server, tls: bool = False) -> None:
        self._inner = inner
        self._tls = tls

    @property
    def host(self) -> str:
        return str(self._inner.host)

    @property
    def mysql_port(self) -> int:
        """The MySQL protocol's port (the bound one when 0 was asked for)."""
        return int(self._inner.mysql_port)

    @property
    def flight_port(self) -> int | None:
        """The Arrow Flight SQL port, if one was asked for."""
        port = self._inner.flight_port
        return None if port is None else int(port)

    @property
    def flight_uri(self) -> str | None:
        """``grpc://host:port`` for ADBC's Flight SQL driver (``grpc+tls://``
        when the server has a certificate)."""
        port = self.flight_port
        if port is None:
            return None
        scheme = "grpc+tls" if self._tls else "grpc"
        return f"{scheme}://{self.host}:{port}"

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
        """Stop listening and drain: idle connections end at once, running
        statements get ``grace`` seconds to finish (each connection ends right
        after its answer), then what still runs is cancelled and every
        session ends (open transactions roll back)."""
        self._inner.close(grace)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.connections} connections"
        return f"<lakewave.Server mysql://{self.host}:{self.mysql_port} ({state})>"
