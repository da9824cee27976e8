"""An HA group's figures, against a single instance, in one run.

A group of three voting members and two read replicas (`lakewave group init`
and `group start`, with Debian's HAProxy in front) on loopback, and one
`lakewave serve` process with a database file. Reports, into
benchmarks/results/ha.json and .md:

- commit throughput and latency (autocommit INSERTs through PyMySQL, one and
  four clients) on the single instance and through the group's read/write
  endpoint (target: group >= 50% of single);
- the read/write outage during a controlled failover (`group switchover`;
  target <= 1 s) and after a SIGKILL of the primary (target <= 3 s): the
  longest gap between two acknowledged commits of a writer that reconnects at
  once;
- failed reads on the read-only endpoint during a full rolling update
  (`group update`; target 0).

Figures, not assertions.

    python benchmarks/ha/run.py --seconds 10 --repeats 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
USER, PASSWORD = "bench", "bench pw"
# Row ids for every load of a run (each table's ids stay unique).
IDS = itertools.count()


def lakewave(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lakewave", *args], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"lakewave {' '.join(args)}: {done.stderr}")
    return done.stdout


def free_block(size: int) -> int:
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)
        held = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free ports")


def connect(port: int) -> pymysql.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        autocommit=True,
        connect_timeout=5,
        read_timeout=30,
    )


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connect(port).close()
            return
        except pymysql.err.MySQLError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on {port}")


def commit_load(port: int, seconds: float, clients: int, table: str) -> dict:
    """Autocommit single-row INSERTs from `clients` connections."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = IDS

    def client() -> None:
        conn = connect(port)
        cur = conn.cursor()
        mine = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            with lock:
                i = next(counter)
            started = time.perf_counter()
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, "x" * 32))
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "commits_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms_p50": round(1000 * latencies[len(latencies) // 2], 2),
        "latency_ms_p99": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
    }


class Writer:
    """Commits continuously through an endpoint, reconnecting at once, and
    records the time of every acknowledged commit."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.acks: list[float] = []
        self.failures = 0
        self.stop = threading.Event()
        self.next_id = 10_000_000 + random.randrange(10**6) * 1000
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            try:
                conn = conn or connect(self.port)
                conn.cursor().execute("INSERT INTO bench.outage VALUES (%s, 'x')", (self.next_id,))
                self.acks.append(time.perf_counter())
            except pymysql.err.MySQLError:
                self.failures += 1
                conn = None
                time.sleep(0.01)
            self.next_id += 1
            time.sleep(0.002)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def longest_gap(self, after: float) -> float:
        acks = [a for a in self.acks if a >= after - 1]
        return max((b - a for a, b in zip(acks, acks[1:], strict=False)), default=float("nan"))


def status(file: Path) -> dict:
    return json.loads(lakewave("group", "status", str(file), "--json"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The single instance.
        single_port = free_block(2)
        users = folder / "users"
        users.write_text(f"{USER}:{PASSWORD}\n")
        single = subprocess.Popen(
            [sys.executable, "-m", "lakewave", "serve", "--database", str(folder / "single.db"),
             "--mysql-port", str(single_port), "--flight-port", "-1", "--users-file", str(users)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_port(single_port)
            with connect(single_port) as conn:
                conn.cursor().execute("CREATE TABLE w (id BIGINT PRIMARY KEY, v VARCHAR(40))")
            results["single"] = [commit_load(single_port, args.seconds, c, "w") for c in (1, 4)]
        finally:
            single.send_signal(signal.SIGTERM)
            single.wait(60)
        print("single:", results["single"], flush=True)

        # The group.
        file = folder / "group" / "group.toml"
        base = free_block(3 + 4 * 5)
        lakewave("group", "init", str(file), "--dir", str(file.parent), "--members", "3", "--replicas", "2",
                 "--base-port", str(base), "--user", USER, "--password", PASSWORD)  # fmt: skip
        lakewave("group", "start", str(file))
        try:
            spec = json.loads(subprocess.check_output([sys.executable, "-c",
                "import json, sys, lakewave.group as g; print(json.dumps(g.read_file(sys.argv[1])))", str(file)]))  # fmt: skip
            rw, ro = spec["read_write_port"], spec["read_only_port"]
            with connect(rw) as conn:
                cur = conn.cursor()
                cur.execute("CREATE DATABASE bench")
                cur.execute("CREATE TABLE bench.w (id BIGINT PRIMARY KEY, v VARCHAR(40))")
                cur.execute("CREATE TABLE bench.outage (id BIGINT PRIMARY KEY, v VARCHAR(40))")
            results["group"] = [commit_load(rw, args.seconds, c, "bench.w") for c in (1, 4)]
            print("group:", results["group"], flush=True)
            results["group_vs_single"] = [
                round(g["commits_per_s"] / s["commits_per_s"], 3)
                for g, s in zip(results["group"], results["single"], strict=True)
            ]

            switchovers = []
            for _ in range(args.repeats):
                writer = Writer(rw)
                time.sleep(1)
                started = time.perf_counter()
                lakewave("group", "switchover", str(file))
                time.sleep(1)
                writer.finish()
                switchovers.append(round(writer.longest_gap(started), 3))
            results["switchover_outage_s"] = switchovers
            print("switchover outage:", switchovers, flush=True)

            kills = []
            for _ in range(args.repeats):
                primary = status(file)["primary"]
                member = next(m for m in spec["members"] if m["name"] == primary)
                pid = int((Path(member["dir"]) / "lakewave.pid").read_text())
                writer = Writer(rw)
                time.sleep(1)
                started = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not [a for a in writer.acks if a > started + 0.01]:
                    time.sleep(0.05)
                time.sleep(1)
                writer.finish()
                kills.append(round(writer.longest_gap(started), 3))
                lakewave("group", "start", str(file))
            results["sigkill_outage_s"] = kills
            print("SIGKILL outage:", kills, flush=True)

            reads = {"ok": 0, "failed": 0}
            stop = threading.Event()

            def reader() -> None:
                conn = None
                while not stop.is_set():
                    try:
                        conn = conn or connect(ro)
                        cur = conn.cursor()
                        cur.execute("SELECT count(*) FROM bench.w")
                        cur.fetchall()
                        reads["ok"] += 1
                    except pymysql.err.MySQLError:
                        reads["failed"] += 1
                        conn = None
                    time.sleep(0.005)

            thread = threading.Thread(target=reader)
            thread.start()
            started = time.perf_counter()
            lakewave("group", "update", str(file), "--config", "propagation_interval=150ms")
            update_seconds = time.perf_counter() - started
            stop.set()
            thread.join(30)
            results["rolling_update"] = {
                "seconds": round(update_seconds, 2),
                "reads_ok": reads["ok"],
                "reads_failed": reads["failed"],
            }
            print("rolling update:", results["rolling_update"], flush=True)
        finally:
            lakewave("group", "stop", str(file))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ha.json").write_text(json.dumps(results, indent=2))
    s1, s4 = results["single"]
    g1, g4 = results["group"]
    lines = [
        f"# HA group ({results['date']}, {results['cores']} cores, loopback)",
        "",
        "| figure | single instance | group (3 voters + 2 replicas) | target |",
        "|---|---|---|---|",
        f"| commits/s, 1 client | {s1['commits_per_s']} | {g1['commits_per_s']} ({results['group_vs_single'][0]:.0%}) | >= 50% |",
        f"| commits/s, 4 clients | {s4['commits_per_s']} | {g4['commits_per_s']} ({results['group_vs_single'][1]:.0%}) | >= 50% |",
        f"| commit latency p50 / p99, 1 client | {s1['latency_ms_p50']} / {s1['latency_ms_p99']} ms | {g1['latency_ms_p50']} / {g1['latency_ms_p99']} ms | |",
        f"| read/write outage, switchover | | {', '.join(f'{x:.2f}' for x in results['switchover_outage_s'])} s | <= 1 s |",
        f"| read/write outage, SIGKILL of the primary | | {', '.join(f'{x:.2f}' for x in results['sigkill_outage_s'])} s | <= 3 s |",
        f"| failed reads on the read-only endpoint, rolling update ({results['rolling_update']['seconds']} s) | | "
        f"{results['rolling_update']['reads_failed']} of {results['rolling_update']['reads_ok'] + results['rolling_update']['reads_failed']} | 0 |",
    ]
    (RESULTS / "ha.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
