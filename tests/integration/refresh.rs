//! Refreshing loaded external tables: only the files that changed since the
//! loaded version are read, and after every refresh the loaded copy answers
//! exactly as the files read in place and as a full reload do.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;

use crate::common::Db;
use crate::delta_golden::{copy_dir, golden_root};

fn refresh(db: &Db, table: &str) -> String {
    let rows = db.rows(&format!(
        "CALL sys.HEATWAVE_LOAD(CAST('[{{\"db_name\": \"main\", \"tables\": [\"{table}\"]}}]' AS JSON), \
         JSON_OBJECT('refresh_external_tables', TRUE))"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].split_once('|').unwrap().1.to_string()
}

/// The loaded table, the same files read in place, and a fresh full load of
/// them give the same rows.
fn check_against_in_place_and_full_reload(db: &Db, location: &str, format: &str, query: &str) {
    let loaded = db.rows(&query.replace("{t}", "t"));
    assert!(
        db.rows(&format!("EXPLAIN {}", query.replace("{t}", "t")))[0]
            .contains("cluster (offloaded"),
        "the loaded table is queried in the cluster"
    );
    db.exec("DROP TABLE IF EXISTS fresh");
    db.exec(&format!(
        "CREATE EXTERNAL TABLE fresh FILE_FORMAT = (FORMAT {format}) FILES = (URI '{location}')"
    ));
    let in_place = db.rows(&query.replace("{t}", "fresh"));
    db.exec("ALTER TABLE fresh SECONDARY_LOAD");
    let reloaded = db.rows(&query.replace("{t}", "fresh"));
    assert_eq!(
        loaded, in_place,
        "refreshed copy against the files in place"
    );
    assert_eq!(loaded, reloaded, "refreshed copy against a full reload");
}

const STALE_REASON: &str = "SELECT t.stale_reason FROM performance_schema.rpd_tables t \
     JOIN performance_schema.rpd_table_id i ON t.id = i.id WHERE i.name = 'main.t'";

fn log_file(version: u64, suffix: &str) -> String {
    format!("{version:020}.{suffix}")
}

#[test]
fn delta_refresh_applies_each_deletion_vector_commit() {
    let root = golden_root().expect("the Delta golden tables (tests/data/delta-golden) are needed");
    let source = root.join("dv-partitioned-with-checkpoint/delta");
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("dv");
    copy_dir(&source, &table);
    // Start from version 5: the later commits (and the checkpoint at 10)
    // come back one at a time.
    let log = table.join("_delta_log");
    let held = dir.path().join("held");
    std::fs::create_dir_all(&held).unwrap();
    for entry in std::fs::read_dir(&log).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let version: Option<u64> = name.split('.').next().and_then(|v| v.parse().ok());
        if version.is_none_or(|v| v > 5) {
            std::fs::rename(log.join(&name), held.join(&name)).unwrap();
        }
    }
    let location = format!("{}/", table.display());
    let db = Db::new(&[("nodes", "2"), ("chunk_rows", "4")]);
    db.exec(&format!(
        "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT delta) FILES = (URI '{location}')"
    ));
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    let query = "SELECT part, col1, col2 FROM {t} ORDER BY part, col1, col2";
    check_against_in_place_and_full_reload(&db, &location, "delta", query);
    assert_eq!(
        refresh(&db, "t"),
        "refreshed to version 5 (0 files added, 0 removed)"
    );
    for version in 6..=15u64 {
        for suffix in ["json", "checkpoint.parquet"] {
            let name = log_file(version, suffix);
            if held.join(&name).exists() {
                std::fs::rename(held.join(&name), log.join(&name)).unwrap();
            }
        }
        let before = db.rows("SELECT count(*) FROM t");
        let status = refresh(&db, "t");
        // Each commit is a DELETE that gives a file a new deletion vector (an
        // add and a remove of the same path) or removes it: only those files
        // are read again or dropped.
        let commit = std::fs::read_to_string(log.join(log_file(version, "json"))).unwrap();
        let adds = commit.lines().filter(|l| l.starts_with("{\"add\"")).count();
        let removes = commit
            .lines()
            .filter(|l| l.starts_with("{\"remove\""))
            .count();
        let plural = if adds == 1 { "file" } else { "files" };
        assert_eq!(
            status,
            format!("refreshed to version {version} ({adds} {plural} added, {removes} removed)")
        );
        let after = db.rows("SELECT count(*) FROM t");
        assert_ne!(before, after, "version {version} deleted rows");
        check_against_in_place_and_full_reload(&db, &location, "delta", query);
    }
    assert_eq!(
        db.rows(
            "SELECT t.snapshot_scn FROM performance_schema.rpd_tables t \
             JOIN performance_schema.rpd_table_id i ON t.id = i.id WHERE i.name = 'main.t'"
        ),
        vec!["15"]
    );
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn numbers(from: i64, to: i64) -> Vec<(&'static str, ArrayRef)> {
    let n: Vec<i64> = (from..to).collect();
    let word: Vec<String> = n.iter().map(|v| format!("w{}", v % 7)).collect();
    vec![
        ("n", Arc::new(Int64Array::from(n)) as ArrayRef),
        ("word", Arc::new(StringArray::from(word)) as ArrayRef),
    ]
}

#[test]
fn plain_file_refresh_applies_added_removed_and_rewritten_files() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("pq");
    std::fs::create_dir_all(&folder).unwrap();
    for part in 0..4 {
        write_parquet(
            &folder.join(format!("part-{part}.parquet")),
            numbers(part * 100, part * 100 + 100),
        );
    }
    let location = format!("{}/", folder.display());
    let db = Db::new(&[("nodes", "2"), ("chunk_rows", "32")]);
    db.exec(&format!(
        "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT parquet) FILES = (URI '{location}')"
    ));
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    let query = "SELECT n, word FROM {t} ORDER BY n";
    check_against_in_place_and_full_reload(&db, &location, "parquet", query);
    assert_eq!(refresh(&db, "t"), "refreshed (0 files added, 0 removed)");

    // An added file.
    write_parquet(&folder.join("part-4.parquet"), numbers(400, 410));
    assert_eq!(
        db.rows("SELECT count(*) FROM t"),
        vec!["400"],
        "not before the refresh"
    );
    assert_eq!(refresh(&db, "t"), "refreshed (1 file added, 0 removed)");
    check_against_in_place_and_full_reload(&db, &location, "parquet", query);
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["410"]);

    // A removed file.
    std::fs::remove_file(folder.join("part-1.parquet")).unwrap();
    assert_eq!(refresh(&db, "t"), "refreshed (0 files added, 1 removed)");
    check_against_in_place_and_full_reload(&db, &location, "parquet", query);
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["310"]);

    // A file rewritten in place (other rows, same name).
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_parquet(&folder.join("part-2.parquet"), numbers(2000, 2050));
    assert_eq!(refresh(&db, "t"), "refreshed (1 file added, 1 removed)");
    check_against_in_place_and_full_reload(&db, &location, "parquet", query);
    assert_eq!(db.rows("SELECT count(*), max(n) FROM t"), vec!["260|2049"]);

    // A file with another column: the table's columns change, so it is
    // reloaded whole.
    let mut wider = numbers(5000, 5003);
    wider.push((
        "extra",
        Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
    ));
    write_parquet(&folder.join("part-9.parquet"), wider);
    let status = refresh(&db, "t");
    assert!(
        status.starts_with("reloaded: the columns changed"),
        "{status}"
    );
    check_against_in_place_and_full_reload(
        &db,
        &location,
        "parquet",
        "SELECT n, word, extra FROM {t} ORDER BY n",
    );
}

#[test]
fn automatic_refresh_keeps_a_loaded_table_current() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("csv");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), "id,v\n1,x\n").unwrap();
    let db = Db::new(&[]);
    db.exec(&format!(
        "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT csv) FILES = (URI '{}/') REFRESH_INTERVAL = '50ms'",
        folder.display()
    ));
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    std::fs::write(folder.join("b.csv"), "id,v\n2,y\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.rows("SELECT count(*) FROM t") != vec!["2"] {
        assert!(
            std::time::Instant::now() < deadline,
            "not refreshed in 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A failed refresh keeps the loaded rows and says why.
    std::fs::remove_file(folder.join("a.csv")).unwrap();
    std::fs::remove_file(folder.join("b.csv")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let reason = db.rows(STALE_REASON);
        if reason[0].contains("automatic refresh failed") {
            assert!(reason[0].contains("no csv files there"), "{reason:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no refresh error in 20 s: {reason:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        db.rows("SELECT count(*) FROM t"),
        vec!["2"],
        "the loaded rows are kept"
    );
    // Files back: the next automatic refresh clears the error.
    std::fs::write(folder.join("d.csv"), "id,v\n4,w\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.rows("SELECT count(*) FROM t") != vec!["1"] {
        assert!(
            std::time::Instant::now() < deadline,
            "not refreshed in 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(db.rows(STALE_REASON), vec!["NULL"]);
}

#[test]
fn bad_refresh_intervals_are_syntax_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "id\n1\n").unwrap();
    let db = Db::new(&[]);
    for bad in ["'soon'", "0", "'-3s'", "'5 fortnights'"] {
        let error = db
            .sql(&format!(
                "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT csv) FILES = (URI '{}') REFRESH_INTERVAL = {bad}",
                dir.path().join("a.csv").display()
            ))
            .unwrap_err();
        assert_eq!(error.kind(), lakewave::ErrorKind::Syntax, "{bad}");
        assert!(error.to_string().contains("REFRESH_INTERVAL"), "{error}");
        assert!(
            db.sql("SELECT * FROM t").is_err(),
            "nothing defined for {bad}"
        );
    }
}

/// A Parquet file whose footer (the schema) reads but whose pages do not:
/// everything between the leading magic and the footer is zeroed.
fn corrupt_pages(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    for byte in &mut bytes[4..n - 8 - footer] {
        *byte = 0;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_files_fail_the_load_or_refresh_whole_and_keep_the_loaded_version() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("pq");
    std::fs::create_dir_all(&folder).unwrap();
    write_parquet(&folder.join("a.parquet"), numbers(0, 1000));
    let db = Db::new(&[("chunk_rows", "64")]);
    db.exec(&format!(
        "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT parquet) FILES = (URI '{}/')",
        folder.display()
    ));
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    let used = || db.rows("SELECT sum(size_bytes) FROM performance_schema.rpd_tables");
    let before = used();

    // A file with a readable footer and unreadable pages: the refresh reads
    // it and fails, naming the table and the file; nothing changes.
    write_parquet(&folder.join("b.parquet"), numbers(1000, 2000));
    corrupt_pages(&folder.join("b.parquet"));
    let error = db.sql("CALL sys.HEATWAVE_LOAD(CAST('[{\"db_name\": \"main\", \"tables\": [\"t\"]}]' AS JSON), JSON_OBJECT('refresh_external_tables', TRUE))").unwrap_err();
    let message = error.chain_message();
    assert_eq!(error.kind(), lakewave::ErrorKind::Data, "{message}");
    assert!(
        message.contains("main.t") && message.contains("b.parquet"),
        "{message}"
    );
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["1000"]);
    assert_eq!(used(), before, "nothing half-loaded");
    // A full load of the same files fails the same way and keeps the copy.
    let error = db.sql("ALTER TABLE t SECONDARY_LOAD").unwrap_err();
    assert!(
        error.chain_message().contains("b.parquet"),
        "{}",
        error.chain_message()
    );
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["1000"]);

    // A truncated file (no footer): the definition can no longer be read;
    // the error names the file.
    std::fs::remove_file(folder.join("b.parquet")).unwrap();
    let good = std::fs::read(folder.join("a.parquet")).unwrap();
    std::fs::write(folder.join("c.parquet"), &good[..good.len() / 2]).unwrap();
    let error = db.sql("CALL sys.HEATWAVE_LOAD(CAST('[{\"db_name\": \"main\", \"tables\": [\"t\"]}]' AS JSON), JSON_OBJECT('refresh_external_tables', TRUE))").unwrap_err();
    let message = error.chain_message();
    assert!(
        message.contains("main.t") && message.contains("c.parquet"),
        "{message}"
    );
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["1000"]);

    // Fixed: the next refresh works.
    std::fs::remove_file(folder.join("c.parquet")).unwrap();
    assert_eq!(refresh(&db, "t"), "refreshed (0 files added, 0 removed)");
}

#[test]
fn a_truncated_delta_commit_fails_the_refresh_and_keeps_the_loaded_version() {
    let root = golden_root().expect("the Delta golden tables (tests/data/delta-golden) are needed");
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    copy_dir(&root.join("basic-with-inserts-updates/delta"), &table);
    let db = Db::new(&[]);
    db.exec(&format!(
        "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT delta) FILES = (URI '{}/')",
        table.display()
    ));
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    let rows = db.rows("SELECT count(*) FROM t");
    let version = db.rows(
        "SELECT t.snapshot_scn FROM performance_schema.rpd_tables t \
         JOIN performance_schema.rpd_table_id i ON t.id = i.id WHERE i.name = 'main.t'",
    );
    let next: u64 = version[0].parse::<u64>().unwrap() + 1;
    std::fs::write(
        table.join("_delta_log").join(log_file(next, "json")),
        "{\"add\":{\"path\":\"part-00000-x.snappy.parq",
    )
    .unwrap();
    let error = db
        .sql("CALL sys.HEATWAVE_LOAD(CAST('[{\"db_name\": \"main\", \"tables\": [\"t\"]}]' AS JSON), JSON_OBJECT('refresh_external_tables', TRUE))")
        .unwrap_err();
    let message = error.chain_message();
    assert_eq!(error.kind(), lakewave::ErrorKind::Data, "{message}");
    assert!(message.contains("main.t"), "{message}");
    assert_eq!(
        db.rows("SELECT count(*) FROM t"),
        rows,
        "the loaded version is kept"
    );
}
