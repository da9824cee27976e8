//! The table provider DataFusion plans against for a loaded table.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result, Statistics};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::ExecutionPlan;

use super::pruning::ChunkStatistics;
use super::scan::{ClusterScanExec, table_statistics};
use crate::store::{Chunk, ColumnarTable};

/// One snapshot of a loaded table. A new snapshot gets a new provider, so a plan
/// built against this one reads exactly this version.
#[derive(Debug)]
pub struct ClusterTableProvider {
    table: Arc<ColumnarTable>,
    batch_rows: usize,
}

impl ClusterTableProvider {
    pub fn new(table: Arc<ColumnarTable>, batch_rows: usize) -> Self {
        ClusterTableProvider { table, batch_rows }
    }

    pub fn table(&self) -> &Arc<ColumnarTable> {
        &self.table
    }

    /// The chunks of each partition that may hold rows matching `filters`.
    fn surviving_chunks(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> (Vec<Vec<Arc<Chunk>>>, Option<String>) {
        let all: Vec<Vec<Arc<Chunk>>> = self
            .table
            .partitions
            .iter()
            .map(|p| p.chunks.clone())
            .collect();
        let Some(predicate) = self.pruning_predicate(state, filters) else {
            return (all, None);
        };
        let statistics = ChunkStatistics {
            chunks: all.iter().flatten().collect(),
            schema: Arc::clone(&self.table.physical_schema),
            encodings: &self.table.encodings,
        };
        // A predicate that cannot be evaluated on the statistics prunes nothing;
        // the filter above the scan still applies, so answers stay right.
        let Ok(keep) = predicate.prune(&statistics) else {
            return (all, None);
        };
        let mut keep = keep.into_iter();
        let kept = all
            .into_iter()
            .map(|chunks| {
                chunks
                    .into_iter()
                    .filter(|_| keep.next().unwrap_or(true))
                    .collect()
            })
            .collect();
        (kept, Some(predicate.predicate_expr().to_string()))
    }

    /// `None` when the filters cannot prune (always true, or not expressible
    /// over min/max statistics).
    fn pruning_predicate(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Option<Arc<PruningPredicate>> {
        let expr = conjunction(filters.iter().cloned())?;
        let schema = DFSchema::try_from(self.table.physical_schema.as_ref().clone()).ok()?;
        let physical = state.create_physical_expr(expr, &schema).ok()?;
        PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&self.table.physical_schema))
            .build(physical)
    }
}

#[async_trait]
impl TableProvider for ClusterTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.table.physical_schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Zone maps prune whole chunks; the rows of surviving chunks are still
        // filtered above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        let chunks: Vec<&Arc<Chunk>> = self
            .table
            .partitions
            .iter()
            .flat_map(|p| p.chunks.iter())
            .collect();
        Some(table_statistics(&self.table, &chunks, None))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (partitions, predicate) = self.surviving_chunks(state, filters);
        Ok(Arc::new(ClusterScanExec::try_new(
            Arc::clone(&self.table),
            partitions,
            projection.cloned(),
            limit,
            self.batch_rows,
            predicate,
        )?))
    }
}
