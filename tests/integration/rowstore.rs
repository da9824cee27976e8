//! The DB system: DDL and DML on the row store, change propagation to the
//! cluster, offload routing, status tables, failure and restart.

use std::time::{Duration, Instant};

use lakewave::ErrorKind;

use crate::common::Db;

fn shop(db: &Db) {
    db.exec(
        "CREATE TABLE orders (order_id INT PRIMARY KEY, product VARCHAR(20) NOT NULL, \
         amount DECIMAL(10,2), placed DATE, at DATETIME, paid BOOLEAN, note TEXT)",
    );
    db.exec(
        "INSERT INTO orders VALUES \
         (1, 'Keyboard', 120.50, '2024-01-02', '2024-01-02 10:00:00', true, NULL), \
         (2, 'Mouse', 25.90, '2024-01-03', '2024-01-03 11:30:00.5', false, 'gift'), \
         (3, 'Screen', 300.00, NULL, NULL, NULL, 'x')",
    );
}

fn engine(db: &Db, query: &str) -> String {
    db.rows(&format!("EXPLAIN {query}"))[0].clone()
}

#[test]
fn dml_on_the_row_store_and_offload_give_the_same_answers() {
    let db = Db::new(&[("nodes", "2")]);
    shop(&db);
    let query = "SELECT product, amount, placed, at, paid, note FROM orders ORDER BY order_id";
    let before = db.rows(query);
    assert!(
        engine(&db, query).contains("not loaded"),
        "{}",
        engine(&db, query)
    );
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    assert!(
        engine(&db, query).contains("cluster (offloaded"),
        "{}",
        engine(&db, query)
    );
    assert_eq!(db.rows(query), before);

    db.exec("UPDATE orders SET amount = amount * 2, note = 'doubled' WHERE order_id >= 2");
    db.exec("DELETE FROM orders WHERE product = 'Keyboard'");
    db.exec("REPLACE INTO orders VALUES (3, 'Screen', 1.25, '2024-02-01', NULL, true, 'replaced')");
    db.exec("INSERT INTO orders (order_id, product) VALUES (4, 'Cable')");
    // Read-your-writes: the cluster answer already has every change.
    let on = db.rows(query);
    db.exec("SET use_secondary_engine = OFF");
    assert!(engine(&db, query).contains("OFF"));
    let off = db.rows(query);
    assert_eq!(on, off);
    assert_eq!(off.len(), 3);
    assert!(
        off[0].contains("51.80") && off[0].contains("doubled"),
        "{off:?}"
    );
    assert!(
        off[1].contains("1.25") && off[1].contains("replaced"),
        "{off:?}"
    );
}

#[test]
fn transactions_are_atomic_and_statements_undo_only_themselves() {
    let db = Db::new(&[]);
    shop(&db);
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    db.exec("BEGIN");
    db.exec("INSERT INTO orders (order_id, product) VALUES (10, 'a')");
    // Inside the transaction the query reads its own uncommitted write on the row store.
    let q = "SELECT count(*) FROM orders";
    assert!(engine(&db, q).contains("uncommitted"));
    assert_eq!(db.rows(q), vec!["4"]);
    let dup = db.sql("INSERT INTO orders (order_id, product) VALUES (11, 'b'), (1, 'dup')");
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::Integrity);
    assert_eq!(
        db.rows(q),
        vec!["4"],
        "the failed statement left nothing behind"
    );
    db.exec("ROLLBACK");
    assert_eq!(db.rows(q), vec!["3"]);
    assert!(engine(&db, q).contains("cluster (offloaded"));
    db.exec("BEGIN; INSERT INTO orders (order_id, product) VALUES (12, 'c'); COMMIT");
    assert_eq!(db.rows(q), vec!["4"]);
}

#[test]
fn bad_input_is_a_typed_error_that_changes_nothing() {
    let db = Db::new(&[]);
    shop(&db);
    let cases = [
        (
            "INSERT INTO orders VALUES (9, 'x', 'abc', NULL, NULL, NULL, NULL)",
            ErrorKind::Data,
        ),
        (
            "INSERT INTO orders (order_id, product) VALUES (9, 'much too long for twenty')",
            ErrorKind::Data,
        ),
        (
            "INSERT INTO orders (order_id, product) VALUES (1, 'dup')",
            ErrorKind::Integrity,
        ),
        (
            "INSERT INTO orders (order_id) VALUES (9)",
            ErrorKind::Integrity,
        ),
        (
            "INSERT INTO orders (order_id, nope) VALUES (9, 1)",
            ErrorKind::ColumnNotFound,
        ),
        ("INSERT INTO missing VALUES (1)", ErrorKind::TableNotFound),
        (
            "UPDATE orders SET order_id = 2 WHERE order_id = 1",
            ErrorKind::Integrity,
        ),
        ("UPDATE orders SET amount = 'lots'", ErrorKind::Data),
        (
            "INSERT INTO orders VALUES (9, 'x', 1e20, NULL, NULL, NULL, NULL)",
            ErrorKind::Data,
        ),
        ("CREATE TABLE orders (a INT)", ErrorKind::TableExists),
        ("CREATE TABLE t2 (a BLOB)", ErrorKind::Programming),
        ("INSERT INTO orders VALUES (", ErrorKind::Syntax),
        (
            "SET use_secondary_engine = sometimes",
            ErrorKind::Programming,
        ),
    ];
    let before = db.rows("SELECT * FROM orders ORDER BY order_id");
    for (statement, kind) in cases {
        let error = db.sql(statement).expect_err(statement);
        assert_eq!(error.kind(), kind, "{statement}: {}", error.chain_message());
    }
    assert_eq!(db.rows("SELECT * FROM orders ORDER BY order_id"), before);
    let message = db
        .sql("INSERT INTO orders (order_id, product) VALUES (1, 'dup')")
        .unwrap_err()
        .to_string();
    assert!(message.contains("main.orders"), "{message}");
}

#[test]
fn forced_offload_fails_naming_the_table() {
    let db = Db::new(&[]);
    shop(&db);
    db.exec("SET use_secondary_engine = FORCED");
    let error = db.sql("SELECT count(*) FROM orders").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotSupported);
    assert!(error.to_string().contains("main.orders"), "{error}");
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    assert_eq!(db.rows("SELECT count(*) FROM orders"), vec!["3"]);
}

#[test]
fn status_tables_show_loaded_tables_and_nodes() {
    let db = Db::new(&[("nodes", "2")]);
    shop(&db);
    db.exec("CREATE DATABASE shop");
    db.exec("CREATE TABLE shop.items (id BIGINT PRIMARY KEY, name TEXT)");
    db.exec("INSERT INTO shop.items VALUES (1, 'a'), (2, 'b')");
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    db.exec("ALTER TABLE shop.items SECONDARY_LOAD");
    let rows = db.rows(
        "SELECT NAME, LOAD_STATUS, POOL_TYPE, NROWS FROM performance_schema.rpd_tables, \
         performance_schema.rpd_table_id WHERE rpd_tables.ID = rpd_table_id.ID ORDER BY NAME",
    );
    assert_eq!(
        rows,
        vec![
            "main.orders|AVAIL_RPDGSTABSTATE|TRANSACTIONAL|3",
            "shop.items|AVAIL_RPDGSTABSTATE|TRANSACTIONAL|2",
        ]
    );
    assert_eq!(
        db.rows(
            "SELECT VARIABLE_VALUE FROM performance_schema.global_status \
             WHERE VARIABLE_NAME = 'rapid_change_propagation_status'"
        ),
        vec!["ON"]
    );
    let nodes = db
        .rows("SELECT id, status, memory_usage > 0 FROM performance_schema.rpd_nodes ORDER BY id");
    assert_eq!(nodes, vec!["0|AVAIL_RNSTATE|true", "1|AVAIL_RNSTATE|true"]);
    let scn_before = db.rows("SELECT snapshot_scn FROM performance_schema.rpd_tables WHERE id = 1");
    db.exec("INSERT INTO orders (order_id, product) VALUES (7, 'x')");
    db.rows("SELECT count(*) FROM orders");
    let scn_after = db.rows("SELECT snapshot_scn FROM performance_schema.rpd_tables WHERE id = 1");
    assert!(scn_after[0].parse::<i64>().unwrap() > scn_before[0].parse::<i64>().unwrap());
    db.exec("ALTER TABLE orders SECONDARY_UNLOAD");
    assert_eq!(
        db.rows("SELECT count(*) FROM performance_schema.rpd_tables"),
        vec!["1"]
    );
}

#[test]
fn propagation_runs_in_the_background_within_the_interval() {
    let db = Db::new(&[
        ("read_your_writes", "false"),
        ("propagation_interval", "50ms"),
    ]);
    shop(&db);
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    db.exec("INSERT INTO orders (order_id, product) VALUES (5, 'late')");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if db.rows("SELECT count(*) FROM orders") == vec!["4"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change never reached the cluster"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ddl_on_a_loaded_table_is_carried_over() {
    let db = Db::new(&[]);
    shop(&db);
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    db.exec("ALTER TABLE orders RENAME TO purchases");
    let q = "SELECT count(*) FROM purchases";
    assert!(engine(&db, q).contains("cluster (offloaded"));
    assert_eq!(db.rows(q), vec!["3"]);
    db.exec("ALTER TABLE purchases ADD COLUMN rating INT");
    db.exec("UPDATE purchases SET rating = 5 WHERE order_id = 1");
    assert!(engine(&db, "SELECT rating FROM purchases").contains("cluster (offloaded"));
    assert_eq!(db.rows("SELECT sum(rating) FROM purchases"), vec!["5"]);
    db.exec("ALTER TABLE purchases DROP COLUMN note");
    assert_eq!(db.rows("SELECT count(*) FROM information_schema.columns WHERE table_name = 'purchases' AND table_catalog = 'lakewave'"), vec!["7"]);
    db.exec("TRUNCATE TABLE purchases");
    assert_eq!(db.rows(q), vec!["0"]);
    assert!(engine(&db, q).contains("cluster (offloaded"));
    db.exec("DROP TABLE purchases");
    assert_eq!(db.sql(q).unwrap_err().kind(), ErrorKind::TableNotFound);
    assert_eq!(
        db.rows("SELECT count(*) FROM performance_schema.rpd_tables"),
        vec!["0"]
    );
}

#[test]
fn restart_brings_loaded_tables_back_and_keeps_propagating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    {
        let db = Db::open(Some(&path), &[]);
        shop(&db);
        db.exec("ALTER TABLE orders SECONDARY_LOAD");
        db.exec("DELETE FROM orders WHERE order_id = 2");
    }
    let db = Db::open(Some(&path), &[]);
    let q = "SELECT order_id FROM orders ORDER BY order_id";
    assert!(
        engine(&db, q).contains("cluster (offloaded"),
        "{}",
        engine(&db, q)
    );
    assert_eq!(db.rows(q), vec!["1", "3"]);
    db.exec("INSERT INTO orders (order_id, product) VALUES (8, 'y')");
    assert_eq!(db.rows(q), vec!["1", "3", "8"]);
}

#[test]
fn running_out_of_memory_makes_a_table_stale_and_it_recovers() {
    let db = Db::new(&[
        ("memory_per_node", "200KB"),
        ("propagation_interval", "20ms"),
    ]);
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, s TEXT)");
    db.exec("INSERT INTO t SELECT value, 'row ' || value FROM generate_series(1, 100) AS g(value)");
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    db.exec(
        "INSERT INTO t SELECT value, repeat('y', 100) || value FROM generate_series(1000, 9000) AS g(value)",
    );
    let q = "SELECT count(*) FROM t";
    let explain = engine(&db, q);
    assert!(
        explain.contains("stale") && explain.contains("out of memory"),
        "{explain}"
    );
    assert_eq!(db.rows(q), vec!["8101"], "answered by the row store");
    db.exec("SET use_secondary_engine = FORCED");
    assert_eq!(db.sql(q).unwrap_err().kind(), ErrorKind::NotSupported);
    db.exec("SET use_secondary_engine = ON");
    let status = db.rows("SELECT load_status FROM performance_schema.rpd_tables");
    assert_eq!(status, vec!["STALE_RPDGSTABSTATE"]);
    // Make room; the idle propagator reloads the table on its own.
    db.exec("DELETE FROM t WHERE id >= 1000");
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.rows("SELECT load_status FROM performance_schema.rpd_tables")
        != vec!["AVAIL_RPDGSTABSTATE"]
    {
        assert!(Instant::now() < deadline, "the table was never reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(engine(&db, q).contains("cluster (offloaded"));
    assert_eq!(db.rows(q), vec!["100"]);
}

#[test]
fn changes_by_another_sqlite_client_are_captured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let db = Db::open(Some(&path), &[]);
    shop(&db);
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "INSERT INTO orders (order_id, product, amount) VALUES (20, 'Lamp', '9.99'); \
             UPDATE orders SET product = 'Mouse pad' WHERE order_id = 2; \
             DELETE FROM orders WHERE order_id = 3;",
        )
        .unwrap();
    let q = "SELECT order_id, product, amount FROM orders ORDER BY order_id";
    let on = db.rows(q);
    db.exec("SET use_secondary_engine = OFF");
    assert_eq!(on, db.rows(q));
    assert_eq!(
        on,
        vec!["1|Keyboard|120.50", "2|Mouse pad|25.90", "20|Lamp|9.99"]
    );
}

#[test]
fn a_batch_that_cannot_be_applied_marks_the_table_stale_until_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.db");
    let db = Db::open(Some(&path), &[]);
    shop(&db);
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    // Another client stores text that is not a decimal: the row store keeps
    // it (the column is TEXT in SQLite) but it cannot be propagated.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute("UPDATE orders SET amount = 'twelve' WHERE order_id = 1", [])
        .unwrap();
    let explain = engine(&db, "SELECT count(*) FROM orders");
    assert!(explain.contains("stale"), "{explain}");
    other
        .execute("UPDATE orders SET amount = '12.00' WHERE order_id = 1", [])
        .unwrap();
    // Not out of memory: it stays stale until reloaded by hand.
    std::thread::sleep(Duration::from_millis(300));
    assert!(engine(&db, "SELECT count(*) FROM orders").contains("stale"));
    db.exec("ALTER TABLE orders SECONDARY_UNLOAD; ALTER TABLE orders SECONDARY_LOAD");
    assert!(engine(&db, "SELECT count(*) FROM orders").contains("cluster (offloaded"));
    assert_eq!(
        db.rows("SELECT amount FROM orders WHERE order_id = 1"),
        vec!["12.00"]
    );
}

#[test]
fn a_full_disk_or_a_read_only_file_is_an_operational_error_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.db");
    {
        let db = Db::open(Some(&path), &[]);
        shop(&db);
        // SQLite's page limit stands in for a full disk.
        let pages: i64 = db
            .session
            .connection()
            .with_conn(|c| c.query_row("PRAGMA page_count", [], |r| r.get(0)))
            .unwrap();
        db.session
            .connection()
            .with_conn(|c| c.pragma_update(None, "max_page_count", pages + 1))
            .unwrap();
        let values: Vec<String> = (100..3000)
            .map(|i| {
                format!(
                    "({i}, 'p{i}', 1.00, NULL, NULL, NULL, '{}')",
                    "z".repeat(200)
                )
            })
            .collect();
        let error = db
            .sql(&format!("INSERT INTO orders VALUES {}", values.join(", ")))
            .unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::Operational,
            "{}",
            error.chain_message()
        );
        assert!(error.to_string().contains("disk is full"), "{error}");
        assert_eq!(db.rows("SELECT count(*) FROM orders"), vec!["3"]);
    }
    let uri = format!("file:{}?mode=ro", path.display());
    let db = Db::open(Some(std::path::Path::new(&uri)), &[]);
    assert_eq!(db.rows("SELECT count(*) FROM orders"), vec!["3"]);
    let error = db.sql("DELETE FROM orders").unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::Operational,
        "{}",
        error.chain_message()
    );
    assert!(error.to_string().contains("read-only"), "{error}");
    assert_eq!(db.rows("SELECT count(*) FROM orders"), vec!["3"]);
}
