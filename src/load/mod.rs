//! The load service: the one path by which rows reach the cluster as a new
//! table version. Every source (an Arrow producer from Python, a query's
//! stream for `CREATE TABLE ... AS`, a row-store snapshot for
//! `SECONDARY_LOAD`, the files of an external table or of `Connection.load`)
//! hands [`Piece`]s to a [`Loader`], which groups them and feeds a
//! `store::TableBuilder` with the requested placement (by key, round-robin or
//! by file). Pieces stream through: no source is collected whole first.
//!
//! Building runs on the calling (blocking) thread with the CPU work on rayon;
//! [`build_async`] bridges an async stream to a blocking builder through a
//! small channel, so nothing blocks the async workers. A load is atomic: the
//! finished snapshot is returned unpublished, and the caller publishes it (or
//! drops it, giving every byte of memory back).
//!
//! This module decides no names and writes no catalog: callers do.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt};

use crate::cancel::Cancel;
use crate::catalog::TableName;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::store::{ColumnarTable, Layout, LoadProgress, StoreError, TableBuilder};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Batches handed to the builder at once: enough to keep every core busy.
const GROUP_ROWS: usize = 1 << 20;

/// Pieces in flight between an async source and the builder.
const CHANNEL_PIECES: usize = 2;

/// Rows from a source: batches, and the file they came from (by-file loads).
#[derive(Debug, Clone)]
pub struct Piece {
    pub source: Option<Arc<str>>,
    pub batches: Vec<RecordBatch>,
}

impl Piece {
    pub fn batch(batch: RecordBatch) -> Piece {
        Piece {
            source: None,
            batches: vec![batch],
        }
    }
}

/// How to place a table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// By a hash of these columns (a primary key or data placement keys).
    Key(Vec<String>),
    RoundRobin,
    /// Chunks per source file, so a refresh can replace single files.
    ByFile,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub name: TableName,
    pub schema: SchemaRef,
    pub placement: Placement,
    /// Describes the source in errors: a path, "a pyarrow.Table", a query.
    pub source_name: String,
}

impl LoadSpec {
    fn layout(&self) -> Result<Layout> {
        Ok(match &self.placement {
            Placement::Key(columns) => Layout::Hash(
                columns
                    .iter()
                    .map(|c| {
                        self.schema.index_of(c).map_err(|_| {
                            Error::from(crate::catalog::CatalogError::ColumnNotFound {
                                table: self.name.clone(),
                                column: c.clone(),
                                columns: self
                                    .schema
                                    .fields()
                                    .iter()
                                    .map(|f| f.name().as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            })
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            Placement::RoundRobin => Layout::RoundRobin,
            Placement::ByFile => Layout::ByFile,
        })
    }
}

/// Builds one table version from pieces pushed to it.
pub struct Loader<'a> {
    name: TableName,
    source_name: String,
    builder: TableBuilder,
    group: Vec<RecordBatch>,
    group_rows: usize,
    cancel: Cancel,
    progress: &'a mut (dyn FnMut(LoadProgress) + Send),
}

impl<'a> Loader<'a> {
    pub fn new(
        cluster: &Cluster,
        spec: &LoadSpec,
        cancel: &Cancel,
        progress: &'a mut (dyn FnMut(LoadProgress) + Send),
    ) -> Result<Loader<'a>> {
        let builder = cluster.builder(&spec.name, &spec.schema, spec.layout()?);
        Ok(Loader::with_builder(spec, builder, cancel, progress))
    }

    /// Continue from a builder made elsewhere (a refresh's).
    pub fn with_builder(
        spec: &LoadSpec,
        builder: TableBuilder,
        cancel: &Cancel,
        progress: &'a mut (dyn FnMut(LoadProgress) + Send),
    ) -> Loader<'a> {
        Loader {
            name: spec.name.clone(),
            source_name: spec.source_name.clone(),
            builder,
            group: Vec::new(),
            group_rows: 0,
            cancel: cancel.clone(),
            progress,
        }
    }

    /// The schema the table will have (logical types).
    pub fn schema(&self) -> &SchemaRef {
        self.builder.logical_schema()
    }

    pub fn push(&mut self, piece: Piece) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(StoreError::Interrupted {
                table: self.name.clone(),
            }
            .into());
        }
        if let Some(source) = piece.source {
            // Files go in whole pieces, so each keeps its own chunks.
            self.builder.push_file(source, piece.batches)?;
            (self.progress)(self.builder.progress());
            return Ok(());
        }
        for batch in piece.batches {
            self.group_rows += batch.num_rows();
            self.group.push(batch);
        }
        if self.group_rows >= GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// A source's failure, named after the table and the source.
    pub fn source_error(&self, source: BoxError) -> Error {
        StoreError::Source {
            table: self.name.clone(),
            source_name: self.source_name.clone(),
            source,
        }
        .into()
    }

    fn flush(&mut self) -> Result<()> {
        self.builder.push(std::mem::take(&mut self.group))?;
        self.group_rows = 0;
        (self.progress)(self.builder.progress());
        Ok(())
    }

    /// The finished, unpublished snapshot.
    pub fn finish(mut self) -> Result<ColumnarTable> {
        if self.cancel.is_cancelled() {
            return Err(StoreError::Interrupted { table: self.name }.into());
        }
        self.flush()?;
        let table = self.builder.finish()?;
        (self.progress)(LoadProgress {
            rows: table.rows(),
            bytes: table.bytes(),
        });
        Ok(table)
    }
}

/// Build from a blocking source of pieces.
pub fn build(
    cluster: &Cluster,
    spec: &LoadSpec,
    pieces: impl Iterator<Item = std::result::Result<Piece, BoxError>>,
    cancel: &Cancel,
    progress: &mut (dyn FnMut(LoadProgress) + Send),
) -> Result<ColumnarTable> {
    let mut loader = Loader::new(cluster, spec, cancel, progress)?;
    for piece in pieces {
        let piece = piece.map_err(|e| loader.source_error(e))?;
        loader.push(piece)?;
    }
    loader.finish()
}

/// Build from an async stream of pieces: the stream is read on the runtime
/// and the pieces built on a blocking thread. The builder sees the end of
/// the stream only when every piece was read; if the stream fails or is
/// dropped it gets an error instead, so a part of a source is never
/// published.
pub async fn build_async<S>(
    cluster: Arc<Cluster>,
    spec: LoadSpec,
    builder: Option<TableBuilder>,
    pieces: S,
    cancel: &Cancel,
) -> Result<ColumnarTable>
where
    S: Stream<Item = std::result::Result<Piece, BoxError>> + Send,
{
    type Item = Option<std::result::Result<Piece, BoxError>>;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Item>(CHANNEL_PIECES);
    let consumer_cancel = cancel.clone();
    let consumer = tokio::task::spawn_blocking(move || {
        let mut progress = |_: LoadProgress| {};
        let mut loader = match builder {
            Some(builder) => Loader::with_builder(&spec, builder, &consumer_cancel, &mut progress),
            None => Loader::new(&cluster, &spec, &consumer_cancel, &mut progress)?,
        };
        loop {
            match receiver.blocking_recv() {
                Some(Some(Ok(piece))) => loader.push(piece)?,
                Some(Some(Err(e))) => return Err(loader.source_error(e)),
                Some(None) => return loader.finish(),
                None => {
                    return Err(
                        loader.source_error("reading the source stopped before its end".into())
                    );
                }
            }
        }
    });
    let producer = async move {
        let mut pieces = std::pin::pin!(pieces);
        while let Some(piece) = pieces.next().await {
            let failed = piece.is_err();
            if sender.send(Some(piece)).await.is_err() || failed {
                return;
            }
        }
        let _ = sender.send(None).await;
    };
    let ((), built) = tokio::join!(producer, consumer);
    built.map_err(|e| Error::Panic {
        what: "a load".into(),
        message: e.to_string(),
    })?
}
