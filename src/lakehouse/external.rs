//! External tables: a format and one or more locations (files, folders used as
//! prefixes, or glob patterns), read in place with DataFusion's file readers.
//! Each definition becomes a DataFusion listing table whose files are listed at
//! every scan, so files added in place are seen by the next query. The column
//! list is optional: without it the schema is inferred from the files; with it,
//! the files must agree (same column names), or the definition is refused with
//! an error naming the table and the file.
//!
//! Formats: Parquet, CSV (header, delimiter, quote, null string),
//! newline-delimited JSON and Avro through DataFusion's readers, and Delta
//! through delta-rs. Locations are local paths, `file://` URLs and object
//! store URLs (see `stores`). Every definition also records the table's data
//! files (with fingerprints), and reads any one file alone, so that a loaded
//! copy can be refreshed by the files that changed.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Column;
use datafusion::datasource::file_format::FileFormat as DfFileFormat;
use datafusion::datasource::file_format::avro::AvroFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionState;
use datafusion::functions::expr_fn::nullif;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, col, lit};
use datafusion::prelude::SessionContext;

use super::LakehouseError;
use super::stores::{open_store, redact};
use crate::catalog::TableName;

/// The file format of an external table.
#[derive(Debug, Clone, PartialEq)]
pub enum FileFormat {
    Parquet,
    Csv(CsvOptions),
    /// Newline-delimited JSON.
    Json,
    /// Avro object container files.
    Avro,
    /// A Delta table (its root folder); `version` reads an older version.
    Delta {
        version: Option<u64>,
    },
}

impl FileFormat {
    pub fn name(&self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv(_) => "csv",
            FileFormat::Json => "json",
            FileFormat::Avro => "avro",
            FileFormat::Delta { .. } => "delta",
        }
    }

    fn extension(&self) -> &'static str {
        match self {
            FileFormat::Parquet => ".parquet",
            FileFormat::Csv(_) => ".csv",
            FileFormat::Json => ".json",
            FileFormat::Avro => ".avro",
            FileFormat::Delta { .. } => ".parquet",
        }
    }

    fn datafusion(&self) -> Arc<dyn DfFileFormat> {
        match self {
            FileFormat::Parquet => Arc::new(ParquetFormat::default()),
            FileFormat::Csv(options) => {
                let mut format = CsvFormat::default()
                    .with_has_header(options.header)
                    .with_delimiter(options.delimiter)
                    .with_quote(options.quote);
                if let Some(null) = &options.null {
                    format = format.with_null_regex(Some(regex_literal(null)));
                }
                Arc::new(format)
            }
            FileFormat::Json => Arc::new(JsonFormat::default()),
            FileFormat::Avro => Arc::new(AvroFormat),
            FileFormat::Delta { .. } => Arc::new(ParquetFormat::default()),
        }
    }
}

/// A regular expression matching exactly `text`.
fn regex_literal(text: &str) -> String {
    let mut out = String::from("^");
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    pub header: bool,
    pub delimiter: u8,
    pub quote: u8,
    /// The text that stands for NULL (none: only empty fields are NULL).
    pub null: Option<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: b',',
            quote: b'"',
            null: None,
        }
    }
}

/// What `CREATE EXTERNAL TABLE` declares.
#[derive(Debug, Clone)]
pub struct ExternalTableDef {
    pub name: TableName,
    pub format: FileFormat,
    pub locations: Vec<String>,
    /// The declared columns, if any (else inferred).
    pub columns: Option<SchemaRef>,
    /// Object store options (credentials, endpoint, region), as strings.
    pub storage_options: std::collections::BTreeMap<String, String>,
    /// When loaded, refresh it on its own this often.
    pub refresh_interval: Option<std::time::Duration>,
}

/// Option keys whose values are secrets: never persisted, never shown.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "account_key",
        "access_key",
        "sas",
        "service_account_key",
    ]
    .iter()
    .any(|s| key.contains(s))
        && !key.ends_with("access_key_id")
}

/// A defined external table, ready to scan in place.
#[derive(Clone)]
pub struct ExternalTable {
    pub def: ExternalTableDef,
    pub schema: SchemaRef,
    pub provider: Arc<dyn TableProvider>,
    /// For Delta tables, the version read.
    pub delta_version: Option<i64>,
    /// The data files of this version of the table (listed when it was
    /// defined or refreshed), in a stable order.
    pub files: Arc<Vec<DataFile>>,
    reader: FileReader,
}

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

/// How to read one data file with the table's schema and conversions.
#[derive(Clone)]
enum FileReader {
    /// Plain files, and Delta tables read from their file list.
    Listing {
        options: ListingOptions,
        read_schema: SchemaRef,
        /// Conversions above the scan (CSV NULL_VALUE), if any.
        convert: Option<Vec<Expr>>,
    },
    /// Delta files through delta-rs (deletion vectors, column mapping and
    /// partition values applied).
    Delta {
        table: Box<deltalake::DeltaTable>,
        /// The declared columns, when they are a subset.
        columns: Option<Vec<Expr>>,
    },
}

impl ExternalTable {
    /// A provider that reads only `file`, with the table's schema.
    /// `session` is the one the file will be read with (its Parquet
    /// options apply to Delta scans).
    pub async fn file_provider(
        &self,
        file: &DataFile,
        session: &Arc<SessionState>,
    ) -> Result<Arc<dyn TableProvider>, LakehouseError> {
        let read_error = |source| LakehouseError::Read {
            path: format!("{} (table {})", redact(&file.path), self.def.name),
            source,
        };
        match &self.reader {
            FileReader::Listing {
                options,
                read_schema,
                convert,
            } => {
                let url = ListingTableUrl::parse(&file.path).map_err(read_error)?;
                let config = ListingTableConfig::new(url)
                    .with_listing_options(options.clone().with_file_extension(""))
                    .with_schema(plain_strings(read_schema));
                let listing: Arc<dyn TableProvider> =
                    Arc::new(ListingTable::try_new(config).map_err(read_error)?);
                match convert {
                    None => Ok(listing),
                    Some(columns) => projected(&self.def.name.table, listing, columns.clone())
                        .map_err(read_error),
                }
            }
            FileReader::Delta { table, columns } => {
                let provider = table
                    .table_provider()
                    .with_session(Arc::clone(session))
                    .with_file_paths([file.path.clone()])
                    .await
                    .map_err(read_error)?;
                match columns {
                    None => Ok(provider),
                    Some(columns) => projected(&self.def.name.table, provider, columns.clone())
                        .map_err(read_error),
                }
            }
        }
    }

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
fn plain_strings(schema: &SchemaRef) -> SchemaRef {
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

impl fmt::Debug for ExternalTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExternalTable({})", self.def.name)
    }
}

fn location_error(def: &ExternalTableDef, location: &str, reason: String) -> LakehouseError {
    LakehouseError::Location {
        table: def.name.to_string(),
        location: redact(location),
        reason,
    }
}

/// Check the locations, infer or check the schema, and build the provider.
pub async fn open_external(
    def: ExternalTableDef,
    state: &dyn Session,
) -> Result<ExternalTable, LakehouseError> {
    if def.locations.is_empty() {
        return Err(LakehouseError::Definition {
            table: def.name.to_string(),
            reason: "FILES names no location".into(),
        });
    }
    if let FileFormat::Delta { version } = def.format {
        return open_delta(def, version, state).await;
    }
    let mut urls = Vec::new();
    let mut any_folder = false;
    for location in &def.locations {
        let remote = location.split_once("://").is_some_and(|(s, _)| s != "file");
        let url = if remote {
            let url = url::Url::parse(location)
                .map_err(|e| location_error(&def, &redact(location), e.to_string()))?;
            let opened = open_store(&url, &def.storage_options)
                .map_err(|reason| location_error(&def, &redact(location), reason))?;
            state
                .runtime_env()
                .register_object_store(&opened.root, opened.store);
            any_folder |= location.ends_with('/');
            ListingTableUrl::parse(opened.location.as_str())
                .map_err(|e| location_error(&def, &redact(location), e.to_string()))?
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            let has_glob = path.contains(['*', '?', '[']);
            if !has_glob && !std::path::Path::new(path).exists() {
                return Err(location_error(
                    &def,
                    location,
                    "no such file or folder".into(),
                ));
            }
            any_folder |= std::path::Path::new(path).is_dir();
            ListingTableUrl::parse(location)
                .map_err(|e| location_error(&def, location, e.to_string()))?
        };
        urls.push(url);
    }
    let extension = if any_folder {
        def.format.extension()
    } else {
        ""
    };
    let options = ListingOptions::new(def.format.datafusion()).with_file_extension(extension);
    // Every location must hold at least one file: an empty prefix is an error
    // at definition time, not an empty table.
    let mut data_files: Vec<DataFile> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (url, location) in urls.iter().zip(&def.locations) {
        let store = state
            .runtime_env()
            .object_store(url)
            .map_err(|e| location_error(&def, location, e.to_string()))?;
        let files = url
            .list_all_files(state, store.as_ref(), extension)
            .await
            .map_err(|e| location_error(&def, location, e.to_string()))?;
        use futures::TryStreamExt;
        let files: Vec<_> = files
            .try_collect()
            .await
            .map_err(|e| location_error(&def, location, e.to_string()))?;
        if files.is_empty() {
            return Err(location_error(
                &def,
                location,
                format!("no {} files there", def.format.name()),
            ));
        }
        let root = url.object_store();
        for meta in files {
            let path = format!("{}{}", root.as_str(), meta.location);
            if seen.insert(path.clone()) {
                data_files.push(DataFile {
                    path,
                    fingerprint: format!(
                        "{}:{}:{}",
                        meta.size,
                        meta.last_modified.timestamp_nanos_opt().unwrap_or_default(),
                        meta.e_tag.as_deref().unwrap_or("")
                    ),
                    size: meta.size,
                });
            }
        }
    }
    data_files.sort_by(|a, b| a.path.cmp(&b.path));
    let inferred = match options.infer_schema(state, &urls[0]).await {
        Ok(schema) => schema,
        Err(error) => return Err(unreadable_file(&def, &options, state, &data_files, error).await),
    };
    // Every column may be NULL: a file that lacks a column (an older file of
    // a table whose files gained one) reads as NULLs there.
    let inferred = Arc::new(Schema::new_with_metadata(
        inferred
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
        inferred.metadata().clone(),
    ));
    let schema = match &def.columns {
        None => inferred,
        Some(declared) => {
            check_columns(&def, declared, &inferred)?;
            if matches!(def.format, FileFormat::Csv(_)) {
                // CSV columns are read by position, under the declared names.
                Arc::new(Schema::new(
                    declared
                        .fields()
                        .iter()
                        .map(|f| f.as_ref().clone().with_nullable(true))
                        .collect::<Vec<_>>(),
                ))
            } else {
                declared_schema(declared, &inferred)
            }
        }
    };
    let null_text = match &def.format {
        FileFormat::Csv(CsvOptions { null: Some(n), .. }) => Some(n.clone()),
        _ => None,
    };
    // DataFusion's CSV reader ignores a null pattern, so with NULL_VALUE the
    // files are read as text and each column converted above the scan.
    let read_schema = match &null_text {
        Some(_) => Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )),
        None => Arc::clone(&schema),
    };
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options.clone())
        .with_schema(Arc::clone(&read_schema));
    let read_error = |source| LakehouseError::Read {
        path: def.locations.join(", "),
        source,
    };
    let listing: Arc<dyn TableProvider> =
        Arc::new(ListingTable::try_new(config).map_err(read_error)?);
    let convert: Option<Vec<Expr>> = null_text.map(|null| {
        schema
            .fields()
            .iter()
            .map(|f| {
                cast(
                    nullif(col(Column::from_name(f.name())), lit(null.clone())),
                    f.data_type().clone(),
                )
                .alias(f.name())
            })
            .collect()
    });
    let provider = match &convert {
        None => listing,
        Some(columns) => {
            projected(&def.name.table, listing, columns.clone()).map_err(read_error)?
        }
    };
    Ok(ExternalTable {
        def,
        schema,
        provider,
        delta_version: None,
        files: Arc::new(data_files),
        reader: FileReader::Listing {
            options,
            read_schema,
            convert,
        },
    })
}

/// The files' schema could not be read: find the file that fails on its own,
/// so the error names it (DataFusion's error names neither).
async fn unreadable_file(
    def: &ExternalTableDef,
    options: &ListingOptions,
    state: &dyn Session,
    files: &[DataFile],
    error: datafusion::error::DataFusionError,
) -> LakehouseError {
    for file in files {
        let Ok(url) = ListingTableUrl::parse(&file.path) else {
            continue;
        };
        let single = options.clone().with_file_extension("");
        if let Err(source) = single.infer_schema(state, &url).await {
            return LakehouseError::Read {
                path: format!("{} (table {})", redact(&file.path), def.name),
                source,
            };
        }
    }
    LakehouseError::Read {
        path: format!("{} (table {})", redact(&def.locations[0]), def.name),
        source: error,
    }
}

/// A Delta table: its log is read now (the snapshot this definition sees);
/// the provider reads that snapshot's files with deletion vectors, column
/// mapping and partition values applied.
async fn open_delta(
    def: ExternalTableDef,
    version: Option<u64>,
    state: &dyn Session,
) -> Result<ExternalTable, LakehouseError> {
    let [location] = def.locations.as_slice() else {
        return Err(LakehouseError::Definition {
            table: def.name.to_string(),
            reason: "a Delta table has exactly one location: its root folder".into(),
        });
    };
    let url = location_url(location).map_err(|reason| location_error(&def, location, reason))?;
    if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|_| location_error(&def, location, "not a local path".into()))?;
        if !path.exists() {
            return Err(location_error(&def, location, "no such folder".into()));
        }
        if !path.join("_delta_log").is_dir() {
            return Err(location_error(
                &def,
                location,
                "not a Delta table (it has no _delta_log folder)".into(),
            ));
        }
    }
    let delta_error = |e: deltalake::DeltaTableError| LakehouseError::Delta {
        table: def.name.to_string(),
        location: redact(location),
        reason: e.to_string(),
    };
    let mut builder = if url.scheme() == "file" {
        deltalake::DeltaTableBuilder::from_url(url.clone()).map_err(delta_error)?
    } else {
        let opened = open_store(&url, &def.storage_options)
            .map_err(|reason| location_error(&def, &redact(location), reason))?;
        state
            .runtime_env()
            .register_object_store(&opened.root, Arc::clone(&opened.store));
        register_read_log_stores();
        deltalake::DeltaTableBuilder::from_url(opened.location.clone())
            .map_err(delta_error)?
            .with_storage_backend(opened.store, opened.location)
    };
    if let Some(v) = version {
        builder = builder.with_version(v);
    }
    let table = builder.load().await.map_err(delta_error)?;
    let delta_version = table.version().map(|v| v as i64);
    let mut files = delta_files(&table).map_err(delta_error)?;
    let mut listed_reader = None;
    let provider = match table.table_provider().await {
        Ok(provider) => provider,
        Err(e) if only_vacuum_protocol_check(&table) => {
            // vacuumProtocolCheck only constrains VACUUM (a writer): readers
            // need do nothing, but delta-rs 1.1 refuses tables that declare
            // it. Plain tables (no partitions, no deletion vectors) are read
            // from the snapshot's file list instead.
            let (provider, reader, listed) =
                vacuum_checked_provider(&table, state)
                    .await
                    .map_err(|reason| LakehouseError::Delta {
                        table: def.name.to_string(),
                        location: redact(location),
                        reason: format!("{e}; {reason}"),
                    })?;
            listed_reader = Some(reader);
            files = listed;
            provider
        }
        Err(e) => {
            return Err(LakehouseError::Delta {
                table: def.name.to_string(),
                location: redact(location),
                reason: e.to_string(),
            });
        }
    };
    let inferred = provider.schema();
    let schema = match &def.columns {
        None => inferred,
        Some(declared) => {
            check_columns(&def, declared, &inferred)?;
            let provider_schema = Arc::clone(&inferred);
            // Types come from the log; the list only has to name the columns.
            Arc::new(Schema::new(
                declared
                    .fields()
                    .iter()
                    .filter_map(|f| {
                        provider_schema
                            .fields()
                            .iter()
                            .find(|p| p.name().eq_ignore_ascii_case(f.name()))
                            .map(|p| p.as_ref().clone())
                    })
                    .collect::<Vec<_>>(),
            ))
        }
    };
    let columns: Option<Vec<Expr>> = (schema.fields().len() != provider.schema().fields().len())
        .then(|| {
            schema
                .fields()
                .iter()
                .map(|f| col(Column::from_name(f.name())))
                .collect()
        });
    let provider: Arc<dyn TableProvider> = match &columns {
        None => provider,
        Some(columns) => projected(&def.name.table, provider, columns.clone()).map_err(|e| {
            LakehouseError::Read {
                path: location.clone(),
                source: e,
            }
        })?,
    };
    let reader = match listed_reader {
        Some(FileReader::Listing {
            options,
            read_schema,
            ..
        }) => FileReader::Listing {
            options,
            read_schema,
            convert: columns,
        },
        _ => FileReader::Delta {
            table: Box::new(table),
            columns,
        },
    };
    Ok(ExternalTable {
        def,
        schema,
        provider,
        delta_version,
        files: Arc::new(files),
        reader,
    })
}

/// The active files of a Delta snapshot. A file is identified by its path as
/// delta-rs selects it; its fingerprint is its deletion vector, the only
/// thing about an active file that a later commit can change.
fn delta_files(table: &deltalake::DeltaTable) -> Result<Vec<DataFile>, deltalake::DeltaTableError> {
    let snapshot = table.snapshot()?;
    let mut files: Vec<DataFile> = snapshot
        .log_data()
        .iter()
        .map(|view| {
            let path = String::from(object_store::path::Path::from(view.path().as_ref()));
            let fingerprint = match view.deletion_vector_descriptor() {
                None => String::new(),
                Some(dv) => format!(
                    "{:?}:{}:{:?}:{}",
                    dv.storage_type, dv.path_or_inline_dv, dv.offset, dv.cardinality
                ),
            };
            DataFile {
                path,
                fingerprint,
                size: view.size().max(0) as u64,
            }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// delta-rs reads a table's log through a "log store" chosen by URL scheme;
/// only `file://` and `memory://` are registered without its cloud features
/// (which pull in the AWS SDK). lakewave builds the object store itself and
/// only reads, so the default log store serves every scheme.
struct ReadLogStoreFactory;

impl deltalake::logstore::LogStoreFactory for ReadLogStoreFactory {
    fn with_options(
        &self,
        prefixed_store: deltalake::logstore::ObjectStoreRef,
        root_store: deltalake::logstore::ObjectStoreRef,
        location: &url::Url,
        options: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
        Ok(deltalake::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_read_log_stores() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let factories = deltalake::logstore::logstore_factories();
        // Delta over http(s) is not offered: those URLs need a host.
        for scheme in [
            "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "azure://",
        ] {
            let Ok(url) = url::Url::parse(scheme) else {
                continue;
            };
            if !factories.contains_key(&url) {
                factories.insert(url, Arc::new(ReadLogStoreFactory));
            }
        }
    });
}

fn only_vacuum_protocol_check(table: &deltalake::DeltaTable) -> bool {
    let Ok(state) = table.snapshot() else {
        return false;
    };
    state.protocol().reader_features().is_some_and(|features| {
        !features.is_empty()
            && features
                .iter()
                .all(|f| f.to_string().eq_ignore_ascii_case("vacuumProtocolCheck"))
    })
}

async fn vacuum_checked_provider(
    table: &deltalake::DeltaTable,
    state: &dyn Session,
) -> Result<(Arc<dyn TableProvider>, FileReader, Vec<DataFile>), String> {
    let snapshot = table.snapshot().map_err(|e| e.to_string())?;
    if !snapshot.metadata().partition_columns().is_empty() {
        return Err("a partitioned table with vacuumProtocolCheck cannot be read".into());
    }
    let schema = snapshot.snapshot().arrow_schema();
    let files: Vec<String> = table.get_file_uris().map_err(|e| e.to_string())?.collect();
    let urls = files
        .iter()
        .map(|f| ListingTableUrl::parse(f).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let _ = state;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options.clone())
        .with_schema(Arc::clone(&schema));
    let provider = Arc::new(ListingTable::try_new(config).map_err(|e| e.to_string())?);
    // Without deletion vectors (this table has no reader feature but
    // vacuumProtocolCheck) a Delta data file never changes.
    let mut data_files: Vec<DataFile> = files
        .into_iter()
        .map(|path| DataFile {
            path,
            fingerprint: String::new(),
            size: 0,
        })
        .collect();
    data_files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((
        provider,
        FileReader::Listing {
            options,
            read_schema: schema,
            convert: None,
        },
        data_files,
    ))
}

/// "a, b, c": a schema's column names, for messages.
fn column_names(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `provider` seen through a projection (a view over its scan).
fn projected(
    name: &str,
    provider: Arc<dyn TableProvider>,
    columns: Vec<Expr>,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(provider), None)?
        .project(columns)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// A location as a URL: local paths become `file://` URLs of folders.
pub fn location_url(location: &str) -> Result<url::Url, String> {
    if location.contains("://") {
        let mut url = url::Url::parse(location).map_err(|e| e.to_string())?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        return Ok(url);
    }
    let path = std::path::Path::new(location);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(path)
    };
    url::Url::from_directory_path(&absolute)
        .map_err(|_| format!("'{location}' is not a valid path"))
}

/// The declared columns must name the files' columns (case-insensitively), in
/// any order; types are converted on read.
fn check_columns(
    def: &ExternalTableDef,
    declared: &SchemaRef,
    inferred: &SchemaRef,
) -> Result<(), LakehouseError> {
    if let FileFormat::Csv(options) = &def.format {
        // CSV columns are read by position.
        let same_count = declared.fields().len() == inferred.fields().len();
        let same_names = !options.header
            || declared
                .fields()
                .iter()
                .zip(inferred.fields())
                .all(|(d, i)| d.name().eq_ignore_ascii_case(i.name()));
        if !same_count || !same_names {
            return Err(LakehouseError::Definition {
                table: def.name.to_string(),
                reason: format!(
                    "the column list ({}) does not match the columns of {} ({})",
                    column_names(declared),
                    def.locations[0],
                    column_names(inferred)
                ),
            });
        }
        return Ok(());
    }
    for field in declared.fields() {
        if !inferred
            .fields()
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(field.name()))
        {
            return Err(LakehouseError::Definition {
                table: def.name.to_string(),
                reason: format!(
                    "column '{}' is declared but {} has no such column (it has: {})",
                    field.name(),
                    def.locations[0],
                    column_names(inferred)
                ),
            });
        }
    }
    Ok(())
}

/// The declared schema with the files' column names (so the reader finds
/// them) and the declared types (so values are converted).
fn declared_schema(declared: &SchemaRef, inferred: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = declared
        .fields()
        .iter()
        .map(|field| {
            let name = inferred
                .fields()
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(field.name()))
                .map(|f| f.name().clone())
                .unwrap_or_else(|| field.name().clone());
            Field::new(name, field.data_type().clone(), true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The defined external tables of an instance, which are loaded, and the
/// object stores they read (shared by every session of the instance).
#[derive(Debug, Default)]
pub struct ExternalCatalog {
    tables: parking_lot::RwLock<std::collections::BTreeMap<TableName, ExternalTable>>,
    loaded: parking_lot::RwLock<std::collections::BTreeSet<TableName>>,
    versions: parking_lot::RwLock<std::collections::BTreeMap<TableName, Option<i64>>>,
    /// The files each loaded table's cluster copy was built from.
    loaded_files: parking_lot::RwLock<std::collections::BTreeMap<TableName, Arc<Vec<DataFile>>>>,
    /// Loads and refreshes of external tables run one at a time, so two
    /// refreshes never diff against the same loaded version.
    load_lock: tokio::sync::Mutex<()>,
    /// When each loaded table was last brought up to date, and why its last
    /// automatic refresh failed, if it did.
    refreshed_at: parking_lot::RwLock<std::collections::BTreeMap<TableName, std::time::Instant>>,
    refresh_errors: parking_lot::RwLock<std::collections::BTreeMap<TableName, String>>,
    stores: Arc<datafusion::execution::object_store::DefaultObjectStoreRegistry>,
}

impl ExternalCatalog {
    pub fn object_stores(
        &self,
    ) -> Arc<datafusion::execution::object_store::DefaultObjectStoreRegistry> {
        Arc::clone(&self.stores)
    }

    pub fn get(&self, name: &TableName) -> Option<ExternalTable> {
        self.tables.read().get(name).cloned()
    }

    pub fn insert(&self, table: ExternalTable) {
        self.tables.write().insert(table.def.name.clone(), table);
    }

    pub fn remove(&self, name: &TableName) {
        self.tables.write().remove(name);
        self.set_unloaded(name);
    }

    /// Held while an external table is loaded or refreshed.
    pub fn load_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.load_lock
    }

    /// The files the cluster copy of `name` was built from.
    pub fn loaded_files(&self, name: &TableName) -> Option<Arc<Vec<DataFile>>> {
        self.loaded_files.read().get(name).cloned()
    }

    /// Record what the cluster copy of `name` now holds.
    pub fn set_loaded_state(
        &self,
        name: &TableName,
        version: Option<i64>,
        files: Arc<Vec<DataFile>>,
    ) {
        self.loaded.write().insert(name.clone());
        self.versions.write().insert(name.clone(), version);
        self.loaded_files.write().insert(name.clone(), files);
        self.refreshed_at
            .write()
            .insert(name.clone(), std::time::Instant::now());
        self.refresh_errors.write().remove(name);
    }

    /// Loaded tables with a refresh interval that has run out since they
    /// were last brought up to date (or last tried).
    pub fn refresh_due(&self) -> Vec<TableName> {
        let tables = self.tables.read();
        let loaded = self.loaded.read();
        let refreshed = self.refreshed_at.read();
        tables
            .values()
            .filter(|t| loaded.contains(&t.def.name))
            .filter(|t| {
                t.def.refresh_interval.is_some_and(|interval| {
                    refreshed
                        .get(&t.def.name)
                        .is_none_or(|at| at.elapsed() >= interval)
                })
            })
            .map(|t| t.def.name.clone())
            .collect()
    }

    /// An automatic refresh failed: keep the loaded version, say why, and
    /// try again after another interval.
    pub fn set_refresh_error(&self, name: &TableName, reason: String) {
        self.refreshed_at
            .write()
            .insert(name.clone(), std::time::Instant::now());
        self.refresh_errors.write().insert(name.clone(), reason);
    }

    pub fn refresh_error(&self, name: &TableName) -> Option<String> {
        self.refresh_errors.read().get(name).cloned()
    }

    pub fn names(&self, database: &str) -> Vec<String> {
        self.tables
            .read()
            .keys()
            .filter(|n| n.database == database)
            .map(|n| n.table.clone())
            .collect()
    }

    /// The Delta version (or load count) the cluster copy reflects.
    pub fn loaded_version(&self, name: &TableName) -> Option<i64> {
        self.versions.read().get(name).copied().flatten()
    }

    pub fn is_loaded(&self, name: &TableName) -> bool {
        self.loaded.read().contains(name)
    }

    /// The cluster no longer holds a copy of `name`.
    pub fn set_unloaded(&self, name: &TableName) {
        self.loaded.write().remove(name);
        self.versions.write().remove(name);
        self.loaded_files.write().remove(name);
        self.refreshed_at.write().remove(name);
        self.refresh_errors.write().remove(name);
    }
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
