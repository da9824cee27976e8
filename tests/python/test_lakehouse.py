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


def test_delta_tables_written_by_delta_rs(tmp_path) -> None:
    deltalake = pytest.importorskip("deltalake")
    path = str(tmp_path / "events")
    write = deltalake.write_deltalake
    write(path, pa.table({"id": list(range(10)), "kind": ["a", "b"] * 5}))  # version 0
    write(path, pa.table({"id": [10, 11], "kind": ["c", "c"]}), mode="append")  # 1
    table = deltalake.DeltaTable(path)
    table.delete("id < 3")  # 2
    table = deltalake.DeltaTable(path)
    source = pa.table({"id": [5, 20], "kind": ["merged", "new"]})
    (
        table.merge(source, "t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )  # 3

    def expected(version: int | None = None) -> list[tuple]:
        dt = deltalake.DeltaTable(path, version=version)
        rows = dt.to_pyarrow_table().to_pylist()
        return sorted((r["id"], r["kind"]) for r in rows)

    db = lw.connect()
    db.create_external_table("events", path, format="delta")
    query = "SELECT id, kind FROM events ORDER BY id"
    assert db.sql(query).fetchall() == expected()
    db.sql("ALTER TABLE events SECONDARY_LOAD")
    assert db.sql(query).fetchall() == expected()
    # Time travel by version number.
    db.create_external_table("events_v1", path, format="delta", options={"version": 1})
    assert db.sql("SELECT id, kind FROM events_v1 ORDER BY id").fetchall() == expected(1)
    # An overwrite, then a refresh brings the loaded copy to the new version.
    write(path, pa.table({"id": [100], "kind": ["only"]}), mode="overwrite")  # 4
    assert db.sql(query).fetchall() == expected(3), "the loaded copy keeps its version"
    db.sql("SET @o = JSON_OBJECT('refresh_external_tables', TRUE)")
    status = db.sql(
        "CALL sys.HEATWAVE_LOAD(JSON_ARRAY(JSON_OBJECT('db_name', 'main', 'tables', JSON_ARRAY(JSON_OBJECT('table_name', 'events')))), @o)"
    ).fetchall()
    assert status == [("main.events", "refreshed to version 4 (1 file added, 2 removed)")]
    assert db.sql(query).fetchall() == [(100, "only")]
    (row,) = [t for t in db.loaded_tables() if t["name"] == "main.events"]
    assert row["snapshot_scn"] == 4


def test_delta_errors_name_the_table_and_the_problem(tmp_path) -> None:
    db = lw.connect()
    (tmp_path / "plain").mkdir()
    with pytest.raises(lw.OperationalError, match="_delta_log"):
        db.create_external_table("t", tmp_path / "plain", format="delta")
    log = tmp_path / "broken" / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text('{"protocol": {"minReaderVersion": 1, "minWriter')
    with pytest.raises(lw.DataError, match="main.t"):
        db.create_external_table("t", tmp_path / "broken", format="delta")
    with pytest.raises(lw.SqlSyntaxError, match="VERSION"):
        db.create_external_table("t", tmp_path / "broken", format="delta", options={"version": "latest"})
