//! A session: one client's connection to an instance. It holds its own
//! settings (`use_secondary_engine`, current database, `autocommit`, user and
//! session variables), its own row-store connection and transaction, and a
//! DataFusion context for its `datafusion.*` settings and variable
//! providers. Statements of one session run one at a time; sessions run
//! side by side.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{ObjectType, Statement as SqlStatement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::variable::VarType;
use parking_lot::Mutex;

use super::process::SessionSlot;
use super::resolve::{CATALOG_NAME, Purpose, ResolverContext};
use super::result::QueryResult;
use super::rows::SessionRows;
use super::split::{self, OffloadMode};
use super::variables::{SystemVariables, UserValue, UserVariables};
use super::{Services, SqlError, abbreviate, datafusion_error};
use crate::cancel::Cancel;
use crate::catalog::DEFAULT_DATABASE;
use crate::error::{Error, Result};
use crate::rowstore::DbConnection;

/// A session's settings, shared with its variable providers.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub offload: OffloadMode,
    pub database: String,
    pub autocommit: bool,
    /// `@name` variables.
    pub user: HashMap<String, UserValue>,
    /// Session values of system variables set with `SET` (lower-case names).
    pub system: BTreeMap<String, String>,
    /// `LAST_INSERT_ID()`: the first AUTO_INCREMENT value the session's
    /// latest assigning INSERT produced (0 before any).
    pub last_insert_id: u64,
}

impl Settings {
    /// A new session's settings.
    fn initial() -> Settings {
        Settings {
            offload: OffloadMode::On,
            database: DEFAULT_DATABASE.to_string(),
            autocommit: true,
            user: HashMap::new(),
            system: BTreeMap::new(),
            last_insert_id: 0,
        }
    }
}

pub struct Session {
    pub(super) services: Arc<Services>,
    pub(super) slot: Arc<SessionSlot>,
    conn: Arc<DbConnection>,
    ctx: SessionContext,
    pub(super) settings: Arc<Mutex<Settings>>,
    /// One statement at a time per session.
    gate: tokio::sync::Mutex<()>,
    /// Statements this session parsed, by text: a prepared statement runs
    /// the same text at every execution, and parsing it is a sixth of a
    /// point query's time.
    parsed: Mutex<HashMap<String, Statement>>,
    /// The session's connection to the attached server, if one is attached.
    server: Option<crate::source::ServerConnection>,
    /// A group member's applier: runs what the group's log says, so its
    /// statements are not routed through the group again.
    applier: bool,
}

/// Statements a session keeps parsed, and the longest text it keeps (a bulk
/// INSERT's text is not worth holding).
const PARSED_STATEMENTS: usize = 64;
const PARSED_TEXT_BYTES: usize = 4096;

impl Session {
    /// Open a session for `user` connecting from `host`.
    pub fn open(services: Arc<Services>, user: &str, host: &str) -> Result<Session> {
        let notify = Arc::clone(&services.propagator);
        let conn = Arc::new(DbConnection::open(
            Arc::clone(&services.db),
            Box::new(move |bytes| notify.note_commit(bytes)),
        )?);
        let slot = services
            .sessions
            .register(user, host, DEFAULT_DATABASE, &conn);
        let config = services.config();
        let session_config = SessionConfig::new()
            .with_target_partitions(config.shape.threads)
            .with_batch_size(config.batch_rows)
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_DATABASE)
            // In front of a server, `2.5` is a DECIMAL as MySQL reads it.
            .set_bool(
                "datafusion.sql_parser.parse_float_as_decimal",
                services.source.is_some(),
            );
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(Arc::clone(&services.runtime_env))
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(crate::exec::YieldAfterJoins))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let mut initial = Settings::initial();
        let server = services.source.as_ref().map(|source| {
            let config = Arc::new(source.config().clone());
            if let Some(database) = &config.database {
                if !services.catalog.has_database(database) {
                    let _ = services.catalog.create_database(database);
                }
                initial.database = database.clone();
            }
            crate::source::ServerConnection::new(config)
        });
        let settings = Arc::new(Mutex::new(initial));
        ctx.register_variable(
            VarType::System,
            Arc::new(SystemVariables::new(
                Arc::clone(&services),
                Arc::clone(&settings),
                slot.id,
            )),
        );
        ctx.register_variable(
            VarType::UserDefined,
            Arc::new(UserVariables::new(Arc::clone(&settings))),
        );
        super::variables::register_functions(&ctx, Arc::clone(&slot), Arc::clone(&settings));
        Ok(Session {
            services,
            slot,
            conn,
            ctx,
            settings,
            gate: tokio::sync::Mutex::new(()),
            parsed: Mutex::new(HashMap::new()),
            server,
            applier: false,
        })
    }

    /// A group member's applier session: it runs the statements of the
    /// group's log, and `before_commit` records the log position inside
    /// each transaction it commits.
    pub fn open_applier(
        services: Arc<Services>,
        before_commit: crate::rowstore::BeforeCommit,
    ) -> Result<Session> {
        let mut session = Session::open(services, "lakewave.group", "localhost")?;
        session.applier = true;
        session.conn.set_before_commit(Some(before_commit));
        Ok(session)
    }

    /// Run the next statements in `database` (the one a replicated
    /// statement was written in); the default one when it no longer exists,
    /// as the statement then fails the same way on every member.
    pub fn set_current_database(&self, database: &str) {
        if self.services.catalog.has_database(database) {
            self.settings.lock().database = database.to_string();
            self.slot.set_database(database);
        }
    }

    /// The attached server and this session's connection to it, when the
    /// DB system is a MariaDB server.
    pub(super) fn upstream(
        &self,
    ) -> Option<(
        &crate::source::ServerConnection,
        &Arc<crate::source::Source>,
    )> {
        Some((self.server.as_ref()?, self.services.source.as_ref()?))
    }

    /// This session's id (`CONNECTION_ID()`, `SHOW PROCESSLIST`).
    pub fn id(&self) -> u64 {
        self.slot.id
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// The row store connection of this session.
    pub fn connection(&self) -> &Arc<DbConnection> {
        &self.conn
    }

    pub fn offload_mode(&self) -> OffloadMode {
        self.settings.lock().offload
    }

    pub fn set_offload_mode(&self, mode: OffloadMode) {
        self.settings.lock().offload = mode;
    }

    /// The database unqualified names resolve in.
    pub fn current_database(&self) -> String {
        self.settings.lock().database.clone()
    }

    pub fn in_transaction(&self) -> bool {
        self.conn.in_transaction()
    }

    pub fn is_killed(&self) -> bool {
        self.slot.is_killed()
    }

    /// The DataFusion state this session's settings give (before names are
    /// resolved for a statement).
    pub(super) fn base_state(&self) -> SessionState {
        self.ctx.state()
    }

    pub(super) fn resolver_context(&self) -> ResolverContext {
        ResolverContext {
            services: Arc::clone(&self.services),
            rows: Arc::new(SessionRows {
                conn: Arc::clone(&self.conn),
            }),
        }
    }

    /// Run every statement of `text` in order and return the last one's result.
    /// Queries are planned (so errors in them surface here) but run only when
    /// the result is read. `params` bind `$1`, `$2`, ... placeholders of the
    /// last statement. `cancel` (and `KILL QUERY` on this session) stops the
    /// statement wherever it is.
    pub async fn sql(
        &self,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        if self.slot.is_killed() {
            return Err(Error::SessionKilled {
                session: self.slot.id,
            });
        }
        let _one_at_a_time = self.gate.lock().await;
        let running = self.slot.begin(text)?;
        let _forward = cancel.forward_to(running.cancel());
        let cancel = running.cancel().clone();
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
            if let Some((server, source)) = self.upstream() {
                let outcome = self
                    .run_with_source(server, source, piece, params, &cancel)
                    .await;
                last = Some(outcome?);
                continue;
            }
            if !self.applier
                && let Some(group) = self.services.group.get().cloned()
            {
                match self.group_route(piece) {
                    super::replicated::GroupRoute::Replicate => {
                        let outcome = self
                            .replicate_statement(group.as_ref(), piece, !params.is_empty())
                            .await;
                        last = Some(outcome?);
                        continue;
                    }
                    super::replicated::GroupRoute::Write => group.check_writable(piece).await?,
                    super::replicated::GroupRoute::Read => group.before_read(piece).await?,
                    super::replicated::GroupRoute::Local => {}
                }
            }
            // `?` markers bind in order, as the endpoints number them.
            let numbered =
                (!params.is_empty() && piece.contains('?')).then(|| super::number_markers(piece).0);
            let piece = numbered.as_deref().unwrap_or(piece);
            let outcome = self.run_piece(piece, params, &cancel).await;
            let outcome = match outcome {
                Err(error) if cancel.is_cancelled() && !error.is_interrupted() => {
                    // An interrupted SQLite call or a dropped task fails with
                    // its own error: what happened is the interruption.
                    Err(Error::Interrupted {
                        what: abbreviate(piece),
                    })
                }
                other => other,
            };
            last = Some(outcome?);
        }
        Ok(last.expect("at least one statement"))
    }

    async fn run_piece(
        &self,
        piece: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        if let Some(custom) = split::parse_custom(piece) {
            return self.run_custom(custom, piece, cancel).await;
        }
        if let Some(set) = super::set::parse_set(piece)? {
            return self.run_set(set, piece, cancel).await;
        }
        if super::external::is_external_ddl(piece) {
            let def = self.parse_external(piece)?;
            return self.create_external(def, piece).await;
        }
        let Some(statement) = self.parse(piece)? else {
            return Err(SqlError::Syntax {
                statement: abbreviate(piece),
                message: "no statement to run".into(),
            }
            .into());
        };
        self.run_statement(statement, piece, params, cancel).await
    }

    /// The first statement of `piece`, parsed once per text and session.
    pub(super) fn parse(&self, piece: &str) -> Result<Option<Statement>> {
        if let Some(statement) = self.parsed.lock().get(piece) {
            return Ok(Some(statement.clone()));
        }
        let statement = parse_first(piece)?;
        if let Some(statement) = &statement
            && piece.len() <= PARSED_TEXT_BYTES
        {
            let mut parsed = self.parsed.lock();
            if parsed.len() >= PARSED_STATEMENTS {
                parsed.clear();
            }
            parsed.insert(piece.to_string(), statement.clone());
        }
        Ok(statement)
    }

    pub(super) async fn run_custom(
        &self,
        custom: split::Custom,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        match custom {
            split::Custom::SecondaryLoad(table) => self.secondary_load(&table, text, cancel).await,
            split::Custom::SecondaryUnload(table) => self.secondary_unload(&table, text).await,
            split::Custom::SecondaryEngine(_, engine) => {
                let engine = engine.to_ascii_uppercase();
                if engine == "RAPID" || engine == "NULL" {
                    Ok(QueryResult::status(
                        text,
                        format!("secondary engine set to {engine}"),
                    ))
                } else {
                    Err(SqlError::NotSupported {
                        statement: abbreviate(text),
                        what: format!("secondary engine '{engine}' (only RAPID)"),
                    }
                    .into())
                }
            }
            split::Custom::ShowProcessList => Ok(self.show_processlist(text)),
            split::Custom::Kill { id, query_only } => self.kill(id, query_only, text),
        }
    }

    pub(super) async fn run_statement(
        &self,
        statement: Statement,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        if let Statement::Statement(inner) = &statement {
            if let Some(shown) = self.show(inner.as_ref(), text).await {
                return shown;
            }
            match inner.as_ref() {
                SqlStatement::CreateTable(create) if create.query.is_none() => {
                    return self.create_row_table(create, text).await;
                }
                SqlStatement::CreateView(create) => {
                    return self.create_view(create, text).await;
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
                    return self.truncate(truncate, text).await;
                }
                SqlStatement::AlterTable(alter) => {
                    return self
                        .alter(&alter.name, &alter.operations, text, cancel)
                        .await;
                }
                SqlStatement::StartTransaction { .. } => {
                    self.blocking(text, |conn| conn.begin()).await?;
                    return Ok(QueryResult::status(text, "transaction started".into()));
                }
                SqlStatement::Commit { .. } => {
                    self.blocking(text, |conn| conn.commit()).await?;
                    return Ok(QueryResult::status(text, "committed".into()));
                }
                SqlStatement::Rollback {
                    savepoint: None, ..
                } => {
                    self.blocking(text, |conn| conn.rollback()).await?;
                    return Ok(QueryResult::status(text, "rolled back".into()));
                }
                SqlStatement::Drop {
                    object_type,
                    names,
                    if_exists,
                    ..
                } => {
                    return match object_type {
                        ObjectType::Table | ObjectType::View => {
                            self.drop_names(*object_type, names, *if_exists, text).await
                        }
                        ObjectType::Schema | ObjectType::Database => {
                            self.drop_database(names, *if_exists, text).await
                        }
                        other => Err(SqlError::NotSupported {
                            statement: abbreviate(text),
                            what: format!("DROP {other}"),
                        }
                        .into()),
                    };
                }
                SqlStatement::CreateDatabase {
                    db_name,
                    if_not_exists,
                    ..
                } => {
                    let name = super::ddl::last_ident(db_name);
                    return self.create_database(&name, *if_not_exists, text).await;
                }
                SqlStatement::CreateSchema {
                    schema_name: datafusion::sql::sqlparser::ast::SchemaName::Simple(db_name),
                    if_not_exists,
                    ..
                } => {
                    let name = super::ddl::last_ident(db_name);
                    return self.create_database(&name, *if_not_exists, text).await;
                }
                SqlStatement::Use(used) => return self.use_database(used, text),
                SqlStatement::Call(function) => return self.call(function, text, cancel).await,
                SqlStatement::Query(query) if self.keeps_lookups_in_row_store() => {
                    if let Some(lookup) = self.key_lookup(query, params) {
                        return self.run_key_lookup(lookup, text).await;
                    }
                }
                _ => {}
            }
        }
        let is_ctas = matches!(
            &statement,
            Statement::Statement(inner)
                if matches!(inner.as_ref(), SqlStatement::CreateTable(c) if c.query.is_some())
        );
        // A CREATE TABLE ... AS reads its query's tables; its own name is
        // what it writes.
        let reads = match &statement {
            Statement::Statement(inner) => match inner.as_ref() {
                SqlStatement::CreateTable(create) => match &create.query {
                    Some(query) => {
                        Statement::Statement(Box::new(SqlStatement::Query(query.clone())))
                    }
                    None => statement.clone(),
                },
                _ => statement.clone(),
            },
            _ => statement.clone(),
        };
        let purpose = if self.explains_key_lookup(&statement, params) {
            Purpose::KeyLookup
        } else {
            Purpose::Query
        };
        let resolver = self.resolve(&reads, text, purpose).await?;
        let state = self.planning_state(&resolver);
        let is_explain = matches!(&statement, Statement::Explain(_));
        let plan = cancel
            .run(state.statement_to_plan(statement))
            .await
            .ok_or_else(|| Error::Interrupted {
                what: abbreviate(text),
            })?
            .map_err(|e| datafusion_error(text, e))?;
        if is_explain {
            return self.explain(plan, &resolver, state, text, cancel).await;
        }
        match plan {
            LogicalPlan::Ddl(datafusion::logical_expr::DdlStatement::CreateMemoryTable(create))
                if is_ctas =>
            {
                self.create_table_as(create, state, text, cancel).await
            }
            LogicalPlan::Ddl(other) => Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: other.name().to_string(),
            }
            .into()),
            LogicalPlan::Dml(dml) => Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: format!("{} on '{}'", dml.op, dml.table_name),
            }
            .into()),
            LogicalPlan::Copy(_) => Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: "COPY".into(),
            }
            .into()),
            LogicalPlan::Statement(_) => {
                // DataFusion's own statements (`SET datafusion.*` is taken
                // earlier): run on this session's context.
                let frame = self
                    .ctx
                    .execute_logical_plan(plan)
                    .await
                    .map_err(|e| datafusion_error(text, e))?;
                let batches = frame
                    .collect()
                    .await
                    .map_err(|e| datafusion_error(text, e))?;
                let schema = batches
                    .first()
                    .map(|b| b.schema())
                    .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
                Ok(QueryResult::ready(text, schema, batches))
            }
            query => {
                let mut frame = datafusion::dataframe::DataFrame::new(state, query);
                if !params.is_empty() {
                    let params = typed_params(frame.logical_plan(), params, text)?;
                    frame = frame
                        .with_param_values(datafusion::common::ParamValues::from(params))
                        .map_err(|e| datafusion_error(text, e))?;
                }
                Ok(QueryResult::lazy(text, frame, Arc::clone(&self.slot)))
            }
        }
    }

    /// Set a DataFusion option (`SET datafusion.x = y`) on this session.
    pub(super) async fn set_datafusion_option(&self, text: &str) -> Result<()> {
        self.ctx
            .sql(text)
            .await
            .map_err(|e| datafusion_error(text, e))?;
        Ok(())
    }

    /// Run SQLite work of this session on a blocking thread, off the async
    /// workers.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        text: &str,
        work: impl FnOnce(&Arc<DbConnection>) -> std::result::Result<T, crate::rowstore::RowStoreError>
        + Send
        + 'static,
    ) -> Result<T> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || work(&conn))
            .await
            .map_err(|e| super::task_failed(text, e))?
            .map_err(Error::from)
    }

    /// Run work on the propagator on a blocking thread: it waits for a
    /// running propagation cycle or load.
    pub(super) async fn with_propagator<T: Send + 'static>(
        &self,
        text: &str,
        work: impl FnOnce(&crate::changes::Propagator) -> T + Send + 'static,
    ) -> Result<T> {
        let propagator = Arc::clone(&self.services.propagator);
        tokio::task::spawn_blocking(move || work(&propagator))
            .await
            .map_err(|e| super::task_failed(text, e))
    }

    /// The columns a statement returns, planned without running it (what a
    /// protocol's prepare reports): `None` for statements that return no rows
    /// or whose columns are known only once they run. Errors a client must
    /// see before it executes (syntax, unknown tables and columns) are
    /// returned; anything else waits for the execution to report it.
    pub async fn describe(&self, text: &str) -> Result<Option<SchemaRef>> {
        Ok(self.describe_with_parameters(text).await?.0)
    }

    /// [`Session::describe`], and the types of the query's `$n` parameters
    /// as planning infers them (`$1` compared with an INT column is an INT;
    /// `None` where nothing says, and for statements that are not queries).
    pub async fn describe_with_parameters(
        &self,
        text: &str,
    ) -> Result<(Option<SchemaRef>, HashMap<String, Option<DataType>>)> {
        let pieces = split::split_statements(text);
        let [piece] = pieces.as_slice() else {
            return Err(SqlError::Syntax {
                statement: abbreviate(text),
                message: format!(
                    "a prepared statement is one statement, not {}",
                    pieces.len()
                ),
            }
            .into());
        };
        let nothing = || Ok((None, HashMap::new()));
        if split::parse_custom(piece).is_some() || super::set::parse_set(piece)?.is_some() {
            return nothing();
        }
        let Some(statement) = self.parse(piece)? else {
            return nothing();
        };
        let is_query = matches!(
            &statement,
            Statement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Query(_))
        );
        if !is_query {
            return nothing();
        }
        match self.plan(statement, piece, Purpose::Query).await {
            Ok((_, plan)) => Ok((
                Some(super::output::logical_schema(plan.schema().as_arrow())),
                plan.get_parameter_types().unwrap_or_default(),
            )),
            Err(error) => match error.kind() {
                crate::error::ErrorKind::Syntax
                | crate::error::ErrorKind::TableNotFound
                | crate::error::ErrorKind::ColumnNotFound => Err(error),
                _ => nothing(),
            },
        }
    }

    /// Back to a new session's state, keeping its id (MySQL's
    /// `COM_RESET_CONNECTION`): the open transaction is rolled back, and
    /// variables, the current database and `use_secondary_engine` return to
    /// their defaults.
    pub async fn reset(&self) -> Result<()> {
        let _one_at_a_time = self.gate.lock().await;
        self.blocking("reset of the session", |conn| conn.rollback())
            .await?;
        if let Some(server) = &self.server {
            server.reset().await;
        }
        *self.settings.lock() = Settings::initial();
        self.slot.set_database(DEFAULT_DATABASE);
        Ok(())
    }

    /// Name who the session is, once a client has logged in.
    pub fn set_user(&self, user: &str, host: &str) {
        self.slot.set_user(user, host);
    }

    /// Wait until the session is killed (`KILL id`, the instance closing).
    pub async fn killed(&self) {
        self.slot.killed().await
    }

    /// Whether statements commit on their own (`SET autocommit`).
    pub fn autocommit(&self) -> bool {
        self.settings.lock().autocommit
    }

    /// [`Session::close`] from async code: the rollback runs off the
    /// runtime's workers.
    pub async fn end(&self) {
        let _ = self
            .blocking("the end of the session", |conn| conn.rollback())
            .await;
        if let Some(server) = &self.server {
            server.close().await;
        }
        self.services.sessions.unregister(self.slot.id);
    }

    /// End the session: roll back its transaction and leave the registry.
    pub fn close(&self) {
        let _ = self.conn.rollback();
        self.services.sessions.unregister(self.slot.id);
    }
}

/// Parameters cast to the types the plan infers for its placeholders (a
/// client sends `'42'` or a 32-bit integer for a BIGINT key), so a query
/// plans the same whatever type a driver chose for a value.
fn typed_params(
    plan: &LogicalPlan,
    params: &[ScalarValue],
    text: &str,
) -> Result<Vec<ScalarValue>> {
    let expected = plan
        .get_parameter_types()
        .map_err(|e| datafusion_error(text, e))?;
    params
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let placeholder = format!("${}", index + 1);
            match expected.get(&placeholder) {
                Some(Some(wanted)) if value.data_type() != *wanted => {
                    if value.is_null() {
                        return ScalarValue::try_from(wanted)
                            .map_err(|e| datafusion_error(text, e));
                    }
                    value.cast_to(wanted).map_err(|e| {
                        SqlError::Execution {
                            statement: abbreviate(text),
                            message: format!(
                                "parameter {} ({value}) cannot be used as {wanted}: {e}",
                                index + 1
                            ),
                            kind: crate::error::ErrorKind::Data,
                            code: crate::error::codes::WRONG_ARGUMENTS,
                        }
                        .into()
                    })
                }
                _ => Ok(value.clone()),
            }
        })
        .collect()
}

impl Drop for Session {
    fn drop(&mut self) {
        self.services.sessions.unregister(self.slot.id);
    }
}

/// `parse_first` for unit tests of the layers that take parsed statements.
#[cfg(test)]
pub(super) fn parse_for_tests(sql: &str) -> Statement {
    parse_first(sql).expect("parses").expect("one statement")
}

/// The first statement of one piece of SQL, parsed as every path parses it
/// (MySQL's `USER()`-style functions written as SQL's niladic ones).
fn parse_first(piece: &str) -> Result<Option<Statement>> {
    let parsed = split::bare_user_functions(piece);
    let mut statements = DFParser::parse_sql_with_dialect(&parsed, &GenericDialect {})
        .map_err(|e| datafusion_error(piece, e))?;
    Ok(statements.pop_front())
}
