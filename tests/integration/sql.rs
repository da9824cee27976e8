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

    let e = error_of(&db, "CREATE TABLE x (a INT)");
    assert_eq!(e.kind(), ErrorKind::NotSupported);

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
