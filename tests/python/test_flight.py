"""The Arrow Flight SQL endpoint, through ADBC's Flight SQL driver (its DB-API:
queries, prepared statements with parameters, updates, ``adbc_get_objects``)
and pyarrow's Flight client for what ADBC hides (tickets served by another
instance, raw commands); and TLS on both endpoints."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import lakewave as lw
import pyarrow as pa
import pyarrow.flight as fl
import pymysql
import pytest
from support import LONG_QUERY, wait_for

PASSWORD = "flight pw: with colon"


def seed(db: lw.Connection) -> None:
    db.sql("CREATE DATABASE shop")
    db.sql(
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2), "
        "made DATE, seen DATETIME, ok BOOLEAN)"
    )
    db.sql(
        "INSERT INTO shop.items VALUES "
        "(1, 'bolt', 0.25, DATE '2024-02-29', TIMESTAMP '2024-02-29 13:14:15.123456', true), "
        "(2, 'nut', 12.50, DATE '1999-12-31', TIMESTAMP '1999-12-31 23:59:59', false)"
    )
    db.sql("CREATE VIEW shop.cheap AS SELECT id, name FROM shop.items WHERE price < 1")


@pytest.fixture
def served(tmp_path: Path):
    db = lw.connect(tmp_path / "flight.db", threads=2, config={"instance_name": "lw-flight"})
    seed(db)
    server = db.serve(mysql_port=0, flight_port=0, user="app", password=PASSWORD)
    yield db, server
    db.close()


def connect(server: lw.Server, password: str = PASSWORD, **kwargs):
    return flight_sql.connect(
        server.flight_uri,
        db_kwargs={"username": "app", "password": password, **kwargs},
        autocommit=True,
    )


def protobuf_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, encoded by hand."""
    length = len(payload)
    varint = b""
    while True:
        byte = length & 0x7F
        length >>= 7
        varint += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return bytes([number << 3 | 2]) + varint + payload


def protobuf_fields(data: bytes) -> dict[int, bytes | int]:
    """The fields of one protobuf message (varints and length-delimited)."""

    def varint(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[at]
            value |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if byte < 0x80:
                return value, at

    fields: dict[int, bytes | int] = {}
    at = 0
    while at < len(data):
        key, at = varint(at)
        if key & 7 == 0:
            fields[key >> 3], at = varint(at)
        else:
            length, at = varint(at)
            fields[key >> 3], at = data[at : at + length], at + length
    return fields


def flight_sql_any(message: str, body: bytes) -> bytes:
    """A Flight SQL message packed in a protobuf Any."""
    url = f"type.googleapis.com/arrow.flight.protocol.sql.{message}".encode()
    return protobuf_field(1, url) + protobuf_field(2, body)


def statement_command(query: str) -> bytes:
    """A CommandStatementQuery, as a Flight SQL client sends it."""
    return flight_sql_any("CommandStatementQuery", protobuf_field(1, query.encode()))


def test_queries_return_the_arrow_the_instance_computes(served) -> None:
    db, server = served
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, price, made, seen, ok FROM shop.items ORDER BY id")
        table = cur.fetch_arrow_table()
    expected = pa.table(db.sql("SELECT id, name, price, made, seen, ok FROM shop.items ORDER BY id"))
    assert table.schema.field("price").type == pa.decimal128(10, 2)
    assert table.schema.field("made").type == pa.date32()
    assert table.equals(expected)
    row = table.to_pylist()[0]
    assert row["price"] == Decimal("0.25")
    assert row["made"] == dt.date(2024, 2, 29)
    assert row["seen"] == dt.datetime(2024, 2, 29, 13, 14, 15, 123456)
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@hostname, count(*) FROM shop.cheap")
        assert cur.fetchone() == ("lw-flight", 1)


def test_a_large_result_arrives_whole_in_message_sized_batches(served) -> None:
    db, server = served
    db.sql("CREATE TABLE big (id BIGINT PRIMARY KEY, note VARCHAR(200))")
    db.insert("big", pa.table({"id": range(200_000), "note": [f"note {i:>150}" for i in range(200_000)]}))
    db.sql("ALTER TABLE big SECONDARY_LOAD")
    expected = db.sql("SELECT * FROM big ORDER BY id").arrow()
    with connect(server) as conn, conn.cursor() as cur:
        # A plain scan: its batches are slices of the loaded chunks.
        cur.execute("SELECT * FROM big")
        table = cur.fetch_arrow_table()
    assert table.sort_by("id").equals(expected)
    batches = table.to_batches()
    # Each message holds up to about 2 MiB of rows (the result is ~33 MB),
    # not the thin slices the encoder cuts by the size of the chunk's
    # buffers (222 messages of 744 rows).
    assert 16 <= len(batches) <= 64, len(batches)
    assert max(b.nbytes for b in batches) <= 5 << 20


def test_a_process_that_exits_without_closing_its_server_exits_cleanly(tmp_path: Path) -> None:
    script = f"""
import adbc_driver_flightsql.dbapi as flight_sql
import lakewave as lw
db = lw.connect({str(tmp_path / "exit.db")!r})
db.sql("CREATE TABLE t (id INT PRIMARY KEY)")
db.sql("INSERT INTO t VALUES (1), (2)")
server = db.serve(mysql_port=0, flight_port=0, user="app", password="pw")
conn = flight_sql.connect(server.flight_uri, db_kwargs={{"username": "app", "password": "pw"}}, autocommit=True)
cur = conn.cursor()
cur.execute("SELECT count(*) FROM t")
print(cur.fetchall())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[(2,)]" in done.stdout
    assert "panicked" not in done.stderr, done.stderr


def test_prepared_statements_bind_parameters_and_updates_count_rows(served) -> None:
    db, server = served
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM shop.items WHERE id = ?", parameters=(2,))
        assert cur.fetchall() == [("nut",)]
        # The same text again with another value: a new binding.
        cur.execute("SELECT name FROM shop.items WHERE id = ?", parameters=(1,))
        assert cur.fetchall() == [("bolt",)]
        cur.executemany(
            "INSERT INTO shop.items (id, name, price) VALUES (?, ?, ?)",
            [(10, "washer", Decimal("0.05")), (11, "screw", Decimal("0.10"))],
        )
        assert cur.rowcount == 2
        cur.execute("UPDATE shop.items SET price = price * 2 WHERE id >= 10")
        cur.execute("SELECT sum(price) FROM shop.items WHERE id >= 10")
        assert cur.fetchone()[0] == Decimal("0.30")
        cur.execute("DELETE FROM shop.items WHERE id = ?", parameters=(11,))
    assert db.sql("SELECT count(*) FROM shop.items").fetchone() == (3,)


def test_each_login_is_a_session_of_its_own(served) -> None:
    db, server = served
    with connect(server) as first, connect(server) as second:
        a, b = first.cursor(), second.cursor()
        a.execute("SET @answer = 41")
        a.execute("SELECT @answer + 1")
        assert a.fetchone() == (42,)
        b.execute("SELECT @answer")
        assert b.fetchone() == (None,)
        a.execute("USE shop")
        a.execute("SELECT count(*) FROM items")
        assert a.fetchone() == (2,)
        a.execute("BEGIN")
        a.execute("INSERT INTO items (id, name) VALUES (20, 'pending')")
        b.execute("SELECT count(*) FROM shop.items")
        assert b.fetchone() == (2,)
        a.execute("SELECT count(*) FROM items")
        assert a.fetchone() == (3,)
        a.execute("COMMIT")
        b.execute("SELECT count(*) FROM shop.items")
        assert b.fetchone() == (3,)
        # Both logins are sessions of the instance, named by their user.
        users = [row[1] for row in db.sql("SHOW PROCESSLIST").fetchall()]
        assert users.count("app") == 2
        a.close()
        b.close()

    # A session ends with the connection its client logged in on.
    def app_sessions() -> int:
        return [row[1] for row in db.sql("SHOW PROCESSLIST").fetchall()].count("app")

    wait_for(lambda: app_sessions() == 0, what="the sessions of closed connections to end")


def test_transactions_commit_roll_back_and_stay_their_own(served) -> None:
    """ADBC without autocommit runs in a Flight SQL transaction."""
    db, server = served
    count = "SELECT count(*) FROM shop.items"
    with (
        flight_sql.connect(
            server.flight_uri,
            db_kwargs={"username": "app", "password": PASSWORD},
            autocommit=False,
        ) as conn,
        connect(server) as other,
    ):
        cur, watcher = conn.cursor(), other.cursor()
        cur.execute("INSERT INTO shop.items (id, name) VALUES (30, 'held')")
        cur.execute(count)
        assert cur.fetchone() == (3,)  # the transaction sees its own write
        watcher.execute(count)
        assert watcher.fetchone() == (2,)  # nobody else does yet
        assert db.sql(count).fetchone() == (2,)
        conn.rollback()
        cur.execute(count)
        assert cur.fetchone() == (2,)
        cur.execute("INSERT INTO shop.items (id, name) VALUES (31, 'kept')")
        cur.execute("SELECT name FROM shop.items WHERE id = ?", parameters=(31,))
        assert cur.fetchall() == [("kept",)]  # a prepared query in the transaction
        conn.commit()
        watcher.execute("SELECT name FROM shop.items WHERE id >= 30")
        assert watcher.fetchall() == [("kept",)]
        # A failed statement inside a transaction leaves it usable.
        with pytest.raises(adbc_driver_manager.Error, match="1062"):
            cur.execute("INSERT INTO shop.items (id, name) VALUES (31, 'again')")
        cur.execute("INSERT INTO shop.items (id, name) VALUES (32, 'after the error')")
        conn.commit()
        assert db.sql("SELECT count(*) FROM shop.items WHERE id >= 30").fetchone() == (2,)
    # A transaction left open by a client that goes away is rolled back.
    conn = flight_sql.connect(
        server.flight_uri, db_kwargs={"username": "app", "password": PASSWORD}, autocommit=False
    )
    conn.cursor().execute("INSERT INTO shop.items (id, name) VALUES (33, 'abandoned')")
    conn.close()
    wait_for(
        lambda: all(row[1] != "app" for row in db.sql("SHOW PROCESSLIST").fetchall()),
        what="the abandoned transaction's session to end",
    )
    assert db.sql("SELECT count(*) FROM shop.items WHERE id = 33").fetchone() == (0,)


def test_transaction_ids_are_checked(served) -> None:
    """Raw Flight calls: a made-up or ended transaction id is an error (pyarrow
    raises its Arrow errors for some gRPC codes, Flight errors for others)."""
    _, server = served
    client = fl.FlightClient(server.flight_uri)
    token = client.authenticate_basic_token("app", PASSWORD)
    options = fl.FlightCallOptions(headers=[token])

    def action(kind: str, body: bytes) -> bytes:
        results = list(client.do_action(fl.Action(kind, body), options))
        return results[0].body.to_pybytes() if results else b""

    begin = flight_sql_any("ActionBeginTransactionRequest", b"")
    # ActionBeginTransactionResult { transaction_id = 1 }, in an Any.
    result = protobuf_fields(protobuf_fields(action("BeginTransaction", begin))[2])
    transaction_id = result[1]
    assert len(transaction_id) == 48
    with pytest.raises(pa.ArrowException, match="1210.*already open"):
        action("BeginTransaction", begin)

    def end(tid: bytes, how: int) -> None:
        body = protobuf_field(1, tid) + bytes([0x10, how])
        action("EndTransaction", flight_sql_any("ActionEndTransactionRequest", body))

    with pytest.raises(pa.ArrowException, match="1210.*unknown or has ended"):
        end(b"0" * 64, 1)
    with pytest.raises(pa.ArrowException, match="1210.*COMMIT or ROLLBACK"):
        end(transaction_id, 0)
    end(transaction_id, 2)
    with pytest.raises(pa.ArrowException, match="1210.*unknown or has ended"):
        end(transaction_id, 1)
    # A statement naming an unknown transaction is refused, and the server serves on.
    command = flight_sql_any(
        "CommandStatementQuery", protobuf_field(1, b"SELECT 1") + protobuf_field(2, b"nope")
    )
    with pytest.raises(pa.ArrowException, match="1210"):
        client.get_flight_info(fl.FlightDescriptor.for_command(command), options)
    # Without a login (credentials on each call) there is no session to hold one.
    basic = base64.b64encode(f"app:{PASSWORD}".encode())
    per_call = fl.FlightCallOptions(headers=[(b"authorization", b"Basic " + basic)])
    with pytest.raises(pa.ArrowException, match="1210.*logged-in session"):
        list(client.do_action(fl.Action("BeginTransaction", begin), per_call))
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_prepared_statements_report_their_parameter_types(served) -> None:
    _, server = served
    with connect(server) as conn, conn.cursor() as cur:
        cur.adbc_prepare("SELECT name FROM shop.items WHERE id = ? AND name <> ?")
        schema = cur.adbc_prepare("SELECT name FROM shop.items WHERE id = ? AND name <> ?")
        assert [f.name for f in schema] == ["$1", "$2"]
        assert pa.types.is_integer(schema.field(0).type)
        assert pa.types.is_string(schema.field(1).type) or pa.types.is_string_view(schema.field(1).type)
        # A marker nothing types is null ("any").
        assert cur.adbc_prepare("SELECT ?").field(0).type == pa.null()


def test_get_objects_lists_catalog_databases_tables_and_columns(served) -> None:
    _, server = served
    with connect(server) as conn:
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        catalogs = {c["catalog_name"]: c for c in objects}
        assert "lakewave" in catalogs
        schemas = {s["db_schema_name"]: s for s in catalogs["lakewave"]["catalog_db_schemas"]}
        tables = {t["table_name"]: t for t in schemas["shop"]["db_schema_tables"]}
        assert tables["items"]["table_type"] == "TABLE"
        assert tables["cheap"]["table_type"] == "VIEW"
        columns = [c["column_name"] for c in tables["items"]["table_columns"]]
        assert columns == ["id", "name", "price", "made", "seen", "ok"]
        assert conn.adbc_get_table_schema("items", db_schema_filter="shop").names == columns
        assert set(conn.adbc_get_table_types()) == {"TABLE", "EXTERNAL TABLE", "VIEW"}
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "lakewave"


def test_errors_carry_mysql_numbers_and_the_server_keeps_serving(served) -> None:
    _, server = served
    with connect(server) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match=r"ERROR 1146 \(42S02\)"):
            cur.execute("SELECT * FROM shop.missing")
        with pytest.raises(adbc_driver_manager.Error, match="ERROR 1064"):
            cur.execute("SELEKT 1")
        with pytest.raises(adbc_driver_manager.Error, match="ERROR 1062"):
            cur.execute("INSERT INTO shop.items (id, name) VALUES (1, 'again')")
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    with pytest.raises(adbc_driver_manager.Error, match="1045"), connect(server, password="wrong") as conn:
        conn.cursor().execute("SELECT 1")
    client = fl.FlightClient(server.flight_uri)
    with pytest.raises(fl.FlightUnauthenticatedError):
        client.get_flight_info(
            fl.FlightDescriptor.for_command(statement_command("SELECT 1")),
            fl.FlightCallOptions(headers=[(b"authorization", b"Bearer not-a-token")]),
        )
    with pytest.raises(fl.FlightUnauthenticatedError, match="1045"):
        # No credentials: the account has a password.
        client.get_flight_info(fl.FlightDescriptor.for_command(statement_command("SELECT 1")))
    # pyarrow raises ArrowInvalid for gRPC INVALID_ARGUMENT and RESOURCE_EXHAUSTED.
    with pytest.raises(pa.ArrowInvalid, match="not issued by a lakewave server"):
        token = client.authenticate_basic_token("app", PASSWORD)
        forged = flight_sql_any("TicketStatementQuery", protobuf_field(1, b"abc"))
        client.do_get(fl.Ticket(forged), fl.FlightCallOptions(headers=[token])).read_all()
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.items")
        assert cur.fetchone() == (2,)


def test_tickets_are_served_by_any_instance_with_the_same_tables(tmp_path: Path) -> None:
    first = lw.connect(tmp_path / "a.db", config={"instance_name": "a"})
    second = lw.connect(tmp_path / "b.db", config={"instance_name": "b"})
    for db in (first, second):
        seed(db)
    server_a = first.serve(mysql_port=0, flight_port=0)
    server_b = second.serve(mysql_port=0, flight_port=0)
    try:
        query = "SELECT @@hostname AS host, name FROM shop.items ORDER BY id"
        info = fl.FlightClient(server_a.flight_uri).get_flight_info(
            fl.FlightDescriptor.for_command(statement_command(query))
        )
        assert info.schema.names == ["host", "name"]
        ticket = info.endpoints[0].ticket
        from_b = fl.FlightClient(server_b.flight_uri).do_get(ticket).read_all()
        assert from_b.to_pylist() == [{"host": "b", "name": "bolt"}, {"host": "b", "name": "nut"}]
        from_a = fl.FlightClient(server_a.flight_uri).do_get(ticket).read_all()
        assert from_a.column("host").to_pylist() == ["a", "a"]
    finally:
        first.close()
        second.close()


def test_a_client_that_goes_away_cancels_its_query_and_kill_query_stops_one(served) -> None:
    db, server = served

    def running() -> list:
        return [p for p in db.sql("SHOW PROCESSLIST").fetchall() if p[-1] and "generate_series" in p[-1]]

    client = fl.FlightClient(server.flight_uri)
    token = client.authenticate_basic_token("app", PASSWORD)
    info = client.get_flight_info(
        fl.FlightDescriptor.for_command(statement_command(LONG_QUERY)),
        fl.FlightCallOptions(headers=[token]),
    )
    reader = client.do_get(info.endpoints[0].ticket, fl.FlightCallOptions(headers=[token]))
    wait_for(lambda: running(), what="the query to start")
    reader.cancel()
    client.close()
    wait_for(lambda: not running(), timeout=10, what="the query to stop")

    failure: list[BaseException] = []

    def run() -> None:
        try:
            with connect(server) as conn, conn.cursor() as cur:
                cur.execute(LONG_QUERY)
                cur.fetchall()
        except BaseException as e:  # noqa: BLE001 - the test reads it
            failure.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: running(), what="the second query to start")
    db.sql(f"KILL QUERY {running()[0][0]}")
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert failure and "1317" in str(failure[0])


def test_logins_beyond_max_connections_get_1040_and_anonymous_needs_a_password_less_account(
    tmp_path: Path,
) -> None:
    db = lw.connect()
    server = db.serve(mysql_port=0, flight_port=0, user="app", password="pw", max_connections=2)
    try:
        clients = [fl.FlightClient(server.flight_uri) for _ in range(3)]
        clients[0].authenticate_basic_token("app", "pw")
        clients[1].authenticate_basic_token("app", "pw")
        with pytest.raises(pa.ArrowInvalid, match="1040"):
            clients[2].authenticate_basic_token("app", "pw")
    finally:
        db.close()
    open_db = lw.connect()
    server = open_db.serve(mysql_port=0, flight_port=0)
    try:
        # The default account (root, no password): no credentials needed.
        with flight_sql.connect(server.flight_uri, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0].startswith("root@")
    finally:
        open_db.close()


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # OpenSSL trusts a self-signed certificate as its own CA only if it may sign certificates.
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_on_both_endpoints_and_bad_certificates_are_refused(tmp_path: Path) -> None:
    cert, key = write_certificate(tmp_path)
    db = lw.connect()
    seed(db)
    server = db.serve(
        mysql_port=0, flight_port=0, user="app", password=PASSWORD, tls_certificate=cert, tls_key=key
    )
    try:
        assert server.flight_uri.startswith("grpc+tls://")
        with (
            flight_sql.connect(
                server.flight_uri,
                db_kwargs={
                    "username": "app",
                    "password": PASSWORD,
                    "adbc.flight.sql.client_option.tls_root_certs": cert.read_text(),
                },
                autocommit=True,
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT count(*) FROM shop.items")
            assert cur.fetchone() == (2,)
        with (
            pymysql.connect(
                host=server.host,
                port=server.mysql_port,
                user="app",
                password=PASSWORD,
                ssl_ca=str(cert),
                ssl_verify_cert=True,
            ) as conn,
            conn.cursor() as cur,
        ):
            assert conn._sock.version().startswith("TLS")  # the socket is TLS
            cur.execute("SELECT count(*) FROM shop.items")
            assert cur.fetchone() == (2,)
        # Plain connections still work on the MySQL port.
        with pymysql.connect(host=server.host, port=server.mysql_port, user="app", password=PASSWORD) as conn:
            conn.ping()
    finally:
        db.close()
    db = lw.connect()
    try:
        with pytest.raises(lw.InterfaceError, match="cannot be read"):
            db.serve(mysql_port=0, tls_certificate=tmp_path / "missing.pem", tls_key=key)
        with pytest.raises(lw.InterfaceError, match="both a certificate and its key"):
            db.serve(mysql_port=0, tls_certificate=cert)
        with pytest.raises(lw.InterfaceError, match="holds no PEM private key"):
            db.serve(mysql_port=0, tls_certificate=cert, tls_key=cert)
        (tmp_path / "other").mkdir()
        _, other_key = write_certificate(tmp_path / "other")
        with pytest.raises(lw.InterfaceError, match="does not fit the certificate"):
            db.serve(mysql_port=0, tls_certificate=cert, tls_key=other_key)
        # Nothing was left listening: the same call with good files works.
        db.serve(mysql_port=0, flight_port=0, tls_certificate=cert, tls_key=key).close()
    finally:
        db.close()
