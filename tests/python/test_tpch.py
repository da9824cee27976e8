"""All 22 TPC-H queries at scale factor 0.01, checked against DuckDB."""

from __future__ import annotations

import datetime
import decimal
import math
from pathlib import Path

import duckdb
import lakewave as lw
import pytest
from conftest import PRIMARY_KEYS, QUERIES, TPCH_TABLES


@pytest.fixture(scope="module")
def oracle(tpch_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for table in TPCH_TABLES:
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{tpch_dir / (table + '.parquet')}')"
        )
    return con


def normalise(value: object) -> object:
    if isinstance(value, (decimal.Decimal, int)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime.datetime):
        return value.date() if value.time() == datetime.time() else value
    return value


def same(a: object, b: object) -> bool:
    a, b = normalise(a), normalise(b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    return a == b


@pytest.mark.parametrize("number", range(1, 23))
def test_tpch_query_matches_duckdb(
    number: int, tpch_db: lw.Connection, oracle: duckdb.DuckDBPyConnection
) -> None:
    query = (QUERIES / f"q{number}.sql").read_text()
    got = tpch_db.sql(query).fetchall()
    expected = oracle.execute(query).fetchall()
    assert len(got) == len(expected), f"q{number}: {len(got)} rows, DuckDB has {len(expected)}"
    for i, (row, want) in enumerate(zip(got, expected, strict=True)):
        assert len(row) == len(want)
        assert all(same(a, b) for a, b in zip(row, want, strict=True)), f"q{number} row {i}: {row} != {want}"


def test_tpch_tables_are_loaded_compactly(tpch_db: lw.Connection, tpch_dir: Path) -> None:
    tables = {t["table"]: t for t in tpch_db.tables()}
    assert tables["lineitem"]["rows"] == 60175
    assert "l_returnflag" in tables["lineitem"]["dictionary_columns"]
    assert "l_shipmode" in tables["lineitem"]["dictionary_columns"]
    assert sum(n["memory_used"] for n in tpch_db.nodes()) == sum(t["bytes"] for t in tables.values())


@pytest.fixture(scope="module")
def tpch_row_store(tpch_dir: Path) -> lw.Connection:
    """The same data in the row store, with MySQL types and keys, loaded."""
    import pyarrow.parquet as pq

    types = {
        "int32": "INT",
        "int64": "BIGINT",
        "string": "VARCHAR(200)",
        "string_view": "VARCHAR(200)",
        "date32[day]": "DATE",
        "double": "DOUBLE",
    }
    db = lw.connect(nodes=2, threads=2)
    for table in TPCH_TABLES:
        arrow = pq.read_table(tpch_dir / f"{table}.parquet")
        columns = ", ".join(
            f"{f.name} {types.get(str(f.type), str(f.type).replace('decimal128', 'DECIMAL'))} NOT NULL"
            for f in arrow.schema
        )
        db.sql(f"CREATE TABLE {table} ({columns}, PRIMARY KEY ({', '.join(PRIMARY_KEYS[table])}))")
        db.insert(table, arrow)
        db.sql(f"ALTER TABLE {table} SECONDARY_LOAD")
    return db


@pytest.mark.parametrize("number", range(1, 23))
def test_tpch_query_same_on_the_row_store_and_offloaded(
    number: int, tpch_row_store: lw.Connection, oracle: duckdb.DuckDBPyConnection
) -> None:
    query = (QUERIES / f"q{number}.sql").read_text()
    tpch_row_store.sql("SET use_secondary_engine = FORCED")
    offloaded = tpch_row_store.sql(query).fetchall()
    tpch_row_store.sql("SET use_secondary_engine = OFF")
    on_row_store = tpch_row_store.sql(query).fetchall()
    tpch_row_store.sql("SET use_secondary_engine = ON")
    assert offloaded == on_row_store, f"q{number}: the engines disagree"
    expected = oracle.execute(query).fetchall()
    assert len(offloaded) == len(expected)
    for row, want in zip(offloaded, expected, strict=True):
        assert all(same(a, b) for a, b in zip(row, want, strict=True)), f"q{number}: {row} != {want}"
