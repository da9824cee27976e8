"""A private MariaDB server for tests: its own data directory, port, socket and
binlog, started from Debian's packages and stopped by its owner."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

# What the source needs of a server (the preflight checks each of them).
BINLOG_OPTIONS = [
    "--log-bin=binlog",
    "--server-id=1",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install() -> None:
    """Install the server and client from Debian when they are missing."""
    if shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists():
        return
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "mariadb-server-core", "mariadb-client-core"],
        check=True,
        capture_output=True,
    )


class MariaDB:
    """One private server. `extra` adds or overrides server options."""

    def __init__(self, folder: Path, extra: list[str] | None = None, binlog: bool = True) -> None:
        install()
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.data = folder / "data"
        self.socket = folder / "mariadb.sock"
        self.options = (BINLOG_OPTIONS if binlog else []) + list(extra or [])
        if not self.data.exists():
            subprocess.run(
                [
                    shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={self.data}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--user=root",
                ],
                check=True,
                capture_output=True,
            )
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("mariadbd") or "/usr/sbin/mariadbd",
                "--no-defaults",
                f"--datadir={self.data}",
                f"--port={self.port}",
                f"--socket={self.socket}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--innodb-buffer-pool-size=256M",
                f"--pid-file={self.folder / 'mariadb.pid'}",
                f"--log-error={self.folder / 'error.log'}",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.folder / "error.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"MariaDB exited with {self.process.returncode}:\n{log}")
            try:
                self.connect().close()
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("MariaDB did not start within 60 s")

    def url(self, user: str = "root", password: str = "", database: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"mysql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def connect(self, **kwargs):
        import pymysql

        kwargs.setdefault("user", "root")
        kwargs.setdefault("autocommit", True)
        return pymysql.connect(host="127.0.0.1", port=self.port, **kwargs)

    def execute(self, *statements: str) -> None:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def rows(self, query: str) -> list[tuple]:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute(query)
            return [tuple(row) for row in cur.fetchall()]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
