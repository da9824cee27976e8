//! External tables opened for reading: a format and one or more locations
//! (files, folders used as prefixes, or glob patterns), read in place with
//! DataFusion's file readers, and Delta tables through delta-rs ([`delta`]).
//! Each plain-file definition becomes a DataFusion listing table whose files
//! are listed at every scan, so files added in place are seen by the next
//! query. The column list is optional: without it the schema is inferred from
//! the files; with it, the files must agree (same column names), or the
//! definition is refused with an error naming the table and the file.
//!
//! Formats: Parquet, CSV (header, delimiter, quote, null string),
//! newline-delimited JSON and Avro. Locations are local paths, `file://` URLs
//! and object store URLs (see `stores`). Every opened table also records its
//! data files (with fingerprints), and reads any one file alone, so that a
//! loaded copy can be refreshed by the files that changed.
//!
//! [`delta`]: super::delta

use std::fmt;
use std::sync::Arc;

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

use super::LakehouseError;
use super::files::{DataFile, plain_strings};
use super::stores::{LocationProblem, open_store, redact};
use crate::catalog::{CsvOptions, ExternalTableDef, FileFormat};
use crate::error::codes;

/// The file name ending a format's files have in a folder.
fn extension(format: &FileFormat) -> &'static str {
    match format {
        FileFormat::Parquet | FileFormat::Delta { .. } => ".parquet",
        FileFormat::Csv(_) => ".csv",
        FileFormat::Json => ".json",
        FileFormat::Avro => ".avro",
    }
}

/// DataFusion's reader for a format.
fn datafusion_format(format: &FileFormat) -> Arc<dyn DfFileFormat> {
    match format {
        FileFormat::Parquet | FileFormat::Delta { .. } => Arc::new(ParquetFormat::default()),
        FileFormat::Csv(options) => {
            let mut csv = CsvFormat::default()
                .with_has_header(options.header)
                .with_delimiter(options.delimiter)
                .with_quote(options.quote);
            if let Some(null) = &options.null {
                csv = csv.with_null_regex(Some(regex_literal(null)));
            }
            Arc::new(csv)
        }
        FileFormat::Json => Arc::new(JsonFormat::default()),
        FileFormat::Avro => Arc::new(AvroFormat),
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
    pub(super) reader: FileReader,
}

/// How to read one data file with the table's schema and conversions.
#[derive(Clone)]
pub(super) enum FileReader {
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
}

impl fmt::Debug for ExternalTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExternalTable({})", self.def.name)
    }
}

pub(super) fn location_error(
    def: &ExternalTableDef,
    location: &str,
    problem: impl Into<LocationProblem>,
) -> LakehouseError {
    let problem = problem.into();
    LakehouseError::Location {
        table: def.name.to_string(),
        location: redact(location),
        reason: problem.reason,
        source: problem.source,
    }
}

pub(super) fn definition_error(
    def: &ExternalTableDef,
    code: crate::error::MySqlCode,
    reason: impl Into<String>,
) -> LakehouseError {
    LakehouseError::Definition {
        table: def.name.to_string(),
        reason: reason.into(),
        code,
    }
}

/// `schema` with every column allowed to be NULL.
fn all_nullable(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// Check the locations, infer or check the schema, and build the provider.
pub async fn open_external(
    def: ExternalTableDef,
    state: &dyn Session,
) -> Result<ExternalTable, LakehouseError> {
    if def.locations.is_empty() {
        return Err(definition_error(
            &def,
            codes::PARSE_ERROR,
            "FILES names no location",
        ));
    }
    if let FileFormat::Delta { version } = def.format {
        return super::delta::open_delta(def, version, state).await;
    }
    let mut urls = Vec::new();
    let mut any_folder = false;
    for location in &def.locations {
        let remote = location.split_once("://").is_some_and(|(s, _)| s != "file");
        let url = if remote {
            let url = url::Url::parse(location).map_err(|e| {
                location_error(
                    &def,
                    location,
                    LocationProblem::caused("not a valid URL", e),
                )
            })?;
            let opened = open_store(&url, &def.storage_options)
                .map_err(|problem| location_error(&def, location, problem))?;
            state
                .runtime_env()
                .register_object_store(&opened.root, opened.store);
            any_folder |= location.ends_with('/');
            ListingTableUrl::parse(opened.location.as_str()).map_err(|e| {
                location_error(
                    &def,
                    location,
                    LocationProblem::caused("not a valid URL", e),
                )
            })?
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            let has_glob = path.contains(['*', '?', '[']);
            if !has_glob && !std::path::Path::new(path).exists() {
                return Err(location_error(
                    &def,
                    location,
                    LocationProblem::because("no such file or folder"),
                ));
            }
            any_folder |= std::path::Path::new(path).is_dir();
            ListingTableUrl::parse(location).map_err(|e| {
                location_error(
                    &def,
                    location,
                    LocationProblem::caused("not a valid path", e),
                )
            })?
        };
        urls.push(url);
    }
    let extension = if any_folder {
        extension(&def.format)
    } else {
        ""
    };
    let options =
        ListingOptions::new(datafusion_format(&def.format)).with_file_extension(extension);
    // Every location must hold at least one file: an empty prefix is an error
    // at definition time, not an empty table.
    let mut data_files: Vec<DataFile> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (url, location) in urls.iter().zip(&def.locations) {
        let store = state.runtime_env().object_store(url).map_err(|e| {
            location_error(
                &def,
                location,
                LocationProblem::caused("no object store", e),
            )
        })?;
        let files = url
            .list_all_files(state, store.as_ref(), extension)
            .await
            .map_err(|e| {
                location_error(
                    &def,
                    location,
                    LocationProblem::caused("cannot list its files", e),
                )
            })?;
        use futures::TryStreamExt;
        let files: Vec<_> = files.try_collect().await.map_err(|e| {
            location_error(
                &def,
                location,
                LocationProblem::caused("cannot list its files", e),
            )
        })?;
        if files.is_empty() {
            return Err(location_error(
                &def,
                location,
                LocationProblem::because(format!("no {} files there", def.format.name())),
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
    if def.format == FileFormat::Parquet {
        // The parquet crate panics on some corrupt footers: check local
        // files' frames before it sees them.
        for file in &data_files {
            if let Some(path) = file.path.strip_prefix("file://")
                && std::path::Path::new(path).is_file()
            {
                super::check_footer(std::path::Path::new(path)).map_err(|e| match e {
                    LakehouseError::Corrupt { path, reason } => LakehouseError::Corrupt {
                        path: format!("{path} (table {})", def.name),
                        reason,
                    },
                    other => other,
                })?;
            }
        }
    }
    let inferred = match options.infer_schema(state, &urls[0]).await {
        Ok(schema) => schema,
        Err(error) => return Err(unreadable_file(&def, &options, state, &data_files, error).await),
    };
    // With several files every column may be NULL: a file that lacks a
    // column (an older file of a table whose files gained one) reads as NULLs
    // there. One file keeps its own NOT NULL columns, which the optimizer
    // uses (NOT IN without a null-aware join, cheaper grouping).
    let inferred = if data_files.len() > 1 {
        all_nullable(&inferred)
    } else {
        inferred
    };
    let schema = match def.declared_schema() {
        None => inferred,
        Some(declared) => {
            check_columns(&def, &declared, &inferred)?;
            if matches!(def.format, FileFormat::Csv(_)) {
                // CSV columns are read by position, under the declared names.
                all_nullable(&declared)
            } else {
                declared_schema(&declared, &inferred)
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
        path: def
            .locations
            .iter()
            .map(|l| redact(l))
            .collect::<Vec<_>>()
            .join(", "),
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

/// "a, b, c": a schema's column names, for messages.
pub(super) fn column_names(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `provider` seen through a projection (a view over its scan).
pub(super) fn projected(
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
pub(super) fn check_columns(
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
            return Err(definition_error(
                def,
                codes::BAD_FIELD,
                format!(
                    "the column list ({}) does not match the columns of {} ({})",
                    column_names(declared),
                    redact(&def.locations[0]),
                    column_names(inferred)
                ),
            ));
        }
        return Ok(());
    }
    for field in declared.fields() {
        if !inferred
            .fields()
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(field.name()))
        {
            return Err(definition_error(
                def,
                codes::BAD_FIELD,
                format!(
                    "column '{}' is declared but {} has no such column (it has: {})",
                    field.name(),
                    redact(&def.locations[0]),
                    column_names(inferred)
                ),
            ));
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
