"""An HA group: three voting members and a read replica, each a `lakewave
serve --group` process, with Debian's HAProxy in front, all started by
`lakewave group start` from a file `lakewave group init` wrote. Clients are
PyMySQL through the group's endpoints and straight to members. The primary is
SIGKILLed, under a write load too, and nothing acknowledged may be lost."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest
from support import wait_for

PASSWORD = "group pw"
USER = "app"


def lakewave(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "lakewave", *args], capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"lakewave {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


def free_block(size: int) -> int:
    """A first port such that `size` ports from it are free on loopback."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)
        sockets = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no free block of ports")


class Group:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file = folder / "group.toml"
        self.base = free_block(3 + 4 * 4)
        lakewave(
            "group", "init", str(self.file), "--dir", str(folder), "--members", "3", "--replicas", "1",
            "--base-port", str(self.base), "--user", USER, "--password", PASSWORD,
        )  # fmt: skip
        self.spec = json.loads(subprocess.check_output([sys.executable, "-c", (
            "import json, sys, lakewave.group as g; print(json.dumps(g.read_file(sys.argv[1])))"
        ), str(self.file)]))  # fmt: skip
        self.members = {m["name"]: m for m in self.spec["members"]}

    def status(self) -> dict:
        return json.loads(lakewave("group", "status", str(self.file), "--json").stdout)

    def primary(self) -> str | None:
        return self.status()["primary"]

    def connect(self, port: int, **kwargs) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=port, user=USER, password=PASSWORD, autocommit=True,
            connect_timeout=5, read_timeout=30, write_timeout=30, **kwargs,
        )  # fmt: skip

    def member(self, name: str, **kwargs) -> pymysql.Connection:
        return self.connect(self.members[name]["mysql_port"], **kwargs)

    def read_write(self) -> pymysql.Connection:
        return self.connect(self.spec["read_write_port"])

    def read_only(self) -> pymysql.Connection:
        return self.connect(self.spec["read_only_port"])

    def role(self, name: str, path: str) -> int:
        url = f"http://127.0.0.1:{self.members[name]['status_port']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.status
        except urllib.error.HTTPError as answer:
            return answer.code

    def pid(self, name: str) -> int:
        return int((Path(self.members[name]["dir"]) / "lakewave.pid").read_text())

    def applied(self, name: str) -> int:
        for m in self.status()["members"]:
            if m["name"] == name:
                return m["applied_index"] or 0
        raise KeyError(name)

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Every running member has applied what the primary has."""

        def caught_up() -> bool:
            current = self.status()
            primary = next((m for m in current["members"] if m["name"] == current["primary"]), None)
            if primary is None:
                return False
            target = primary["applied_index"]
            return all(
                m["applied_index"] is not None and m["applied_index"] >= target
                for m in current["members"]
                if m["state"] != "OFFLINE"
            )

        wait_for(caught_up, timeout, "every member to catch up")


def rows(conn: pymysql.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def execute(conn: pymysql.Connection, sql: str, args=None) -> int:
    with conn.cursor() as cur:
        return cur.execute(sql, args)


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    folder = tmp_path_factory.mktemp("group")
    g = Group(folder)
    started = lakewave("group", "start", str(g.file), timeout=180)
    assert "primary" in started.stdout, started.stdout
    yield g
    lakewave("group", "stop", str(g.file), check=False, timeout=120)
    for m in g.members.values():
        log = Path(m["dir"]) / "lakewave.log"
        if log.exists():
            sys.stderr.write(f"--- {m['name']} ---\n{log.read_text(errors='replace')[-3000:]}\n")


def test_status_names_the_endpoints_every_member_and_its_role(group):
    current = group.status()
    assert current["endpoints"]["read_write"] == f"127.0.0.1:{group.spec['read_write_port']}"
    assert current["endpoints"]["read_only"] == f"127.0.0.1:{group.spec['read_only_port']}"
    roles = sorted(m["role"] for m in current["members"])
    assert roles == ["primary", "replica", "secondary", "secondary"], current
    for m in current["members"]:
        assert m["state"] == "ONLINE", m
        assert m["pid"] == group.pid(m["name"])
        assert m["shape"] == {"nodes": "1", "memory_per_node": "1GiB", "threads": "2"}
        assert m["differs"] == {}
        assert m["mysql_port"] == group.members[m["name"]]["mysql_port"]
    primary = current["primary"]
    # What HAProxy checks.
    for name in group.members:
        assert group.role(name, "/role/primary") == (200 if name == primary else 503)
        assert group.role(name, "/role/readable") == 200
    text = lakewave("group", "status", str(group.file)).stdout
    assert primary in text and "ONLINE" in text
    # The users file keeps digests only.
    users = (group.folder / "users").read_text()
    assert PASSWORD not in users and "$lw-sha$" in users
    assert oct((group.folder / "users").stat().st_mode & 0o777) == "0o600"


def test_commits_reach_every_member_with_the_same_rows(group):
    rw = group.read_write()
    execute(rw, "CREATE DATABASE shop")
    execute(
        rw,
        "CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(30), n DECIMAL(10,2), r DOUBLE)",
    )
    execute(rw, "INSERT INTO shop.t (v, n, r) VALUES ('a', 1.50, RAND()), ('b', 2.25, RAND())")
    execute(rw, "BEGIN")
    for i in range(50):
        execute(rw, "INSERT INTO shop.t (v, n, r) VALUES (%s, %s, RAND())", (f"row {i}", Decimal(i) / 4))
    execute(rw, "UPDATE shop.t SET r = RAND() WHERE id <= 10")
    execute(rw, "DELETE FROM shop.t WHERE id = 3")
    execute(rw, "COMMIT")
    # A rolled-back transaction leaves nothing anywhere.
    execute(rw, "BEGIN")
    execute(rw, "INSERT INTO shop.t (v) VALUES ('rolled back')")
    execute(rw, "ROLLBACK")
    expected = rows(rw, "SELECT * FROM shop.t ORDER BY id")
    assert len(expected) == 51
    assert not any(r[1] == "rolled back" for r in expected)
    group.wait_caught_up()
    for name in group.members:
        with group.member(name) as conn:
            # RAND() was drawn once, on the primary: the row images travel.
            assert rows(conn, "SELECT * FROM shop.t ORDER BY id") == expected, name
    with group.read_only() as ro:
        assert rows(ro, "SELECT count(*) FROM shop.t") == [(51,)]
    rw.close()


def test_writes_on_a_secondary_or_replica_are_refused_and_it_keeps_serving(group):
    primary = group.primary()
    for name in group.members:
        if name == primary:
            continue
        with group.member(name) as conn:
            for statement in (
                "INSERT INTO shop.t (v) VALUES ('nope')",
                "UPDATE shop.t SET v = 'x'",
                "CREATE TABLE shop.u (id INT PRIMARY KEY)",
                "DROP TABLE shop.t",
            ):
                with pytest.raises(pymysql.err.MySQLError) as refused:
                    execute(conn, statement)
                assert refused.value.args[0] == 1290, (name, statement, refused.value)
                assert primary in refused.value.args[1]
            assert rows(conn, "SELECT count(*) FROM shop.t") == [(51,)]
    with group.read_only() as ro, pytest.raises(pymysql.err.MySQLError) as refused:
        execute(ro, "INSERT INTO shop.t (v) VALUES ('nope')")
    assert refused.value.args[0] == 1290


def test_ddl_and_secondary_load_run_on_every_member(group):
    with group.read_write() as rw:
        execute(
            rw, "CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, amount DECIMAL(12,2), region VARCHAR(10))"
        )
        execute(
            rw,
            "INSERT INTO shop.orders VALUES "
            + ", ".join(f"({i}, {i}.25, 'r{i % 3}')" for i in range(1, 201)),
        )
        execute(rw, "ALTER TABLE shop.orders SECONDARY_LOAD")
        execute(rw, "INSERT INTO shop.orders VALUES (1000, 5.00, 'r9')")
        execute(rw, "ALTER TABLE shop.orders ADD COLUMN note VARCHAR(20)")
        # An error is the same on every member and changes nothing.
        with pytest.raises(pymysql.err.MySQLError) as exists:
            execute(rw, "CREATE TABLE shop.orders (id INT PRIMARY KEY)")
        assert exists.value.args[0] == 1050
        expected = rows(
            rw, "SELECT region, count(*), sum(amount) FROM shop.orders GROUP BY region ORDER BY region"
        )
    group.wait_caught_up()
    for name in group.members:
        with group.member(name) as conn:
            execute(conn, "SET use_secondary_engine = FORCED")

            def fresh(conn=conn) -> bool:
                return rows(conn, "SELECT count(*) FROM shop.orders") == [(201,)]

            wait_for(fresh, 20, f"{name}'s cluster to have the propagated row")
            assert (
                rows(
                    conn,
                    "SELECT region, count(*), sum(amount) FROM shop.orders GROUP BY region ORDER BY region",
                )
                == expected
            )
            loaded = rows(
                conn,
                "SELECT LOAD_STATUS FROM performance_schema.rpd_tables t JOIN performance_schema.rpd_table_id i ON t.ID = i.ID WHERE i.TABLE_NAME = 'orders'",
            )
            assert loaded and loaded[0][0] == "AVAIL_RPDGSTABSTATE", (name, loaded)
            columns = [r[0] for r in rows(conn, "SHOW COLUMNS FROM shop.orders")]
            assert columns == ["id", "amount", "region", "note"], name


def test_switchover_moves_the_primary_and_the_read_write_endpoint(group):
    old = group.primary()
    target = next(n for n, m in group.members.items() if m["role"] == "voter" and n != old)
    for bad, reason in (("r1", "read replica"), ("nobody", "no member"), (old, "already the primary")):
        refused = lakewave("group", "switchover", str(group.file), "--to", bad, check=False)
        assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
    assert group.primary() == old
    moved = json.loads(lakewave("group", "switchover", str(group.file), "--to", target, "--json").stdout)
    assert (moved["from"], moved["to"]) == (old, target)
    assert group.primary() == target
    with group.read_write() as rw:
        assert rows(rw, "SELECT @@hostname") == [(target,)]
        execute(rw, "INSERT INTO shop.t (v) VALUES ('after switchover')")
        expected = rows(rw, "SELECT * FROM shop.t ORDER BY id")
    assert group.role(old, "/role/primary") == 503
    group.wait_caught_up()
    roles = {m["name"]: (m["role"], m["state"]) for m in group.status()["members"]}
    assert roles[old] == ("secondary", "ONLINE"), roles
    with group.member(old) as conn:
        assert rows(conn, "SELECT * FROM shop.t ORDER BY id") == expected


def test_rolling_update_restarts_one_member_at_a_time_and_only_the_switchover_stops_writes(group):
    before = group.file.read_text()
    for bad, reason in (("--config=bogus=1", "unknown option"), ("--shape=colour=1", "colour")):
        refused = lakewave("group", "update", str(group.file), bad, check=False)
        assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
        assert group.file.read_text() == before
    old = group.primary()
    writes: list[tuple[float, bool, int]] = []
    reads: list[tuple[float, bool]] = []
    stop = threading.Event()

    def writer() -> None:
        conn, next_id = None, 200_000
        while not stop.is_set():
            try:
                conn = conn or group.read_write()
                execute(conn, "INSERT INTO shop.t (id, v) VALUES (%s, 'update load')", (next_id,))
                writes.append((time.time(), True, next_id))
            except pymysql.err.MySQLError:
                writes.append((time.time(), False, next_id))
                conn = None
                time.sleep(0.05)
            next_id += 1
            time.sleep(0.01)

    def reader() -> None:
        conn = None
        while not stop.is_set():
            try:
                conn = conn or group.read_only()
                rows(conn, "SELECT count(*) FROM shop.t")
                reads.append((time.time(), True))
            except pymysql.err.MySQLError:
                reads.append((time.time(), False))
                conn = None
                time.sleep(0.05)
            time.sleep(0.01)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        done = json.loads(
            lakewave(
                "group", "update", str(group.file), "--shape", "threads=1",
                "--config", "propagation_interval=100ms", "--json", timeout=600,
            ).stdout
        )  # fmt: skip
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    steps = done["steps"]
    assert sorted(done["operated"]) == sorted(group.members)
    order = [s["member"] for s in steps if s["step"].startswith("update ")]
    assert order[0] == "r1", order
    assert order[-1] == old, order
    assert set(order) == set(group.members)
    final = done["status"]
    assert final["primary"] != old and final["primary"] == done["switchover"]["to"]
    for m in final["members"]:
        assert m["state"] == "ONLINE", m
        assert m["differs"] == {}, m
        assert m["shape"]["threads"] == "1" and m["config"]["propagation_interval"] == "100ms", m
    # Writes failed only around the switchover (HAProxy's checks add a second or two).
    switch_from = next(s["at"] for s in steps if s["step"] == "switchover")
    switch_to = next(s["at"] for s in steps if s["step"] == "switchover done")
    failed = [at for at, ok, _ in writes if not ok]
    assert all(switch_from - 0.5 <= at <= switch_to + 3 for at in failed), (
        switch_from,
        switch_to,
        failed[:5],
    )
    assert sum(ok for _, ok, _ in writes) > 20
    # The read-only endpoint served while the replica was being updated.
    replica_out = next(s["at"] for s in steps if s["step"] == "update r1")
    replica_back = next(s["at"] for s in steps if s["step"] == "r1 is back")
    assert any(ok and replica_out <= at <= replica_back for at, ok in reads)
    with group.read_write() as rw:
        present = {r[0] for r in rows(rw, "SELECT id FROM shop.t WHERE id >= 200000")}
    acknowledged = {i for _, ok, i in writes if ok}
    assert acknowledged <= present, sorted(acknowledged - present)[:10]


def wait_new_primary(group: Group, old: str, timeout: float = 30) -> str:
    found: list[str] = []

    def elected() -> bool:
        current = group.status()
        p = current["primary"]
        if p and p != old:
            found.append(p)
            return True
        return False

    wait_for(elected, timeout, "a new primary")
    return found[-1]


def test_a_failed_rollout_halts_and_retry_rollback_and_resume_touch_only_what_differs(group):
    def update(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return lakewave("group", "update", str(group.file), *args, check=check, timeout=600)

    # More memory than the machine has: the first replica cannot come back.
    failed = update("--shape", "memory_per_node=64TiB", check=False)
    assert failed.returncode == 1, failed.stdout
    assert "r1 did not come back" in failed.stderr and "memory" in failed.stderr, failed.stderr
    journal = json.loads(group.file.with_name("group.toml.rollout.json").read_text())
    assert journal["state"] == "failed at r1" and journal["operated"] == []
    current = group.status()
    assert all(m["state"] == "ONLINE" for m in current["members"]), current
    problem = next(p for p in current["problems"] if "inconsistent" in p)
    assert problem.startswith("the group's members are inconsistent in the following properties:")
    assert "r1 shape.memory_per_node: observed '1GiB', target '64TiB'" in problem, problem
    with group.read_write() as rw:
        execute(rw, "INSERT INTO shop.t (v) VALUES ('during a failed rollout')")
    # The rollback operates nobody: every member still runs the old value.
    back = json.loads(update("--shape", "memory_per_node=1GiB", "--json").stdout)
    assert back["operated"] == [] and back["switchover"] is None
    assert not any("inconsistent" in p for p in group.status()["problems"])

    # A rollout interrupted after its first member, then resumed: only the
    # members not yet at the target are operated.
    running = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lakewave",
            "group",
            "update",
            str(group.file),
            "--config",
            "lock_wait_timeout=40s",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal_file = group.file.with_name("group.toml.rollout.json")

    def first_done() -> bool:
        try:
            return len(json.loads(journal_file.read_text())["operated"]) >= 1
        except (OSError, ValueError, KeyError):
            return False

    wait_for(first_done, 120, "the rollout's first member")
    running.kill()
    running.wait(30)
    first = json.loads(journal_file.read_text())["operated"]
    resumed = json.loads(update("--json").stdout)
    assert not set(first) & set(resumed["operated"]), (first, resumed["operated"])
    assert set(first) | set(resumed["operated"]) <= set(group.members)
    for m in resumed["status"]["members"]:
        assert m["differs"] == {} and m["config"]["lock_wait_timeout"] == "40s", m

    # A read replica's own setting: only it is operated, and a group update
    # of that key leaves it alone.
    refused = update("--member", "m1", "--config", "lock_wait_timeout=30s", check=False)
    assert refused.returncode == 1 and "only a read replica" in refused.stderr, refused.stderr
    own = json.loads(update("--member", "r1", "--config", "lock_wait_timeout=20s", "--json").stdout)
    assert own["operated"] == ["r1"], own["operated"]
    rest = json.loads(update("--config", "lock_wait_timeout=30s", "--json").stdout)
    assert "r1" not in rest["operated"] and len(rest["operated"]) == 3, rest["operated"]
    final = {m["name"]: m for m in rest["status"]["members"]}
    assert final["r1"]["config"]["lock_wait_timeout"] == "20s"
    assert final["m1"]["config"]["lock_wait_timeout"] == "30s"
    assert all(m["differs"] == {} for m in final.values())


def test_a_deposed_primary_cannot_commit_once_it_wakes(group):
    old = group.primary()
    os.kill(group.pid(old), signal.SIGSTOP)
    try:
        new = wait_new_primary(group, old)
        committed: list[bool] = []

        def write_through_endpoint() -> bool:
            try:
                with group.read_write() as rw:
                    execute(rw, "INSERT INTO shop.t (id, v) VALUES (300000, 'new primary')")
                committed.append(True)
                return True
            except pymysql.err.MySQLError:
                return False

        wait_for(write_through_endpoint, 30, "a write through the endpoint on the new primary")
    finally:
        os.kill(group.pid(old), signal.SIGCONT)
    # Woken, it may still believe it leads; its commit cannot reach a majority
    # of the newer term, so it is refused and leaves nothing behind.
    with group.member(old) as conn:
        with pytest.raises(pymysql.err.MySQLError) as refused:
            execute(conn, "INSERT INTO shop.t (id, v) VALUES (300001, 'deposed')")
        assert refused.value.args[0] in (1290, 3100), refused.value
    group.wait_caught_up()
    assert group.primary() == new
    for name in group.members:
        with group.member(name) as conn:
            assert rows(conn, "SELECT id FROM shop.t WHERE id IN (300000, 300001)") == [(300000,)], name


def test_killing_the_primary_loses_nothing_acknowledged_and_the_endpoint_follows(group):
    old = group.primary()
    acknowledged: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        next_id = 100_000
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = group.read_write()
                execute(conn, "INSERT INTO shop.t (id, v) VALUES (%s, 'load')", (next_id,))
                acknowledged.append(next_id)
            except pymysql.err.MySQLError as e:
                failures.append(repr(e))
                try:
                    if conn is not None:
                        conn.close()
                except Exception:
                    pass
                conn = None
                time.sleep(0.1)
                # The row may or may not have committed: never reuse its id.
            next_id += 1
        if conn is not None:
            conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    wait_for(lambda: len(acknowledged) >= 30, 30, "writes before the kill")
    os.kill(group.pid(old), signal.SIGKILL)
    new = wait_new_primary(group, old)
    count_at_failover = len(acknowledged)
    wait_for(
        lambda: len(acknowledged) >= count_at_failover + 30, 60, "writes through the endpoint after failover"
    )
    stop.set()
    thread.join(30)
    assert failures, "the kill should have interrupted the writer at least once"
    assert new != old
    with group.read_write() as rw:
        present = {r[0] for r in rows(rw, "SELECT id FROM shop.t WHERE id >= 100000")}
        assert set(acknowledged) <= present, sorted(set(acknowledged) - present)[:10]
        assert rows(rw, "SELECT @@hostname") == [(new,)]
    assert group.role(new, "/role/primary") == 200

    # The old primary comes back as a secondary and catches up.
    lakewave("group", "start", str(group.file), timeout=180)
    group.wait_caught_up(60)
    current = group.status()
    roles = {m["name"]: m["role"] for m in current["members"]}
    assert roles[old] == "secondary" and roles[new] == "primary", roles
    with group.read_write() as rw:
        expected = rows(rw, "SELECT * FROM shop.t ORDER BY id")
    for name in group.members:
        with group.member(name) as conn:
            assert rows(conn, "SELECT * FROM shop.t ORDER BY id") == expected, name


def checked_out(conn: pymysql.Connection | None) -> pymysql.Connection | None:
    """What a pool with a ping on checkout does (SQLAlchemy's
    `pool_pre_ping`): a connection that ended while idle (its server drained
    for a restart, say) is dropped before it is used."""
    if conn is not None:
        try:
            conn.ping(reconnect=False)
        except pymysql.err.MySQLError:
            return None
    return conn


class History:
    """Writers insert unique increasing ids through the read/write endpoint;
    readers read through both endpoints. Every outcome is recorded."""

    def __init__(self, group: Group, start_id: int) -> None:
        self.group = group
        self.next_id = start_id
        self.lock = threading.Lock()
        self.acked: list[tuple[float, int]] = []
        self.refused: list[int] = []  # definite failures (1290): never committed
        self.unknown: list[int] = []  # lost connection or 3100: may have committed
        self.stale_reads: list[str] = []
        self.read_failures = {"rw": 0, "ro": 0}
        self.reads = {"rw": 0, "ro": 0}
        # Read-only reads (and failures) while a rolling update runs.
        self.updating = False
        self.update_reads = {"ok": 0, "failed": 0}
        self.update_read_errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.writer),
            threading.Thread(target=self.writer),
            threading.Thread(target=self.reader, args=("rw",)),
            threading.Thread(target=self.reader, args=("ro",)),
        ]
        for t in self.threads:
            t.start()

    def take_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id

    def writer(self) -> None:
        conn = None
        while not self.stop.is_set():
            conn = checked_out(conn)
            i = self.take_id()
            try:
                conn = conn or self.group.read_write()
                execute(conn, "INSERT INTO shop.history (id, v) VALUES (%s, 'h')", (i,))
                with self.lock:
                    self.acked.append((time.time(), i))
            except pymysql.err.MySQLError as e:
                code = e.args[0] if e.args else None
                (self.refused if code == 1290 else self.unknown).append(i)
                conn = None
                time.sleep(0.02)
            time.sleep(0.005)

    def reader(self, endpoint: str) -> None:
        conn = None
        while not self.stop.is_set():
            with self.lock:
                last = self.acked[-1][1] if self.acked else None
            conn = checked_out(conn)
            updating = self.updating
            try:
                conn = conn or (self.group.read_write() if endpoint == "rw" else self.group.read_only())
                if last is None:
                    rows(conn, "SELECT count(*) FROM shop.history")
                else:
                    seen = rows(conn, f"SELECT count(*) FROM shop.history WHERE id = {last}")
                    if endpoint == "rw" and seen != [(1,)]:
                        self.stale_reads.append(f"id {last} acknowledged before the read, not seen")
                self.reads[endpoint] += 1
                if endpoint == "ro" and updating:
                    self.update_reads["ok"] += 1
            except pymysql.err.MySQLError as e:
                self.read_failures[endpoint] += 1
                if endpoint == "ro" and updating:
                    self.update_reads["failed"] += 1
                    self.update_read_errors.append(f"{time.time():.3f} {e}")
                conn = None
                time.sleep(0.02)
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def outage(self, after: float) -> float:
        times = sorted(at for at, _ in self.acked if at >= after - 1)
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("nan"))


def test_history_through_a_rolling_update_a_sigkill_and_a_sigstop(group):
    with group.read_write() as rw:
        execute(rw, "CREATE TABLE shop.history (id BIGINT PRIMARY KEY, v VARCHAR(10))")
        execute(rw, "ALTER TABLE shop.history SECONDARY_LOAD")
    history = History(group, 5_000_000)
    outages = {}
    try:
        wait_for(lambda: len(history.acked) > 20, 30, "the first writes")
        started = time.time()
        history.updating = True
        lakewave("group", "update", str(group.file), "--config", "propagation_interval=120ms", timeout=600)
        history.updating = False
        outages["rolling update"] = history.outage(started)
        count = len(history.acked)
        wait_for(lambda: len(history.acked) > count + 20, 30, "writes after the update")

        primary = group.primary()
        started = time.time()
        os.kill(group.pid(primary), signal.SIGKILL)
        wait_new_primary(group, primary)
        count = len(history.acked)
        wait_for(lambda: len(history.acked) > count + 20, 30, "writes after the SIGKILL")
        outages["SIGKILL"] = history.outage(started)
        lakewave("group", "start", str(group.file), timeout=180)

        primary = group.primary()
        started = time.time()
        os.kill(group.pid(primary), signal.SIGSTOP)
        try:
            wait_new_primary(group, primary)
            time.sleep(1)
        finally:
            os.kill(group.pid(primary), signal.SIGCONT)
        count = len(history.acked)
        wait_for(lambda: len(history.acked) > count + 20, 30, "writes after the SIGSTOP")
        outages["SIGSTOP"] = history.outage(started)
    finally:
        history.finish()
    print(
        f"\nhistory: {len(history.acked)} acknowledged, {len(history.refused)} refused, "
        f"{len(history.unknown)} of unknown outcome; read/write outage (longest gap between "
        f"commits): {', '.join(f'{k} {v:.2f} s' for k, v in outages.items())}; failed reads: "
        f"read/write {history.read_failures['rw']} of {history.reads['rw'] + history.read_failures['rw']}, "
        f"read-only {history.read_failures['ro']} of {history.reads['ro'] + history.read_failures['ro']} "
        f"(during the rolling update {history.update_reads['failed']} of "
        f"{history.update_reads['ok'] + history.update_reads['failed']}: "
        f"{'; '.join(history.update_read_errors) or 'none'})"
    )
    assert not history.stale_reads, history.stale_reads[:5]
    group.wait_caught_up(60)
    acked = {i for _, i in history.acked}
    with group.read_write() as rw:
        present = {r[0] for r in rows(rw, "SELECT id FROM shop.history")}
        expected = rows(rw, "SELECT * FROM shop.history ORDER BY id")
    assert acked <= present, sorted(acked - present)[:10]
    assert not set(history.refused) & present, sorted(set(history.refused) & present)[:10]
    assert present <= acked | set(history.unknown)
    for name in group.members:
        with group.member(name) as conn:
            # Identical on every member (each row, in order) ...
            assert rows(conn, "SELECT * FROM shop.history ORDER BY id") == expected, name
            # ... and in every member's own cluster.
            execute(conn, "SET use_secondary_engine = FORCED")
            summary = (len(expected), sum(r[0] for r in expected))

            def cluster_current(conn=conn, summary=summary) -> bool:
                got = rows(conn, "SELECT count(*), sum(id) FROM shop.history")
                return got == [(summary[0], Decimal(summary[1]))] or got == [summary]

            wait_for(cluster_current, 30, f"{name}'s cluster to hold every row")


def test_a_lost_majority_stops_commits_with_a_clear_error_and_no_half_commit(group):
    primary = group.primary()
    secondaries = [n for n in group.members if group.members[n]["role"] == "voter" and n != primary]
    for name in secondaries:
        os.kill(group.pid(name), signal.SIGKILL)
    with group.member(primary) as conn:
        with pytest.raises(pymysql.err.MySQLError) as refused:
            execute(conn, "INSERT INTO shop.t (id, v) VALUES (999999, 'no quorum')")
        # Refused at once once the member knows it lost the group, or after
        # the commit timeout if it still thinks it leads.
        assert refused.value.args[0] in (1290, 3100), refused.value
        # A read could miss writes of a newer primary elsewhere: refused too,
        # with the reason; the session goes on.
        with pytest.raises(pymysql.err.MySQLError) as unread:
            rows(conn, "SELECT count(*) FROM shop.t")
        assert unread.value.args[0] in (1290, 3100), unread.value
        lakewave("group", "start", str(group.file), timeout=180)
        group.wait_caught_up(60)
        # The same session, once the group has a majority again.
        new = group.primary()
        if new == primary:
            assert rows(conn, "SELECT count(*) FROM shop.t WHERE id = 999998") == [(0,)]
    with group.read_write() as rw:
        execute(rw, "INSERT INTO shop.t (id, v) VALUES (999998, 'quorum again')")
        assert rows(rw, "SELECT v FROM shop.t WHERE id = 999998") == [("quorum again",)]
        expected = rows(rw, "SELECT * FROM shop.t ORDER BY id")
    group.wait_caught_up(60)
    # Whatever became of the unconfirmed commit, every member agrees.
    for name in group.members:
        with group.member(name) as conn:
            assert rows(conn, "SELECT * FROM shop.t ORDER BY id") == expected, name


def test_bad_group_commands_fail_with_the_reason(group, tmp_path):
    even = lakewave(
        "group", "init", str(tmp_path / "g.toml"), "--dir", str(tmp_path), "--members", "2", check=False
    )
    assert even.returncode == 1 and "odd number" in even.stderr, even.stderr
    again = lakewave("group", "init", str(group.file), "--dir", str(tmp_path), check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text(group.file.read_text().replace("max_replica_lag", "max_replica_lagg"))
    bad = lakewave("group", "status", str(broken), check=False)
    assert bad.returncode == 1 and "max_replica_lagg" in bad.stderr, bad.stderr
    nobody = lakewave("serve", "--group", str(group.file), "--member", "nobody", check=False)
    assert nobody.returncode == 1 and "no member 'nobody'" in nobody.stderr, nobody.stderr
    # A member already running holds its database: a second process is refused.
    twice = lakewave("serve", "--group", str(group.file), "--member", "m1", check=False, timeout=60)
    assert twice.returncode == 1, twice.stdout
    config = lakewave("group", "haproxy-config", str(group.file)).stdout
    assert "GET /role/primary" in config and f":{group.spec['read_write_port']}" in config
