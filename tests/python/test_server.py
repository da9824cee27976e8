"""The MySQL protocol endpoint, through the clients people use: PyMySQL,
mysql-connector-python (text and prepared), SQLAlchemy with pandas, the
``mariadb`` command-line client, and raw packets for what no driver sends
(malformed and oversized packets, HAProxy's pipelined check)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import socket
import struct
import subprocess
import sys
import threading
import urllib.request
from decimal import Decimal
from pathlib import Path

import lakewave as lw
import mysql.connector
import pymysql
import pytest
from support import LONG_QUERY, wait_for

PASSWORD = "s3cr3t 'pw' \"with\" quotes"


@pytest.fixture
def served(tmp_path: Path):
    db = lw.connect(tmp_path / "served.db", threads=2, config={"instance_name": "lw-test"})
    db.sql("CREATE DATABASE shop")
    db.sql(
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2), "
        "made DATE, seen DATETIME, note TEXT, ok BOOLEAN, weight DOUBLE)"
    )
    db.sql(
        "INSERT INTO shop.items VALUES "
        "(1, 'bolt', 0.25, DATE '2024-02-29', TIMESTAMP '2024-02-29 13:14:15.123456', NULL, true, 1.5), "
        "(2, 'nut', 12.50, DATE '1999-12-31', TIMESTAMP '1999-12-31 23:59:59', 'héllo', false, NULL)"
    )
    server = db.serve(mysql_port=0, status_port=0, user="app", password=PASSWORD)
    yield db, server
    db.close()


def connect_pymysql(server: lw.Server, **kwargs) -> pymysql.Connection:
    options = {"host": server.host, "port": server.mysql_port, "user": "app", "password": PASSWORD}
    options.update(kwargs)
    return pymysql.connect(**options)


def test_pymysql_reads_every_type_as_python_values(served) -> None:
    _, server = served
    with connect_pymysql(server, database="shop") as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, price, made, seen, note, ok, weight FROM items ORDER BY id")
        rows = cur.fetchall()
        assert rows[0] == (
            1,
            "bolt",
            Decimal("0.25"),
            dt.date(2024, 2, 29),
            dt.datetime(2024, 2, 29, 13, 14, 15, 123456),
            None,
            1,
            1.5,
        )
        assert rows[1][2] == Decimal("12.50") and rows[1][5] == "héllo" and rows[1][7] is None
        assert [d[0] for d in cur.description] == [
            "id",
            "name",
            "price",
            "made",
            "seen",
            "note",
            "ok",
            "weight",
        ]
        cur.execute("SELECT X'00FF10' AS b, CAST(NULL AS INT) AS n")
        assert cur.fetchone() == (b"\x00\xff\x10", None)
        cur.execute("SELECT name FROM items WHERE id = %s", (2,))
        assert cur.fetchall() == (("nut",),)


def test_what_drivers_and_tools_ask_on_connect(served) -> None:
    _, server = served
    with connect_pymysql(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@version_comment LIMIT 1")
        assert "lakewave" in cur.fetchone()[0]
        cur.execute("SELECT @@hostname, @@max_allowed_packet, @@session.transaction_isolation")
        assert cur.fetchone()[0] == "lw-test"
        cur.execute("SELECT USER(), CURRENT_USER(), CONNECTION_ID()")
        user, current, connection_id = cur.fetchone()
        assert user == current == "app@127.0.0.1" and connection_id == conn.thread_id()
        cur.execute("SET NAMES utf8mb4")
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == ("main",)
        cur.execute("USE shop")
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == ("shop",)
        cur.execute("SHOW DATABASES")
        assert {"shop", "main", "information_schema"} <= {r[0] for r in cur.fetchall()}
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == (("items",),)
        assert cur.description[0][0] == "Tables_in_shop"
        cur.execute("SHOW FULL TABLES FROM shop LIKE 'it%'")
        assert cur.fetchall() == (("items", "BASE TABLE"),)
        cur.execute("SHOW CREATE TABLE items")
        name, ddl = cur.fetchone()
        assert name == "items" and "`price` decimal(10,2)" in ddl and "PRIMARY KEY (`id`)" in ddl
        cur.execute("DESCRIBE items")
        columns = cur.fetchall()
        assert columns[0] == ("id", "int", "NO", "PRI", None, "")
        assert columns[1][:3] == ("name", "varchar(40)", "YES")
        cur.execute("SHOW VARIABLES LIKE 'sql\\_mode'")
        assert cur.fetchall()[0][0] == "sql_mode"
        cur.execute("SHOW SESSION VARIABLES LIKE 'char%'")
        assert len(cur.fetchall()) >= 4
        cur.execute("SHOW WARNINGS")
        assert cur.fetchall() == ()
        cur.execute("SHOW STATUS LIKE 'uptime'")
        assert int(cur.fetchone()[1]) >= 0
        assert conn.get_server_info().startswith("8.4.0-lakewave")
        conn.ping()


def test_errors_carry_mysql_numbers_and_the_connection_survives(served) -> None:
    _, server = served
    with connect_pymysql(server, database="shop", autocommit=True) as conn, conn.cursor() as cur:
        cases = [
            ("SELECT * FROM nowhere", 1146, pymysql.err.ProgrammingError),
            ("SELEC 1", 1064, pymysql.err.ProgrammingError),
            ("SELECT nope FROM items", 1054, pymysql.err.OperationalError),
            ("INSERT INTO items (id, name) VALUES (1, 'dup')", 1062, pymysql.err.IntegrityError),
            ("USE nowhere", 1049, pymysql.err.OperationalError),
            ("", 1065, pymysql.err.ProgrammingError),
        ]
        for statement, errno, kind in cases:
            with pytest.raises(pymysql.err.MySQLError) as raised:
                cur.execute(statement)
            assert raised.value.args[0] == errno, (statement, raised.value.args)
            assert isinstance(raised.value, kind) or errno in (1054, 1065), (statement, type(raised.value))
            cur.execute("SELECT count(*) FROM items")
            assert cur.fetchone() == (2,)


def test_multi_statements_return_one_result_each(served) -> None:
    _, server = served
    conn = connect_pymysql(server, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT 1; CREATE TABLE main.t (a INT PRIMARY KEY); INSERT INTO main.t VALUES (5), (6); SELECT sum(a) FROM main.t"
        )
        assert cur.fetchall() == ((1,),)
        assert cur.nextset() and cur.rowcount == 0
        assert cur.nextset() and cur.rowcount == 2
        assert cur.nextset() and cur.fetchall() == ((11,),)
        assert not cur.nextset()
        # An error stops the script there; the statements before it took effect.
        cur.execute("INSERT INTO main.t VALUES (7); SELECT * FROM missing; INSERT INTO main.t VALUES (8)")
        with pytest.raises(pymysql.err.ProgrammingError) as raised:
            while cur.nextset():
                pass
        assert raised.value.args[0] == 1146
        cur.execute("SELECT a FROM main.t ORDER BY a")
        assert cur.fetchall() == ((5,), (6,), (7,))


def test_several_statements_need_the_clients_consent(served) -> None:
    _, server = served
    with connect_pymysql(server, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.ProgrammingError) as raised:
            cur.execute("SELECT 1; DROP TABLE shop.items")
        assert raised.value.args[0] == 1064
        cur.execute("SELECT count(*) FROM shop.items")
        assert cur.fetchone() == (2,)
        cur.execute("SELECT 1;")  # one statement and a trailing semicolon
        assert cur.fetchone() == (1,)


def test_transactions_and_autocommit_follow_each_connection(served) -> None:
    _, server = served
    writer = connect_pymysql(server, database="shop")  # PyMySQL turns autocommit off
    reader = connect_pymysql(server, database="shop", autocommit=True)
    with writer, reader, writer.cursor() as w, reader.cursor() as r:
        assert not writer.get_autocommit()
        w.execute("INSERT INTO items (id, name) VALUES (10, 'washer')")
        assert w.rowcount == 1
        r.execute("SELECT count(*) FROM items")
        assert r.fetchone() == (2,)
        w.execute("SELECT count(*) FROM items")
        assert w.fetchone() == (3,)
        writer.commit()
        r.execute("SELECT count(*) FROM items")
        assert r.fetchone() == (3,)
        w.execute("UPDATE items SET name = 'x' WHERE id = 10")
        writer.rollback()
        r.execute("SELECT name FROM items WHERE id = 10")
        assert r.fetchone() == ("washer",)
        # Each connection has its own offload setting.
        w.execute("SET use_secondary_engine = OFF")
        w.execute("SELECT @@use_secondary_engine")
        r.execute("SELECT @@use_secondary_engine")
        assert (w.fetchone(), r.fetchone()) == (("OFF",), ("ON",))


def test_mysql_connector_text_and_prepared(served) -> None:
    _, server = served
    conn = mysql.connector.connect(
        host=server.host,
        port=server.mysql_port,
        user="app",
        password=PASSWORD,
        database="shop",
        use_pure=True,
    )
    try:
        cur = conn.cursor()
        cur.execute("SELECT id, price, made, seen FROM items ORDER BY id")
        assert cur.fetchall()[0] == (
            1,
            Decimal("0.25"),
            dt.date(2024, 2, 29),
            dt.datetime(2024, 2, 29, 13, 14, 15, 123456),
        )
        prepared = conn.cursor(prepared=True)
        prepared.execute("SELECT id, name, price, made, seen, ok, weight FROM items WHERE id = ?", (1,))
        assert prepared.fetchall() == [
            (
                1,
                "bolt",
                Decimal("0.25"),
                dt.date(2024, 2, 29),
                dt.datetime(2024, 2, 29, 13, 14, 15, 123456),
                1,
                1.5,
            )
        ]
        # The same statement again with other values, of other types.
        prepared.execute("SELECT id, name, price, made, seen, ok, weight FROM items WHERE id = ?", ("2",))
        row = prepared.fetchone()
        assert row[:3] == (2, "nut", Decimal("12.50")) and row[6] is None
        prepared.execute(
            "INSERT INTO items (id, name, price, made, seen) VALUES (?, ?, ?, ?, ?)",
            (3, "gear", Decimal("7.05"), dt.date(2020, 1, 2), dt.datetime(2020, 1, 2, 3, 4, 5, 600000)),
        )
        assert prepared.rowcount == 1
        conn.commit()
        prepared.execute("SELECT price, made, seen FROM items WHERE name = ?", ("gear",))
        assert prepared.fetchall() == [
            (Decimal("7.05"), dt.date(2020, 1, 2), dt.datetime(2020, 1, 2, 3, 4, 5, 600000))
        ]
        prepared.execute("SELECT name FROM items WHERE id = ? AND price > ?", (None, 1))
        assert prepared.fetchall() == []
        with pytest.raises(mysql.connector.errors.ProgrammingError) as raised:
            prepared.execute("SELECT * FROM nowhere WHERE id = ?", (1,))
        assert raised.value.errno == 1146
        # The session can be reset: variables and settings go back to defaults.
        cur.execute("SET @x = 5")
        conn.cmd_reset_connection()
        cur.execute("SELECT @x, DATABASE()")
        assert cur.fetchone() == (None, "main")
    finally:
        conn.close()


def test_last_insert_id_follows_auto_increment(served) -> None:
    db, server = served
    db.sql("CREATE TABLE shop.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, what TEXT)")
    first = connect_pymysql(server, database="shop", autocommit=True)
    second = connect_pymysql(server)
    with first, second, first.cursor() as cur, second.cursor() as other:
        cur.execute("SELECT LAST_INSERT_ID(), @@last_insert_id")
        assert cur.fetchone() == (0, 0)
        cur.execute("INSERT INTO orders (what) VALUES ('a')")
        assert cur.lastrowid == 1 and first.insert_id() == 1
        # A multi-row INSERT reports the first value it assigned.
        cur.execute("INSERT INTO orders (what) VALUES ('b'), ('c'), ('d')")
        assert cur.lastrowid == 2
        cur.execute("SELECT LAST_INSERT_ID(), @@identity")
        assert cur.fetchone() == (2, 2)
        # Explicit values assign nothing: the last assigned value stays.
        cur.execute("INSERT INTO orders (id, what) VALUES (100, 'e')")
        assert cur.lastrowid == 0
        cur.execute("SELECT LAST_INSERT_ID()")
        assert cur.fetchone() == (2,)
        cur.execute("INSERT INTO orders (id, what) VALUES (NULL, 'f')")
        assert cur.lastrowid == 101
        # Each session has its own; a failed INSERT changes nothing.
        other.execute("SELECT LAST_INSERT_ID()")
        assert other.fetchone() == (0,)
        with pytest.raises(pymysql.err.IntegrityError):
            cur.execute("INSERT INTO orders (id, what) VALUES (100, 'again')")
        cur.execute("SELECT LAST_INSERT_ID()")
        assert cur.fetchone() == (101,)
    # The embedded API reads the same function.
    db.sql("INSERT INTO shop.orders (what) VALUES ('g')")
    assert db.sql("SELECT LAST_INSERT_ID()").fetchone() == (102,)


def test_change_user_logs_in_again_on_the_same_connection(tmp_path: Path) -> None:
    db = lw.connect(tmp_path / "users.db", threads=2)
    db.sql("CREATE DATABASE shop")
    db.sql("CREATE TABLE shop.t (id INT PRIMARY KEY)")
    users = tmp_path / "users"
    users.write_text("alice:alice pw\nbob:bob pw\n")
    server = db.serve(mysql_port=0, users_file=users)
    try:
        conn = mysql.connector.connect(
            host=server.host, port=server.mysql_port, user="alice", password="alice pw", use_pure=True
        )
        cur = conn.cursor()
        cur.execute("SET @kept = 1")
        cur.execute("BEGIN")
        cur.execute("INSERT INTO shop.t VALUES (1)")
        conn.cmd_change_user(username="bob", password="bob pw", database="shop")
        cur = conn.cursor()
        # bob's session starts afresh: no variables; alice's transaction is rolled back.
        cur.execute("SELECT CURRENT_USER(), DATABASE(), @kept")
        assert cur.fetchone() == ("bob@127.0.0.1", "shop", None)
        assert db.sql("SELECT count(*) FROM shop.t").fetchone() == (0,)
        processes = db.sql("SHOW PROCESSLIST").fetchall()
        assert [row[1] for row in processes].count("bob") == 1
        assert "alice" not in [row[1] for row in processes]
        # A wrong password is refused with 1045, and ends the connection.
        with pytest.raises(mysql.connector.errors.ProgrammingError) as refused:
            conn.cmd_change_user(username="alice", password="wrong", database="")
        assert refused.value.errno == 1045
        assert "wrong" not in str(refused.value)
        with pytest.raises(mysql.connector.errors.Error):
            conn.cmd_query("SELECT 1")
        # An unknown database: the login succeeds, the database is refused.
        conn = mysql.connector.connect(
            host=server.host, port=server.mysql_port, user="bob", password="bob pw", use_pure=True
        )
        with pytest.raises(mysql.connector.errors.Error) as unknown:
            conn.cmd_change_user(username="alice", password="alice pw", database="nowhere")
        assert unknown.value.errno == 1049
        # The server serves on.
        again = mysql.connector.connect(
            host=server.host, port=server.mysql_port, user="alice", password="alice pw", use_pure=True
        )
        again_cur = again.cursor()
        again_cur.execute("SELECT CURRENT_USER()")
        assert again_cur.fetchone() == ("alice@127.0.0.1",)
        again.close()
    finally:
        server.close()
        db.close()


def test_prepared_key_lookups_agree_with_the_cluster(served) -> None:
    """Point queries stay in the row store (cost below the threshold); the same
    statements offloaded (threshold 0) and under OFF return the same rows and
    types through the binary protocol, also right after a write."""
    db, _ = served
    db.sql("ALTER TABLE shop.items SECONDARY_LOAD")
    _, server = served
    conn = mysql.connector.connect(
        host=server.host, port=server.mysql_port, user="app", password=PASSWORD, database="shop"
    )
    writer = connect_pymysql(server, database="shop", autocommit=True)
    try:
        cur = conn.cursor(prepared=True)
        query = "SELECT name, price, made, seen, ok, weight, id FROM items WHERE id = ?"

        def answers() -> list:
            out = []
            for key in (1, 2, 3, "2", 99):
                cur.execute(query, (key,))
                out.append(cur.fetchall())
            return out

        plain = conn.cursor()
        plain.execute(f"EXPLAIN {query.replace('?', '1')}")
        assert "primary-key lookup" in plain.fetchall()[0][1]
        with writer.cursor() as w:
            w.execute("INSERT INTO items (id, name, price) VALUES (3, 'gear', 7.05)")
        looked_up = answers()
        assert looked_up[2] == [("gear", Decimal("7.05"), None, None, None, None, 3)]
        assert looked_up[1] == looked_up[3] and looked_up[4] == []
        plain.execute("SET secondary_engine_cost_threshold = 0")
        plain.execute(f"EXPLAIN {query.replace('?', '1')}")
        assert plain.fetchall()[0][1].startswith("cluster")
        assert answers() == looked_up
        plain.execute("SET use_secondary_engine = OFF")
        assert answers() == looked_up
    finally:
        conn.close()
        writer.close()


def test_sqlalchemy_and_pandas_read_sql(served) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pandas = pytest.importorskip("pandas")
    _, server = served
    url = sqlalchemy.engine.URL.create(
        "mysql+pymysql",
        username="app",
        password=PASSWORD,
        host=server.host,
        port=server.mysql_port,
        database="shop",
    )
    engine = sqlalchemy.create_engine(url)
    try:
        frame = pandas.read_sql("SELECT id, name, price FROM items ORDER BY id", engine)
        assert list(frame["name"]) == ["bolt", "nut"]
        assert frame["price"].tolist() == [Decimal("0.25"), Decimal("12.50")]
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT count(*) FROM items")).scalar() == 2
            names = sqlalchemy.inspect(conn).get_table_names()
            assert names == ["items"]
    finally:
        engine.dispose()


def mariadb_cli() -> str:
    path = shutil.which("mariadb") or shutil.which("mysql")
    assert path, "the mariadb client is a test dependency (apt-get install mariadb-client-core)"
    return path


def test_the_mariadb_command_line_client(served) -> None:
    _, server = served
    base = [
        mariadb_cli(),
        "-h",
        server.host,
        "-P",
        str(server.mysql_port),
        "-u",
        "app",
        f"-p{PASSWORD}",
        "--protocol=TCP",
    ]
    out = subprocess.run(
        [*base, "--batch", "shop", "-e", "SELECT id, name, price FROM items ORDER BY id; SELECT @@hostname"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "id\tname\tprice",
        "1\tbolt\t0.25",
        "2\tnut\t12.50",
        "@@hostname",
        "lw-test",
    ]
    failed = subprocess.run(
        [*base, "-e", "SELECT * FROM nowhere"], capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1 and "ERROR 1146 (42S02)" in failed.stderr, failed.stderr
    denied = subprocess.run(
        [
            mariadb_cli(),
            "-h",
            server.host,
            "-P",
            str(server.mysql_port),
            "-u",
            "app",
            "-pwrong",
            "--protocol=TCP",
            "-e",
            "SELECT 1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert denied.returncode == 1 and "ERROR 1045 (28000)" in denied.stderr, denied.stderr
    assert "wrong" not in denied.stderr
    # Interactive use through a pipe: status (COM_STATISTICS) and a table view.
    piped = subprocess.run(
        [*base, "--table", "shop"],
        input="SELECT name FROM items WHERE id = 1;\nstatus\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    assert "| bolt |" in piped.stdout and "Uptime:" in piped.stdout


def test_wrong_passwords_and_unknown_users_are_denied(served) -> None:
    _, server = served
    for user, password in (("app", "nope"), ("nobody", PASSWORD), ("app", "")):
        with pytest.raises(pymysql.err.OperationalError) as raised:
            pymysql.connect(host=server.host, port=server.mysql_port, user=user, password=password)
        assert raised.value.args[0] == 1045
        assert "nope" not in str(raised.value)


def test_kill_query_from_another_connection(served) -> None:
    _, server = served
    victim = connect_pymysql(server, autocommit=True)
    killer = connect_pymysql(server, autocommit=True)
    with victim, killer:
        victim_id = victim.thread_id()
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                with victim.cursor() as cur:
                    cur.execute(LONG_QUERY)
                outcome.append(None)
            except BaseException as e:  # noqa: BLE001 - the error is the point
                outcome.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        with killer.cursor() as cur:

            def running() -> bool:
                cur.execute("SHOW PROCESSLIST")
                return any(row[0] == victim_id and row[4] == "Query" for row in cur.fetchall())

            wait_for(running, what="the long query to show in the process list")
            cur.execute(f"KILL QUERY {victim_id}")
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert isinstance(outcome[0], pymysql.err.OperationalError) and outcome[0].args[0] == 1317, outcome
        with victim.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)


def test_a_client_that_disconnects_cancels_its_statement(served) -> None:
    db, server = served
    raw = Raw(server)
    assert raw.login("app", PASSWORD)[0] == 0
    before = {p["id"] for p in db.processes()}
    raw.sock.sendall(raw.packet(b"\x03" + LONG_QUERY.encode(), 0))
    wait_for(lambda: any(p["command"] == "Query" and p["info"] for p in db.processes()), what="the query")
    running = [p["id"] for p in db.processes() if p["command"] == "Query"]
    assert len(running) == 1 and running[0] in before
    raw.sock.shutdown(socket.SHUT_RDWR)
    raw.close()
    wait_for(lambda: all(p["id"] != running[0] for p in db.processes()), what="the session to end")


def test_a_long_query_does_not_hold_up_others_and_64_clients_at_once(served) -> None:
    _, server = served
    slow = connect_pymysql(server, autocommit=True)
    slow_id = slow.thread_id()
    done = threading.Event()

    def run_slow() -> None:
        try:
            with slow.cursor() as cur:
                cur.execute(LONG_QUERY)
        except pymysql.err.OperationalError:
            pass
        done.set()

    threading.Thread(target=run_slow, daemon=True).start()
    answers: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        try:
            with connect_pymysql(server, database="shop", autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) + %s FROM items", (n,))
                with lock:
                    answers.append(cur.fetchone()[0] - n)
        except BaseException as e:  # noqa: BLE001
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert answers == [2] * 64
    # Every quick client finished while the slow query still ran.
    assert not done.is_set()
    with connect_pymysql(server, autocommit=True) as admin, admin.cursor() as cur:
        cur.execute(f"KILL QUERY {slow_id}")
    assert done.wait(30)
    slow.close()


def test_max_connections_refuses_with_1040(tmp_path: Path) -> None:
    db = lw.connect(threads=2)
    server = db.serve(mysql_port=0, max_connections=2)
    try:
        held = [pymysql.connect(host=server.host, port=server.mysql_port, user="root") for _ in range(2)]
        with pytest.raises(pymysql.err.OperationalError) as raised:
            pymysql.connect(host=server.host, port=server.mysql_port, user="root")
        assert raised.value.args[0] == 1040
        held.pop().close()
        wait_for(lambda: server.connections < 2, what="a free connection slot")
        with (
            pymysql.connect(host=server.host, port=server.mysql_port, user="root") as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT 1")
        for conn in held:
            conn.close()
    finally:
        db.close()


# ---- raw packets: what no driver sends -------------------------------------------------


class Raw:
    """A minimal client: enough of the protocol to send what drivers never do."""

    def __init__(self, server: lw.Server) -> None:
        self.sock = socket.create_connection((server.host, server.mysql_port), timeout=20)
        self.buf = b""
        self.seq = 0

    def read(self) -> bytes:
        header = self._exact(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        self.seq = header[3] + 1
        return self._exact(length)

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    @staticmethod
    def packet(payload: bytes, seq: int) -> bytes:
        return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload

    def greeting_scramble(self) -> bytes:
        hello = self.read()
        assert hello[0] == 10
        at = hello.index(b"\0", 1) + 1 + 4
        part1 = hello[at : at + 8]
        at += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
        part2 = hello[at : at + 12]
        return part1 + part2

    @staticmethod
    def response(user: str, auth: bytes, flags: int = 0x000BA205) -> bytes:
        return (
            struct.pack("<IIB", flags, 1 << 24, 45)
            + b"\0" * 23
            + user.encode()
            + b"\0"
            + bytes([len(auth)])
            + auth
            + b"mysql_native_password\0"
        )

    @staticmethod
    def native(password: str, scramble: bytes) -> bytes:
        stage1 = hashlib.sha1(password.encode()).digest()
        mask = hashlib.sha1(scramble + hashlib.sha1(stage1).digest()).digest()
        return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))

    def login(self, user: str, password: str) -> bytes:
        scramble = self.greeting_scramble()
        auth = self.native(password, scramble) if password else b""
        self.sock.sendall(self.packet(self.response(user, auth), 1))
        return self.read()

    def command(self, payload: bytes) -> bytes:
        self.sock.sendall(self.packet(payload, 0))
        return self.read()

    def close(self) -> None:
        self.sock.close()


def error_number(packet: bytes) -> int:
    assert packet[0] == 0xFF, packet
    return struct.unpack("<H", packet[1:3])[0]


def still_serving(server: lw.Server) -> None:
    with connect_pymysql(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT 41 + 1")
        assert cur.fetchone() == (42,)


def test_haproxy_style_check_pipelined_with_quit(served) -> None:
    _, server = served
    raw = Raw(server)
    raw.greeting_scramble()
    # HAProxy's mysql-check: a login as the check user and COM_QUIT in one write.
    raw.sock.sendall(raw.packet(raw.response("haproxy", b""), 1) + raw.packet(b"\x01", 0))
    assert raw.read()[0] == 0x00
    with pytest.raises(ConnectionError):
        raw.read()
    raw.close()
    # The check user may log in and run nothing.
    raw = Raw(server)
    assert raw.login("haproxy", "")[0] == 0x00
    assert error_number(raw.command(b"\x03SELECT 1")) == 1227
    assert raw.command(b"\x0e")[0] == 0x00  # COM_PING
    raw.close()
    still_serving(server)


def test_malformed_and_oversized_packets_close_only_that_connection(tmp_path: Path) -> None:
    db = lw.connect(threads=2)
    server = db.serve(mysql_port=0, user="root", max_allowed_packet=64 * 1024)
    try:
        # A login packet that is cut short.
        raw = Raw(server)
        raw.greeting_scramble()
        raw.sock.sendall(raw.packet(b"\x05\x02\x00", 1))
        assert error_number(raw.read()) == 1043
        raw.close()
        # Packets out of order.
        raw = Raw(server)
        assert raw.login("root", "")[0] == 0
        raw.sock.sendall(raw.packet(b"\x03SELECT 1", 7))
        assert error_number(raw.read()) == 1156
        raw.close()
        # A packet above max_allowed_packet: refused from its header.
        raw = Raw(server)
        assert raw.login("root", "")[0] == 0
        raw.sock.sendall(struct.pack("<I", 0xFFFFFF)[:3] + b"\x00" + b"\x03" + b"x" * 1000)
        assert error_number(raw.read()) == 1153
        raw.close()
        # Nonsense commands and truncated bodies get errors, the connection stays.
        raw = Raw(server)
        assert raw.login("root", "")[0] == 0
        assert error_number(raw.command(b"\x99")) == 1047
        assert error_number(raw.command(b"\x17\x01")) == 1835
        assert error_number(raw.command(b"\x17\x09\x00\x00\x00\x00\x01\x00\x00\x00")) == 1243
        assert raw.command(b"\x0e")[0] == 0
        # COM_FIELD_LIST of a table and of a missing one.
        db.sql("CREATE TABLE main.f (a INT PRIMARY KEY, b TEXT)")
        raw.sock.sendall(raw.packet(b"\x04f\0", 0))
        fields = [raw.read() for _ in range(3)]
        assert b"\x01a" in fields[0] and b"\x01b" in fields[1] and fields[2][0] == 0xFE
        assert error_number(raw.command(b"\x04nowhere\0")) == 1146
        raw.close()
        # Random bytes instead of a login.
        raw = Raw(server)
        raw.greeting_scramble()
        raw.sock.sendall(raw.packet(bytes(range(200)), 1))
        try:
            packet = raw.read()
            assert packet[0] == 0xFF
        except ConnectionError:
            pass
        raw.close()
        # With a real driver too: a query above max_allowed_packet.
        conn = pymysql.connect(host=server.host, port=server.mysql_port, user="root")
        with pytest.raises(pymysql.err.MySQLError), conn.cursor() as cur:
            cur.execute("SELECT '" + "x" * 200_000 + "'")
        still_serving_root(server)
    finally:
        db.close()


def still_serving_root(server: lw.Server) -> None:
    with pymysql.connect(host=server.host, port=server.mysql_port, user="root") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_status_port_health(served) -> None:
    db, server = served
    db.sql("ALTER TABLE shop.items SECONDARY_LOAD")
    with urllib.request.urlopen(f"http://{server.host}:{server.status_port}/health", timeout=10) as response:
        assert response.status == 200
        body = json.loads(response.read())
    assert body["name"] == "lw-test" and body["status"] == "serving"
    assert body["version"].startswith("8.4.0") and body["uptime_seconds"] >= 0
    assert body["mysql_port"] == server.mysql_port and body["sessions"] >= 1
    assert [t["name"] for t in body["tables"]] == ["shop.items"]
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"http://{server.host}:{server.status_port}/nope", timeout=10)
    assert raised.value.code == 404


def test_serve_refuses_bad_options(served) -> None:
    db, server = served
    with pytest.raises(lw.OperationalError) as raised:
        db.serve(mysql_port=server.mysql_port)
    assert raised.value.errno == 1081 and str(server.mysql_port) in str(raised.value)
    with pytest.raises(lw.InterfaceError):
        db.serve(mysql_port=0, max_connections=0)
    with pytest.raises(lw.InterfaceError):
        db.serve(mysql_port=0, users_file="/nonexistent/users")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakewave", *args], capture_output=True, text=True, timeout=timeout
    )


def test_lakewave_serve_runs_until_sigterm_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    users = tmp_path / "users"
    users.write_text("# accounts\nops:pa:ss\n")

    def start() -> tuple[subprocess.Popen[str], int]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lakewave",
                "serve",
                "--database",
                str(path),
                "--mysql-port",
                "0",
                "--instance-name",
                "cli-1",
                "--users-file",
                str(users),
                "--config",
                "propagation_interval=50ms",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if "MySQL protocol:" in line:
                port = int(line.rsplit(":", 1)[1])
            if line.startswith("ready"):
                break
        assert port, proc.stderr.read() if proc.stderr else ""
        return proc, port

    proc, port = start()
    try:
        conn = pymysql.connect(host="127.0.0.1", port=port, user="ops", password="pa:ss", autocommit=True)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (id INT PRIMARY KEY, v TEXT)")
            cur.execute("INSERT INTO kept VALUES (1, 'a'), (2, 'b')")
            cur.execute("ALTER TABLE kept SECONDARY_LOAD")
            cur.execute("SELECT @@hostname")
            assert cur.fetchone() == ("cli-1",)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out and "pa:ss" not in out + err
    proc, port = start()
    try:
        with (
            pymysql.connect(host="127.0.0.1", port=port, user="ops", password="pa:ss") as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT v FROM kept ORDER BY id")
            assert cur.fetchall() == (("a",), ("b",))
            cur.execute("SELECT load_status FROM performance_schema.rpd_tables")
            assert cur.fetchall() == (("AVAIL_RPDGSTABSTATE",),)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_lakewave_serve_bad_arguments() -> None:
    bad = run_cli("serve", "--config", "nonsense")
    assert bad.returncode == 2 and "key=value" in bad.stderr
    unknown = run_cli("serve", "--mysql-port", "0", "--config", "bogus_option=1")
    assert unknown.returncode == 1 and "bogus_option" in unknown.stderr
    missing = run_cli("serve", "--mysql-port", "0", "--users-file", "/nonexistent/users")
    assert missing.returncode == 1 and "/nonexistent/users" in missing.stderr


def test_close_drains_a_running_statement_finishes_idle_connections_end(tmp_path: Path) -> None:
    db = lw.connect(tmp_path / "drain.db", threads=2)
    server = db.serve(mysql_port=0)
    busy = pymysql.connect(host=server.host, port=server.mysql_port, user="root")
    idle = pymysql.connect(host=server.host, port=server.mysql_port, user="root")
    busy_id = busy.thread_id()
    answer: list = []

    def run() -> None:
        with busy.cursor() as cur:
            cur.execute(
                "SELECT count(DISTINCT a.value + b.value) FROM generate_series(1, 6000) a, generate_series(1, 6000) b"
            )
            answer.append(cur.fetchone())

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(
        lambda: any(p["id"] == busy_id and p["command"] == "Query" for p in db.processes()),
        what="the statement to run",
    )
    closer = threading.Thread(target=server.close, kwargs={"grace": 120})
    closer.start()
    wait_for(lambda: server.closed, what="the drain to begin")
    # The drain began while the statement ran (it takes seconds).
    assert any(p["id"] == busy_id and p["command"] == "Query" for p in db.processes())
    thread.join(timeout=120)
    closer.join(timeout=120)
    assert not closer.is_alive()
    # The running statement finished with its answer; its connection ended after it.
    assert answer == [(11999,)]
    with pytest.raises(pymysql.err.Error):
        busy.ping(reconnect=False)
    # The idle connection ended at once; no new connection is accepted.
    with pytest.raises(pymysql.err.Error):
        idle.ping(reconnect=False)
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=server.host, port=server.mysql_port, user="root", connect_timeout=2)
    assert server.closed
    db.close()


def test_close_cancels_what_runs_past_the_grace(tmp_path: Path) -> None:
    db = lw.connect(tmp_path / "drain.db", threads=2)
    server = db.serve(mysql_port=0)
    busy = pymysql.connect(host=server.host, port=server.mysql_port, user="root")
    busy_id = busy.thread_id()
    outcome: list = []

    def run() -> None:
        try:
            with busy.cursor() as cur:
                cur.execute(LONG_QUERY)
                outcome.append(cur.fetchone())
        except pymysql.err.Error as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(
        lambda: any(p["id"] == busy_id and p["command"] == "Query" for p in db.processes()),
        what="the statement to run",
    )
    server.close(grace=0.3)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], pymysql.err.Error), outcome
    # The instance itself is unharmed.
    assert db.sql("SELECT 1").fetchone() == (1,)
    db.close()
