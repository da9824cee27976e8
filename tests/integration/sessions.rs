//! One catalog, many sessions: names are one namespace across kinds, views
//! are shared and persisted, routing is decided per statement, sessions are
//! isolated and can be listed and killed, DB-system work never starves
//! queries, the change log is kept for every consumer, a second instance on
//! a file is refused, and every error has its MySQL number.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lakewave::ErrorKind;
use lakewave::cancel::Cancel;

use crate::common::{Db, orders};

fn shop(db: &Db) {
    db.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY, product VARCHAR(10) NOT NULL, amount DOUBLE)",
    );
    db.exec("INSERT INTO orders VALUES (1, 'pen', 2.5), (2, 'ink', 4.0), (3, 'pad', 1.0)");
}

fn errno(db: &Db, text: &str) -> u16 {
    match db.sql(text) {
        Ok(_) => panic!("`{text}` should fail"),
        Err(e) => e.code().errno,
    }
}

fn csv(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, "id,label\n1,a\n2,b\n").unwrap();
    path.display().to_string()
}

#[test]
fn every_name_is_one_entry_whatever_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::new(&[]);
    let file = csv(dir.path(), "t.csv");
    db.exec(&format!(
        "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT csv) FILES = (URI '{file}')"
    ));
    // A row-store table, a cluster table or a view cannot take its name.
    assert_eq!(errno(&db, "CREATE TABLE t (id INT PRIMARY KEY)"), 1050);
    assert_eq!(errno(&db, "CREATE TABLE t AS SELECT 1 AS x"), 1050);
    assert_eq!(
        errno(&db, "CREATE OR REPLACE TABLE t AS SELECT 1 AS x"),
        1050
    );
    assert_eq!(errno(&db, "CREATE VIEW t AS SELECT 1 AS x"), 1050);
    assert!(db.load("t", &[], orders(3, 3)).is_err());
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["2"]);
    // An external table cannot take a row-store table's name either.
    shop(&db);
    assert_eq!(
        errno(
            &db,
            &format!(
                "CREATE EXTERNAL TABLE orders FILE_FORMAT = (FORMAT csv) FILES = (URI '{file}')"
            )
        ),
        1050
    );
    db.exec("CREATE VIEW cheap AS SELECT id FROM orders WHERE amount < 3");
    assert_eq!(errno(&db, "CREATE TABLE cheap (id INT PRIMARY KEY)"), 1050);
    // DROP names the kind it drops.
    assert_eq!(errno(&db, "DROP TABLE cheap"), 1347);
    assert_eq!(errno(&db, "DROP VIEW orders"), 1347);
    assert_eq!(errno(&db, "DROP TABLE nothing_here"), 1051);
    db.exec("DROP TABLE IF EXISTS nothing_here");
    // Dropping the external table drops it, and only it.
    db.exec("DROP TABLE t");
    assert_eq!(errno(&db, "SELECT * FROM t"), 1146);
    assert_eq!(db.rows("SELECT count(*) FROM orders"), vec!["3"]);
    assert!(
        std::path::Path::new(&file).exists(),
        "the file is untouched"
    );
    // The name is free again, for any kind.
    db.exec("CREATE TABLE t AS SELECT 1 AS x");
    assert_eq!(db.rows("SELECT x FROM t"), vec!["1"]);
}

#[test]
fn views_are_shared_by_sessions_follow_the_route_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    {
        let db = Db::open(Some(&path), &[]);
        shop(&db);
        db.exec("CREATE VIEW cheap (item, price) AS SELECT product, amount FROM orders WHERE amount < 3");
        let other = db.other();
        assert_eq!(
            other.rows("SELECT item FROM cheap ORDER BY item"),
            vec!["pad", "pen"]
        );
        // The view is planned with the statement that reads it: on the row
        // store now, in the cluster once its table is loaded.
        let q = "SELECT count(*) FROM cheap";
        assert!(other.rows(&format!("EXPLAIN {q}"))[0].contains("not loaded"));
        db.exec("ALTER TABLE orders SECONDARY_LOAD");
        let explain = other.rows(&format!("EXPLAIN {q}"));
        assert!(explain[0].contains("cluster (offloaded"), "{explain:?}");
        assert!(explain[1].contains("main.cheap: view"), "{explain:?}");
        assert!(
            explain.iter().any(|l| l.contains("ClusterScanExec")),
            "{explain:?}"
        );
        other.exec("SET use_secondary_engine = OFF");
        let explain = other.rows(&format!("EXPLAIN {q}"));
        assert!(
            explain.iter().any(|l| l.contains("RowsScanExec")),
            "{explain:?}"
        );
        assert_eq!(db.rows(q), other.rows(q));
        db.exec("CREATE OR REPLACE VIEW cheap AS SELECT product FROM orders WHERE amount < 2");
        db.close();
    }
    let db = Db::open(Some(&path), &[]);
    assert_eq!(db.rows("SELECT * FROM cheap"), vec!["pad"]);
    // A view whose table is gone is reported as MySQL does.
    db.exec("DROP TABLE orders");
    assert_eq!(errno(&db, "SELECT * FROM cheap"), 1356);
    db.exec("DROP VIEW cheap");
    assert_eq!(errno(&db, "SELECT * FROM cheap"), 1146);
    // A view that reads itself is refused when read.
    db.exec("CREATE VIEW a AS SELECT 1 AS x");
    db.exec("CREATE TABLE base (x INT PRIMARY KEY)");
    db.exec("CREATE OR REPLACE VIEW b AS SELECT x FROM a");
    assert_eq!(db.rows("SELECT x FROM b"), vec!["1"]);
    db.exec("CREATE OR REPLACE VIEW a AS SELECT x FROM b");
    assert_eq!(errno(&db, "SELECT * FROM a"), 1462);
}

#[test]
fn explain_describes_the_plan_it_prints_while_another_session_unloads() {
    let db = Db::new(&[("nodes", "2")]);
    shop(&db);
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    let toggler = db.other();
    let stop = AtomicBool::new(false);
    let (cluster, row_store) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                toggler.exec("ALTER TABLE orders SECONDARY_UNLOAD");
                toggler.exec("ALTER TABLE orders SECONDARY_LOAD");
            }
        });
        let reader = db.other();
        let deadline = Instant::now() + Duration::from_secs(60);
        while (cluster.load(Ordering::Relaxed) < 20 || row_store.load(Ordering::Relaxed) < 20)
            && Instant::now() < deadline
        {
            let explain = reader.rows("EXPLAIN SELECT sum(amount) FROM orders");
            let on_cluster = explain[0].contains("cluster (offloaded");
            let scans_cluster = explain.iter().any(|l| l.contains("ClusterScanExec"));
            let scans_rows = explain.iter().any(|l| l.contains("RowsScanExec"));
            assert_eq!(on_cluster, scans_cluster, "{explain:?}");
            assert_eq!(!on_cluster, scans_rows, "{explain:?}");
            if on_cluster { &cluster } else { &row_store }.fetch_add(1, Ordering::Relaxed);
            // A query planned on a snapshot reads that snapshot even if the
            // table is unloaded before it runs.
            assert_eq!(reader.rows("SELECT sum(amount) FROM orders"), vec!["7.5"]);
        }
        stop.store(true, Ordering::Release);
    });
    assert!(cluster.load(Ordering::Relaxed) >= 20 && row_store.load(Ordering::Relaxed) >= 20);
}

#[test]
fn sessions_have_their_own_settings_variables_database_and_transaction() {
    let a = Db::new(&[]);
    shop(&a);
    a.exec("ALTER TABLE orders SECONDARY_LOAD");
    let b = a.other();
    a.exec("CREATE DATABASE other");
    a.exec("USE other");
    a.exec("CREATE TABLE here (x INT PRIMARY KEY)");
    assert_eq!(a.rows("SELECT database()"), vec!["other"]);
    assert_eq!(b.rows("SELECT database()"), vec!["main"]);
    assert_eq!(errno(&b, "SELECT * FROM here"), 1146);
    a.exec("USE main");
    a.exec("SET use_secondary_engine = OFF, @n = 40 + 2");
    assert_eq!(a.rows("SELECT @@use_secondary_engine, @n"), vec!["OFF|42"]);
    assert_eq!(
        b.rows("SELECT @@session.use_secondary_engine, @n"),
        vec!["ON|NULL"]
    );
    // Uncommitted writes are seen by their own session only.
    a.exec("BEGIN");
    a.exec("INSERT INTO orders VALUES (4, 'cap', 9.0)");
    assert_eq!(a.rows("SELECT count(*) FROM orders"), vec!["4"]);
    assert_eq!(b.rows("SELECT count(*) FROM orders"), vec!["3"]);
    assert!(b.rows("EXPLAIN SELECT count(*) FROM orders")[0].contains("cluster (offloaded"));
    a.exec("COMMIT");
    assert_eq!(b.rows("SELECT count(*) FROM orders"), vec!["4"]);
    // MySQL's autocommit = 0: a write opens a transaction that stays open.
    b.exec("SET autocommit = 0");
    b.exec("DELETE FROM orders WHERE id = 4");
    assert_eq!(a.rows("SELECT count(*) FROM orders"), vec!["4"]);
    b.exec("ROLLBACK");
    assert_eq!(b.rows("SELECT count(*) FROM orders"), vec!["4"]);
    b.exec("DELETE FROM orders WHERE id = 4");
    b.exec("SET autocommit = 1");
    assert_eq!(a.rows("SELECT count(*) FROM orders"), vec!["3"]);
    // Two sessions changing the same row: no lost update.
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        for db in [&a, &b] {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..25 {
                    db.exec("UPDATE orders SET amount = amount + 1 WHERE id = 1");
                }
            });
        }
    });
    assert_eq!(
        a.rows("SELECT amount FROM orders WHERE id = 1"),
        vec!["52.5"]
    );
}

#[test]
fn kill_query_stops_a_statement_and_kill_ends_a_session() {
    let db = Db::new(&[("threads", "2")]);
    let victim = db.other();
    let victim_id = victim.session.id();
    let slow = "SELECT count(DISTINCT a.value + b.value) FROM generate_series(1, 100000) a, \
                generate_series(1, 100000) b";
    std::thread::scope(|scope| {
        let running = scope.spawn(|| victim.sql(slow));
        // Wait until the process list shows the statement running.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = db.rows("SHOW PROCESSLIST");
            if list
                .iter()
                .any(|row| row.starts_with(&format!("{victim_id}|")) && row.contains("Query"))
            {
                assert!(
                    list.iter().any(|r| r.contains("generate_series")),
                    "{list:?}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{list:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        db.exec(&format!("KILL QUERY {victim_id}"));
        let error = running.join().unwrap().unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::Interrupted,
            "{}",
            error.chain_message()
        );
        assert_eq!(error.code().errno, 1317);
    });
    // The session is still usable after KILL QUERY.
    assert_eq!(victim.rows("SELECT 1"), vec!["1"]);
    // A statement waiting for another session's write lock is killed too.
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let holder = db.other();
    holder.exec("BEGIN");
    holder.exec("INSERT INTO t VALUES (1)");
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| victim.sql("INSERT INTO t VALUES (2)"));
        std::thread::sleep(Duration::from_millis(300));
        db.exec(&format!("KILL QUERY {victim_id}"));
        let error = waiting.join().unwrap().unwrap_err();
        assert_eq!(error.code().errno, 1317, "{}", error.chain_message());
    });
    holder.exec("COMMIT");
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["1"]);
    // KILL ends the session; its open transaction is rolled back.
    victim.exec("BEGIN");
    victim.exec("INSERT INTO t VALUES (3)");
    db.exec(&format!("KILL {victim_id}"));
    let error = victim.sql("SELECT 1").unwrap_err();
    assert_eq!(error.code().errno, 3169);
    let deadline = Instant::now() + Duration::from_secs(10);
    // The rollback frees the write lock: another session can write.
    while db.sql("INSERT INTO t VALUES (4)").is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(db.rows("SELECT id FROM t ORDER BY id"), vec!["1", "4"]);
    assert!(
        !db.rows("SHOW PROCESSLIST")
            .iter()
            .any(|r| r.starts_with(&format!("{victim_id}|")))
    );
    assert_eq!(errno(&db, "KILL 999999"), 1094);
    assert_eq!(errno(&db, "KILL QUERY 999999"), 1094);
}

#[test]
fn a_cancel_reaches_a_query_on_a_busy_runtime() {
    // Every worker is busy with the query; the cancel must still get through.
    let db = Db::new(&[("threads", "1")]);
    let cancel = Cancel::new();
    let text = "SELECT count(DISTINCT a.value + b.value) FROM generate_series(1, 100000) a, \
                generate_series(1, 100000) b";
    let result = db
        .instance
        .block_on(&cancel, text, db.session.sql(text, &[], &cancel))
        .unwrap();
    let remote = cancel.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        remote.cancel();
    });
    let error = db.instance.collect(&result, &cancel).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Interrupted);
    // Bounded only to keep a broken build from hanging the suite.
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn sixteen_sessions_mix_long_transactions_and_offloaded_queries() {
    let db = Db::new(&[("threads", "2"), ("lock_wait_timeout", "60s")]);
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, writer INT, v DOUBLE)");
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    let writers_in_transaction = AtomicUsize::new(0);
    let reads_during_transactions = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut writers = Vec::new();
        for w in 0..8i64 {
            let session = db.other();
            let active = &writers_in_transaction;
            writers.push(scope.spawn(move || {
                for round in 0..3i64 {
                    session.exec("BEGIN");
                    active.fetch_add(1, Ordering::SeqCst);
                    for step in 0..5i64 {
                        let id = (w * 100 + round * 10 + step) * 1000;
                        session.exec(&format!(
                            "INSERT INTO t SELECT {id} + value, {w}, value * 0.5 FROM generate_series(1, 200) AS g(value)"
                        ));
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                    session.exec("COMMIT");
                }
            }));
        }
        for _ in 0..8 {
            let session = db.other();
            let (active, reads, done) =
                (&writers_in_transaction, &reads_during_transactions, &done);
            scope.spawn(move || {
                let mut last = 0i64;
                while !done.load(Ordering::Acquire) {
                    let explain = session.rows("EXPLAIN SELECT count(*) FROM t");
                    assert!(explain[0].contains("cluster (offloaded"), "{explain:?}");
                    let count: i64 = session.rows("SELECT count(*) FROM t")[0].parse().unwrap();
                    // Whole transactions only, and never going back.
                    assert_eq!(count % 1000, 0, "a transaction seen in part: {count}");
                    assert!(count >= last, "{count} after {last}");
                    last = count;
                    if active.load(Ordering::SeqCst) > 0 {
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::Release);
    });
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["24000"]);
    assert!(
        reads_during_transactions.load(Ordering::Relaxed) > 0,
        "queries made no progress while transactions were open"
    );
}

#[test]
fn a_second_instance_on_one_file_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.db");
    let first = Db::open(Some(&path), &[]);
    shop(&first);
    let config = lakewave::instance::EngineConfig::from_options([("threads", "1")]).unwrap();
    let error = match lakewave::instance::Instance::open(config.clone(), Some(&path)) {
        Ok(_) => panic!("a second instance opened the same file"),
        Err(e) => e,
    };
    assert_eq!(error.kind(), ErrorKind::Operational);
    assert!(error.to_string().contains("one.db"), "{error}");
    assert!(
        error.to_string().contains("another lakewave instance"),
        "{error}"
    );
    first.close();
    let second = lakewave::instance::Instance::open(config, Some(&path)).unwrap();
    assert_eq!(second.loaded_tables().len(), 0);
}

#[test]
fn the_change_log_is_kept_for_every_consumer_and_positions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let before;
    {
        let db = Db::open(Some(&path), &[("propagation_interval", "20ms")]);
        db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
        db.exec("ALTER TABLE t SECONDARY_LOAD");
        // A consumer that is away (a replica, later) at the start of the log.
        let reader = lakewave::rowstore::log::LogReader::open(&db.instance.services().db).unwrap();
        reader.set_position("replica-1", 0).unwrap();
        for i in 0..50 {
            db.exec(&format!("INSERT INTO t VALUES ({i}, {i})"));
        }
        db.instance.sync().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        db.exec("INSERT INTO t VALUES (100, 100)");
        db.instance.sync().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        // The propagator has applied everything, the replica nothing: the
        // log is kept whole.
        assert_eq!(reader.entries().unwrap(), 51);
        let positions = db.instance.log_consumers().unwrap();
        let propagator = positions.iter().find(|c| c.name == "propagator").unwrap();
        assert_eq!(propagator.position, reader.last_seq().unwrap());
        before = propagator.position;
        // Once the replica has caught up, the log is pruned.
        reader.set_position("replica-1", before).unwrap();
        db.exec("INSERT INTO t VALUES (101, 101)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reader.entries().unwrap() > 2 {
            assert!(Instant::now() < deadline, "the log was never pruned");
            std::thread::sleep(Duration::from_millis(50));
        }
        reader.set_position("replica-1", 0).unwrap();
        db.close();
    }
    let db = Db::open(Some(&path), &[]);
    let positions = db.instance.log_consumers().unwrap();
    let propagator = positions.iter().find(|c| c.name == "propagator").unwrap();
    assert!(propagator.position > before, "{positions:?}");
    assert!(
        positions
            .iter()
            .any(|c| c.name == "replica-1" && c.position == 0)
    );
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["52"]);
}

#[test]
fn a_failing_propagator_shows_in_the_status_and_queries_stay_right() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let db = Db::open(
        Some(&path),
        &[
            ("propagation_interval", "20ms"),
            ("lock_wait_timeout", "200ms"),
        ],
    );
    shop(&db);
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    db.exec("INSERT INTO orders VALUES (9, 'nib', 1.0)");
    // Another SQLite client moves the change log away.
    let foreign = rusqlite::Connection::open(&path).unwrap();
    foreign
        .execute_batch("ALTER TABLE _lw_changes RENAME TO _lw_changes_away")
        .unwrap();
    let status = |name: &str| {
        db.rows(&format!(
            "SELECT variable_value FROM performance_schema.global_status WHERE variable_name = '{name}'"
        ))[0]
            .clone()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while status("rapid_change_propagation_status") != "OFF" {
        assert!(Instant::now() < deadline, "the failing cycles never showed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        status("rapid_change_propagation_failures")
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(status("rapid_change_propagation_last_error").contains("_lw_changes"));
    let reason = db.rows("SELECT stale_reason FROM performance_schema.rpd_tables");
    assert!(
        reason[0].contains("change propagation is failing"),
        "{reason:?}"
    );
    // Queries stay right: they fall back to the row store, and say why.
    let explain = db.rows("EXPLAIN SELECT count(*) FROM orders");
    assert!(
        explain[0].contains("change propagation failed"),
        "{explain:?}"
    );
    assert_eq!(db.rows("SELECT count(*) FROM orders"), vec!["4"]);
    foreign
        .execute_batch("ALTER TABLE _lw_changes_away RENAME TO _lw_changes")
        .unwrap();
    drop(foreign);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status("rapid_change_propagation_status") != "ON" {
        assert!(Instant::now() < deadline, "propagation never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    db.exec("INSERT INTO orders VALUES (10, 'cap', 1.0)");
    assert!(db.rows("EXPLAIN SELECT count(*) FROM orders")[0].contains("cluster (offloaded"));
    assert_eq!(db.rows("SELECT count(*) FROM orders"), vec!["5"]);
}

#[test]
fn every_error_has_its_mysql_number() {
    let db = Db::new(&[]);
    shop(&db);
    db.exec("CREATE TABLE snapshot AS SELECT 1 AS x");
    db.exec("CREATE VIEW v AS SELECT id FROM orders");
    let cases: &[(&str, u16)] = &[
        ("SELEC 1", 1064),
        ("SELECT * FROM nothing", 1146),
        ("SELECT * FROM nowhere.nothing", 1049),
        ("SELECT nope FROM orders", 1054),
        ("CREATE TABLE orders (id INT PRIMARY KEY)", 1050),
        ("CREATE DATABASE main", 1007),
        ("INSERT INTO orders VALUES (1, 'dup', 0)", 1062),
        ("INSERT INTO orders VALUES (7, NULL, 0)", 1048),
        ("INSERT INTO orders (id) VALUES (7)", 1364),
        (
            "INSERT INTO orders VALUES (7, 'far too long a name', 0)",
            1406,
        ),
        ("INSERT INTO orders VALUES ('seven', 'x', 0)", 1366),
        ("INSERT INTO orders VALUES (99999999999, 'x', 0)", 1264),
        ("INSERT INTO orders VALUES (7, 'x')", 1136),
        ("INSERT INTO snapshot VALUES (2)", 1036),
        ("DELETE FROM v", 1288),
        ("CREATE TABLE w (a INT, a INT)", 1060),
        ("CREATE TABLE w (a INT PRIMARY KEY, PRIMARY KEY (a))", 1068),
        ("CREATE TABLE w (a INT, PRIMARY KEY (b))", 1072),
        ("SET nonsense_variable = 1", 1193),
        ("SET use_secondary_engine = maybe", 1231),
        ("SET autocommit = sometimes", 1231),
        ("SET hostname = 'x'", 1238),
        ("SELECT @@nonsense_variable", 1193),
        ("CALL sys.no_such_procedure()", 1305),
        ("CALL sys.HEATWAVE_LOAD)(", 1064),
        ("CALL sys.heatwave_load('[]', 1, 2)", 1318),
        ("KILL 424242", 1094),
        ("USE nowhere", 1049),
        ("DROP DATABASE nowhere", 1008),
        ("ALTER TABLE orders DROP COLUMN nope", 1091),
    ];
    let mut wrong = Vec::new();
    for (text, expected) in cases {
        match db.sql(text) {
            Ok(_) => wrong.push(format!("`{text}` succeeded; expected {expected}")),
            Err(e) if e.code().errno != *expected => wrong.push(format!(
                "`{text}`: {} ({}) instead of {expected}: {}",
                e.code().errno,
                e.code().sqlstate,
                e.chain_message()
            )),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    db.exec("SET use_secondary_engine = FORCED");
    assert_eq!(errno(&db, "SELECT * FROM orders"), 3889);
    // Nothing was half-done and the instance still serves.
    db.exec("SET use_secondary_engine = ON");
    assert_eq!(db.rows("SELECT count(*) FROM orders"), vec!["3"]);
}

#[test]
fn system_and_user_variables_work_anywhere_in_a_query() {
    let db = Db::new(&[("instance_name", "lw-one")]);
    shop(&db);
    assert_eq!(
        db.rows("select @@hostname, a.id from orders a where a.id = 1"),
        vec!["lw-one|1"]
    );
    assert_eq!(
        db.rows("SELECT upper(@@hostname), @@version LIKE '%lakewave%', @@session.autocommit + 1"),
        vec!["LW-ONE|true|2"]
    );
    assert_eq!(
        db.rows("SELECT @@version_comment LIKE 'lakewave%'"),
        vec!["true"]
    );
    db.exec("SET @limit = (SELECT max(amount) FROM orders), @label = 'top'");
    assert_eq!(
        db.rows("SELECT @label, product FROM orders WHERE amount >= @limit"),
        vec!["top|ink"]
    );
    assert_eq!(db.rows("SELECT @never_set IS NULL"), vec!["true"]);
    assert_eq!(db.rows("SELECT connection_id() > 0"), vec!["true"]);
    db.exec("SET NAMES utf8mb4 COLLATE utf8mb4_general_ci");
    assert_eq!(
        db.rows("SELECT @@character_set_client, @@collation_connection"),
        vec!["utf8mb4|utf8mb4_general_ci"]
    );
    db.exec("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    assert_eq!(
        db.rows("SELECT @@transaction_isolation"),
        vec!["READ-COMMITTED"]
    );
    // HeatWave 9.5's pool types.
    db.exec("ALTER TABLE orders SECONDARY_LOAD");
    db.exec("CREATE TABLE snap AS SELECT 1 AS x");
    assert_eq!(
        db.rows("SELECT pool_type FROM performance_schema.rpd_tables ORDER BY pool_type"),
        vec!["SNAPSHOT", "TRANSACTIONAL"]
    );
}

#[test]
fn secrets_never_reach_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db");
    let file = csv(dir.path(), "s.csv");
    let secrets = [
        "s3cr'et\\with \"quotes\"",
        "tökén-ünïcode-Ω",
        "plainsecretvalue123",
    ];
    {
        let db = Db::open(Some(&path), &[]);
        db.exec(&format!(
            "CREATE EXTERNAL TABLE s FILE_FORMAT = (FORMAT csv) FILES = (URI '{file}') \
             STORAGE_OPTIONS = ('secret_access_key' '{}', 'session_token' \"{}\", \
             'access_key_id' 'AKIDVISIBLE', 'azure_storage_account_key' '{}')",
            secrets[0].replace('\'', "''"),
            secrets[1],
            secrets[2],
        ));
        // A failing statement's message carries no secret either.
        let error = db
            .sql(&format!(
                "CREATE EXTERNAL TABLE bad FILE_FORMAT = (FORMAT nope) FILES = (URI '{file}') \
                 STORAGE_OPTIONS = ('secret_access_key' '{}')",
                secrets[2]
            ))
            .unwrap_err()
            .chain_message();
        assert!(!error.contains(secrets[2]), "{error}");
        assert_eq!(db.rows("SELECT count(*) FROM s"), vec!["2"]);
        db.close();
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("secret.db") {
            bytes.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(
        haystack.contains("AKIDVISIBLE"),
        "the definition is in the file"
    );
    for secret in secrets {
        for needle in [secret, &secret.replace('\'', "''")] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "'{needle}' is in the database file"
            );
        }
    }
    // The definition works after a reopen (secrets come from the environment).
    let db = Db::open(Some(&path), &[]);
    assert_eq!(db.rows("SELECT count(*) FROM s"), vec!["2"]);
}

#[test]
fn loads_and_drops_racing_on_one_table_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = csv(dir.path(), "r.csv");
    let db = Db::new(&[]);
    let other = db.other();
    for _ in 0..30 {
        db.exec(&format!(
            "CREATE EXTERNAL TABLE r FILE_FORMAT = (FORMAT csv) FILES = (URI '{file}')"
        ));
        std::thread::scope(|scope| {
            let load = scope.spawn(|| db.sql("ALTER TABLE r SECONDARY_LOAD"));
            let drop = scope.spawn(|| other.sql("DROP TABLE r"));
            for outcome in [load.join().unwrap(), drop.join().unwrap()] {
                if let Err(e) = outcome {
                    assert!(
                        matches!(e.code().errno, 1146 | 1051),
                        "{}",
                        e.chain_message()
                    );
                }
            }
        });
        let _ = db.sql("DROP TABLE IF EXISTS r");
        assert!(
            db.instance.tables().is_empty(),
            "{:?}",
            db.instance.tables()
        );
    }
}
