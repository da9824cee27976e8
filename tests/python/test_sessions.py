"""Sessions from Python: cursors are sessions of their own, fetches advance over
one execution, rowcount counts changed rows, close() ends sessions and frees the
file, errors carry MySQL numbers, KILL QUERY and Ctrl-C stop a statement, and the
typed helpers compose no SQL from user values."""

from __future__ import annotations

import _thread
import threading
import time

import lakewave as lw
import pyarrow as pa
import pytest

SLOW = (
    "SELECT count(DISTINCT a.value + b.value) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"
)


def _orders(db: lw.Connection) -> None:
    db.sql("CREATE TABLE orders (id INT PRIMARY KEY, product VARCHAR(10) NOT NULL, amount DOUBLE)")
    db.sql("INSERT INTO orders VALUES (1, 'pen', 2.5), (2, 'ink', 4.0), (3, 'pad', 1.0)")


def test_fetches_advance_over_one_execution(db: lw.Connection) -> None:
    _orders(db)
    res = db.sql("SELECT id FROM orders ORDER BY id")
    assert res.fetchone() == (1,)
    assert res.fetchone() == (2,)
    assert res.fetchmany(5) == [(3,)]
    assert res.fetchone() is None
    assert res.fetchall() == []
    # Whole-result exports run the planned query again, from the start.
    assert res.arrow().column("id").to_pylist() == [1, 2, 3]
    assert pa.table(res).num_rows == 3
    assert res.rows_affected is None


def test_rowcount_is_the_rows_a_statement_changed(db: lw.Connection) -> None:
    _orders(db)
    cur = db.cursor()
    cur.execute("INSERT INTO orders VALUES (4, 'cap', 1.5), (5, 'nib', 0.5)")
    assert cur.rowcount == 2
    cur.execute("UPDATE orders SET amount = amount * 2 WHERE amount < 2")
    assert cur.rowcount == 3
    cur.execute("DELETE FROM orders WHERE id = 99")
    assert cur.rowcount == 0
    cur.executemany("INSERT INTO orders VALUES ($1, $2, 1.0)", [(6, "a"), (7, "b")])
    assert cur.rowcount == 2
    cur.execute("SELECT * FROM orders")
    assert cur.rowcount == -1
    assert db.sql("DELETE FROM orders WHERE id > 5").rows_affected == 2


def test_cursors_are_sessions_of_their_own(db: lw.Connection) -> None:
    _orders(db)
    a, b = db.cursor(), db.cursor()
    assert len({db.session_id, a.session_id, b.session_id}) == 3
    a.execute("BEGIN")
    a.execute("INSERT INTO orders VALUES (9, 'tmp', 0)")
    assert a.execute("SELECT count(*) FROM orders").fetchone() == (4,)
    assert b.execute("SELECT count(*) FROM orders").fetchone() == (3,)
    a.execute("SET use_secondary_engine = OFF")
    assert b.execute("SELECT @@use_secondary_engine").fetchone() == ("ON",)
    ids = {p["id"] for p in db.processes()}
    assert {db.session_id, a.session_id, b.session_id} <= ids
    a.close()  # its transaction is rolled back
    assert b.execute("SELECT count(*) FROM orders").fetchone() == (3,)
    with pytest.raises(lw.InterfaceError):
        a.execute("SELECT 1")


def test_close_ends_every_session_and_frees_the_file(tmp_path) -> None:
    path = tmp_path / "shop.db"
    db = lw.connect(path)
    _orders(db)
    with pytest.raises(lw.OperationalError, match="shop.db") as refused:
        lw.connect(path)
    assert refused.value.errno == 1016
    cur = db.cursor()
    cur.execute("BEGIN")
    cur.execute("DELETE FROM orders")
    result = db.sql("SELECT count(*) FROM orders")
    db.close()
    assert db.closed
    for call in (lambda: db.sql("SELECT 1"), lambda: cur.execute("SELECT 1"), result.fetchall):
        with pytest.raises(lw.InterfaceError):
            call()
    again = lw.connect(path)
    assert again.sql("SELECT count(*) FROM orders").fetchone() == (3,)
    again.close()
    with lw.connect(path) as third:
        assert third.sql("SELECT 1").fetchone() == (1,)
    assert third.closed


def test_errors_carry_mysql_numbers_and_causes(db: lw.Connection) -> None:
    _orders(db)
    cases = [
        ("SELECT * FROM nothing", lw.TableNotFoundError, 1146, "42S02"),
        ("SELEC 1", lw.SqlSyntaxError, 1064, "42000"),
        ("SELECT nope FROM orders", lw.ColumnNotFoundError, 1054, "42S22"),
        ("INSERT INTO orders VALUES (1, 'dup', 0)", lw.IntegrityError, 1062, "23000"),
        ("INSERT INTO orders VALUES (8, NULL, 0)", lw.IntegrityError, 1048, "23000"),
        ("INSERT INTO orders VALUES (8, 'much too long', 0)", lw.DataError, 1406, "22001"),
        ("INSERT INTO orders VALUES ('x', 'a', 0)", lw.DataError, 1366, "HY000"),
        ("CREATE TABLE orders (id INT)", lw.TableExistsError, 1050, "42S01"),
    ]
    for text, kind, errno, sqlstate in cases:
        with pytest.raises(kind) as raised:
            db.sql(text)
        assert (raised.value.errno, raised.value.sqlstate) == (errno, sqlstate), text
    with pytest.raises(lw.Error) as raised:
        db.sql("CALL sys.HEATWAVE_LOAD)(")
    assert raised.value.errno == 1064
    assert db.sql("SELECT count(*) FROM orders").fetchone() == (3,)


def test_kill_query_stops_a_running_statement(db: lw.Connection) -> None:
    victim = db.cursor()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            victim.execute(SLOW).fetchall()
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not any(p["id"] == victim.session_id and p["command"] == "Query" for p in db.processes()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    db.sql(f"KILL QUERY {victim.session_id}")
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], lw.QueryInterruptedError), outcome
    assert outcome[0].errno == 1317
    assert victim.execute("SELECT 1").fetchone() == (1,)
    db.sql(f"KILL {victim.session_id}")
    with pytest.raises(lw.InterfaceError):
        victim.execute("SELECT 1")


def test_ctrl_c_stops_a_query_and_the_session_goes_on(db: lw.Connection) -> None:
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        db.sql(SLOW).fetchall()
    timer.join()
    # Bounded only so that a broken build cannot hang the suite.
    assert time.monotonic() - started < 120
    assert db.sql("SELECT 1").fetchone() == (1,)


def test_typed_helpers_take_any_value(db: lw.Connection, tmp_path) -> None:
    folder = tmp_path / 'it\'s a "folder"'
    folder.mkdir()
    (folder / "a.csv").write_text("id|note\n1|x\n")
    db.create_external_table(
        "odd",
        folder,
        format="csv",
        options={"field_delimiter": "|"},
        columns={"id": "BIGINT", "note": "VARCHAR(5)"},
        storage_options={"endpoint": "it's'quoted"},
    )
    assert db.sql("SELECT id, note FROM odd").fetchall() == [(1, "x")]
    assert db.refresh("odd") == {"main.odd": "loaded"}
    assert db.refresh("odd") == {"main.odd": "refreshed (0 files added, 0 removed)"}
    with pytest.raises(lw.NotSupportedError):
        db.create_external_table("bad", folder, format="csv", columns={"id": "GEOMETRY"})
    with pytest.raises(lw.SqlSyntaxError):
        db.create_external_table("bad", folder, format="csv", options={"nonsense": 1})
    with pytest.raises(lw.InterfaceError):
        db.create_external_table("bad", folder, format="csv", refresh_interval=-1)
    _orders(db)
    db.sql("ALTER TABLE orders SECONDARY_LOAD")
    db.reload("orders")
    assert db.loaded_tables()[0]["load_status"] == "AVAIL_RPDGSTABSTATE"


def test_variables_and_views_from_python(db: lw.Connection) -> None:
    _orders(db)
    db.sql("CREATE VIEW cheap AS SELECT product FROM orders WHERE amount < 3")
    other = db.cursor()
    assert sorted(other.execute("SELECT * FROM cheap").fetchall()) == [("pad",), ("pen",)]
    db.sql("SET @min = 2")
    assert db.sql("SELECT count(*) FROM orders WHERE amount >= @min").fetchone() == (2,)
    assert db.sql("select @@hostname, a.id from orders a where a.id = 1").fetchone()[1] == 1
