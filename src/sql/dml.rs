//! DML on the row store: INSERT (multi-row, `INSERT ... SELECT`, `INSERT
//! IGNORE`), REPLACE, UPDATE and DELETE, and bulk inserts from Arrow.
//!
//! Values are computed by DataFusion (the VALUES list or SELECT of an INSERT,
//! the SET expressions and WHERE of UPDATE and DELETE, which are rewritten into
//! a query over the table with its row ids), so DML shares SELECT's semantics
//! exactly. A statement takes the row store's write lock before it reads, so
//! the rows it computes from are the rows it changes, and runs as one atomic
//! statement: on any error (or cancellation) nothing it did remains.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::compute::concat_batches;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Delete, FromTable, Insert, Query, Statement as SqlStatement, TableFactor,
    TableObject, Update,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::ddl::{last_ident, not_supported};
use super::resolve::{Purpose, ROWID_CATALOG_NAME};
use super::result::QueryResult;
use super::{Session, SqlError, abbreviate, datafusion_error, internal_error};
use crate::cancel::Cancel;
use crate::catalog::{ROWID_COLUMN, RowTable, TableName};
use crate::error::{Error, Result};
use crate::rowstore::{InsertMode, RowStoreError, StatementTxn, quote};

/// The position of `column` in `table`, or an error listing the valid ones.
fn column_position(table: &RowTable, column: &str, text: &str) -> Result<usize> {
    table.column_index(column).ok_or_else(|| -> Error {
        SqlError::ColumnNotFound {
            statement: abbreviate(text),
            column: column.to_string(),
            valid: table.column_names(),
        }
        .into()
    })
}

impl Session {
    /// Start a writing statement on `table`: with MySQL's `autocommit = 0`
    /// a transaction is opened first; then the write lock is taken (on a
    /// blocking thread, as the wait may be long).
    async fn begin_write(&self, table: &TableName, text: &str) -> Result<StatementTxn> {
        let autocommit = self.settings.lock().autocommit;
        let name = table.clone();
        self.blocking(text, move |conn| {
            if !autocommit && !conn.in_transaction() {
                conn.begin()?;
            }
            conn.begin_statement(&name)
        })
        .await
    }

    /// Finish a writing statement: keep it if `work` succeeded, else undo it,
    /// on a blocking thread either way.
    async fn end_write<T: Send + 'static>(
        &self,
        statement: StatementTxn,
        text: &str,
        work: std::result::Result<T, Error>,
    ) -> Result<T> {
        tokio::task::spawn_blocking(move || match work {
            Ok(value) => statement.finish().map(|()| value).map_err(Error::from),
            Err(error) => {
                drop(statement);
                Err(error)
            }
        })
        .await
        .map_err(|e| super::task_failed(text, e))?
    }

    /// Run a query on the row store (never offloaded: DML reads what it writes).
    async fn rows_of(
        &self,
        statement: Statement,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
        let df_error = |e| datafusion_error(text, e);
        let (state, plan) = self.plan(statement, text, Purpose::RowStore).await?;
        let mut frame = datafusion::dataframe::DataFrame::new(state, plan);
        if !params.is_empty() {
            frame = frame
                .with_param_values(ParamValues::from(params.to_vec()))
                .map_err(df_error)?;
        }
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = cancel
            .run(frame.collect())
            .await
            .ok_or_else(|| Error::Interrupted {
                what: abbreviate(text),
            })?
            .map_err(df_error)?;
        Ok((schema, batches))
    }

    fn query_statement(query: Box<Query>) -> Statement {
        Statement::Statement(Box::new(SqlStatement::Query(query)))
    }

    pub(super) async fn insert(
        &self,
        insert: &Insert,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let TableObject::TableName(object) = &insert.table else {
            return Err(not_supported(text, "INSERT INTO a table function"));
        };
        let name = self.object_name(object, text)?;
        let table = self.target(&name, text, "INSERT")?;
        if insert.on.is_some() {
            return Err(not_supported(
                text,
                "INSERT ... ON DUPLICATE KEY UPDATE / ON CONFLICT",
            ));
        }
        if insert.returning.is_some() || !insert.assignments.is_empty() {
            return Err(not_supported(
                text,
                "INSERT ... RETURNING or INSERT ... SET",
            ));
        }
        let Some(source) = &insert.source else {
            return Err(not_supported(text, "INSERT without VALUES or SELECT"));
        };
        let columns: Vec<usize> = if insert.columns.is_empty() {
            (0..table.columns.len()).collect()
        } else {
            insert
                .columns
                .iter()
                .map(|c| column_position(&table, &last_ident(c), text))
                .collect::<Result<_>>()?
        };
        let mode = if insert.replace_into {
            InsertMode::Replace
        } else if insert.ignore {
            InsertMode::Ignore
        } else {
            InsertMode::Insert
        };
        let statement = self.begin_write(&name, text).await?;
        let work = async {
            let (schema, batches) = self
                .rows_of(Self::query_statement(source.clone()), text, params, cancel)
                .await?;
            if schema.fields().len() != columns.len() {
                return Err(SqlError::ValueCount {
                    table: name.to_string(),
                    values: schema.fields().len(),
                    columns: columns.len(),
                }
                .into());
            }
            let batch = concat_batches(&schema, &batches).map_err(|e| internal_error(text, e))?;
            let table = Arc::clone(&table);
            let columns = columns.clone();
            self.blocking(text, move |conn| {
                conn.insert(&table, &columns, &batch, mode)
            })
            .await
        }
        .await;
        let inserted = self.end_write(statement, text, work).await?;
        let id = self.remember_insert_id(inserted.first_generated_id.map(|id| id as u64));
        Ok(QueryResult::affected(text, inserted.rows).with_insert_id(id))
    }

    /// Remember the AUTO_INCREMENT value an INSERT assigned, for
    /// `LAST_INSERT_ID()` (MySQL keeps the previous one when a statement
    /// assigns none, reported as 0), and pass it on.
    pub(super) fn remember_insert_id(&self, id: Option<u64>) -> Option<u64> {
        let id = id.filter(|&id| id != 0);
        if let Some(id) = id {
            self.settings.lock().last_insert_id = id;
        }
        id
    }

    /// Bulk insert from any Arrow source (columns matched by name), in one
    /// statement.
    pub async fn insert_batches(
        &self,
        name: &TableName,
        schema: arrow::datatypes::SchemaRef,
        batches: Vec<RecordBatch>,
        mode: InsertMode,
    ) -> Result<u64> {
        if let Some((server, _)) = self.upstream() {
            return self
                .insert_upstream(server, name, schema, batches, mode)
                .await;
        }
        let text = format!("insert into {name}");
        let table = self.target(name, &text, "INSERT")?;
        let columns: Vec<usize> = schema
            .fields()
            .iter()
            .map(|f| column_position(&table, f.name(), &text))
            .collect::<Result<_>>()?;
        let batch = concat_batches(&schema, &batches).map_err(|e| internal_error(&text, e))?;
        let statement = self.begin_write(name, &text).await?;
        let work = self
            .blocking(&text, move |conn| {
                conn.insert(&table, &columns, &batch, mode)
            })
            .await;
        let inserted = self.end_write(statement, &text, work).await?;
        self.remember_insert_id(inserted.first_generated_id.map(|id| id as u64));
        Ok(inserted.rows)
    }

    /// The table factor of UPDATE/DELETE as `lakewave_rowid.db.table AS alias`.
    fn rowid_relation(
        &self,
        relation: &TableFactor,
        text: &str,
        verb: &str,
    ) -> Result<(Arc<RowTable>, String)> {
        let TableFactor::Table { name, alias, .. } = relation else {
            return Err(not_supported(text, "UPDATE/DELETE of a derived table"));
        };
        let table_name = self.object_name(name, text)?;
        let table = self.target(&table_name, text, verb)?;
        let alias = match alias {
            Some(a) => a.name.to_string(),
            None => quote(&table_name.table),
        };
        let relation = format!(
            "{}.{}.{} AS {alias}",
            quote(ROWID_CATALOG_NAME),
            quote(&table_name.database),
            quote(&table_name.table)
        );
        Ok((table, relation))
    }

    fn parse_internal(sql: &str, text: &str) -> Result<Statement> {
        let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
            .map_err(|e| datafusion_error(text, e))?;
        statements.pop_front().ok_or_else(|| {
            SqlError::Syntax {
                statement: abbreviate(text),
                message: "empty statement".into(),
            }
            .into()
        })
    }

    pub(super) async fn update(
        &self,
        update: &Update,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        if !update.table.joins.is_empty() || update.from.is_some() {
            return Err(not_supported(
                text,
                "UPDATE of several tables (joins or FROM)",
            ));
        }
        if update.returning.is_some() || !update.order_by.is_empty() || update.limit.is_some() {
            return Err(not_supported(
                text,
                "UPDATE ... RETURNING / ORDER BY / LIMIT",
            ));
        }
        let (table, relation) = self.rowid_relation(&update.table.relation, text, "UPDATE")?;
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for assignment in &update.assignments {
            let AssignmentTarget::ColumnName(column) = &assignment.target else {
                return Err(not_supported(text, "tuple assignment in UPDATE"));
            };
            columns.push(column_position(&table, &last_ident(column), text)?);
            values.push(assignment.value.to_string());
        }
        let mut select = format!(
            "SELECT {}{}{} FROM {relation}",
            quote(ROWID_COLUMN),
            if values.is_empty() { "" } else { ", " },
            values.join(", ")
        );
        if let Some(selection) = &update.selection {
            select.push_str(&format!(" WHERE {selection}"));
        }
        let query = Self::parse_internal(&select, text)?;
        let statement = self.begin_write(&table.name, text).await?;
        let work = async {
            let (schema, batches) = self.rows_of(query, text, params, cancel).await?;
            let batch = concat_batches(&schema, &batches).map_err(|e| internal_error(text, e))?;
            let rowids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| internal_error(text, "row ids are not Int64"))?
                .clone();
            let values = batch
                .project(&(1..batch.num_columns()).collect::<Vec<_>>())
                .map_err(|e| internal_error(text, e))?;
            let table = Arc::clone(&table);
            let columns = columns.clone();
            self.blocking(text, move |conn| {
                conn.update(&table, &rowids, &columns, &values)
            })
            .await
        }
        .await;
        let changed = self.end_write(statement, text, work).await?;
        Ok(QueryResult::affected(text, changed))
    }

    pub(super) async fn delete(
        &self,
        delete: &Delete,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let from = match &delete.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        if from.len() != 1
            || !from[0].joins.is_empty()
            || !delete.tables.is_empty()
            || delete.using.is_some()
        {
            return Err(not_supported(text, "DELETE from several tables"));
        }
        if delete.returning.is_some() || !delete.order_by.is_empty() || delete.limit.is_some() {
            return Err(not_supported(
                text,
                "DELETE ... RETURNING / ORDER BY / LIMIT",
            ));
        }
        let (table, relation) = self.rowid_relation(&from[0].relation, text, "DELETE")?;
        let mut select = format!("SELECT {} FROM {relation}", quote(ROWID_COLUMN));
        if let Some(selection) = &delete.selection {
            select.push_str(&format!(" WHERE {selection}"));
        }
        let query = Self::parse_internal(&select, text)?;
        let statement = self.begin_write(&table.name, text).await?;
        let work = async {
            let (_, batches) = self.rows_of(query, text, params, cancel).await?;
            let mut rowids: Vec<i64> = Vec::new();
            for batch in &batches {
                let ids = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| internal_error(text, "row ids are not Int64"))?;
                rowids.extend(ids.values().iter());
            }
            let rowids = Int64Array::from(rowids);
            let table = Arc::clone(&table);
            self.blocking(text, move |conn| conn.delete(&table, &rowids))
                .await
        }
        .await;
        let changed = self.end_write(statement, text, work).await?;
        Ok(QueryResult::affected(text, changed))
    }
}

/// Rows of a bulk insert could not be read from their source.
pub fn source_error(table: &TableName, error: impl std::fmt::Display) -> Error {
    RowStoreError::BadValue {
        table: table.clone(),
        column: "(source)".into(),
        row: None,
        problem: crate::rowstore::ValueProblem::Incorrect,
        message: error.to_string(),
    }
    .into()
}
