//! Connections to the source server: the options every connection uses, the
//! preflight that names every unmet requirement at once, statements a
//! session runs on the server with their results as Arrow, and the position
//! of the server's binlog a read-your-writes barrier waits for.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, SslOpts, Value};

use super::types::{Origin, RowsBuilder, SourceColumn};
use super::{Position, SourceError};
use crate::cancel::Cancel;
use crate::config::SourceConfig;
use crate::error::{Error, Result};

/// Rows per batch of a result the server sends.
const RESULT_BATCH_ROWS: usize = 8192;

/// Connection options for `config`, with `database` as the default database.
/// Every connection reads TIMESTAMP values in UTC, as the cluster holds them.
pub fn options(config: &SourceConfig, database: Option<&str>) -> Opts {
    let mut builder = OptsBuilder::default()
        .ip_or_hostname(config.host.clone())
        .tcp_port(config.port)
        .user(Some(config.user.clone()))
        .pass(Some(config.password.clone()))
        .db_name(database.map(str::to_string))
        .prefer_socket(false)
        .init(vec!["SET time_zone = '+00:00'".to_string()]);
    if config.require_tls {
        builder = builder.ssl_opts(SslOpts::default());
    }
    Opts::from(builder)
}

/// The error of a failed call to the server.
pub fn server_error(config: &SourceConfig, statement: &str, error: mysql_async::Error) -> Error {
    let server = config.display();
    match error {
        mysql_async::Error::Server(e) => SourceError::Server {
            server,
            statement: super::shorten(statement),
            errno: e.code,
            sqlstate: e.state,
            message: e.message,
        }
        .into(),
        other => SourceError::Io {
            server,
            statement: super::shorten(statement),
            source: other,
        }
        .into(),
    }
}

pub async fn connect(config: &SourceConfig, database: Option<&str>) -> Result<Conn> {
    Conn::new(options(config, database))
        .await
        .map_err(|error| match error {
            mysql_async::Error::Server(_) => server_error(config, "connecting", error),
            other => SourceError::Connect {
                server: config.display(),
                source: other,
            }
            .into(),
        })
}

/// Rows of a small query, every value as text.
pub async fn query_rows(conn: &mut Conn, config: &SourceConfig, text: &str) -> Result<Vec<Row>> {
    conn.query::<Row, _>(text)
        .await
        .map_err(|e| server_error(config, text, e))
}

pub fn text_of(row: &Row, index: usize) -> Option<String> {
    match row.as_ref(index)? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// The server's current end of binlog (`SHOW MASTER STATUS`).
pub async fn binlog_end(conn: &mut Conn, config: &SourceConfig) -> Result<Position> {
    let rows = query_rows(conn, config, "SHOW MASTER STATUS").await?;
    let row = rows.first().ok_or_else(|| SourceError::Preflight {
        server: config.display(),
        problems: vec![
            "log_bin is OFF: SHOW MASTER STATUS is empty (start the server with --log-bin)".into(),
        ],
    })?;
    let file = text_of(row, 0).unwrap_or_default();
    let offset = text_of(row, 1).and_then(|p| p.parse().ok()).unwrap_or(0);
    Ok(Position {
        file,
        offset,
        gtid: None,
    })
}

/// Connect to the server and run the preflight.
pub async fn check(config: &SourceConfig) -> Result<()> {
    let mut conn = connect(config, None).await?;
    let checked = preflight(&mut conn, config).await;
    let _ = conn.disconnect().await;
    checked
}

/// Check everything the source needs of the server and name every problem.
pub async fn preflight(conn: &mut Conn, config: &SourceConfig) -> Result<()> {
    let mut problems = Vec::new();
    let rows = query_rows(
        conn,
        config,
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', \
         'binlog_row_image', 'binlog_row_metadata', 'log_bin_compress', \
         'binlog_transaction_compression', 'version', 'version_comment')",
    )
    .await?;
    let variables: std::collections::HashMap<String, String> = rows
        .iter()
        .filter_map(|r| {
            Some((
                text_of(r, 0)?.to_ascii_lowercase(),
                text_of(r, 1).unwrap_or_default(),
            ))
        })
        .collect();
    let get = |name: &str| variables.get(name).map(|v| v.to_ascii_uppercase());
    let version = variables.get("version").cloned().unwrap_or_default();
    let is_mariadb = version.to_ascii_lowercase().contains("mariadb");
    if !is_mariadb {
        problems.push(format!(
            "the server is MySQL {version}; only MariaDB servers are supported as a source so far \
             (a snapshot needs MariaDB's binlog_snapshot_file and binlog_snapshot_position)"
        ));
    }
    if get("log_bin").as_deref() != Some("ON") {
        problems.push("log_bin is OFF (start the server with --log-bin)".into());
    }
    let expect = |problems: &mut Vec<String>, name: &str, wanted: &str| {
        match get(name) {
        Some(value) if value == wanted => {}
        Some(value) => problems.push(format!(
            "{name} is {value}; it must be {wanted} (SET GLOBAL {name} = '{wanted}', or --{}={wanted})",
            name.replace('_', "-")
        )),
        None => problems.push(format!(
            "the server has no {name} variable; it must be {wanted} (MariaDB 10.5 or later)"
        )),
    }
    };
    expect(&mut problems, "binlog_format", "ROW");
    expect(&mut problems, "binlog_row_image", "FULL");
    expect(&mut problems, "binlog_row_metadata", "FULL");
    for compressed in ["log_bin_compress", "binlog_transaction_compression"] {
        if get(compressed).as_deref() == Some("ON") {
            problems.push(format!(
                "{compressed} is ON; compressed binlog events cannot be read (SET GLOBAL {compressed} = OFF)"
            ));
        }
    }
    let grants = query_rows(conn, config, "SHOW GRANTS").await?;
    let global: Vec<String> = grants
        .iter()
        .filter_map(|r| text_of(r, 0))
        .filter(|g| g.contains(" ON *.* "))
        .map(|g| g.to_ascii_uppercase())
        .collect();
    let has = |names: &[&str]| {
        global
            .iter()
            .any(|g| g.contains("ALL PRIVILEGES") || names.iter().any(|n| g.contains(n)))
    };
    if !has(&["REPLICATION SLAVE", "REPLICATION REPLICA"]) {
        problems.push(format!(
            "user '{}' lacks REPLICATION SLAVE (GRANT REPLICATION SLAVE ON *.* TO ...)",
            config.user
        ));
    }
    if !has(&["BINLOG MONITOR", "REPLICATION CLIENT", "SUPER"]) {
        problems.push(format!(
            "user '{}' lacks BINLOG MONITOR (GRANT BINLOG MONITOR ON *.* TO ...)",
            config.user
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SourceError::Preflight {
            server: config.display(),
            problems,
        }
        .into())
    }
}

/// What a statement run on the server returned.
#[derive(Debug)]
pub enum ServerOutcome {
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    Done {
        affected: u64,
        last_insert_id: Option<u64>,
        info: String,
    },
}

/// A session's own connection to the server, opened on first use: its
/// transactions, variables and temporary tables are the session's.
pub struct ServerConnection {
    config: Arc<SourceConfig>,
    conn: tokio::sync::Mutex<Option<Conn>>,
    database: parking_lot::Mutex<Option<String>>,
}

impl ServerConnection {
    pub fn new(config: Arc<SourceConfig>) -> ServerConnection {
        let database = config.database.clone();
        ServerConnection {
            config,
            conn: tokio::sync::Mutex::new(None),
            database: parking_lot::Mutex::new(database),
        }
    }

    /// The database the session is in on the server.
    pub fn database(&self) -> Option<String> {
        self.database.lock().clone()
    }

    async fn open(&self) -> Result<Conn> {
        let database = self.database();
        connect(&self.config, database.as_deref()).await
    }

    /// Run `text` on the server. Cancelled, the statement is killed on the
    /// server and the connection dropped (its state is unknown).
    pub async fn run(
        &self,
        text: &str,
        params: Vec<Value>,
        cancel: &Cancel,
    ) -> Result<ServerOutcome> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.open().await?);
        }
        let conn = guard.as_mut().expect("opened above");
        let id = conn.id();
        let outcome = cancel.run(run_on(conn, &self.config, text, params)).await;
        match outcome {
            Some(result) => {
                if let Err(e) = &result
                    && is_connection_lost(e)
                {
                    *guard = None;
                }
                if result.is_ok() {
                    self.track_database(text, guard.as_mut());
                }
                result
            }
            None => {
                *guard = None;
                if let Ok(mut killer) = self.open().await {
                    let _ = killer.query_drop(format!("KILL QUERY {id}")).await;
                    let _ = killer.disconnect().await;
                }
                Err(Error::Interrupted {
                    what: super::shorten(text),
                })
            }
        }
    }

    /// `USE db` changes the session's database on the server.
    fn track_database(&self, text: &str, _conn: Option<&mut Conn>) {
        let trimmed = text.trim().trim_end_matches(';').trim();
        let mut words = trimmed.splitn(2, char::is_whitespace);
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("use"))
            && let Some(name) = words.next()
        {
            let name = name.trim().trim_matches('`').to_string();
            *self.database.lock() = Some(name);
        }
    }

    /// Whether the session has a transaction open on the server, and the
    /// end of the server's binlog: a query offloaded now must see the
    /// cluster at least that far.
    pub async fn barrier(&self) -> Result<(bool, Position)> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.open().await?);
        }
        let conn = guard.as_mut().expect("opened above");
        let rows = query_rows(conn, &self.config, "SELECT @@in_transaction").await?;
        let open = rows
            .first()
            .and_then(|r| text_of(r, 0))
            .is_some_and(|v| v != "0");
        let end = binlog_end(conn, &self.config).await?;
        Ok((open, end))
    }

    /// Start afresh (COM_RESET_CONNECTION, COM_CHANGE_USER): the
    /// connection is closed, which rolls back what it had open and drops its
    /// variables and temporary tables; the next statement opens a new one
    /// in the configured database.
    pub async fn reset(&self) {
        self.close().await;
        *self.database.lock() = self.config.database.clone();
    }

    /// Close the connection (the session ends).
    pub async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.disconnect().await;
        }
    }
}

fn is_connection_lost(error: &Error) -> bool {
    matches!(error, Error::Source(e) if matches!(e.as_ref(), SourceError::Io { .. }))
}

async fn run_on(
    conn: &mut Conn,
    config: &SourceConfig,
    text: &str,
    params: Vec<Value>,
) -> Result<ServerOutcome> {
    let fail = |e| server_error(config, text, e);
    if params.is_empty() {
        let result = conn.query_iter(text).await.map_err(fail)?;
        collect_results(result, config, text).await
    } else {
        let result = conn
            .exec_iter(text, mysql_async::Params::Positional(params))
            .await
            .map_err(fail)?;
        collect_results(result, config, text).await
    }
}

/// Every result set of a statement; the last one with rows wins (a
/// multi-statement text), else the final OK.
async fn collect_results<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, 'static, P>,
    config: &SourceConfig,
    text: &str,
) -> Result<ServerOutcome> {
    let fail = |e| server_error(config, text, e);
    let mut outcome = None;
    loop {
        let columns = result.columns();
        match columns {
            Some(columns) if !columns.is_empty() => {
                let defs: Vec<SourceColumn> = columns.iter().map(SourceColumn::of_column).collect();
                let mut builder = RowsBuilder::new(&defs, Origin::Text);
                let mut batches = Vec::new();
                let mut bad = None;
                result
                    .for_each(|row: Row| {
                        if bad.is_some() {
                            return;
                        }
                        if let Err(e) = builder.push_row(&row.unwrap()) {
                            bad = Some(e);
                        } else if builder.len() >= RESULT_BATCH_ROWS {
                            batches.push(builder.finish());
                        }
                    })
                    .await
                    .map_err(fail)?;
                if let Some(message) = bad {
                    return Err(SourceError::ResultValue {
                        statement: super::shorten(text),
                        message,
                    }
                    .into());
                }
                if !builder.is_empty() || batches.is_empty() {
                    batches.push(builder.finish());
                }
                outcome = Some(ServerOutcome::Rows {
                    schema: Arc::clone(builder.schema()),
                    batches,
                });
            }
            _ => {
                let done = ServerOutcome::Done {
                    affected: result.affected_rows(),
                    last_insert_id: result.last_insert_id(),
                    info: result.info().into_owned(),
                };
                result.drop_result().await.map_err(fail)?;
                // A result set earlier in a multi-statement text wins over
                // the OK that ends it.
                if !matches!(outcome, Some(ServerOutcome::Rows { .. })) {
                    outcome = Some(done);
                }
                break;
            }
        }
        if result.is_empty() {
            break;
        }
    }
    Ok(outcome.unwrap_or(ServerOutcome::Done {
        affected: 0,
        last_insert_id: None,
        info: String::new(),
    }))
}
