//! `lakewave._internal.QueryResult`: a planned statement, and
//! `lakewave._internal.Execution`: one execution of it, whose rows are
//! fetched in order (DB-API fetches) or streamed through the Arrow C stream
//! interface from where the fetches got to.

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3_arrow::{PyRecordBatchReader, PySchema};

use super::convert::rows_to_python;
use super::errors::to_pyerr;
use super::wait::wait;
use crate::instance::{Instance, QueryResult as EngineResult, ResultStream};

#[pyclass(frozen, module = "lakewave._internal")]
pub struct QueryResult {
    instance: Arc<Instance>,
    result: EngineResult,
}

impl QueryResult {
    pub fn new(instance: Arc<Instance>, result: EngineResult) -> Self {
        QueryResult { instance, result }
    }

    fn start(&self, py: Python<'_>, result: EngineResult) -> PyResult<Cursor> {
        let instance = Arc::clone(&self.instance);
        let started = result.clone();
        let stream = wait(py, move |cancel| {
            let _runtime = instance.enter();
            instance.block_on(cancel, started.statement(), started.stream(cancel))
        })?;
        Ok(Cursor {
            instance: Arc::clone(&self.instance),
            schema: result.schema(),
            stream: Some(stream),
            pending: None,
        })
    }

    fn collect(&self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<RecordBatch>> {
        let result = match limit {
            Some(n) => self.result.limit(n).map_err(to_pyerr)?,
            None => self.result.clone(),
        };
        let instance = Arc::clone(&self.instance);
        wait(py, move |cancel| instance.collect(&result, cancel))
    }
}

/// Where an execution has got to: its stream, and a batch partly fetched.
struct Cursor {
    instance: Arc<Instance>,
    schema: SchemaRef,
    stream: Option<ResultStream>,
    pending: Option<(RecordBatch, usize)>,
}

impl Cursor {
    /// The next (part of a) batch, at most `limit` rows.
    fn next_rows(&mut self, limit: usize) -> crate::error::Result<Option<RecordBatch>> {
        loop {
            if let Some((batch, offset)) = self.pending.take() {
                let take = limit.min(batch.num_rows() - offset);
                let piece = batch.slice(offset, take);
                if offset + take < batch.num_rows() {
                    self.pending = Some((batch, offset + take));
                }
                return Ok(Some(piece));
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(None);
            };
            match self.instance.next_blocking(stream) {
                Some(Ok(batch)) if batch.num_rows() == 0 => continue,
                Some(Ok(batch)) => self.pending = Some((batch, 0)),
                Some(Err(e)) => {
                    self.stream = None;
                    return Err(e);
                }
                None => {
                    self.stream = None;
                    return Ok(None);
                }
            }
        }
    }
}

impl Iterator for Cursor {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_rows(usize::MAX)
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))
            .transpose()
    }
}

impl RecordBatchReader for Cursor {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// One execution of a result.
#[pyclass(frozen, module = "lakewave._internal")]
pub struct Execution {
    cursor: Mutex<Option<Cursor>>,
}

#[pymethods]
impl Execution {
    /// The next rows as tuples: at most `n`, all that are left when `n` is
    /// None. An empty list when the rows are exhausted.
    #[pyo3(signature = (n=None))]
    fn fetch<'py>(&self, py: Python<'py>, n: Option<usize>) -> PyResult<Bound<'py, PyList>> {
        let mut wanted = n.unwrap_or(usize::MAX);
        let mut batches = Vec::new();
        {
            let mut guard = self.cursor.lock();
            let Some(cursor) = guard.as_mut() else {
                return Ok(PyList::empty(py));
            };
            let fetched = wait(py, |cancel| {
                let _forward = cursor
                    .stream
                    .as_ref()
                    .map(|s| cancel.forward_to(s.cancel()));
                let mut batches = Vec::new();
                while wanted > 0 {
                    match cursor.next_rows(wanted)? {
                        Some(batch) => {
                            wanted -= batch.num_rows();
                            batches.push(batch);
                        }
                        None => break,
                    }
                }
                Ok(batches)
            })?;
            batches.extend(fetched);
        }
        rows_to_python(py, &batches)
    }

    /// The rows not fetched yet, as a one-shot Arrow stream.
    fn reader(&self) -> PyResult<PyRecordBatchReader> {
        let cursor = self.cursor.lock().take().ok_or_else(|| {
            super::errors::InterfaceError::new_err("the rows of this execution were already read")
        })?;
        Ok(PyRecordBatchReader::new(Box::new(cursor)))
    }

    /// Stop the execution and let go of what it holds.
    fn close(&self) {
        self.cursor.lock().take();
    }
}

#[pymethods]
impl QueryResult {
    #[getter]
    fn statement(&self) -> &str {
        self.result.statement()
    }

    /// Rows changed by a DML statement; None for queries and DDL.
    #[getter]
    fn rows_affected(&self) -> Option<u64> {
        self.result.rows_affected()
    }

    /// Whether the rows are computed when read (a query).
    #[getter]
    fn is_query(&self) -> bool {
        self.result.is_query()
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

    /// Start one execution, to fetch from.
    fn execute(&self, py: Python<'_>) -> PyResult<Execution> {
        let cursor = self.start(py, self.result.clone())?;
        Ok(Execution {
            cursor: Mutex::new(Some(cursor)),
        })
    }

    /// Run the query once more and return a one-shot stream of its batches.
    fn stream(&self, py: Python<'_>) -> PyResult<PyRecordBatchReader> {
        let cursor = self.start(py, self.result.clone())?;
        Ok(PyRecordBatchReader::new(Box::new(cursor)))
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
