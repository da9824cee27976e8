"""A MariaDB server as the DB system (`connect(source=...)`): statements run on
the server, loaded tables follow its binlog, and offloaded answers equal the
server's own. Each test module starts a private server from Debian's packages
(its own data directory, port and binlog) and stops it at the end."""

from __future__ import annotations

import datetime
import decimal
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import lakewave as lw
import pytest
from mariadb_server import MariaDB

pymysql = pytest.importorskip("pymysql")

# Bounded waits: a loaded table that must become available again.
RELOAD_SECONDS = 60


@pytest.fixture(scope="module")
def maria(tmp_path_factory: pytest.TempPathFactory):
    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    server.execute("CREATE DATABASE shop")
    yield server
    server.stop()


@pytest.fixture
def shop(maria: MariaDB):
    """A lakewave instance whose DB system is the server, in database `shop`."""
    db = lw.connect(nodes=2, threads=2, source=maria.url(database="shop"))
    yield db
    db.close()


def server_rows(maria: MariaDB, query: str) -> list[tuple]:
    conn = maria.connect(database="shop")
    with conn, conn.cursor() as cur:
        cur.execute(query)
        return [tuple(row) for row in cur.fetchall()]


def engine(db: lw.Connection, query: str) -> str:
    return dict(db.sql(f"EXPLAIN {query}").fetchall())["engine"]


def both(db: lw.Connection, query: str) -> tuple[list[tuple], list[tuple]]:
    """The cluster's answer (FORCED: it must be offloaded) and the server's (OFF)."""
    db.sql("SET use_secondary_engine = FORCED")
    offloaded = db.sql(query).fetchall()
    db.sql("SET use_secondary_engine = OFF")
    on_server = db.sql(query).fetchall()
    db.sql("SET use_secondary_engine = ON")
    return offloaded, on_server


def wait_available(db: lw.Connection, table: str, query: str) -> None:
    deadline = time.monotonic() + RELOAD_SECONDS
    while time.monotonic() < deadline:
        if engine(db, query).startswith("cluster"):
            return
        time.sleep(0.2)
    tables = db.sql(
        "SELECT NAME, LOAD_STATUS, STALE_REASON, SOURCE_POSITION FROM performance_schema.rpd_tables "
        "JOIN performance_schema.rpd_table_id USING (ID)"
    ).fetchall()
    raise AssertionError(f"{table} did not become available again: {engine(db, query)}; {tables}")


def test_statements_run_on_the_server_with_its_errors(shop: lw.Connection, maria: MariaDB):
    shop.sql("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(20) NOT NULL)")
    assert shop.sql("INSERT INTO notes VALUES (1, 'one'), (2, 'two')").rows_affected == 2
    assert server_rows(maria, "SELECT * FROM notes ORDER BY id") == [(1, "one"), (2, "two")]
    with pytest.raises(lw.IntegrityError) as duplicate:
        shop.sql("INSERT INTO notes VALUES (1, 'again')")
    assert duplicate.value.errno == 1062 and duplicate.value.sqlstate == "23000"
    with pytest.raises(lw.TableNotFoundError) as missing:
        shop.sql("SELECT * FROM nowhere")
    assert missing.value.errno == 1146
    with pytest.raises(lw.SqlSyntaxError) as syntax:
        shop.sql("SELEC 1")
    assert syntax.value.errno == 1064
    # MariaDB's own syntax reaches the server, and the session still serves.
    assert shop.sql("SELECT body FROM notes WHERE id = 2").fetchall() == [("two",)]
    # Not loaded: ON runs it on the server and says why; FORCED refuses.
    assert "not loaded" in engine(shop, "SELECT count(*) FROM notes")
    shop.sql("SET use_secondary_engine = FORCED")
    with pytest.raises(lw.NotSupportedError, match="not loaded"):
        shop.sql("SELECT count(*) FROM notes")
    shop.sql("SET use_secondary_engine = ON")
    # A transaction is the session's own on the server.
    shop.sql("BEGIN")
    shop.sql("INSERT INTO notes VALUES (3, 'three')")
    assert server_rows(maria, "SELECT count(*) FROM notes") == [(2,)]
    shop.sql("ROLLBACK")
    assert server_rows(maria, "SELECT count(*) FROM notes") == [(2,)]
    shop.sql("DROP TABLE notes")


def test_a_loaded_table_follows_every_client_of_the_server(shop: lw.Connection, maria: MariaDB):
    maria.execute(
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, product VARCHAR(40), amount DECIMAL(10,2))",
        "INSERT INTO shop.orders VALUES (1, 'Keyboard', 120.50), (2, 'Mouse', 25.90)",
    )
    ((status,),) = shop.sql("ALTER TABLE orders SECONDARY_LOAD").fetchall()
    assert "loaded 2 rows" in status and "binlog" in status
    query = "SELECT product, sum(amount) FROM orders GROUP BY product ORDER BY product"
    assert engine(shop, query).startswith("cluster")
    # Another client writes; the next query sees it (read-your-writes).
    conn = maria.connect(database="shop")
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO orders VALUES (3, 'Monitor', 199.00)")
        cur.execute("UPDATE orders SET amount = amount + 1 WHERE id = 1")
        cur.execute("DELETE FROM orders WHERE id = 2")
        cur.execute("UPDATE orders SET id = 30 WHERE id = 3")
    offloaded, on_server = both(shop, "SELECT id, product, amount FROM orders ORDER BY id")
    assert (
        offloaded
        == on_server
        == [
            (1, "Keyboard", decimal.Decimal("121.50")),
            (30, "Monitor", decimal.Decimal("199.00")),
        ]
    )
    # Writes through lakewave go to the server and come back by the binlog.
    shop.sql("INSERT INTO orders VALUES (4, 'Cable', 5.00)")
    offloaded, on_server = both(shop, query)
    assert offloaded == on_server
    rows = dict(
        (r[0], r)
        for r in shop.sql(
            "SELECT NAME, LOAD_STATUS, SOURCE_POSITION, SOURCE_GTID FROM performance_schema.rpd_tables "
            "JOIN performance_schema.rpd_table_id USING (ID)"
        ).fetchall()
    )
    assert rows["shop.orders"][1] == "AVAIL_RPDGSTABSTATE"
    assert str(rows["shop.orders"][2]).startswith("binlog.")
    # MariaDB's GTID of the last transaction applied: domain-server-sequence.
    domain, server, sequence = rows["shop.orders"][3].split("-")
    assert server == "1" and int(sequence) > 0
    # A transaction open on the server keeps queries there (its own writes).
    shop.sql("BEGIN")
    shop.sql("INSERT INTO orders VALUES (5, 'Lamp', 30.00)")
    assert "transaction open" in engine(shop, query)
    assert shop.sql("SELECT count(*) FROM orders").fetchall() == [(4,)]
    shop.sql("ROLLBACK")
    shop.sql("ALTER TABLE orders SECONDARY_UNLOAD")
    assert "not loaded" in engine(shop, query)
    maria.execute("DROP TABLE shop.orders")


def test_writes_during_the_snapshot_are_neither_lost_nor_applied_twice(shop, maria):
    maria.execute(
        "CREATE TABLE shop.events (id INT PRIMARY KEY, n INT NOT NULL)",
        "INSERT INTO shop.events SELECT seq, seq FROM shop.seq_1_to_20000",
    )
    stop = threading.Event()
    written = []

    def writer() -> None:
        conn = maria.connect(database="shop")
        with conn, conn.cursor() as cur:
            key = 20000
            while not stop.is_set():
                key += 1
                cur.execute("INSERT INTO events VALUES (%s, %s)", (key, key))
                cur.execute("UPDATE events SET n = n + 1 WHERE id = %s", (key % 20000 + 1,))
                written.append(key)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        shop.sql("ALTER TABLE events SECONDARY_LOAD")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert len(written) > 10
    offloaded, on_server = both(shop, "SELECT count(*), sum(n), max(id) FROM events")
    assert offloaded == on_server
    shop.sql("ALTER TABLE events SECONDARY_UNLOAD")
    maria.execute("DROP TABLE shop.events")


def test_randomized_dml_with_concurrent_transactions_matches_the_server(shop, maria):
    maria.execute(
        "CREATE TABLE shop.accounts (id INT PRIMARY KEY, owner VARCHAR(16), balance BIGINT, opened DATE)",
        "INSERT INTO shop.accounts VALUES (1, 'a', 100, '2024-01-01')",
    )
    shop.sql("ALTER TABLE accounts SECONDARY_LOAD")
    rng = random.Random(7)
    # READ COMMITTED locks only the rows a statement changes.
    conns = [
        maria.connect(
            database="shop",
            autocommit=False,
            init_command="SET SESSION tx_isolation = 'READ-COMMITTED', innodb_lock_wait_timeout = 5",
        )
        for _ in range(2)
    ]
    query = "SELECT id, owner, balance, opened FROM accounts ORDER BY id"
    try:
        for _ in range(12):
            # Each connection writes its own keys (odd or even), so that
            # both transactions stay open side by side without waiting.
            for parity, conn in enumerate(conns):
                with conn.cursor() as cur:
                    for _ in range(rng.randint(1, 6)):
                        key = rng.randrange(parity, 60, 2) + 2
                        action = rng.random()
                        if action < 0.5:
                            cur.execute(
                                "INSERT INTO accounts VALUES (%s, %s, %s, %s) "
                                "ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance)",
                                (
                                    key,
                                    rng.choice("abcd"),
                                    rng.randint(-50, 50),
                                    datetime.date(2024, 1, 1) + datetime.timedelta(rng.randint(0, 300)),
                                ),
                            )
                        elif action < 0.8:
                            cur.execute(
                                "UPDATE accounts SET balance = balance * 2, owner = %s "
                                "WHERE id <= %s AND id %% 2 = %s",
                                (rng.choice("xyz"), key, parity),
                            )
                        else:
                            cur.execute("DELETE FROM accounts WHERE id = %s", (key,))
            # Interleaved transactions commit in random order; one rolls back.
            order = list(conns)
            rng.shuffle(order)
            for conn in order:
                if rng.random() < 0.15:
                    conn.rollback()
                else:
                    conn.commit()
            offloaded, on_server = both(shop, query)
            assert offloaded == on_server
    finally:
        for conn in conns:
            conn.close()
    shop.sql("ALTER TABLE accounts SECONDARY_UNLOAD")
    maria.execute("DROP TABLE shop.accounts")


TYPES_TABLE = """
CREATE TABLE shop.typed (
  id BIGINT UNSIGNED PRIMARY KEY,
  i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, i24 MEDIUMINT, u32 INT UNSIGNED,
  f FLOAT, d DOUBLE, price DECIMAL(18,4), wide DECIMAL(38,10),
  day DATE, at DATETIME(6), stamp TIMESTAMP(3) NULL, clock TIME(6), yr YEAR,
  flags BIT(10), size ENUM('small','large'), perms SET('r','w','x'),
  doc JSON, name VARCHAR(40), note TEXT, legacy VARCHAR(10) CHARACTER SET latin1,
  raw VARBINARY(8), payload BLOB
) DEFAULT CHARSET=utf8mb4
"""

TYPED_ROW = (
    "(%s, -128, 255, -32768, -8388608, 4294967295, 1.5, -2.25, 12345678901234.5678,"
    " -1234567890123456789012345678.0123456789, '2024-02-29', '2024-02-29 23:59:59.123456',"
    " '2038-01-19 03:14:07.999', '23:59:59.999999', 2155, b'1010101010', 'large', 'r,x',"
    " '{\"a\": [1, 2]}', 'żółw 🐢', 'a long text', 'café€', x'00ff10', x'deadbeef')"
)


def test_every_type_round_trips_through_snapshot_and_binlog(shop, maria):
    maria.execute(TYPES_TABLE, "INSERT INTO shop.typed VALUES " + TYPED_ROW % 1)
    maria.execute("INSERT INTO shop.typed (id) VALUES (2)")  # all NULL
    shop.sql("ALTER TABLE typed SECONDARY_LOAD")
    maria.execute("INSERT INTO shop.typed VALUES " + TYPED_ROW % 18446744073709551615)
    maria.execute("INSERT INTO shop.typed (id, yr, size) VALUES (3, 0, 'small')")
    offloaded, on_server = both(shop, "SELECT * FROM typed ORDER BY id")
    assert offloaded == on_server
    assert len(offloaded) == 4
    full = offloaded[-1]
    assert full[0] == 18446744073709551615
    assert full[11] == datetime.datetime(2024, 2, 29, 23, 59, 59, 123456)
    assert full[15] == 682 and full[16] == "large" and full[17] == "r,x"
    assert full[19] == "żółw 🐢" and full[21] == "café€" and full[23] == b"\xde\xad\xbe\xef"
    assert offloaded[2][14] == 0 and offloaded[2][16] == "small"
    shop.sql("ALTER TABLE typed SECONDARY_UNLOAD")
    maria.execute("DROP TABLE shop.typed")


def test_a_type_the_cluster_cannot_hold_keeps_the_table_on_the_server(shop, maria):
    maria.execute("CREATE TABLE shop.places (id INT PRIMARY KEY, spot POINT)")
    with pytest.raises(lw.NotSupportedError) as refused:
        shop.sql("ALTER TABLE places SECONDARY_LOAD")
    assert refused.value.errno == 3877 and "POINT" in str(refused.value)
    maria.execute("CREATE TABLE shop.nokey (a INT)")
    with pytest.raises(lw.ProgrammingError) as nokey:
        shop.sql("ALTER TABLE nokey SECONDARY_LOAD")
    assert nokey.value.errno == 1173
    with pytest.raises(lw.TableNotFoundError) as missing:
        shop.sql("ALTER TABLE ghost SECONDARY_LOAD")
    assert missing.value.errno == 1146
    maria.execute("CREATE TABLE shop.myisam (id INT PRIMARY KEY) ENGINE=MyISAM")
    with pytest.raises(lw.NotSupportedError, match="InnoDB"):
        shop.sql("ALTER TABLE myisam SECONDARY_LOAD")
    # Still serving, the tables still on the server.
    assert "not loaded" in engine(shop, "SELECT * FROM places")
    assert shop.sql("SELECT count(*) FROM places").fetchall() == [(0,)]
    maria.execute("DROP TABLE shop.places", "DROP TABLE shop.nokey", "DROP TABLE shop.myisam")


def test_ddl_in_the_binlog_makes_the_table_stale_and_reloads_it(shop, maria):
    maria.execute(
        "CREATE TABLE shop.items (id INT PRIMARY KEY, label VARCHAR(10))",
        "INSERT INTO shop.items VALUES (1, 'a'), (2, 'b')",
    )
    shop.sql("ALTER TABLE items SECONDARY_LOAD")
    maria.execute("ALTER TABLE shop.items ADD COLUMN weight INT DEFAULT 7")
    maria.execute("INSERT INTO shop.items VALUES (3, 'c', 9)")
    query = "SELECT id, label, weight FROM items ORDER BY id"
    # Until it is reloaded the server answers; then the cluster does.
    assert shop.sql(query).fetchall() == [(1, "a", 7), (2, "b", 7), (3, "c", 9)]
    wait_available(shop, "items", query)
    offloaded, on_server = both(shop, query)
    assert offloaded == on_server == [(1, "a", 7), (2, "b", 7), (3, "c", 9)]
    maria.execute("TRUNCATE TABLE shop.items")
    wait_available(shop, "items", query)
    assert both(shop, query) == ([], [])
    maria.execute("DROP TABLE shop.items")
    deadline = time.monotonic() + RELOAD_SECONDS
    while time.monotonic() < deadline:
        names = [r[0] for r in shop.sql("SELECT NAME FROM performance_schema.rpd_table_id").fetchall()]
        if "shop.items" not in names:
            break
        time.sleep(0.2)
    assert "shop.items" not in names


def test_names_follow_the_servers_rules(shop, maria):
    """Table names keep their case as written (two tables differ only in
    case), column names match in any case, quoted or not."""
    maria.execute(
        "CREATE TABLE shop.Orders (Id INT PRIMARY KEY, Amount DECIMAL(10,2))",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(10))",
        "INSERT INTO shop.Orders VALUES (1, 1.50), (2, 2.25), (7, 3.00)",
        "INSERT INTO shop.orders VALUES (7, 'seven'), (8, 'eight')",
    )
    shop.sql("ALTER TABLE Orders SECONDARY_LOAD")
    shop.sql("ALTER TABLE orders SECONDARY_LOAD")
    for query, expected in [
        (
            "SELECT id, AMOUNT FROM Orders WHERE ID > 1 ORDER BY iD",
            [(2, decimal.Decimal("2.25")), (7, decimal.Decimal("3.00"))],
        ),
        ("SELECT `ID`, `note` FROM orders ORDER BY `Id`", [(7, "seven"), (8, "eight")]),
        (
            "SELECT o.ID, x.NOTE FROM Orders o JOIN orders x ON o.id = x.ID ORDER BY o.Amount",
            [(7, "seven")],
        ),
        ("SELECT Orders.id FROM Orders, shop.orders WHERE Orders.Id = orders.id", [(7,)]),
        (
            "WITH Big AS (SELECT id FROM Orders WHERE amount > 2) SELECT COUNT(*) FROM Big",
            [(2,)],
        ),
    ]:
        assert engine(shop, query).startswith("cluster"), query
        assert both(shop, query) == (expected, expected), query
    # A column no table has is the planner's error, naming it; the session goes on.
    shop.sql("SET use_secondary_engine = FORCED")
    with pytest.raises(lw.ColumnNotFoundError, match="(?i)nope"):
        shop.sql("SELECT nope FROM Orders").fetchall()
    shop.sql("SET use_secondary_engine = ON")
    assert shop.sql("SELECT COUNT(*) FROM Orders").fetchall() == [(3,)]
    shop.sql("ALTER TABLE Orders SECONDARY_UNLOAD")
    assert engine(shop, "SELECT * FROM orders").startswith("cluster")
    assert not engine(shop, "SELECT * FROM Orders").startswith("cluster")
    shop.sql("ALTER TABLE orders SECONDARY_UNLOAD")
    maria.execute("DROP TABLE shop.Orders", "DROP TABLE shop.orders")


def test_division_and_avg_answer_as_the_server_does(shop, maria):
    """`/` and AVG offloaded give the server's values and kinds: exact
    decimal quotients at 4 more digits rounded half up, NULL for a division
    by zero, doubles where an operand is a double."""
    maria.execute(
        "CREATE TABLE shop.ratios (id INT PRIMARY KEY, grp INT, n INT, d DECIMAL(10,2), f DOUBLE, "
        "u BIGINT UNSIGNED)",
        "INSERT INTO shop.ratios VALUES (1, 1, 6, 1.00, 0.5, 3), (2, 1, 4, 2.00, 1.5, 7), "
        "(3, 1, 0, 2.00, NULL, 0), (4, 2, -7, -0.05, 2.0, 1), (5, 2, NULL, NULL, 4.0, 2), "
        "(6, 3, 2, 99999999.99, -1.0, 18446744073709551615)",
    )
    shop.sql("ALTER TABLE ratios SECONDARY_LOAD")
    queries = [
        "SELECT id, n / 4, 6 / n, d / 3, d / n, n / d, u / 7, f / n, n / f FROM ratios ORDER BY id",
        "SELECT id, 1 / 0, n / 0, d / 0.0, 7.0 / 2, 10 / 4 * 2 FROM ratios ORDER BY id",
        "SELECT grp, AVG(n), AVG(d), AVG(f), AVG(u), SUM(n) / COUNT(*), AVG(DISTINCT n) "
        "FROM ratios GROUP BY grp ORDER BY grp",
        "SELECT grp FROM ratios GROUP BY grp HAVING AVG(d) > 1 ORDER BY AVG(n) DESC",
        "SELECT id, AVG(d) OVER (PARTITION BY grp ORDER BY id) FROM ratios ORDER BY id",
        "SELECT AVG(n), AVG(d) FROM ratios WHERE id > 100",
    ]
    for query in queries:
        assert engine(shop, query).startswith("cluster"), query
        offloaded, on_server = both(shop, query)
        assert offloaded == on_server, query
        kinds = [[type(v) for v in row] for row in offloaded], [[type(v) for v in row] for row in on_server]
        assert kinds[0] == kinds[1], query
    shop.sql("ALTER TABLE ratios SECONDARY_UNLOAD")
    maria.execute("DROP TABLE shop.ratios")


def test_a_lost_binlog_connection_resumes_where_it_stopped(shop, maria):
    maria.execute("CREATE TABLE shop.ticks (id INT PRIMARY KEY)", "INSERT INTO shop.ticks VALUES (1)")
    shop.sql("ALTER TABLE ticks SECONDARY_LOAD")
    dumps = [r for r in server_rows(maria, "SHOW PROCESSLIST") if r[4] == "Binlog Dump"]
    assert dumps
    for dump in dumps:
        maria.execute(f"KILL {dump[0]}")
    maria.execute("INSERT INTO shop.ticks VALUES (2), (3)")
    offloaded, on_server = both(shop, "SELECT id FROM ticks ORDER BY id")
    assert offloaded == on_server == [(1,), (2,), (3,)]
    shop.sql("ALTER TABLE ticks SECONDARY_UNLOAD")
    maria.execute("DROP TABLE shop.ticks")


def recovery(db: lw.Connection, table: str) -> tuple:
    """rpd_tables' RECOVERY_SOURCE, PERSISTED_SCN and LOAD_STATUS of `table`."""
    rows = db.sql(
        "SELECT RECOVERY_SOURCE, PERSISTED_SCN, LOAD_STATUS FROM performance_schema.rpd_tables "
        f"JOIN performance_schema.rpd_table_id USING (ID) WHERE TABLE_NAME = '{table}'"
    ).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


def rows_scanned(maria: MariaDB) -> int:
    """Rows the server has read by full scans since it started."""
    return int(
        dict(server_rows(maria, "SHOW GLOBAL STATUS LIKE 'Handler_read_rnd_next'"))["Handler_read_rnd_next"]
    )


def test_killed_and_restarted_lakewave_resumes_from_its_checkpoint(tmp_path: Path, maria: MariaDB):
    rows = 20_000
    maria.execute(
        "CREATE TABLE shop.stock (id INT PRIMARY KEY, qty INT)",
        "INSERT INTO shop.stock SELECT seq, seq * 10 FROM shop.seq_1_to_20000",
        # Every kind of column goes through the checkpoint file and back.
        "CREATE TABLE shop.kinds (id INT PRIMARY KEY, d DECIMAL(12,3), s VARCHAR(20) CHARACTER SET utf8mb4, "
        "t DATETIME(6), ts TIMESTAMP(6) NULL, dt DATE, tm TIME, y YEAR, e ENUM('a','b'), "
        "st SET('x','y'), j JSON, b BLOB, u BIGINT UNSIGNED, bits BIT(5), f DOUBLE)",
        "INSERT INTO shop.kinds VALUES (1, -123456789.125, 'naïve 😀', '2024-02-29 23:59:59.123456', "
        "'2030-01-01 00:00:00.5', '1999-12-31', '12:34:56', 2155, 'b', 'x,y', '{\"k\": [1]}', "
        "x'00ff', 18446744073709551615, b'10101', -0.5), "
        "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    path = tmp_path / "meta.db"
    url = maria.url(database="shop") + "?checkpoint_interval=200ms"
    script = textwrap.dedent(
        f"""
        import sys, time, lakewave as lw
        db = lw.connect({str(path)!r}, source={url!r})
        db.sql("ALTER TABLE stock SECONDARY_LOAD")
        db.sql("ALTER TABLE kinds SECONDARY_LOAD")
        every = ("SELECT MIN(PERSISTED_SCN) FROM performance_schema.rpd_tables "
                 "JOIN performance_schema.rpd_table_id USING (ID)")
        query = ("SELECT PERSISTED_SCN, SNAPSHOT_SCN FROM performance_schema.rpd_tables "
                 "JOIN performance_schema.rpd_table_id USING (ID) WHERE TABLE_NAME = 'stock'")
        deadline = time.monotonic() + 60
        while db.sql(every).fetchall()[0][0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        print("ready" if time.monotonic() < deadline else "no checkpoint", flush=True)
        for line in sys.stdin:
            db.sql("SELECT COUNT(*) FROM stock").fetchall()  # the read-your-writes barrier
            target = db.sql(query).fetchall()[0][1]
            deadline = time.monotonic() + 60
            while db.sql(query).fetchall()[0][0] < target and time.monotonic() < deadline:
                time.sleep(0.05)
            print("checkpointed" if time.monotonic() < deadline else "no checkpoint", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        # A change in the checkpoint, then changes only in the binlog.
        maria.execute("UPDATE shop.stock SET qty = qty + 1 WHERE id <= 2")
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "checkpointed"
        maria.execute("UPDATE shop.stock SET qty = qty + 1 WHERE id = 2")
    finally:
        child.kill()
        child.wait(timeout=30)
    checkpoints = list((tmp_path / "meta.db.checkpoints").iterdir())
    assert len(checkpoints) == 2 and {c.suffix for c in checkpoints} == {".parquet"}, checkpoints
    maria.execute(
        "INSERT INTO shop.stock VALUES (20001, 7)",
        "DELETE FROM shop.stock WHERE id = 1",
        "UPDATE shop.stock SET qty = -qty WHERE id = 3",
    )
    scanned = rows_scanned(maria)
    db = lw.connect(path, source=url)
    try:
        # Resuming read the binlog, not the table (a snapshot reads every row).
        assert rows_scanned(maria) - scanned < rows
        assert recovery(db, "stock")[0] == "Checkpoint"
        query = "SELECT id, qty FROM stock WHERE id <= 3 OR id > 19999 ORDER BY id"
        assert engine(db, query).startswith("cluster")
        offloaded, on_server = both(db, query)
        assert offloaded == on_server == [(2, 22), (3, -30), (20000, 200000), (20001, 7)]
        offloaded, on_server = both(db, "SELECT COUNT(*), SUM(qty) FROM stock")
        assert offloaded == on_server
        assert recovery(db, "kinds")[0] == "Checkpoint"
        offloaded, on_server = both(db, "SELECT * FROM kinds ORDER BY id")
        assert offloaded == on_server and len(offloaded) == 2
        db.sql("ALTER TABLE kinds SECONDARY_UNLOAD")
        db.sql("ALTER TABLE stock SECONDARY_UNLOAD")
        assert list((tmp_path / "meta.db.checkpoints").iterdir()) == []
    finally:
        db.close()
    maria.execute("DROP TABLE shop.stock", "DROP TABLE shop.kinds")


def test_a_restart_that_cannot_use_a_checkpoint_loads_from_the_server(tmp_path: Path, maria: MariaDB):
    maria.execute(
        "CREATE TABLE shop.bins (id INT PRIMARY KEY, label VARCHAR(20))",
        "CREATE TABLE shop.racks (id INT PRIMARY KEY, size INT)",
        "INSERT INTO shop.bins VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO shop.racks VALUES (1, 10), (2, 20)",
    )
    path = tmp_path / "meta.db"
    url = maria.url(database="shop") + "?checkpoint_interval=100ms"
    db = lw.connect(path, source=url)
    db.sql("ALTER TABLE bins SECONDARY_LOAD")
    db.sql("ALTER TABLE racks SECONDARY_LOAD")
    deadline = time.monotonic() + 60
    while (recovery(db, "bins")[1] == 0 or recovery(db, "racks")[1] == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recovery(db, "bins")[1] > 0 and recovery(db, "racks")[1] > 0
    db.close()
    # While lakewave is down: one checkpoint is damaged, the other table changes shape.
    (damaged,) = [f for f in (tmp_path / "meta.db.checkpoints").iterdir() if f.name.startswith("shop.bins.")]
    damaged.write_bytes(b"not parquet")
    maria.execute(
        "INSERT INTO shop.bins VALUES (3, 'c')",
        "ALTER TABLE shop.racks ADD COLUMN colour VARCHAR(10) DEFAULT 'red'",
        "INSERT INTO shop.racks VALUES (3, 30, 'blue')",
    )
    db = lw.connect(path, source=url)
    try:
        assert recovery(db, "bins")[0] == "MySQL"
        assert both(db, "SELECT id, label FROM bins ORDER BY id") == ([(1, "a"), (2, "b"), (3, "c")],) * 2
        racks = "SELECT id, size, colour FROM racks ORDER BY id"
        wait_available(db, "racks", racks)
        assert both(db, racks) == ([(1, 10, "red"), (2, 20, "red"), (3, 30, "blue")],) * 2
        assert recovery(db, "racks")[0] == "MySQL"
    finally:
        db.close()
    # Checkpoints off: a restart always loads from the server.
    db = lw.connect(path, source=maria.url(database="shop") + "?checkpoint_interval=off")
    try:
        assert recovery(db, "bins")[0] == "MySQL"
        assert recovery(db, "bins")[1] == 0
        with pytest.raises(lw.InterfaceError, match="checkpoint_interval"):
            lw.connect(source=maria.url(database="shop") + "?checkpoint_interval=never")
    finally:
        db.close()
    maria.execute("DROP TABLE shop.bins", "DROP TABLE shop.racks")


def test_the_preflight_names_every_unmet_requirement(tmp_path: Path, maria: MariaDB):
    maria.execute("CREATE USER 'reader'@'%' IDENTIFIED BY 'pw'", "GRANT SELECT ON shop.* TO 'reader'@'%'")
    with pytest.raises(lw.OperationalError) as denied:
        lw.connect(source=maria.url(user="reader", password="pw"))
    message = str(denied.value)
    assert "REPLICATION SLAVE" in message and "BINLOG MONITOR" in message
    assert denied.value.errno == 1598 and "pw" not in message.replace("reader", "")
    statement = MariaDB(
        tmp_path / "statement",
        binlog=False,
        extra=[
            "--log-bin=binlog",
            "--server-id=2",
            "--binlog-format=STATEMENT",
            "--binlog-row-metadata=MINIMAL",
        ],
    )
    try:
        with pytest.raises(lw.OperationalError) as unmet:
            lw.connect(source=statement.url())
        message = str(unmet.value)
        assert "binlog_format is STATEMENT" in message
        assert "binlog_row_metadata is MINIMAL" in message
    finally:
        statement.stop()
    with pytest.raises(lw.OperationalError) as unreachable:
        lw.connect(source="mysql://root:secret@127.0.0.1:1/")
    assert unreachable.value.errno == 2003 and "secret" not in str(unreachable.value)
    with pytest.raises(lw.InterfaceError) as bad_url:
        lw.connect(source="postgres://root:secret@127.0.0.1/")
    assert "secret" not in str(bad_url.value)


def test_lakewave_serve_in_front_of_the_server_through_its_clients(tmp_path: Path, maria):
    """`lakewave serve --source`: clients talk MySQL to lakewave; statements
    run on MariaDB and loaded tables are answered by the cluster."""
    import os
    import shutil

    maria.execute(
        "CREATE TABLE shop.sales (id INT PRIMARY KEY, region VARCHAR(8), total DECIMAL(9,2))",
        "INSERT INTO shop.sales VALUES (1, 'north', 10.00), (2, 'south', 20.50)",
    )
    env = dict(os.environ, LAKEWAVE_SOURCE=maria.url(database="shop"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lakewave",
            "serve",
            "--database",
            str(tmp_path / "meta.db"),
            "--mysql-port",
            "0",
            "--flight-port",
            "-1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        port = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if "MySQL protocol:" in line:
                port = int(line.rsplit(":", 1)[1])
            if line.startswith("ready"):
                break
        assert port, proc.stderr.read() if proc.stderr else ""
        conn = pymysql.connect(host="127.0.0.1", port=port, user="root", database="shop", autocommit=True)
        with conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE sales SECONDARY_LOAD")
            cur.execute("INSERT INTO sales VALUES (3, 'north', 5.25)")
            cur.execute("SET use_secondary_engine = FORCED")
            cur.execute("SELECT region, sum(total) FROM sales GROUP BY region ORDER BY region")
            assert cur.fetchall() == (
                ("north", decimal.Decimal("15.25")),
                ("south", decimal.Decimal("20.50")),
            )
            # A prepared statement with parameters, run by the server.
            cur.execute("SET use_secondary_engine = OFF")
            cur.execute("SELECT total FROM sales WHERE id = %s", (3,))
            assert cur.fetchall() == ((decimal.Decimal("5.25"),),)
            with pytest.raises(pymysql.err.IntegrityError) as duplicate:
                cur.execute("INSERT INTO sales VALUES (1, 'east', 1.00)")
            assert duplicate.value.args[0] == 1062
        mariadb = shutil.which("mariadb")
        if mariadb:
            out = subprocess.run(
                [
                    mariadb,
                    "-h",
                    "127.0.0.1",
                    "-P",
                    str(port),
                    "-u",
                    "root",
                    "-D",
                    "shop",
                    "--skip-ssl",
                    "-N",
                    "-e",
                    "SELECT count(*) FROM sales",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.stdout.strip() == "3", out.stderr
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out
    maria.execute("DROP TABLE shop.sales")


def test_insert_flight_sql_and_insert_ids_in_front_of_the_server(shop, maria):
    import adbc_driver_flightsql.dbapi as flight_sql
    import pyarrow as pa

    maria.execute("CREATE TABLE shop.notes (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(20) NOT NULL)")
    # insert() sends the rows to the server, in one transaction.
    rows = pa.table({"body": [f"n{i}" for i in range(2_500)]})
    assert shop.insert("notes", rows) == 2_500
    assert server_rows(maria, "SELECT count(*), max(id) FROM notes") == [(2_500, 2_500)]
    with pytest.raises(lw.IntegrityError, match="cannot be null") as refused:
        shop.insert("notes", pa.table({"body": ["ok", None]}))
    assert refused.value.errno == 1048
    assert server_rows(maria, "SELECT count(*) FROM notes") == [(2_500,)]
    # The server's AUTO_INCREMENT values reach the session.
    # (InnoDB does not reuse the values the rolled-back INSERT took.)
    shop.sql("INSERT INTO notes (body) VALUES ('a'), ('b')")
    ((first_id,),) = server_rows(maria, "SELECT id FROM notes WHERE body = 'a'")
    assert first_id > 2_500
    assert shop.sql("SELECT LAST_INSERT_ID()").fetchone() == (first_id,)
    shop.sql("ALTER TABLE notes SECONDARY_LOAD")
    served = shop.serve(mysql_port=0, flight_port=0, user="app", password="pw")
    try:
        with (
            flight_sql.connect(
                served.flight_uri, db_kwargs={"username": "app", "password": "pw"}, autocommit=True
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("INSERT INTO notes (body) VALUES ('over flight')")
            assert cur.rowcount == 1
            query = "SELECT count(*), max(body) FROM notes WHERE body LIKE 'o%'"
            cur.execute(f"EXPLAIN {query}")
            assert dict(cur.fetchall())["engine"].startswith("cluster")
            cur.execute(query)  # offloaded, after the read-your-writes barrier
            assert cur.fetch_arrow_table().to_pylist() == [{"count(*)": 1, "max(notes.body)": "over flight"}]
            cur.execute("SELECT body FROM notes WHERE id = ?", parameters=(first_id + 1,))
            assert cur.fetchall() == [("b",)]
    finally:
        served.close()


def test_rename_unloads_and_a_purged_binlog_reloads_every_table(shop, maria):
    maria.execute(
        "CREATE TABLE shop.old_name (id INT PRIMARY KEY)",
        "CREATE TABLE shop.kept (id INT PRIMARY KEY, v INT)",
        "INSERT INTO shop.kept VALUES (1, 1)",
    )
    shop.sql("ALTER TABLE old_name SECONDARY_LOAD")
    shop.sql("ALTER TABLE kept SECONDARY_LOAD")
    maria.execute("RENAME TABLE shop.old_name TO shop.new_name")
    # The renamed table leaves the cluster; the new name is on the server.
    deadline = time.monotonic() + RELOAD_SECONDS
    while "shop.old_name" in [
        r[0] for r in shop.sql("SELECT NAME FROM performance_schema.rpd_table_id").fetchall()
    ]:
        assert time.monotonic() < deadline, "old_name was not unloaded"
        time.sleep(0.2)
    assert "not loaded" in engine(shop, "SELECT * FROM new_name")

    def load_started() -> object:
        return shop.sql(
            "SELECT LOAD_START_TIMESTAMP FROM performance_schema.rpd_tables "
            "JOIN performance_schema.rpd_table_id USING (ID) WHERE NAME = 'shop.kept'"
        ).fetchall()[0][0]

    first_load = load_started()
    # Purge the binlog under the reader while it reconnects: it can no
    # longer resume, so the table is loaded again from a new snapshot.
    for _attempt in range(20):
        dumps = [r for r in server_rows(maria, "SHOW PROCESSLIST") if r[4] == "Binlog Dump"]
        conn = maria.connect(database="shop")
        try:
            with conn.cursor() as cur:
                for dump in dumps:
                    cur.execute(f"KILL {dump[0]}")
                cur.execute("FLUSH BINARY LOGS")
                cur.execute("UPDATE kept SET v = v + 1")
                cur.execute("FLUSH BINARY LOGS")
                cur.execute("SHOW MASTER STATUS")
                current = cur.fetchone()[0]
                cur.execute(f"PURGE BINARY LOGS TO '{current}'")
                break
        except pymysql.err.OperationalError:
            time.sleep(0.1)  # the reader was back first; try again
        finally:
            conn.close()
    else:
        pytest.fail("could not purge the binlog under the reader")
    maria.execute("UPDATE shop.kept SET v = v + 10")
    deadline = time.monotonic() + RELOAD_SECONDS
    while load_started() == first_load:
        assert time.monotonic() < deadline, "kept was not loaded again after the purge"
        time.sleep(0.2)
    wait_available(shop, "kept", "SELECT v FROM kept")
    offloaded, on_server = both(shop, "SELECT id, v FROM kept")
    assert offloaded == on_server and on_server[0][1] > 1
    shop.sql("ALTER TABLE kept SECONDARY_UNLOAD")
    maria.execute("DROP TABLE shop.kept", "DROP TABLE shop.new_name")
