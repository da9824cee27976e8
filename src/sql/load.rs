//! Loading into the cluster: `ALTER TABLE t SECONDARY_LOAD | SECONDARY_UNLOAD`
//! of row-store tables (external tables: `external`), `CREATE TABLE ... AS
//! SELECT`, and `Connection.load` from Arrow producers or files. Rows go
//! through the one load service (`load`); a table loaded straight into the
//! cluster becomes a catalog entry of its own kind, published with its data
//! under the DDL lock, so its name can never shadow another entry.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::StreamExt;

use super::result::QueryResult;
use super::{Session, SqlError, abbreviate, datafusion_error};
use crate::cancel::Cancel;
use crate::catalog::{
    CatalogError, ClusterTable, Entry, ExternalTableDef, FileFormat, Placement as CatalogPlacement,
    TableName,
};
use crate::cluster::TableStatus;
use crate::error::{Error, Result};
use crate::load::{self, BoxError, LoadSpec, Piece, Placement};
use crate::store::{ColumnarTable, LoadProgress};

/// What a caller asks to load straight into the cluster.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub name: TableName,
    pub primary_key: Vec<String>,
    /// Data placement keys; the primary key when empty.
    pub partition_by: Vec<String>,
    /// Replace an existing table loaded straight into the cluster (it stays
    /// as it was if the load fails).
    pub replace: bool,
}

impl LoadOptions {
    fn placement(&self) -> Placement {
        let keys = if self.partition_by.is_empty() {
            &self.primary_key
        } else {
            &self.partition_by
        };
        if keys.is_empty() {
            Placement::RoundRobin
        } else {
            Placement::Key(keys.clone())
        }
    }
}

/// Files to load: a location (file, folder, glob, URL) and its format (by
/// the file name when not given).
#[derive(Debug, Clone)]
pub struct LoadSource {
    pub location: String,
    pub format: Option<FileFormat>,
    pub storage_options: std::collections::BTreeMap<String, String>,
}

impl Session {
    /// `ALTER TABLE t SECONDARY_LOAD`.
    pub(super) async fn secondary_load(
        &self,
        table: &str,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let name = self.parse_name(table)?;
        if let Some((_, source)) = self.upstream()
            && !matches!(
                self.services.catalog.resolve(&name),
                Some(Entry::Row(_) | Entry::External(_) | Entry::View(_))
            )
        {
            let loaded = source.load(&name, cancel).await?;
            let rows = self
                .services
                .cluster
                .table(&name)
                .map(|t| t.rows())
                .unwrap_or(0);
            let scn = loaded.scn.map(|p| p.to_string()).unwrap_or_default();
            return Ok(QueryResult::status(
                text,
                format!("loaded {rows} rows of {name} into the cluster at binlog position {scn}"),
            ));
        }
        self.load_table(&name, text, cancel).await
    }

    /// Load a row-store or external table into the cluster.
    pub(super) async fn load_table(
        &self,
        name: &TableName,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        match self.services.catalog.require(name)? {
            Entry::Row(_) => self.load_row_table(name, text, cancel).await,
            Entry::External(_) => self.load_external(name, text, cancel).await,
            Entry::Cluster(_) => Ok(QueryResult::status(
                text,
                format!("{name} is already in the cluster"),
            )),
            Entry::View(_) => Err(CatalogError::WrongKind {
                name: name.clone(),
                kind: crate::catalog::EntryKind::View,
                wanted: "a table (a view is not loaded: load the tables it reads)",
            }
            .into()),
        }
    }

    async fn load_row_table(
        &self,
        name: &TableName,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        self.set_capture(name, true, text).await?;
        let propagator = Arc::clone(&self.services.propagator);
        let loaded_name = name.clone();
        let load_cancel = cancel.clone();
        let loaded =
            tokio::task::spawn_blocking(move || propagator.load(&loaded_name, &load_cancel))
                .await
                .map_err(|e| super::task_failed(text, e))?;
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                // As in HeatWave, a failed load leaves the table unloaded.
                let unloaded = name.clone();
                self.with_propagator(text, move |p| p.unload(&unloaded))
                    .await?;
                if self.services.catalog.resolve(name).is_some() {
                    let _ = self.set_capture(name, false, text).await;
                }
                return Err(error);
            }
        };
        let rows = self
            .services
            .cluster
            .table(name)
            .map(|t| t.rows())
            .unwrap_or(0);
        Ok(QueryResult::status(
            text,
            format!(
                "loaded {rows} rows of {name} into the cluster at SCN {}",
                loaded.scn
            ),
        ))
    }

    /// Turn change capture on or off for a row-store table, and record it.
    async fn set_capture(&self, name: &TableName, on: bool, text: &str) -> Result<()> {
        let _ddl = self.services.catalog.ddl().lock().await;
        let table = self.services.catalog.row_table(name)?;
        let changed = self
            .blocking(text, move |conn| conn.set_capture(&table, on))
            .await?;
        self.services
            .catalog
            .replace(Entry::Row(Arc::new(changed)))?;
        Ok(())
    }

    /// `ALTER TABLE t SECONDARY_UNLOAD`.
    pub(super) async fn secondary_unload(&self, table: &str, text: &str) -> Result<QueryResult> {
        let name = self.parse_name(table)?;
        if let Some((_, source)) = self.upstream()
            && source.table(&name).is_some()
        {
            source.unload(&name).await?;
            return Ok(QueryResult::status(
                text,
                format!("unloaded {name} from the cluster"),
            ));
        }
        match self.services.catalog.require(&name)? {
            Entry::Row(_) => {
                let unloaded = name.clone();
                self.with_propagator(text, move |p| p.unload(&unloaded))
                    .await?;
                self.set_capture(&name, false, text).await?;
                Ok(QueryResult::status(
                    text,
                    format!("unloaded {name} from the cluster"),
                ))
            }
            Entry::External(_) => self.unload_external(&name, text).await,
            Entry::Cluster(_) => Err(super::ddl::not_supported(
                text,
                format!(
                    "SECONDARY_UNLOAD of '{name}': it exists only in the cluster; use DROP TABLE"
                ),
            )),
            Entry::View(_) => Err(CatalogError::WrongKind {
                name,
                kind: crate::catalog::EntryKind::View,
                wanted: "a table",
            }
            .into()),
        }
    }

    /// `CREATE [OR REPLACE] TABLE t AS <query>`: stream the query's rows
    /// into the cluster as a table of its own.
    pub(super) async fn create_table_as(
        &self,
        create: datafusion::logical_expr::CreateMemoryTable,
        state: datafusion::execution::SessionState,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let reference = &create.name;
        let name = TableName::new(
            reference
                .schema()
                .map(str::to_string)
                .unwrap_or_else(|| self.current_database()),
            reference.table(),
        );
        if create.if_not_exists && self.services.catalog.resolve(&name).is_some() {
            return Ok(QueryResult::status(
                text,
                format!("table {name} already exists"),
            ));
        }
        let options = LoadOptions {
            name: name.clone(),
            primary_key: Vec::new(),
            partition_by: Vec::new(),
            replace: create.or_replace,
        };
        self.check_cluster_name(&options)?;
        let input = create.input.as_ref().clone();
        if matches!(&input, datafusion::logical_expr::LogicalPlan::EmptyRelation(e) if !e.produce_one_row)
        {
            return Err(super::ddl::not_supported(
                text,
                format!("CREATE TABLE {name} with only a column list and AS"),
            ));
        }
        let frame = datafusion::dataframe::DataFrame::new(state, input);
        let schema = super::logical_schema(frame.schema().as_arrow());
        let primary_key: Vec<String> = create
            .constraints
            .iter()
            .find_map(|c| match c {
                datafusion::common::Constraint::PrimaryKey(indices) => Some(
                    indices
                        .iter()
                        .map(|&i| schema.field(i).name().clone())
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        let options = LoadOptions {
            primary_key,
            ..options
        };
        let stream = cancel
            .run(frame.execute_stream())
            .await
            .ok_or_else(|| Error::Interrupted {
                what: abbreviate(text),
            })?
            .map_err(|e| datafusion_error(text, e))?;
        let statement = text.to_string();
        let pieces = super::output::decode_stream(stream).map(move |batch| {
            batch
                .map(Piece::batch)
                .map_err(|e| Box::new(datafusion_error(&statement, e)) as BoxError)
        });
        let spec = LoadSpec {
            name: name.clone(),
            schema,
            placement: options.placement(),
            source_name: format!("the query of `{}`", abbreviate(text)),
        };
        let table = load::build_async(
            Arc::clone(&self.services.cluster),
            spec,
            None,
            pieces,
            cancel,
        )
        .await?;
        let _ddl = self.services.catalog.ddl().lock().await;
        let status = self.publish_cluster_table(&options, table)?;
        Ok(QueryResult::status(
            text,
            format!("loaded {} rows into {name}", status.rows),
        ))
    }

    /// Whether `options.name` may be loaded straight into the cluster: free,
    /// or (with `replace`) a table that lives only in the cluster.
    fn check_cluster_name(&self, options: &LoadOptions) -> Result<()> {
        let catalog = &self.services.catalog;
        match catalog.resolve(&options.name) {
            None => Ok(catalog.check_free(&options.name)?),
            Some(Entry::Cluster(_)) if options.replace => Ok(()),
            Some(existing) => Err(CatalogError::TableExists {
                name: options.name.clone(),
                kind: existing.kind(),
            }
            .into()),
        }
    }

    /// Publish a built table under its name with its catalog entry. The
    /// caller holds the DDL lock.
    fn publish_cluster_table(
        &self,
        options: &LoadOptions,
        table: ColumnarTable,
    ) -> Result<TableStatus> {
        self.check_cluster_name(options)?;
        let placement = match options.placement() {
            Placement::Key(keys) => CatalogPlacement::Hash(keys),
            _ => CatalogPlacement::RoundRobin,
        };
        let catalog = &self.services.catalog;
        let entry = Entry::Cluster(Arc::new(ClusterTable {
            id: catalog.transient_id(),
            name: options.name.clone(),
            schema: Arc::clone(&table.logical_schema),
            primary_key: options.primary_key.clone(),
            placement,
        }));
        let status = self.services.cluster.publish(table);
        catalog.replace(entry)?;
        Ok(status)
    }

    /// Load batches from any Arrow producer straight into the cluster.
    /// Blocking: call it from a thread outside the instance's runtime.
    pub fn load_batches(
        &self,
        options: &LoadOptions,
        schema: SchemaRef,
        source: impl Iterator<Item = std::result::Result<arrow::array::RecordBatch, BoxError>>,
        source_name: &str,
        cancel: &Cancel,
        progress: &mut (dyn FnMut(LoadProgress) + Send),
    ) -> Result<TableStatus> {
        self.check_cluster_name(options)?;
        let spec = LoadSpec {
            name: options.name.clone(),
            schema,
            placement: options.placement(),
            source_name: source_name.to_string(),
        };
        let table = load::build(
            &self.services.cluster,
            &spec,
            source.map(|batch| batch.map(Piece::batch)),
            cancel,
            progress,
        )?;
        let _ddl = self.services.catalog.ddl().blocking_lock();
        self.publish_cluster_table(options, table)
    }

    /// Load files (any format the lakehouse reads, on any store it reaches)
    /// straight into the cluster, through the external-table readers.
    pub async fn load_files(
        &self,
        options: &LoadOptions,
        source: &LoadSource,
        cancel: &Cancel,
    ) -> Result<TableStatus> {
        self.check_cluster_name(options)?;
        let format = match &source.format {
            Some(format) => format.clone(),
            None => format_of(&source.location).ok_or_else(|| -> Error {
                SqlError::WrongArguments {
                    what: "load".into(),
                    message: format!(
                        "cannot tell the format of '{}' from its name; pass format=",
                        crate::lakehouse::stores::redact(&source.location)
                    ),
                }
                .into()
            })?,
        };
        let def = ExternalTableDef {
            id: 0,
            name: options.name.clone(),
            format,
            locations: vec![source.location.clone()],
            columns: None,
            storage_options: source.storage_options.clone(),
            refresh_interval: None,
            loaded: false,
        };
        let state = self.base_state();
        let table = crate::lakehouse::open_external(def, &state).await?;
        let spec = LoadSpec {
            name: options.name.clone(),
            schema: Arc::clone(&table.schema),
            placement: options.placement(),
            source_name: format!("'{}'", crate::lakehouse::stores::redact(&source.location)),
        };
        let built = self
            .stream_files_into(&table, table.files.to_vec(), spec, None, cancel, false)
            .await?;
        let _ddl = self.services.catalog.ddl().lock().await;
        self.publish_cluster_table(options, built)
    }
}

/// A file format from a location's file name.
fn format_of(location: &str) -> Option<FileFormat> {
    let path = location.trim_end_matches('/');
    let extension = path.rsplit('.').next()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "parquet" | "pq" => FileFormat::Parquet,
        "csv" => FileFormat::Csv(Default::default()),
        "json" | "ndjson" | "jsonl" => FileFormat::Json,
        "avro" => FileFormat::Avro,
        _ if std::path::Path::new(path).join("_delta_log").is_dir() => {
            FileFormat::Delta { version: None }
        }
        // A folder: Parquet files below it.
        _ if std::path::Path::new(path).is_dir() => FileFormat::Parquet,
        _ => return None,
    })
}
