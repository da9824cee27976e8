"""Several instances over one bucket behind HAProxy, as HeatWave's Lakehouse HA
runs them: two `lakewave serve` processes, each with its own database file and
the same external Delta table on one S3 bucket (a moto server), and Debian's
HAProxy in front with `roundrobin`, `source` and `leastconn`, health-checked by
`option mysql-check` (the password-less check user) or by the status port. The
configuration written here is the README's."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pymysql
import pytest
from support import free_port, moto_bucket

deltalake = pytest.importorskip("deltalake")
pytest.importorskip("moto.server")

BUCKET = "lake"
TABLE_URI = f"s3://{BUCKET}/market_data/delta_orders"
PASSWORD = "pw"
QUERY = "SELECT @@hostname, a.* FROM market_data.delta_orders a ORDER BY order_id"


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        pytest.fail("haproxy is not installed (scripts/test.sh installs Debian's package)")
    return found


def read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


class Instance:
    """One `lakewave serve` process."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self.mysql_port = free_port()
        self.status_port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lakewave",
                "serve",
                "--database",
                str(folder / f"{name}.db"),
                "--mysql-port",
                str(self.mysql_port),
                "--status-port",
                str(self.status_port),
                "--flight-port",
                "-1",
                "--instance-name",
                name,
                "--user",
                "app",
                "--password",
                PASSWORD,
                "--threads",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=read_lines, args=(self.process.stdout, self.lines), daemon=True).start()
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            if "ready for connections" in line:
                return
        self.process.kill()
        raise AssertionError(f"{name} did not start: {''.join(seen)}")

    def connect(self) -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.mysql_port, user="app", password=PASSWORD)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def haproxy_config(balance: str, front: int, instances: list[Instance], check: str) -> str:
    """The README's haproxy.cfg for these instances."""
    if check == "mysql":
        health = "    option mysql-check user haproxy post-41\n"
        servers = "".join(f"    server {i.name} 127.0.0.1:{i.mysql_port} check\n" for i in instances)
    else:
        health = "    option httpchk GET /health\n    http-check expect status 200\n"
        servers = "".join(
            f"    server {i.name} 127.0.0.1:{i.mysql_port} check port {i.status_port}\n" for i in instances
        )
    return (
        "global\n"
        "    maxconn 512\n"
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 2s\n"
        "    timeout client 60s\n"
        "    timeout server 60s\n"
        "    retries 2\n"
        "    option redispatch\n"
        "frontend lakewave_mysql\n"
        f"    bind 127.0.0.1:{front}\n"
        "    default_backend lakewave\n"
        "backend lakewave\n"
        f"    balance {balance}\n"
        f"{health}"
        "    default-server inter 500ms fall 2 rise 1\n"
        f"{servers}"
    )


class Balancer:
    def __init__(self, folder: Path, balance: str, instances: list[Instance], check: str = "mysql") -> None:
        self.port = free_port()
        config = folder / f"haproxy-{balance}.cfg"
        config.write_text(haproxy_config(balance, self.port, instances, check))
        checked = subprocess.run([haproxy_binary(), "-c", "-f", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.process = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=read_lines, args=(self.process.stdout, self.lines), daemon=True).start()
        names = {i.name for i in instances}
        seen: set[str] = set()
        errors: list[str] = []
        deadline = time.monotonic() + 30
        # Ready once every instance has answered through it (checks are up);
        # clients come from several loopback addresses, for `balance source`.
        attempt = 0
        while seen != names and time.monotonic() < deadline:
            attempt += 1
            try:
                seen.add(self.hostname(bind_address=f"127.0.0.{1 + attempt % 32}"))
            except pymysql.MySQLError as error:
                errors.append(str(error))
                time.sleep(0.1)
        assert seen == names, f"HAProxy reached only {seen}: {self.output()} {errors[-3:]}"

    def output(self) -> str:
        """What HAProxy printed so far (server state changes, with reasons)."""
        printed = []
        while not self.lines.empty():
            printed.append(self.lines.get_nowait())
        return "".join(printed)

    def connect(self, **kwargs) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="app", password=PASSWORD, connect_timeout=5, **kwargs
        )

    def hostname(self, **kwargs) -> str:
        with self.connect(**kwargs) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@hostname")
            return cur.fetchone()[0]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def bucket():
    with moto_bucket(BUCKET) as bucket:
        yield bucket.endpoint, bucket.delta_options


def orders(first: int, count: int) -> pa.Table:
    ids = list(range(first, first + count))
    return pa.table(
        {
            "order_id": pa.array(ids, pa.int32()),
            "product": [f"product-{i % 7}" for i in ids],
            "amount": [i * 1.25 for i in ids],
        }
    )


SEED = [
    "CREATE DATABASE market_data",
    "CREATE EXTERNAL TABLE market_data.delta_orders (order_id INT, product LONGTEXT, amount DOUBLE) "
    f"FILE_FORMAT = (FORMAT delta) FILES = (URI '{TABLE_URI}/') "
    "STORAGE_OPTIONS = (endpoint '{endpoint}', allow_http 'true', region 'us-east-1')",
    "ALTER TABLE market_data.delta_orders SECONDARY_LOAD",
]
REFRESH = [
    "SET @options = JSON_OBJECT('mode', 'normal', 'refresh_external_tables', TRUE)",
    'CALL sys.HEATWAVE_LOAD(CAST(\'[{"db_name": "market_data", "tables": '
    '[{"table_name": "delta_orders"}]}]\' AS JSON), @options)',
]


def run(instance: Instance, statements: list[str], endpoint: str = "") -> None:
    with instance.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement.replace("{endpoint}", endpoint))


def answers(balancer: Balancer, **kwargs) -> tuple[str, list[tuple]]:
    with balancer.connect(**kwargs) as conn, conn.cursor() as cur:
        cur.execute(QUERY)
        rows = cur.fetchall()
    hosts = {row[0] for row in rows}
    assert len(hosts) == 1
    return hosts.pop(), [row[1:] for row in rows]


def test_two_instances_over_one_bucket_behind_haproxy(bucket, tmp_path: Path) -> None:
    endpoint, delta_options = bucket
    deltalake.write_deltalake(TABLE_URI, orders(1, 50), storage_options=delta_options)
    # Credentials come from the environment (the definitions keep no secret).
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "LAKEWAVE_PROGRESS": "0",
    }
    instances = [Instance(name, tmp_path, env) for name in ("lw-a", "lw-b")]
    balancer = None
    try:
        for instance in instances:
            run(instance, SEED, endpoint)

        # Round robin: both instances answer, with the same rows.
        balancer = Balancer(tmp_path, "roundrobin", instances)
        seen = [answers(balancer) for _ in range(12)]
        assert {host for host, _ in seen} == {"lw-a", "lw-b"}
        assert all(rows == seen[0][1] for _, rows in seen)
        assert len(seen[0][1]) == 50
        balancer.stop()

        # Source: one client address always reaches the same instance.
        balancer = Balancer(tmp_path, "source", instances)
        for address in ("127.0.0.2", "127.0.0.3"):
            hosts = {balancer.hostname(bind_address=address) for _ in range(8)}
            assert len(hosts) == 1, f"{address} reached {hosts}"
        balancer.stop()

        # Least connections, checked by the status port: while one client
        # holds a connection, the next goes to the other instance.
        balancer = Balancer(tmp_path, "leastconn", instances, check="status")
        with balancer.connect() as held, held.cursor() as cur:
            cur.execute("SELECT @@hostname")
            first = cur.fetchone()[0]
            assert balancer.hostname() != first

        # A new Delta commit: each instance refreshes to it.
        deltalake.write_deltalake(TABLE_URI, orders(51, 5), mode="append", storage_options=delta_options)
        for instance in instances:
            run(instance, REFRESH)
        seen = [answers(balancer) for _ in range(6)]
        assert {host for host, _ in seen} == {"lw-a", "lw-b"}
        assert all(len(rows) == 55 and rows == seen[0][1] for _, rows in seen)

        # One instance dies: new connections reach the other one within the
        # health-check interval (fall 2 × inter 500 ms), and none fails after.
        instances[0].process.send_signal(signal.SIGKILL)
        instances[0].process.wait()
        killed = time.monotonic()
        streak = 0
        while streak < 10:
            assert time.monotonic() - killed < 15, "HAProxy kept sending clients to the dead instance"
            try:
                host = balancer.hostname()
            except pymysql.MySQLError:
                streak = 0
                continue
            streak = streak + 1 if host == "lw-b" else 0
        for _ in range(10):
            assert answers(balancer)[0] == "lw-b"
    finally:
        if balancer is not None:
            balancer.stop()
        for instance in instances:
            instance.stop()
