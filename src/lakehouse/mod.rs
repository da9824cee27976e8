//! Reading data that lives in files: Parquet files and folders for
//! `Connection.load` (DataFusion's Parquet reader, parallel over files and row
//! groups), and external tables ([`external`]) over Parquet, CSV, JSON, Avro
//! and Delta, on local disks and object stores ([`stores`]). An external table
//! knows its data files and can read any one of them alone, which is what an
//! incremental refresh needs. This module only reads: it never writes data, and
//! it knows nothing of the cluster or of SQL statements.

pub mod external;
pub mod stores;

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
    #[error("'{path}' is not a valid Parquet file: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("external table '{table}': cannot use location '{location}': {reason}")]
    Location {
        table: String,
        location: String,
        reason: String,
    },
    #[error("external table '{table}': {reason}")]
    Definition { table: String, reason: String },
    #[error("external table '{table}': cannot read the Delta table at '{location}': {reason}")]
    Delta {
        table: String,
        location: String,
        reason: String,
    },
    #[error("cannot read '{path}'")]
    Read {
        path: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
}

impl LakehouseError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LakehouseError::NotFound { .. }
            | LakehouseError::Empty { .. }
            | LakehouseError::Location { .. } => ErrorKind::Operational,
            LakehouseError::Definition { .. } => ErrorKind::Programming,
            LakehouseError::Read { .. }
            | LakehouseError::Corrupt { .. }
            | LakehouseError::Delta { .. } => ErrorKind::Data,
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
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let ctx = SessionContext::new_with_config(config);
    let mut options = ParquetReadOptions::default();
    let files = if local.is_dir() {
        options.file_extension = ".parquet";
        let mut files = Vec::new();
        collect_parquet_files(local, &mut files);
        if files.is_empty() {
            return Err(LakehouseError::Empty {
                path: path.to_string(),
            });
        }
        files
    } else {
        options.file_extension = "";
        vec![local.to_path_buf()]
    };
    for file in &files {
        check_footer(file)?;
    }
    let frame = ctx.read_parquet(path, options).await.map_err(read_error)?;
    let schema = SchemaRef::new(frame.schema().as_arrow().clone());
    let stream = frame.execute_stream().await.map_err(read_error)?;
    Ok((schema, stream))
}

fn collect_parquet_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_parquet_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
}

/// Check the Parquet frame before the reader sees the file: `PAR1` at both
/// ends and a footer length that fits inside the file. The parquet crate
/// panics on some corrupt footers instead of returning an error.
fn check_footer(file: &Path) -> Result<(), LakehouseError> {
    use std::io::{Read, Seek, SeekFrom};
    let corrupt = |reason: String| LakehouseError::Corrupt {
        path: file.display().to_string(),
        reason,
    };
    let mut handle = std::fs::File::open(file).map_err(|e| corrupt(e.to_string()))?;
    let length = handle.metadata().map_err(|e| corrupt(e.to_string()))?.len();
    if length < 12 {
        return Err(corrupt(format!("{length} bytes is too short")));
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 8];
    handle
        .read_exact(&mut head)
        .map_err(|e| corrupt(e.to_string()))?;
    handle
        .seek(SeekFrom::End(-8))
        .and_then(|_| handle.read_exact(&mut tail))
        .map_err(|e| corrupt(e.to_string()))?;
    if &head != b"PAR1" || &tail[4..] != b"PAR1" {
        return Err(corrupt("missing the PAR1 magic bytes".into()));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer + 12 > length {
        return Err(corrupt(format!(
            "its footer claims {footer} bytes but the file has {length}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_footers_are_rejected_before_the_reader_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8]); 3] = [
            ("short.parquet", b"PAR1"),
            ("magic.parquet", b"PAR1 not really parquet at all"),
            ("footer.parquet", b"PAR1 body \xff\xff\xff\x7fPAR1"),
        ];
        for (name, bytes) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = check_footer(&path).unwrap_err();
            assert!(
                matches!(err, LakehouseError::Corrupt { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(name));
        }
    }
}
