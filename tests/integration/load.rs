//! Loading, partitioning, chunking, pruning and memory accounting, seen through
//! the instance API.

use lakewave::ErrorKind;

use crate::common::{Db, orders};

#[test]
fn a_load_is_partitioned_chunked_and_encoded() {
    let db = Db::new(&[
        ("nodes", "2"),
        ("partitions_per_node", "2"),
        ("chunk_rows", "1000"),
    ]);
    let status = db.load("orders", &["id"], orders(10_000, 777)).unwrap();
    assert_eq!(status.rows, 10_000);
    assert_eq!(status.partitions, 4);
    // 10,000 rows over 4 partitions in chunks of at most 1,000 rows.
    assert!(
        status.chunks >= 10 && status.chunks <= 14,
        "{} chunks",
        status.chunks
    );
    assert_eq!(status.dictionary_columns, vec!["category".to_string()]);
    let nodes = db.instance.nodes();
    assert!(
        nodes.iter().all(|n| n.used > 0),
        "both nodes hold data: {nodes:?}"
    );
    assert_eq!(nodes.iter().map(|n| n.used).sum::<u64>(), status.bytes);
    assert_eq!(
        db.rows("SELECT count(*), sum(id), count(category) FROM orders"),
        vec!["10000|49995000|7500"]
    );
    // Strings come back in their logical type, not as dictionaries.
    let batches = db.sql("SELECT category FROM orders LIMIT 1").unwrap();
    assert_eq!(
        batches[0].schema().field(0).data_type(),
        &arrow::datatypes::DataType::Utf8
    );
}

#[test]
fn equal_keys_share_a_partition() {
    let db = Db::new(&[("nodes", "2"), ("partitions_per_node", "2")]);
    let mut batches = orders(1000, 1000);
    batches.extend(orders(1000, 250));
    db.load("twice", &["id"], batches).unwrap();
    let table = db
        .instance
        .services()
        .cluster
        .table(&lakewave::catalog::TableName::new("main", "twice"))
        .unwrap();
    // Every id appears twice, and both copies sit in one partition.
    for partition in &table.partitions {
        let mut ids: Vec<i64> = partition
            .chunks
            .iter()
            .flat_map(|c| {
                let col = c
                    .batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap()
                    .clone();
                col.values().to_vec()
            })
            .collect();
        ids.sort();
        assert!(
            ids.chunks(2)
                .all(|pair| pair.len() == 2 && pair[0] == pair[1])
        );
    }
}

#[test]
fn zone_maps_prune_chunks_and_explain_says_so() {
    let db = Db::new(&[
        ("nodes", "1"),
        ("partitions_per_node", "1"),
        ("chunk_rows", "1000"),
    ]);
    db.load("orders", &[], orders(10_000, 1000)).unwrap();
    let plan = db
        .rows("EXPLAIN SELECT sum(amount) FROM orders WHERE id BETWEEN 2500 AND 3200")
        .join("\n");
    assert!(
        plan.contains("chunks=2 of 10 (8 pruned by zone maps)"),
        "{plan}"
    );
    assert_eq!(
        db.rows("SELECT count(*) FROM orders WHERE id BETWEEN 2500 AND 3200"),
        vec!["701"]
    );
    // A filter that no chunk can satisfy scans nothing and still answers.
    let plan = db
        .rows("EXPLAIN SELECT * FROM orders WHERE id > 99999")
        .join("\n");
    assert!(plan.contains("chunks=0 of 10"), "{plan}");
    assert_eq!(
        db.rows("SELECT count(*) FROM orders WHERE id > 99999"),
        vec!["0"]
    );
    // Dictionary-encoded strings prune too.
    let plan = db
        .rows("EXPLAIN SELECT * FROM orders WHERE category = 'zzz'")
        .join("\n");
    assert!(plan.contains("chunks=0 of 10"), "{plan}");
}

#[test]
fn a_load_that_does_not_fit_fails_whole_and_frees_its_memory() {
    let db = Db::new(&[
        ("nodes", "2"),
        ("memory_per_node", "64KiB"),
        ("chunk_rows", "1000"),
    ]);
    let err = db.load("big", &["id"], orders(100_000, 5000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    let text = err.to_string();
    assert!(text.contains("main.big") && text.contains("node"), "{text}");
    assert!(
        db.instance
            .services()
            .cluster
            .node_status()
            .iter()
            .all(|n| n.used == 0)
    );
    assert!(db.sql("SELECT * FROM big").is_err());
    // A small table still fits afterwards.
    db.load("small", &["id"], orders(100, 100)).unwrap();
}

#[test]
fn a_failed_replace_keeps_the_old_table() {
    let db = Db::new(&[("memory_per_node", "256KiB"), ("nodes", "1")]);
    db.load("t", &["id"], orders(1000, 500)).unwrap();
    let used = db.instance.nodes()[0].used;
    let schema = orders(1, 1)[0].schema();
    let err = db
        .load_with_schema("t", &["id"], schema, orders(200_000, 10_000), true)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    assert_eq!(db.rows("SELECT count(*) FROM t"), vec!["1000"]);
    assert_eq!(db.instance.nodes()[0].used, used);
}

#[test]
fn bad_input_is_a_typed_error_that_names_the_column() {
    let db = Db::new(&[]);
    let err = db.load("t", &["nope"], orders(10, 10)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ColumnNotFound);
    assert!(err.to_string().contains("nope"));
    // NULL in the key.
    let err = db.load("t", &["category"], orders(10, 10)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Data);
    assert!(err.to_string().contains("category"), "{err}");
    // Loading an existing name without replace.
    db.load("t", &["id"], orders(10, 10)).unwrap();
    let err = db.load("t", &["id"], orders(10, 10)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TableExists);
}

#[test]
fn unloading_gives_memory_back() {
    let db = Db::new(&[]);
    db.load("t", &["id"], orders(50_000, 5000)).unwrap();
    assert!(db.instance.nodes()[0].used > 0);
    db.sql("DROP TABLE t").unwrap();
    assert_eq!(db.instance.nodes()[0].used, 0);
}

#[test]
fn the_scan_applies_the_querys_filters_and_a_joins_runtime_filter() {
    let db = Db::new(&[("nodes", "1"), ("chunk_rows", "1000")]);
    db.load("orders", &["id"], orders(200_000, 10_000)).unwrap();
    db.load("picked", &["id"], orders(40, 40)).unwrap();
    // The query's own filter runs in the scan: no FilterExec above it.
    let query = "SELECT count(*), sum(amount) FROM orders WHERE amount > 97 AND category = 'books'";
    let plan = db.rows(&format!("EXPLAIN {query}")).join("\n");
    assert!(plan.contains("filters=["), "{plan}");
    assert!(!plan.contains("FilterExec"), "{plan}");
    assert_eq!(db.rows(query), vec!["0|NULL"]);
    let query = "SELECT count(*), sum(amount) FROM orders WHERE amount > 95 AND category = 'books'";
    assert_eq!(db.rows(query), vec!["2000|192000.0"]);
    // A join's build side (40 keys) reaches the probe side's scan while the
    // query runs, and the answer is the join's.
    let query = "SELECT count(*), sum(o.amount) FROM orders o JOIN picked p ON o.id = p.id";
    let plan = db.rows(&format!("EXPLAIN ANALYZE {query}")).join("\n");
    assert!(plan.contains("runtime_filters=[DynamicFilter"), "{plan}");
    assert_eq!(db.rows(query), vec!["40|780.0"]);
}
