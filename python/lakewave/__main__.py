"""The ``lakewave`` command (also ``python -m lakewave``).

``lakewave serve`` serves an instance over the MySQL protocol until SIGTERM or
Ctrl-C; ``lakewave demo`` starts a two-node cluster, loads a table, runs
analytic queries, and prints the results, the plan and the cluster's memory."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

import lakewave as lw

DEMO_ROWS = 2_000_000


def demo(rows: int) -> None:
    db = lw.connect(nodes=2)
    shape = db.shape
    print(
        f"lakewave {lw.__version__}: {shape['nodes']} nodes, "
        f"{shape['memory_per_node'] / 2**30:.1f} GiB each, {shape['threads']} threads\n"
    )

    started = time.perf_counter()
    db.sql(f"""
        CREATE TABLE orders AS
        SELECT value AS order_id,
               CASE value % 5 WHEN 0 THEN 'Keyboard' WHEN 1 THEN 'Mouse' WHEN 2 THEN 'Monitor'
                              WHEN 3 THEN 'Laptop' ELSE 'Headset' END AS product,
               CASE value % 3 WHEN 0 THEN 'EU' WHEN 1 THEN 'US' ELSE 'APAC' END AS region,
               CAST((value * 7919) % 100000 AS DOUBLE) / 100.0 AS amount,
               DATE '2024-01-01' + CAST(value / {max(rows // 365, 1)} AS INT) AS order_date
        FROM generate_series(1, {rows}) AS t(value)
    """).fetchall()
    print(f"loaded {rows:,} orders in {time.perf_counter() - started:.2f} s")
    for table in db.tables():
        print(
            f"  {table['database']}.{table['table']}: {table['rows']:,} rows, "
            f"{table['bytes'] / 2**20:.1f} MiB in {table['chunks']} chunks over "
            f"{table['partitions']} partitions; dictionary-encoded: {', '.join(table['dictionary_columns']) or '-'}"
        )

    queries = {
        "revenue by product": """
            SELECT product, count(*) AS orders, round(sum(amount), 2) AS revenue
            FROM orders GROUP BY product ORDER BY revenue DESC""",
        "best region per month (window function)": """
            SELECT month, region, revenue FROM (
                SELECT date_trunc('month', order_date) AS month, region, round(sum(amount), 2) AS revenue,
                       rank() OVER (PARTITION BY date_trunc('month', order_date) ORDER BY sum(amount) DESC) AS r
                FROM orders GROUP BY 1, 2) WHERE r = 1 ORDER BY month LIMIT 6""",
        "one week of orders (zone maps prune chunks)": """
            SELECT count(*) AS orders, round(avg(amount), 2) AS avg_amount
            FROM orders WHERE order_date BETWEEN DATE '2024-03-01' AND DATE '2024-03-07'""",
    }
    for title, query in queries.items():
        started = time.perf_counter()
        result = db.sql(query)
        text = str(result)
        print(f"\n{title} ({(time.perf_counter() - started) * 1000:.0f} ms)\n{text}")

    plan = db.sql("EXPLAIN SELECT count(*) FROM orders WHERE order_date = DATE '2024-03-01'").fetchall()
    scan = [line for _, text in plan for line in text.splitlines() if "ClusterScanExec" in line]
    print("\nthe scan in the physical plan:\n  " + "\n  ".join(s.strip() for s in scan))
    print("\nnodes:")
    for node in db.nodes():
        print(
            f"  node {node['node']}: {node['memory_used'] / 2**20:.1f} MiB used of "
            f"{node['memory_budget'] / 2**30:.1f} GiB, {node['partitions']} partitions"
        )


def _config_pairs(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    config: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            parser.error(f"--config takes key=value, got {pair!r}")
        config[key.strip()] = value.strip()
    return config


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Serve one instance until SIGTERM or SIGINT, then stop cleanly: running
    statements are cancelled, connections end, committed changes are
    propagated and the database file is released."""
    config = _config_pairs(args.config, parser)
    if args.instance_name:
        config["instance_name"] = args.instance_name
    password = args.password
    if password is None:
        password = os.environ.get("LAKEWAVE_PASSWORD", "")
    try:
        db = lw.connect(
            args.database,
            nodes=args.nodes,
            memory_per_node=args.memory_per_node,
            threads=args.threads,
            config=config,
        )
    except lw.Error as e:
        print(f"lakewave serve: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = db.serve(
            host=args.host,
            mysql_port=args.mysql_port,
            status_port=args.status_port,
            user=args.user,
            password=password,
            users_file=args.users_file,
            check_user=args.check_user or None,
            max_connections=args.max_connections,
            max_allowed_packet=args.max_allowed_packet,
        )
    except lw.Error as e:
        print(f"lakewave serve: {e}", file=sys.stderr)
        db.close()
        return 1
    name = db.sql("SELECT @@hostname").fetchone()[0]
    print(f"lakewave {lw.__version__} instance {name!r} serving {args.database or '(in memory)'}")
    print(f"  MySQL protocol: {server.host}:{server.mysql_port}")
    if server.status_port is not None:
        print(f"  status:         http://{server.host}:{server.status_port}/health")
    print("ready for connections", flush=True)
    while not stop.wait(0.5):
        pass
    print("lakewave serve: stopping", flush=True)
    server.close(grace=args.grace)
    try:
        db.sync()
    finally:
        db.close()
    print("lakewave serve: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakewave")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="load a table into a 2-node cluster and query it")
    run.add_argument("--rows", type=int, default=DEMO_ROWS)
    srv = commands.add_parser("serve", help="serve an instance over the MySQL protocol")
    srv.add_argument("--database", metavar="PATH", help="the database file (default: in memory)")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    srv.add_argument("--mysql-port", type=int, default=3306, help="MySQL protocol port (0: any free one)")
    srv.add_argument("--status-port", type=int, default=None, help="HTTP status port (GET /health)")
    srv.add_argument("--instance-name", help="what @@hostname answers")
    srv.add_argument("--user", default="root", help="the account's user name (default root)")
    srv.add_argument("--password", default=None, help="its password (default: $LAKEWAVE_PASSWORD, else none)")
    srv.add_argument("--users-file", metavar="PATH", help="a file of user:password lines")
    srv.add_argument(
        "--check-user", default="haproxy", help="password-less user for health checks ('' for none)"
    )
    srv.add_argument("--max-connections", type=int, default=151)
    srv.add_argument("--max-allowed-packet", type=int, default=64 * 2**20)
    srv.add_argument("--nodes", type=int, default=None, help="cluster nodes")
    srv.add_argument("--memory-per-node", default=None, help="memory per node, e.g. 4GiB")
    srv.add_argument("--threads", type=int, default=None, help="execution threads")
    srv.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE", help="any connect() option"
    )
    srv.add_argument("--grace", type=float, default=5.0, help="seconds to wait for connections on stop")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.rows)
    elif args.command == "serve":
        return serve(args, srv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
