"""Primary-key lookups stay in the row store, as HeatWave keeps them in InnoDB:
their cost (one row) is not above ``secondary_engine_cost_threshold``. They
must answer exactly what the general path answers (offloaded with the
threshold at 0, or planned by DataFusion under OFF when the statement is not
a plain lookup), and EXPLAIN must say where they run."""

from __future__ import annotations

import datetime
from decimal import Decimal

import lakewave as lw
import pytest


@pytest.fixture
def db(tmp_path):
    db = lw.connect(tmp_path / "lookups.db")
    db.sql(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(20), total DECIMAL(10,2), "
        "placed DATE, note TEXT)"
    )
    db.sql(
        "INSERT INTO orders VALUES (1, 'ann', 10.50, '2024-01-02', NULL), (2, 'bob', 20.00, '2024-02-03', 'x'), "
        "(-3, 'cy', 0.01, '2024-03-04', 'neg')"
    )
    db.sql("CREATE TABLE lines (order_id INT, line INT, sku VARCHAR(10), PRIMARY KEY (order_id, line))")
    db.sql("INSERT INTO lines VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 1, 'c')")
    db.sql("CREATE TABLE tags (name VARCHAR(10) PRIMARY KEY, weight INT)")
    db.sql("INSERT INTO tags VALUES ('red', 1), ('Red', 2)")
    for table in ("orders", "lines", "tags"):
        db.sql(f"ALTER TABLE {table} SECONDARY_LOAD")
    yield db
    db.close()


LOOKUPS = [
    ("SELECT * FROM orders WHERE id = 1", []),
    ("SELECT * FROM orders WHERE id = -3", []),
    ("SELECT customer, total FROM orders WHERE id = $1", [2]),
    ("SELECT customer, total FROM orders WHERE id = ?", ["2"]),
    ("SELECT o.total AS t, o.customer FROM orders o WHERE o.id = 1", []),
    ("SELECT main.orders.placed FROM main.orders WHERE 2 = main.orders.id", []),
    ("SELECT note, NOTE AS Again FROM orders WHERE (id = 1)", []),
    ("SELECT id FROM orders WHERE id = 99", []),
    ("SELECT sku FROM lines WHERE order_id = 1 AND line = 2", []),
    ("SELECT sku FROM lines WHERE line = $2 AND order_id = $1", [2, 1]),
    ("SELECT weight FROM tags WHERE name = 'Red'", []),
    ("SELECT weight FROM tags WHERE name = $1", ["red"]),
]

NOT_LOOKUPS = [
    "SELECT * FROM orders WHERE id = 1 OR id = 2",
    "SELECT * FROM orders WHERE id = 1 AND customer = 'ann'",
    "SELECT sku FROM lines WHERE order_id = 1",
    "SELECT total + 1 FROM orders WHERE id = 1",
    "SELECT * FROM orders WHERE id = 1 ORDER BY id",
    "SELECT * FROM orders WHERE id = 1 LIMIT 1",
    "SELECT DISTINCT customer FROM orders WHERE id = 1",
    "SELECT * FROM orders WHERE id = 1.5",
    "SELECT * FROM orders WHERE id = id",
]


def _rows(db, query, params):
    result = db.sql(query, params)
    return [tuple(field.name for field in result.schema)], result.fetchall()


def _engine(db, query, params=()):
    rows = dict(db.sql(f"EXPLAIN {query}", list(params)).fetchall()[:1])
    return rows["engine"]


@pytest.mark.parametrize(("query", "params"), LOOKUPS)
def test_a_lookup_answers_what_the_cluster_and_the_planner_answer(db, query, params) -> None:
    assert "primary-key lookup" in _engine(db, query, params)
    looked_up = _rows(db, query, params)
    db.sql("SET secondary_engine_cost_threshold = 0")
    assert _engine(db, query, params).startswith("cluster")
    assert _rows(db, query, params) == looked_up
    db.sql("SET use_secondary_engine = FORCED")
    assert _rows(db, query, params) == looked_up
    db.sql("SET use_secondary_engine = OFF")
    assert _rows(db, query, params) == looked_up


def test_lookups_return_the_types_of_the_table(db) -> None:
    header, rows = _rows(db, "SELECT * FROM orders WHERE id = 1", [])
    assert header == [("id", "customer", "total", "placed", "note")]
    assert rows == [(1, "ann", Decimal("10.50"), datetime.date(2024, 1, 2), None)]
    schema = db.sql("SELECT * FROM orders WHERE id = 1").schema
    assert schema == db.sql("SELECT * FROM orders WHERE id = 1 OR id = 1").schema


@pytest.mark.parametrize("query", NOT_LOOKUPS)
def test_anything_else_is_not_a_lookup(db, query) -> None:
    assert _engine(db, query).startswith("cluster")
    offloaded = sorted(db.sql(query).fetchall())
    db.sql("SET use_secondary_engine = OFF")
    assert sorted(db.sql(query).fetchall()) == offloaded


def test_a_transaction_looks_up_its_own_writes(db) -> None:
    db.sql("BEGIN")
    db.sql("UPDATE orders SET customer = 'dee' WHERE id = 1")
    db.sql("INSERT INTO orders VALUES (7, 'eve', 1.00, '2024-05-06', NULL)")
    assert db.sql("SELECT customer FROM orders WHERE id = 1").fetchall() == [("dee",)]
    assert db.sql("SELECT customer FROM orders WHERE id = $1", [7]).fetchall() == [("eve",)]
    db.sql("ROLLBACK")
    assert db.sql("SELECT customer FROM orders WHERE id = 1").fetchall() == [("ann",)]
    assert db.sql("SELECT customer FROM orders WHERE id = 7").fetchall() == []


def test_lookups_see_committed_changes_of_other_sessions(db) -> None:
    other = db.cursor()
    other.execute("BEGIN")
    other.execute("UPDATE orders SET total = 99.99 WHERE id = 2")
    assert db.sql("SELECT total FROM orders WHERE id = 2").fetchall() == [(Decimal("20.00"),)]
    other.execute("COMMIT")
    assert db.sql("SELECT total FROM orders WHERE id = 2").fetchall() == [(Decimal("99.99"),)]


def test_bad_lookups_fail_as_the_general_path_fails(db) -> None:
    with pytest.raises(lw.ProgrammingError, match="1054|column"):
        db.sql("SELECT nope FROM orders WHERE id = 1")
    with pytest.raises(lw.ProgrammingError, match="main.missing' does not exist"):
        db.sql("SELECT * FROM missing WHERE id = 1")
    with pytest.raises(lw.Error):
        db.sql("SELECT * FROM orders WHERE id = $1", ["not a number"]).fetchall()
    # Still answering afterwards.
    assert db.sql("SELECT id FROM orders WHERE id = 2").fetchall() == [(2,)]


def test_the_threshold_is_a_session_variable(db) -> None:
    assert db.sql("SELECT @@secondary_engine_cost_threshold").fetchone() == (100000,)
    db.sql("SET secondary_engine_cost_threshold = 0")
    assert db.sql("SELECT @@secondary_engine_cost_threshold").fetchone() == (0,)
    assert _engine(db, "SELECT * FROM orders WHERE id = 1").startswith("cluster")
    db.sql("SET secondary_engine_cost_threshold = 1")
    assert "primary-key lookup" in _engine(db, "SELECT * FROM orders WHERE id = 1")
