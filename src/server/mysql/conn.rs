//! One client connection: the handshake, then one command at a time on the
//! connection's own session. Every failure of a statement is an ERR packet
//! with the core's error number and SQLSTATE; a protocol violation (a
//! malformed or oversized packet) gets an ERR and closes this connection
//! only. While a statement runs, the connection watches its socket: a client
//! that goes away cancels the statement.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use futures::StreamExt;

use super::columns::{self, ColumnEncoder};
use super::handshake::{self, CACHING_SHA2, NATIVE_PASSWORD, Response, caps};
use super::packet::{PacketError, Packets};
use super::params::{self, BoundType};
use super::wire::{Decoder, WireError, put_lenenc_int, put_u16, put_u32};
use crate::cancel::Cancel;
use crate::error::{Error, MySqlCode, codes};
use crate::instance::{QueryResult, Session, conform, datafusion_error, split_statements};
use crate::server::Shared;
use crate::server::users::Account;

/// How long a client has to log in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest packet accepted before login.
const LOGIN_PACKET_LIMIT: usize = 64 * 1024;
/// Rows are sent once this much is queued.
const FLUSH_AT: usize = 256 * 1024;
/// Prepared statements one connection may hold (MySQL's default
/// `max_prepared_stmt_count`).
const MAX_PREPARED_STATEMENTS: usize = 16_382;
/// A client that takes longer than this to take what was sent is gone
/// (MySQL's `net_write_timeout`).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

mod status {
    pub const IN_TRANS: u16 = 0x0001;
    pub const AUTOCOMMIT: u16 = 0x0002;
    pub const MORE_RESULTS: u16 = 0x0008;
}

mod command {
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PROCESS_KILL: u8 = 0x0C;
    pub const PING: u8 = 0x0E;
    pub const CHANGE_USER: u8 = 0x11;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1A;
    pub const SET_OPTION: u8 = 0x1B;
    pub const STMT_FETCH: u8 = 0x1C;
    pub const RESET_CONNECTION: u8 = 0x1F;
}

/// Errors of the protocol itself (the core's errors carry their own codes).
mod protocol_codes {
    use crate::error::MySqlCode;
    pub const TOO_MANY_CONNECTIONS: MySqlCode = MySqlCode::new(1040, "08004");
    pub const HANDSHAKE: MySqlCode = MySqlCode::new(1043, "08S01");
    pub const UNKNOWN_COMMAND: MySqlCode = MySqlCode::new(1047, "08S01");
    pub const EMPTY_QUERY: MySqlCode = MySqlCode::new(1065, "42000");
    pub const PACKET_TOO_LARGE: MySqlCode = MySqlCode::new(1153, "08S01");
    pub const OUT_OF_ORDER: MySqlCode = MySqlCode::new(1156, "08S01");
    pub const SPECIFIC_ACCESS_DENIED: MySqlCode = MySqlCode::new(1227, "42000");
    pub const UNKNOWN_STATEMENT: MySqlCode = MySqlCode::new(1243, "HY000");
    pub const TOO_MANY_PLACEHOLDERS: MySqlCode = MySqlCode::new(1390, "HY000");
    pub const TOO_MANY_STATEMENTS: MySqlCode = MySqlCode::new(1461, "42000");
    pub const MALFORMED_PACKET: MySqlCode = MySqlCode::new(1835, "HY000");
}
pub(super) use protocol_codes::TOO_MANY_CONNECTIONS;

/// Rows as COM_QUERY sends them, or as a prepared statement's execution does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    Text,
    Binary,
}

struct Prepared {
    /// The statement with `$n` placeholders.
    text: String,
    params: usize,
    bound: Vec<BoundType>,
    long_data: HashMap<usize, Vec<u8>>,
    /// Parameters whose long data went past max_allowed_packet.
    overflowed: std::collections::HashSet<usize>,
}

/// How sending a statement's outcome ended.
enum Sent {
    Done,
    /// An ERR was sent: the rest of a script is not run.
    Failed,
    ClientGone,
}

/// What became of a statement the connection waited on.
enum Watched<T> {
    Done(T),
    /// The client closed the connection; the statement was cancelled.
    ClientGone,
}

pub(super) struct Connection {
    shared: Arc<Shared>,
    packets: Packets,
    session: Arc<Session>,
    peer: SocketAddr,
    client_caps: u32,
    check_only: bool,
    statements: HashMap<u32, Prepared>,
    next_statement: u32,
    max_packet: usize,
    /// CLIENT_MULTI_STATEMENTS, or COM_SET_OPTION's choice.
    multi_statements: bool,
    /// The greeting's challenge, which COM_CHANGE_USER answers too.
    scramble: [u8; 20],
}

/// An ERR packet.
pub(super) fn error_packet(code: MySqlCode, message: &str) -> Vec<u8> {
    let mut out = vec![0xFF];
    put_u16(&mut out, code.errno);
    out.push(b'#');
    out.extend_from_slice(code.sqlstate.as_bytes());
    // Keep messages readable in every client; the full chain is long only
    // for errors deep in a file reader.
    let mut end = message.len().min(4096);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&message.as_bytes()[..end]);
    out
}

impl Connection {
    pub(super) fn new(
        shared: Arc<Shared>,
        packets: Packets,
        session: Arc<Session>,
        peer: SocketAddr,
    ) -> Connection {
        let max_packet = shared.options.max_allowed_packet;
        Connection {
            shared,
            packets,
            session,
            peer,
            client_caps: 0,
            check_only: false,
            statements: HashMap::new(),
            next_statement: 1,
            max_packet,
            multi_statements: false,
            scramble: [0; 20],
        }
    }

    fn connection_id(&self) -> u32 {
        self.session.id() as u32
    }

    /// Log in, then serve commands until the client quits, the connection
    /// breaks, the session is killed or the server stops.
    pub(super) async fn run(mut self) {
        match tokio::time::timeout(LOGIN_TIMEOUT, self.login()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                self.packets.shutdown().await;
                return;
            }
            Ok(Err(problem)) => {
                self.report(&problem);
                self.packets.shutdown().await;
                return;
            }
            Err(_) => {
                self.packets.shutdown().await;
                return;
            }
        }
        if let Err(problem) = self.serve().await {
            self.report(&problem);
        }
        self.packets.shutdown().await;
    }

    /// Protocol problems are the server operator's business: one line on
    /// stderr naming the connection (never a password or a statement's data).
    fn report(&self, problem: &Problem) {
        if let Problem::Protocol(message) = problem {
            eprintln!(
                "lakewave: connection {} from {} closed: {message}",
                self.connection_id(),
                self.peer
            );
        }
    }

    fn status_flags(&self, more: bool) -> u16 {
        let mut flags = 0;
        if self.session.autocommit() {
            flags |= status::AUTOCOMMIT;
        }
        if self.session.in_transaction() {
            flags |= status::IN_TRANS;
        }
        if more && self.client_caps & caps::MULTI_RESULTS != 0 {
            flags |= status::MORE_RESULTS;
        }
        flags
    }

    fn deprecate_eof(&self) -> bool {
        self.client_caps & caps::DEPRECATE_EOF != 0
    }

    fn write_ok(&mut self, affected: u64, more: bool, info: &str) {
        self.write_ok_with_id(affected, 0, more, info);
    }

    /// An OK that reports the AUTO_INCREMENT value an INSERT assigned.
    fn write_ok_with_id(&mut self, affected: u64, insert_id: u64, more: bool, info: &str) {
        let payload = self.ok_payload(0x00, affected, insert_id, more, info);
        self.packets.write(&payload);
    }

    fn ok_payload(
        &self,
        header: u8,
        affected: u64,
        insert_id: u64,
        more: bool,
        info: &str,
    ) -> Vec<u8> {
        let mut out = vec![header];
        put_lenenc_int(&mut out, affected);
        put_lenenc_int(&mut out, insert_id);
        put_u16(&mut out, self.status_flags(more));
        put_u16(&mut out, 0);
        out.extend_from_slice(info.as_bytes());
        out
    }

    /// The packet that ends column definitions (only without DEPRECATE_EOF).
    fn write_eof(&mut self, more: bool) {
        let mut out = vec![0xFE];
        put_u16(&mut out, 0);
        put_u16(&mut out, self.status_flags(more));
        self.packets.write(&out);
    }

    /// The packet that ends a result set's rows.
    fn write_end_of_rows(&mut self, more: bool) {
        if self.deprecate_eof() {
            let payload = self.ok_payload(0xFE, 0, 0, more, "");
            self.packets.write(&payload);
        } else {
            self.write_eof(more);
        }
    }

    fn write_error(&mut self, error: &Error) {
        let packet = error_packet(error.code(), &error.chain_message());
        self.packets.write(&packet);
    }

    fn write_protocol_error(&mut self, code: MySqlCode, message: &str) {
        self.packets.write(&error_packet(code, message));
    }

    async fn flush(&mut self) -> Result<(), Problem> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.packets.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Problem::Gone),
        }
    }

    async fn read_login_packet(&mut self) -> Result<Vec<u8>, Problem> {
        match self.packets.read(LOGIN_PACKET_LIMIT).await {
            Ok(Some(payload)) => Ok(payload),
            Ok(None) => Err(Problem::Gone),
            Err(error) => Err(self.packet_problem(error).await),
        }
    }

    /// The handshake. `Ok(false)`: refused (the client was told why).
    async fn login(&mut self) -> Result<bool, Problem> {
        let scramble = handshake::new_scramble();
        let tls = self.shared.tls.clone();
        let server_caps = if tls.is_some() {
            handshake::SERVER_CAPABILITIES | caps::SSL
        } else {
            handshake::SERVER_CAPABILITIES
        };
        let greeting = handshake::greeting(
            &self.shared.options.server_version,
            self.connection_id(),
            &scramble,
            server_caps,
            status::AUTOCOMMIT,
        );
        self.packets.write(&greeting);
        self.flush().await?;
        let mut payload = self.read_login_packet().await?;
        if handshake::is_ssl_request(&payload) {
            let Some(acceptor) = tls else {
                self.write_protocol_error(
                    protocol_codes::HANDSHAKE,
                    "this server does not offer TLS (it was started without a certificate); \
                     connect without SSL",
                );
                self.flush().await?;
                return Ok(false);
            };
            if let Err(error) = self.packets.start_tls(&acceptor).await {
                return Err(Problem::Protocol(format!(
                    "the TLS handshake failed: {error}"
                )));
            }
            payload = self.read_login_packet().await?;
        }
        let response = match Response::parse(&payload) {
            Ok(response) => response,
            Err(error) => {
                self.write_protocol_error(protocol_codes::HANDSHAKE, &error.to_string());
                self.flush().await?;
                return Err(Problem::Protocol(error.to_string()));
            }
        };
        self.client_caps = response.capabilities & server_caps;
        self.multi_statements = self.client_caps & caps::MULTI_STATEMENTS != 0;
        self.scramble = scramble;
        let Some(account) = self.authenticate(&response).await? else {
            return Ok(false);
        };
        self.enter(account, response.database.as_deref()).await
    }

    /// Check a login's credentials against the users, asking the client to
    /// answer in another plugin when it must. `None`: refused, with 1045
    /// sent (an unknown user is told the same as a wrong password).
    async fn authenticate(&mut self, response: &Response) -> Result<Option<Account>, Problem> {
        let scramble = self.scramble;
        let host = self.peer.ip().to_string();
        let account = self.shared.users.get(&response.user).cloned();
        let needs_password = account.as_ref().is_none_or(|a| a.has_password());
        let client_plugin = response
            .plugin
            .clone()
            .unwrap_or_else(|| NATIVE_PASSWORD.into());
        let switch_to = if client_plugin == NATIVE_PASSWORD {
            None
        } else if client_plugin == CACHING_SHA2 {
            // A client whose default plugin is not the greeted one drops the
            // greeting's data and sends nothing: ask again, in its plugin.
            (response.auth.is_empty() && needs_password).then_some(CACHING_SHA2)
        } else {
            // A plugin we do not speak: ask for the native one.
            Some(NATIVE_PASSWORD)
        };
        let (plugin, auth) = match switch_to {
            None => (client_plugin, response.auth.clone()),
            Some(plugin) => {
                self.packets
                    .write(&handshake::auth_switch(plugin, &scramble));
                self.flush().await?;
                (plugin.to_string(), self.read_login_packet().await?)
            }
        };
        let accepted = account.as_ref().is_some_and(|account| {
            if plugin == CACHING_SHA2 {
                account.verify_sha2(&scramble, &auth)
            } else {
                account.verify_native(&scramble, &auth)
            }
        });
        let Some(account) = account.filter(|_| accepted) else {
            let message = format!(
                "Access denied for user '{}'@'{host}' (using password: {})",
                response.user,
                if auth.is_empty() { "NO" } else { "YES" }
            );
            self.write_protocol_error(codes::ACCESS_DENIED, &message);
            self.flush().await?;
            return Ok(None);
        };
        if plugin == CACHING_SHA2 && account.has_password() {
            // fast_auth_success: the digest matched (a password-less login
            // gets the OK alone, as MySQL sends it).
            self.packets.write(&[0x01, 0x03]);
        }
        Ok(Some(account))
    }

    /// Make the session `account`'s, in `database` if one was asked for.
    /// `Ok(false)`: refused (the client was told why).
    async fn enter(&mut self, account: Account, database: Option<&str>) -> Result<bool, Problem> {
        let host = self.peer.ip().to_string();
        self.check_only = account.check_only;
        self.session.set_user(&account.name, &host);
        if let Some(database) = database {
            if self.check_only {
                self.write_protocol_error(
                    protocol_codes::SPECIFIC_ACCESS_DENIED,
                    "the health-check user may not use a database",
                );
                self.flush().await?;
                return Ok(false);
            }
            let statement = format!("USE `{}`", database.replace('`', "``"));
            if let Err(error) = self.session.sql(&statement, &[], &Cancel::new()).await {
                self.write_error(&error);
                self.flush().await?;
                return Ok(false);
            }
        }
        self.write_ok(0, false, "");
        self.flush().await?;
        Ok(true)
    }

    /// COM_CHANGE_USER: log in again as another user on this connection.
    /// The session starts afresh (its transaction rolled back, its
    /// variables and prepared statements gone), as COM_RESET_CONNECTION
    /// leaves it. A refused login closes the connection, as MySQL does:
    /// it is never left half the old user's and half the new one's.
    async fn change_user(&mut self, body: &[u8]) -> Result<bool, Problem> {
        let request = match Response::parse_change_user(body, self.client_caps) {
            Ok(request) => request,
            Err(error) => {
                self.malformed(&error);
                return Err(Problem::Protocol(error.to_string()));
            }
        };
        let Some(account) = self.authenticate(&request).await? else {
            return Ok(false);
        };
        self.statements.clear();
        let session = Arc::clone(&self.session);
        if let Err(error) = session.reset().await {
            self.write_error(&error);
            self.flush().await?;
            return Ok(false);
        }
        self.enter(account, request.database.as_deref()).await
    }

    async fn packet_problem(&mut self, error: PacketError) -> Problem {
        let (code, message) = match &error {
            PacketError::TooLarge { .. } => (
                protocol_codes::PACKET_TOO_LARGE,
                format!("Got a packet bigger than 'max_allowed_packet' bytes ({error})"),
            ),
            PacketError::OutOfOrder { .. } => (protocol_codes::OUT_OF_ORDER, error.to_string()),
            PacketError::Truncated | PacketError::Io(_) => return Problem::Gone,
        };
        self.write_protocol_error(code, &message);
        let _ = self.packets.flush().await;
        Problem::Protocol(message)
    }

    async fn serve(&mut self) -> Result<(), Problem> {
        loop {
            self.packets.seq = 0;
            let stopping = self.shared.stopping.clone();
            let session = Arc::clone(&self.session);
            let read = tokio::select! {
                read = self.packets.read(self.max_packet) => read,
                _ = session.killed() => return Ok(()),
                _ = stopping.cancelled() => return Ok(()),
            };
            let payload = match read {
                Ok(Some(payload)) => payload,
                Ok(None) => return Ok(()),
                Err(error) => return Err(self.packet_problem(error).await),
            };
            let keep_going = self.dispatch(&payload).await?;
            self.flush().await?;
            if !keep_going || self.session.is_killed() {
                return Ok(());
            }
        }
    }

    /// One command. `Ok(false)` ends the connection.
    async fn dispatch(&mut self, payload: &[u8]) -> Result<bool, Problem> {
        let Some((&command, body)) = payload.split_first() else {
            self.write_protocol_error(protocol_codes::MALFORMED_PACKET, "empty command packet");
            return Err(Problem::Protocol("empty command packet".into()));
        };
        let needs_privileges = matches!(
            command,
            command::INIT_DB
                | command::QUERY
                | command::FIELD_LIST
                | command::PROCESS_KILL
                | command::STMT_PREPARE
                | command::STMT_EXECUTE
        );
        if needs_privileges && self.check_only {
            self.write_protocol_error(
                protocol_codes::SPECIFIC_ACCESS_DENIED,
                "Access denied; the health-check user may run no statement",
            );
            return Ok(true);
        }
        match command {
            command::QUIT => return Ok(false),
            command::PING => self.write_ok(0, false, ""),
            command::INIT_DB => {
                let name = String::from_utf8_lossy(body).to_string();
                let statement = format!("USE `{}`", name.replace('`', "``"));
                return self.query(&statement).await;
            }
            command::QUERY => {
                let Ok(text) = std::str::from_utf8(body) else {
                    self.write_protocol_error(
                        protocol_codes::MALFORMED_PACKET,
                        "the statement is not UTF-8 (lakewave speaks utf8mb4)",
                    );
                    return Ok(true);
                };
                return self.query(text).await;
            }
            command::FIELD_LIST => return self.field_list(body).await,
            command::STATISTICS => {
                let text = format!(
                    "Uptime: {}  Threads: {}  Questions: 0  Slow queries: 0  Opens: 0  \
                     Flush tables: 0  Open tables: {}  Queries per second avg: 0.000",
                    self.shared.instance.started().elapsed().as_secs(),
                    self.shared.instance.processes().len(),
                    self.shared.instance.tables().len(),
                );
                self.packets.write(text.as_bytes());
            }
            command::PROCESS_KILL => {
                let mut d = Decoder::new(body);
                match d.u32("the connection id") {
                    Ok(id) => return self.query(&format!("KILL {id}")).await,
                    Err(error) => self.malformed(&error),
                }
            }
            command::STMT_PREPARE => return self.prepare(body).await,
            command::STMT_EXECUTE => return self.execute(body).await,
            command::STMT_SEND_LONG_DATA => self.long_data(body),
            command::STMT_CLOSE => {
                if let Ok(id) = Decoder::new(body).u32("the statement id") {
                    self.statements.remove(&id);
                }
                // No reply, by the protocol.
            }
            command::STMT_RESET => {
                let id = Decoder::new(body).u32("the statement id");
                match id.ok().and_then(|id| self.statements.get_mut(&id)) {
                    Some(statement) => {
                        statement.long_data.clear();
                        statement.overflowed.clear();
                        self.write_ok(0, false, "");
                    }
                    None => self.unknown_statement("mysqld_stmt_reset"),
                }
            }
            command::STMT_FETCH => self.write_protocol_error(
                codes::NOT_SUPPORTED_YET,
                "server-side cursors are not supported: execute without a cursor type",
            ),
            command::SET_OPTION => match Decoder::new(body).u16("the option") {
                Ok(0) => {
                    self.multi_statements = true;
                    self.write_end_of_rows(false);
                }
                Ok(1) => {
                    self.multi_statements = false;
                    self.write_end_of_rows(false);
                }
                Ok(other) => self.write_protocol_error(
                    protocol_codes::UNKNOWN_COMMAND,
                    &format!("Unknown COM_SET_OPTION option {other}"),
                ),
                Err(error) => self.malformed(&error),
            },
            command::CHANGE_USER => return self.change_user(body).await,
            command::RESET_CONNECTION => {
                self.statements.clear();
                let session = Arc::clone(&self.session);
                match session.reset().await {
                    Ok(()) => self.write_ok(0, false, ""),
                    Err(error) => self.write_error(&error),
                }
            }
            other => self.write_protocol_error(
                protocol_codes::UNKNOWN_COMMAND,
                &format!("Unknown command 0x{other:02x}"),
            ),
        }
        Ok(true)
    }

    fn malformed(&mut self, error: &WireError) {
        self.write_protocol_error(protocol_codes::MALFORMED_PACKET, &error.to_string());
    }

    fn unknown_statement(&mut self, verb: &str) {
        self.write_protocol_error(
            protocol_codes::UNKNOWN_STATEMENT,
            &format!("Unknown prepared statement handler given to {verb}"),
        );
    }

    /// Run `work` while watching the socket: if the client closes the
    /// connection, `cancel` fires and the statement's end is awaited.
    async fn watched<T>(&mut self, cancel: &Cancel, work: impl Future<Output = T>) -> Watched<T> {
        tokio::pin!(work);
        if !self.packets.has_buffered() {
            tokio::select! {
                out = &mut work => return Watched::Done(out),
                closed = self.packets.closed_by_peer() => {
                    // A driver closing its connection sends COM_QUIT first.
                    if closed || self.packets.quit_is_buffered() {
                        cancel.cancel();
                        let _ = work.await;
                        return Watched::ClientGone;
                    }
                    // The client sent its next command already: it is read
                    // after this one; stop watching.
                }
            }
        }
        Watched::Done(work.await)
    }

    /// COM_QUERY: every statement of the text, each with its own result.
    async fn query(&mut self, text: &str) -> Result<bool, Problem> {
        let pieces = split_statements(text);
        if pieces.is_empty() {
            self.write_protocol_error(protocol_codes::EMPTY_QUERY, "Query was empty");
            return Ok(true);
        }
        let count = pieces.len();
        if count > 1 && !self.multi_statements {
            // As MySQL: without CLIENT_MULTI_STATEMENTS, `a; b` is one
            // statement with a syntax error (and no statement stacking).
            self.write_protocol_error(
                codes::PARSE_ERROR,
                "You have an error in your SQL syntax: several statements in one query need \
                 CLIENT_MULTI_STATEMENTS (or COM_SET_OPTION)",
            );
            return Ok(true);
        }
        for (index, piece) in pieces.into_iter().enumerate() {
            let more = index + 1 < count;
            let cancel = Cancel::new();
            let session = Arc::clone(&self.session);
            let run = session.sql(piece, &[], &cancel);
            match self.watched(&cancel, run).await {
                Watched::ClientGone => return Ok(false),
                Watched::Done(Err(error)) => {
                    self.write_error(&error);
                    return Ok(true);
                }
                Watched::Done(Ok(result)) => {
                    match self.send_result(&result, more, Rows::Text, &cancel).await? {
                        Sent::Done => {}
                        Sent::Failed => return Ok(true),
                        Sent::ClientGone => return Ok(false),
                    }
                    if self.packets.pending() > 0 && more {
                        self.flush().await?;
                    }
                }
            }
        }
        Ok(true)
    }

    /// One statement's outcome: an OK, or a result set (or the error that
    /// ended it, after which a script stops).
    async fn send_result(
        &mut self,
        result: &QueryResult,
        more: bool,
        rows: Rows,
        cancel: &Cancel,
    ) -> Result<Sent, Problem> {
        if !result.returns_rows() {
            let affected = result.rows_affected().unwrap_or(0);
            let info = result.status_message().unwrap_or("").to_string();
            self.write_ok_with_id(affected, result.insert_id().unwrap_or(0), more, &info);
            return Ok(Sent::Done);
        }
        let started = match self.watched(cancel, result.stream(cancel)).await {
            Watched::ClientGone => return Ok(Sent::ClientGone),
            Watched::Done(started) => started,
        };
        let mut stream = match started {
            Ok(stream) => stream,
            Err(error) => {
                self.write_error(&error);
                return Ok(Sent::Failed);
            }
        };
        let schema = stream.schema();
        if schema.fields().is_empty() {
            // A result set of no columns cannot be sent (its column count, a
            // single 0, reads as an OK): it is one.
            self.write_ok(0, more, "");
            return Ok(Sent::Done);
        }
        self.write_columns(&schema);
        loop {
            let next = match self.watched(cancel, stream.next()).await {
                Watched::ClientGone => return Ok(Sent::ClientGone),
                Watched::Done(next) => next,
            };
            match next {
                None => break,
                Some(Err(error)) => {
                    self.write_error(&error);
                    return Ok(Sent::Failed);
                }
                Some(Ok(batch)) => {
                    // Rows are encoded as the columns were declared.
                    let batch = match conform(batch, &schema) {
                        Ok(batch) => batch,
                        Err(error) => {
                            self.write_error(&datafusion_error(result.statement(), error));
                            return Ok(Sent::Failed);
                        }
                    };
                    let encoders: Vec<ColumnEncoder> =
                        batch.columns().iter().map(ColumnEncoder::new).collect();
                    let mut row = Vec::with_capacity(256);
                    for index in 0..batch.num_rows() {
                        row.clear();
                        match rows {
                            Rows::Text => columns::text_row(&encoders, index, &mut row),
                            Rows::Binary => columns::binary_row(&encoders, index, &mut row),
                        }
                        self.packets.write(&row);
                        if self.packets.pending() >= FLUSH_AT && self.flush().await.is_err() {
                            cancel.cancel();
                            return Ok(Sent::ClientGone);
                        }
                    }
                }
            }
        }
        self.write_end_of_rows(more);
        Ok(Sent::Done)
    }

    fn write_columns(&mut self, schema: &SchemaRef) {
        self.packets
            .write(&columns::column_count(schema.fields().len()));
        for field in schema.fields() {
            self.packets.write(&columns::definition(field, "", false));
        }
        if !self.deprecate_eof() {
            self.write_eof(false);
        }
    }

    /// COM_FIELD_LIST: a table's column definitions (the `mariadb` client's
    /// completion asks for them).
    async fn field_list(&mut self, body: &[u8]) -> Result<bool, Problem> {
        let mut d = Decoder::new(body);
        let table = String::from_utf8_lossy(d.nul_or_rest()).to_string();
        let query = format!("SELECT * FROM `{}` LIMIT 0", table.replace('`', "``"));
        let session = Arc::clone(&self.session);
        let cancel = Cancel::new();
        match self.watched(&cancel, session.describe(&query)).await {
            Watched::ClientGone => return Ok(false),
            Watched::Done(Err(error)) => self.write_error(&error),
            Watched::Done(Ok(schema)) => {
                for field in schema.iter().flat_map(|s| s.fields().iter()) {
                    self.packets
                        .write(&columns::definition(field, &table, true));
                }
                self.write_end_of_rows(false);
            }
        }
        Ok(true)
    }

    /// COM_STMT_PREPARE: number the markers, plan the statement for its
    /// columns, and describe both.
    async fn prepare(&mut self, body: &[u8]) -> Result<bool, Problem> {
        let Ok(text) = std::str::from_utf8(body) else {
            self.write_protocol_error(
                protocol_codes::MALFORMED_PACKET,
                "the statement is not UTF-8 (lakewave speaks utf8mb4)",
            );
            return Ok(true);
        };
        let (numbered, param_count) = crate::sql::number_markers(text);
        let session = Arc::clone(&self.session);
        let cancel = Cancel::new();
        let columns = match self.watched(&cancel, session.describe(&numbered)).await {
            Watched::ClientGone => return Ok(false),
            Watched::Done(Err(error)) => {
                self.write_error(&error);
                return Ok(true);
            }
            Watched::Done(Ok(columns)) => columns,
        };
        let column_count = columns.as_ref().map_or(0, |s| s.fields().len());
        if param_count > usize::from(u16::MAX) || column_count > usize::from(u16::MAX) {
            self.write_protocol_error(
                protocol_codes::TOO_MANY_PLACEHOLDERS,
                "Prepared statement contains too many placeholders or columns",
            );
            return Ok(true);
        }
        if self.statements.len() >= MAX_PREPARED_STATEMENTS {
            self.write_protocol_error(
                protocol_codes::TOO_MANY_STATEMENTS,
                &format!(
                    "Can't create more than max_prepared_stmt_count statements \
                     (current value: {MAX_PREPARED_STATEMENTS})"
                ),
            );
            return Ok(true);
        }
        let id = self.next_statement;
        self.next_statement = self.next_statement.wrapping_add(1).max(1);
        let mut out = vec![0x00];
        put_u32(&mut out, id);
        put_u16(&mut out, column_count as u16);
        put_u16(&mut out, param_count as u16);
        out.push(0);
        put_u16(&mut out, 0);
        self.packets.write(&out);
        if param_count > 0 {
            let definition = columns::parameter_definition();
            for _ in 0..param_count {
                self.packets.write(&definition);
            }
            if !self.deprecate_eof() {
                self.write_eof(false);
            }
        }
        if let Some(schema) = &columns
            && column_count > 0
        {
            for field in schema.fields() {
                self.packets.write(&columns::definition(field, "", false));
            }
            if !self.deprecate_eof() {
                self.write_eof(false);
            }
        }
        self.statements.insert(
            id,
            Prepared {
                text: numbered,
                params: param_count,
                bound: Vec::new(),
                long_data: HashMap::new(),
                overflowed: Default::default(),
            },
        );
        Ok(true)
    }

    /// COM_STMT_SEND_LONG_DATA: a parameter's value in pieces (no reply).
    fn long_data(&mut self, body: &[u8]) {
        let mut d = Decoder::new(body);
        let (Ok(id), Ok(param)) = (d.u32("the statement id"), d.u16("the parameter")) else {
            return;
        };
        let limit = self.max_packet;
        if let Some(statement) = self.statements.get_mut(&id)
            && usize::from(param) < statement.params
        {
            let index = usize::from(param);
            let sent = statement.long_data.get(&index).map_or(0, Vec::len);
            if sent + d.remaining() > limit {
                // Kept as a mark: the execution fails rather than run with
                // part of a value.
                statement.long_data.remove(&index);
                statement.overflowed.insert(index);
            } else if !statement.overflowed.contains(&index) {
                statement
                    .long_data
                    .entry(index)
                    .or_default()
                    .extend_from_slice(d.rest());
            }
        }
    }

    /// COM_STMT_EXECUTE: bind the values and run, rows in the binary protocol.
    async fn execute(&mut self, body: &[u8]) -> Result<bool, Problem> {
        let mut d = Decoder::new(body);
        let header = (|| {
            let id = d.u32("the statement id")?;
            let _flags = d.u8("the cursor flags")?;
            let _iterations = d.u32("the iteration count")?;
            Ok::<u32, WireError>(id)
        })();
        let id = match header {
            Ok(id) => id,
            Err(error) => {
                self.malformed(&error);
                return Ok(true);
            }
        };
        let Some(statement) = self.statements.get_mut(&id) else {
            self.unknown_statement("mysqld_stmt_execute");
            return Ok(true);
        };
        if let Some(&param) = statement.overflowed.iter().next() {
            statement.overflowed.clear();
            statement.long_data.clear();
            self.write_protocol_error(
                protocol_codes::PACKET_TOO_LARGE,
                &format!(
                    "Parameter {} of the prepared statement, sent with COM_STMT_SEND_LONG_DATA, \
                     is longer than 'max_allowed_packet' bytes",
                    param + 1
                ),
            );
            return Ok(true);
        }
        let decoded = params::decode_values(
            &mut d,
            statement.params,
            &mut statement.bound,
            &statement.long_data,
        );
        statement.long_data.clear();
        let text = statement.text.clone();
        let values: Vec<ScalarValue> = match decoded {
            Ok(values) => values,
            Err(error) => {
                self.malformed(&error);
                return Ok(true);
            }
        };
        let cancel = Cancel::new();
        let session = Arc::clone(&self.session);
        let run = session.sql(&text, &values, &cancel);
        match self.watched(&cancel, run).await {
            Watched::ClientGone => Ok(false),
            Watched::Done(Err(error)) => {
                self.write_error(&error);
                Ok(true)
            }
            Watched::Done(Ok(result)) => {
                let sent = self
                    .send_result(&result, false, Rows::Binary, &cancel)
                    .await?;
                Ok(!matches!(sent, Sent::ClientGone))
            }
        }
    }
}

/// Why a connection ended other than by the client's wish.
pub(super) enum Problem {
    /// The client went away or the network failed.
    Gone,
    /// The client broke the protocol (reported on stderr).
    Protocol(String),
}
