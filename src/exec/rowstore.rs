//! Reading a row-store table from DataFusion: what a query runs on when it is
//! not offloaded. SQLite executes the scan (with the projection and simple
//! comparisons pushed into its SELECT, so key lookups use its B-tree); the rest
//! of the plan runs in DataFusion over one partition, so both engines share one
//! SQL semantics and give the same answers.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue, Statistics};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream, StatisticsArgs,
};
use futures::StreamExt;
use rusqlite::types::Value;

use crate::rowstore::{self, DbConnection, RowTable, SqlType, quote};

/// A row-store table as DataFusion sees it. With `with_rowid`, the first column
/// is SQLite's row id (for UPDATE and DELETE).
pub struct RowStoreTableProvider {
    conn: Arc<DbConnection>,
    table: Arc<RowTable>,
    with_rowid: bool,
    schema: SchemaRef,
    batch_rows: usize,
}

impl fmt::Debug for RowStoreTableProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowStoreTableProvider({})", self.table.name)
    }
}

impl RowStoreTableProvider {
    pub fn new(
        conn: Arc<DbConnection>,
        table: Arc<RowTable>,
        with_rowid: bool,
        batch_rows: usize,
    ) -> Self {
        let mut fields: Vec<Field> = Vec::new();
        if with_rowid {
            fields.push(rowstore::rowid_field());
        }
        fields.extend(table.schema().fields().iter().map(|f| f.as_ref().clone()));
        RowStoreTableProvider {
            conn,
            table,
            with_rowid,
            schema: Arc::new(Schema::new(fields)),
            batch_rows,
        }
    }

    /// The table column a schema position refers to (`None` for the row id).
    fn table_column(&self, position: usize) -> Option<usize> {
        if self.with_rowid {
            position.checked_sub(1)
        } else {
            Some(position)
        }
    }

    /// `column op literal` that SQLite compares exactly as DataFusion does:
    /// integers, doubles and strings (byte order). Text-held exact and
    /// temporal types are left to DataFusion.
    fn to_sqlite(&self, expr: &Expr) -> Option<(String, Value)> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
            return None;
        };
        let (column, literal, op) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
            (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.swap()?),
            _ => return None,
        };
        let sql_op = match op {
            Operator::Eq => "=",
            Operator::Lt => "<",
            Operator::LtEq => "<=",
            Operator::Gt => ">",
            Operator::GtEq => ">=",
            _ => return None,
        };
        let index = self.table.column_index(&column.name)?;
        let sql_type = &self.table.columns[index].sql_type;
        let value = match (sql_type, literal) {
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
        };
        Some((format!("{} {sql_op} ?", quote(&column.name)), value))
    }
}

#[async_trait]
impl TableProvider for RowStoreTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.to_sqlite(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let positions: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let with_rowid = self.with_rowid && positions.first() == Some(&0);
        let columns: Vec<usize> = positions
            .iter()
            .filter_map(|&p| self.table_column(p))
            .collect();
        let (conditions, params): (Vec<String>, Vec<Value>) =
            filters.iter().filter_map(|f| self.to_sqlite(f)).unzip();
        let projected = Arc::new(self.schema.project(&positions)?);
        Ok(Arc::new(RowStoreScanExec {
            conn: Arc::clone(&self.conn),
            table: Arc::clone(&self.table),
            columns,
            with_rowid,
            conditions,
            params,
            batch_rows: self.batch_rows,
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(Arc::clone(&projected)),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            schema: projected,
        }))
    }
}

pub struct RowStoreScanExec {
    conn: Arc<DbConnection>,
    table: Arc<RowTable>,
    columns: Vec<usize>,
    with_rowid: bool,
    conditions: Vec<String>,
    params: Vec<Value>,
    batch_rows: usize,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for RowStoreScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowStoreScanExec({})", self.table.name)
    }
}

impl DisplayAs for RowStoreScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RowStoreScanExec: table={} (SQLite)", self.table.name)?;
        if !self.conditions.is_empty() {
            write!(f, ", sqlite_filter=[{}]", self.conditions.join(" AND "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for RowStoreScanExec {
    fn name(&self) -> &'static str {
        "RowStoreScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let conn = Arc::clone(&self.conn);
        let table = Arc::clone(&self.table);
        let columns = self.columns.clone();
        let with_rowid = self.with_rowid;
        let condition = self.conditions.join(" AND ");
        let params = self.params.clone();
        let batch_rows = self.batch_rows;
        let schema = Arc::clone(&self.schema);
        // The whole scan is read at once, on a blocking thread: SQLite calls
        // block, and holding the connection across awaits could deadlock two
        // scans of one query.
        let read = async move {
            tokio::task::spawn_blocking(move || {
                conn.read(|c| {
                    let params_slice: &[Value] = &params;
                    rowstore::read_rows(
                        c,
                        &table,
                        &columns,
                        with_rowid,
                        (!condition.is_empty()).then_some((condition.as_str(), params_slice)),
                        batch_rows,
                    )
                })
            })
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::External(Box::new(e)))
        };
        let stream = futures::stream::once(read)
            .map(
                |result: Result<Vec<arrow::array::RecordBatch>>| match result {
                    Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok)).left_stream(),
                    Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
                },
            )
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::new(Statistics::new_unknown(&self.schema)))
    }
}
