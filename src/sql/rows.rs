//! The row scanner queries use on the row store: a session's own connection,
//! so a query in a transaction sees that transaction's writes.

use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::catalog::RowTable;
use crate::exec::{Comparison, ComparisonOp, RowScanner};
use crate::rowstore::{DbConnection, FilterOp, RowFilter, read_rows};

#[derive(Clone)]
pub struct SessionRows {
    pub conn: Arc<DbConnection>,
}

impl std::fmt::Debug for SessionRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionRows")
    }
}

fn filter(comparison: &Comparison) -> RowFilter {
    RowFilter {
        column: comparison.column,
        op: match comparison.op {
            ComparisonOp::Eq => FilterOp::Eq,
            ComparisonOp::Lt => FilterOp::Lt,
            ComparisonOp::LtEq => FilterOp::LtEq,
            ComparisonOp::Gt => FilterOp::Gt,
            ComparisonOp::GtEq => FilterOp::GtEq,
        },
        value: comparison.value.clone(),
    }
}

impl RowScanner for SessionRows {
    fn applies(&self, table: &RowTable, comparison: &Comparison) -> bool {
        filter(comparison).sqlite_value(table).is_some()
    }

    fn scan(
        &self,
        table: &RowTable,
        columns: &[usize],
        with_rowid: bool,
        comparisons: &[Comparison],
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error + Send + Sync>> {
        let filters: Vec<RowFilter> = comparisons.iter().map(filter).collect();
        self.conn
            .with_conn(|conn| read_rows(conn, table, columns, with_rowid, &filters, batch_rows))
            .map_err(|e| Box::new(e) as _)
    }
}
