//! The network endpoints of one instance: the MySQL protocol (`mysql`),
//! Arrow Flight SQL (`flight`) and an HTTP status port (`status`), on the
//! instance's tokio runtime. Each client connection (each Flight SQL login)
//! is one session of the instance (`instance::Session`), so everything a
//! statement does (routing, cancellation, error numbers) is the core's; this
//! module owns only the wire formats, the accounts, TLS and the listeners.
//! It must not reach past `instance`.

mod flight;
mod mysql;
mod status;
mod tls;
pub mod users;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::cancel::Cancel;
use crate::error::{ErrorKind, MySqlCode, codes};
use crate::instance::Instance;
pub use users::Users;

/// The server version clients see: MySQL 8.4's protocol, lakewave's engine.
pub const SERVER_VERSION: &str = "8.4.0-lakewave";

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on {address} for the {endpoint}")]
    Bind {
        endpoint: &'static str,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("users file {path}{}: {message}", if *line > 0 { format!(", line {line}") } else { String::new() })]
    UsersFile {
        path: String,
        line: usize,
        message: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("invalid server option {name}: {message}")]
    Option { name: String, message: String },
    #[error("TLS {what} {path}: {message}")]
    Tls {
        what: &'static str,
        path: String,
        message: String,
    },
}

impl ServerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServerError::Bind { .. } => ErrorKind::Operational,
            ServerError::UsersFile { .. }
            | ServerError::Option { .. }
            | ServerError::Tls { .. } => ErrorKind::Interface,
        }
    }

    pub fn code(&self) -> MySqlCode {
        match self {
            // ER_IPSOCK_ERROR: "Can't create IP socket".
            ServerError::Bind { .. } => MySqlCode::new(1081, "08S01"),
            ServerError::UsersFile { .. } => codes::FILE_NOT_FOUND,
            // ER_SSL_LIBRARY_ERROR-like: the certificate or key is unusable.
            ServerError::Tls { .. } => MySqlCode::new(2026, "HY000"),
            ServerError::Option { .. } => codes::WRONG_ARGUMENTS,
        }
    }
}

/// How a server listens and whom it lets in, parsed once from the caller's
/// options.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub host: String,
    /// 0: any free port.
    pub mysql_port: u16,
    /// The Arrow Flight SQL port, if any; 0: any free port.
    pub flight_port: Option<u16>,
    /// An HTTP status port (`GET /health`), if any; 0: any free port.
    pub status_port: Option<u16>,
    pub users: Users,
    /// Connections beyond this get error 1040.
    pub max_connections: usize,
    /// Packets above this are refused (error 1153) and close the connection.
    pub max_allowed_packet: usize,
    pub server_version: String,
    /// A certificate chain and private key (PEM files): both endpoints
    /// offer TLS with them.
    pub tls: Option<TlsFiles>,
}

/// Where a server's certificate chain and private key are (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            host: "127.0.0.1".into(),
            mysql_port: 3306,
            flight_port: None,
            status_port: None,
            users: Users::single("root", "", Some("haproxy")),
            max_connections: 151,
            max_allowed_packet: 64 << 20,
            server_version: SERVER_VERSION.into(),
            tls: None,
        }
    }
}

/// What every connection of a server shares.
pub(crate) struct Shared {
    instance: Arc<Instance>,
    options: ServerOptions,
    users: Users,
    /// Fires when the server stops.
    stopping: Cancel,
    /// Sessions of the open connections.
    connections: Mutex<HashSet<u64>>,
    mysql_address: SocketAddr,
    /// TLS for the MySQL endpoint, when a certificate was given.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A running server; `close()` (or dropping it) stops it.
pub struct Server {
    shared: Arc<Shared>,
    mysql_address: SocketAddr,
    flight_address: Option<SocketAddr>,
    status_address: Option<SocketAddr>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Server {
    /// Listen on the configured ports and serve `instance`. Returns once the
    /// ports are bound (errors, such as a port in use, come back here).
    pub fn start(instance: Arc<Instance>, options: ServerOptions) -> crate::Result<Server> {
        if options.max_connections == 0 {
            return Err(ServerError::Option {
                name: "max_connections".into(),
                message: "must be at least 1".into(),
            }
            .into());
        }
        if options.max_allowed_packet < 1024 {
            return Err(ServerError::Option {
                name: "max_allowed_packet".into(),
                message: "must be at least 1024 bytes".into(),
            }
            .into());
        }
        let certificate = options
            .tls
            .as_ref()
            .map(tls::Certificate::read)
            .transpose()?;
        let handle = instance.handle();
        let bind = |endpoint: &'static str, port: u16| {
            let address = format!("{}:{port}", options.host);
            handle
                .block_on(TcpListener::bind(address.clone()))
                .map_err(|source| ServerError::Bind {
                    endpoint,
                    address,
                    source,
                })
        };
        let mysql = bind("MySQL protocol", options.mysql_port)?;
        let flight = options
            .flight_port
            .map(|port| bind("Flight SQL endpoint", port))
            .transpose()?;
        let status = options
            .status_port
            .map(|port| bind("status port", port))
            .transpose()?;
        let mysql_address = mysql.local_addr().map_err(|source| ServerError::Bind {
            endpoint: "MySQL protocol",
            address: options.host.clone(),
            source,
        })?;
        let status_address = status.as_ref().and_then(|s| s.local_addr().ok());
        let flight_address = flight.as_ref().and_then(|s| s.local_addr().ok());
        let shared = Arc::new(Shared {
            instance,
            users: options.users.clone(),
            options,
            stopping: Cancel::new(),
            connections: Mutex::new(HashSet::new()),
            mysql_address,
            tls: certificate.as_ref().map(tls::Certificate::mysql_acceptor),
        });
        let mut tasks = vec![handle.spawn(mysql::accept_loop(mysql, Arc::clone(&shared)))];
        if let Some(flight) = flight {
            let tls = certificate.as_ref().map(tls::Certificate::flight_acceptor);
            tasks.push(handle.spawn(flight::serve(flight, Arc::clone(&shared), tls)));
        }
        if let Some(status) = status {
            tasks.push(handle.spawn(status::serve(status, Arc::clone(&shared))));
        }
        Ok(Server {
            shared,
            mysql_address,
            flight_address,
            status_address,
            tasks: Mutex::new(tasks),
        })
    }

    pub fn mysql_address(&self) -> SocketAddr {
        self.mysql_address
    }

    pub fn flight_address(&self) -> Option<SocketAddr> {
        self.flight_address
    }

    pub fn status_address(&self) -> Option<SocketAddr> {
        self.status_address
    }

    /// Open client connections.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.lock().len()
    }

    /// Stop, draining first: no new connections; an idle connection ends at
    /// once, a running statement finishes and its connection ends right
    /// after the answer. So a client whose pool checks a connection before
    /// using it (a ping on checkout) loses no statement to a drain, which is
    /// what a rolling update relies on. What still runs after `grace` is
    /// cancelled and its session ended (open transactions roll back).
    pub fn close(&self, grace: Duration) {
        if self.shared.stopping.is_cancelled() {
            return;
        }
        self.shared.stopping.cancel();
        let handle = self.shared.instance.handle();
        let drained_by = std::time::Instant::now() + grace;
        handle.block_on(self.connections_closed(drained_by));
        let ids: Vec<u64> = self.shared.connections.lock().iter().copied().collect();
        for id in ids {
            let _ = self.shared.instance.kill_session(id);
        }
        // A cancelled statement ends within moments; the bound only keeps a
        // stuck client from holding the stop.
        let ended_by = std::time::Instant::now() + grace.min(CANCELLED_WITHIN);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        handle.block_on(async {
            for task in tasks {
                let _ = tokio::time::timeout_at(ended_by.into(), task).await;
            }
            self.connections_closed(ended_by).await;
        });
    }

    async fn connections_closed(&self, deadline: std::time::Instant) {
        while !self.shared.connections.lock().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.stopping.is_cancelled()
    }
}

/// How long cancelled statements get to end once the drain is over.
const CANCELLED_WITHIN: Duration = Duration::from_secs(2);

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stopping.cancel();
    }
}
