//! `EXPLAIN`: DataFusion's plan, after two rows of lakewave's own: which
//! engine runs the statement (and why not the cluster), and what each table
//! is read from. They come from the same resolution the plan was made with,
//! so they describe what executing the statement would do.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;

use super::resolve::Resolver;
use super::result::QueryResult;
use super::{Session, abbreviate, datafusion_error, internal_error};
use crate::cancel::Cancel;
use crate::error::{Error, Result};

impl Session {
    pub(super) async fn explain(
        &self,
        plan: LogicalPlan,
        resolver: &Arc<Resolver>,
        state: SessionState,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let frame = datafusion::dataframe::DataFrame::new(state, plan);
        let batches = cancel
            .run(frame.collect())
            .await
            .ok_or_else(|| Error::Interrupted {
                what: abbreviate(text),
            })?
            .map_err(|e| datafusion_error(text, e))?;
        let Some(first) = batches.first() else {
            return Ok(QueryResult::ready(
                text,
                Arc::new(arrow::datatypes::Schema::empty()),
                batches,
            ));
        };
        let schema = first.schema();
        let route = resolver.route();
        let rows = [
            ("engine", route.describe_engine()),
            ("tables", route.describe_tables()),
        ];
        let mut all = Vec::new();
        for (label, value) in rows {
            let mut columns: Vec<ArrayRef> = Vec::new();
            for (i, field) in schema.fields().iter().enumerate() {
                let cell = if i == 0 { label } else { value.as_str() };
                let array: ArrayRef = Arc::new(StringArray::from(vec![cell]));
                columns.push(
                    arrow::compute::cast(&array, field.data_type())
                        .map_err(|e| internal_error(text, e))?,
                );
            }
            all.push(
                RecordBatch::try_new(Arc::clone(&schema), columns)
                    .map_err(|e| internal_error(text, e))?,
            );
        }
        all.extend(batches);
        Ok(QueryResult::ready(text, schema, all))
    }
}
