//! Reading data that lives in files. For now: Parquet files and folders on a
//! local disk, read with DataFusion's Parquet reader (parallel over files and
//! row groups, with the reader's own decompression), as a stream of batches for
//! the cluster's loader. External tables over object stores, Delta and the
//! other formats build on this module. It only reads; it never writes data.

use std::path::Path;

use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use thiserror::Error;

use crate::error::ErrorKind;

#[derive(Debug, Error)]
pub enum LakehouseError {
    #[error("no such file or folder: '{path}'")]
    NotFound { path: String },
    #[error("'{path}' holds no Parquet files")]
    Empty { path: String },
    #[error("cannot read Parquet from '{path}'")]
    Read {
        path: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
}

impl LakehouseError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LakehouseError::NotFound { .. } | LakehouseError::Empty { .. } => ErrorKind::Operational,
            LakehouseError::Read { .. } => ErrorKind::Data,
        }
    }
}

/// Open a Parquet file, or every `*.parquet` file below a folder (Hive-style
/// `key=value` folders are read as ordinary folders), as one stream. Must run
/// inside a tokio runtime.
pub async fn parquet_stream(
    path: &str,
    threads: usize,
) -> Result<(SchemaRef, SendableRecordBatchStream), LakehouseError> {
    let local = Path::new(path);
    if !local.exists() {
        return Err(LakehouseError::NotFound {
            path: path.to_string(),
        });
    }
    let read_error = |source| LakehouseError::Read {
        path: path.to_string(),
        source,
    };
    let mut config = SessionConfig::new().with_target_partitions(threads.max(1));
    // The store holds plain Utf8; reading views would only be cast back.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    let ctx = SessionContext::new_with_config(config);
    let mut options = ParquetReadOptions::default();
    if local.is_dir() {
        options.file_extension = ".parquet";
        let has_files = walk_has_parquet(local);
        if !has_files {
            return Err(LakehouseError::Empty {
                path: path.to_string(),
            });
        }
    } else {
        options.file_extension = "";
    }
    let frame = ctx.read_parquet(path, options).await.map_err(read_error)?;
    let schema = SchemaRef::new(frame.schema().as_arrow().clone());
    let stream = frame.execute_stream().await.map_err(read_error)?;
    Ok((schema, stream))
}

fn walk_has_parquet(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            walk_has_parquet(&path)
        } else {
            path.extension().is_some_and(|e| e == "parquet")
        }
    })
}
