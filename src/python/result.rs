//! `lakewave._internal.QueryResult`: a planned statement whose rows are read on
//! demand, streamed through the Arrow C stream interface.

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use datafusion::execution::SendableRecordBatchStream;
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3_arrow::{PyRecordBatchReader, PySchema};

use super::convert::rows_to_python;
use super::wait::wait;
use crate::instance::Instance;
use crate::sql;

#[pyclass(frozen, module = "lakewave._internal")]
pub struct QueryResult {
    instance: Arc<Instance>,
    result: sql::QueryResult,
}

impl QueryResult {
    pub fn new(instance: Arc<Instance>, result: sql::QueryResult) -> Self {
        QueryResult { instance, result }
    }
}

/// A DataFusion stream read synchronously, batch by batch, by whoever consumes
/// the Arrow C stream (pyarrow, polars, DuckDB), on their own thread.
struct BlockingReader {
    instance: Arc<Instance>,
    result: sql::QueryResult,
    stream: SendableRecordBatchStream,
    schema: SchemaRef,
}

impl Iterator for BlockingReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.instance.next_blocking(&mut self.stream)?;
        Some(item.map_err(|e| {
            let error = self.result.error(e);
            ArrowError::ExternalError(Box::new(error))
        }))
    }
}

impl RecordBatchReader for BlockingReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

#[pymethods]
impl QueryResult {
    #[getter]
    fn statement(&self) -> &str {
        self.result.statement()
    }

    /// The result's Arrow schema (an arro3 Schema; any Arrow library can read it
    /// through `__arrow_c_schema__`).
    fn schema(&self) -> PySchema {
        PySchema::new(self.result.schema())
    }

    /// Column names, in order.
    fn columns(&self) -> Vec<String> {
        self.result
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Column types, as Arrow type names.
    fn column_types(&self) -> Vec<String> {
        self.result
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect()
    }

    /// Start the query and return a one-shot stream of its batches.
    fn stream(&self, py: Python<'_>) -> PyResult<PyRecordBatchReader> {
        let instance = Arc::clone(&self.instance);
        let result = self.result.clone();
        let stream = wait(py, move |cancel| {
            let _runtime = instance.enter();
            instance.block_on(cancel, result.statement(), result.stream())
        })?;
        let reader = BlockingReader {
            instance: Arc::clone(&self.instance),
            result: self.result.clone(),
            schema: self.result.schema(),
            stream,
        };
        Ok(PyRecordBatchReader::new(Box::new(reader)))
    }

    /// Run the query and return its rows as tuples (at most `limit`).
    #[pyo3(signature = (limit=None))]
    fn rows<'py>(&self, py: Python<'py>, limit: Option<usize>) -> PyResult<Bound<'py, PyList>> {
        let batches = self.collect(py, limit)?;
        rows_to_python(py, &batches)
    }

    /// The first `limit` rows as a text table.
    #[pyo3(signature = (limit=20))]
    fn to_text(&self, py: Python<'_>, limit: usize) -> PyResult<String> {
        let batches = self.collect(py, Some(limit + 1))?;
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut shown = Vec::new();
        let mut left = limit;
        for batch in &batches {
            let take = left.min(batch.num_rows());
            if take == 0 {
                break;
            }
            shown.push(batch.slice(0, take));
            left -= take;
        }
        let mut text = if shown.is_empty() {
            let header: Vec<String> = self
                .result
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            format!("(no rows; columns: {})", header.join(", "))
        } else {
            arrow::util::pretty::pretty_format_batches(&shown)
                .map_err(|e| super::errors::InternalError::new_err(e.to_string()))?
                .to_string()
        };
        if total > limit {
            text.push_str(&format!("\n(showing the first {limit} rows)"));
        }
        Ok(text)
    }
}

impl QueryResult {
    fn collect(&self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<RecordBatch>> {
        let result = match limit {
            Some(n) => self.result.limit(n).map_err(super::errors::to_pyerr)?,
            None => self.result.clone(),
        };
        let instance = Arc::clone(&self.instance);
        wait(py, move |cancel| instance.collect(&result, cancel))
    }
}
