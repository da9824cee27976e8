"""External tables on S3, through a real S3 API server on localhost (moto in
server mode, started and stopped here): Parquet and Delta, in place and
loaded, refresh after a new Delta commit, bad credentials, and two lakewave
instances in separate processes over the same bucket."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import lakewave as lw
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import moto_bucket

pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
deltalake = pytest.importorskip("deltalake")

BUCKET = "lake"


@pytest.fixture(scope="module")
def s3():
    with moto_bucket(BUCKET) as bucket:
        yield bucket


def test_parquet_on_s3_in_place_and_loaded(s3, tmp_path) -> None:
    client, options = s3.client, s3.options
    for i in range(3):
        local = tmp_path / f"p{i}.parquet"
        pq.write_table(pa.table({"id": [i * 10 + k for k in range(10)], "v": [float(i)] * 10}), local)
        client.upload_file(str(local), BUCKET, f"orders/p{i}.parquet")
    db = lw.connect()
    db.create_external_table("orders", f"s3://{BUCKET}/orders/", storage_options=options)
    assert db.sql("SELECT count(*), sum(v) FROM orders").fetchone() == (30, 30.0)
    db.sql("ALTER TABLE orders SECONDARY_LOAD")
    assert "cluster" in db.sql("EXPLAIN SELECT count(*) FROM orders").fetchone()[1]
    assert db.sql("SELECT count(*), sum(v) FROM orders").fetchone() == (30, 30.0)


def test_wrong_credentials_are_an_error_that_hides_the_secret(s3) -> None:
    options = s3.options
    bad = dict(options, secret_access_key="s3cr3t-value", endpoint="http://127.0.0.1:1")
    db = lw.connect()
    with pytest.raises(lw.Error) as raised:
        db.create_external_table("t", f"s3://{BUCKET}/orders/", storage_options=bad)
    assert "s3cr3t-value" not in str(raised.value)
    assert "main.t" in str(raised.value)
    with pytest.raises(lw.OperationalError, match="nonsense"):
        db.create_external_table("t", f"s3://{BUCKET}/orders/", storage_options={"nonsense": "1"})


def test_delta_on_s3_refresh_after_a_commit(s3) -> None:
    options = s3.options
    uri = f"s3://{BUCKET}/delta/events"
    write = deltalake.write_deltalake
    write(uri, pa.table({"id": [1, 2, 3], "kind": ["a", "b", "c"]}), storage_options=s3.delta_options)
    db = lw.connect()
    db.create_external_table("events", uri, format="delta", storage_options=options)
    db.sql("ALTER TABLE events SECONDARY_LOAD")
    assert db.sql("SELECT count(*) FROM events").fetchone() == (3,)
    write(
        uri,
        pa.table({"id": [4], "kind": ["d"]}),
        mode="append",
        storage_options=s3.delta_options,
    )
    db.sql("SET @options = JSON_OBJECT('mode', 'normal', 'refresh_external_tables', TRUE)")
    status = db.sql(
        'CALL sys.HEATWAVE_LOAD(CAST(\'[{"db_name": "main", "tables": [{"table_name": "events"}]}]\' AS JSON), @options)'
    ).fetchall()
    assert status == [("main.events", "refreshed to version 1 (1 file added, 0 removed)")]
    assert db.sql("SELECT count(*), max(kind) FROM events").fetchone() == (4, "d")
    (row,) = [t for t in db.loaded_tables() if t["name"] == "main.events"]
    assert row["snapshot_scn"] == 1


CHILD = textwrap.dedent(
    """
    import json, sys
    import lakewave as lw
    name, uri, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    db = lw.connect(config={"instance_name": name})
    db.create_external_table("t", uri, format="delta", storage_options=options)
    db.sql("ALTER TABLE t SECONDARY_LOAD")
    query = "SELECT @@hostname"
    for line in sys.stdin:
        if line.strip() == "refresh":
            db.sql("SET @o = JSON_OBJECT('refresh_external_tables', TRUE)")
            db.sql("CALL sys.HEATWAVE_LOAD(JSON_ARRAY(JSON_OBJECT('db_name', 'main')), @o)")
        host = db.sql("SELECT @@hostname").fetchone()[0]
        rows = db.sql("SELECT id, kind FROM t ORDER BY id").fetchall()
        print(json.dumps({"host": host, "rows": rows}), flush=True)
    """
)


def test_two_instances_over_one_bucket(s3, tmp_path) -> None:
    import json

    options = s3.options
    uri = f"s3://{BUCKET}/delta/shared"
    deltalake.write_deltalake(
        uri, pa.table({"id": [1, 2], "kind": ["x", "y"]}), storage_options=s3.delta_options
    )
    script = tmp_path / "instance.py"
    script.write_text(CHILD)
    children = [
        subprocess.Popen(
            [sys.executable, str(script), name, uri, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("lakewave-a", "lakewave-b")
    ]

    def ask(child: subprocess.Popen, line: str) -> dict:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(line + "\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    try:
        first = [ask(c, "query") for c in children]
        assert [f["host"] for f in first] == ["lakewave-a", "lakewave-b"]
        assert first[0]["rows"] == first[1]["rows"] == [[1, "x"], [2, "y"]]
        deltalake.write_deltalake(
            uri, pa.table({"id": [3], "kind": ["z"]}), mode="append", storage_options=s3.delta_options
        )
        after = [ask(c, "refresh") for c in children]
        assert after[0]["rows"] == after[1]["rows"] == [[1, "x"], [2, "y"], [3, "z"]]
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_load_reads_files_from_s3_with_the_lakehouse_readers(s3, tmp_path) -> None:
    client, options = s3.client, s3.options
    local = tmp_path / "items.parquet"
    pq.write_table(pa.table({"id": list(range(100)), "w": [i % 7 for i in range(100)]}), local)
    client.upload_file(str(local), BUCKET, "direct/items.parquet")
    db = lw.connect(nodes=2)
    info = db.load("items", f"s3://{BUCKET}/direct/items.parquet", primary_key="id", storage_options=options)
    assert info["rows"] == 100
    assert db.sql("SELECT sum(w) FROM items").fetchone() == (sum(i % 7 for i in range(100)),)
    assert db.loaded_tables()[0]["pool_type"] == "SNAPSHOT"
    with pytest.raises(lw.OperationalError) as missing:
        db.load("gone", f"s3://{BUCKET}/direct/nothing/", storage_options=options, format="parquet")
    assert missing.value.errno == 1017
    with pytest.raises(lw.InterfaceError):
        db.load("x", pa.table({"a": [1]}), storage_options=options)


def test_secrets_never_reach_the_database_file(s3, tmp_path) -> None:
    client, options = s3.client, s3.options
    local = tmp_path / "s.parquet"
    pq.write_table(pa.table({"id": [1, 2]}), local)
    client.upload_file(str(local), BUCKET, "secret/s.parquet")
    path = tmp_path / "secret.db"
    # moto accepts any credentials; these are the ones that must not leak.
    secret = "q'uo\"te\\back-slash-ünïcödé-Ω"
    token = "tok'en\\Ω-session"
    db = lw.connect(path)
    db.create_external_table(
        "s",
        f"s3://{BUCKET}/secret/",
        storage_options={**options, "secret_access_key": secret, "session_token": token},
    )
    escaped = secret.replace("'", "''")
    db.sql(
        f"CREATE EXTERNAL TABLE s2 FILE_FORMAT = (FORMAT parquet) FILES = (URI 's3://{BUCKET}/secret/') "
        f"STORAGE_OPTIONS = ('endpoint' '{s3.endpoint}', 'access_key_id' 'test', 'region' 'us-east-1', "
        f"'allow_http' 'true', 'secret_access_key' '{escaped}')"
    )
    db.sql("ALTER TABLE s2 SECONDARY_LOAD")
    assert db.sql("SELECT count(*) FROM s2").fetchone() == (2,)
    with pytest.raises(lw.Error) as failed:
        db.sql(
            f"CREATE EXTERNAL TABLE s3 FILE_FORMAT = (FORMAT nope) FILES = (URI 'x') "
            f"STORAGE_OPTIONS = ('secret_access_key' '{escaped}')"
        )
    assert secret not in str(failed.value) and escaped not in str(failed.value)
    db.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("secret.db"))
    assert b"us-east-1" in data, "the definitions are in the file"
    for value in (secret, escaped, token, "q'uo", "ünïcödé"):
        assert value.encode() not in data, f"{value!r} reached the database file"
