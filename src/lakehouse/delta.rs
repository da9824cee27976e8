//! Delta tables, through delta-rs: the log is read when a table is opened
//! (the snapshot a definition sees), and its provider reads that snapshot's
//! files with deletion vectors, column mapping and partition values applied.
//! A data file's fingerprint is its deletion vector, the only thing about an
//! active file that a later commit can change.

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Column;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::logical_expr::{Expr, col};

use super::LakehouseError;
use super::external::{
    ExternalTable, FileReader, check_columns, definition_error, location_error, location_url,
    projected,
};
use super::files::DataFile;
use super::stores::{LocationProblem, open_store, redact};
use crate::catalog::ExternalTableDef;
use crate::error::codes;

/// A Delta table: its log is read now (the snapshot this definition sees);
/// the provider reads that snapshot's files with deletion vectors, column
/// mapping and partition values applied.
pub(super) async fn open_delta(
    def: ExternalTableDef,
    version: Option<u64>,
    state: &dyn Session,
) -> Result<ExternalTable, LakehouseError> {
    let [location] = def.locations.as_slice() else {
        return Err(definition_error(
            &def,
            codes::WRONG_ARGUMENTS,
            "a Delta table has exactly one location: its root folder",
        ));
    };
    let url = location_url(location)
        .map_err(|reason| location_error(&def, location, LocationProblem::because(reason)))?;
    if url.scheme() == "file" {
        let path = url.to_file_path().map_err(|_| {
            location_error(&def, location, LocationProblem::because("not a local path"))
        })?;
        if !path.exists() {
            return Err(location_error(
                &def,
                location,
                LocationProblem::because("no such folder"),
            ));
        }
        if !path.join("_delta_log").is_dir() {
            return Err(location_error(
                &def,
                location,
                LocationProblem::because("not a Delta table (it has no _delta_log folder)"),
            ));
        }
    }
    let delta_error = |source: deltalake::DeltaTableError| LakehouseError::Delta {
        table: def.name.to_string(),
        location: redact(location),
        detail: String::new(),
        source: Box::new(source),
    };
    let mut builder = if url.scheme() == "file" {
        deltalake::DeltaTableBuilder::from_url(url.clone()).map_err(delta_error)?
    } else {
        let opened = open_store(&url, &def.storage_options)
            .map_err(|problem| location_error(&def, location, problem))?;
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
                        detail: format!(" ({reason})"),
                        source: Box::new(e),
                    })?;
            listed_reader = Some(reader);
            files = listed;
            provider
        }
        Err(e) => {
            return Err(LakehouseError::Delta {
                table: def.name.to_string(),
                location: redact(location),
                detail: String::new(),
                source: Box::new(e),
            });
        }
    };
    let inferred = provider.schema();
    let schema = match def.declared_schema() {
        None => inferred,
        Some(declared) => {
            check_columns(&def, &declared, &inferred)?;
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
                path: redact(location),
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
