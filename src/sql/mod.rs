//! The SQL front end. A [`Session`] is one connection's view: it parses a batch
//! of statements, answers the ones lakewave owns itself (creating a table from a
//! query loads it into the cluster; `DROP TABLE` unloads it; `CREATE DATABASE`),
//! and hands queries, `EXPLAIN`, `SHOW` and views to DataFusion planning over
//! the cluster's tables. Errors are classified here, once, into [`SqlError`],
//! and always name the statement.
//!
//! Results leave in logical types: a dictionary-encoded column (an internal
//! encoding of the store) is decoded on the way out, so users see the types they
//! loaded.

mod dml;
mod external;
mod heatwave;
mod output;
mod schema;
mod split;
mod status;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, ParamValues, ScalarValue, SchemaError, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;
use thiserror::Error;

use crate::cancel::Cancel;
use crate::catalog::{CatalogError, DEFAULT_DATABASE, TableName};
use crate::cluster::{Cluster, LoadRequest};
use crate::error::{Error, ErrorKind, Result};
use crate::store::LoadProgress;

pub use output::logical_schema;
pub use schema::CATALOG_NAME;
pub use split::OffloadMode;
pub use status::{TableRow, table_rows};

#[derive(Debug, Error)]
pub enum SqlError {
    #[error("syntax error in `{statement}`: {message}")]
    Syntax { statement: String, message: String },
    #[error("table '{table}' does not exist (in `{statement}`)")]
    TableNotFound { statement: String, table: String },
    #[error("column '{column}' does not exist (in `{statement}`){}", if valid.is_empty() { String::new() } else { format!("; valid columns: {valid}") })]
    ColumnNotFound {
        statement: String,
        column: String,
        valid: String,
    },
    #[error("cannot plan `{statement}`: {message}")]
    Plan { statement: String, message: String },
    #[error("`{statement}` failed: {message}")]
    Execution {
        statement: String,
        message: String,
        kind: ErrorKind,
    },
    #[error("not supported: {what} (in `{statement}`)")]
    NotSupported { statement: String, what: String },
    #[error("use_secondary_engine is FORCED and `{statement}` cannot be offloaded: {reason}")]
    NotOffloaded { statement: String, reason: String },
    #[error("invalid value '{value}' for use_secondary_engine (expected ON, OFF or FORCED)")]
    BadOffloadMode { value: String },
}

impl SqlError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SqlError::Syntax { .. } => ErrorKind::Syntax,
            SqlError::TableNotFound { .. } => ErrorKind::TableNotFound,
            SqlError::ColumnNotFound { .. } => ErrorKind::ColumnNotFound,
            SqlError::Plan { .. } => ErrorKind::Programming,
            SqlError::Execution { kind, .. } => *kind,
            SqlError::NotSupported { .. } => ErrorKind::NotSupported,
            SqlError::NotOffloaded { .. } => ErrorKind::NotSupported,
            SqlError::BadOffloadMode { .. } => ErrorKind::Programming,
        }
    }

    /// Classify a DataFusion error raised while handling `statement`.
    pub fn from_datafusion(statement: &str, error: DataFusionError) -> SqlError {
        let statement = abbreviate(statement);
        // DataFusion's own message already carries its context chain.
        let message = error.to_string();
        match error.find_root() {
            DataFusionError::SQL(parse, _) => SqlError::Syntax {
                statement,
                message: parse.to_string(),
            },
            DataFusionError::SchemaError(schema_error, _) => match schema_error.as_ref() {
                SchemaError::FieldNotFound {
                    field,
                    valid_fields,
                } => SqlError::ColumnNotFound {
                    statement,
                    column: field.name().to_string(),
                    valid: valid_fields
                        .iter()
                        .map(|c| c.name().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                },
                _ => SqlError::Plan { statement, message },
            },
            DataFusionError::Plan(text) => match missing_table(text) {
                Some(table) => SqlError::TableNotFound { statement, table },
                None => SqlError::Plan { statement, message },
            },
            DataFusionError::NotImplemented(what) => SqlError::NotSupported {
                statement,
                what: what.clone(),
            },
            DataFusionError::ResourcesExhausted(_) => SqlError::Execution {
                statement,
                message,
                kind: ErrorKind::OutOfMemory,
            },
            DataFusionError::ArrowError(_, _) => SqlError::Execution {
                statement,
                message,
                kind: ErrorKind::Data,
            },
            DataFusionError::Internal(_) => SqlError::Execution {
                statement,
                message,
                kind: ErrorKind::Internal,
            },
            _ => SqlError::Execution {
                statement,
                message,
                kind: ErrorKind::Operational,
            },
        }
    }
}

/// DataFusion reports a missing table only as text: `table 'a.b.c' not found`.
/// Statements that are pure reads are checked up front, so this only serves
/// the reads inside other statements (`CREATE TABLE ... AS SELECT`).
fn missing_table(message: &str) -> Option<String> {
    let rest = message.strip_prefix("table '")?;
    let name = rest.strip_suffix("' not found")?;
    let name = name
        .strip_prefix(&format!("{CATALOG_NAME}."))
        .unwrap_or(name);
    Some(name.to_string())
}

/// A blocking task of `statement` that panicked or was cancelled.
fn task_failed(statement: &str, error: tokio::task::JoinError) -> Error {
    SqlError::Execution {
        statement: abbreviate(statement),
        message: error.to_string(),
        kind: ErrorKind::Internal,
    }
    .into()
}

/// Keep statements in messages readable.
fn abbreviate(statement: &str) -> String {
    let flat: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 200 {
        let cut: String = flat.chars().take(197).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// The outcome of the last statement of a `sql()` call.
#[derive(Clone)]
pub struct QueryResult {
    statement: String,
    body: Body,
}

#[derive(Clone)]
enum Body {
    /// A query, planned and not yet run: every stream runs it afresh.
    Lazy(DataFrame),
    /// A statement that has already run and produced these rows.
    Ready(SchemaRef, Vec<RecordBatch>),
}

impl QueryResult {
    /// A result whose rows are already known.
    pub fn ready(statement: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> QueryResult {
        QueryResult {
            statement: statement.to_string(),
            body: Body::Ready(schema, batches),
        }
    }

    pub fn statement(&self) -> &str {
        &self.statement
    }

    /// The schema of the rows, in logical types.
    pub fn schema(&self) -> SchemaRef {
        match &self.body {
            Body::Lazy(frame) => logical_schema(frame.schema().as_arrow()),
            Body::Ready(schema, _) => Arc::clone(schema),
        }
    }

    /// Start running the query; batches arrive as they are computed. Must be
    /// called inside the instance's tokio runtime.
    pub async fn stream(&self) -> Result<SendableRecordBatchStream> {
        match &self.body {
            Body::Lazy(frame) => {
                let stream = frame
                    .clone()
                    .execute_stream()
                    .await
                    .map_err(|e| SqlError::from_datafusion(&self.statement, e))?;
                Ok(output::decode_stream(stream))
            }
            Body::Ready(schema, batches) => {
                Ok(output::ready_stream(Arc::clone(schema), batches.clone()))
            }
        }
    }

    /// Run the query and gather every batch.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        let mut stream = self.stream().await?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch.map_err(|e| SqlError::from_datafusion(&self.statement, e))?);
        }
        Ok(batches)
    }

    /// The same query with at most `n` rows.
    pub fn limit(&self, n: usize) -> Result<QueryResult> {
        let body = match &self.body {
            Body::Lazy(frame) => Body::Lazy(
                frame
                    .clone()
                    .limit(0, Some(n))
                    .map_err(|e| SqlError::from_datafusion(&self.statement, e))?,
            ),
            Body::Ready(schema, batches) => {
                let mut kept = Vec::new();
                let mut left = n;
                for batch in batches {
                    if left == 0 {
                        break;
                    }
                    let take = left.min(batch.num_rows());
                    kept.push(batch.slice(0, take));
                    left -= take;
                }
                Body::Ready(Arc::clone(schema), kept)
            }
        };
        Ok(QueryResult {
            statement: self.statement.clone(),
            body,
        })
    }

    /// Map a DataFusion error raised while reading this result.
    pub fn error(&self, error: DataFusionError) -> Error {
        SqlError::from_datafusion(&self.statement, error).into()
    }
}

/// One connection's SQL state: its SQLite connection (and transaction), its
/// offload mode, and a DataFusion context over the shared row store and cluster.
pub struct Session {
    ctx: SessionContext,
    cluster: Arc<Cluster>,
    sources: schema::Sources,
    mode: parking_lot::Mutex<OffloadMode>,
    /// MySQL user variables (`SET @x = ...`), held as JSON values.
    variables: parking_lot::Mutex<std::collections::HashMap<String, serde_json::Value>>,
}

/// Where a SELECT runs, and why not in the cluster.
#[derive(Debug, Clone)]
pub struct Route {
    pub offload: bool,
    pub reason: Option<String>,
}

impl Session {
    pub fn new(
        cluster: Arc<Cluster>,
        db: Arc<crate::rowstore::Database>,
        propagator: Arc<crate::changes::Propagator>,
        externals: Arc<crate::lakehouse::external::ExternalCatalog>,
    ) -> Result<Session> {
        let notify = Arc::clone(&propagator);
        let conn = Arc::new(crate::rowstore::DbConnection::open(
            db,
            Box::new(move |bytes| notify.note_commit(bytes)),
        )?);
        let sources = schema::Sources {
            cluster: Arc::clone(&cluster),
            conn,
            propagator,
            offload: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            externals,
        };
        let config = cluster.config();
        let mut disk = DiskManagerBuilder::default();
        if let Some(dir) = &config.spill_dir {
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.into()]));
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(sources.externals.object_stores())
            .with_memory_pool(Arc::new(FairSpillPool::new(config.query_memory as usize)))
            .with_disk_manager_builder(disk)
            // No cached file listings: external tables must see files added
            // in place at the next query, and a refresh must see them at once.
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .build_arc()
            .map_err(|e| SqlError::from_datafusion("connect", e))?;
        let session_config = SessionConfig::new()
            .with_target_partitions(config.shape.threads)
            .with_batch_size(config.batch_rows)
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_DATABASE);
        let ctx = SessionContext::new_with_config_rt(session_config, runtime);
        ctx.register_catalog(
            CATALOG_NAME,
            Arc::new(schema::ClusterCatalog::new(sources.clone())),
        );
        ctx.register_catalog(
            schema::ROWID_CATALOG_NAME,
            Arc::new(schema::RowIdCatalog {
                sources: sources.clone(),
            }),
        );
        Ok(Session {
            ctx,
            cluster,
            sources,
            mode: parking_lot::Mutex::new(OffloadMode::On),
            variables: parking_lot::Mutex::default(),
        })
    }

    /// `rpd_tables` joined with `rpd_table_id`: every table in the cluster.
    pub fn loaded_tables(&self) -> Vec<TableRow> {
        status::table_rows(&self.sources)
    }

    pub fn offload_mode(&self) -> OffloadMode {
        *self.mode.lock()
    }

    pub fn set_offload_mode(&self, mode: OffloadMode) {
        *self.mode.lock() = mode;
    }

    /// Whether loaded row-store tables resolve to the cluster for the next plan.
    fn set_offload(&self, offload: bool) {
        self.sources
            .offload
            .store(offload, std::sync::atomic::Ordering::Release);
    }

    /// The row store connection of this session.
    pub fn connection(&self) -> &Arc<crate::rowstore::DbConnection> {
        &self.sources.conn
    }

    /// Decide where a read runs: in the cluster when every row-store table it
    /// reads is loaded and available (after read-your-writes propagation),
    /// else on the row store; FORCED turns "else" into an error.
    pub async fn route(&self, statement: &Statement, text: &str) -> Result<Route> {
        let state = self.ctx.state();
        let references = state
            .resolve_table_references(statement)
            .map_err(|e| SqlError::from_datafusion(text, e))?;
        let db = self.sources.conn.database();
        let mut tables: Vec<TableName> = Vec::new();
        let mut externals: Vec<TableName> = Vec::new();
        for reference in &references {
            if reference.catalog().is_some_and(|c| c != CATALOG_NAME) {
                continue;
            }
            let name = self.table_name(reference);
            if db.table(&name).is_some() && !tables.contains(&name) {
                tables.push(name);
            } else if self.sources.externals.get(&name).is_some() && !externals.contains(&name) {
                externals.push(name);
            }
        }
        let mode = self.offload_mode();
        if tables.is_empty() && externals.is_empty() {
            return Ok(Route {
                offload: true,
                reason: None,
            });
        }
        let check = |this: &Self| -> Option<String> {
            if mode == OffloadMode::Off {
                return Some("use_secondary_engine is OFF".into());
            }
            if !tables.is_empty() && this.sources.conn.has_uncommitted_writes() {
                return Some("the open transaction has uncommitted changes".into());
            }
            for name in &externals {
                if !this.sources.externals.is_loaded(name) {
                    return Some(format!(
                        "external table {name} is not loaded into the cluster, so it is read in place \
                         (ALTER TABLE {name} SECONDARY_LOAD)"
                    ));
                }
            }
            for name in &tables {
                match this.sources.propagator.table(name) {
                    None => {
                        return Some(format!(
                            "table {name} is not loaded into the cluster (ALTER TABLE {name} SECONDARY_LOAD)"
                        ));
                    }
                    Some(loaded) => {
                        if let crate::changes::LoadStatus::Stale { reason, .. } = &loaded.status {
                            return Some(format!("table {name} is stale ({reason})"));
                        }
                    }
                }
            }
            None
        };
        let mut reason = check(self);
        if reason.is_none() {
            // Read-your-writes: everything committed reaches the cluster first.
            let propagator = Arc::clone(&self.sources.propagator);
            let names = tables.clone();
            tokio::task::spawn_blocking(move || propagator.sync(&names))
                .await
                .map_err(|e| task_failed(text, e))??;
            reason = check(self);
        }
        match reason {
            None => Ok(Route {
                offload: true,
                reason: None,
            }),
            Some(reason) if mode == OffloadMode::Forced => Err(SqlError::NotOffloaded {
                statement: abbreviate(text),
                reason,
            }
            .into()),
            Some(reason) => Ok(Route {
                offload: false,
                reason: Some(reason),
            }),
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The database unqualified names resolve in.
    pub fn current_database(&self) -> String {
        self.ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone()
    }

    /// Run every statement of `text` in order and return the last one's result.
    /// Queries are planned (so errors in them surface here) but run only when
    /// the result is read. `params` bind `$1`, `$2`, ... placeholders.
    pub async fn sql(
        &self,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let pieces = split::split_statements(text);
        if pieces.is_empty() {
            return Err(SqlError::Syntax {
                statement: abbreviate(text),
                message: "no statement to run".into(),
            }
            .into());
        }
        let count = pieces.len();
        let mut last = None;
        for (index, piece) in pieces.into_iter().enumerate() {
            let params = if index + 1 == count { params } else { &[] };
            let compact: String = piece
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_lowercase();
            if compact == "select @@hostname" {
                let schema = Arc::new(arrow::datatypes::Schema::new(vec![
                    arrow::datatypes::Field::new(
                        "@@hostname",
                        arrow::datatypes::DataType::Utf8,
                        false,
                    ),
                ]));
                let name = self.cluster.config().instance_name.clone();
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(arrow::array::StringArray::from(vec![name]))],
                )
                .expect("one column");
                last = Some(QueryResult::ready(piece, schema, vec![batch]));
                continue;
            }
            if let Some((name, expr)) = heatwave::parse_user_variable(piece) {
                last = Some(self.set_user_variable(&name, &expr, piece)?);
                continue;
            }
            if let Some(args) = heatwave::parse_heatwave_load(piece) {
                last = Some(self.heatwave_load(&args, piece, cancel).await?);
                continue;
            }
            if external::is_external_ddl(piece) {
                let ddl = self.parse_external(piece)?;
                last = Some(self.create_external(ddl, piece).await?);
                continue;
            }
            if let Some(custom) = split::parse_custom(piece) {
                last = Some(self.run_custom(custom, piece, cancel).await?);
                continue;
            }
            let mut statements = DFParser::parse_sql_with_dialect(piece, &GenericDialect {})
                .map_err(|e| SqlError::from_datafusion(piece, e))?;
            let Some(statement) = statements.pop_front() else {
                continue;
            };
            last = Some(self.run_statement(statement, piece, params, cancel).await?);
        }
        last.ok_or_else(|| {
            SqlError::Syntax {
                statement: abbreviate(text),
                message: "no statement to run".into(),
            }
            .into()
        })
    }

    async fn run_custom(
        &self,
        custom: split::Custom,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        match custom {
            split::Custom::SecondaryLoad(table) => self.secondary_load(&table, text, cancel).await,
            split::Custom::SecondaryUnload(table) => self.secondary_unload(&table, text),
            split::Custom::SecondaryEngine(_, engine) => {
                let engine = engine.to_ascii_uppercase();
                if engine == "RAPID" || engine == "NULL" {
                    Ok(self.done(text, format!("secondary engine set to {engine}")))
                } else {
                    Err(SqlError::NotSupported {
                        statement: abbreviate(text),
                        what: format!("secondary engine '{engine}' (only RAPID)"),
                    }
                    .into())
                }
            }
            split::Custom::SetOffload(Ok(mode)) => {
                self.set_offload_mode(mode);
                Ok(self.done(text, format!("use_secondary_engine = {}", mode.name())))
            }
            split::Custom::SetOffload(Err(value)) => Err(SqlError::BadOffloadMode { value }.into()),
        }
    }

    async fn run_statement(
        &self,
        statement: Statement,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        if let Statement::Statement(inner) = &statement {
            match inner.as_ref() {
                SqlStatement::CreateTable(create) if create.query.is_none() => {
                    return self.create_row_table(create, text);
                }
                SqlStatement::Insert(insert) => {
                    return self.insert(insert, text, params, cancel).await;
                }
                SqlStatement::Update(update) => {
                    return self.update(update, text, params, cancel).await;
                }
                SqlStatement::Delete(delete) => {
                    return self.delete(delete, text, params, cancel).await;
                }
                SqlStatement::Truncate(truncate) => {
                    let [target] = truncate.table_names.as_slice() else {
                        return Err(SqlError::NotSupported {
                            statement: abbreviate(text),
                            what: "TRUNCATE of several tables".into(),
                        }
                        .into());
                    };
                    return self.truncate(&target.name, text);
                }
                SqlStatement::AlterTable(alter) => {
                    return self
                        .alter(&alter.name, &alter.operations, text, cancel)
                        .await;
                }
                SqlStatement::StartTransaction { .. } => {
                    self.sources.conn.begin()?;
                    return Ok(self.done(text, "transaction started".into()));
                }
                SqlStatement::Commit { .. } => {
                    self.sources.conn.commit()?;
                    return Ok(self.done(text, "committed".into()));
                }
                SqlStatement::Rollback {
                    savepoint: None, ..
                } => {
                    self.sources.conn.rollback()?;
                    return Ok(self.done(text, "rolled back".into()));
                }
                SqlStatement::Drop {
                    object_type: datafusion::sql::sqlparser::ast::ObjectType::Table,
                    names,
                    if_exists,
                    ..
                } if names.len() == 1 => {
                    let name = self.object_name(&names[0], text)?;
                    if self.sources.externals.get(&name).is_some() {
                        return self.drop_external(&name, text);
                    }
                    if self.sources.conn.database().table(&name).is_some() {
                        return self.drop_row_table(&name, text);
                    }
                    if self.cluster.table(&name).is_none() && *if_exists {
                        return Ok(self.done(text, format!("table {name} did not exist")));
                    }
                }
                SqlStatement::CreateDatabase {
                    db_name,
                    if_not_exists,
                    ..
                } => {
                    return self.create_database(&dml::last_ident(db_name), *if_not_exists, text);
                }
                SqlStatement::CreateSchema {
                    schema_name: datafusion::sql::sqlparser::ast::SchemaName::Simple(db_name),
                    if_not_exists,
                    ..
                } => {
                    return self.create_database(&dml::last_ident(db_name), *if_not_exists, text);
                }
                _ => {}
            }
        }
        let state = self.ctx.state();
        let df_error = |e| -> Error { SqlError::from_datafusion(text, e).into() };
        self.check_tables_exist(&statement, text, &state)?;
        let is_read = matches!(&statement, Statement::Explain(_))
            || matches!(&statement, Statement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_)));
        let route = if is_read {
            self.route(&statement, text).await?
        } else {
            Route {
                offload: true,
                reason: None,
            }
        };
        self.set_offload(route.offload);
        let is_explain = matches!(&statement, Statement::Explain(_));
        let plan = state.statement_to_plan(statement).await.map_err(df_error)?;
        if is_explain {
            return self.explain(plan, &route, text).await;
        }
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                self.create_table_as(create, text, cancel).await
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(drop)) => {
                let name = self.table_name(&drop.name);
                match self.cluster.unload(&name) {
                    Ok(()) => Ok(self.done(text, format!("dropped table {name}"))),
                    Err(Error::Catalog(e)) if matches!(*e, CatalogError::TableNotFound(_)) => {
                        if drop.if_exists {
                            Ok(self.done(text, format!("table {name} did not exist")))
                        } else {
                            Err(SqlError::TableNotFound {
                                statement: abbreviate(text),
                                table: name.to_string(),
                            }
                            .into())
                        }
                    }
                    Err(other) => Err(other),
                }
            }
            LogicalPlan::Ddl(DdlStatement::CreateCatalogSchema(create)) => {
                let name = create.schema_name.rsplit('.').next().unwrap_or_default().to_string();
                self.create_database(&name, create.if_not_exists, text)
            }
            LogicalPlan::Ddl(DdlStatement::CreateCatalog(create)) => {
                self.create_database(&create.catalog_name, create.if_not_exists, text)
            }
            LogicalPlan::Ddl(DdlStatement::CreateView(_) | DdlStatement::DropView(_))
            | LogicalPlan::Statement(_)
            | LogicalPlan::DescribeTable(_) => {
                let frame = self.ctx.execute_logical_plan(plan).await.map_err(df_error)?;
                let batches = frame.collect().await.map_err(df_error)?;
                let schema = batches
                    .first()
                    .map(|b| b.schema())
                    .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
                Ok(QueryResult {
                    statement: text.to_string(),
                    body: Body::Ready(schema, batches),
                })
            }
            LogicalPlan::Ddl(other) => Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: format!("{} (the cluster holds loaded tables and views)", other.name()),
            }
            .into()),
            LogicalPlan::Dml(dml) => Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: format!(
                    "{} on '{}': tables in the cluster are read-only; reload them with CREATE OR REPLACE TABLE ... AS or Connection.load()",
                    dml.op, dml.table_name
                ),
            }
            .into()),
            LogicalPlan::Copy(_) => Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: "COPY".into(),
            }
            .into()),
            query => {
                let mut frame = self.ctx.execute_logical_plan(query).await.map_err(df_error)?;
                if !params.is_empty() {
                    frame = frame
                        .with_param_values(ParamValues::from(params.to_vec()))
                        .map_err(df_error)?;
                }
                Ok(QueryResult {
                    statement: text.to_string(),
                    body: Body::Lazy(frame),
                })
            }
        }
    }

    /// Name the first table a statement reads that does not exist, before
    /// DataFusion's planner reports it less precisely.
    fn check_tables_exist(
        &self,
        statement: &Statement,
        text: &str,
        state: &datafusion::execution::SessionState,
    ) -> Result<()> {
        // Only pure reads: the references of CREATE TABLE, INSERT and friends
        // include the table being written, which need not exist.
        let is_read = match statement {
            Statement::Statement(inner) => matches!(inner.as_ref(), SqlStatement::Query(_)),
            Statement::Explain(_) => true,
            _ => false,
        };
        if !is_read {
            return Ok(());
        }
        let references = state
            .resolve_table_references(statement)
            .map_err(|e| SqlError::from_datafusion(text, e))?;
        for reference in references {
            let is_table_function = matches!(reference, TableReference::Bare { .. })
                && state.table_functions().contains_key(reference.table());
            if reference.schema() == Some("information_schema") || is_table_function {
                continue;
            }
            if let Some(catalog) = reference.catalog()
                && catalog != CATALOG_NAME
            {
                return Err(SqlError::TableNotFound {
                    statement: abbreviate(text),
                    table: reference.to_string(),
                }
                .into());
            }
            let name = self.table_name(&reference);
            let exists = self.cluster.table(&name).is_some()
                || state
                    .catalog_list()
                    .catalog(CATALOG_NAME)
                    .and_then(|c| c.schema(&name.database))
                    .is_some_and(|s| s.table_exist(&name.table));
            if !exists {
                return Err(SqlError::TableNotFound {
                    statement: abbreviate(text),
                    table: name.to_string(),
                }
                .into());
            }
        }
        Ok(())
    }

    fn table_name(&self, reference: &TableReference) -> TableName {
        let database = reference
            .schema()
            .map(str::to_string)
            .unwrap_or_else(|| self.current_database());
        TableName::new(database, reference.table())
    }

    fn create_database(&self, name: &str, if_not_exists: bool, text: &str) -> Result<QueryResult> {
        self.sources.conn.create_database(name, if_not_exists)?;
        self.cluster.catalog().create_database(name);
        Ok(self.done(text, format!("database {name} is ready")))
    }

    /// EXPLAIN with a first row saying which engine runs the statement.
    async fn explain(&self, plan: LogicalPlan, route: &Route, text: &str) -> Result<QueryResult> {
        let df_error = |e| -> Error { SqlError::from_datafusion(text, e).into() };
        let frame = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(df_error)?;
        let batches = frame.collect().await.map_err(df_error)?;
        let Some(first) = batches.first() else {
            return Ok(QueryResult::ready(
                text,
                Arc::new(arrow::datatypes::Schema::empty()),
                batches,
            ));
        };
        let schema = first.schema();
        let engine = match &route.reason {
            None => "cluster (offloaded to the secondary engine)".to_string(),
            Some(reason) => format!("row store (not offloaded: {reason})"),
        };
        let mut columns: Vec<arrow::array::ArrayRef> = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let value = if i == 0 { "engine" } else { engine.as_str() };
            let array: arrow::array::ArrayRef =
                Arc::new(arrow::array::StringArray::from(vec![value]));
            columns.push(
                arrow::compute::cast(&array, field.data_type()).map_err(|e| {
                    SqlError::Execution {
                        statement: abbreviate(text),
                        message: e.to_string(),
                        kind: ErrorKind::Internal,
                    }
                })?,
            );
        }
        let engine_row = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| {
            SqlError::Execution {
                statement: abbreviate(text),
                message: e.to_string(),
                kind: ErrorKind::Internal,
            }
        })?;
        let mut all = vec![engine_row];
        all.extend(batches);
        Ok(QueryResult::ready(text, schema, all))
    }

    /// `CREATE [OR REPLACE] TABLE t AS <query>`: run the query and load its rows.
    async fn create_table_as(
        &self,
        create: datafusion::logical_expr::CreateMemoryTable,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let name = self.table_name(&create.name);
        if create.if_not_exists && self.cluster.table(&name).is_some() {
            return Ok(self.done(text, format!("table {name} already exists")));
        }
        let input = create.input.as_ref().clone();
        let column_list_only =
            matches!(&input, LogicalPlan::EmptyRelation(e) if !e.produce_one_row);
        if column_list_only {
            return Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: format!(
                    "CREATE TABLE {name} with only a column list: the cluster holds loaded data, \
                     so create tables with CREATE TABLE ... AS SELECT ... or Connection.load()"
                ),
            }
            .into());
        }
        let frame = self
            .ctx
            .execute_logical_plan(input)
            .await
            .map_err(|e| SqlError::from_datafusion(text, e))?;
        let schema = logical_schema(frame.schema().as_arrow());
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
        let query = QueryResult {
            statement: text.to_string(),
            body: Body::Lazy(frame),
        };
        // Gather the query's rows on the runtime, then load them on the rayon
        // pool, off the async workers.
        let batches = cancel
            .run(query.collect())
            .await
            .ok_or_else(|| Error::Interrupted {
                what: abbreviate(text),
            })??;
        let request = LoadRequest {
            name: name.clone(),
            primary_key,
            placement_keys: Vec::new(),
            replace: create.or_replace,
            source_name: format!("the query of `{}`", abbreviate(text)),
        };
        let cluster = Arc::clone(&self.cluster);
        let cancel = cancel.clone();
        let status = tokio::task::spawn_blocking(move || {
            let source = Box::new(batches.into_iter().map(Ok));
            cluster.load(&request, schema, source, &cancel, &mut |_: LoadProgress| {})
        })
        .await
        .map_err(|e| task_failed(text, e))??;
        Ok(self.done(text, format!("loaded {} rows into {name}", status.rows)))
    }

    fn done(&self, text: &str, message: String) -> QueryResult {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("status", arrow::datatypes::DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(arrow::array::StringArray::from(vec![message]))],
        )
        .expect("one string column");
        QueryResult {
            statement: text.to_string(),
            body: Body::Ready(schema, vec![batch]),
        }
    }
}
