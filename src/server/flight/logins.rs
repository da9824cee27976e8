//! Who a Flight SQL call is. A handshake with a user name and password
//! opens a session of the instance and returns a bearer token naming it;
//! later calls with the token run in that session (its variables, current
//! database and transaction), until the client's connection closes (as a
//! MySQL session ends with its connection), it is idle for longer than the
//! idle timeout, it is killed, or the server stops. A call with basic credentials and
//! no token, or with none at all when a password-less account exists, runs
//! in a session of its own that ends with the call. A Flight SQL transaction
//! (BeginTransaction) is opened in a logged-in session, and its id is good
//! only with that login's token; it ends with EndTransaction, or is rolled
//! back when the session ends.
//! Passwords are compared by digest and never kept; tokens are random.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::instance::Session;
use crate::server::Shared;
use crate::server::users::Account;

use super::status_with_code;
use crate::error::codes;

/// One logged-in client.
struct Login {
    session: Arc<Session>,
    user: String,
    last_used: Instant,
    /// The connection the client logged in on.
    peer: Option<std::net::SocketAddr>,
    /// Names the login in its transaction ids (the token is a secret).
    public_id: String,
    /// Flight SQL transactions begun so far, and the one open, if any.
    transactions: u64,
    transaction: Option<u64>,
}

/// The bearer tokens of one server.
#[derive(Default)]
pub(super) struct Logins {
    by_token: Mutex<HashMap<String, Login>>,
}

/// How a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Commit,
    Rollback,
}

fn unknown_transaction() -> Status {
    status_with_code(
        tonic::Code::NotFound,
        codes::WRONG_ARGUMENTS,
        "the transaction is unknown or has ended (a transaction lives on the server \
         that began it, until it is committed, rolled back or idle too long)",
    )
}

/// The session a call runs in.
pub(super) struct Caller {
    pub session: Arc<Session>,
    pub user: String,
    /// The session is the call's own: it ends when this is dropped.
    own: bool,
    /// The login's token, for a call in a logged-in session.
    token: Option<String>,
}

impl Drop for Caller {
    fn drop(&mut self) {
        if self.own {
            end_soon(Arc::clone(&self.session));
        }
    }
}

/// End a session off the caller's path (its rollback touches SQLite).
pub(super) fn end_soon(session: Arc<Session>) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move { session.end().await });
    } else {
        session.close();
    }
}

fn access_denied(user: &str, host: &str, with_password: bool) -> Status {
    status_with_code(
        tonic::Code::Unauthenticated,
        codes::ACCESS_DENIED,
        &format!(
            "Access denied for user '{user}'@'{host}' (using password: {})",
            if with_password { "YES" } else { "NO" }
        ),
    )
}

/// The user and password of an `authorization: Basic ...` header.
pub(super) fn basic_credentials(
    metadata: &MetadataMap,
) -> Result<Option<(String, String)>, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::invalid_argument("the authorization header is not text"))?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Ok(None);
    };
    // Go's gRPC clients (ADBC) send the credentials without padding.
    let encoded = encoded.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| Status::invalid_argument("the basic credentials are not base64"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| Status::invalid_argument("the basic credentials are not UTF-8"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| Status::invalid_argument("the basic credentials are not user:password"))?;
    Ok(Some((user.to_string(), password.to_string())))
}

fn bearer_token(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(|t| t.trim().to_string())
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Logins {
    /// The account these credentials name, if the password is right.
    fn verify<'a>(
        shared: &'a Shared,
        user: &str,
        password: &str,
        host: &str,
    ) -> Result<&'a Account, Status> {
        let account = shared
            .users
            .get(user)
            .filter(|a| a.verify_plain(password))
            .ok_or_else(|| access_denied(user, host, !password.is_empty()))?;
        if account.check_only {
            return Err(status_with_code(
                tonic::Code::PermissionDenied,
                crate::error::MySqlCode::new(1227, "42000"),
                "Access denied; the health-check user may run no statement",
            ));
        }
        Ok(account)
    }

    async fn open_session(shared: &Shared, user: &str, host: &str) -> Result<Arc<Session>, Status> {
        let instance = Arc::clone(&shared.instance);
        let (user, host) = (user.to_string(), host.to_string());
        let session = tokio::task::spawn_blocking(move || instance.session_for(&user, &host))
            .await
            .map_err(|_| Status::internal("opening a session failed"))?
            .map_err(|e| super::status_of(&e))?;
        Ok(Arc::new(session))
    }

    /// The handshake: check the credentials, open a session, return its
    /// token.
    pub async fn log_in(
        &self,
        shared: &Shared,
        user: &str,
        password: &str,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<String, Status> {
        let host = peer.map_or_else(|| "unknown".to_string(), |p| p.ip().to_string());
        let host = host.as_str();
        let account = Self::verify(shared, user, password, host)?;
        self.check_room(shared)?;
        let session = Self::open_session(shared, &account.name, host).await?;
        let token = new_token();
        shared.connections.lock().insert(session.id());
        self.by_token.lock().insert(
            token.clone(),
            Login {
                session,
                user: account.name.clone(),
                last_used: Instant::now(),
                peer,
                public_id: new_token()[..32].to_string(),
                transactions: 0,
                transaction: None,
            },
        );
        Ok(token)
    }

    fn check_room(&self, shared: &Shared) -> Result<(), Status> {
        if self.by_token.lock().len() >= shared.options.max_connections {
            return Err(status_with_code(
                tonic::Code::ResourceExhausted,
                crate::error::MySqlCode::new(1040, "08004"),
                "Too many connections",
            ));
        }
        Ok(())
    }

    /// BeginTransaction: open a transaction in the caller's logged-in
    /// session; returns its id (the login's public id and the
    /// transaction's number in it, no secret).
    pub async fn begin(&self, caller: &Caller) -> Result<String, Status> {
        let token = caller.token.as_deref().ok_or_else(|| {
            status_with_code(
                tonic::Code::FailedPrecondition,
                codes::WRONG_ARGUMENTS,
                "a Flight SQL transaction lives in a logged-in session: authenticate \
                 with the handshake (user name and password) first",
            )
        })?;
        let open = |login: &Login| login.transaction.is_some();
        if self.by_token.lock().get(token).is_none_or(open) {
            return Err(status_with_code(
                tonic::Code::FailedPrecondition,
                codes::WRONG_ARGUMENTS,
                "a transaction is already open in this session: end it first",
            ));
        }
        caller
            .session
            .sql("BEGIN", &[], &crate::cancel::Cancel::new())
            .await
            .map_err(|e| super::status_of(&e))?;
        let mut logins = self.by_token.lock();
        let login = logins.get_mut(token).ok_or_else(unknown_transaction)?;
        login.transactions += 1;
        login.transaction = Some(login.transactions);
        Ok(format!("{}{:016x}", login.public_id, login.transactions))
    }

    /// Check that transaction `id` is one of the caller's session; calls
    /// naming it run in that session. A prepared statement keeps the id of
    /// the transaction it was prepared in, and ADBC runs it again after a
    /// commit: an ended transaction of the same session is accepted, and
    /// the call runs in the session as it is now.
    pub fn check_transaction(&self, caller: &Caller, id: &[u8]) -> Result<u64, Status> {
        let token = caller.token.as_deref().ok_or_else(unknown_transaction)?;
        let logins = self.by_token.lock();
        let login = logins.get(token).ok_or_else(unknown_transaction)?;
        let number = std::str::from_utf8(id)
            .ok()
            .and_then(|id| id.strip_prefix(login.public_id.as_str()))
            .and_then(|n| u64::from_str_radix(n, 16).ok())
            .filter(|&n| n >= 1 && n <= login.transactions)
            .ok_or_else(unknown_transaction)?;
        Ok(number)
    }

    /// EndTransaction: commit or roll back the caller's open transaction
    /// `id`.
    pub async fn end(&self, caller: &Caller, id: &[u8], outcome: Outcome) -> Result<(), Status> {
        let number = self.check_transaction(caller, id)?;
        let token = caller.token.as_deref().expect("checked above");
        {
            let mut logins = self.by_token.lock();
            let login = logins.get_mut(token).ok_or_else(unknown_transaction)?;
            if login.transaction != Some(number) {
                return Err(unknown_transaction());
            }
            login.transaction = None;
        }
        let statement = match outcome {
            Outcome::Commit => "COMMIT",
            Outcome::Rollback => "ROLLBACK",
        };
        caller
            .session
            .sql(statement, &[], &crate::cancel::Cancel::new())
            .await
            .map(|_| ())
            .map_err(|e| super::status_of(&e))
    }

    /// The session of a call: its token's, or one of its own.
    pub async fn caller(
        &self,
        shared: &Shared,
        metadata: &MetadataMap,
        host: &str,
    ) -> Result<Caller, Status> {
        if let Some(token) = bearer_token(metadata) {
            let mut logins = self.by_token.lock();
            let Some(login) = logins.get_mut(&token) else {
                return Err(Status::unauthenticated(
                    "the bearer token is unknown or expired: log in again",
                ));
            };
            if login.session.is_killed() {
                let login = logins.remove(&token).expect("present");
                shared.connections.lock().remove(&login.session.id());
                return Err(Status::unauthenticated(
                    "the session of this token was killed: log in again",
                ));
            }
            login.last_used = Instant::now();
            return Ok(Caller {
                session: Arc::clone(&login.session),
                user: login.user.clone(),
                own: false,
                token: Some(token),
            });
        }
        let account = match basic_credentials(metadata)? {
            Some((user, password)) => Self::verify(shared, &user, &password, host)?,
            None => shared.users.anonymous().ok_or_else(|| {
                status_with_code(
                    tonic::Code::Unauthenticated,
                    codes::ACCESS_DENIED,
                    "Access denied: log in with a user name and password",
                )
            })?,
        };
        let name = account.name.clone();
        let session = Self::open_session(shared, &name, host).await?;
        Ok(Caller {
            session,
            user: name,
            own: true,
            token: None,
        })
    }

    /// A session of its own for `user` (a ticket of another database).
    pub async fn detour(shared: &Shared, user: &str, host: &str) -> Result<Caller, Status> {
        let session = Self::open_session(shared, user, host).await?;
        Ok(Caller {
            session,
            user: user.to_string(),
            own: true,
            token: None,
        })
    }

    /// End the sessions idle for longer than `idle` (and those killed).
    pub fn expire(&self, shared: &Shared, idle: Duration) {
        let now = Instant::now();
        self.end_where(shared, |login| {
            now.duration_since(login.last_used) > idle || login.session.is_killed()
        });
    }

    /// A client's connection closed: the sessions it logged in end.
    pub fn connection_closed(&self, shared: &Shared, peer: std::net::SocketAddr) {
        self.end_where(shared, |login| login.peer == Some(peer));
    }

    /// Removes the logins `ends` picks and ends their sessions, outside the lock.
    /// An open transaction is rolled back as its session ends.
    fn end_where(&self, shared: &Shared, ends: impl Fn(&Login) -> bool) {
        let ended: Vec<Login> = {
            let mut logins = self.by_token.lock();
            let tokens: Vec<String> = logins
                .iter()
                .filter(|(_, login)| ends(login))
                .map(|(token, _)| token.clone())
                .collect();
            tokens.iter().filter_map(|t| logins.remove(t)).collect()
        };
        for login in ended {
            shared.connections.lock().remove(&login.session.id());
            end_soon(login.session);
        }
    }

    /// End every session (the server stops).
    pub fn end_all(&self, shared: &Shared) {
        self.end_where(shared, |_| true);
    }
}
