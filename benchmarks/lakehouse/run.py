"""Lakehouse: loading external tables into the cluster, queries in place versus
loaded, and refresh after a small change, side by side with DuckDB and delta-rs.

- Load throughput (MB/s of Parquet and rows/s) of TPC-H lineitem from Parquet
  and from a Delta table (written here with delta-rs): lakewave's
  `SECONDARY_LOAD` of an external table, DuckDB's `CREATE TABLE AS SELECT *
  FROM read_parquet(...)` (over the Delta table's data files for Delta: DuckDB's
  delta extension cannot be downloaded here), and delta-rs's
  `DeltaTable.to_pyarrow_table()`.
- The 22 TPC-H queries over external Parquet tables in place and loaded.
- Refresh after a 1% change (a Delta append commit; a Parquet file added to
  a folder) versus a full reload (target: >= 20x faster), and a refresh when
  nothing changed.

Results go to benchmarks/results/lakehouse-sf{N}.json and .md. Figures, not
assertions.

    python benchmarks/lakehouse/run.py --scale 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import lakewave as lw
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "tpch"))
from run import QUERIES, TABLES, generate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def best(seconds: list[float]) -> float:
    return min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import deltalake

    data = generate(args.scale)
    lineitem = data / "lineitem.parquet"
    parquet_mb = lineitem.stat().st_size / 1e6
    rows = pq.ParquetFile(lineitem).metadata.num_rows
    out: dict = {"scale": args.scale, "lineitem_rows": rows, "lineitem_parquet_mb": parquet_mb}
    with tempfile.TemporaryDirectory() as tmp:
        delta_path = Path(tmp) / "lineitem_delta"
        started = time.perf_counter()
        deltalake.write_deltalake(str(delta_path), pq.read_table(lineitem))
        out["delta_write_seconds"] = time.perf_counter() - started
        delta_mb = sum(f.stat().st_size for f in delta_path.glob("*.parquet")) / 1e6

        loads: dict[str, dict] = {}

        def record(engine: str, source: str, mb: float, runs: list[float]) -> None:
            seconds = best(runs)
            loads[f"{engine} from {source}"] = {
                "seconds": seconds,
                "mb_per_second": mb / seconds,
                "rows_per_second": rows / seconds,
            }
            print(
                f"{engine:>9} from {source:<7}: {seconds:6.2f} s  {mb / seconds:7.1f} MB/s  {rows / seconds:12,.0f} rows/s",
                flush=True,
            )

        # lakewave: define once, SECONDARY_LOAD (unload between runs).
        for source, ddl in [
            (
                "parquet",
                f"CREATE EXTERNAL TABLE li FILE_FORMAT = (FORMAT parquet) FILES = (URI '{lineitem}')",
            ),
            ("delta", f"CREATE EXTERNAL TABLE li FILE_FORMAT = (FORMAT delta) FILES = (URI '{delta_path}')"),
        ]:
            db = lw.connect()
            db.sql(ddl)
            runs = []
            for _ in range(args.runs):
                started = time.perf_counter()
                db.sql("ALTER TABLE li SECONDARY_LOAD")
                runs.append(time.perf_counter() - started)
                db.sql("ALTER TABLE li SECONDARY_UNLOAD")
            record("lakewave", source, parquet_mb if source == "parquet" else delta_mb, runs)
            db.close()
        for source, glob in [("parquet", str(lineitem)), ("delta", f"{delta_path}/*.parquet")]:
            runs = []
            for _ in range(args.runs):
                con = duckdb.connect()
                started = time.perf_counter()
                con.execute(f"CREATE TABLE li AS SELECT * FROM read_parquet('{glob}')")
                runs.append(time.perf_counter() - started)
                con.close()
            record("duckdb", source, parquet_mb if source == "parquet" else delta_mb, runs)
        runs = []
        for _ in range(args.runs):
            started = time.perf_counter()
            deltalake.DeltaTable(str(delta_path)).to_pyarrow_table()
            runs.append(time.perf_counter() - started)
        record("delta-rs", "delta", delta_mb, runs)
        out["loads"] = loads

        # TPC-H over external Parquet tables: in place, then loaded.
        db = lw.connect()
        for table in TABLES:
            db.sql(
                f"CREATE EXTERNAL TABLE {table} FILE_FORMAT = (FORMAT parquet) FILES = (URI '{data / (table + '.parquet')}')"
            )
        queries: dict[str, dict] = {}
        for phase in ["in_place", "loaded"]:
            if phase == "loaded":
                for table in TABLES:
                    db.sql(f"ALTER TABLE {table} SECONDARY_LOAD")
            for n in range(1, 23):
                sql = (QUERIES / f"q{n}.sql").read_text()
                runs = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    db.sql(sql).fetchall()
                    runs.append(time.perf_counter() - started)
                queries.setdefault(f"q{n}", {})[phase] = best(runs)
            print(f"TPC-H {phase}: {sum(q[phase] for q in queries.values()):.2f} s", flush=True)
        out["tpch"] = queries
        db.close()

        # Refresh after a 1% change versus a full reload, for a Delta table
        # (a 1% append commit) and a Parquet folder (a 1% file added).
        one_percent = pq.read_table(lineitem).slice(0, rows // 100)
        folder = Path(tmp) / "lineitem_folder"
        folder.mkdir()
        pq.write_table(pq.read_table(lineitem), folder / "base.parquet")
        out["refresh"] = {}
        for source, location in [("delta", delta_path), ("parquet", folder)]:
            db = lw.connect()
            db.sql(f"CREATE EXTERNAL TABLE li FILE_FORMAT = (FORMAT {source}) FILES = (URI '{location}/')")
            db.sql("ALTER TABLE li SECONDARY_LOAD")
            expected = db.sql("SELECT count(*) FROM li").fetchone()[0]
            unchanged, full, refresh = [], [], []
            for run in range(args.runs):
                started = time.perf_counter()
                db.refresh("li")
                unchanged.append(time.perf_counter() - started)
                db.sql("ALTER TABLE li SECONDARY_UNLOAD")
                started = time.perf_counter()
                db.sql("ALTER TABLE li SECONDARY_LOAD")
                full.append(time.perf_counter() - started)
                if source == "delta":
                    deltalake.write_deltalake(str(delta_path), one_percent, mode="append")
                else:
                    pq.write_table(one_percent, folder / f"added-{run}.parquet")
                expected += one_percent.num_rows
                started = time.perf_counter()
                status = db.refresh("li")["main.li"]
                refresh.append(time.perf_counter() - started)
                assert "1 file added, 0 removed" in status, status
                assert db.sql("SELECT count(*) FROM li").fetchone()[0] == expected
            out["refresh"][source] = {
                "full_reload_seconds": best(full),
                "refresh_1pct_seconds": best(refresh),
                "refresh_unchanged_seconds": best(unchanged),
                "speedup": best(full) / best(refresh),
            }
            print(
                f"{source}: full reload {best(full):.2f} s, refresh after a 1% change {best(refresh):.3f} s "
                f"({best(full) / best(refresh):.0f}x), refresh with no change {best(unchanged):.3f} s",
                flush=True,
            )
            db.close()

    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"lakehouse-sf{args.scale:g}"
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    md = [
        f"# Lakehouse, TPC-H SF{args.scale:g} (lineitem: {rows:,} rows, {parquet_mb:.0f} MB of Parquet)",
        "",
        "| load of lineitem | seconds | MB/s | rows/s |",
        "|---|---|---|---|",
    ]
    for key, r in loads.items():
        md.append(f"| {key} | {r['seconds']:.2f} | {r['mb_per_second']:.1f} | {r['rows_per_second']:,.0f} |")
    in_place = sum(q["in_place"] for q in queries.values())
    loaded = sum(q["loaded"] for q in queries.values())
    geo = math.exp(sum(math.log(q["in_place"] / q["loaded"]) for q in queries.values()) / len(queries))
    md += [
        "",
        f"TPC-H 22 queries over external Parquet tables: in place {in_place:.2f} s, loaded {loaded:.2f} s "
        f"(geometric mean speed-up {geo:.1f}x).",
        "",
        "| refresh of lineitem | full reload, s | refresh after a 1% change, s | speed-up (target >= 20x) | refresh, nothing changed, s |",
        "|---|---|---|---|---|",
    ]
    for source, r in out["refresh"].items():
        md.append(
            f"| {source} | {r['full_reload_seconds']:.2f} | {r['refresh_1pct_seconds']:.3f} | "
            f"{r['speedup']:.0f}x | {r['refresh_unchanged_seconds']:.3f} |"
        )
    md.append("")
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
