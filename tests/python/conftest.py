from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import lakewave as lw
import pytest

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "benchmarks" / "tpch" / "queries"
# The TPC-H keys the benchmark uses; lineitem is placed by its join key with
# orders, so co-located joins are tested.
_TPCH = json.loads((ROOT / "benchmarks" / "tpch" / "tables.json").read_text())
PRIMARY_KEYS: dict[str, list[str]] = _TPCH["primary_keys"]
PLACEMENT: dict[str, list[str]] = _TPCH["placement"]
TPCH_TABLES = sorted(PRIMARY_KEYS)

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
