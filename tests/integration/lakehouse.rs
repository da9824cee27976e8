//! External tables over local files: defined in HeatWave's form, queried in
//! place, loaded into the cluster, dropped without touching the files, brought
//! back on restart; and every bad definition as a typed error.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use parquet::arrow::ArrowWriter;

use lakewave::ErrorKind;

use crate::common::Db;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn engine(db: &Db, query: &str) -> String {
    db.rows(&format!("EXPLAIN {query}"))[0].clone()
}

#[test]
fn csv_json_and_parquet_in_place_and_loaded_give_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sales");
    write(&csv.join("a.csv"), "id;city;amount\n1;Paris;10.5\n2;NA;3\n");
    write(&csv.join("b.csv"), "id;city;amount\n3;Oslo;NA\n");
    write(&csv.join("_SUCCESS"), "");
    let json = dir.path().join("events.json");
    write(
        &json,
        "{\"id\": 1, \"kind\": \"click\"}\n{\"id\": 2, \"kind\": null}\n",
    );
    let db = Db::new(&[("nodes", "2")]);
    db.exec(&format!(
        "CREATE EXTERNAL TABLE sales (id INT, city TEXT, amount DOUBLE) \
         FILE_FORMAT = (FORMAT csv HEADER ON FIELD_DELIMITER ';' NULL_VALUE 'NA') \
         FILES = (URI '{}/')",
        csv.display()
    ));
    db.exec(&format!(
        "CREATE EXTERNAL TABLE events FILE_FORMAT = (FORMAT json) FILES = (URI = '{}')",
        json.display()
    ));
    // A Parquet folder of two files.
    let parquet = dir.path().join("pq");
    std::fs::create_dir_all(&parquet).unwrap();
    for (part, range) in [(0, 1..=600i64), (1, 601..=1000)] {
        let n: Vec<i64> = range.collect();
        let twice: Vec<i64> = n.iter().map(|v| v * 2).collect();
        let batch = RecordBatch::try_from_iter([
            ("n", Arc::new(Int64Array::from(n)) as ArrayRef),
            ("twice", Arc::new(Int64Array::from(twice)) as ArrayRef),
        ])
        .unwrap();
        let file = std::fs::File::create(parquet.join(format!("part-{part}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    db.exec(&format!(
        "CREATE EXTERNAL TABLE numbers FILE_FORMAT = (FORMAT parquet) FILES = (URI '{}/')",
        parquet.display()
    ));
    let queries = [
        "SELECT id, city, amount FROM sales ORDER BY id",
        "SELECT id, kind FROM events ORDER BY id",
        "SELECT count(*), sum(twice) FROM numbers WHERE n > 500",
    ];
    let in_place: Vec<Vec<String>> = queries.iter().map(|q| db.rows(q)).collect();
    assert_eq!(
        in_place[0],
        vec!["1|Paris|10.5", "2|NULL|3.0", "3|Oslo|NULL"]
    );
    assert_eq!(in_place[1], vec!["1|click", "2|NULL"]);
    assert_eq!(in_place[2], vec!["500|750500"]);
    assert!(
        engine(&db, queries[0]).contains("read in place"),
        "{}",
        engine(&db, queries[0])
    );
    for table in ["sales", "events", "numbers"] {
        db.exec(&format!("ALTER TABLE {table} SECONDARY_LOAD"));
    }
    assert!(engine(&db, queries[0]).contains("cluster (offloaded"));
    let loaded: Vec<Vec<String>> = queries.iter().map(|q| db.rows(q)).collect();
    assert_eq!(in_place, loaded);
    db.exec("SET use_secondary_engine = OFF");
    let off: Vec<Vec<String>> = queries.iter().map(|q| db.rows(q)).collect();
    assert_eq!(in_place, off);
    db.exec("SET use_secondary_engine = ON");
    // DROP removes the definition and the cluster copy, never the files.
    db.exec("DROP TABLE sales");
    assert!(csv.join("a.csv").exists() && csv.join("b.csv").exists());
    assert_eq!(
        db.sql("SELECT * FROM sales").unwrap_err().kind(),
        ErrorKind::TableNotFound
    );
}

#[test]
fn external_tables_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.csv");
    write(&data, "a,b\n1,x\n2,y\n");
    let file = dir.path().join("db.sqlite");
    {
        let db = Db::open(Some(&file), &[]);
        db.exec(&format!(
            "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT csv) FILES = (URI '{}')",
            data.display()
        ));
        db.exec("ALTER TABLE t SECONDARY_LOAD");
    }
    let db = Db::open(Some(&file), &[]);
    assert!(engine(&db, "SELECT sum(a) FROM t").contains("cluster (offloaded"));
    assert_eq!(db.rows("SELECT sum(a), max(b) FROM t"), vec!["3|y"]);
}

#[test]
fn bad_definitions_are_typed_errors_naming_the_table_and_location() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("ok.csv"), "a,b\n1,2\n");
    write(
        &dir.path().join("bad.parquet"),
        "this is not a parquet file at all",
    );
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let db = Db::new(&[]);
    let d = dir.path().display();
    let cases = [
        (
            format!(
                "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT csv) FILES = (URI '{d}/missing.csv')"
            ),
            ErrorKind::Operational,
            "missing.csv",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT parquet) FILES = (URI '{d}/empty/')"
            ),
            ErrorKind::Operational,
            "no parquet files",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT parquet) FILES = (URI '{d}/bad.parquet')"
            ),
            ErrorKind::Data,
            "bad.parquet",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t (a INT, c INT) FILE_FORMAT = (FORMAT csv) FILES = (URI '{d}/ok.csv')"
            ),
            ErrorKind::Programming,
            "does not match",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT xml) FILES = (URI '{d}/ok.csv')"
            ),
            ErrorKind::NotSupported,
            "xml",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT csv COLOR 'red') FILES = (URI '{d}/ok.csv')"
            ),
            ErrorKind::Syntax,
            "COLOR",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT csv) FILES = (URI 's3x://b/{d}')"
            ),
            ErrorKind::Operational,
            "s3x",
        ),
        (
            "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT csv)".to_string(),
            ErrorKind::Programming,
            "no location",
        ),
    ];
    for (statement, kind, needle) in cases {
        let error = db.sql(&statement).expect_err(&statement);
        let message = error.chain_message();
        assert_eq!(error.kind(), kind, "{statement}: {message}");
        assert!(message.contains(needle), "{statement}: {message}");
        assert!(
            message.contains("main.t")
                || kind == ErrorKind::Syntax
                || kind == ErrorKind::NotSupported,
            "{message}"
        );
    }
    // Nothing was defined half-way.
    assert_eq!(
        db.sql("SELECT * FROM t").unwrap_err().kind(),
        ErrorKind::TableNotFound
    );
}
