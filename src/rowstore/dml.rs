//! Writing rows: INSERT (and REPLACE, INSERT IGNORE), UPDATE and DELETE by
//! row id. Values arrive as Arrow columns already computed by the front end;
//! here they are checked against the declared types and bound into SQLite.
//! Each call runs inside a statement the caller opened
//! ([`DbConnection::begin_statement`]), so a failure undoes the whole
//! statement.

use arrow::array::{Array, Int64Array, RecordBatch};
use rusqlite::types::ToSqlOutput;

use super::types::{Bindable, to_column_type};
use super::{DbConnection, InsertMode, Result, RowStoreError, quote, quoted_table};
use crate::catalog::RowTable;

fn bindable_columns(
    table: &RowTable,
    columns: &[usize],
    batch: &RecordBatch,
) -> Result<Vec<Bindable>> {
    columns
        .iter()
        .enumerate()
        .map(|(position, &column)| {
            let c = &table.columns[column];
            let bad = |problem, row, message| RowStoreError::BadValue {
                table: table.name.clone(),
                column: c.name.clone(),
                row,
                problem,
                message,
            };
            let array = to_column_type(batch.column(position), &c.sql_type)
                .map_err(|e| bad(e.problem, e.row, e.message))?;
            Bindable::new(&array, &c.sql_type)
                .map_err(|e| bad(super::ValueProblem::Incorrect, None, e.to_string()))
        })
        .collect()
}

/// NOT NULL columns (and key columns) must get a value in every row.
fn check_not_null(table: &RowTable, columns: &[usize], batch: &RecordBatch) -> Result<()> {
    for (position, &column) in columns.iter().enumerate() {
        let c = &table.columns[column];
        let not_null = !c.nullable || table.primary_key.contains(&column);
        if not_null && !c.auto_increment && batch.column(position).logical_null_count() > 0 {
            return Err(RowStoreError::NullValue {
                table: table.name.clone(),
                column: c.name.clone(),
            });
        }
    }
    Ok(())
}

fn column_list(table: &RowTable, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&i| quote(&table.columns[i].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an INSERT did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub rows: u64,
    /// The AUTO_INCREMENT value given to the first row that was assigned
    /// one (MySQL's `LAST_INSERT_ID()` after a multi-row INSERT).
    pub first_generated_id: Option<i64>,
}

impl DbConnection {
    /// Insert rows (columns already in table order; a column missing from
    /// `columns` is NULL or auto-assigned).
    pub fn insert(
        &self,
        table: &RowTable,
        columns: &[usize],
        batch: &RecordBatch,
        mode: InsertMode,
    ) -> Result<Inserted> {
        check_not_null(table, columns, batch)?;
        for (index, c) in table.columns.iter().enumerate() {
            let not_null = !c.nullable || table.primary_key.contains(&index);
            if not_null && !c.auto_increment && !columns.contains(&index) {
                return Err(RowStoreError::NoDefault {
                    table: table.name.clone(),
                    column: c.name.clone(),
                });
            }
        }
        let bindables = bindable_columns(table, columns, batch)?;
        self.add_pending(batch.get_array_memory_size() as u64);
        let verb = match mode {
            InsertMode::Insert => "INSERT",
            InsertMode::Replace => "INSERT OR REPLACE",
            InsertMode::Ignore => "INSERT OR IGNORE",
        };
        let sql = format!(
            "{verb} INTO {} ({}) VALUES ({})",
            quoted_table(&table.name),
            column_list(table, columns),
            vec!["?"; columns.len()].join(", ")
        );
        // Where the AUTO_INCREMENT value of a row comes from: the key is the
        // rowid, so SQLite assigns it when the row leaves it NULL.
        let auto = table.columns.iter().position(|c| c.auto_increment);
        // Logical nulls: a NULL literal arrives as a column of type Null.
        let given_auto = auto
            .and_then(|a| columns.iter().position(|&c| c == a))
            .map(|position| batch.column(position).logical_nulls());
        self.with_conn(|conn| {
            let action = verb.to_string();
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| RowStoreError::sqlite(&table.name, &action, e))?;
            let mut inserted = Inserted::default();
            for row in 0..batch.num_rows() {
                for (i, column) in bindables.iter().enumerate() {
                    stmt.raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(column.value(row)))
                        .map_err(|e| RowStoreError::sqlite(&table.name, &action, e))?;
                }
                let changed = stmt
                    .raw_execute()
                    .map_err(|e| RowStoreError::sqlite(&table.name, &action, e))?
                    as u64;
                inserted.rows += changed;
                let generated = auto.is_some()
                    && given_auto
                        .as_ref()
                        .is_none_or(|nulls| nulls.as_ref().is_some_and(|nulls| nulls.is_null(row)));
                if generated && changed > 0 && inserted.first_generated_id.is_none() {
                    inserted.first_generated_id = Some(conn.last_insert_rowid());
                }
            }
            Ok(inserted)
        })
    }

    /// Set `columns` of the rows with the given row ids to `values`.
    pub fn update(
        &self,
        table: &RowTable,
        rowids: &Int64Array,
        columns: &[usize],
        values: &RecordBatch,
    ) -> Result<u64> {
        check_not_null(table, columns, values)?;
        let bindables = bindable_columns(table, columns, values)?;
        self.add_pending(values.get_array_memory_size() as u64);
        let assignments = columns
            .iter()
            .enumerate()
            .map(|(i, &c)| format!("{} = ?{}", quote(&table.columns[c].name), i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE {} SET {assignments} WHERE rowid = ?{}",
            quoted_table(&table.name),
            columns.len() + 1
        );
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| RowStoreError::sqlite(&table.name, "UPDATE", e))?;
            let mut changed = 0u64;
            for row in 0..values.num_rows() {
                for (i, column) in bindables.iter().enumerate() {
                    stmt.raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(column.value(row)))
                        .map_err(|e| RowStoreError::sqlite(&table.name, "UPDATE", e))?;
                }
                stmt.raw_bind_parameter(columns.len() + 1, rowids.value(row))
                    .map_err(|e| RowStoreError::sqlite(&table.name, "UPDATE", e))?;
                changed += stmt
                    .raw_execute()
                    .map_err(|e| RowStoreError::sqlite(&table.name, "UPDATE", e))?
                    as u64;
            }
            Ok(changed)
        })
    }

    pub fn delete(&self, table: &RowTable, rowids: &Int64Array) -> Result<u64> {
        self.add_pending(rowids.len() as u64 * 64);
        let sql = format!("DELETE FROM {} WHERE rowid = ?", quoted_table(&table.name));
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| RowStoreError::sqlite(&table.name, "DELETE", e))?;
            let mut changed = 0u64;
            for rowid in rowids.iter().flatten() {
                changed += stmt
                    .execute([rowid])
                    .map_err(|e| RowStoreError::sqlite(&table.name, "DELETE", e))?
                    as u64;
            }
            Ok(changed)
        })
    }
}
