"""Every error type: typed, named, and nothing left half-done."""

from __future__ import annotations

import _thread
import threading
from pathlib import Path

import lakewave as lw
import pyarrow as pa
import pytest


@pytest.fixture
def loaded(db: lw.Connection) -> lw.Connection:
    db.load("orders", pa.table({"id": [1, 2, 3], "item": ["a", "b", None]}), primary_key="id")
    return db


def test_hierarchy_follows_pep_249() -> None:
    assert issubclass(lw.SqlSyntaxError, lw.ProgrammingError)
    assert issubclass(lw.TableNotFoundError, lw.CatalogError)
    assert issubclass(lw.CatalogError, lw.ProgrammingError)
    assert issubclass(lw.ProgrammingError, lw.DatabaseError)
    assert issubclass(lw.OutOfMemoryError, lw.OperationalError)
    assert issubclass(lw.DatabaseError, lw.Error)
    assert issubclass(lw.InterfaceError, lw.Error)
    assert issubclass(lw.Error, Exception)


def test_syntax_error_names_the_statement(loaded: lw.Connection) -> None:
    with pytest.raises(lw.SqlSyntaxError, match="SELEC id FROM orders"):
        loaded.sql("SELEC id FROM orders")


def test_unknown_table(loaded: lw.Connection) -> None:
    with pytest.raises(lw.TableNotFoundError, match="main.customers"):
        loaded.sql("SELECT * FROM customers")


def test_unknown_column(loaded: lw.Connection) -> None:
    with pytest.raises(lw.ColumnNotFoundError, match="'price'"):
        loaded.sql("SELECT price FROM orders")


def test_not_supported_statement(loaded: lw.Connection) -> None:
    with pytest.raises(lw.NotSupportedError, match="orders"):
        loaded.sql("UPDATE orders SET item = 'x'")


def test_bad_data_in_a_key(db: lw.Connection) -> None:
    with pytest.raises(lw.DataError, match="'k'"):
        db.load("t", pa.table({"k": [1, None, 3]}), primary_key="k")
    assert db.tables() == []


def test_unknown_key_column(db: lw.Connection) -> None:
    with pytest.raises(lw.ColumnNotFoundError, match="nope"):
        db.load("t", pa.table({"k": [1]}), primary_key="nope")


def test_out_of_memory_leaves_nothing() -> None:
    db = lw.connect(nodes=2, memory_per_node="128KiB", config={"chunk_rows": 4096})
    big = pa.table({"id": range(500_000), "v": [1.0] * 500_000})
    with pytest.raises(lw.OutOfMemoryError, match=r"main\.big.*node"):
        db.load("big", big, primary_key="id")
    assert db.tables() == []
    assert all(n["memory_used"] == 0 for n in db.nodes())
    with pytest.raises(lw.TableNotFoundError):
        db.sql("SELECT * FROM big")


def test_execution_error_when_reading(db: lw.Connection) -> None:
    with pytest.raises(lw.Error, match="abc"):
        db.sql("SELECT CAST('abc' AS INT)").fetchall()


def test_bad_options_are_interface_errors() -> None:
    with pytest.raises(lw.InterfaceError, match="nodez"):
        lw.connect(config={"nodez": 2})
    with pytest.raises(lw.InterfaceError, match="memory_per_node"):
        lw.connect(memory_per_node="lots")
    with pytest.raises(lw.InterfaceError, match="nodes"):
        lw.connect(nodes=0)


def test_bad_sources(db: lw.Connection, tmp_path: Path) -> None:
    with pytest.raises(lw.InterfaceError, match="cannot load a builtins.int"):
        db.load("t", 42)
    with pytest.raises(lw.OperationalError, match="no such file") as missing:
        db.load("t", tmp_path / "missing.parquet")
    assert missing.value.errno == 1017
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(lw.ProgrammingError, match="format"):
        db.load("t", tmp_path / "notes.txt")
    with pytest.raises(lw.ColumnNotFoundError, match="missing_column"):
        db.load("t", tmp_path / "notes.txt", format="csv", primary_key="missing_column")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(lw.Error, match="corrupt.parquet"):
        db.load("t", corrupt)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(lw.OperationalError, match="no parquet files"):
        db.load("t", empty)
    with pytest.raises(lw.ProgrammingError, match="not a valid table name"):
        db.load("a.b.c", pa.table({"k": [1]}))
    assert db.tables() == []


def test_ctrl_c_interrupts_a_query(db: lw.Connection) -> None:
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        db.sql(
            "SELECT count(DISTINCT a.value + b.value) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"
        ).fetchall()
    timer.cancel()
    # The connection still works afterwards.
    assert db.sql("SELECT 1").fetchone() == (1,)


def test_ctrl_c_interrupts_a_load_and_leaves_nothing(db: lw.Connection) -> None:
    schema = pa.schema([("id", pa.int64())])

    def slow_batches():
        import time

        for i in range(200):
            time.sleep(0.02)
            yield pa.record_batch([pa.array(range(i * 100_000, (i + 1) * 100_000))], schema=schema)

    reader = pa.RecordBatchReader.from_batches(schema, slow_batches())
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        db.load("slow", reader)
    timer.cancel()
    assert db.tables() == []
    assert all(n["memory_used"] == 0 for n in db.nodes())
