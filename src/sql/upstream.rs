//! Routing when a MariaDB server is the DB system (`source=`): the session's
//! statements run on the server over the session's own connection, except
//! lakewave's own (SECONDARY_LOAD / UNLOAD, `SET use_secondary_engine`,
//! `SHOW PROCESSLIST`, `KILL`, `rpd_*` tables) and queries every table of
//! which is loaded and fresh: those run in the cluster after the
//! read-your-writes barrier (the cluster has applied the server's binlog up
//! to the position the session read). `use_secondary_engine = OFF` runs
//! every query on the server; FORCED fails one that cannot be offloaded,
//! with the reason.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use mysql_async::Value;

use super::resolve::PERFORMANCE_SCHEMA;
use super::result::QueryResult;
use super::split::{self, OffloadMode};
use super::{Session, SqlError, abbreviate};
use crate::cancel::Cancel;
use crate::catalog::{Entry, TableName};
use crate::error::Result;
use crate::source::{ServerConnection, ServerOutcome, Source, SourceStatus};

/// Where a query runs when a server is attached.
enum Decision {
    Cluster,
    Server(String),
}

/// Databases that belong to the server and are never loaded.
const SERVER_DATABASES: &[&str] = &["information_schema", "mysql", "sys", "performance_schema"];

impl Session {
    /// Run one statement of a session attached to a server.
    pub(super) async fn run_with_source(
        &self,
        server: &ServerConnection,
        source: &Arc<Source>,
        piece: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        if let Some(custom) = split::parse_custom(piece) {
            return self.run_custom(custom, piece, cancel).await;
        }
        if let Ok(Some(items)) = super::set::parse_set(piece)
            && items.iter().all(is_own_setting)
        {
            return self.run_set(items, piece, cancel).await;
        }
        if super::external::is_external_ddl(piece) {
            let def = self.parse_external(piece)?;
            return self.create_external(def, piece).await;
        }
        let mut statement = match self.parse(piece) {
            Ok(Some(statement)) => statement,
            // MariaDB's own syntax: the server parses it.
            _ => return self.forward(server, piece, params, cancel).await,
        };
        let query = match &statement {
            Statement::Statement(inner) => matches!(inner.as_ref(), SqlStatement::Query(_)),
            Statement::Explain(explain) => matches!(
                explain.statement.as_ref(),
                Statement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Query(_))
            ),
            _ => false,
        };
        if let Statement::Statement(inner) = &statement
            && let SqlStatement::Use(_) = inner.as_ref()
        {
            let result = self.forward(server, piece, params, cancel).await?;
            if let Some(database) = server.database() {
                if !self.services.catalog.has_database(&database) {
                    let _ = self.services.catalog.create_database(&database);
                }
                self.settings.lock().database = database.clone();
                self.slot.set_database(&database);
            }
            return Ok(result);
        }
        if !query {
            return self.forward(server, piece, params, cancel).await;
        }
        self.as_the_server_reads_it(&mut statement);
        match self
            .source_decision(server, source, &statement, piece)
            .await?
        {
            Decision::Cluster => {
                let numbered = (!params.is_empty() && piece.contains('?'))
                    .then(|| super::number_markers(piece).0);
                let text = numbered.as_deref().unwrap_or(piece);
                let statement = match &numbered {
                    Some(text) => match self.parse(text)? {
                        Some(mut reparsed) => {
                            self.as_the_server_reads_it(&mut reparsed);
                            reparsed
                        }
                        None => statement,
                    },
                    None => statement,
                };
                self.run_statement(statement, text, params, cancel).await
            }
            Decision::Server(reason) => {
                if self.offload_mode() == OffloadMode::Forced {
                    return Err(SqlError::NotOffloaded {
                        statement: abbreviate(piece),
                        reason,
                    }
                    .into());
                }
                if matches!(statement, Statement::Explain(_)) {
                    return self
                        .explain_on_server(server, source, piece, &reason, cancel)
                        .await;
                }
                self.forward(server, piece, params, cancel).await
            }
        }
    }

    /// A query read as the server reads it: table names in their case as
    /// written, column names in any case ([`super::names`]), and MySQL's
    /// division and AVG ([`super::arithmetic`]).
    fn as_the_server_reads_it(&self, statement: &mut Statement) {
        let catalog = &self.services.catalog;
        let columns = |name: &TableName| -> Option<Vec<String>> {
            let schema = match catalog.resolve(name)? {
                Entry::Cluster(table) => Arc::clone(&table.schema),
                Entry::Row(table) => table.schema(),
                Entry::External(def) => def.declared_schema()?,
                Entry::View(_) => return None,
            };
            Some(schema.fields().iter().map(|f| f.name().clone()).collect())
        };
        super::names::apply_mysql_rules(statement, &self.current_database(), columns);
        super::arithmetic::apply_mysql_division(statement);
    }

    /// Run a statement on the server as the session.
    async fn forward(
        &self,
        server: &ServerConnection,
        text: &str,
        params: &[ScalarValue],
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let values = params.iter().map(server_value).collect();
        match server.run(text, values, cancel).await? {
            ServerOutcome::Rows { schema, batches } => {
                Ok(QueryResult::ready(text, schema, batches))
            }
            ServerOutcome::Done {
                affected,
                last_insert_id,
                ..
            } => {
                let assigned = self.remember_insert_id(last_insert_id);
                Ok(QueryResult::affected(text, affected).with_insert_id(assigned))
            }
        }
    }

    /// Where a query runs: the cluster when every table it reads is a
    /// loaded, fresh source table (or lakewave's own cluster table) and the
    /// cluster has caught up with the server; the server otherwise.
    async fn source_decision(
        &self,
        server: &ServerConnection,
        source: &Arc<Source>,
        statement: &Statement,
        text: &str,
    ) -> Result<Decision> {
        let state = self.base_state();
        let references = state
            .resolve_table_references(statement)
            .map_err(|e| super::datafusion_error(text, e))?;
        if references.is_empty() {
            return Ok(Decision::Server("the query reads no table".into()));
        }
        let database = self.current_database();
        let mut own_status_only = true;
        let mut reads_source = false;
        let mut blocker = None;
        for reference in &references {
            let schema = reference.schema().unwrap_or(&database);
            let name = TableName::new(schema, reference.table());
            if schema.eq_ignore_ascii_case(PERFORMANCE_SCHEMA) && name.table.starts_with("rpd_") {
                continue;
            }
            own_status_only = false;
            if SERVER_DATABASES
                .iter()
                .any(|d| schema.eq_ignore_ascii_case(d))
            {
                blocker.get_or_insert_with(|| format!("{name} is a table of the server"));
                continue;
            }
            match source.table(&name) {
                Some(table) => {
                    reads_source = true;
                    match table.status {
                        SourceStatus::Available => {}
                        SourceStatus::Loading => {
                            blocker.get_or_insert_with(|| format!("table {name} is loading"));
                        }
                        SourceStatus::Stale { reason } => {
                            blocker
                                .get_or_insert_with(|| format!("table {name} is stale ({reason})"));
                        }
                    }
                }
                None => match self.services.catalog.resolve(&name) {
                    Some(Entry::Cluster(_)) => {}
                    Some(Entry::External(def)) if def.loaded => {}
                    _ => {
                        blocker.get_or_insert_with(|| {
                            format!(
                                "table {name} is not loaded into the cluster (ALTER TABLE {name} SECONDARY_LOAD)"
                            )
                        });
                    }
                },
            }
        }
        if own_status_only {
            return Ok(Decision::Cluster);
        }
        if self.offload_mode() == OffloadMode::Off {
            return Ok(Decision::Server("use_secondary_engine is OFF".into()));
        }
        if let Some(reason) = blocker {
            return Ok(Decision::Server(reason));
        }
        if reads_source && self.services.config().propagation.read_your_writes {
            let (in_transaction, end) = server.barrier().await?;
            if in_transaction {
                return Ok(Decision::Server(
                    "the session has a transaction open on the server".into(),
                ));
            }
            if !source.wait_applied(&end).await {
                let applied = source
                    .applied()
                    .map_or_else(|| "nothing".to_string(), |p| p.to_string());
                let failing = source
                    .tail_error()
                    .map(|e| format!("; the binlog reader is failing: {e}"))
                    .unwrap_or_default();
                return Ok(Decision::Server(format!(
                    "the cluster has not applied the server's binlog up to {end} within {:?} \
                     (it is at {applied}{failing})",
                    source.config().barrier_timeout
                )));
            }
        }
        Ok(Decision::Cluster)
    }

    /// EXPLAIN of a query the server runs: lakewave's reason first, then the
    /// server's own plan.
    async fn explain_on_server(
        &self,
        server: &ServerConnection,
        source: &Arc<Source>,
        text: &str,
        reason: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ]));
        let mut labels = vec!["engine".to_string()];
        let mut plans = vec![format!(
            "DB system {} (not offloaded: {reason})",
            source.server()
        )];
        if let ServerOutcome::Rows { batches, .. } = server.run(text, Vec::new(), cancel).await? {
            for batch in batches {
                let formatted = arrow::util::pretty::pretty_format_batches(&[batch])
                    .map_err(|e| super::internal_error(text, e))?;
                labels.push("server plan".into());
                plans.push(formatted.to_string());
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(labels)),
            Arc::new(StringArray::from(plans)),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
            .map_err(|e| super::internal_error(text, e))?;
        Ok(QueryResult::ready(text, schema, vec![batch]))
    }
}

/// `SET` items lakewave answers itself when a server is attached.
fn is_own_setting(item: &super::set::SetItem) -> bool {
    match item {
        super::set::SetItem::DataFusion => true,
        super::set::SetItem::System { name, .. } => matches!(
            name.to_ascii_lowercase().as_str(),
            "use_secondary_engine" | "secondary_engine_cost_threshold"
        ),
        super::set::SetItem::User { .. } => false,
    }
}

/// Rows per INSERT that `insert()` sends to the server (fewer for wide
/// tables: a statement holds at most 65,535 parameters).
const ROWS_PER_INSERT: usize = 1_000;

impl Session {
    /// `insert()` in front of a server: the rows go to the server as INSERTs
    /// with parameters, of up to [`ROWS_PER_INSERT`] rows each, inside one
    /// transaction (the session's own if it has one open on the server), so
    /// a failure leaves nothing half-written. Columns match by name.
    pub(super) async fn insert_upstream(
        &self,
        server: &ServerConnection,
        name: &TableName,
        schema: arrow::datatypes::SchemaRef,
        batches: Vec<RecordBatch>,
        mode: crate::rowstore::InsertMode,
    ) -> Result<u64> {
        use crate::rowstore::InsertMode;
        let verb = match mode {
            InsertMode::Insert => "INSERT",
            InsertMode::Replace => "REPLACE",
            InsertMode::Ignore => "INSERT IGNORE",
        };
        let quote = |name: &str| format!("`{}`", name.replace('`', "``"));
        let width = schema.fields().len();
        if width == 0 {
            return Err(SqlError::NotSupported {
                statement: format!("insert into {name}"),
                what: "an insert of no columns".into(),
            }
            .into());
        }
        let columns: Vec<String> = schema.fields().iter().map(|f| quote(f.name())).collect();
        let head = format!(
            "{verb} INTO {}.{} ({}) VALUES ",
            quote(&name.database),
            quote(&name.table),
            columns.join(", ")
        );
        let row_marks = format!("({})", vec!["?"; width].join(", "));
        let per_insert = ROWS_PER_INSERT.min(65_535 / width).max(1);
        let cancel = Cancel::new();
        let open = match server
            .run("SELECT @@in_transaction", Vec::new(), &cancel)
            .await?
        {
            ServerOutcome::Rows { batches, .. } => batches.first().is_some_and(|b| {
                b.num_rows() > 0
                    && arrow::util::display::array_value_to_string(b.column(0), 0)
                        .is_ok_and(|v| v != "0")
            }),
            ServerOutcome::Done { .. } => false,
        };
        if !open {
            server.run("START TRANSACTION", Vec::new(), &cancel).await?;
        }
        let mut written = 0u64;
        let mut sent = async {
            for batch in &batches {
                for start in (0..batch.num_rows()).step_by(per_insert) {
                    let rows = per_insert.min(batch.num_rows() - start);
                    let mut values = Vec::with_capacity(rows * width);
                    for row in start..start + rows {
                        for column in batch.columns() {
                            let value = ScalarValue::try_from_array(column, row)
                                .map_err(|e| super::datafusion_error(&head, e))?;
                            values.push(server_value(&value));
                        }
                    }
                    let text = format!("{head}{}", vec![row_marks.as_str(); rows].join(", "));
                    if let ServerOutcome::Done { affected, .. } =
                        server.run(&text, values, &cancel).await?
                    {
                        written += affected;
                    }
                }
            }
            Ok::<(), crate::error::Error>(())
        }
        .await;
        if !open {
            let end = if sent.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = server.run(end, Vec::new(), &cancel).await;
            if sent.is_ok() {
                sent = ended.map(|_| ());
            }
        }
        sent.map(|()| written)
    }
}

/// A parameter of a prepared statement as the server takes it.
fn server_value(value: &ScalarValue) -> Value {
    if value.is_null() {
        return Value::NULL;
    }
    match value {
        ScalarValue::Boolean(Some(v)) => Value::Int(i64::from(*v)),
        ScalarValue::Int8(Some(v)) => Value::Int(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Value::Int(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Value::Int(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Value::Int(*v),
        ScalarValue::UInt8(Some(v)) => Value::UInt(u64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Value::UInt(u64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Value::UInt(u64::from(*v)),
        ScalarValue::UInt64(Some(v)) => Value::UInt(*v),
        ScalarValue::Float32(Some(v)) => Value::Float(*v),
        ScalarValue::Float64(Some(v)) => Value::Double(*v),
        ScalarValue::Binary(Some(v)) | ScalarValue::LargeBinary(Some(v)) => Value::Bytes(v.clone()),
        other => Value::Bytes(other.to_string().into_bytes()),
    }
}
