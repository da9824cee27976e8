"""How long a cancellation takes to take effect, wherever the statement is.

Each case starts a statement, asks it to stop after a fixed delay (Ctrl-C in
the calling thread, or KILL QUERY from another session), and measures the time
from the request to the moment the statement's call returns with its error.
Writes benchmarks/results/cancel.json. Run on a quiet machine:

    python benchmarks/cancel/run.py
"""

from __future__ import annotations

import _thread
import json
import statistics
import threading
import time
from pathlib import Path

import lakewave as lw
import pyarrow as pa

RESULTS = Path(__file__).resolve().parents[1] / "results"
DELAY = 0.3
ROUNDS = 5
CROSS_JOIN = (
    "SELECT count(DISTINCT a.value + b.value) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"
)


def ctrl_c(run) -> float:
    """Seconds from Ctrl-C to KeyboardInterrupt."""
    asked: list[float] = []

    def interrupt() -> None:
        asked.append(time.perf_counter())
        _thread.interrupt_main()

    timer = threading.Timer(DELAY, interrupt)
    timer.start()
    try:
        run()
    except KeyboardInterrupt:
        return time.perf_counter() - asked[0]
    finally:
        timer.cancel()
    raise RuntimeError("the statement finished before it was interrupted")


def kill_query(db: lw.Connection, victim, run) -> float:
    """Seconds from KILL QUERY (another session) to the victim's error."""
    asked: list[float] = []

    def kill() -> None:
        asked.append(time.perf_counter())
        db.sql(f"KILL QUERY {victim.session_id}")

    timer = threading.Timer(DELAY, kill)
    timer.start()
    try:
        run()
    except lw.QueryInterruptedError:
        return time.perf_counter() - asked[0]
    finally:
        timer.join()
    raise RuntimeError("the statement finished before it was killed")


def rows(n: int):
    ids = pa.array(range(n), pa.int64())
    return pa.table({"id": ids, "v": ids})


def main() -> None:
    db = lw.connect(nodes=2)
    db.sql("CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT)")
    db.insert("big", rows(2_000_000))
    db.sql("CREATE TABLE locked (id INT PRIMARY KEY)")
    victim = db.cursor()

    def generated_load() -> None:
        def batches():
            start = 0
            while True:
                ids = pa.array(range(start, start + 65_536), pa.int64())
                yield pa.record_batch({"id": ids, "v": ids})
                start += 65_536

        reader = pa.RecordBatchReader.from_batches(pa.schema({"id": pa.int64(), "v": pa.int64()}), batches())
        db.load("endless", reader, primary_key="id")

    def row_store_scan() -> None:
        victim.execute("SET use_secondary_engine = OFF")
        victim.execute("SELECT count(*) FROM big a JOIN big b ON a.v % 1000 = b.v % 1000").fetchall()

    holder = db.cursor()

    def lock_wait() -> None:
        holder.execute("BEGIN")
        holder.execute("INSERT INTO locked VALUES (1)")
        try:
            victim.execute("INSERT INTO locked VALUES (2)")
        finally:
            holder.execute("ROLLBACK")

    cases = {
        "ctrl_c_cross_join": lambda: ctrl_c(lambda: db.sql(CROSS_JOIN).fetchall()),
        "kill_query_cross_join": lambda: kill_query(
            db, victim, lambda: victim.execute(CROSS_JOIN).fetchall()
        ),
        "kill_query_row_store_join": lambda: kill_query(db, victim, row_store_scan),
        "kill_query_lock_wait": lambda: kill_query(db, victim, lock_wait),
        "ctrl_c_load": lambda: ctrl_c(generated_load),
    }
    out: dict[str, dict[str, float]] = {}
    for name, case in cases.items():
        seconds = [case() for _ in range(ROUNDS)]
        out[name] = {
            "median_s": round(statistics.median(seconds), 4),
            "max_s": round(max(seconds), 4),
        }
        print(
            f"{name:28} median {out[name]['median_s'] * 1000:7.1f} ms   max {out[name]['max_s'] * 1000:7.1f} ms"
        )
        # The instance goes on serving after every cancel.
        assert db.sql("SELECT count(*) FROM big").fetchone() == (2_000_000,)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cancel.json").write_text(
        json.dumps({"delay_s": DELAY, "rounds": ROUNDS, "cases": out}, indent=2)
    )


if __name__ == "__main__":
    main()
