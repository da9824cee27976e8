//! The data files of an external table: what identifies a file's contents
//! (its fingerprint), which files changed between two listings, and reading
//! files one by one, each named by its path, which is how a table is loaded
//! by file and refreshed by the files that changed.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::LakehouseError;
use super::external::ExternalTable;
use super::stores::redact;

/// One data file of an external table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// The file's URL (plain files) or its path in the Delta log.
    pub path: String,
    /// Changes when the file's contents do: size, modification time and ETag
    /// for plain files; the deletion vector for Delta files (a Delta data
    /// file itself is never rewritten in place).
    pub fingerprint: String,
    pub size: u64,
}

impl ExternalTable {
    /// Read `files` in order: the rows of each file, named by its path, in
    /// one item (small files, a few read at a time) or in consecutive items
    /// of about a million rows (large files, streamed, so a big file is
    /// never held whole while its chunks are built).
    pub fn read_files<'a>(
        &'a self,
        ctx: &'a SessionContext,
        files: Vec<DataFile>,
    ) -> impl futures::Stream<Item = Result<(Arc<str>, Vec<RecordBatch>), LakehouseError>> + 'a
    {
        use futures::StreamExt;
        use futures::stream::{self, BoxStream};
        type Parts<'s> = BoxStream<'s, Result<(Arc<str>, Vec<RecordBatch>), LakehouseError>>;
        // Strings are read as plain Utf8, which the cluster stores, rather
        // than as views that every load would convert.
        let mut config = ctx.copied_config();
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        let session = Arc::new(
            datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state())
                .with_config(config)
                .build(),
        );
        let context = SessionContext::new_with_state(session.as_ref().clone());
        stream::iter(files)
            .map(move |file| {
                let session = Arc::clone(&session);
                let context = context.clone();
                async move {
                    let path: Arc<str> = Arc::from(file.path.as_str());
                    let provider = self.file_provider(&file, &session).await?;
                    let frame = context
                        .read_table(provider)
                        .map_err(|e| self.read_error(&file, e))?;
                    if file.size > 0 && file.size <= WHOLE_FILE_BYTES {
                        let batches = frame
                            .collect()
                            .await
                            .map_err(|e| self.read_error(&file, e))?;
                        let parts: Parts<'a> =
                            stream::once(async move { Ok((path, batches)) }).boxed();
                        return Ok(parts);
                    }
                    let batches = frame
                        .execute_stream()
                        .await
                        .map_err(|e| self.read_error(&file, e))?;
                    let parts: Parts<'a> = stream::unfold(Some(batches), move |batches| {
                        let path = Arc::clone(&path);
                        let file = file.clone();
                        async move {
                            let mut batches = batches?;
                            let mut group = Vec::new();
                            let mut rows = 0;
                            while rows < PART_ROWS {
                                match batches.next().await {
                                    Some(Ok(batch)) => {
                                        rows += batch.num_rows();
                                        group.push(batch);
                                    }
                                    Some(Err(e)) => {
                                        return Some((Err(self.read_error(&file, e)), None));
                                    }
                                    None if group.is_empty() => return None,
                                    None => return Some((Ok((path, group)), None)),
                                }
                            }
                            Some((Ok((path, group)), Some(batches)))
                        }
                    })
                    .boxed();
                    Ok(parts)
                }
            })
            .buffered(FILES_READ_AT_ONCE)
            .flat_map(|opened: Result<Parts<'a>, LakehouseError>| match opened {
                Ok(parts) => parts,
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            })
    }

    fn read_error(
        &self,
        file: &DataFile,
        source: datafusion::error::DataFusionError,
    ) -> LakehouseError {
        LakehouseError::Read {
            path: format!("{} (table {})", redact(&file.path), self.def.name),
            source,
        }
    }
}

/// Files up to this size are read whole (several at once); larger ones are
/// streamed in parts of `PART_ROWS` rows.
const WHOLE_FILE_BYTES: u64 = 64 << 20;
const PART_ROWS: usize = 1 << 20;

/// The schema with view strings and binaries read as plain ones: the cluster
/// stores plain Utf8/Binary, and the Parquet reader builds those directly,
/// which saves converting every value of a load.
pub(super) fn plain_strings(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| {
                let plain = match f.data_type() {
                    DataType::Utf8View => DataType::Utf8,
                    DataType::BinaryView => DataType::Binary,
                    other => other.clone(),
                };
                f.as_ref().clone().with_data_type(plain)
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// Files read concurrently by a load or refresh: enough to overlap object
/// store latency, few enough to bound the rows held before they are stored.
const FILES_READ_AT_ONCE: usize = 4;

/// The files added and removed between two listings of a table: a file whose
/// fingerprint changed (rewritten in place, or a new deletion vector) is both.
pub fn file_changes(before: &[DataFile], after: &[DataFile]) -> (Vec<DataFile>, Vec<DataFile>) {
    // The files of `these` that `others` lacks or holds with other contents.
    fn not_in(these: &[DataFile], others: &[DataFile]) -> Vec<DataFile> {
        let others: std::collections::HashMap<&str, &str> = others
            .iter()
            .map(|f| (f.path.as_str(), f.fingerprint.as_str()))
            .collect();
        these
            .iter()
            .filter(|f| others.get(f.path.as_str()) != Some(&f.fingerprint.as_str()))
            .cloned()
            .collect()
    }
    (not_in(after, before), not_in(before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, fingerprint: &str) -> DataFile {
        DataFile {
            path: path.into(),
            fingerprint: fingerprint.into(),
            size: 1,
        }
    }

    #[test]
    fn changed_fingerprints_are_both_added_and_removed() {
        let before = [file("a", "1"), file("b", "1"), file("c", "1")];
        let after = [file("a", "1"), file("b", "2"), file("d", "1")];
        let (added, removed) = file_changes(&before, &after);
        let paths = |files: Vec<DataFile>| files.into_iter().map(|f| f.path).collect::<Vec<_>>();
        assert_eq!(paths(added), ["b", "d"]);
        assert_eq!(paths(removed), ["b", "c"]);
    }
}
