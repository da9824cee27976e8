//! Name resolution and routing, once per statement. The tables a statement
//! reads are looked up in the catalog (views are expanded into the tables
//! their queries read), which decides where it runs:
//!
//! - in the cluster when every row-store and external table it reads is
//!   loaded and fresh (after read-your-writes propagation);
//! - on the row store otherwise (and always for the reads of DML), with the
//!   reason; `use_secondary_engine = FORCED` turns that into an error.
//!
//! The result is a [`Route`] and a [`Resolver`] holding the very snapshots
//! the route chose. Planning resolves names through the resolver only, so
//! the plan reads what the route says and `EXPLAIN` prints it; a table
//! unloaded, reloaded or changed after routing does not change the plan.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, TableReference};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use parking_lot::Mutex;

use super::rows::SessionRows;
use super::split::OffloadMode;
use super::status::PerformanceSchema;
use super::{SqlError, abbreviate, datafusion_error};
use crate::catalog::{Entry, EntryKind, TableName, View};
use crate::changes::LoadStatus;
use crate::error::{Error, Result};
use crate::exec::{ClusterTableProvider, RowsTableProvider};
use crate::store::ColumnarTable;

pub const CATALOG_NAME: &str = "lakewave";
pub const ROWID_CATALOG_NAME: &str = "lakewave_rowid";
pub const PERFORMANCE_SCHEMA: &str = "performance_schema";
const INFORMATION_SCHEMA: &str = "information_schema";
/// Views may nest this deep.
const MAX_VIEW_DEPTH: usize = 32;

/// Which engine runs a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The cluster (offloaded to the secondary engine).
    Cluster,
    /// The DB system.
    RowStore,
}

/// What a statement reads a table from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A cluster snapshot: its version and, for a propagated table, the SCN.
    Cluster {
        version: u64,
        scn: Option<i64>,
    },
    RowStore,
    /// An external table's files, read in place.
    Files,
    /// A view, planned with the statement.
    View,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cluster { version, scn } => {
                write!(f, "cluster version {version}")?;
                if let Some(scn) = scn {
                    write!(f, " at SCN {scn}")?;
                }
                Ok(())
            }
            Source::RowStore => write!(f, "row store"),
            Source::Files => write!(f, "its files, in place"),
            Source::View => write!(f, "view"),
        }
    }
}

/// Where a statement runs, why not in the cluster, and what it reads.
#[derive(Debug, Clone)]
pub struct Route {
    pub engine: Engine,
    /// Why the statement is not offloaded (`None` when it is).
    pub reason: Option<String>,
    /// Every table the statement reads, with what it reads it from.
    pub tables: Vec<(TableName, Source)>,
}

impl Route {
    /// EXPLAIN's first row.
    pub fn describe_engine(&self) -> String {
        match (&self.engine, &self.reason) {
            (Engine::Cluster, _) => "cluster (offloaded to the secondary engine)".to_string(),
            (Engine::RowStore, Some(reason)) => format!("row store (not offloaded: {reason})"),
            (Engine::RowStore, None) => "row store".to_string(),
        }
    }

    /// EXPLAIN's second row: each table and what it is read from.
    pub fn describe_tables(&self) -> String {
        if self.tables.is_empty() {
            return "(no tables)".into();
        }
        self.tables
            .iter()
            .map(|(name, source)| format!("{name}: {source}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Why a statement's reads are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A query: offloaded when possible.
    Query,
    /// The reads of a DML statement: always the row store (it reads what it
    /// writes).
    RowStore,
    /// A lookup by primary key the cost threshold keeps in the row store
    /// (planned only for EXPLAIN; running it skips planning).
    KeyLookup,
}

/// What a name of a statement was found to be.
#[derive(Debug, Clone)]
enum Found {
    Entry(Entry),
    /// `lakewave_rowid.db.t`: the row-store table with its row ids.
    RowIds(Arc<crate::catalog::RowTable>),
    /// `performance_schema` and `information_schema` tables.
    Status,
    /// A table function (`generate_series`, ...).
    Function,
}

/// The tables of a statement, views expanded.
struct Collected {
    /// Base tables (not views), in first-seen order.
    tables: Vec<(TableName, Entry)>,
    views: Vec<Arc<View>>,
    row_ids: Vec<Arc<crate::catalog::RowTable>>,
}

impl super::Session {
    /// Resolve the tables `statement` reads and decide where it runs.
    pub(super) async fn resolve(
        &self,
        statement: &Statement,
        text: &str,
        purpose: Purpose,
    ) -> Result<Arc<Resolver>> {
        let database = self.current_database();
        let mut collected = Collected {
            tables: Vec::new(),
            views: Vec::new(),
            row_ids: Vec::new(),
        };
        self.collect(statement, &database, text, &mut collected, &mut Vec::new())?;
        let mode = self.offload_mode();
        let row_tables: Vec<TableName> = collected
            .tables
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Row(_)))
            .map(|(n, _)| n.clone())
            .collect();
        let wants_cluster = collected
            .tables
            .iter()
            .any(|(_, e)| matches!(e, Entry::Row(_) | Entry::External(_)));
        let mut reason = match purpose {
            Purpose::RowStore => Some("DML reads the row store".to_string()),
            Purpose::KeyLookup => Some(super::lookup::reason(self.cost_threshold())),
            Purpose::Query if !wants_cluster => None,
            Purpose::Query => self.offload_blocker(&collected, mode),
        };
        if reason.is_none() && !row_tables.is_empty() {
            // Read-your-writes: everything committed reaches the cluster first.
            let propagator = Arc::clone(&self.services.propagator);
            let names = row_tables.clone();
            let synced = tokio::task::spawn_blocking(move || propagator.sync(&names))
                .await
                .map_err(|e| super::task_failed(text, e))?;
            if let Err(e) = synced {
                reason = Some(format!("change propagation failed: {}", e.chain_message()));
            } else {
                reason = self.offload_blocker(&collected, mode);
            }
        }
        // Take the snapshots the route reads, and check them once more: a
        // table unloaded since the checks is not offloaded.
        let mut snapshots: HashMap<TableName, Arc<ColumnarTable>> = HashMap::new();
        for (name, entry) in &collected.tables {
            let needed = match entry {
                Entry::Cluster(_) => true,
                Entry::Row(_) | Entry::External(_) => reason.is_none(),
                Entry::View(_) => false,
            };
            if !needed {
                continue;
            }
            match self.services.cluster.table(name) {
                Some(snapshot) => {
                    snapshots.insert(name.clone(), snapshot);
                }
                None if matches!(entry, Entry::Cluster(_)) => {
                    return Err(SqlError::Execution {
                        statement: abbreviate(text),
                        message: format!("the rows of {name} are no longer in the cluster"),
                        kind: crate::error::ErrorKind::Operational,
                        code: crate::error::codes::SECONDARY_ENGINE_PLUGIN,
                    }
                    .into());
                }
                None => {
                    reason = Some(format!(
                        "table {name} is not loaded into the cluster (ALTER TABLE {name} SECONDARY_LOAD)"
                    ));
                }
            }
        }
        let engine = match (&reason, purpose) {
            (None, Purpose::Query) => Engine::Cluster,
            _ => Engine::RowStore,
        };
        if let (Some(reason), OffloadMode::Forced, Purpose::Query) = (&reason, mode, purpose) {
            return Err(SqlError::NotOffloaded {
                statement: abbreviate(text),
                reason: reason.clone(),
            }
            .into());
        }
        let resolver = Arc::new(Resolver {
            session: self.resolver_context(),
            engine,
            database,
            cache: Mutex::default(),
            entries: collected
                .tables
                .iter()
                .cloned()
                .chain(
                    collected
                        .views
                        .iter()
                        .map(|v| (v.name.clone(), Entry::View(Arc::clone(v)))),
                )
                .collect(),
            row_ids: collected
                .row_ids
                .iter()
                .map(|t| (t.name.clone(), Arc::clone(t)))
                .collect(),
            snapshots,
            base_state: self.base_state(),
            route: Mutex::new(None),
        });
        let mut tables = Vec::new();
        for (name, entry) in collected.tables.iter() {
            let source = resolver.source_of(name, entry)?;
            tables.push((name.clone(), source));
        }
        for view in &collected.views {
            tables.push((view.name.clone(), Source::View));
        }
        resolver.route.lock().replace(Route {
            engine,
            reason: if purpose == Purpose::RowStore {
                None
            } else {
                reason
            },
            tables,
        });
        Ok(resolver)
    }

    /// Why the tables cannot be read in the cluster now, if they cannot.
    fn offload_blocker(&self, collected: &Collected, mode: OffloadMode) -> Option<String> {
        if mode == OffloadMode::Off {
            return Some("use_secondary_engine is OFF".into());
        }
        let has_row = collected
            .tables
            .iter()
            .any(|(_, e)| matches!(e, Entry::Row(_)));
        if has_row && self.connection().has_uncommitted_writes() {
            return Some("the open transaction has uncommitted changes".into());
        }
        for (name, entry) in &collected.tables {
            match entry {
                Entry::External(def) if !def.loaded => {
                    return Some(format!(
                        "external table {name} is not loaded into the cluster, so it is read in place \
                         (ALTER TABLE {name} SECONDARY_LOAD)"
                    ));
                }
                Entry::Row(table) => match self.services.propagator.table(name) {
                    Some(loaded) if loaded.id == table.id => {
                        if let LoadStatus::Stale { reason, .. } = &loaded.status {
                            return Some(format!("table {name} is stale ({reason})"));
                        }
                    }
                    _ => {
                        return Some(format!(
                            "table {name} is not loaded into the cluster (ALTER TABLE {name} SECONDARY_LOAD)"
                        ));
                    }
                },
                _ => {}
            }
        }
        None
    }

    /// Walk a statement's table references, expanding views.
    fn collect(
        &self,
        statement: &Statement,
        database: &str,
        text: &str,
        out: &mut Collected,
        views: &mut Vec<TableName>,
    ) -> Result<()> {
        let state = self.base_state();
        let references = state
            .resolve_table_references(statement)
            .map_err(|e| datafusion_error(text, e))?;
        for reference in references {
            match self.find(&reference, database, &state, text)? {
                (_, Found::Status | Found::Function) => {}
                (_, Found::RowIds(table)) => {
                    if !out.row_ids.iter().any(|t| t.id == table.id) {
                        out.row_ids.push(table);
                    }
                }
                (name, Found::Entry(Entry::View(view))) => {
                    if views.contains(&name) {
                        return Err(crate::catalog::CatalogError::ViewRecursion(name).into());
                    }
                    if views.len() >= MAX_VIEW_DEPTH {
                        return Err(crate::catalog::CatalogError::ViewRecursion(name).into());
                    }
                    if !out.views.iter().any(|v| v.id == view.id) {
                        out.views.push(Arc::clone(&view));
                    }
                    let inner = parse_view(&view)?;
                    views.push(name);
                    let expanded = self.collect(&inner, &view.database, text, out, views);
                    views.pop();
                    expanded.map_err(|error| match error.code().errno {
                        // A table the view reads is gone: MySQL's 1356.
                        1146 | 1049 => view_error(&view, error),
                        _ => error,
                    })?;
                }
                (name, Found::Entry(entry)) => {
                    if !out.tables.iter().any(|(n, _)| *n == name) {
                        out.tables.push((name, entry));
                    }
                }
            }
        }
        Ok(())
    }

    fn find(
        &self,
        reference: &TableReference,
        database: &str,
        state: &SessionState,
        text: &str,
    ) -> Result<(TableName, Found)> {
        let name = TableName::new(
            reference.schema().unwrap_or(database).to_string(),
            reference.table(),
        );
        match reference.catalog() {
            Some(ROWID_CATALOG_NAME) => {
                let table = self.services.catalog.row_table(&name)?;
                return Ok((name, Found::RowIds(table)));
            }
            Some(CATALOG_NAME) | None => {}
            Some(_) => {
                return Err(SqlError::TableNotFound {
                    statement: abbreviate(text),
                    table: reference.to_string(),
                }
                .into());
            }
        }
        if name.database == PERFORMANCE_SCHEMA || name.database == INFORMATION_SCHEMA {
            return Ok((name, Found::Status));
        }
        if matches!(reference, TableReference::Bare { .. })
            && state.table_functions().contains_key(reference.table())
        {
            return Ok((name, Found::Function));
        }
        match self.services.catalog.resolve(&name) {
            Some(entry) => Ok((name, Found::Entry(entry))),
            None if !self.services.catalog.has_database(&name.database) => {
                Err(SqlError::DatabaseNotFound {
                    statement: abbreviate(text),
                    database: name.database,
                }
                .into())
            }
            None => Err(SqlError::TableNotFound {
                statement: abbreviate(text),
                table: name.to_string(),
            }
            .into()),
        }
    }

    /// Resolve `statement`'s names for `purpose` and plan it: the state it
    /// was planned with (whose names resolve through the resolution) and the
    /// logical plan.
    pub(super) async fn plan(
        &self,
        statement: Statement,
        text: &str,
        purpose: Purpose,
    ) -> Result<(SessionState, datafusion::logical_expr::LogicalPlan)> {
        let resolver = self.resolve(&statement, text, purpose).await?;
        let state = self.planning_state(&resolver);
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| datafusion_error(text, e))?;
        Ok((state, plan))
    }

    /// A planning state whose names resolve through `resolver`, with its
    /// database as the default.
    pub(super) fn planning_state(&self, resolver: &Arc<Resolver>) -> SessionState {
        resolver.state_for(&resolver.database)
    }
}

fn parse_view(view: &View) -> Result<Statement> {
    let mut statements = DFParser::parse_sql_with_dialect(&view.sql, &GenericDialect {})
        .map_err(|e| datafusion_error(&view.sql, e))?;
    statements.pop_front().ok_or_else(|| {
        SqlError::Plan {
            statement: abbreviate(&view.sql),
            message: format!("view {} has no query", view.name),
        }
        .into()
    })
}

/// What a resolver needs of its session.
#[derive(Clone)]
pub(super) struct ResolverContext {
    pub services: Arc<super::Services>,
    pub rows: Arc<SessionRows>,
}

/// A statement's names, resolved: every table provider planning asks for
/// comes from here, and each is made once.
pub struct Resolver {
    session: ResolverContext,
    engine: Engine,
    database: String,
    cache: Mutex<HashMap<TableName, Arc<dyn TableProvider>>>,
    entries: BTreeMap<TableName, Entry>,
    row_ids: BTreeMap<TableName, Arc<crate::catalog::RowTable>>,
    snapshots: HashMap<TableName, Arc<ColumnarTable>>,
    base_state: SessionState,
    route: Mutex<Option<Route>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resolver({:?})", self.engine)
    }
}

impl Resolver {
    pub fn route(&self) -> Route {
        self.route.lock().clone().expect("routed when resolved")
    }

    fn source_of(&self, name: &TableName, entry: &Entry) -> Result<Source> {
        Ok(match (entry, self.snapshots.get(name)) {
            (Entry::View(_), _) => Source::View,
            (Entry::Cluster(_), Some(snapshot)) => Source::Cluster {
                version: snapshot.version,
                scn: None,
            },
            (Entry::Row(_), Some(snapshot)) if self.engine == Engine::Cluster => Source::Cluster {
                version: snapshot.version,
                scn: self.session.services.propagator.table(name).map(|t| t.scn),
            },
            (Entry::External(_), Some(snapshot)) if self.engine == Engine::Cluster => {
                Source::Cluster {
                    version: snapshot.version,
                    scn: None,
                }
            }
            (Entry::Row(_), _) => Source::RowStore,
            (Entry::External(_), _) => Source::Files,
            (Entry::Cluster(_), None) => Source::RowStore,
        })
    }

    /// A planning state over this resolver, with `database` as the default
    /// for unqualified names.
    fn state_for(self: &Arc<Self>, database: &str) -> SessionState {
        let mut config = self.base_state.config().clone();
        config.options_mut().catalog.default_schema = database.to_string();
        SessionStateBuilder::new_from_existing(self.base_state.clone())
            .with_config(config)
            .with_catalog_list(Arc::new(StatementCatalogs {
                resolver: Arc::clone(self),
            }))
            .build()
    }

    /// The provider a name stands for in this statement.
    async fn provider(
        self: &Arc<Self>,
        name: &TableName,
    ) -> std::result::Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(provider) = self.cache.lock().get(name) {
            return Ok(Some(Arc::clone(provider)));
        }
        // Names the statement did not mention (information_schema lists
        // every table) resolve on the same route.
        let entry = match self.entries.get(name) {
            Some(entry) => entry.clone(),
            None => match self.session.services.catalog.resolve(name) {
                Some(entry) => entry,
                None => return Ok(None),
            },
        };
        let provider = self
            .make_provider(name, &entry)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let Some(provider) = provider else {
            return Ok(None);
        };
        Ok(Some(Arc::clone(
            self.cache.lock().entry(name.clone()).or_insert(provider),
        )))
    }

    async fn make_provider(
        self: &Arc<Self>,
        name: &TableName,
        entry: &Entry,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let services = &self.session.services;
        let batch_rows = services.config().batch_rows;
        let snapshot = self.snapshots.get(name).cloned().or_else(|| match entry {
            // Only tables the statement named were routed; others read
            // the cluster only when they have no other copy.
            Entry::Cluster(_) => services.cluster.table(name),
            _ => None,
        });
        Ok(Some(match entry {
            Entry::Cluster(_) => match snapshot {
                Some(table) => Arc::new(ClusterTableProvider::new(table, batch_rows)),
                None => return Ok(None),
            },
            Entry::Row(table) => match snapshot {
                Some(snapshot) if self.engine == Engine::Cluster => {
                    Arc::new(ClusterTableProvider::new(snapshot, batch_rows))
                }
                _ => Arc::new(RowsTableProvider::new(
                    Arc::clone(&self.session.rows) as Arc<dyn crate::exec::RowScanner>,
                    Arc::clone(table),
                    false,
                    batch_rows,
                )),
            },
            Entry::External(def) => match snapshot {
                Some(snapshot) if self.engine == Engine::Cluster => {
                    Arc::new(ClusterTableProvider::new(snapshot, batch_rows))
                }
                _ => {
                    let opened = super::external::opened(services, def, &self.base_state).await?;
                    opened.provider
                }
            },
            Entry::View(view) => {
                let state = self.state_for(&view.database);
                let statement = parse_view(view)?;
                let plan = state
                    .statement_to_plan(statement)
                    .await
                    .map_err(|e| view_planning_error(view, e))?;
                let plan =
                    rename_view_columns(plan, view).map_err(|e| view_planning_error(view, e))?;
                Arc::new(ViewTable::new(plan, Some(view.sql.clone())))
            }
        }))
    }

    fn row_id_provider(&self, name: &TableName) -> Option<Arc<dyn TableProvider>> {
        let table = self.row_ids.get(name)?;
        Some(Arc::new(RowsTableProvider::new(
            Arc::clone(&self.session.rows) as Arc<dyn crate::exec::RowScanner>,
            Arc::clone(table),
            true,
            self.session.services.config().batch_rows,
        )))
    }
}

/// A view whose query no longer plans (a table it reads was dropped, a
/// column renamed): MySQL's "view references invalid tables".
fn view_planning_error(view: &View, error: DataFusionError) -> Error {
    view_error(view, datafusion_error(&view.sql, error))
}

fn view_error(view: &View, inner: Error) -> Error {
    SqlError::Execution {
        statement: abbreviate(&view.sql),
        message: format!(
            "view {} references invalid table(s) or column(s): {}",
            view.name,
            inner.chain_message()
        ),
        kind: inner.kind(),
        code: crate::error::codes::VIEW_INVALID,
    }
    .into()
}

/// Give a view's plan the column names its definition lists.
fn rename_view_columns(
    plan: datafusion::logical_expr::LogicalPlan,
    view: &View,
) -> std::result::Result<datafusion::logical_expr::LogicalPlan, DataFusionError> {
    if view.columns.is_empty() {
        return Ok(plan);
    }
    let fields = plan.schema().columns();
    if fields.len() != view.columns.len() {
        return Err(DataFusionError::Plan(format!(
            "view {} names {} columns but its query gives {}",
            view.name,
            view.columns.len(),
            fields.len()
        )));
    }
    let exprs: Vec<datafusion::logical_expr::Expr> = fields
        .into_iter()
        .zip(&view.columns)
        .map(|(column, name)| datafusion::logical_expr::Expr::Column(column).alias(name))
        .collect();
    datafusion::logical_expr::LogicalPlanBuilder::from(plan)
        .project(exprs)?
        .build()
}

/// The catalogs a statement plans against.
#[derive(Debug)]
struct StatementCatalogs {
    resolver: Arc<Resolver>,
}

impl CatalogProviderList for StatementCatalogs {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        vec![CATALOG_NAME.to_string()]
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        match name {
            CATALOG_NAME => Some(Arc::new(StatementCatalog {
                resolver: Arc::clone(&self.resolver),
                row_ids: false,
            })),
            ROWID_CATALOG_NAME => Some(Arc::new(StatementCatalog {
                resolver: Arc::clone(&self.resolver),
                row_ids: true,
            })),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct StatementCatalog {
    resolver: Arc<Resolver>,
    row_ids: bool,
}

impl CatalogProvider for StatementCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.resolver.session.services.catalog.database_names();
        if !self.row_ids {
            names.push(PERFORMANCE_SCHEMA.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let services = &self.resolver.session.services;
        if name == PERFORMANCE_SCHEMA && !self.row_ids {
            return Some(Arc::new(PerformanceSchema::new(Arc::clone(services))));
        }
        services
            .catalog
            .has_database(name)
            .then(|| -> Arc<dyn SchemaProvider> {
                Arc::new(StatementSchema {
                    resolver: Arc::clone(&self.resolver),
                    database: name.to_string(),
                    row_ids: self.row_ids,
                })
            })
    }
}

#[derive(Debug)]
struct StatementSchema {
    resolver: Arc<Resolver>,
    database: String,
    row_ids: bool,
}

#[async_trait]
impl SchemaProvider for StatementSchema {
    fn table_names(&self) -> Vec<String> {
        if self.row_ids {
            return Vec::new();
        }
        self.resolver.session.services.catalog.names(&self.database)
    }

    async fn table(
        &self,
        name: &str,
    ) -> std::result::Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let name = TableName::new(self.database.clone(), name);
        if self.row_ids {
            return Ok(self.resolver.row_id_provider(&name));
        }
        self.resolver.provider(&name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        let name = TableName::new(self.database.clone(), name);
        if self.row_ids {
            return self.resolver.row_ids.contains_key(&name);
        }
        self.resolver
            .session
            .services
            .catalog
            .resolve(&name)
            .is_some()
    }
}

/// The kind of a resolved name, for messages.
pub fn describe(entry: &Entry) -> &'static str {
    match entry.kind() {
        EntryKind::RowTable => "a table",
        EntryKind::ClusterTable => {
            "a table loaded straight into the cluster (a read-only SNAPSHOT table)"
        }
        EntryKind::ExternalTable => "an external table (its files are read-only)",
        EntryKind::View => "a view",
    }
}
