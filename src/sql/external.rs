//! External tables as statements run them: defining one (its files are
//! checked now), loading it into the cluster file by file, refreshing a
//! loaded copy by the files that changed, unloading it. The files are never
//! written: `DROP TABLE` removes only the definition.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;

use super::external_ddl::ExternalDdl;
pub use super::external_ddl::{
    external_definition, file_format_named, is_external_ddl, redact_statement,
};
use super::result::QueryResult;
use super::{Services, Session, SqlError};
use crate::cancel::Cancel;
use crate::catalog::{CatalogError, Entry, ExternalTableDef, TableName};
use crate::error::{ErrorKind, Result, codes};
use crate::lakehouse::{DataFile, ExternalTable, file_changes, open_external};
use crate::load::{self, BoxError, LoadSpec, Piece, Placement};
use crate::store::{ColumnarTable, TableBuilder};

/// What a refresh of an external table did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// The Delta version now defined (and loaded, if loaded).
    pub version: Option<i64>,
    /// Whether the table is loaded (else only its definition was refreshed).
    pub loaded: bool,
    pub files_added: usize,
    pub files_removed: usize,
    /// Reloaded whole, because its columns changed.
    pub whole: bool,
}

impl std::fmt::Display for RefreshOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = match self.version {
            Some(v) => format!(" to version {v}"),
            None => String::new(),
        };
        let plural = |n: usize| if n == 1 { "file" } else { "files" };
        if !self.loaded {
            write!(f, "definition refreshed{version} (not loaded)")
        } else if self.whole {
            write!(
                f,
                "reloaded{version}: the columns changed ({} {})",
                self.files_added,
                plural(self.files_added)
            )
        } else {
            write!(
                f,
                "refreshed{version} ({} {} added, {} removed)",
                self.files_added,
                plural(self.files_added),
                self.files_removed
            )
        }
    }
}

/// Whether a loaded table's columns are still those of its source: the same
/// names with the same stored types.
fn same_columns(loaded: &arrow::datatypes::Schema, source: &arrow::datatypes::Schema) -> bool {
    loaded.fields().len() == source.fields().len()
        && loaded.fields().iter().zip(source.fields()).all(|(l, s)| {
            l.name() == s.name() && *l.data_type() == crate::store::logical_type(s.data_type())
        })
}

/// The table as last opened, or opened now (its files listed, its Delta log
/// read) when it was not.
pub(super) async fn opened(
    services: &Services,
    def: &ExternalTableDef,
    state: &datafusion::execution::SessionState,
) -> Result<ExternalTable> {
    if let Some(table) = services.externals.opened(&def.name) {
        return Ok(table);
    }
    let table = open_external(def.clone(), state).await?;
    services.externals.set_opened(table.clone());
    Ok(table)
}

impl Session {
    /// Define an external table from its statement.
    pub(super) async fn create_external(
        &self,
        ddl: ExternalDdl,
        text: &str,
    ) -> Result<QueryResult> {
        let name = ddl.def.name.clone();
        if self.define_external(ddl.def, ddl.if_not_exists).await? {
            Ok(QueryResult::status(
                text,
                format!("defined external table {name}"),
            ))
        } else {
            Ok(QueryResult::status(
                text,
                format!("table {name} already exists"),
            ))
        }
    }

    /// Define an external table: its files are checked (listed, the schema
    /// read) now, then the definition is persisted without its secrets.
    /// `Ok(false)` when it exists and `if_not_exists` was given.
    pub async fn define_external(
        &self,
        def: ExternalTableDef,
        if_not_exists: bool,
    ) -> Result<bool> {
        let name = def.name.clone();
        let free = |session: &Self| -> Result<bool> {
            match session.services.catalog.check_free(&name) {
                Err(CatalogError::TableExists { .. }) if if_not_exists => Ok(false),
                Err(e) => Err(e.into()),
                Ok(()) => Ok(true),
            }
        };
        if !free(self)? {
            return Ok(false);
        }
        let state = self.base_state();
        let table = open_external(def.clone(), &state).await?;
        let _ddl = self.services.catalog.ddl().lock().await;
        if !free(self)? {
            return Ok(false);
        }
        let entry = Entry::External(Arc::new(def.clone()));
        let saved = entry.clone();
        let id = self
            .blocking("CREATE EXTERNAL TABLE", move |conn| {
                conn.insert_entry(&saved)
            })
            .await?;
        let def = ExternalTableDef { id, ..def };
        self.services
            .catalog
            .insert(Entry::External(Arc::new(def.clone())))?;
        let mut table = table;
        table.def = def;
        self.services.externals.set_opened(table);
        Ok(true)
    }

    /// Open every external table of the catalog again (an instance opens),
    /// and load the ones that were loaded. A table whose files are gone is
    /// kept defined, and reported; the rest of the instance still opens.
    pub async fn restore_externals(
        &self,
        cancel: &Cancel,
    ) -> Vec<(TableName, crate::error::Error)> {
        let mut failures = Vec::new();
        for entry in self.services.catalog.entries() {
            let Entry::External(def) = entry else {
                continue;
            };
            let state = self.base_state();
            let restored = match opened(&self.services, &def, &state).await {
                Ok(_) if def.loaded => self
                    .load_external(&def.name, "restoring external tables", cancel)
                    .await
                    .map(|_| ()),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(error) = restored {
                failures.push((def.name.clone(), error));
            }
        }
        failures
    }

    /// `SECONDARY_LOAD` of an external table: read it file by file into the
    /// cluster, and publish it whole or not at all.
    pub(super) async fn load_external(
        &self,
        name: &TableName,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let _loading = self.services.externals.load_lock().lock().await;
        let def = self.external_def(name)?;
        // Load what the files hold now: list them (or read the Delta log)
        // again, as a refresh would.
        let table = open_external(def.as_ref().clone(), &self.base_state()).await?;
        let built = self.load_external_files(&table, text, cancel).await?;
        let rows = built.rows();
        self.publish_external(&def, table, built, text).await?;
        Ok(QueryResult::status(
            text,
            format!("loaded {rows} rows of external table {name} into the cluster"),
        ))
    }

    fn external_def(&self, name: &TableName) -> Result<Arc<ExternalTableDef>> {
        match self.services.catalog.require(name)? {
            Entry::External(def) => Ok(def),
            other => Err(CatalogError::WrongKind {
                name: name.clone(),
                kind: other.kind(),
                wanted: "an external table",
            }
            .into()),
        }
    }

    /// Publish a loaded copy, if the definition is still the one loaded.
    async fn publish_external(
        &self,
        def: &ExternalTableDef,
        table: ExternalTable,
        built: ColumnarTable,
        text: &str,
    ) -> Result<()> {
        let _ddl = self.services.catalog.ddl().lock().await;
        let current = self.external_def(&def.name)?;
        if current.id != def.id {
            return Err(CatalogError::TableNotFound(def.name.clone()).into());
        }
        let name = def.name.clone();
        if !current.loaded {
            let loaded = Entry::External(Arc::new(ExternalTableDef {
                loaded: true,
                ..current.as_ref().clone()
            }));
            let saved = loaded.clone();
            self.blocking(text, move |conn| conn.update_entry(&saved))
                .await?;
            self.services.catalog.replace(loaded)?;
        }
        self.services.cluster.publish(built);
        self.services
            .externals
            .set_loaded(&name, table.delta_version, Arc::clone(&table.files));
        self.services.externals.set_opened(table);
        Ok(())
    }

    /// Every file of `table`, as a new cluster table laid out by file.
    async fn load_external_files(
        &self,
        table: &ExternalTable,
        text: &str,
        cancel: &Cancel,
    ) -> Result<ColumnarTable> {
        let name = table.def.name.clone();
        let spec = LoadSpec {
            name: name.clone(),
            schema: Arc::clone(&table.schema),
            placement: Placement::ByFile,
            source_name: self.source_name(table),
        };
        let _ = text;
        self.stream_files_into(table, table.files.to_vec(), spec, None, cancel, true)
            .await
    }

    fn source_name(&self, table: &ExternalTable) -> String {
        let locations: Vec<String> = table
            .def
            .locations
            .iter()
            .map(|l| crate::lakehouse::stores::redact(l))
            .collect();
        format!(
            "external table {} ({})",
            table.def.name,
            locations.join(", ")
        )
    }

    /// Read `files` of `table` on the runtime and build them, as they
    /// arrive, into a table (a fresh one, or the refresh `builder`).
    pub(super) async fn stream_files_into(
        &self,
        table: &ExternalTable,
        files: Vec<DataFile>,
        spec: LoadSpec,
        builder: Option<TableBuilder>,
        cancel: &Cancel,
        by_file: bool,
    ) -> Result<ColumnarTable> {
        let context = datafusion::prelude::SessionContext::new_with_state(self.base_state());
        let pieces = table.read_files(&context, files).map(move |file| {
            file.map(|(source, batches)| Piece {
                source: by_file.then_some(source),
                batches,
            })
            .map_err(|e| Box::new(e) as BoxError)
        });
        load::build_async(
            Arc::clone(&self.services.cluster),
            spec,
            builder,
            pieces,
            cancel,
        )
        .await
    }

    /// Bring an external table to its source's current state: re-read the
    /// Delta log or re-list the files and, if it is loaded, apply to the
    /// cluster only the files added and removed since the loaded version (a
    /// rewritten file, or a Delta file with a new deletion vector, is both).
    /// A schema change reloads the table whole. Queries see the old or the
    /// new version, never a mix.
    pub async fn refresh_external(
        &self,
        name: &TableName,
        cancel: &Cancel,
    ) -> Result<RefreshOutcome> {
        let statement = format!("refresh {name}");
        let _loading = self.services.externals.load_lock().lock().await;
        let def = self.external_def(name)?;
        let state = self.base_state();
        // A pinned Delta VERSION stays pinned; otherwise the newest is read.
        let fresh = open_external(def.as_ref().clone(), &state).await?;
        let loaded_files = self.services.externals.loaded(name);
        let mut outcome = RefreshOutcome {
            version: fresh.delta_version,
            loaded: def.loaded && loaded_files.is_some(),
            files_added: 0,
            files_removed: 0,
            whole: false,
        };
        if !outcome.loaded {
            self.services.externals.set_opened(fresh);
            return Ok(outcome);
        }
        let current = self.services.cluster.table(name);
        let same_schema = current
            .as_ref()
            .is_some_and(|loaded| same_columns(&loaded.logical_schema, &fresh.schema));
        let (Some(before), Some(current), true) = (loaded_files, current, same_schema) else {
            let built = self.load_external_files(&fresh, &statement, cancel).await?;
            outcome.whole = true;
            outcome.files_added = fresh.files.len();
            self.publish_external(&def, fresh, built, &statement)
                .await?;
            return Ok(outcome);
        };
        let (added, removed) = file_changes(&before.files, &fresh.files);
        outcome.files_added = added.len();
        outcome.files_removed = removed.len();
        if !added.is_empty() || !removed.is_empty() {
            let removed: HashSet<String> = removed.into_iter().map(|f| f.path).collect();
            let builder = self.services.cluster.refresh_builder(&current, &removed);
            let spec = LoadSpec {
                name: name.clone(),
                schema: Arc::clone(&current.logical_schema),
                placement: Placement::ByFile,
                source_name: self.source_name(&fresh),
            };
            let next = self
                .stream_files_into(&fresh, added, spec, Some(builder), cancel, true)
                .await?;
            if !self
                .services
                .cluster
                .replace_if_current(name, &current, next)
            {
                return Err(SqlError::Execution {
                    statement,
                    message: format!("external table {name} was unloaded during the refresh"),
                    kind: ErrorKind::Operational,
                    code: codes::SECONDARY_ENGINE_PLUGIN,
                }
                .into());
            }
        }
        self.services
            .externals
            .set_loaded(name, fresh.delta_version, Arc::clone(&fresh.files));
        self.services.externals.set_opened(fresh);
        Ok(outcome)
    }

    pub(super) async fn unload_external(
        &self,
        name: &TableName,
        text: &str,
    ) -> Result<QueryResult> {
        let _loading = self.services.externals.load_lock().lock().await;
        let _ddl = self.services.catalog.ddl().lock().await;
        let def = self.external_def(name)?;
        self.services.cluster.unload(name);
        self.services.externals.set_unloaded(name);
        if def.loaded {
            let unloaded = Entry::External(Arc::new(ExternalTableDef {
                loaded: false,
                ..def.as_ref().clone()
            }));
            let saved = unloaded.clone();
            self.blocking(text, move |conn| conn.update_entry(&saved))
                .await?;
            self.services.catalog.replace(unloaded)?;
        }
        Ok(QueryResult::status(
            text,
            format!("unloaded external table {name}"),
        ))
    }

    /// Loaded external tables whose `REFRESH_INTERVAL` has run out.
    pub fn external_refresh_due(&self) -> Vec<TableName> {
        let candidates: Vec<(TableName, std::time::Duration)> = self
            .services
            .catalog
            .entries()
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::External(def) if def.loaded => {
                    def.refresh_interval.map(|i| (def.name.clone(), i))
                }
                _ => None,
            })
            .collect();
        self.services.externals.refresh_due(&candidates)
    }
}
