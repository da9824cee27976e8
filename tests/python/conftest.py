from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import lakewave as lw
import pytest

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "benchmarks" / "tpch" / "queries"
TPCH_TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
PRIMARY_KEYS = {
    "customer": ["c_custkey"],
    "lineitem": ["l_orderkey", "l_linenumber"],
    "nation": ["n_nationkey"],
    "orders": ["o_orderkey"],
    "part": ["p_partkey"],
    "partsupp": ["ps_partkey", "ps_suppkey"],
    "region": ["r_regionkey"],
    "supplier": ["s_suppkey"],
}

# lineitem is placed by its join key with orders, so co-located joins are tested.
PLACEMENT = {"lineitem": ["l_orderkey"]}

os.environ.setdefault("LAKEWAVE_PROGRESS", "0")


@pytest.fixture
def db() -> lw.Connection:
    return lw.connect(nodes=2, threads=2)


@pytest.fixture(scope="session")
def tpch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TPC-H at scale factor 0.01 as Parquet, generated once per run."""
    out = tmp_path_factory.mktemp("tpch")
    cli = shutil.which("tpchgen-cli")
    assert cli, "tpchgen-cli is a test dependency (pip install tpchgen-cli)"
    subprocess.run([cli, "parquet", "-s", "0.01", "--output-dir", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def tpch_db(tpch_dir: Path) -> lw.Connection:
    db = lw.connect(nodes=2, threads=2)
    for table in TPCH_TABLES:
        db.load(
            table,
            tpch_dir / f"{table}.parquet",
            primary_key=PRIMARY_KEYS[table],
            partition_by=PLACEMENT.get(table),
        )
    # At this scale every join would broadcast its build side; force partitioned
    # joins so that hash-placed tables join without a shuffle, as at scale.
    db.sql("SET datafusion.optimizer.hash_join_single_partition_threshold = 0")
    db.sql("SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0")
    return db
