"""The DB system through the Python API: DML, offload, propagation, status,
restart, other SQLite clients, and a crash test with SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from decimal import Decimal

import lakewave as lw
import pyarrow as pa
import pytest


def _engine(db: lw.Connection, query: str) -> str:
    return db.sql(f"EXPLAIN {query}").fetchone()[1]


def _orders(db: lw.Connection) -> None:
    db.sql("CREATE TABLE orders (order_id INT PRIMARY KEY, product TEXT, amount DOUBLE, price DECIMAL(10,2))")
    db.sql("INSERT INTO orders VALUES (1, 'Keyboard', 120.5, 120.50), (2, 'Mouse', 25.9, 25.90)")


def test_the_design_example_runs_as_written() -> None:
    db = lw.connect(nodes=2)
    db.sql("CREATE TABLE orders (order_id INT PRIMARY KEY, product TEXT, amount DOUBLE)")
    db.sql("INSERT INTO orders VALUES (1, 'Keyboard', 120.5), (2, 'Mouse', 25.9)")
    db.sql("ALTER TABLE orders SECONDARY_LOAD")
    res = db.sql("SELECT product, sum(amount) AS total FROM orders GROUP BY product ORDER BY product")
    assert res.fetchall() == [("Keyboard", 120.5), ("Mouse", 25.9)]
    assert "cluster" in _engine(db, "SELECT count(*) FROM orders")
    rows = db.sql(
        "SELECT NAME, LOAD_STATUS FROM performance_schema.rpd_tables, "
        "performance_schema.rpd_table_id WHERE rpd_tables.ID = rpd_table_id.ID"
    ).fetchall()
    assert rows == [("main.orders", "AVAIL_RPDGSTABSTATE")]


def test_offload_modes_and_explain_reasons() -> None:
    db = lw.connect()
    _orders(db)
    q = "SELECT sum(price) FROM orders"
    assert "not loaded" in _engine(db, q)
    assert db.sql(q).fetchone() == (Decimal("146.40"),)
    db.sql("SET use_secondary_engine = FORCED")
    assert db.use_secondary_engine == "FORCED"
    with pytest.raises(lw.NotSupportedError, match="main.orders"):
        db.sql(q)
    db.sql("ALTER TABLE orders SECONDARY_LOAD")
    assert db.sql(q).fetchone() == (Decimal("146.40"),)
    db.sql("SET use_secondary_engine = OFF")
    assert "OFF" in _engine(db, q)
    assert db.sql(q).fetchone() == (Decimal("146.40"),)


def test_bulk_insert_from_arrow_producers() -> None:
    db = lw.connect()
    _orders(db)
    n = db.insert(
        "orders",
        pa.table({"order_id": [3, 4], "product": ["Pen", None], "price": [1.5, 2.25]}),
    )
    assert n == 2
    polars = pytest.importorskip("polars")
    db.insert("orders", polars.DataFrame({"order_id": [5], "product": ["Ink"], "amount": [3.0]}))
    pandas = pytest.importorskip("pandas")
    db.insert("orders", pandas.DataFrame({"order_id": [1], "product": ["Replaced"]}), mode="replace")
    db.sql("ALTER TABLE orders SECONDARY_LOAD")
    assert db.sql("SELECT count(*), max(order_id) FROM orders").fetchone() == (5, 5)
    assert db.sql("SELECT product FROM orders WHERE order_id = 1").fetchone() == ("Replaced",)
    with pytest.raises(lw.IntegrityError, match="main.orders"):
        db.insert("orders", pa.table({"order_id": [2, 9], "product": ["dup", "new"]}))
    with pytest.raises(lw.DataError, match="price"):
        db.insert("orders", pa.table({"order_id": [9], "price": ["not a number"]}))
    with pytest.raises(lw.ColumnNotFoundError, match="nope"):
        db.insert("orders", pa.table({"order_id": [9], "nope": [1]}))
    with pytest.raises(lw.TableNotFoundError):
        db.insert("missing", pa.table({"a": [1]}))
    assert db.sql("SELECT count(*) FROM orders").fetchone() == (5,)


def test_transactions_through_the_dbapi_connection() -> None:
    db = lw.connect()
    _orders(db)
    db.sql("BEGIN")
    assert db.in_transaction
    db.sql("DELETE FROM orders")
    db.rollback()
    assert not db.in_transaction
    assert db.sql("SELECT count(*) FROM orders").fetchone() == (2,)
    db.sql("BEGIN; UPDATE orders SET amount = 0")
    db.commit()
    assert db.sql("SELECT sum(amount) FROM orders").fetchone() == (0.0,)


def test_loaded_tables_and_stale_status_from_python(tmp_path) -> None:
    path = tmp_path / "shop.db"
    db = lw.connect(path)
    assert db.path == str(path)
    _orders(db)
    db.sql("ALTER TABLE orders SECONDARY_LOAD")
    (table,) = db.loaded_tables()
    assert table["name"] == "main.orders"
    assert table["pool_type"] == "TRANSACTIONAL"
    assert table["load_status"] == "AVAIL_RPDGSTABSTATE"
    assert table["nrows"] == 2
    # Another client writes a value the DECIMAL column cannot hold.
    with sqlite3.connect(path) as other:
        other.execute("UPDATE orders SET price = 'n/a' WHERE order_id = 1")
    db.sync()
    (table,) = db.loaded_tables()
    assert table["load_status"] == "STALE_RPDGSTABSTATE"
    assert "price" in table["stale_reason"]
    with sqlite3.connect(path) as other:
        other.execute("UPDATE orders SET price = '1.00' WHERE order_id = 1")
    db.reload("orders")
    assert db.loaded_tables()[0]["load_status"] == "AVAIL_RPDGSTABSTATE"
    assert db.sql("SELECT price FROM orders WHERE order_id = 1").fetchone() == (Decimal("1.00"),)


def test_reopening_brings_back_loaded_tables(tmp_path) -> None:
    path = tmp_path / "shop.db"
    db = lw.connect(path)
    _orders(db)
    db.sql("ALTER TABLE orders SECONDARY_LOAD")
    db.sql("UPDATE orders SET amount = 1")
    db.close()
    again = lw.connect(path)
    assert "cluster" in _engine(again, "SELECT sum(amount) FROM orders")
    assert again.sql("SELECT sum(amount) FROM orders").fetchone() == (2.0,)


def test_a_read_only_database_refuses_writes(tmp_path) -> None:
    path = tmp_path / "ro.db"
    db = lw.connect(path)
    _orders(db)
    db.close()
    ro = lw.connect(f"file:{path}?mode=ro")
    with pytest.raises(lw.OperationalError, match="read-only"):
        ro.sql("INSERT INTO orders (order_id) VALUES (3)")
    assert ro.sql("SELECT count(*) FROM orders").fetchone() == (2,)


CHILD = textwrap.dedent(
    """
    import random, sys
    import lakewave as lw
    path, seed = sys.argv[1], int(sys.argv[2])
    db = lw.connect(path, config={"propagation_interval": "10ms"})
    rng = random.Random(seed)
    if not db.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 't'").fetchone()[0]:
        db.sql("CREATE TABLE t (id INT PRIMARY KEY, v BIGINT, s TEXT)")
        db.sql("ALTER TABLE t SECONDARY_LOAD")
    print("ready", flush=True)
    while True:
        if rng.random() < 0.3:
            db.sql("BEGIN")
            for _ in range(rng.randint(1, 5)):
                i = rng.randint(0, 500)
                db.sql(f"REPLACE INTO t VALUES ({i}, {rng.randint(0, 10**9)}, 's{i}')")
            db.sql("COMMIT" if rng.random() < 0.8 else "ROLLBACK")
        elif rng.random() < 0.5:
            rows = ", ".join(f"({rng.randint(0, 500)}, 1, 'x')" for _ in range(20))
            db.sql(f"INSERT IGNORE INTO t VALUES {rows}")
        elif rng.random() < 0.5:
            lo = rng.randint(0, 500)
            db.sql(f"UPDATE t SET v = v + 1 WHERE id BETWEEN {lo} AND {lo + 50}")
        else:
            lo = rng.randint(0, 500)
            db.sql(f"DELETE FROM t WHERE id BETWEEN {lo} AND {lo + 10}")
    """
)


def test_sigkill_at_random_points_loses_nothing(tmp_path) -> None:
    path = str(tmp_path / "crash.db")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random(42)
    for round_ in range(4):
        child = subprocess.Popen(
            [sys.executable, str(script), path, str(round_)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 1.5))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        db = lw.connect(path)
        query = "SELECT id, v, s FROM t ORDER BY id"
        assert "cluster" in _engine(db, query)
        on = db.sql(query).fetchall()
        db.sql("SET use_secondary_engine = OFF")
        off = db.sql(query).fetchall()
        assert on == off, f"round {round_}: the cluster differs from the row store"
        with sqlite3.connect(path) as raw:
            assert raw.execute("SELECT count(*) FROM t").fetchone()[0] == len(off)
        db.close()
