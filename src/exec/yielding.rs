//! Cancellation needs plans that yield. DataFusion makes its leaves spend
//! tokio's cooperative budget, but a join can emit a great many batches for
//! one batch it reads (a cross join emits rows × rows), so the operators
//! above it never see `Pending` and a cancelled query keeps its thread for
//! seconds. This rule wraps every join's output in DataFusion's own
//! `CooperativeExec`, so a query yields every budget's worth of batches and a
//! cancel (`KILL QUERY`, Ctrl-C) is seen at once.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;

#[derive(Debug, Default)]
pub struct YieldAfterJoins;

impl PhysicalOptimizerRule for YieldAfterJoins {
    fn name(&self) -> &str {
        "YieldAfterJoins"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.name().contains("Join") {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn schema_check(&self) -> bool {
        true
    }
}
