"""The network endpoints side by side, in one run on one machine:

- result transfer: ``SELECT * FROM lineitem`` at SF1 in-process (Arrow), through
  Flight SQL (ADBC) and through the MySQL protocol (PyMySQL, mysql-connector);
- point queries (``SELECT ... FROM orders WHERE o_orderkey = ?``, prepared) per
  second at 1, 8 and 64 clients, lakewave's MySQL endpoint against MariaDB from
  Debian (started here, with its own data directory and port) answering the same
  queries on the same table;
- TPC-H Q1 and Q6 latency through each endpoint against in-process.

Figures go to benchmarks/results/endpoints-sf{N}.json and .md; no assertions.

    python benchmarks/endpoints/run.py --scale 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "tpch"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
import run as tpch  # noqa: E402
from mariadb_server import MariaDB  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
POINT_QUERY = (
    "SELECT o_orderkey, o_custkey, o_orderstatus, o_totalprice, o_orderdate FROM orders WHERE o_orderkey = ?"
)
PASSWORD = "bench"
ORDERS_COLUMNS = (
    "o_orderkey BIGINT PRIMARY KEY, o_custkey BIGINT, o_orderstatus VARCHAR(1), o_totalprice DECIMAL(15,2), "
    "o_orderdate DATE, o_orderpriority VARCHAR(15), o_clerk VARCHAR(15), o_shippriority INT, o_comment VARCHAR(79)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn, runs: int, warmup: int = 1) -> tuple[float, object]:
    """The median of `runs` timed calls after `warmup` untimed ones: the
    first fetches of a result measure the client's heap growing (ADBC's Go
    runtime takes two fetches of lineitem to reach its size), not a query."""
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(runs):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


# --- result transfer ---------------------------------------------------------


def thread_cpu() -> dict[str, tuple[str, float]] | None:
    """CPU seconds used so far by each of this process's threads, with its
    name (the instance's threads are named lakewave-*). Linux only."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in tasks.iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[task.name] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def server_and_client_cpu(before: dict, after: dict) -> tuple[float, float]:
    """CPU seconds between two `thread_cpu()` snapshots, the instance's
    threads and everyone else's (the clients, Python). Threads that ended in
    between are missing, so both are lower bounds."""
    server = client = 0.0
    for tid, (name, seconds) in after.items():
        used = seconds - before.get(tid, (name, 0.0))[1]
        if name.startswith("lakewave"):
            server += used
        else:
            client += used
    return server, client


def reference_flight(table, runs: int) -> tuple[float, int]:
    """What the ADBC client takes to read `table` from Arrow's own C++ Flight
    server, which holds it in memory and sends its buffers without copying:
    a bound for any Flight server on this machine (no query runs at all).
    ADBC's low-level statement is used, as the reference server answers only
    GetFlightInfo and DoGet (the DB-API prepares first)."""
    import adbc_driver_flightsql.dbapi as flight_sql
    import adbc_driver_manager
    import pyarrow as pa
    import pyarrow.flight as fl

    class Reference(fl.FlightServerBase):
        def get_flight_info(self, context, descriptor):
            if b"CommandStatementQuery" not in (descriptor.command or b""):
                raise fl.FlightUnimplementedError("the reference server serves one statement")
            return fl.FlightInfo(table.schema, descriptor, [fl.FlightEndpoint(b"t", [])], -1, -1)

        def do_get(self, context, ticket):
            return fl.RecordBatchStream(table)

    server = Reference("grpc://127.0.0.1:0")
    try:
        with flight_sql.connect(f"grpc://127.0.0.1:{server.port}", autocommit=True) as conn:

            def fetch() -> int:
                statement = adbc_driver_manager.AdbcStatement(conn.adbc_connection)
                statement.set_sql_query("SELECT * FROM lineitem")
                handle, _ = statement.execute_query()
                rows = pa.RecordBatchReader._import_from_c(handle.address).read_all().num_rows
                statement.close()
                return rows

            return timed(fetch, runs, warmup=2)
    finally:
        server.shutdown()


def transfer(db, server, runs: int, mysql_rows: int) -> dict:
    import adbc_driver_flightsql.dbapi as flight_sql
    import mysql.connector
    import pymysql

    query = "SELECT * FROM lineitem"
    seconds, table = timed(lambda: db.sql(query).arrow(), runs, warmup=2)
    nbytes, nrows = table.nbytes, table.num_rows
    out = {"in-process Arrow": {"s": seconds, "rows": nrows, "bytes": nbytes}}
    seconds, rows = reference_flight(table, runs)
    out["reference: ADBC from pyarrow's C++ Flight server, table in memory"] = {
        "s": seconds,
        "rows": rows,
        "bytes": nbytes,
    }
    del table
    with flight_sql.connect(
        server.flight_uri, db_kwargs={"username": "bench", "password": PASSWORD}, autocommit=True
    ) as conn:
        cur = conn.cursor()

        def flight():
            cur.execute(query)
            return cur.fetch_arrow_table().num_rows

        flight()
        flight()
        before = thread_cpu()
        seconds, rows = timed(flight, runs, warmup=0)
        after = thread_cpu()
        out["Flight SQL (ADBC)"] = {"s": seconds, "rows": rows, "bytes": nbytes}
        if before is not None and after is not None:
            # Who the 2 cores work for during a fetch.
            server_cpu, client_cpu = server_and_client_cpu(before, after)
            out["Flight SQL (ADBC)"]["server_cpu_s"] = server_cpu / runs
            out["Flight SQL (ADBC)"]["client_cpu_s"] = client_cpu / runs
    # The MySQL clients decode every value in Python: a slice of the table
    # keeps the run short; rows/s is what compares.
    limited = f"{query} LIMIT {mysql_rows}"
    share = mysql_rows / nrows
    conn = pymysql.connect(
        host=server.host,
        port=server.mysql_port,
        user="bench",
        password=PASSWORD,
        cursorclass=pymysql.cursors.SSCursor,
    )
    with conn, conn.cursor() as c:

        def py():
            c.execute(limited)
            return sum(1 for _ in c)

        seconds, rows = timed(py, 1, warmup=0)
        out["MySQL (PyMySQL)"] = {"s": seconds, "rows": rows, "bytes": int(nbytes * share)}
    conn = mysql.connector.connect(host=server.host, port=server.mysql_port, user="bench", password=PASSWORD)
    with conn:
        c = conn.cursor(raw=False)

        def connector():
            c.execute(limited)
            return len(c.fetchall())

        seconds, rows = timed(connector, 1, warmup=0)
        out["MySQL (mysql-connector)"] = {"s": seconds, "rows": rows, "bytes": int(nbytes * share)}
    for figures in out.values():
        figures["rows_per_s"] = figures["rows"] / figures["s"]
        figures["mb_per_s"] = figures["bytes"] / figures["s"] / 1e6
    return out


# --- point queries -----------------------------------------------------------


def point_worker(args: tuple) -> int:
    host, port, user, password, database, threads, seconds, keys = args
    import mysql.connector

    counts = [0] * threads
    start = threading.Barrier(threads)

    def client(index: int) -> None:
        conn = mysql.connector.connect(host=host, port=port, user=user, password=password, database=database)
        cur = conn.cursor(prepared=True)
        rng = random.Random(index)
        start.wait()
        deadline = time.perf_counter() + seconds
        done = 0
        while time.perf_counter() < deadline:
            cur.execute(POINT_QUERY, (rng.choice(keys),))
            cur.fetchall()
            done += 1
        counts[index] = done
        conn.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts)


def point_queries(
    host: str, port: int, user: str, password: str, database: str, keys: list[int], seconds: float
):
    out = {}
    for clients in (1, 8, 64):
        processes = min(clients, 8)
        per = clients // processes
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            counts = pool.map(
                point_worker, [(host, port, user, password, database, per, seconds, keys)] * processes
            )
        out[clients] = sum(counts) / seconds
        print(f"  {clients} clients: {out[clients]:.0f} queries/s", file=sys.stderr, flush=True)
    return out


def load_mariadb(maria: MariaDB, orders_csv: Path) -> None:
    conn = maria.connect()
    with conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE bench")
        cur.execute(f"CREATE TABLE bench.orders ({ORDERS_COLUMNS}) ENGINE=InnoDB")
        cur.execute(
            f"LOAD DATA INFILE '{orders_csv}' INTO TABLE bench.orders FIELDS TERMINATED BY ',' "
            "OPTIONALLY ENCLOSED BY '\"' IGNORE 1 LINES"
        )
        cur.execute(f"CREATE USER 'bench'@'%' IDENTIFIED BY '{PASSWORD}'")
        cur.execute("GRANT ALL ON bench.* TO 'bench'@'%'")
        conn.commit()


# --- TPC-H Q1 and Q6 -----------------------------------------------------------


def latencies(db, server, runs: int) -> dict:
    import adbc_driver_flightsql.dbapi as flight_sql
    import pymysql

    out: dict = {}
    for number in (1, 6):
        sql = (tpch.QUERIES / f"q{number}.sql").read_text()
        row = {"in-process": timed(lambda sql=sql: db.sql(sql).fetchall(), runs)[0]}
        with flight_sql.connect(
            server.flight_uri, db_kwargs={"username": "bench", "password": PASSWORD}, autocommit=True
        ) as conn:
            cur = conn.cursor()

            def flight(cur=cur, sql=sql):
                cur.execute(sql)
                return cur.fetch_arrow_table()

            row["Flight SQL (ADBC)"] = timed(flight, runs)[0]
        conn = pymysql.connect(host=server.host, port=server.mysql_port, user="bench", password=PASSWORD)
        with conn, conn.cursor() as c:

            def mysql(c=c, sql=sql):
                c.execute(sql)
                return c.fetchall()

            row["MySQL (PyMySQL)"] = timed(mysql, runs)[0]
        out[f"Q{number}"] = row
    return out


def summarise(scale: float, results: dict) -> str:
    lines = [
        f"# Endpoints, TPC-H SF{scale:g} — {datetime.date.today()}",
        "",
        f"Machine: {os.cpu_count()} cores; clients and servers share it. Release build.",
        "",
        "## Result transfer: `SELECT * FROM lineitem`",
        "",
        "| path | rows | seconds | rows/s | MB/s (Arrow bytes) |",
        "|---|---|---|---|---|",
    ]
    for path, f in results["transfer"].items():
        lines.append(
            f"| {path} | {f['rows']:,} | {f['s']:.2f} | {f['rows_per_s']:,.0f} | {f['mb_per_s']:,.0f} |"
        )
    inproc = results["transfer"]["in-process Arrow"]["mb_per_s"]
    flight = results["transfer"]["Flight SQL (ADBC)"]["mb_per_s"]
    reference = next((f for path, f in results["transfer"].items() if path.startswith("reference")), None)
    lines += [
        "",
        f"Flight SQL moves {flight / 1000:.2f} GB/s, {inproc / flight:.2f}× slower than in-process "
        "(target: ≥ 1 GB/s and within 2×). The MySQL clients read the first "
        f"{results['mysql_rows']:,} rows (they decode every value in Python).",
    ]
    if reference:
        lines += [
            "",
            f"The reference row bounds what any Flight server achieves here: ADBC reading the "
            f"same bytes from Arrow's C++ server, which runs no query and copies nothing, takes "
            f"{reference['s']:.2f} s = {reference['s'] / results['transfer']['in-process Arrow']['s']:.2f}× "
            "lakewave's in-process time.",
        ]
    fl = results["transfer"]["Flight SQL (ADBC)"]
    if "client_cpu_s" in fl:
        lines += [
            "",
            f"CPU per Flight SQL fetch: the server's threads {fl['server_cpu_s']:.2f} s, the ADBC "
            f"client's and Python's {fl['client_cpu_s']:.2f} s (in-process takes "
            f"{results['transfer']['in-process Arrow']['s']:.2f} s).",
        ]
    lines += [
        "",
        "## Point queries per second (prepared, mysql-connector clients)",
        "",
        "| clients | lakewave | MariaDB | lakewave / MariaDB |",
        "|---|---|---|---|",
    ]
    for clients, qps in results["point_queries"]["lakewave"].items():
        maria = results["point_queries"].get("mariadb", {}).get(clients)
        ratio = f"{qps / maria:.0%}" if maria else "—"
        lines.append(
            f"| {clients} | {qps:,.0f} | {maria:,.0f} | {ratio} |"
            if maria
            else f"| {clients} | {qps:,.0f} | — | — |"
        )
    lines += ["", "Target: ≥ 50% of MariaDB's throughput.", "", "## TPC-H latency (median seconds)", ""]
    paths = list(next(iter(results["latency"].values())))
    lines.append("| query | " + " | ".join(paths) + " |")
    lines.append("|---" * (len(paths) + 1) + "|")
    for q, row in results["latency"].items():
        lines.append(f"| {q} | " + " | ".join(f"{row[p]:.3f}" for p in paths) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mysql-rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="each point-query measurement")
    parser.add_argument("--skip-mariadb", action="store_true")
    args = parser.parse_args()

    import lakewave as lw
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    data = tpch.generate(args.scale)
    results: dict = {"scale": args.scale, "mysql_rows": args.mysql_rows}
    folder = Path(tempfile.mkdtemp(prefix="lakewave-endpoints-"))
    db = lw.connect(folder / "bench.db", threads=2)
    db.load("lineitem", data / "lineitem.parquet", primary_key=tpch.KEYS["lineitem"])
    # Orders in the row store (the DB system) and loaded, as HeatWave keeps them.
    orders = pq.read_table(data / "orders.parquet")
    db.sql(f"CREATE TABLE orders ({ORDERS_COLUMNS})")
    db.insert("orders", orders)
    db.sql("ALTER TABLE orders SECONDARY_LOAD")
    server = db.serve(mysql_port=0, flight_port=0, user="bench", password=PASSWORD)
    keys = random.Random(7).sample(orders.column("o_orderkey").to_pylist(), 10_000)

    print("transfer", file=sys.stderr, flush=True)
    results["transfer"] = transfer(db, server, args.runs, args.mysql_rows)
    print("latency", file=sys.stderr, flush=True)
    results["latency"] = latencies(db, server, args.runs)
    print("point queries: lakewave", file=sys.stderr, flush=True)
    results["point_queries"] = {
        "lakewave": point_queries(
            server.host, server.mysql_port, "bench", PASSWORD, "main", keys, args.seconds
        )
    }
    server.close()
    db.close()
    if not args.skip_mariadb:
        csv = folder / "orders.csv"
        # tpchgen writes string views, which pyarrow's CSV writer does not take.
        plain = pa.schema(
            [f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in orders.schema]
        )
        pacsv.write_csv(orders.cast(plain), csv)
        del orders
        maria = MariaDB(
            folder / "mariadb",
            binlog=False,
            extra=["--innodb-buffer-pool-size=1G", "--max-connections=200", "--secure-file-priv="],
        )
        try:
            load_mariadb(maria, csv)
            print("point queries: MariaDB", file=sys.stderr, flush=True)
            results["point_queries"]["mariadb"] = point_queries(
                "127.0.0.1", maria.port, "bench", PASSWORD, "bench", keys, args.seconds
            )
        finally:
            maria.stop()
    shutil.rmtree(folder, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"endpoints-sf{args.scale:g}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{stem}.md").write_text(summarise(args.scale, results))
    print(summarise(args.scale, results))


if __name__ == "__main__":
    main()
