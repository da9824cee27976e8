//! Every Delta table Spark wrote in `tests/data/delta-golden` (a copy of the
//! project's shared golden tables, with their NOTICE) does what its
//! MANIFEST says, read in place and loaded into the cluster: the same rows as
//! Spark's own read in `expected/` (compared as multisets), or a clear typed
//! error. The tables are copied to a temporary folder first.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use lakewave::ErrorKind;

use crate::common::Db;

pub(crate) fn golden_root() -> Option<PathBuf> {
    // A copy lives in the repository, so a fresh clone tests alone.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/delta-golden");
    root.join("MANIFEST.txt").exists().then_some(root)
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Spark's expected rows, read with the parquet crate.
fn expected_batches(dir: &Path) -> Vec<RecordBatch> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&file).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        out.extend(reader.map(|b| b.unwrap()));
    }
    out
}

/// Rows as sorted text, columns in `names` order, after casting each column
/// to `types` (so both sides format alike).
fn rows_as_text(
    batches: &[RecordBatch],
    names: &[String],
    types: &[arrow::datatypes::DataType],
) -> Result<Vec<String>, String> {
    let mut rows = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    for batch in batches {
        let mut columns = Vec::new();
        for (name, data_type) in names.iter().zip(types) {
            let index = batch
                .schema()
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("column '{name}' is missing"))?;
            let column = batch.column(index);
            let column = if column.data_type() == data_type {
                column.clone()
            } else {
                cast(column, data_type).map_err(|e| format!("column '{name}': {e}"))?
            };
            columns.push(column);
        }
        let formatters: Vec<ArrayFormatter> = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows.sort();
    Ok(rows)
}

fn check_read(db: &Db, expected_dir: &Path) -> Result<(), String> {
    let got = db.sql("SELECT * FROM g").map_err(|e| e.chain_message())?;
    let expected = expected_batches(expected_dir);
    let Some(first) = got.first() else {
        let spark_rows: usize = expected.iter().map(|b| b.num_rows()).sum();
        return if spark_rows == 0 {
            Ok(())
        } else {
            Err(format!("no rows, Spark read {spark_rows}"))
        };
    };
    let schema = first.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let expected_columns = expected
        .first()
        .map(|b| b.num_columns())
        .unwrap_or(names.len());
    if expected_columns != names.len() {
        return Err(format!(
            "{} columns, Spark read {expected_columns}",
            names.len()
        ));
    }
    let ours = rows_as_text(&got, &names, &types)?;
    let spark = rows_as_text(&expected, &names, &types)?;
    if ours != spark {
        let first_difference = ours
            .iter()
            .zip(&spark)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("ours {a} / Spark {b}"))
            .unwrap_or_default();
        return Err(format!(
            "{} rows, Spark has {}; first difference: {first_difference}",
            ours.len(),
            spark.len()
        ));
    }
    Ok(())
}

#[test]
fn every_golden_delta_table_does_what_its_manifest_says() {
    let root = golden_root().expect("the Delta golden tables (tests/data/delta-golden) are needed");
    let manifest = std::fs::read_to_string(root.join("MANIFEST.txt")).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let (name, kind) = line.split_once(' ').unwrap();
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("delta");
        copy_dir(&root.join(name).join("delta"), &table);
        let db = Db::new(&[]);
        let defined = db.sql(&format!(
            "CREATE EXTERNAL TABLE g FILE_FORMAT = (FORMAT delta) FILES = (URI '{}')",
            table.display()
        ));
        let outcome = match kind {
            "error" => match defined.and_then(|_| db.sql("SELECT * FROM g")) {
                Ok(_) => Err("read without an error".to_string()),
                Err(e) if e.kind() == ErrorKind::Internal => Err(format!("internal error: {e}")),
                Err(e) if !e.chain_message().contains("main.g") => {
                    Err(format!("the error does not name the table: {e}"))
                }
                Err(_) => Ok(()),
            },
            // "Loads without error": the log (checkpoint and commits) is
            // read and the table defined. Its data files are not part of
            // the published test data.
            "readable" => defined
                .and_then(|_| {
                    db.sql(
                        "SELECT column_name FROM information_schema.columns WHERE table_name = 'g'",
                    )
                })
                .map_err(|e| e.chain_message())
                .and_then(|b| {
                    if b.iter().map(|b| b.num_rows()).sum::<usize>() > 0 {
                        Ok(())
                    } else {
                        Err("no columns".into())
                    }
                }),
            _ => match defined {
                Err(e) => Err(e.chain_message()),
                Ok(_) => check_read(&db, &root.join(name).join("expected")).and_then(|_| {
                    db.sql("ALTER TABLE g SECONDARY_LOAD")
                        .map_err(|e| format!("load: {}", e.chain_message()))?;
                    check_read(&db, &root.join(name).join("expected"))
                        .map_err(|e| format!("loaded: {e}"))
                }),
            },
        };
        checked += 1;
        if let Err(reason) = outcome {
            failures.push(format!("{name} ({kind}): {reason}"));
        }
    }
    assert!(checked > 50, "only {checked} tables in the MANIFEST");
    assert!(
        failures.is_empty(),
        "{} of {checked} golden tables fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
