//! Statements on the row store: CREATE TABLE, INSERT/REPLACE, UPDATE, DELETE,
//! TRUNCATE, ALTER TABLE, DROP TABLE, transactions, and HeatWave's
//! SECONDARY_LOAD / SECONDARY_UNLOAD.
//!
//! Values are computed by DataFusion (the VALUES list or SELECT of an INSERT,
//! the SET expressions and WHERE of UPDATE and DELETE, which are rewritten into
//! a query over the table with its row ids), so DML shares SELECT's semantics
//! exactly; the rows are then written to SQLite by `rowstore` in one atomic
//! statement.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::compute::concat_batches;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, AssignmentTarget, ColumnDef as AstColumnDef, ColumnOption, CreateTable,
    Delete, Expr as AstExpr, FromTable, Ident, Insert, ObjectName, Query, RenameTableNameKind,
    Statement as SqlStatement, TableConstraint, TableFactor, TableObject, Update,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::schema::ROWID_CATALOG_NAME;
use super::{QueryResult, Session, SqlError, abbreviate};
use crate::cancel::Cancel;
use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::rowstore::{ColumnDef, InsertMode, RowStoreError, RowTable, SqlType, quote};

pub(super) fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The last part of a (possibly qualified) name, normalised.
pub(super) fn last_ident(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(normalize)
        .unwrap_or_default()
}

/// The position of `column` in `table`, or an error listing the valid ones.
fn column_position(table: &RowTable, column: &str, text: &str) -> Result<usize> {
    table.column_index(column).ok_or_else(|| -> Error {
        SqlError::ColumnNotFound {
            statement: abbreviate(text),
            column: column.to_string(),
            valid: table
                .columns
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into()
    })
}

fn not_supported(text: &str, what: impl Into<String>) -> Error {
    SqlError::NotSupported {
        statement: abbreviate(text),
        what: what.into(),
    }
    .into()
}

fn definition(name: &TableName, message: impl Into<String>) -> Error {
    RowStoreError::Definition {
        table: name.clone(),
        message: message.into(),
    }
    .into()
}

impl Session {
    /// `db.table` or `table` from the AST.
    pub(super) fn object_name(&self, name: &ObjectName, text: &str) -> Result<TableName> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| p.as_ident().map(normalize))
            .collect::<Option<_>>()
            .ok_or_else(|| not_supported(text, format!("the name {name}")))?;
        match parts.as_slice() {
            [table] => Ok(TableName::new(self.current_database(), table.clone())),
            [database, table] => Ok(TableName::new(database.clone(), table.clone())),
            _ => Err(SqlError::Plan {
                statement: abbreviate(text),
                message: format!("'{name}' is not a table name (expected table or database.table)"),
            }
            .into()),
        }
    }

    /// The row-store table a DML statement targets; a cluster-only table is
    /// read-only.
    fn target(&self, name: &TableName, text: &str, verb: &str) -> Result<Arc<RowTable>> {
        if let Some(table) = self.sources.conn.database().table(name) {
            return Ok(table);
        }
        if self.sources.cluster.table(name).is_some() {
            return Err(not_supported(
                text,
                format!(
                    "{verb} on '{name}': it was loaded straight into the cluster (a read-only \
                     SNAPSHOT table); create it in the row store with CREATE TABLE to change it"
                ),
            ));
        }
        Err(SqlError::TableNotFound {
            statement: abbreviate(text),
            table: name.to_string(),
        }
        .into())
    }

    pub(super) fn column_def_for(
        &self,
        column: &AstColumnDef,
        table: &TableName,
    ) -> Result<(ColumnDef, bool)> {
        let name = normalize(&column.name);
        let sql_type = SqlType::from_ast(&column.data_type)
            .map_err(|m| definition(table, format!("column '{name}': {m}")))?;
        let mut def = ColumnDef {
            name: name.clone(),
            sql_type,
            nullable: true,
            auto_increment: false,
        };
        let mut primary = false;
        for option in &column.options {
            match &option.option {
                ColumnOption::Null => def.nullable = true,
                ColumnOption::NotNull => def.nullable = false,
                ColumnOption::PrimaryKey(_) => primary = true,
                ColumnOption::DialectSpecific(tokens)
                    if tokens
                        .iter()
                        .any(|t| t.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")) =>
                {
                    def.auto_increment = true
                }
                other => {
                    return Err(definition(
                        table,
                        format!("column option `{other}` on '{name}' is not supported"),
                    ));
                }
            }
        }
        Ok((def, primary))
    }

    pub(super) fn create_row_table(&self, create: &CreateTable, text: &str) -> Result<QueryResult> {
        let name = self.object_name(&create.name, text)?;
        if create.external || create.temporary {
            return Err(not_supported(text, "CREATE TEMPORARY/EXTERNAL TABLE"));
        }
        let exists = self.sources.conn.database().table(&name).is_some()
            || self.sources.cluster.table(&name).is_some();
        if exists {
            if create.if_not_exists {
                return Ok(self.done(text, format!("table {name} already exists")));
            }
            return Err(RowStoreError::TableExists(name).into());
        }
        if create.or_replace {
            return Err(not_supported(
                text,
                "CREATE OR REPLACE TABLE with a column list",
            ));
        }
        let mut columns = Vec::new();
        let mut primary_key = Vec::new();
        for (i, column) in create.columns.iter().enumerate() {
            let (def, primary) = self.column_def_for(column, &name)?;
            if primary {
                primary_key.push(i);
            }
            columns.push(def);
        }
        for constraint in &create.constraints {
            match constraint {
                TableConstraint::PrimaryKey(pk) => {
                    if !primary_key.is_empty() {
                        return Err(definition(&name, "more than one PRIMARY KEY"));
                    }
                    for column in &pk.columns {
                        let AstExpr::Identifier(ident) = &column.column.expr else {
                            return Err(definition(
                                &name,
                                format!("PRIMARY KEY ({})", column.column.expr),
                            ));
                        };
                        let key = normalize(ident);
                        let index =
                            columns.iter().position(|c| c.name == key).ok_or_else(|| {
                                definition(
                                    &name,
                                    format!("PRIMARY KEY names unknown column '{key}'"),
                                )
                            })?;
                        primary_key.push(index);
                    }
                }
                other => {
                    return Err(definition(
                        &name,
                        format!("constraint `{other}` is not supported"),
                    ));
                }
            }
        }
        self.sources
            .conn
            .create_table(&name, columns, primary_key)?;
        Ok(self.done(text, format!("created table {name}")))
    }

    /// Run a query on the row store (never offloaded: DML reads what it writes).
    async fn rows_of(
        &self,
        statement: Statement,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
        let df_error = |e| -> Error { SqlError::from_datafusion(text, e).into() };
        self.set_offload(false);
        let state = self.ctx.state();
        let plan = state.statement_to_plan(statement).await.map_err(df_error)?;
        let mut frame = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(df_error)?;
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
        let (schema, batches) = self
            .rows_of(Self::query_statement(source.clone()), text, params, cancel)
            .await?;
        if schema.fields().len() != columns.len() {
            return Err(SqlError::Plan {
                statement: abbreviate(text),
                message: format!(
                    "INSERT into '{name}' gives {} values per row for {} columns",
                    schema.fields().len(),
                    columns.len()
                ),
            }
            .into());
        }
        let batch = concat_batches(&schema, &batches).map_err(|e| SqlError::Execution {
            statement: abbreviate(text),
            message: e.to_string(),
            kind: crate::error::ErrorKind::Internal,
        })?;
        let mode = if insert.replace_into {
            InsertMode::Replace
        } else if insert.ignore {
            InsertMode::Ignore
        } else {
            InsertMode::Insert
        };
        let conn = Arc::clone(&self.sources.conn);
        let written = conn.insert(&table, &columns, &batch, mode)?;
        Ok(self.affected(text, written))
    }

    /// Bulk insert from any Arrow source: columns matched by name.
    pub async fn insert_batches(
        &self,
        name: &TableName,
        schema: arrow::datatypes::SchemaRef,
        batches: Vec<RecordBatch>,
        mode: InsertMode,
    ) -> Result<u64> {
        let text = format!("insert into {name}");
        let table = self.target(name, &text, "INSERT")?;
        let columns: Vec<usize> = schema
            .fields()
            .iter()
            .map(|f| column_position(&table, f.name(), &text))
            .collect::<Result<_>>()?;
        let batch = concat_batches(&schema, &batches).map_err(|e| RowStoreError::BadValue {
            table: name.clone(),
            column: "(batch)".into(),
            message: e.to_string(),
        })?;
        let conn = Arc::clone(&self.sources.conn);
        Ok(conn.insert(&table, &columns, &batch, mode)?)
    }

    /// The table factor of UPDATE/DELETE as `lakewave_rowid.db.table AS alias`.
    fn rowid_relation(
        &self,
        relation: &TableFactor,
        text: &str,
    ) -> Result<(Arc<RowTable>, String)> {
        let TableFactor::Table { name, alias, .. } = relation else {
            return Err(not_supported(text, "UPDATE/DELETE of a derived table"));
        };
        let table_name = self.object_name(name, text)?;
        let verb = if text.trim_start().to_ascii_uppercase().starts_with("UPDATE") {
            "UPDATE"
        } else {
            "DELETE"
        };
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
            .map_err(|e| SqlError::from_datafusion(text, e))?;
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
        let (table, relation) = self.rowid_relation(&update.table.relation, text)?;
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
            quote(crate::rowstore::ROWID_COLUMN),
            if values.is_empty() { "" } else { ", " },
            values.join(", ")
        );
        if let Some(selection) = &update.selection {
            select.push_str(&format!(" WHERE {selection}"));
        }
        let statement = Self::parse_internal(&select, text)?;
        let (schema, batches) = self.rows_of(statement, text, params, cancel).await?;
        let batch = concat_batches(&schema, &batches).map_err(|e| SqlError::Execution {
            statement: abbreviate(text),
            message: e.to_string(),
            kind: crate::error::ErrorKind::Internal,
        })?;
        let rowids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("row ids are Int64")
            .clone();
        let values = batch
            .project(&(1..batch.num_columns()).collect::<Vec<_>>())
            .map_err(|e| SqlError::Execution {
                statement: abbreviate(text),
                message: e.to_string(),
                kind: crate::error::ErrorKind::Internal,
            })?;
        let conn = Arc::clone(&self.sources.conn);
        let changed = conn.update(&table, &rowids, &columns, &values)?;
        Ok(self.affected(text, changed))
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
        let (table, relation) = self.rowid_relation(&from[0].relation, text)?;
        let mut select = format!(
            "SELECT {} FROM {relation}",
            quote(crate::rowstore::ROWID_COLUMN)
        );
        if let Some(selection) = &delete.selection {
            select.push_str(&format!(" WHERE {selection}"));
        }
        let statement = Self::parse_internal(&select, text)?;
        let (_, batches) = self.rows_of(statement, text, params, cancel).await?;
        let rowids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("row ids are Int64")
                    .values()
                    .to_vec()
            })
            .collect();
        let rowids = Int64Array::from(rowids);
        let conn = Arc::clone(&self.sources.conn);
        let changed = conn.delete(&table, &rowids)?;
        Ok(self.affected(text, changed))
    }

    pub(super) fn truncate(&self, object: &ObjectName, text: &str) -> Result<QueryResult> {
        let name = self.object_name(object, text)?;
        self.target(&name, text, "TRUNCATE")?;
        let conn = Arc::clone(&self.sources.conn);
        conn.truncate(&name)?;
        Ok(self.done(text, format!("truncated {name}")))
    }

    pub(super) async fn alter(
        &self,
        object: &ObjectName,
        operations: &[AlterTableOperation],
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let name = self.object_name(object, text)?;
        self.target(&name, text, "ALTER TABLE")?;
        let [operation] = operations else {
            return Err(not_supported(
                text,
                "several ALTER TABLE operations in one statement",
            ));
        };
        let conn = Arc::clone(&self.sources.conn);
        let loaded = self.sources.propagator.table(&name).is_some();
        match operation {
            AlterTableOperation::RenameTable { table_name } => {
                let (RenameTableNameKind::To(to) | RenameTableNameKind::As(to)) = table_name;
                let to = self.object_name(to, text)?;
                if self.sources.cluster.table(&to).is_some() {
                    return Err(RowStoreError::TableExists(to).into());
                }
                conn.rename_table(&name, &to)?;
                if loaded {
                    // Carried over: the cluster copy and its propagation follow.
                    self.sources.propagator.rename(&name, &to)?;
                }
                Ok(self.done(text, format!("renamed {name} to {to}")))
            }
            AlterTableOperation::AddColumn { column_def, .. } => {
                let (def, primary) = self.column_def_for(column_def, &name)?;
                if primary {
                    return Err(definition(
                        &name,
                        "ADD COLUMN cannot add a primary key column",
                    ));
                }
                conn.add_column(&name, def)?;
                self.reload_after_ddl(&name, loaded, cancel).await;
                Ok(self.done(text, format!("added a column to {name}")))
            }
            AlterTableOperation::DropColumn { column_names, .. } => {
                for column in column_names {
                    let column = normalize(column);
                    conn.drop_column(&name, &column)?;
                }
                self.reload_after_ddl(&name, loaded, cancel).await;
                Ok(self.done(text, format!("dropped a column of {name}")))
            }
            other => Err(not_supported(text, format!("ALTER TABLE ... {other}"))),
        }
    }

    /// A loaded table whose columns changed is reloaded from the row store so
    /// the cluster copy has the new shape; if that fails it is marked stale
    /// (and queries fall back to the row store) until reloaded.
    async fn reload_after_ddl(&self, name: &TableName, loaded: bool, cancel: &Cancel) {
        if !loaded {
            return;
        }
        let propagator = Arc::clone(&self.sources.propagator);
        let name = name.clone();
        let cancel = cancel.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let result = propagator.load(&name, &cancel);
            if let Err(e) = &result {
                propagator.mark_stale_reason(
                    &name,
                    format!(
                        "its definition changed and the reload failed: {}",
                        e.chain_message()
                    ),
                );
            }
            result.map(|_| ())
        })
        .await;
        let _ = outcome;
    }

    /// DROP TABLE of a row-store table (and its cluster copy).
    pub(super) fn drop_row_table(&self, name: &TableName, text: &str) -> Result<QueryResult> {
        if self.sources.propagator.table(name).is_some() {
            self.sources.propagator.unload(name)?;
        }
        let conn = Arc::clone(&self.sources.conn);
        conn.drop_table(name)?;
        Ok(self.done(text, format!("dropped table {name}")))
    }

    pub(super) async fn secondary_load(
        &self,
        table: &str,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let name = self.parse_name(table, text)?;
        if self.sources.externals.get(&name).is_some() {
            return self.load_external(&name, text, cancel).await;
        }
        if self.sources.conn.database().table(&name).is_none() {
            if self.sources.cluster.table(&name).is_some() {
                return Ok(self.done(text, format!("{name} is already in the cluster")));
            }
            return Err(SqlError::TableNotFound {
                statement: abbreviate(text),
                table: name.to_string(),
            }
            .into());
        }
        let conn = Arc::clone(&self.sources.conn);
        let propagator = Arc::clone(&self.sources.propagator);
        let cancel = cancel.clone();
        let loaded_name = name.clone();
        let loaded = tokio::task::spawn_blocking(move || -> Result<_> {
            conn.set_capture(&loaded_name, true)?;
            match propagator.load(&loaded_name, &cancel) {
                Ok(loaded) => Ok(loaded),
                Err(e) => {
                    // As in HeatWave, a failed load leaves the table unloaded.
                    let _ = propagator.unload(&loaded_name);
                    let _ = conn.set_capture(&loaded_name, false);
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| super::task_failed(text, e))??;
        let rows = self
            .sources
            .cluster
            .table(&name)
            .map(|t| t.rows())
            .unwrap_or(0);
        Ok(self.done(
            text,
            format!(
                "loaded {rows} rows of {name} into the cluster at SCN {}",
                loaded.scn
            ),
        ))
    }

    pub(super) fn secondary_unload(&self, table: &str, text: &str) -> Result<QueryResult> {
        let name = self.parse_name(table, text)?;
        if self.sources.externals.get(&name).is_some() {
            return self.unload_external(&name, text);
        }
        if self.sources.conn.database().table(&name).is_none() {
            if self.sources.cluster.table(&name).is_some() {
                return Err(not_supported(
                    text,
                    format!(
                        "SECONDARY_UNLOAD of '{name}': it exists only in the cluster; use DROP TABLE"
                    ),
                ));
            }
            return Err(SqlError::TableNotFound {
                statement: abbreviate(text),
                table: name.to_string(),
            }
            .into());
        }
        self.sources.propagator.unload(&name)?;
        let conn = Arc::clone(&self.sources.conn);
        conn.set_capture(&name, false)?;
        Ok(self.done(text, format!("unloaded {name} from the cluster")))
    }

    fn parse_name(&self, text_name: &str, text: &str) -> Result<TableName> {
        TableName::parse(text_name, &self.current_database()).map_err(|e| {
            SqlError::Plan {
                statement: abbreviate(text),
                message: e.to_string(),
            }
            .into()
        })
    }

    pub(super) fn affected(&self, text: &str, rows: u64) -> QueryResult {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("rows_affected", arrow::datatypes::DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![rows as i64]))],
        )
        .expect("one column");
        QueryResult::ready(text, schema, vec![batch])
    }
}
