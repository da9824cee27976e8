//! `lakewave._internal.Server`: a running network endpoint of an instance
//! (`Connection.serve`). Conversions only: the server is `crate::server`.

use std::path::Path;
use std::time::Duration;

use pyo3::prelude::*;

use super::errors::to_pyerr;
use crate::server::{ServerError, ServerOptions, TlsFiles, Users};

#[pyclass(frozen, module = "lakewave._internal")]
pub struct Server {
    inner: crate::server::Server,
    host: String,
}

/// The accounts from the arguments of `serve()`: a users file, or one user.
pub(super) fn users(
    user: &str,
    password: &str,
    users_file: Option<&str>,
    check_user: Option<&str>,
) -> PyResult<Users> {
    let mut users = match users_file {
        Some(path) => Users::from_file(Path::new(path)).map_err(|e| to_pyerr(e.into()))?,
        None => Users::single(user, password, None),
    };
    if let Some(check) = check_user {
        users.add_check_user(check);
    }
    Ok(users)
}

/// A certificate and its key, given together or not at all.
pub(super) fn tls_files(
    certificate: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> PyResult<Option<TlsFiles>> {
    match (certificate, key) {
        (Some(certificate), Some(key)) => Ok(Some(TlsFiles { certificate, key })),
        (None, None) => Ok(None),
        _ => Err(to_pyerr(
            ServerError::Option {
                name: "tls".into(),
                message: "give both a certificate and its key".into(),
            }
            .into(),
        )),
    }
}

impl Server {
    pub(super) fn start(
        py: Python<'_>,
        instance: std::sync::Arc<crate::instance::Instance>,
        options: ServerOptions,
    ) -> PyResult<Server> {
        let host = options.host.clone();
        let inner = py
            .detach(move || crate::server::Server::start(instance, options))
            .map_err(to_pyerr)?;
        Ok(Server { inner, host })
    }
}

#[pymethods]
impl Server {
    #[getter]
    fn host(&self) -> &str {
        &self.host
    }

    #[getter]
    fn mysql_port(&self) -> u16 {
        self.inner.mysql_address().port()
    }

    #[getter]
    fn flight_port(&self) -> Option<u16> {
        self.inner.flight_address().map(|a| a.port())
    }

    #[getter]
    fn status_port(&self) -> Option<u16> {
        self.inner.status_address().map(|a| a.port())
    }

    #[getter]
    fn connections(&self) -> usize {
        self.inner.connection_count()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stop listening and drain: idle connections end at once, running
    /// statements get `grace` seconds to finish (their connection ends after
    /// the answer), then what still runs is cancelled.
    #[pyo3(signature = (grace=5.0))]
    fn close(&self, py: Python<'_>, grace: f64) {
        let grace = Duration::from_secs_f64(grace.clamp(0.0, 3600.0));
        py.detach(|| self.inner.close(grace));
    }
}
