//! Reading rows of a row-store table into Arrow batches: the columns asked
//! for, optionally preceded by SQLite's row id, with simple comparisons
//! applied by SQLite (so key lookups use its B-tree). Batches are handed to a
//! callback as they fill, so a whole table is never held at once.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch};
use arrow::datatypes::{Field, Schema};
use datafusion::common::ScalarValue;
use rusqlite::Connection;
use rusqlite::types::Value;

use super::types::ColumnDecoder;
use super::{Result, RowStoreError, quote, quoted_table, rowid_field};
use crate::catalog::{RowTable, SqlType};

/// A comparison operator SQLite applies for a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl FilterOp {
    fn sql(&self) -> &'static str {
        match self {
            FilterOp::Eq => "=",
            FilterOp::Lt => "<",
            FilterOp::LtEq => "<=",
            FilterOp::Gt => ">",
            FilterOp::GtEq => ">=",
        }
    }
}

/// `column op value`, applied by SQLite.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFilter {
    pub column: usize,
    pub op: FilterOp,
    pub value: ScalarValue,
}

impl RowFilter {
    /// The SQLite value to compare with, when SQLite compares it exactly as
    /// SQL does elsewhere: integers, doubles and strings (byte order).
    /// Text-held exact and temporal types are left to the query engine.
    pub fn sqlite_value(&self, table: &RowTable) -> Option<Value> {
        let sql_type = &table.columns.get(self.column)?.sql_type;
        Some(match (sql_type, &self.value) {
            (SqlType::Int | SqlType::BigInt, ScalarValue::Int8(Some(v))) => {
                Value::Integer(*v as i64)
            }
            (SqlType::Int | SqlType::BigInt, ScalarValue::Int16(Some(v))) => {
                Value::Integer(*v as i64)
            }
            (SqlType::Int | SqlType::BigInt, ScalarValue::Int32(Some(v))) => {
                Value::Integer(*v as i64)
            }
            (SqlType::Int | SqlType::BigInt, ScalarValue::Int64(Some(v))) => Value::Integer(*v),
            (SqlType::Double, ScalarValue::Float64(Some(v))) if v.is_finite() => Value::Real(*v),
            (SqlType::Varchar(_) | SqlType::Text, ScalarValue::Utf8(Some(v))) => {
                Value::Text(v.clone())
            }
            _ => return None,
        })
    }
}

/// Stream rows of `table` in batches of at most `batch_rows` to `each`: the
/// given columns, optionally preceded by the row id, filtered by `filters`
/// (each must have a [`RowFilter::sqlite_value`]).
#[allow(clippy::too_many_arguments)]
pub fn scan_rows<E: From<RowStoreError>>(
    conn: &Connection,
    table: &RowTable,
    columns: &[usize],
    with_rowid: bool,
    filters: &[RowFilter],
    batch_rows: usize,
    each: &mut dyn FnMut(RecordBatch) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    for filter in filters {
        let Some(value) = filter.sqlite_value(table) else {
            continue;
        };
        conditions.push(format!(
            "{} {} ?",
            quote(&table.columns[filter.column].name),
            filter.op.sql()
        ));
        params.push(value);
    }
    let condition = conditions.join(" AND ");
    scan_where(
        conn,
        table,
        columns,
        with_rowid,
        (!condition.is_empty()).then_some((condition.as_str(), params.as_slice())),
        batch_rows,
        each,
    )
}

/// Every matching row at once (small reads: DML, the change log).
pub fn read_rows(
    conn: &Connection,
    table: &RowTable,
    columns: &[usize],
    with_rowid: bool,
    filters: &[RowFilter],
    batch_rows: usize,
) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    scan_rows::<RowStoreError>(
        conn,
        table,
        columns,
        with_rowid,
        filters,
        batch_rows,
        &mut |batch| {
            batches.push(batch);
            Ok(())
        },
    )?;
    Ok(batches)
}

/// The scan with an SQL condition over the table (with `?` parameters).
/// At least one batch is produced, empty when no row matches.
pub(super) fn scan_where<E: From<RowStoreError>>(
    conn: &Connection,
    table: &RowTable,
    columns: &[usize],
    with_rowid: bool,
    condition: Option<(&str, &[Value])>,
    batch_rows: usize,
    each: &mut dyn FnMut(RecordBatch) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut fields: Vec<Field> = Vec::new();
    if with_rowid {
        fields.push(rowid_field());
    }
    let schema = table.schema();
    fields.extend(columns.iter().map(|&i| schema.field(i).clone()));
    let schema = Arc::new(Schema::new(fields));
    let mut select: Vec<String> = Vec::new();
    if with_rowid {
        select.push("rowid".into());
    }
    select.extend(columns.iter().map(|&i| quote(&table.columns[i].name)));
    if select.is_empty() {
        select.push("NULL".into());
    }
    let mut sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        quoted_table(&table.name)
    );
    let no_params: &[Value] = &[];
    let params = match condition {
        Some((text, params)) => {
            sql.push_str(" WHERE ");
            sql.push_str(text);
            params
        }
        None => no_params,
    };
    let sqlite_error = |e| RowStoreError::sqlite(&table.name, "reading", e);
    let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(sqlite_error)?;
    let batch_rows = batch_rows.max(1);
    let new_decoders = || -> (Option<Int64Builder>, Vec<ColumnDecoder>) {
        (
            with_rowid.then(|| Int64Builder::with_capacity(batch_rows)),
            columns
                .iter()
                .map(|&i| ColumnDecoder::new(&table.columns[i].sql_type, batch_rows))
                .collect(),
        )
    };
    let (mut rowids, mut decoders) = new_decoders();
    let mut pending = 0usize;
    let mut produced = false;
    let offset = usize::from(with_rowid);
    let bad_value = |column: usize, message: String| RowStoreError::BadValue {
        table: table.name.clone(),
        column: table.columns[column].name.clone(),
        row: None,
        problem: super::ValueProblem::Incorrect,
        message,
    };
    let finish = |rowids: &mut Option<Int64Builder>,
                  decoders: &mut Vec<ColumnDecoder>,
                  rows: usize|
     -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::new();
        if let Some(b) = rowids {
            arrays.push(Arc::new(b.finish()));
        }
        for (decoder, &column) in decoders.iter_mut().zip(columns) {
            arrays.push(
                decoder
                    .finish()
                    .map_err(|e| bad_value(column, e.to_string()))?,
            );
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&schema), arrays, &options).map_err(|e| {
            RowStoreError::BadValue {
                table: table.name.clone(),
                column: "(row)".into(),
                row: None,
                problem: super::ValueProblem::Incorrect,
                message: e.to_string(),
            }
        })
    };
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        if let Some(b) = rowids.as_mut() {
            b.append_value(row.get::<_, i64>(0).map_err(sqlite_error)?);
        }
        for (i, (decoder, &column)) in decoders.iter_mut().zip(columns).enumerate() {
            let value = row.get_ref(i + offset).map_err(sqlite_error)?;
            decoder
                .push(value)
                .map_err(|message| bad_value(column, message))?;
        }
        pending += 1;
        if pending == batch_rows {
            each(finish(&mut rowids, &mut decoders, pending)?)?;
            produced = true;
            pending = 0;
        }
    }
    if pending > 0 || !produced {
        each(finish(&mut rowids, &mut decoders, pending)?)?;
    }
    Ok(())
}
