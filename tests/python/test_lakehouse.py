"""External tables through the Python API."""

from __future__ import annotations

import lakewave as lw
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def test_external_tables_in_place_and_loaded(tmp_path) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "amount": [1.5, 2.5]}), folder / "a.parquet")
    pq.write_table(pa.table({"id": [3], "amount": [4.0]}), folder / "b.parquet")
    (tmp_path / "c.csv").write_text("id|label\n1|one\n3|-\n")
    db = lw.connect()
    db.create_external_table("orders", folder)
    db.create_external_table(
        "labels",
        tmp_path / "c.csv",
        format="csv",
        columns={"id": "BIGINT", "label": "VARCHAR(10)"},
        options={"field_delimiter": "|", "null_value": "-", "header": True},
    )
    query = "SELECT o.id, o.amount, l.label FROM orders o LEFT JOIN labels l ON l.id = o.id ORDER BY o.id"
    in_place = db.sql(query).fetchall()
    assert in_place == [(1, 1.5, "one"), (2, 2.5, None), (3, 4.0, None)]
    db.sql("ALTER TABLE orders SECONDARY_LOAD; ALTER TABLE labels SECONDARY_LOAD")
    assert "cluster" in db.sql(f"EXPLAIN {query}").fetchone()[1]
    assert db.sql(query).fetchall() == in_place
    assert {t["name"] for t in db.loaded_tables()} == {"main.orders", "main.labels"}
    db.sql("DROP TABLE orders")
    assert (folder / "a.parquet").exists()


def test_bad_external_definitions_raise_typed_errors(tmp_path) -> None:
    db = lw.connect()
    with pytest.raises(lw.OperationalError, match="missing"):
        db.create_external_table("t", tmp_path / "missing")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(lw.ProgrammingError, match="does not match"):
        db.create_external_table("t", tmp_path / "x.csv", format="csv", columns={"a": "INT"})
    with pytest.raises(lw.SqlSyntaxError, match="COLOUR"):
        db.create_external_table("t", tmp_path / "x.csv", format="csv", options={"colour": "red"})
    with pytest.raises(lw.InterfaceError):
        db.create_external_table("t", [])
    with pytest.raises(lw.TableNotFoundError):
        db.sql("SELECT * FROM t")
