//! SQL behaviour that `.slt` files cannot express: error kinds, statements
//! named in messages, interruption.

use lakewave::ErrorKind;

use crate::common::{Db, orders};

fn error_of(db: &Db, text: &str) -> lakewave::Error {
    db.sql(text).expect_err(text)
}

#[test]
fn errors_are_classified_and_name_the_statement() {
    let db = Db::new(&[]);
    db.load("orders", &["id"], orders(100, 100)).unwrap();

    let e = error_of(&db, "SELEC 1");
    assert_eq!(e.kind(), ErrorKind::Syntax);
    assert!(e.to_string().contains("SELEC 1"), "{e}");

    let e = error_of(&db, "SELECT * FROM missing_table");
    assert_eq!(e.kind(), ErrorKind::TableNotFound);
    assert!(e.to_string().contains("main.missing_table"), "{e}");

    let e = error_of(&db, "SELECT no_such_column FROM orders");
    assert_eq!(e.kind(), ErrorKind::ColumnNotFound);
    assert!(e.to_string().contains("no_such_column"), "{e}");

    let e = error_of(&db, "SELECT id FROM orders WHERE id = 'x' + 1");
    assert!(
        matches!(e.kind(), ErrorKind::Programming | ErrorKind::Data),
        "{e:?}"
    );

    let e = error_of(&db, "INSERT INTO orders VALUES (1, 'a', 2.0)");
    assert_eq!(e.kind(), ErrorKind::NotSupported);
    assert!(e.to_string().contains("orders"), "{e}");

    let e = error_of(&db, "CREATE TABLE orders (a INT)");
    assert_eq!(e.kind(), ErrorKind::TableExists);

    let e = error_of(&db, "DROP TABLE nothing_here");
    assert_eq!(e.kind(), ErrorKind::TableNotFound);
    db.sql("DROP TABLE IF EXISTS nothing_here").unwrap();
}

#[test]
fn runtime_errors_surface_when_rows_are_read() {
    let db = Db::new(&[]);
    let e = error_of(&db, "SELECT CAST('abc' AS INT)");
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Data | ErrorKind::Operational | ErrorKind::Programming
        ),
        "{e:?}"
    );
}

#[test]
fn create_table_as_loads_and_replaces_atomically() {
    let db = Db::new(&[]);
    db.sql("CREATE TABLE t AS SELECT value AS id FROM generate_series(1, 1000) AS g(value)")
        .unwrap();
    assert_eq!(
        db.rows("SELECT count(*), max(id) FROM t"),
        vec!["1000|1000"]
    );
    let e = error_of(&db, "CREATE TABLE t AS SELECT 1 AS id");
    assert_eq!(e.kind(), ErrorKind::TableExists);
    db.sql("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS id")
        .unwrap();
    db.sql("CREATE OR REPLACE TABLE t AS SELECT 7 AS id")
        .unwrap();
    assert_eq!(db.rows("SELECT * FROM t"), vec!["7"]);
}

#[test]
fn databases_qualify_names() {
    let db = Db::new(&[]);
    db.sql("CREATE DATABASE shop").unwrap();
    db.sql("CREATE TABLE shop.items AS SELECT 1 AS id, 'pen' AS name")
        .unwrap();
    assert_eq!(db.rows("SELECT name FROM shop.items"), vec!["pen"]);
    let e = error_of(&db, "SELECT * FROM items");
    assert_eq!(e.kind(), ErrorKind::TableNotFound);
    let e = error_of(&db, "CREATE TABLE nowhere.t AS SELECT 1");
    assert_eq!(e.kind(), ErrorKind::TableNotFound);
}

#[test]
fn a_cancelled_query_stops_with_interrupted() {
    let db = Db::new(&[]);
    let cancel = lakewave::cancel::Cancel::new();
    cancel.cancel();
    let text = "SELECT count(*) FROM generate_series(1, 100000000)";
    let result = db
        .instance
        .block_on(&cancel, text, db.session.sql(text, &[], &cancel))
        .and_then(|r| db.instance.collect(&r, &cancel));
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Interrupted);
}

#[test]
fn tables_placed_on_the_join_key_join_without_a_shuffle() {
    let db = Db::new(&[("nodes", "2"), ("partitions_per_node", "1")]);
    db.sql(
        "CREATE TABLE orders_rr AS SELECT value AS o_id, value % 7 AS o_cust FROM generate_series(1, 20000) AS g(value)",
    )
    .unwrap();
    db.sql("CREATE TABLE lines_rr AS SELECT value % 20000 + 1 AS l_order, value AS l_qty FROM generate_series(1, 60000) AS g(value)")
        .unwrap();
    // The same rows, placed by the join key.
    let orders = db.sql("SELECT * FROM orders_rr").unwrap();
    let lines = db.sql("SELECT * FROM lines_rr").unwrap();
    db.load("orders_k", &["o_id"], orders).unwrap();
    db.load("lines_k", &["l_order"], lines).unwrap();
    let query = |o: &str, l: &str| {
        format!(
            "SELECT o_cust, count(*), sum(l_qty) FROM {o} JOIN {l} ON o_id = l_order GROUP BY o_cust ORDER BY o_cust"
        )
    };
    // Small inputs would be broadcast (CollectLeft); ask for partitioned joins.
    db.sql("SET datafusion.optimizer.hash_join_single_partition_threshold = 0")
        .unwrap();
    db.sql("SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0")
        .unwrap();
    assert_eq!(
        db.rows(&query("orders_k", "lines_k")),
        db.rows(&query("orders_rr", "lines_rr"))
    );
    let plan = db
        .rows(&format!("EXPLAIN {}", query("orders_k", "lines_k")))
        .join("\n");
    let join_inputs: Vec<&str> = plan
        .lines()
        .skip_while(|l| !l.contains("HashJoinExec"))
        .collect();
    assert!(
        join_inputs.iter().any(|l| l.contains("mode=Partitioned")),
        "{plan}"
    );
    assert!(
        !join_inputs
            .iter()
            .any(|l| l.contains("RepartitionExec: partitioning=Hash")),
        "{plan}"
    );
    // Aggregating by the key needs no shuffle either, and agrees.
    let by_key =
        "SELECT l_order, sum(l_qty) FROM lines_k GROUP BY l_order ORDER BY 2 DESC, 1 LIMIT 5";
    let by_key_rr = by_key.replace("lines_k", "lines_rr");
    assert_eq!(db.rows(by_key), db.rows(&by_key_rr));
}

#[test]
fn placement_with_more_partitions_than_threads_still_joins_correctly() {
    // 4 store partitions, 2 execution threads: DataFusion must repartition.
    let db = Db::new(&[("nodes", "2"), ("partitions_per_node", "2")]);
    db.sql("SET datafusion.optimizer.hash_join_single_partition_threshold = 0")
        .unwrap();
    db.sql("SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0")
        .unwrap();
    db.sql("CREATE TABLE rr AS SELECT value % 5000 AS k, value AS v FROM generate_series(1, 50000) AS g(value)")
        .unwrap();
    let keyed = db
        .sql("SELECT value - 1 AS k, value AS w FROM generate_series(1, 5000) AS g(value)")
        .unwrap();
    db.load("keyed", &["k"], keyed).unwrap();
    assert_eq!(
        db.rows("SELECT count(*), sum(v + w) FROM rr JOIN keyed ON rr.k = keyed.k"),
        vec!["50000|1375050000"]
    );
}
