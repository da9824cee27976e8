//! Runs every `tests/sql/*.slt` file through a fresh instance, twice: with
//! offload ON (queries on loaded tables run in the cluster) and OFF (every
//! query runs on the row store). The answers must be the same; records whose
//! output names the engine (EXPLAIN) carry `onlyif offload_on|offload_off`.

use std::path::Path;

use lakewave::Error;
use sqllogictest::{DBOutput, DefaultColumnType};

use crate::common::{Db, render};

struct SltDb(Db);

impl sqllogictest::DB for SltDb {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let batches = self.0.sql(sql)?;
        let first = sql
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let is_query = matches!(
            first.as_str(),
            "SELECT" | "WITH" | "VALUES" | "EXPLAIN" | "SHOW" | "DESCRIBE" | "("
        );
        if !is_query {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = batches
            .first()
            .map(|b| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        if f.data_type().is_integer() {
                            DefaultColumnType::Integer
                        } else if f.data_type().is_floating() || f.data_type().is_numeric() {
                            DefaultColumnType::FloatingPoint
                        } else {
                            DefaultColumnType::Text
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rows = render(&batches)
            .into_iter()
            .map(|line| {
                line.split('|')
                    .map(|cell| {
                        if cell.is_empty() {
                            "(empty)".to_string()
                        } else {
                            cell.to_string()
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }

    fn engine_name(&self) -> &str {
        "lakewave"
    }
}

#[test]
fn sql_logic_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        for mode in ["ON", "OFF"] {
            let mut runner = sqllogictest::Runner::new(move || async move {
                let db = Db::new(&[("nodes", "2"), ("chunk_rows", "4")]);
                db.sql(&format!("SET use_secondary_engine = {mode}"))?;
                Ok(SltDb(db))
            });
            runner.add_label(&format!("offload_{}", mode.to_ascii_lowercase()));
            if let Err(error) = runner.run_file(file) {
                failures.push(format!("{} (offload {mode}): {error}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
