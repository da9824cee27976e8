//! `lakewave._internal.GroupMember` and the group file functions behind
//! `lakewave group ...` and `lakewave serve --group`. Conversions only: the
//! group is `crate::group`.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;

use super::errors::to_pyerr;
use crate::group::{GroupFile, Member};

#[pyclass(frozen, module = "lakewave._internal")]
pub struct GroupMember {
    pub(super) inner: Member,
}

#[pymethods]
impl GroupMember {
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The member's role, state and positions, as JSON text.
    fn status(&self, py: Python<'_>) -> String {
        py.detach(|| self.inner.status().to_string())
    }

    fn is_writable_primary(&self) -> bool {
        self.inner.is_writable_primary()
    }

    fn is_readable(&self) -> bool {
        self.inner.is_readable()
    }

    fn set_writes_open(&self, open: bool) {
        self.inner.set_writes_open(open);
    }

    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.inner.stop());
    }
}

pub(super) fn join(
    py: Python<'_>,
    instance: &std::sync::Arc<crate::instance::Instance>,
    file: &Path,
    member: &str,
    running: std::collections::BTreeMap<String, String>,
) -> PyResult<GroupMember> {
    let inner = py
        .detach(|| -> crate::Result<Member> {
            let file = GroupFile::read(file)?;
            Member::start(instance, file, member, running)
        })
        .map_err(to_pyerr)?;
    Ok(GroupMember { inner })
}

/// The group file, read and checked, as JSON text (for the CLI).
#[pyfunction]
pub fn group_file(path: PathBuf) -> PyResult<String> {
    let file = GroupFile::read(&path).map_err(|e| to_pyerr(e.into()))?;
    let members: Vec<serde_json::Value> = file
        .members
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name, "id": m.id, "role": m.role, "dir": m.dir,
                "mysql_port": m.mysql_port, "flight_port": m.flight_port,
                "status_port": m.status_port, "raft_port": m.raft_port,
                "shape": file.shape_of(m), "config": file.config_of(m),
                "overrides": {"shape": m.shape, "config": m.config},
            })
        })
        .collect();
    Ok(serde_json::json!({
        "path": file.path,
        "name": file.name,
        "host": file.host,
        "read_write_port": file.read_write_port,
        "read_only_port": file.read_only_port,
        "haproxy_stats_port": file.haproxy_stats_port,
        "users_file": file.users_file,
        "max_replica_lag_s": file.max_replica_lag.as_secs_f64(),
        "commit_timeout_s": file.commit_timeout.as_secs_f64(),
        "shape": file.shape,
        "config": file.config,
        "members": members,
    })
    .to_string())
}

/// The text `lakewave group init` writes.
#[pyfunction]
#[pyo3(signature = (name, dir, members, replicas, base_port, users_file=None))]
pub fn group_init_text(
    name: &str,
    dir: PathBuf,
    members: usize,
    replicas: usize,
    base_port: u16,
    users_file: Option<PathBuf>,
) -> PyResult<String> {
    crate::group::init_text(
        name,
        &dir,
        members,
        replicas,
        base_port,
        users_file.as_deref(),
    )
    .map_err(|e| to_pyerr(e.into()))
}

/// The HAProxy configuration for a group file's endpoints.
#[pyfunction]
#[pyo3(signature = (path, runtime_socket=None))]
pub fn group_haproxy_config(path: PathBuf, runtime_socket: Option<PathBuf>) -> PyResult<String> {
    let file = GroupFile::read(&path).map_err(|e| to_pyerr(e.into()))?;
    Ok(file.haproxy_config(runtime_socket.as_deref()))
}

/// A users-file line that keeps `password` only as its digests.
#[pyfunction]
pub fn users_file_line(user: &str, password: &str) -> String {
    crate::server::users::Account::digest_line(user, password)
}

/// The group file's text with new shape and config values (checked).
#[pyfunction]
#[pyo3(signature = (path, shape, config, member=None))]
pub fn group_updated_text(
    path: PathBuf,
    shape: Vec<(String, String)>,
    config: Vec<(String, String)>,
    member: Option<String>,
) -> PyResult<String> {
    crate::group::updated_text(&path, &shape, &config, member.as_deref())
        .map_err(|e| to_pyerr(e.into()))
}
