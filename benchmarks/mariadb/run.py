"""lakewave as the HeatWave cluster of a MariaDB server (`connect(source=...)`).

Starts a private MariaDB server from Debian's packages (binlog on), and reports
into benchmarks/results/mariadb-sf{N}.json and .md:

- TPC-H: the 22 queries run by MariaDB itself (OFF) and offloaded to the
  cluster (ON), the speed-up per query and its geometric mean (HeatWave's own
  comparison; target >= 100x). A MariaDB query is stopped at `--cap` seconds
  (`max_statement_time`); its speed-up is then a lower bound, marked ">".
- Freshness: the lag from COMMIT on the server to visible in the cluster
  (p50/p99/max) at a target rate of single-row transactions, and the rows per
  second the binlog reader applies.
- The server's write throughput with lakewave attached (a loaded table being
  followed) against without (target >= 95%).

Figures, not assertions.

    python benchmarks/mariadb/run.py --scale 1 --cap 120
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import lakewave as lw

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "benchmarks" / "tpch"))
import run as tpch_harness  # noqa: E402
from mariadb_server import MariaDB  # noqa: E402

QUERIES = ROOT / "benchmarks" / "tpch" / "queries"
RESULTS = ROOT / "benchmarks" / "results"
KEYS: dict[str, list[str]] = json.loads((ROOT / "benchmarks" / "tpch" / "tables.json").read_text())[
    "primary_keys"
]

SCHEMA = {
    "nation": "n_nationkey INT, n_name CHAR(25), n_regionkey INT, n_comment VARCHAR(152)",
    "region": "r_regionkey INT, r_name CHAR(25), r_comment VARCHAR(152)",
    "part": "p_partkey INT, p_name VARCHAR(55), p_mfgr CHAR(25), p_brand CHAR(10), "
    "p_type VARCHAR(25), p_size INT, p_container CHAR(10), p_retailprice DECIMAL(15,2), "
    "p_comment VARCHAR(23)",
    "supplier": "s_suppkey INT, s_name CHAR(25), s_address VARCHAR(40), s_nationkey INT, "
    "s_phone CHAR(15), s_acctbal DECIMAL(15,2), s_comment VARCHAR(101)",
    "partsupp": "ps_partkey INT, ps_suppkey INT, ps_availqty INT, ps_supplycost DECIMAL(15,2), "
    "ps_comment VARCHAR(199)",
    "customer": "c_custkey INT, c_name VARCHAR(25), c_address VARCHAR(40), c_nationkey INT, "
    "c_phone CHAR(15), c_acctbal DECIMAL(15,2), c_mktsegment CHAR(10), c_comment VARCHAR(117)",
    "orders": "o_orderkey BIGINT, o_custkey INT, o_orderstatus CHAR(1), o_totalprice DECIMAL(15,2), "
    "o_orderdate DATE, o_orderpriority CHAR(15), o_clerk CHAR(15), o_shippriority INT, "
    "o_comment VARCHAR(79)",
    "lineitem": "l_orderkey BIGINT, l_partkey INT, l_suppkey INT, l_linenumber INT, "
    "l_quantity DECIMAL(15,2), l_extendedprice DECIMAL(15,2), l_discount DECIMAL(15,2), "
    "l_tax DECIMAL(15,2), l_returnflag CHAR(1), l_linestatus CHAR(1), l_shipdate DATE, "
    "l_commitdate DATE, l_receiptdate DATE, l_shipinstruct CHAR(25), l_shipmode CHAR(10), "
    "l_comment VARCHAR(44)",
}
# Secondary indexes MariaDB's own plans rely on for the joins.
INDEXES = {
    "lineitem": ["l_partkey", "l_suppkey"],
    "orders": ["o_custkey"],
    "partsupp": ["ps_suppkey"],
    "customer": ["c_nationkey"],
    "supplier": ["s_nationkey"],
}


def generate(scale: float, folder: Path) -> Path:
    out = folder / f"tbl-sf{scale:g}"
    if not (out / "lineitem.tbl").exists():
        out.mkdir(parents=True, exist_ok=True)
        cli = shutil.which("tpchgen-cli")
        if not cli:
            sys.exit("pip install tpchgen-cli")
        subprocess.run([cli, "-s", str(scale), "--output-dir", str(out)], check=True)
    return out


def load_server(maria: MariaDB, data: Path) -> float:
    started = time.perf_counter()
    conn = maria.connect(local_infile=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE tpch")
        cur.execute("USE tpch")
        for table, columns in SCHEMA.items():
            keys = ", ".join(KEYS[table])
            indexes = "".join(f", KEY ({c})" for c in INDEXES.get(table, []))
            cur.execute(f"CREATE TABLE {table} ({columns}, PRIMARY KEY ({keys}){indexes}) ENGINE=InnoDB")
            names = [c.split()[0] for c in columns.split(", ")]
            # The .tbl rows end with a '|': it fills a dummy variable.
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{data / (table + '.tbl')}' INTO TABLE {table} "
                f"FIELDS TERMINATED BY '|' ({', '.join(names)}, @end)"
            )
            print(f"  {table}: loaded into MariaDB", file=sys.stderr, flush=True)
        cur.execute("ANALYZE TABLE " + ", ".join(SCHEMA))
    return time.perf_counter() - started


def tpch(maria: MariaDB, cap: float, runs: int) -> dict:
    db = lw.connect(source=maria.url(database="tpch"), config={"read_your_writes": "true"})
    started = time.perf_counter()
    for table in SCHEMA:
        db.sql(f"ALTER TABLE {table} SECONDARY_LOAD")
    load_seconds = time.perf_counter() - started
    db.sql(f"SET max_statement_time = {cap}")
    out = {"load_into_cluster_s": load_seconds, "queries": {}}
    for number in range(1, 23):
        text = (QUERIES / f"q{number}.sql").read_text()
        db.sql("SET use_secondary_engine = FORCED")
        db.sql(text).fetchall()  # warm
        on = []
        for _ in range(runs):
            t = time.perf_counter()
            on_rows = db.sql(text).fetchall()
            on.append(time.perf_counter() - t)
        db.sql("SET use_secondary_engine = OFF")
        t = time.perf_counter()
        capped = False
        try:
            off_rows = db.sql(text).fetchall()
        except lw.Error as e:
            if e.errno not in (1969, 3024):  # max_statement_time reached
                raise
            capped, off_rows = True, None
        off = time.perf_counter() - t
        on_median = statistics.median(on)
        # Both answers are ordered by the query. Offloaded queries divide and
        # average as MariaDB does (sql/arithmetic.rs), so the answers should
        # be equal; the tolerance of one unit in the last digit stays from
        # the figures measured before that.
        same = off_rows is None or tpch_harness.same_rows(on_rows, off_rows, 1e-9, 1.5e-6)
        out["queries"][f"Q{number}"] = {
            "on_s": on_median,
            "off_s": off,
            "capped": capped,
            "speedup": off / on_median,
            "rows_match": same,
        }
        mark = ">" if capped else ""
        print(
            f"  Q{number}: MariaDB {mark}{off:.2f} s, cluster {on_median:.3f} s, "
            f"{mark}{off / on_median:.0f}x",
            file=sys.stderr,
            flush=True,
        )
    speedups = [q["speedup"] for q in out["queries"].values()]
    out["geomean_speedup"] = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
    out["any_capped"] = any(q["capped"] for q in out["queries"].values())
    db.close()
    return out


def writer(port: int, table: str, seconds: float, rate: float | None, start_id: int, queue) -> None:
    """Single-row transactions at `rate` per second (None: as fast as it can);
    sends (id, commit time) marks."""
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", database="bench", autocommit=True)
    with conn, conn.cursor() as cur:
        key = start_id
        began = time.perf_counter()
        marks = []
        while time.perf_counter() - began < seconds:
            key += 1
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (key, time.time()))
            if rate:
                marks.append((key, time.time()))
                wait = began + (key - start_id) / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
    queue.put((key - start_id, marks))


def throughput(maria: MariaDB, seconds: float, processes: int, attached: bool) -> float:
    table = "ta" if attached else "tb"
    maria.execute(f"CREATE TABLE bench.{table} (id BIGINT PRIMARY KEY, at DOUBLE)")
    db = None
    if attached:
        db = lw.connect(source=maria.url(database="bench"))
        db.sql(f"ALTER TABLE {table} SECONDARY_LOAD")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=writer, args=(maria.port, table, seconds, None, i * 10**9, queue))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    total = sum(queue.get()[0] for _ in workers)
    for w in workers:
        w.join()
    if db is not None:
        db.close()
    return total / seconds


def freshness(maria: MariaDB, rate: float, seconds: float) -> dict:
    table = f"fresh{int(rate)}"
    maria.execute(f"CREATE TABLE bench.{table} (id BIGINT PRIMARY KEY, at DOUBLE)")
    # Read-your-writes off: the poller sees the reader's own cadence, not a
    # flush its barrier asked for.
    db = lw.connect(source=maria.url(database="bench"), config={"read_your_writes": "false"})
    db.sql(f"ALTER TABLE {table} SECONDARY_LOAD")
    db.sql("SET use_secondary_engine = FORCED")
    processes = max(1, math.ceil(rate / 2000))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=writer, args=(maria.port, table, seconds, rate / processes, i * 10**9, queue))
        for i in range(processes)
    ]
    seen: dict[int, float] = {}
    stop = threading.Event()

    def poll() -> None:
        last = {}
        while not stop.is_set():
            rows = db.sql(
                f"SELECT id / 1000000000 AS w, max(id) FROM {table} GROUP BY id / 1000000000"
            ).fetchall()
            now = time.time()
            for w, top in rows:
                if top != last.get(w):
                    seen[(w, top)] = now
                    last[w] = top
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    time.sleep(1.0)
    stop.set()
    poller.join()
    # A mark is visible when the poller first saw a max id at or past it.
    lags = []
    for _count, marks in results:
        if not marks:
            continue
        group = marks[0][0] // 10**9
        tops = sorted((top, at) for (w, top), at in seen.items() if w == group)
        i = 0
        for key, committed in marks:
            while i < len(tops) and tops[i][0] < key:
                i += 1
            if i < len(tops):
                lags.append(tops[i][1] - committed)
    total = sum(r[0] for r in results)
    db.close()
    lags.sort()
    pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000 if lags else float("nan")  # noqa: E731
    return {
        "target_tx_per_s": rate,
        "achieved_tx_per_s": total / seconds,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "max_ms": lags[-1] * 1000 if lags else float("nan"),
        "applied_rows_per_s": total / seconds,
    }


def write_results(scale: float, out: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"mariadb-sf{scale:g}.json").write_text(json.dumps(out, indent=2))
    lines = [
        f"# lakewave over MariaDB — TPC-H SF{scale:g}, {out['date']}",
        "",
        f"Machine: 2 cores. MariaDB {out['server_version']} (InnoDB, buffer pool 2 GiB) "
        f"loaded in {out['server_load_s']:.0f} s; SECONDARY_LOAD of the 8 tables took "
        f"{out['tpch']['load_into_cluster_s']:.1f} s. MariaDB queries are stopped at "
        f'{out["cap_s"]:.0f} s (">": a lower bound).',
        "",
        "| query | MariaDB (s) | cluster (s) | speed-up | same answer |",
        "|---|---|---|---|---|",
    ]
    for name, q in out["tpch"]["queries"].items():
        mark = ">" if q["capped"] else ""
        same = "—" if q["capped"] else ("yes" if q["rows_match"] else "NO")
        lines.append(
            f"| {name} | {mark}{q['off_s']:.2f} | {q['on_s']:.3f} | {mark}{q['speedup']:.0f}× | {same} |"
        )
    bound = ">" if out["tpch"]["any_capped"] else ""
    lines += [
        f"| **geometric mean** | | | **{bound}{out['tpch']['geomean_speedup']:.0f}×** | |",
        "",
        "## Freshness (COMMIT on the server → visible in the cluster)",
        "",
        "| target tx/s | achieved tx/s | p50 (ms) | p99 (ms) | max (ms) |",
        "|---|---|---|---|---|",
    ]
    for f in out["freshness"]:
        lines.append(
            f"| {f['target_tx_per_s']:,.0f} | {f['achieved_tx_per_s']:,.0f} | {f['p50_ms']:.0f} | "
            f"{f['p99_ms']:.0f} | {f['max_ms']:.0f} |"
        )
    w = out["write_throughput"]
    lines += [
        "",
        "## The server's write throughput",
        "",
        f"Single-row autocommit INSERTs from {w['processes']} PyMySQL processes: "
        f"{w['without']:,.0f} tx/s without lakewave, {w['with']:,.0f} tx/s with lakewave "
        f"following the table = {100 * w['with'] / w['without']:.0f}%.",
        "",
    ]
    (RESULTS / f"mariadb-sf{scale:g}.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--cap", type=float, default=120, help="seconds MariaDB may take per query")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="per freshness and throughput run")
    parser.add_argument("--skip-tpch", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakewave-mariadb-") as folder:
        maria = MariaDB(
            Path(folder) / "server",
            extra=["--innodb-buffer-pool-size=2G", "--max-connections=200", "--local-infile=1"],
        )
        try:
            version = maria.rows("SELECT VERSION()")[0][0]
            out: dict = {
                "date": time.strftime("%Y-%m-%d"),
                "scale": args.scale,
                "cap_s": args.cap,
                "server_version": version,
            }
            maria.execute("CREATE DATABASE bench")
            print("write throughput", file=sys.stderr, flush=True)
            without = throughput(maria, args.seconds, 2, attached=False)
            with_lw = throughput(maria, args.seconds, 2, attached=True)
            out["write_throughput"] = {"processes": 2, "without": without, "with": with_lw}
            print(f"  {without:.0f} vs {with_lw:.0f} tx/s", file=sys.stderr, flush=True)
            out["freshness"] = []
            for rate in (10, 1000, 10000):
                print(f"freshness at {rate} tx/s", file=sys.stderr, flush=True)
                out["freshness"].append(freshness(maria, rate, args.seconds))
                print(f"  {out['freshness'][-1]}", file=sys.stderr, flush=True)
            if not args.skip_tpch:
                data = generate(args.scale, Path(folder))
                print("loading TPC-H into MariaDB", file=sys.stderr, flush=True)
                out["server_load_s"] = load_server(maria, data)
                out["tpch"] = tpch(maria, args.cap, args.runs)
                write_results(args.scale, out)
            else:
                RESULTS.mkdir(parents=True, exist_ok=True)
                (RESULTS / "mariadb-writes.json").write_text(json.dumps(out, indent=2))
        finally:
            maria.stop()


if __name__ == "__main__":
    main()
