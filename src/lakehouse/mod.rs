//! Reading data that lives in files: Parquet, CSV, JSON, Avro and Delta, on
//! local disks and object stores ([`stores`]). An external table's definition
//! (in the catalog) is opened here into an [`ExternalTable`]: a provider that
//! reads it in place, and the list of its data files, any one of which can be
//! read alone ([`files`]), which is what loading by file and an incremental
//! refresh need. [`ExternalTables`] keeps, per instance, what is opened and
//! what each loaded copy was built from.
//!
//! This module only reads: it never writes data, decides no names (the
//! catalog does) and knows nothing of the cluster or of SQL statements.

mod delta;
pub mod external;
pub mod files;
mod state;
pub mod stores;

use std::path::Path;

use thiserror::Error;

use crate::error::{ErrorKind, MySqlCode, codes};

pub use external::{ExternalTable, open_external};
pub use files::{DataFile, file_changes};
pub use state::{ExternalTables, LoadedFiles};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Error)]
pub enum LakehouseError {
    #[error("table '{table}': cannot use location '{location}': {reason}")]
    Location {
        table: String,
        location: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("external table '{table}': {reason}")]
    Definition {
        table: String,
        reason: String,
        code: MySqlCode,
    },
    #[error("external table '{table}': cannot read the Delta table at '{location}'{detail}")]
    Delta {
        table: String,
        location: String,
        /// More about what was tried, when there is more.
        detail: String,
        #[source]
        source: BoxError,
    },
    #[error("'{path}' is not a valid Parquet file: {reason}")]
    Corrupt { path: String, reason: String },
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
            LakehouseError::Location { .. } => ErrorKind::Operational,
            LakehouseError::Definition { .. } => ErrorKind::Programming,
            LakehouseError::Read { .. }
            | LakehouseError::Corrupt { .. }
            | LakehouseError::Delta { .. } => ErrorKind::Data,
        }
    }

    pub fn code(&self) -> MySqlCode {
        match self {
            LakehouseError::Location { .. } => codes::FILE_NOT_FOUND,
            LakehouseError::Definition { code, .. } => *code,
            LakehouseError::Read { .. }
            | LakehouseError::Corrupt { .. }
            | LakehouseError::Delta { .. } => codes::GET_ERRNO,
        }
    }
}

/// Check the Parquet frame of a local file before the reader sees it: `PAR1`
/// at both ends and a footer length that fits inside the file. The parquet
/// crate panics on some corrupt footers instead of returning an error.
pub fn check_footer(file: &Path) -> Result<(), LakehouseError> {
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
