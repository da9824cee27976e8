//! External tables: a format and one or more locations (files, folders used as
//! prefixes, or glob patterns), read in place with DataFusion's file readers.
//! Each definition becomes a DataFusion listing table whose files are listed at
//! every scan, so files added in place are seen by the next query. The column
//! list is optional: without it the schema is inferred from the files; with it,
//! the files must agree (same column names), or the definition is refused with
//! an error naming the table and the file.
//!
//! Formats here: Parquet, CSV (header, delimiter, quote, null string) and
//! newline-delimited JSON on local paths and `file://` URLs. Delta, Avro and
//! object stores are the next steps of this module.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Column;
use datafusion::datasource::file_format::FileFormat as DfFileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::functions::expr_fn::nullif;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, col, lit};

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
            FileFormat::Delta { .. } => "delta",
        }
    }

    fn extension(&self) -> &'static str {
        match self {
            FileFormat::Parquet => ".parquet",
            FileFormat::Csv(_) => ".csv",
            FileFormat::Json => ".json",
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
    }
    let inferred =
        options
            .infer_schema(state, &urls[0])
            .await
            .map_err(|e| LakehouseError::Read {
                path: format!("{} (table {})", def.locations[0], def.name),
                source: e,
            })?;
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
        .with_listing_options(options)
        .with_schema(read_schema);
    let read_error = |source| LakehouseError::Read {
        path: def.locations.join(", "),
        source,
    };
    let listing: Arc<dyn TableProvider> =
        Arc::new(ListingTable::try_new(config).map_err(read_error)?);
    let provider = match null_text {
        None => listing,
        Some(null) => {
            let columns: Vec<Expr> = schema
                .fields()
                .iter()
                .map(|f| {
                    cast(
                        nullif(col(Column::from_name(f.name())), lit(null.clone())),
                        f.data_type().clone(),
                    )
                    .alias(f.name())
                })
                .collect();
            projected(&def.name.table, listing, columns).map_err(read_error)?
        }
    };
    Ok(ExternalTable {
        def,
        schema,
        provider,
        delta_version: None,
    })
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
    let provider = match table.table_provider().await {
        Ok(provider) => provider,
        Err(e) if only_vacuum_protocol_check(&table) => {
            // vacuumProtocolCheck only constrains VACUUM (a writer): readers
            // need do nothing, but delta-rs 1.1 refuses tables that declare
            // it. Plain tables (no partitions, no deletion vectors) are read
            // from the snapshot's file list instead.
            vacuum_checked_provider(&table, state)
                .await
                .map_err(|reason| LakehouseError::Delta {
                    table: def.name.to_string(),
                    location: redact(location),
                    reason: format!("{e}; {reason}"),
                })?
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
    let provider: Arc<dyn TableProvider> =
        if schema.fields().len() == provider.schema().fields().len() {
            provider
        } else {
            let columns: Vec<Expr> = schema
                .fields()
                .iter()
                .map(|f| col(Column::from_name(f.name())))
                .collect();
            projected(&def.name.table, provider, columns).map_err(|e| LakehouseError::Read {
                path: location.clone(),
                source: e,
            })?
        };
    Ok(ExternalTable {
        def,
        schema,
        provider,
        delta_version,
    })
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
) -> Result<Arc<dyn TableProvider>, String> {
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
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(""),
        )
        .with_schema(schema);
    Ok(Arc::new(
        ListingTable::try_new(config).map_err(|e| e.to_string())?,
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
        self.loaded.write().remove(name);
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

    pub fn set_loaded_version(&self, name: &TableName, version: Option<i64>) {
        self.versions.write().insert(name.clone(), version);
    }

    pub fn is_loaded(&self, name: &TableName) -> bool {
        self.loaded.read().contains(name)
    }

    pub fn set_loaded(&self, name: &TableName, loaded: bool) {
        if loaded {
            self.loaded.write().insert(name.clone());
        } else {
            self.loaded.write().remove(name);
        }
    }
}
