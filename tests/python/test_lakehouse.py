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


def _rows(db: lw.Connection, table: str, columns: str) -> list[tuple]:
    return db.sql(f"SELECT {columns} FROM {table} ORDER BY {columns}").fetchall()


def _full_reload(path: str, columns: str) -> list[tuple]:
    """The same Delta table loaded whole by a new instance."""
    other = lw.connect()
    other.create_external_table("t", path, format="delta")
    other.sql("ALTER TABLE t SECONDARY_LOAD")
    return _rows(other, "t", columns)


def test_delta_refresh_applies_only_the_new_commits(tmp_path) -> None:
    deltalake = pytest.importorskip("deltalake")
    path = str(tmp_path / "events")
    write = deltalake.write_deltalake
    for part in range(4):  # versions 0-3: four files
        ids = list(range(part * 100, part * 100 + 100))
        write(path, pa.table({"id": ids, "kind": [f"k{i % 3}" for i in ids]}), mode="append")
    db = lw.connect()
    db.create_external_table("events", path, format="delta")
    assert db.refresh("events") == {"main.events": "loaded"}
    columns = "id, kind"

    def delta_rows() -> list[tuple]:
        rows = deltalake.DeltaTable(path).to_pyarrow_table().to_pylist()
        return sorted(tuple(r[c.strip()] for c in columns.split(",")) for r in rows)

    def check(version: int) -> None:
        # Only the files of the new commit are read or dropped.
        commit = (tmp_path / "events" / "_delta_log" / f"{version:020}.json").read_text()
        adds = sum(line.startswith('{"add"') for line in commit.splitlines())
        removes = sum(line.startswith('{"remove"') for line in commit.splitlines())
        expected = f"refreshed to version {version} ({adds} {'file' if adds == 1 else 'files'} added, {removes} removed)"
        status = db.refresh("events")["main.events"]
        assert status == expected
        loaded = _rows(db, "events", columns)
        assert "cluster" in db.sql(f"EXPLAIN SELECT {columns} FROM events").fetchone()[1]
        assert loaded == delta_rows(), status
        assert loaded == _full_reload(path, columns), status

    write(path, pa.table({"id": [1000, 1001], "kind": ["new", "new"]}), mode="append")
    check(4)
    deltalake.DeltaTable(path).delete("id >= 100 AND id < 150")  # rewrites one file
    check(5)
    source = pa.table({"id": [5, 2000], "kind": ["merged", "inserted"]})
    (
        deltalake.DeltaTable(path)
        .merge(source, "t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    check(6)
    before = len(_full_reload(path, columns))
    deltalake.DeltaTable(path).optimize.compact()  # same rows, fewer files
    check(7)
    assert len(_rows(db, "events", columns)) == before
    # A new column: the loaded copy is rebuilt whole.
    write(
        path,
        pa.table({"id": [3000], "kind": ["wide"], "score": [0.5]}),
        mode="append",
        schema_mode="merge",
    )
    columns = "id, kind, score"
    status = db.refresh("events")["main.events"]
    assert status.startswith("reloaded to version 8: the columns changed"), status
    assert _rows(db, "events", columns) == delta_rows() == _full_reload(path, columns)
    write(path, pa.table({"id": [7], "kind": ["over"], "score": [1.0]}), mode="overwrite")
    check(9)
    (row,) = [t for t in db.loaded_tables() if t["name"] == "main.events"]
    assert row["snapshot_scn"] == 9


def test_plain_file_refresh_and_queries_during_it(tmp_path) -> None:
    import threading

    folder = tmp_path / "parts"
    folder.mkdir()
    for part in range(3):
        ids = list(range(part * 50_000, (part + 1) * 50_000))
        pq.write_table(pa.table({"id": ids, "v": [i % 10 for i in ids]}), folder / f"p{part}.parquet")
    db = lw.connect()
    db.create_external_table("parts", folder)
    db.sql("ALTER TABLE parts SECONDARY_LOAD")
    old = db.sql("SELECT count(*), sum(v) FROM parts").fetchone()
    pq.write_table(pa.table({"id": [-1, -2], "v": [100, 100]}), folder / "p9.parquet")
    (folder / "p0.parquet").unlink()
    new_count = old[0] - 50_000 + 2
    seen: set[int] = set()
    done = threading.Event()

    def query() -> None:
        reader = db.cursor()
        while not done.is_set():
            seen.add(reader.execute("SELECT count(*) FROM parts").fetchone()[0])

    thread = threading.Thread(target=query)
    thread.start()
    try:
        status = db.refresh("parts")
    finally:
        done.set()
        thread.join()
    assert status == {"main.parts": "refreshed (1 file added, 1 removed)"}
    assert seen <= {old[0], new_count}, "a query saw a mix of versions"
    assert db.sql("SELECT count(*) FROM parts").fetchone()[0] == new_count
    with pytest.raises(lw.TableNotFoundError):
        db.refresh("nope")


def test_avro_external_tables(tmp_path) -> None:
    fastavro = pytest.importorskip("fastavro")
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Reading",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "sensor", "type": "string"},
                {"name": "value", "type": ["null", "double"]},
                {"name": "ok", "type": "boolean"},
            ],
        }
    )
    folder = tmp_path / "readings"
    folder.mkdir()

    def write(name: str, rows: list[dict]) -> None:
        with open(folder / name, "wb") as out:
            fastavro.writer(out, schema, rows, codec="deflate")

    write("a.avro", [{"id": i, "sensor": f"s{i % 2}", "value": i / 2, "ok": i % 3 == 0} for i in range(100)])
    write("b.avro", [{"id": 100, "sensor": "s9", "value": None, "ok": False}])
    db = lw.connect()
    db.create_external_table("readings", folder, format="avro")
    query = "SELECT sensor, count(*), sum(value), count(value), sum(CAST(ok AS INT)) FROM readings GROUP BY sensor ORDER BY sensor"
    in_place = db.sql(query).fetchall()
    assert in_place == [("s0", 50, 1225.0, 50, 17), ("s1", 50, 1250.0, 50, 17), ("s9", 1, None, 0, 0)]
    db.sql("ALTER TABLE readings SECONDARY_LOAD")
    assert "cluster" in db.sql(f"EXPLAIN {query}").fetchone()[1]
    assert db.sql(query).fetchall() == in_place
    write("c.avro", [{"id": 101, "sensor": "s9", "value": 4.0, "ok": True}])
    assert db.refresh("readings") == {"main.readings": "refreshed (1 file added, 0 removed)"}
    assert db.sql("SELECT count(*), sum(value) FROM readings WHERE sensor = 's9'").fetchone() == (2, 4.0)
    # Not Avro: a typed error naming the file.
    (folder / "d.avro").write_text("not avro at all")
    with pytest.raises(lw.Error, match="d.avro"):
        db.refresh("readings")
    assert db.sql("SELECT count(*) FROM readings").fetchone() == (102,), "the loaded version is kept"


def test_refresh_interval_keeps_a_table_current(tmp_path) -> None:
    import time

    folder = tmp_path / "feed"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1]}), folder / "a.parquet")
    db = lw.connect()
    db.create_external_table("feed", folder, refresh_interval=0.05)
    db.sql("ALTER TABLE feed SECONDARY_LOAD")
    pq.write_table(pa.table({"id": [2, 3]}), folder / "b.parquet")
    deadline = time.monotonic() + 20
    while db.sql("SELECT count(*) FROM feed").fetchone() != (3,):
        assert time.monotonic() < deadline, "not refreshed on its own"
        time.sleep(0.02)
    with pytest.raises(lw.InterfaceError, match="refresh_interval"):
        db.create_external_table("bad", folder, refresh_interval=-1)


def test_one_file_keeps_its_not_null_columns_and_several_files_allow_nulls(tmp_path) -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.float64())])
    pq.write_table(pa.table({"id": [1, 2], "v": [1.0, None]}, schema=schema), tmp_path / "one.parquet")
    folder = tmp_path / "many"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "v": [1.0, 2.0]}, schema=schema), folder / "a.parquet")
    # An older file, written before the table gained `v`.
    pq.write_table(pa.table({"id": pa.array([3], pa.int64())}), folder / "b.parquet")
    db = lw.connect()
    db.load("one", tmp_path / "one.parquet", primary_key="id")
    loaded = db.sql("SELECT * FROM one").arrow().schema
    assert not loaded.field("id").nullable and loaded.field("v").nullable
    db.create_external_table("many", folder)
    in_place = db.sql("SELECT * FROM many").arrow().schema
    assert in_place.field("id").nullable and in_place.field("v").nullable
    assert db.sql("SELECT id, v FROM many ORDER BY id").fetchall() == [(1, 1.0), (2, 2.0), (3, None)]
    db.load("many_loaded", folder)
    assert db.sql("SELECT count(*), count(v) FROM many_loaded").fetchone() == (3, 2)
