//! The scan operator: one execution partition per store partition, streaming the
//! surviving chunks of a snapshot as zero-copy projected slices.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ColumnStatistics, Result, Statistics};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
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
            properties,
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
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let chunks = self.partitions.get(partition).cloned().unwrap_or_default();
        let projection = self.projection.clone();
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
                Ok(slice)
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
