"""TPC-H side by side: lakewave, DuckDB, datafusion-python and Polars.

Each engine runs in its own process (so its peak memory is its own): it loads
the Parquet files into memory, runs the 22 queries `--runs` times, and reports
load time, per-query medians, peak RSS and its answers. Each engine is loaded
and queried as its users do it (lakewave `load()`, DuckDB `CREATE TABLE AS
read_parquet`, datafusion-python's own `read_parquet(...).cache()`, Polars
`read_parquet`), and what is timed returns the result as Arrow (Polars: its
Arrow-backed frame); the answers are turned into rows afterwards and checked
against DuckDB's. Results go to benchmarks/results/tpch-sf{N}.json and .md, with
a chart. Figures, not assertions.

    python benchmarks/tpch/run.py --scale 1 --runs 3
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
QUERIES = HERE / "queries"
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
# Primary keys, and placement keys that co-locate lineitem with orders.
_TABLES = json.loads((HERE / "tables.json").read_text())
KEYS: dict[str, list[str]] = _TABLES["primary_keys"]
PLACEMENT: dict[str, list[str]] = _TABLES["placement"]
TABLES = sorted(KEYS)
ENGINES = ["lakewave", "duckdb", "datafusion", "polars"]


def generate(scale: float) -> Path:
    out = DATA / f"sf{scale:g}"
    if not (out / "lineitem.parquet").exists():
        out.mkdir(parents=True, exist_ok=True)
        cli = shutil.which("tpchgen-cli")
        if not cli:
            sys.exit("pip install tpchgen-cli")
        subprocess.run([cli, "parquet", "-s", str(scale), "--output-dir", str(out)], check=True)
    return out


def normalise(value: object) -> object:
    if isinstance(value, (decimal.Decimal, int)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date()
    return value


def same_rows(a: list, b: list, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> bool:
    if len(a) != len(b):
        return False
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            x, y = normalise(x), normalise(y)
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol):
                    return False
            elif x != y:
                return False
    return True


# --- engines ------------------------------------------------------------------
# Each returns (load, run, rows_of, resident): `run(sql)` is what is timed and
# returns the result as that engine's users get it (Arrow, or Polars' Arrow-
# backed frame); `rows_of(result)` turns it into row tuples for the answer
# check, outside the timing.


def lakewave_engine(data: Path, threads: int):
    import lakewave as lw

    # LAKEWAVE_BENCH_CONFIG="memory_per_node=18GiB,query_memory=4GiB" sizes the cluster.
    options = dict(kv.split("=", 1) for kv in os.environ.get("LAKEWAVE_BENCH_CONFIG", "").split(",") if kv)
    db = lw.connect(threads=threads, config=options)

    def load():
        for t in TABLES:
            db.load(t, data / f"{t}.parquet", primary_key=KEYS[t], partition_by=PLACEMENT.get(t))

    def resident() -> int:
        return sum(t["bytes"] for t in db.tables())

    return load, lambda sql: db.sql(sql).arrow(), arrow_rows, resident


def duckdb_engine(data: Path, threads: int):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")

    def load():
        for t in TABLES:
            con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{data / (t + '.parquet')}')")

    return load, lambda sql: con.execute(sql).to_arrow_table(), arrow_rows, None


def datafusion_engine(data: Path, threads: int):
    import datafusion

    config = datafusion.SessionConfig().with_target_partitions(threads)
    ctx = datafusion.SessionContext(config)

    def load():
        # As its users keep data in memory: its own Parquet reader, cached.
        for t in TABLES:
            ctx.register_view(t, ctx.read_parquet(str(data / f"{t}.parquet")).cache())

    return load, lambda sql: ctx.sql(sql).to_arrow_table(), arrow_rows, None


def polars_engine(data: Path, threads: int):
    import polars as pl

    ctx = pl.SQLContext()

    def load():
        for t in TABLES:
            ctx.register(t, pl.read_parquet(data / f"{t}.parquet").lazy())

    return load, lambda sql: ctx.execute(sql).collect(), lambda frame: frame.rows(), None


def arrow_rows(table) -> list[tuple]:
    columns = [column.to_pylist() for column in table.columns]
    return list(zip(*columns, strict=True)) if columns else []


def run_engine(name: str, data: Path, runs: int, threads: int, out_path: Path) -> dict:
    make = {
        "lakewave": lakewave_engine,
        "duckdb": duckdb_engine,
        "datafusion": datafusion_engine,
        "polars": polars_engine,
    }[name]
    load, run, rows_of, resident = make(data, threads)
    started = time.perf_counter()
    load()
    out: dict = {"engine": name, "load_s": time.perf_counter() - started, "queries": {}}
    if resident:
        out["resident_bytes"] = resident()
    for number in range(1, 23):
        sql = (QUERIES / f"q{number}.sql").read_text()
        times = []
        try:
            for _ in range(runs):
                t0 = time.perf_counter()
                result = run(sql)
                times.append(time.perf_counter() - t0)
            rows = rows_of(result)
            out["queries"][number] = {
                "median_s": statistics.median(times),
                "rows": [list(map(repr_value, r)) for r in rows],
            }
        except Exception as error:  # an engine that cannot run a query is a finding, not a crash
            out["queries"][number] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
        print(
            f"{name} q{number}: {out['queries'][number].get('median_s', 'error')}",
            file=sys.stderr,
            flush=True,
        )
        # Save as we go: an engine killed for lack of memory keeps what it finished.
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out_path.write_text(json.dumps(out))
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def repr_value(value: object) -> object:
    value = normalise(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def check_answers(results: dict) -> None:
    """Compare every engine's answers with DuckDB's, keep the verdict and drop
    the rows: the results files hold figures, not answers."""
    reference = results.get("duckdb", {}).get("queries", {})
    for engine in results.values():
        for q, r in engine.get("queries", {}).items():
            want = (reference.get(q) or {}).get("rows")
            if "rows" in r and want is not None:
                r["matches_duckdb"] = same_rows(r["rows"], want)
    for engine in results.values():
        for r in engine.get("queries", {}).values():
            r.pop("rows", None)


def summarise(scale: float, results: dict, data: Path) -> str:
    parquet = sum(f.stat().st_size for f in data.glob("*.parquet"))
    lines = [
        f"# TPC-H SF{scale:g} — {datetime.date.today()}",
        "",
        f"Machine: {os.cpu_count()} cores. Parquet size: {parquet / 2**20:.0f} MiB. "
        "Medians in seconds; ✗ = failed, ≠ = answer differs from DuckDB's.",
        "",
    ]
    engines = [e for e in ENGINES if e in results]
    lines.append("| query | " + " | ".join(engines) + " |")
    lines.append("|---" * (len(engines) + 1) + "|")
    totals = {e: 0.0 for e in engines}
    complete = {e: True for e in engines}
    for q in range(1, 23):
        cells = []
        for e in engines:
            r = results[e].get("queries", {}).get(str(q)) or results[e].get("queries", {}).get(q)
            if not r or "error" in r:
                cells.append("✗")
                complete[e] = False
                continue
            totals[e] += r["median_s"]
            mark = " ≠" if r.get("matches_duckdb") is False else ""
            cells.append(f"{r['median_s']:.3f}{mark}")
        lines.append(f"| Q{q} | " + " | ".join(cells) + " |")
    lines.append(
        "| **total** | "
        + " | ".join(f"**{totals[e]:.2f}**" + ("" if complete[e] else " (incomplete)") for e in engines)
        + " |"
    )
    lines.append(
        "| load (s) | " + " | ".join(f"{results[e].get('load_s', float('nan')):.2f}" for e in engines) + " |"
    )
    lines.append(
        "| peak RSS (MiB) | "
        + " | ".join(f"{results[e].get('peak_rss_bytes', 0) / 2**20:.0f}" for e in engines)
        + " |"
    )
    if "resident_bytes" in results.get("lakewave", {}):
        held = results["lakewave"]["resident_bytes"]
        lines += [
            "",
            f"lakewave holds the tables in {held / 2**20:.0f} MiB = {held / parquet:.2f}× the Parquet size.",
        ]
    failures = [
        (e, q, r["error"]) for e in engines for q, r in results[e].get("queries", {}).items() if "error" in r
    ]
    if failures:
        lines += ["", "Failures:"] + [f"- {e} Q{q}: {err}" for e, q, err in failures]
    for e in engines:
        if "crash" in results[e]:
            lines.append(f"- {e}: {results[e]['crash']}")
    return "\n".join(lines) + "\n"


def chart(scale: float, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = [e for e in ENGINES if e in results]
    fig, ax = plt.subplots(figsize=(12, 4))
    width = 0.8 / len(engines)
    for i, e in enumerate(engines):
        qs = results[e].get("queries", {})
        values = [(qs.get(str(q)) or qs.get(q) or {}).get("median_s", 0) for q in range(1, 23)]
        ax.bar([q + i * width for q in range(1, 23)], values, width, label=e)
    ax.set_xticks([q + 0.4 - width / 2 for q in range(1, 23)], [f"Q{q}" for q in range(1, 23)])
    ax.set_ylabel("median seconds")
    ax.set_title(f"TPC-H SF{scale:g}, data in memory")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = generate(args.scale)
    if args.engine:
        out_path = Path(args.out)
        out_path.write_text(json.dumps(run_engine(args.engine, data, args.runs, args.threads, out_path)))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {}
    for engine in args.engines.split(","):
        out = RESULTS / f".tpch-{engine}.json"
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--scale",
                str(args.scale),
                "--runs",
                str(args.runs),
                "--threads",
                str(args.threads),
                "--engine",
                engine,
                "--out",
                str(out),
            ]
        )
        partial = json.loads(out.read_text()) if out.exists() else {"queries": {}}
        out.unlink(missing_ok=True)
        if proc.returncode != 0:
            done = len(partial.get("queries", {}))
            partial["crash"] = f"process exited with {proc.returncode} (out of memory?) after {done} queries"
        results[engine] = partial
    check_answers(results)
    # Not Path.with_suffix: a scale such as 0.01 would lose its ".01".
    stem = f"tpch-sf{args.scale:g}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1))
    summary = summarise(args.scale, results, data)
    chart(args.scale, results, RESULTS / f"{stem}.png")
    (RESULTS / f"{stem}.md").write_text(summary + f"\n![chart]({stem}.png)\n")
    print(summary)


if __name__ == "__main__":
    main()
