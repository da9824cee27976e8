//! The outcome of a statement. A query is planned (its names resolved, its
//! snapshots taken) when the statement runs, and executed when its rows are
//! read: each [`QueryResult::stream`] is one execution of that plan,
//! registered on the session as running, so `KILL QUERY` and Ctrl-C stop it
//! wherever it is. Other statements have run already and carry their rows
//! (a status line, or the number of rows they changed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};

use super::output;
use super::process::{RunningStatement, SessionSlot};
use super::{abbreviate, datafusion_error};
use crate::cancel::{Cancel, HookGuard};
use crate::error::{Error, Result};

#[derive(Clone)]
enum Body {
    /// A query, planned and not yet run: every stream runs it afresh.
    Lazy(DataFrame),
    /// A statement that has already run and produced these rows.
    Ready(SchemaRef, Vec<RecordBatch>),
}

/// The outcome of the last statement of a `sql()` call.
#[derive(Clone)]
pub struct QueryResult {
    statement: String,
    body: Body,
    /// Rows a DML statement changed (`None` for queries and DDL).
    rows_affected: Option<u64>,
    /// The AUTO_INCREMENT value an INSERT assigned (the OK packet's
    /// `last_insert_id`).
    insert_id: Option<u64>,
    /// What a statement that returns no rows of its own did (DDL, SET,
    /// loads): a wire protocol sends it as an OK, not as a result set.
    message: Option<String>,
    /// The session, which each execution registers on.
    session: Option<Arc<SessionSlot>>,
}

impl QueryResult {
    /// A result whose rows are already known.
    pub fn ready(statement: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> QueryResult {
        QueryResult {
            statement: statement.to_string(),
            body: Body::Ready(schema, batches),
            rows_affected: None,
            insert_id: None,
            message: None,
            session: None,
        }
    }

    /// A one-row `status` result (DDL, SET, loads).
    pub fn status(statement: &str, message: String) -> QueryResult {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "status",
            DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(vec![message.clone()]))],
        )
        .expect("one string column");
        QueryResult {
            message: Some(message),
            ..QueryResult::ready(statement, schema, vec![batch])
        }
    }

    /// The result of a statement that changed `rows` rows.
    pub fn affected(statement: &str, rows: u64) -> QueryResult {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "rows_affected",
            DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![rows as i64]))],
        )
        .expect("one column");
        QueryResult {
            rows_affected: Some(rows),
            ..QueryResult::ready(statement, schema, vec![batch])
        }
    }

    /// A planned query, executed when read.
    pub(super) fn lazy(statement: &str, frame: DataFrame, session: Arc<SessionSlot>) -> Self {
        QueryResult {
            statement: statement.to_string(),
            body: Body::Lazy(frame),
            rows_affected: None,
            insert_id: None,
            message: None,
            session: Some(session),
        }
    }

    /// The same result, reporting the AUTO_INCREMENT value its INSERT
    /// assigned.
    pub fn with_insert_id(self, insert_id: Option<u64>) -> QueryResult {
        QueryResult { insert_id, ..self }
    }

    /// The AUTO_INCREMENT value the statement's INSERT assigned, if any.
    pub fn insert_id(&self) -> Option<u64> {
        self.insert_id
    }

    pub fn statement(&self) -> &str {
        &self.statement
    }

    /// Rows changed by a DML statement; `None` for queries and DDL.
    pub fn rows_affected(&self) -> Option<u64> {
        self.rows_affected
    }

    /// For a statement that returns no rows of its own (DDL, `SET`, loads,
    /// DML), what it did; `None` for anything that returns rows.
    pub fn status_message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Whether the statement returns rows (a query, `SHOW`, `EXPLAIN`), as
    /// opposed to a status or a count of changed rows.
    pub fn returns_rows(&self) -> bool {
        self.message.is_none() && self.rows_affected.is_none()
    }

    /// Whether this is a query whose rows are computed when read.
    pub fn is_query(&self) -> bool {
        matches!(self.body, Body::Lazy(_))
    }

    /// The schema of the rows, in logical types.
    pub fn schema(&self) -> SchemaRef {
        match &self.body {
            Body::Lazy(frame) => output::logical_schema(frame.schema().as_arrow()),
            Body::Ready(schema, _) => Arc::clone(schema),
        }
    }

    /// Start one execution; batches arrive as they are computed. `cancel`
    /// (and `KILL QUERY` on the session) stops it. Must be called inside
    /// the instance's tokio runtime.
    pub async fn stream(&self, cancel: &Cancel) -> Result<ResultStream> {
        let running = match &self.session {
            Some(session) => Some(session.begin(&self.statement)?),
            None => None,
        };
        let own = running
            .as_ref()
            .map(|r| r.cancel().clone())
            .unwrap_or_default();
        let forward = cancel.forward_to(&own);
        let inner = match &self.body {
            Body::Lazy(frame) => {
                let started = own
                    .run(frame.clone().execute_stream())
                    .await
                    .ok_or_else(|| Error::Interrupted {
                        what: abbreviate(&self.statement),
                    })?;
                output::decode_stream(started.map_err(|e| datafusion_error(&self.statement, e))?)
            }
            Body::Ready(schema, batches) => {
                output::ready_stream(Arc::clone(schema), batches.clone())
            }
        };
        let waiting = own.clone();
        Ok(ResultStream {
            cancel: own,
            schema: self.schema(),
            inner,
            cancelled: Box::pin(async move { waiting.cancelled().await }),
            statement: self.statement.clone(),
            done: false,
            _running: running,
            _forward: forward,
        })
    }

    /// Run the query and gather every batch.
    pub async fn collect(&self, cancel: &Cancel) -> Result<Vec<RecordBatch>> {
        let mut stream = self.stream(cancel).await?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
        Ok(batches)
    }

    /// The same query with at most `n` rows.
    pub fn limit(&self, n: usize) -> Result<QueryResult> {
        let body = match &self.body {
            Body::Lazy(frame) => Body::Lazy(
                frame
                    .clone()
                    .limit(0, Some(n))
                    .map_err(|e| datafusion_error(&self.statement, e))?,
            ),
            Body::Ready(schema, batches) => {
                let mut kept = Vec::new();
                let mut left = n;
                for batch in batches {
                    if left == 0 {
                        break;
                    }
                    let take = left.min(batch.num_rows());
                    kept.push(batch.slice(0, take));
                    left -= take;
                }
                Body::Ready(Arc::clone(schema), kept)
            }
        };
        Ok(QueryResult {
            body,
            ..self.clone()
        })
    }
}

/// One execution of a result: its batches, in logical types, ending early
/// with an interruption when cancelled.
pub struct ResultStream {
    cancel: Cancel,
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
    statement: String,
    done: bool,
    _running: Option<RunningStatement>,
    _forward: HookGuard,
}

impl ResultStream {
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// What stops this execution (for a caller that waits on it).
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }
}

impl Stream for ResultStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.cancelled.as_mut().poll(cx).is_ready() {
            self.done = true;
            let what = abbreviate(&self.statement);
            return Poll::Ready(Some(Err(Error::Interrupted { what })));
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(batch))) => Poll::Ready(Some(Ok(batch))),
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                let error = datafusion_error(&self.statement, e);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
