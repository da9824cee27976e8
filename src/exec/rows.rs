//! Reading a table of rows (the row store's) from DataFusion: what a query
//! runs on when it is not offloaded. The rows come from a [`RowScanner`],
//! which applies the projection and the simple comparisons it can (so key
//! lookups use the row store's B-tree); the rest of the plan runs in
//! DataFusion over one partition, so both engines share one SQL semantics and
//! give the same answers. This module knows no SQLite: the front end hands it
//! a scanner over a session's connection.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
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

use crate::catalog::{ROWID_COLUMN, RowTable};

/// `column op value` for a scanner to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The table column's position.
    pub column: usize,
    pub op: ComparisonOp,
    pub value: ScalarValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOp {
    Eq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// What reads the rows of one table. Scans block, and run on a blocking
/// thread.
pub trait RowScanner: Send + Sync + fmt::Debug {
    /// Whether the scanner applies `comparison` exactly as SQL would.
    fn applies(&self, table: &RowTable, comparison: &Comparison) -> bool;

    /// Every row of `table` (the `columns`, after the row id when
    /// `with_rowid`) that passes the `comparisons`, in batches of at most
    /// `batch_rows`.
    fn scan(
        &self,
        table: &RowTable,
        columns: &[usize],
        with_rowid: bool,
        comparisons: &[Comparison],
        batch_rows: usize,
    ) -> std::result::Result<Vec<RecordBatch>, Box<dyn std::error::Error + Send + Sync>>;
}

/// A row-store table as DataFusion sees it. With `with_rowid`, the first column
/// is SQLite's row id (for UPDATE and DELETE).
pub struct RowsTableProvider {
    scanner: Arc<dyn RowScanner>,
    table: Arc<RowTable>,
    with_rowid: bool,
    schema: SchemaRef,
    batch_rows: usize,
}

impl fmt::Debug for RowsTableProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowsTableProvider({})", self.table.name)
    }
}

impl RowsTableProvider {
    pub fn new(
        scanner: Arc<dyn RowScanner>,
        table: Arc<RowTable>,
        with_rowid: bool,
        batch_rows: usize,
    ) -> Self {
        let mut fields: Vec<Field> = Vec::new();
        if with_rowid {
            fields.push(Field::new(
                ROWID_COLUMN,
                arrow::datatypes::DataType::Int64,
                false,
            ));
        }
        fields.extend(table.schema().fields().iter().map(|f| f.as_ref().clone()));
        RowsTableProvider {
            scanner,
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

    /// `column op literal`, when the scanner applies it exactly.
    fn comparison(&self, expr: &Expr) -> Option<Comparison> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
            return None;
        };
        let (column, literal, op) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
            (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.swap()?),
            _ => return None,
        };
        let op = match op {
            Operator::Eq => ComparisonOp::Eq,
            Operator::Lt => ComparisonOp::Lt,
            Operator::LtEq => ComparisonOp::LtEq,
            Operator::Gt => ComparisonOp::Gt,
            Operator::GtEq => ComparisonOp::GtEq,
            _ => return None,
        };
        let comparison = Comparison {
            column: self.table.column_index(&column.name)?,
            op,
            value: literal.clone(),
        };
        self.scanner
            .applies(&self.table, &comparison)
            .then_some(comparison)
    }
}

#[async_trait]
impl TableProvider for RowsTableProvider {
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
                if self.comparison(f).is_some() {
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
        let comparisons: Vec<Comparison> =
            filters.iter().filter_map(|f| self.comparison(f)).collect();
        let projected = Arc::new(self.schema.project(&positions)?);
        Ok(Arc::new(RowsScanExec {
            scanner: Arc::clone(&self.scanner),
            table: Arc::clone(&self.table),
            columns,
            with_rowid,
            comparisons,
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

pub struct RowsScanExec {
    scanner: Arc<dyn RowScanner>,
    table: Arc<RowTable>,
    columns: Vec<usize>,
    with_rowid: bool,
    comparisons: Vec<Comparison>,
    batch_rows: usize,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for RowsScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowsScanExec({})", self.table.name)
    }
}

impl DisplayAs for RowsScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RowsScanExec: table={} (row store)", self.table.name)?;
        if !self.comparisons.is_empty() {
            let shown: Vec<String> = self
                .comparisons
                .iter()
                .map(|c| {
                    let op = match c.op {
                        ComparisonOp::Eq => "=",
                        ComparisonOp::Lt => "<",
                        ComparisonOp::LtEq => "<=",
                        ComparisonOp::Gt => ">",
                        ComparisonOp::GtEq => ">=",
                    };
                    format!("{} {op} {}", self.table.columns[c.column].name, c.value)
                })
                .collect();
            write!(f, ", pushed_filter=[{}]", shown.join(" AND "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for RowsScanExec {
    fn name(&self) -> &'static str {
        "RowsScanExec"
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
        let scanner = Arc::clone(&self.scanner);
        let table = Arc::clone(&self.table);
        let columns = self.columns.clone();
        let with_rowid = self.with_rowid;
        let comparisons = self.comparisons.clone();
        let batch_rows = self.batch_rows;
        let schema = Arc::clone(&self.schema);
        // The whole scan is read at once, on a blocking thread: scans block,
        // and a session's connection held across awaits could deadlock two
        // scans of one query.
        let read = async move {
            tokio::task::spawn_blocking(move || {
                scanner.scan(&table, &columns, with_rowid, &comparisons, batch_rows)
            })
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(DataFusionError::External)
        };
        let stream = futures::stream::once(read)
            .map(|result: Result<Vec<RecordBatch>>| match result {
                Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok)).left_stream(),
                Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
            })
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
