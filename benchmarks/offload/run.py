"""Offload: each TPC-H query on the row store (use_secondary_engine = OFF) and
in the cluster (ON), on the same lakewave instance and the same data.

The TPC-H Parquet files are inserted into row-store tables (declared with
MySQL types and primary keys), loaded with SECONDARY_LOAD, and every query runs
both ways; answers are compared. Reports the time per query, the speed-up and
its geometric mean (target: >= 100x) in benchmarks/results/offload-sf{N}.json
and .md. A query slower than --timeout on the row store is stopped (Ctrl-C
semantics) and its speed-up is then a lower bound. Figures, not assertions.

    python benchmarks/offload/run.py --scale 1
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import tempfile
import time
from pathlib import Path

import lakewave as lw
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "tpch"))
from run import KEYS, QUERIES, TABLES, generate, normalise, same_rows  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def mysql_type(t: pa.DataType) -> str:
    if pa.types.is_int32(t) or pa.types.is_int16(t) or pa.types.is_int8(t):
        return "INT"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "DATETIME"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    return "TEXT"


class Timeout(Exception):
    pass


def timed(db: lw.Connection, sql: str, timeout: float) -> tuple[float, list | None]:
    def alarm(*_: object) -> None:
        raise Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    started = time.perf_counter()
    try:
        rows = db.sql(sql).fetchall()
        return time.perf_counter() - started, rows
    except Timeout:
        return time.perf_counter() - started, None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--runs", type=int, default=3, help="runs of each offloaded query (best kept)")
    args = parser.parse_args()
    data = generate(args.scale)
    out: dict = {"scale": args.scale, "queries": {}}
    with tempfile.TemporaryDirectory() as tmp:
        db = lw.connect(Path(tmp) / "tpch.db")
        started = time.perf_counter()
        rows_in = 0
        for table in TABLES:
            arrow = pq.read_table(data / f"{table}.parquet")
            columns = ", ".join(f"{f.name} {mysql_type(f.type)} NOT NULL" for f in arrow.schema)
            db.sql(f"CREATE TABLE {table} ({columns}, PRIMARY KEY ({', '.join(KEYS[table])}))")
            for batch in arrow.to_batches(max_chunksize=1_000_000):
                db.insert(table, pa.Table.from_batches([batch]))
            rows_in += arrow.num_rows
        out["insert_seconds"] = time.perf_counter() - started
        out["insert_rows_per_second"] = rows_in / out["insert_seconds"]
        started = time.perf_counter()
        for table in TABLES:
            db.sql(f"ALTER TABLE {table} SECONDARY_LOAD")
        out["secondary_load_seconds"] = time.perf_counter() - started
        print(
            f"inserted {rows_in:,} rows in {out['insert_seconds']:.1f}s; loaded in {out['secondary_load_seconds']:.1f}s"
        )
        speedups = []
        for n in range(1, 23):
            sql = (QUERIES / f"q{n}.sql").read_text()
            db.sql("SET use_secondary_engine = ON")
            on_times = []
            on_rows = None
            for _ in range(args.runs):
                seconds, on_rows = timed(db, sql, args.timeout)
                on_times.append(seconds)
            on = min(on_times)
            db.sql("SET use_secondary_engine = OFF")
            off, off_rows = timed(db, sql, args.timeout)
            finished = off_rows is not None
            same = None
            if finished and on_rows is not None:
                same = same_rows(
                    [tuple(map(normalise, r)) for r in on_rows], [tuple(map(normalise, r)) for r in off_rows]
                )
            speedup = off / on
            speedups.append(speedup)
            out["queries"][f"q{n}"] = {
                "row_store_seconds": off,
                "row_store_finished": finished,
                "cluster_seconds": on,
                "speedup": speedup,
                "same_answer": same,
            }
            print(
                f"q{n:>2}: row store {off:8.2f}s{'' if finished else '+'}  cluster {on:7.3f}s  "
                f"x{speedup:8.1f}  same={same}",
                flush=True,
            )
    out["geomean_speedup"] = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"offload-sf{args.scale:g}"
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    md = [
        f"# Offload: TPC-H SF{args.scale:g}, row store (OFF) vs cluster (ON)",
        "",
        f"Rows inserted into the row store: {out['insert_rows_per_second']:,.0f} rows/s "
        f"({out['insert_seconds']:.0f} s); SECONDARY_LOAD of all tables: {out['secondary_load_seconds']:.1f} s.",
        "",
        "| query | row store (s) | cluster (s) | speed-up | same answer |",
        "|---|---|---|---|---|",
    ]
    for q, r in out["queries"].items():
        bound = "" if r["row_store_finished"] else " (stopped; lower bound)"
        md.append(
            f"| {q} | {r['row_store_seconds']:.2f}{bound} | {r['cluster_seconds']:.3f} | "
            f"{r['speedup']:.1f}x | {r['same_answer']} |"
        )
    md += ["", f"Geometric mean speed-up: **{out['geomean_speedup']:.1f}x** (target >= 100x).", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
