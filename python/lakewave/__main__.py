"""``python -m lakewave demo``: start a two-node cluster, load a table, run
analytic queries, and print the results, the plan and the cluster's memory."""

from __future__ import annotations

import argparse
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakewave")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="load a table into a 2-node cluster and query it")
    run.add_argument("--rows", type=int, default=DEMO_ROWS)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
