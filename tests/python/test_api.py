"""The public Python API: connect, load, sql, results, cursors."""

from __future__ import annotations

import datetime
import decimal
import threading
import time
from pathlib import Path

import lakewave as lw
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def sample_table(n: int = 1000) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "city": pa.array([["Paris", "Oslo", "Lima", None][i % 4] for i in range(n)], pa.large_string()),
            "price": pa.array([i * 0.5 for i in range(n)]),
            "day": pa.array([datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 300) for i in range(n)]),
            "amount": pa.array([decimal.Decimal(i) / 100 for i in range(n)], pa.decimal128(12, 2)),
        }
    )


def test_load_arrow_and_query_every_way(db: lw.Connection) -> None:
    info = db.load("sales", sample_table(), primary_key="id")
    assert info["rows"] == 1000 and info["table"] == "sales" and info["partitions"] >= 2
    assert "city" in info["dictionary_columns"]
    res = db.sql("SELECT city, count(*) AS n, sum(price) AS total FROM sales GROUP BY city ORDER BY city")
    table = res.arrow()
    assert table.column_names == ["city", "n", "total"]
    # Dictionary encoding is internal: results come back as plain strings.
    assert pa.types.is_string(table.schema.field("city").type)
    assert table.column("n").to_pylist() == [250, 250, 250, 250]
    frame = res.to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    polars_frame = res.pl()
    assert isinstance(polars_frame, pl.DataFrame) and polars_frame.height == 4
    assert pl.DataFrame(res).shape == (4, 3)
    rows = res.fetchall()
    assert rows[0] == ("Lima", 250, sum(i * 0.5 for i in range(2, 1000, 4)))
    assert rows[-1][0] is None
    # The fetches advanced over one execution: nothing is left.
    assert res.fetchone() is None
    assert res.fetchmany(2) == []
    again = db.sql("SELECT city, count(*) AS n, sum(price) AS total FROM sales GROUP BY city ORDER BY city")
    assert again.fetchone() == rows[0]
    assert again.fetchmany(2) == rows[1:3]
    assert res.columns == ["city", "n", "total"]


def test_results_stream_batch_by_batch(db: lw.Connection) -> None:
    db.sql("CREATE TABLE big AS SELECT value AS v FROM generate_series(1, 200000) AS t(value)")
    reader = db.sql("SELECT v FROM big").reader()
    batches = list(reader)
    assert len(batches) > 1
    assert sum(b.num_rows for b in batches) == 200000
    # The same result can be read again: each read runs the query.
    res = db.sql("SELECT sum(v) AS s FROM big")
    assert res.fetchone() == (200000 * 200001 // 2,)
    assert pa.table(res).column("s").to_pylist() == [200000 * 200001 // 2]


def test_python_values_round_trip(db: lw.Connection) -> None:
    db.load("t", sample_table(10), primary_key="id")
    row = db.sql("SELECT id, city, price, day, amount FROM t WHERE id = 3").fetchone()
    assert row == (3, None, 1.5, datetime.date(2024, 1, 4), decimal.Decimal("0.03"))
    ts = db.sql("SELECT TIMESTAMP '2024-05-06 07:08:09.123456' AS ts, true AS b, NULL AS n").fetchone()
    assert ts == (datetime.datetime(2024, 5, 6, 7, 8, 9, 123456), True, None)
    nested = db.sql("SELECT [1, 2, 3] AS l, named_struct('a', 1, 'b', 'x') AS s").fetchone()
    assert nested == ([1, 2, 3], {"a": 1, "b": "x"})


def test_parameters(db: lw.Connection) -> None:
    db.load("t", sample_table(100), primary_key="id")
    res = db.sql("SELECT count(*) FROM t WHERE id < $1 AND city = $2", [40, "Oslo"])
    assert res.fetchone() == (10,)
    assert db.sql("SELECT $1 + 1, $2, $3", [41, "x", None]).fetchone() == (42, "x", None)
    assert db.sql("SELECT $1", [datetime.date(2024, 2, 29)]).fetchone() == (datetime.date(2024, 2, 29),)
    with pytest.raises(lw.InterfaceError, match="cannot bind"):
        db.sql("SELECT $1", [object()])


def test_load_from_polars_pandas_and_readers(db: lw.Connection) -> None:
    db.load("from_polars", pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    db.load("from_pandas", pd.DataFrame({"a": [1.5, 2.5], "b": ["u", None]}))
    reader = pa.RecordBatchReader.from_batches(
        sample_table(10).schema, sample_table(10).to_batches(max_chunksize=3)
    )
    db.load("from_reader", reader)
    db.load("from_batch", sample_table(5).to_batches()[0])
    counts = {t["table"]: t["rows"] for t in db.tables()}
    assert counts == {"from_polars": 3, "from_pandas": 2, "from_reader": 10, "from_batch": 5}
    assert db.sql("SELECT b FROM from_pandas ORDER BY a").fetchall() == [("u",), (None,)]


def test_load_parquet_file_and_folder(db: lw.Connection, tmp_path: Path) -> None:
    table = sample_table(5000)
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=1000)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3):
        pq.write_table(table.slice(i * 1000, 1000), folder / f"part-{i}.parquet")
    db.load("one", tmp_path / "one.parquet", primary_key="id")
    db.load("many", str(folder))
    assert db.sql("SELECT count(*) FROM one").fetchone() == (5000,)
    assert db.sql("SELECT count(*), min(id), max(id) FROM many").fetchone() == (3000, 0, 2999)


def test_replace_and_drop(db: lw.Connection) -> None:
    db.load("t", sample_table(10))
    with pytest.raises(lw.TableExistsError, match="main.t"):
        db.load("t", sample_table(10))
    db.load("t", sample_table(20), replace=True)
    assert db.sql("SELECT count(*) FROM t").fetchone() == (20,)
    db.sql("DROP TABLE t")
    assert db.tables() == []
    assert all(node["memory_used"] == 0 for node in db.nodes())


def test_shape_and_nodes() -> None:
    db = lw.connect(nodes=3, memory_per_node="256MiB", config={"partitions_per_node": 2})
    assert db.shape["nodes"] == 3
    assert db.shape["memory_per_node"] == 256 * 2**20
    db.load("t", sample_table(5000), primary_key="id")
    nodes = db.nodes()
    assert [n["node"] for n in nodes] == [0, 1, 2]
    assert all(n["memory_used"] > 0 and n["partitions"] == 2 for n in nodes)


def test_explain_shows_pruned_chunks() -> None:
    db = lw.connect(nodes=1, config={"chunk_rows": 1000, "partitions_per_node": 1})
    db.load("t", sample_table(10000))
    plan = "\n".join(text for _, text in db.sql("EXPLAIN SELECT * FROM t WHERE id >= 9500").fetchall())
    assert "chunks=1 of 10 (9 pruned by zone maps)" in plan


def test_repr_and_html(db: lw.Connection) -> None:
    db.load("t", sample_table(50))
    res = db.sql("SELECT id, city FROM t ORDER BY id")
    text = repr(res)
    assert "| id |" in text.replace("  ", " ") or "id" in text.splitlines()[1]
    assert "showing the first 20 rows" in text
    html = res._repr_html_()
    assert html.startswith("<table>") and "<th>city</th>" in html and "<i>NULL</i>" in html


def test_cursor_dbapi(db: lw.Connection) -> None:
    assert lw.apilevel == "2.0" and lw.paramstyle == "numeric"
    db.load("t", sample_table(10), primary_key="id")
    with db.cursor() as cur:
        cur.execute("SELECT id, city FROM t WHERE id < $1 ORDER BY id", [3])
        assert [d[0] for d in cur.description] == ["id", "city"]
        # Rows of a query are streamed, not counted first (PEP 249 allows -1).
        assert cur.rowcount == -1
        assert cur.fetchone() == (0, "Paris")
        assert cur.fetchmany(5) == [(1, "Oslo"), (2, "Lima")]
        assert cur.fetchone() is None
        cur.execute("SELECT count(*) FROM t")
        assert list(cur) == [(10,)]
        # The Arrow fetch continues the same execution: nothing is left.
        assert cur.fetch_arrow_table().num_rows == 0
        cur.execute("SELECT id FROM t ORDER BY id")
        assert cur.fetchone() == (0,)
        assert cur.fetch_arrow_table().column("id").to_pylist() == list(range(1, 10))
    with pytest.raises(lw.InterfaceError):
        cur.execute("SELECT 1")


def test_long_calls_release_the_gil(db: lw.Connection) -> None:
    ticks = 0
    stop = False

    def tick() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            time.sleep(0.001)

    thread = threading.Thread(target=tick)
    thread.start()
    try:
        db.sql("SELECT count(DISTINCT value % 1000003) FROM generate_series(1, 3000000)").fetchall()
    finally:
        stop = True
        thread.join()
    assert ticks > 5


def test_progress_callback_sees_rows(db: lw.Connection) -> None:
    seen: list[int] = []
    db._inner.load_arrow("t", sample_table(3000), [], [], False, "test", lambda rows, _b: seen.append(rows))
    assert seen and seen[-1] == 3000


def test_two_connections_share_tables(db: lw.Connection) -> None:
    db.load("t", sample_table(10))
    other = lw.Connection(db._inner.new_session())
    assert other.sql("SELECT count(*) FROM t").fetchone() == (10,)


def test_memory_is_a_private_in_memory_database(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = lw.connect(":memory:")
    second = lw.connect(":memory:")
    first.sql("CREATE TABLE t (id INT PRIMARY KEY)")
    first.sql("INSERT INTO t VALUES (1)")
    # Two instances, each with its own database, and no file in the folder.
    assert first.sql("SELECT count(*) FROM t").fetchall() == [(1,)]
    with pytest.raises(lw.ProgrammingError):
        second.sql("SELECT * FROM t")
    first.close()
    second.close()
    assert list(tmp_path.iterdir()) == []
