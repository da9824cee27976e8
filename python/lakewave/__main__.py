"""The ``lakewave`` command (also ``python -m lakewave``).

``lakewave serve`` serves an instance over the MySQL protocol and Arrow Flight
SQL until SIGTERM or Ctrl-C; ``lakewave demo`` tells the story: row-store
tables, SECONDARY_LOAD, DML that propagates, EXPLAIN showing the offload, the
status tables, an external Delta table refreshed incrementally, and the
server."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import lakewave as lw
from lakewave import _internal

DEMO_ROWS = 500_000
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


def _step(title: str) -> None:
    print(f"\n== {title}")


def _show(db: lw.Connection, query: str, title: str | None = None) -> None:
    started = time.perf_counter()
    text = str(db.sql(query))
    elapsed = (time.perf_counter() - started) * 1000
    print(f"{title or query.strip()}  ({elapsed:.0f} ms)\n{text}")


def _engine(db: lw.Connection, query: str) -> str:
    rows = db.sql(f"EXPLAIN {query}").fetchall()
    return next(text for kind, text in rows if kind == "engine")


def demo(rows: int) -> None:
    """The story in under a minute: a row-store table, SECONDARY_LOAD, DML
    that propagates, EXPLAIN showing the offload, the status tables, an
    external Delta table refreshed incrementally, and the server."""
    folder = Path(tempfile.mkdtemp(prefix="lakewave-demo-"))
    db = lw.connect(folder / "demo.db", nodes=2, config={"instance_name": "lakewave-demo"})
    shape = db.shape
    print(
        f"lakewave {lw.__version__}: a DB system (row store) in {folder / 'demo.db'} and a cluster of "
        f"{shape['nodes']} nodes, {shape['memory_per_node'] / 2**30:.1f} GiB each"
    )

    _step("1. Tables in the DB system (the row store owns the data)")
    started = time.perf_counter()
    db.sql("CREATE DATABASE shop")
    db.sql("CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(40), region VARCHAR(8))")
    db.sql(
        "INSERT INTO shop.customers SELECT value, concat('customer ', value), "
        "CASE value % 3 WHEN 0 THEN 'EMEA' WHEN 1 THEN 'AMER' ELSE 'APAC' END FROM generate_series(1, 1000)"
    )
    db.sql(
        "CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, product VARCHAR(20), "
        "amount DECIMAL(10,2), placed DATE)"
    )
    db.sql(f"""
        INSERT INTO shop.orders
        SELECT value, (value * 7919) % 1000 + 1,
               CASE value % 5 WHEN 0 THEN 'Keyboard' WHEN 1 THEN 'Mouse' WHEN 2 THEN 'Monitor'
                              WHEN 3 THEN 'Laptop' ELSE 'Headset' END,
               CAST((value * 104729) % 100000 AS DECIMAL(10,2)) / 100,
               DATE '2024-01-01' + CAST(value / {max(rows // 365, 1)} AS INT)
        FROM generate_series(1, {rows})""")
    print(f"inserted 1,000 customers and {rows:,} orders in {time.perf_counter() - started:.1f} s")

    _step("2. SECONDARY_LOAD: a columnar, partitioned copy in the cluster's memory")
    started = time.perf_counter()
    db.sql("ALTER TABLE shop.customers SECONDARY_LOAD")
    db.sql("ALTER TABLE shop.orders SECONDARY_LOAD")
    print(f"loaded in {time.perf_counter() - started:.1f} s")
    for table in db.tables():
        print(
            f"  {table['database']}.{table['table']}: {table['rows']:,} rows, {table['bytes'] / 2**20:.1f} MiB "
            f"in {table['chunks']} chunks over {table['partitions']} partitions"
        )

    _step("3. EXPLAIN: SELECTs are offloaded to the cluster while its data is fresh")
    revenue = """
        SELECT c.region, count(*) AS orders, sum(o.amount) AS revenue
        FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id
        GROUP BY c.region ORDER BY revenue DESC"""
    print(f"engine: {_engine(db, revenue)}")
    _show(db, revenue, "revenue by region, in the cluster")
    db.sql("SET use_secondary_engine = OFF")
    print(f"\nwith use_secondary_engine = OFF, engine: {_engine(db, revenue)}")
    _show(db, revenue, "the same query in the row store")
    db.sql("SET use_secondary_engine = ON")

    _step("4. DML commits in the row store and propagates to the cluster in small batches")
    db.sql(
        "UPDATE shop.orders SET amount = amount * 2 WHERE product = 'Laptop' AND placed < DATE '2024-02-01'"
    )
    db.sql("DELETE FROM shop.orders WHERE id % 100 = 0")
    db.sql("INSERT INTO shop.orders VALUES (9000000001, 1, 'Headset', 99.99, DATE '2025-01-01')")
    db.sync()  # the propagator runs on its own; sync() waits for it
    count = "SELECT count(*), sum(amount) FROM shop.orders"
    on = db.sql(count).fetchone()
    db.sql("SET use_secondary_engine = OFF")
    off = db.sql(count).fetchone()
    db.sql("SET use_secondary_engine = ON")
    print(f"cluster: {on[0]:,} orders, {on[1]}; row store: {off[0]:,} orders, {off[1]}")

    _step("5. Status tables, as HeatWave names them")
    _show(
        db,
        "SELECT NAME, LOAD_STATUS, POOL_TYPE, NROWS, SNAPSHOT_SCN FROM performance_schema.rpd_tables, "
        "performance_schema.rpd_table_id WHERE rpd_tables.ID = rpd_table_id.ID ORDER BY NAME",
        "performance_schema.rpd_tables",
    )
    _show(
        db,
        "SELECT * FROM performance_schema.global_status WHERE variable_name LIKE 'rapid_change_propagation%'",
        "change propagation",
    )

    _step("6. An external Delta table (written by delta-rs): in place, loaded, refreshed")
    lake = folder / "lake" / "web_orders"
    shutil.copytree(DEMO_DATA / "delta_orders", lake)
    db.sql(
        "CREATE EXTERNAL TABLE shop.web_orders (order_id INT, customer_id INT, product LONGTEXT, amount DOUBLE) "
        f"FILE_FORMAT = (FORMAT delta) FILES = (URI '{lake.as_uri()}/')"
    )
    web = "SELECT count(*) AS orders, round(sum(amount), 2) AS amount FROM shop.web_orders"
    print(f"in place, engine: {_engine(db, web)}")
    db.sql("ALTER TABLE shop.web_orders SECONDARY_LOAD")
    print(f"loaded, engine: {_engine(db, web)}")
    _show(db, web)
    # A new commit lands (version 1); the refresh reads only what it added.
    shutil.copytree(DEMO_DATA / "next_commit", lake, dirs_exist_ok=True)
    db.sql("SET @options = JSON_OBJECT('mode', 'normal', 'refresh_external_tables', TRUE)")
    refreshed = db.sql(
        'CALL sys.HEATWAVE_LOAD(CAST(\'[{"db_name": "shop", "tables": '
        '[{"table_name": "web_orders"}]}]\' AS JSON), @options)'
    ).fetchall()
    for name, what in refreshed:
        print(f"{name}: {what}")
    _show(
        db,
        """SELECT c.region, count(*) AS web_orders, round(sum(w.amount), 2) AS amount
           FROM shop.web_orders w JOIN shop.customers c ON c.id = w.customer_id
           GROUP BY c.region ORDER BY c.region""",
        "the lakehouse joined with the row store, in the cluster",
    )

    _step("7. On the network: the MySQL protocol and Arrow Flight SQL")
    server = db.serve(mysql_port=0, flight_port=0)
    with socket.create_connection((server.host, server.mysql_port), timeout=5) as probe:
        greeting = probe.recv(256)
    version = greeting[5 : greeting.index(b"\0", 5)].decode()
    print(f"serving: MySQL {version} on {server.host}:{server.mysql_port}, Flight SQL on {server.flight_uri}")
    print(f"  mariadb -h {server.host} -P {server.mysql_port} -u root -e 'SELECT @@hostname'")
    print(f"  adbc_driver_flightsql.dbapi.connect('{server.flight_uri}')")
    print(f"standalone, on this database file: lakewave serve --database {folder / 'demo.db'}")
    server.close()
    db.close()


def _config_pairs(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    config: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            parser.error(f"--config takes key=value, got {pair!r}")
        config[key.strip()] = value.strip()
    return config


def _group_member_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """With ``--group FILE --member NAME``, the member's database, ports and
    options come from the group file."""
    from lakewave import group as lw_group

    if not args.member:
        parser.error("--group needs --member NAME")
    try:
        group = lw_group.read_file(args.group)
    except lw.Error as e:
        print(f"lakewave serve: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    member = next((m for m in group["members"] if m["name"] == args.member), None)
    if member is None:
        names = ", ".join(m["name"] for m in group["members"])
        print(
            f"lakewave serve: group file {args.group} has no member {args.member!r} (its members: {names})",
            file=sys.stderr,
        )
        raise SystemExit(1)
    Path(member["dir"]).mkdir(parents=True, exist_ok=True)
    args.database = os.path.join(member["dir"], "lakewave.db")
    args.host = group["host"]
    args.mysql_port = member["mysql_port"]
    args.flight_port = member["flight_port"]
    args.status_port = member["status_port"]
    if group.get("users_file") and not args.users_file:
        args.users_file = group["users_file"]
    if not args.instance_name:
        args.instance_name = member["name"]
    return {**member["config"], **member["shape"]}


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Serve one instance until SIGTERM or SIGINT, then stop cleanly: idle
    connections end at once, running statements get ``--grace`` seconds to
    finish before they are cancelled, committed changes are propagated and
    the database file is released."""
    group_options = _group_member_args(args, parser) if args.group else {}
    if args.member and not args.group:
        parser.error("--member needs --group FILE")
    config = {**group_options, **_config_pairs(args.config, parser)}
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
            source=args.source or os.environ.get("LAKEWAVE_SOURCE") or None,
        )
    except lw.Error as e:
        print(f"lakewave serve: {e}", file=sys.stderr)
        return 1
    member = None
    if args.group:
        try:
            running = {k: v for k, v in config.items() if k != "instance_name"}
            member = db.join_group(args.group, args.member, running)
        except lw.Error as e:
            print(f"lakewave serve: {e}", file=sys.stderr)
            db.close()
            return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = db.serve(
            host=args.host,
            mysql_port=args.mysql_port,
            flight_port=None if args.flight_port < 0 else args.flight_port,
            status_port=args.status_port,
            user=args.user,
            password=password,
            users_file=args.users_file,
            check_user=args.check_user or None,
            max_connections=args.max_connections,
            max_allowed_packet=args.max_allowed_packet,
            tls_certificate=args.tls_cert,
            tls_key=args.tls_key,
        )
    except lw.Error as e:
        print(f"lakewave serve: {e}", file=sys.stderr)
        db.close()
        return 1
    # A group member's reads wait for the group; its name is its member name.
    name = member.name if member is not None else db.sql("SELECT @@hostname").fetchone()[0]
    print(f"lakewave {lw.__version__} instance {name!r} serving {args.database or '(in memory)'}")
    print(f"  MySQL protocol: {server.host}:{server.mysql_port}")
    if server.flight_uri is not None:
        print(f"  Flight SQL:     {server.flight_uri}")
    if server.status_port is not None:
        print(f"  status:         http://{server.host}:{server.status_port}/health")
    if member is not None:
        print(f"  group member:   {member.name} of {args.group}")
    print("ready for connections", flush=True)
    while not stop.wait(0.5):
        pass
    print("lakewave serve: stopping", flush=True)
    server.close(grace=args.grace)
    if member is not None:
        member.stop()
    try:
        db.sync()
    finally:
        db.close()
    print("lakewave serve: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakewave")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "demo", help="the story in a minute: row store, offload, propagation, a Delta table, the server"
    )
    run.add_argument("--rows", type=int, default=DEMO_ROWS)
    srv = commands.add_parser("serve", help="serve an instance over the MySQL protocol and Arrow Flight SQL")
    srv.add_argument("--database", metavar="PATH", help="the database file (default: in memory)")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    srv.add_argument("--mysql-port", type=int, default=3306, help="MySQL protocol port (0: any free one)")
    srv.add_argument(
        "--flight-port", type=int, default=32010, help="Arrow Flight SQL port (0: any free one; -1: none)"
    )
    srv.add_argument("--status-port", type=int, default=None, help="HTTP status port (GET /health)")
    srv.add_argument("--tls-cert", metavar="PEM", help="certificate chain: both endpoints offer TLS")
    srv.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
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
        "--source",
        metavar="URL",
        default=None,
        help="a MariaDB server as the DB system: mysql://user:password@host:3306/db "
        "(default: $LAKEWAVE_SOURCE; keeps the password out of the process list)",
    )
    srv.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE", help="any connect() option"
    )
    srv.add_argument(
        "--grace", type=float, default=5.0, help="seconds running statements get to finish on stop"
    )
    srv.add_argument("--group", metavar="FILE", help="serve as a member of the HA group in this group file")
    srv.add_argument("--member", metavar="NAME", help="which member of --group this process is")
    grp = commands.add_parser(
        "group", help="an HA group: init, start, status, switchover, update, stop, haproxy-config"
    )
    actions = grp.add_subparsers(dest="action", required=True)
    g_init = actions.add_parser("init", help="write a group file for a group on loopback")
    g_init.add_argument("file", type=Path)
    g_init.add_argument("--dir", type=Path, required=True, help="where the members' directories go")
    g_init.add_argument("--members", type=int, default=3, help="voting members (odd; default 3)")
    g_init.add_argument("--replicas", type=int, default=2, help="read replicas (default 2)")
    g_init.add_argument("--base-port", type=int, default=13306, help="first port (default 13306)")
    g_init.add_argument("--name", help="the group's name (default: the directory's)")
    g_init.add_argument("--user", help="an account for every member (with --password)")
    g_init.add_argument("--password", help="its password (default: $LAKEWAVE_PASSWORD)")
    g_switch = actions.add_parser("switchover", help="a controlled failover to another voting member")
    g_switch.add_argument("file", type=Path)
    g_switch.add_argument(
        "--to", metavar="NAME", help="the new primary (default: the most caught-up secondary)"
    )
    g_switch.add_argument("--json", action="store_true", help="the steps taken, as JSON")
    g_update = actions.add_parser("update", help="roll a shape or configuration change through the members")
    g_update.add_argument("file", type=Path)
    g_update.add_argument("--shape", default="", metavar="K=V,...", help="nodes, memory_per_node, threads")
    g_update.add_argument("--config", default="", metavar="K=V,...", help="any connect() option")
    g_update.add_argument("--member", metavar="NAME", help="update one read replica's own settings only")
    g_update.add_argument("--json", action="store_true", help="the steps taken, as JSON")
    for action, text in (
        ("start", "start every member and HAProxy"),
        ("status", "each member's role, state, shape, config, position and lag"),
        ("stop", "stop HAProxy and every member"),
        ("haproxy-config", "print the HAProxy configuration for the group's endpoints"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("file", type=Path)
        if action == "status":
            sub.add_argument("--json", action="store_true", help="as JSON")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.rows)
    elif args.command == "serve":
        return serve(args, srv)
    elif args.command == "group":
        return group_command(args, grp)
    return 0


def group_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from lakewave import group as lw_group

    try:
        if args.action == "init":
            users_file = None
            if args.user:
                password = (
                    args.password if args.password is not None else os.environ.get("LAKEWAVE_PASSWORD", "")
                )
                users_file = args.dir.resolve() / "users"
                args.dir.mkdir(parents=True, exist_ok=True)
                lw_group.write_users_file(users_file, args.user, password)
            elif args.password is not None:
                parser.error("--password needs --user")
            lw_group.init(
                args.file,
                args.dir,
                members=args.members,
                replicas=args.replicas,
                base_port=args.base_port,
                name=args.name,
                users_file=users_file,
            )
            print(f"wrote {args.file}; start the group with: lakewave group start {args.file}")
        elif args.action == "start":
            current = lw_group.start(args.file)
            print(lw_group.format_status(current))
        elif args.action == "status":
            current = lw_group.status(args.file)
            print(json.dumps(current, indent=2) if args.json else lw_group.format_status(current))
        elif args.action == "stop":
            stopped = lw_group.stop(args.file)
            print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
        elif args.action == "switchover":
            say = None if args.json else print
            moved = lw_group.switchover(args.file, args.to, log=say)
            if args.json:
                print(json.dumps(moved, indent=2))
            else:
                print(f"primary: {moved['from']} -> {moved['to']} in {moved['seconds']} s")
        elif args.action == "update":
            shape = _pairs(args.shape, "--shape", parser)
            config = _pairs(args.config, "--config", parser)
            say = None if args.json else print
            done = lw_group.update(args.file, shape, config, member=args.member, log=say)
            if args.json:
                print(json.dumps(done, indent=2))
            else:
                print(lw_group.format_status(done["status"]))
        elif args.action == "haproxy-config":
            print(_internal.group_haproxy_config(os.fspath(args.file)), end="")
    except lw.Error as e:
        print(f"lakewave group {args.action}: {e}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, TimeoutError) as e:
        print(f"lakewave group {args.action}: {e}", file=sys.stderr)
        return 1
    return 0


def _pairs(text: str, option: str, parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"{option} takes key=value,..., got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


if __name__ == "__main__":
    sys.exit(main())
