//! The scan operator: one execution partition per store partition, streaming the
//! surviving chunks of a snapshot as zero-copy projected slices.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ColumnStatistics, DataFusionError, Result, ScalarValue, Statistics};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream, StatisticsArgs,
};

use crate::store::{Chunk, ColumnarTable};

#[derive(Debug)]
pub struct ClusterScanExec {
    table: Arc<ColumnarTable>,
    /// Surviving chunks of each store partition.
    partitions: Vec<Vec<Arc<Chunk>>>,
    projection: Option<Vec<usize>>,
    projected_schema: SchemaRef,
    limit: Option<usize>,
    batch_rows: usize,
    /// The pruning predicate, for EXPLAIN.
    predicate: Option<String>,
    /// The query's own filters, pushed down from the `FilterExec` above so
    /// that they run before the runtime filters (fewer keys to look up) and
    /// without a copy of their own; always applied.
    filters: Vec<Arc<dyn PhysicalExpr>>,
    /// Filters pushed down while the plan runs (a hash join's build-side
    /// keys, a TopK's threshold): rows they reject are dropped here, before
    /// any operator above sees them.
    runtime_filters: Vec<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
}

impl ClusterScanExec {
    pub fn try_new(
        table: Arc<ColumnarTable>,
        partitions: Vec<Vec<Arc<Chunk>>>,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
        batch_rows: usize,
        predicate: Option<String>,
    ) -> Result<Self> {
        let projected_schema = match &projection {
            Some(indices) => Arc::new(table.physical_schema.project(indices)?),
            None => Arc::clone(&table.physical_schema),
        };
        let partitioning = output_partitioning(
            &table,
            projection.as_deref(),
            &projected_schema,
            partitions.len(),
        );
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&projected_schema)),
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(ClusterScanExec {
            table,
            partitions,
            projection,
            projected_schema,
            limit,
            batch_rows: batch_rows.max(1),
            predicate,
            filters: Vec::new(),
            runtime_filters: Vec::new(),
            properties,
        })
    }

    /// Whether the scan can apply `filter` to its rows: every column it
    /// reads is held plain (a dictionary column would be compared with
    /// values of its decoded type).
    fn can_apply(&self, filter: &Arc<dyn PhysicalExpr>) -> bool {
        self.limit.is_none()
            && collect_columns(filter).iter().all(|column| {
                self.projected_schema
                    .fields()
                    .get(column.index())
                    .is_some_and(|f| {
                        f.name() == column.name()
                            && !matches!(f.data_type(), DataType::Dictionary(..))
                    })
            })
    }

    pub fn chunks_scanned(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    pub fn chunks_pruned(&self) -> usize {
        self.table.chunk_count() - self.chunks_scanned()
    }

    fn statistics_for(&self, partition: Option<usize>) -> Statistics {
        let chunks: Vec<&Arc<Chunk>> = match partition {
            Some(p) => self
                .partitions
                .get(p)
                .map(|c| c.iter().collect())
                .unwrap_or_default(),
            None => self.partitions.iter().flatten().collect(),
        };
        let full = table_statistics(&self.table, &chunks, self.limit);
        match &self.projection {
            Some(indices) => full.project(Some(indices)),
            None => full,
        }
    }
}

/// Rows a runtime filter must be tried on before its selectivity is judged.
const FILTER_TRIAL_ROWS: usize = 65_536;
/// A filter that keeps more than this share of the rows it was tried on is
/// dropped for the rest of the partition: evaluating it (hashing every key
/// once more) costs more than the rows it saves the operators above.
const FILTER_KEEP_LIMIT: f64 = 0.02;

/// The rows of `batch` that pass every one of the query's own filters.
fn apply_exact(filters: &[Arc<dyn PhysicalExpr>], mut batch: RecordBatch) -> Result<RecordBatch> {
    for filter in filters {
        if batch.num_rows() == 0 {
            break;
        }
        let mask = filter.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                DataFusionError::Internal(format!("the filter {filter} is not boolean"))
            })?;
        batch = filter_record_batch(&batch, mask)?;
    }
    Ok(batch)
}

/// The runtime filters of one scan partition, each judged by what it keeps.
struct RuntimeFilters {
    filters: Vec<RuntimeFilter>,
}

struct RuntimeFilter {
    expr: Arc<dyn PhysicalExpr>,
    /// Rows it was evaluated on (once known) and rows it kept.
    tried: usize,
    kept: usize,
    dropped: bool,
}

impl RuntimeFilters {
    fn new(filters: &[Arc<dyn PhysicalExpr>]) -> Self {
        RuntimeFilters {
            filters: filters
                .iter()
                .map(|expr| RuntimeFilter {
                    expr: Arc::clone(expr),
                    tried: 0,
                    kept: 0,
                    dropped: false,
                })
                .collect(),
        }
    }

    /// The rows of `batch` the filters keep. A filter not yet known (a hash
    /// join still building) is `true` and costs nothing.
    fn apply(&mut self, mut batch: RecordBatch) -> Result<RecordBatch> {
        for filter in self.filters.iter_mut().filter(|f| !f.dropped) {
            let rows = batch.num_rows();
            if rows == 0 {
                break;
            }
            let mask = match filter.expr.evaluate(&batch)? {
                ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => continue,
                ColumnarValue::Scalar(ScalarValue::Boolean(_)) => return Ok(batch.slice(0, 0)),
                value => value.into_array(rows)?,
            };
            let mask = mask
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "the runtime filter {} is not boolean",
                        filter.expr
                    ))
                })?;
            batch = filter_record_batch(&batch, mask)?;
            filter.tried += rows;
            filter.kept += batch.num_rows();
            if filter.tried >= FILTER_TRIAL_ROWS
                && filter.kept as f64 > FILTER_KEEP_LIMIT * filter.tried as f64
            {
                filter.dropped = true;
            }
        }
        Ok(batch)
    }
}

/// Rows were placed by `hash(placement columns) % partitions` with the same
/// hash function and modulus as DataFusion's hash repartitioning, so when the
/// placement columns are all in the output the scan is already hash-partitioned
/// on them: joins and aggregations on that key need no shuffle.
fn output_partitioning(
    table: &ColumnarTable,
    projection: Option<&[usize]>,
    projected_schema: &SchemaRef,
    partitions: usize,
) -> Partitioning {
    let unknown = Partitioning::UnknownPartitioning(partitions.max(1));
    // Dictionary columns hash like their values in DataFusion, but declaring
    // only plain columns keeps this argument simple.
    let plain = table
        .placement
        .iter()
        .all(|&c| !table.encodings[c].is_dictionary());
    if table.placement.is_empty() || partitions < 2 || !plain {
        return unknown;
    }
    let mut exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(table.placement.len());
    for &column in &table.placement {
        let position = match projection {
            Some(indices) => match indices.iter().position(|&i| i == column) {
                Some(p) => p,
                None => return unknown,
            },
            None => column,
        };
        let name = projected_schema.field(position).name();
        exprs.push(Arc::new(Column::new(name, position)));
    }
    Partitioning::Hash(exprs, partitions)
}

/// Exact statistics of a set of chunks: rows, bytes, and per column the null
/// count and (when every chunk has them) min and max.
pub(super) fn table_statistics(
    table: &ColumnarTable,
    chunks: &[&Arc<Chunk>],
    limit: Option<usize>,
) -> Statistics {
    let rows: usize = chunks.iter().map(|c| c.rows()).sum();
    let bytes: usize = chunks.iter().map(|c| c.bytes as usize).sum();
    let columns = (0..table.physical_schema.fields().len())
        .map(|column| {
            let (min, max, nulls, exact) =
                ColumnarTable::column_bounds(chunks.iter().copied(), column);
            let bound = |value: Option<datafusion::common::ScalarValue>| match value {
                Some(v) if exact && !table.encodings[column].is_dictionary() => Precision::Exact(v),
                Some(v) if !table.encodings[column].is_dictionary() => Precision::Inexact(v),
                _ => Precision::Absent,
            };
            ColumnStatistics {
                null_count: Precision::Exact(nulls as usize),
                min_value: bound(min),
                max_value: bound(max),
                ..ColumnStatistics::new_unknown()
            }
        })
        .collect();
    let num_rows = match limit {
        Some(limit) if limit < rows => Precision::Exact(limit),
        _ => Precision::Exact(rows),
    };
    Statistics {
        num_rows,
        total_byte_size: Precision::Inexact(bytes),
        column_statistics: columns,
    }
}

impl DisplayAs for ClusterScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "ClusterScanExec: table={}, partitions={}, chunks={} of {} ({} pruned by zone maps)",
                    self.table.name,
                    self.partitions.len(),
                    self.chunks_scanned(),
                    self.table.chunk_count(),
                    self.chunks_pruned(),
                )?;
                if self.projection.is_some() {
                    let names: Vec<&str> = self
                        .projected_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect();
                    write!(f, ", projection=[{}]", names.join(", "))?;
                }
                if let Some(predicate) = &self.predicate {
                    write!(f, ", pruning_predicate={predicate}")?;
                }
                if !self.filters.is_empty() {
                    let filters: Vec<String> = self.filters.iter().map(|f| f.to_string()).collect();
                    write!(f, ", filters=[{}]", filters.join(", "))?;
                }
                if !self.runtime_filters.is_empty() {
                    let filters: Vec<String> =
                        self.runtime_filters.iter().map(|f| f.to_string()).collect();
                    write!(f, ", runtime_filters=[{}]", filters.join(", "))?;
                }
                if let Some(limit) = self.limit {
                    write!(f, ", limit={limit}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "table={}", self.table.name)?;
                write!(
                    f,
                    "chunks={} of {}",
                    self.chunks_scanned(),
                    self.table.chunk_count()
                )
            }
        }
    }
}

impl ExecutionPlan for ClusterScanExec {
    fn name(&self) -> &'static str {
        "ClusterScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for filter in self.filters.iter().chain(&self.runtime_filters) {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    /// The query's filters (the first phase) are taken whole when no LIMIT
    /// was pushed into the scan: the `FilterExec` above goes. Filters that
    /// arrive after planning (the post-optimization phase: hash joins' and
    /// TopK's dynamic filters) are taken when the scan can apply them, and
    /// reported as applied so that their producers keep computing them; the
    /// others stay with the operators above.
    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let post = phase == FilterPushdownPhase::Post;
        let mut taken = Vec::new();
        let results = child_pushdown_result
            .parent_filters
            .into_iter()
            .map(|offered| {
                let applies = if post {
                    self.can_apply(&offered.filter)
                } else {
                    self.limit.is_none()
                };
                if applies {
                    taken.push(offered.filter);
                    PushedDown::Yes
                } else {
                    PushedDown::No
                }
            })
            .collect();
        let propagation = FilterPushdownPropagation::with_parent_pushdown_result(results);
        if taken.is_empty() {
            return Ok(propagation);
        }
        let mut scan = ClusterScanExec::try_new(
            Arc::clone(&self.table),
            self.partitions.clone(),
            self.projection.clone(),
            self.limit,
            self.batch_rows,
            self.predicate.clone(),
        )?;
        scan.filters = self.filters.clone();
        scan.runtime_filters = self.runtime_filters.clone();
        if post {
            scan.runtime_filters.extend(taken);
        } else {
            scan.filters.extend(taken);
        }
        Ok(propagation.with_updated_node(Arc::new(scan)))
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
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let chunks = self.partitions.get(partition).cloned().unwrap_or_default();
        let projection = self.projection.clone();
        let exact = self.filters.clone();
        let mut filters = RuntimeFilters::new(&self.runtime_filters);
        let batch_rows = self.batch_rows;
        let mut remaining = self.limit.unwrap_or(usize::MAX);
        let batches = chunks
            .into_iter()
            .flat_map(move |chunk| {
                let rows = chunk.stored_rows();
                (0..rows)
                    .step_by(batch_rows)
                    .map(move |offset| (Arc::clone(&chunk), offset, batch_rows.min(rows - offset)))
            })
            .map(move |(chunk, offset, length)| -> Result<RecordBatch> {
                // Only the projected columns are filtered by the delete mask.
                let slice = chunk.live_slice_projected(offset, length, projection.as_deref())?;
                filters.apply(apply_exact(&exact, slice)?)
            })
            .filter(|batch| !matches!(batch, Ok(b) if b.num_rows() == 0))
            .map_while(move |batch| {
                if remaining == 0 {
                    return None;
                }
                Some(batch.map(|b| {
                    let keep = b.num_rows().min(remaining);
                    remaining -= keep;
                    b.slice(0, keep)
                }))
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.projected_schema),
            futures::stream::iter(batches),
        )))
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::new(self.statistics_for(args.partition())))
    }

    #[allow(deprecated)]
    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        Ok(Arc::new(self.statistics_for(partition)))
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, lit};

    fn batch(values: impl IntoIterator<Item = i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))]).unwrap()
    }

    fn below(limit: i64) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(
            Arc::new(Column::new("k", 0)),
            Operator::Lt,
            lit(limit),
        ))
    }

    #[test]
    fn a_selective_filter_drops_rows_and_an_unselective_one_is_given_up() {
        let rows = FILTER_TRIAL_ROWS as i64;
        let mut filters = RuntimeFilters::new(&[below(10), lit(true)]);
        let kept = filters.apply(batch(0..rows)).unwrap();
        assert_eq!(kept.num_rows(), 10);
        assert!(!filters.filters[0].dropped, "it kept 10 of {rows} rows");
        // A filter not yet known (true) is never judged.
        assert_eq!(filters.filters[1].tried, 0);

        let mut filters = RuntimeFilters::new(&[below(rows)]);
        let kept = filters.apply(batch(0..rows)).unwrap();
        assert_eq!(kept.num_rows(), rows as usize);
        assert!(filters.filters[0].dropped);
        // Given up: later rows pass unfiltered (the join still decides).
        let later = filters.apply(batch([rows + 5])).unwrap();
        assert_eq!(later.num_rows(), 1);
    }

    #[test]
    fn the_querys_filters_always_apply_in_order() {
        let rows = FILTER_TRIAL_ROWS as i64;
        // Kept: most rows, yet never given up (the FilterExec is gone).
        let kept = apply_exact(&[below(rows - 1), below(rows - 2)], batch(0..rows)).unwrap();
        assert_eq!(kept.num_rows(), (rows - 2) as usize);
        assert_eq!(
            apply_exact(&[below(0)], batch(0..10)).unwrap().num_rows(),
            0
        );
        assert_eq!(apply_exact(&[], batch(0..10)).unwrap().num_rows(), 10);
    }

    #[test]
    fn a_filter_known_false_keeps_nothing_and_empty_batches_stay_empty() {
        let mut filters = RuntimeFilters::new(&[lit(false)]);
        assert_eq!(filters.apply(batch(0..100)).unwrap().num_rows(), 0);
        let mut filters = RuntimeFilters::new(&[below(3)]);
        assert_eq!(filters.apply(batch([])).unwrap().num_rows(), 0);
    }
}
