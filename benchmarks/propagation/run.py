"""Change propagation: sustained DML on the row store with propagation off
(the table is not loaded) and on (loaded, every change propagated).

Reports, into benchmarks/results/propagation.json and .md:
- the writer's changed rows per second, off and on, and their ratio
  (target: on >= 90% of off);
- the changed rows per second the propagator applies to the cluster
  (target: >= 100k/s);
- the freshness lag from commit to visibility in the cluster, p50/p99, seen by
  a second connection polling the cluster (target: p99 <= 300 ms).

Figures, not assertions. Python's own sqlite3 module writing the same rows
gives a reference for the row store's raw speed.

    python benchmarks/propagation/run.py --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

import lakewave as lw
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
BATCH = 2_000
PRELOAD = 200_000


def setup(path: Path, load: bool, interval: str = "200ms") -> lw.Connection:
    # Read-your-writes is off so that the poller measures the background
    # propagation itself, not a flush it forced.
    db = lw.connect(path, config={"read_your_writes": "false", "propagation_interval": interval})
    db.sql("CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, s TEXT)")
    db.sql("CREATE TABLE marks (id BIGINT PRIMARY KEY, at DOUBLE NOT NULL)")
    ids = pa.array(range(PRELOAD), pa.int64())
    db.insert("t", pa.table({"id": ids, "v": ids, "s": pa.array([f"row {i}" for i in range(PRELOAD)])}))
    db.insert("marks", pa.table({"id": [0], "at": [time.time()]}))
    if load:
        db.sql("ALTER TABLE t SECONDARY_LOAD")
        db.sql("ALTER TABLE marks SECONDARY_LOAD")
    return db


def write_for(db: lw.Connection, seconds: float, marks: list[tuple[int, float]]) -> dict:
    """Mixed DML in transactions of BATCH changed rows: inserts, updates,
    deletes. After each commit, a marker row records the commit time."""
    changed = 0
    next_id = PRELOAD
    step = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        kind = step % 3
        if kind == 0:
            ids = pa.array(range(next_id, next_id + BATCH), pa.int64())
            db.insert("t", pa.table({"id": ids, "v": ids, "s": pa.array(["new"] * BATCH)}))
            next_id += BATCH
            changed += BATCH
        elif kind == 1:
            lo = (step * 7919) % max(next_id - BATCH, 1)
            changed += db.sql(f"UPDATE t SET v = v + 1 WHERE id >= {lo} AND id < {lo + BATCH}").fetchone()[0]
        else:
            lo = (step * 104729) % max(next_id - BATCH, 1)
            changed += db.sql(f"DELETE FROM t WHERE id >= {lo} AND id < {lo + BATCH // 4}").fetchone()[0]
        step += 1
        db.sql(f"INSERT INTO marks VALUES ({step}, {time.time()})")
        marks.append((step, time.time()))
    elapsed = time.perf_counter() - started
    return {"changed_rows": changed, "seconds": elapsed, "rows_per_second": changed / elapsed}


def sqlite_reference(path: Path, seconds: float) -> float:
    """Python's sqlite3 inserting BATCH-row transactions into a WAL database."""
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, s TEXT) STRICT")
    changed = 0
    next_id = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        with raw:
            raw.executemany(
                "INSERT INTO t VALUES (?, ?, 'new')", ((i, i) for i in range(next_id, next_id + BATCH))
            )
        next_id += BATCH
        changed += BATCH
    return changed / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    out: dict = {"batch_rows": BATCH, "preloaded_rows": PRELOAD, "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        off_db = setup(Path(tmp) / "off.db", load=False)
        out["writer_off"] = write_for(off_db, args.seconds, [])
        off_db.close()

        on_db = setup(Path(tmp) / "on.db", load=True)
        poller = on_db._inner.new_session()
        marks: list[tuple[int, float]] = []
        seen: dict[int, float] = {}
        stop = threading.Event()

        def poll() -> None:
            # Visibility in the cluster: the largest marker id offloaded.
            last = 0
            while not stop.is_set():
                (top,) = poller.sql("SELECT max(id) FROM marks").rows()[0]
                now = time.time()
                for k in range(last + 1, (top or 0) + 1):
                    seen[k] = now
                last = max(last, top or 0)
                time.sleep(0.005)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        stats_before = dict(on_db.sql("SELECT * FROM performance_schema.global_status").fetchall())
        started = time.perf_counter()
        out["writer_on"] = write_for(on_db, args.seconds, marks)
        # Let propagation drain, then read how much the propagator applied.
        deadline = time.time() + 30
        while marks and marks[-1][0] not in seen and time.time() < deadline:
            time.sleep(0.01)
        drained = time.perf_counter() - started
        stop.set()
        thread.join()
        stats_after = dict(on_db.sql("SELECT * FROM performance_schema.global_status").fetchall())
        applied = int(stats_after["rapid_change_propagation_changes"]) - int(
            stats_before["rapid_change_propagation_changes"]
        )
        lags = sorted((seen[k] - t) * 1000 for k, t in marks if k in seen)
        out["propagated"] = {
            "changed_keys_applied": applied,
            "seconds_until_drained": drained,
            "applied_rows_per_second": applied / drained,
            "batches": int(stats_after["rapid_change_propagation_batches"])
            - int(stats_before["rapid_change_propagation_batches"]),
        }
        out["lag_ms"] = {
            "samples": len(lags),
            "p50": statistics.median(lags) if lags else None,
            "p99": lags[int(len(lags) * 0.99) - 1] if len(lags) >= 100 else (lags[-1] if lags else None),
            "max": lags[-1] if lags else None,
        }
        # The marker table catching up does not mean t has: each table is
        # published on its own. Compare once everything is applied.
        on_db.sync()
        on_rows = on_db.sql("SELECT count(*), sum(v) FROM t").fetchone()
        on_db.sql("SET use_secondary_engine = OFF")
        off_rows = on_db.sql("SELECT count(*), sum(v) FROM t").fetchone()
        out["cluster_equals_row_store"] = on_rows == off_rows
        # Capacity: a backlog written while propagation waits (a 1-hour
        # interval), then applied in one go by sync().
        burst_db = setup(Path(tmp) / "burst.db", load=True, interval="3600s")
        written = write_for(burst_db, min(args.seconds, 10), [])
        stats_before = dict(burst_db.sql("SELECT * FROM performance_schema.global_status").fetchall())
        started = time.perf_counter()
        burst_db.sync()
        seconds = time.perf_counter() - started
        stats_after = dict(burst_db.sql("SELECT * FROM performance_schema.global_status").fetchall())
        keys = int(stats_after["rapid_change_propagation_changes"]) - int(
            stats_before["rapid_change_propagation_changes"]
        )
        out["burst"] = {
            "changed_rows_written": written["changed_rows"],
            "distinct_keys_applied": keys,
            "seconds": seconds,
            "keys_per_second": keys / seconds,
        }
        del burst_db
        out["sqlite3_reference_insert_rows_per_second"] = sqlite_reference(
            Path(tmp) / "raw.db", min(args.seconds, 10)
        )
    out["writer_ratio_on_off"] = out["writer_on"]["rows_per_second"] / out["writer_off"]["rows_per_second"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "propagation.json").write_text(json.dumps(out, indent=2))
    lag = out["lag_ms"]
    md = [
        "# Change propagation",
        "",
        f"Mixed DML (inserts, updates, deletes; {BATCH} changed rows per transaction) for {args.seconds:g} s "
        f"on a table of {PRELOAD:,} rows preloaded, file database in WAL mode.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| writer, propagation off | {out['writer_off']['rows_per_second']:,.0f} changed rows/s | |",
        f"| writer, propagation on | {out['writer_on']['rows_per_second']:,.0f} changed rows/s | |",
        f"| writer on / off | {out['writer_ratio_on_off']:.0%} | >= 90% |",
        f"| applied to the cluster | {out['propagated']['applied_rows_per_second']:,.0f} changed rows/s "
        f"({out['propagated']['batches']} batches) | >= 100k/s |",
        f"| propagator capacity: a backlog of {out['burst']['distinct_keys_applied']:,} changed keys applied in one batch | "
        f"{out['burst']['keys_per_second']:,.0f} keys/s ({out['burst']['seconds']:.2f} s) | >= 100k/s |",
        f"| lag commit -> visible in cluster, p50 | {lag['p50']:.0f} ms | |"
        if lag["p50"] is not None
        else "",
        f"| lag p99 (max) | {lag['p99']:.0f} ms ({lag['max']:.0f} ms) | <= 300 ms |"
        if lag["p99"] is not None
        else "",
        f"| cluster equals row store afterwards | {out['cluster_equals_row_store']} | |",
        f"| reference: Python sqlite3 inserts | {out['sqlite3_reference_insert_rows_per_second']:,.0f} rows/s | |",
        "",
    ]
    (RESULTS / "propagation.md").write_text("\n".join(line for line in md if line is not None) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
