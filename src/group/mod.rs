//! The HA group: a primary and secondaries that vote, and read replicas
//! that follow, each a lakewave instance with its own database file and its
//! own cluster. Consensus is openraft's (`raft`): a transaction commits on
//! the primary only once a majority of the voting members has its row
//! changes in their logs (RPO 0), every member applies committed entries in
//! order and exactly once to its own file (`state`), and its own propagator
//! keeps its own cluster current. Statements that change definitions or
//! what the cluster holds travel as text and run on every member.
//!
//! What travels is row images, not statements: a changeset is exactly what
//! the transaction left (`rowstore::changeset`), so non-deterministic SQL,
//! auto-increment values and concurrent sessions cannot make members differ,
//! and applying it on a member fires that member's capture triggers like any
//! write, which is how its propagator sees it.
//!
//! This module owns the group file (`file`), the Raft log (`log`) and the
//! member (`member`). It reaches sessions only through `sql::Replication`
//! and the database only through `rowstore`'s commit gate; it starts no
//! network endpoint but its own Raft port (the MySQL and Flight endpoints
//! and the status port are `server`'s).

pub mod file;
mod log;
mod member;
mod raft;
mod state;

use std::time::Duration;

use thiserror::Error;

use crate::error::{ErrorKind, MySqlCode, codes};
pub use file::{GroupFile, MemberKind, MemberSpec, init_text, updated_text};
pub use member::Member;

#[derive(Debug, Error)]
pub enum GroupError {
    #[error("group file {path}: {message}")]
    File { path: String, message: String },
    #[error("group file {path} has no member '{name}' (its members: {known})")]
    UnknownMember {
        path: String,
        name: String,
        known: String,
    },
    #[error(
        "member '{member}' is not the primary{}; `{statement}` must run on the primary \
         (the read/write endpoint)",
        primary.as_ref().map(|p| format!(" ('{p}' is)")).unwrap_or_else(|| " (the group has none now)".into())
    )]
    NotPrimary {
        member: String,
        primary: Option<String>,
        statement: String,
    },
    #[error(
        "member '{member}' could not confirm with a majority of the group that it is still the \
         primary; `{statement}` was not run (it could miss writes a newer primary acknowledged)"
    )]
    Unconfirmed { member: String, statement: String },
    #[error(
        "member '{member}' stopped being the primary while `{statement}` was committing{}; it \
         was rolled back here, and is applied after all if a majority of the group received it",
        primary.as_ref().map(|p| format!(" ('{p}' is now)")).unwrap_or_default()
    )]
    LostPrimary {
        member: String,
        primary: Option<String>,
        statement: String,
    },
    #[error("member '{member}' has closed writes for a switchover; `{statement}` was not run")]
    WritesClosed { member: String, statement: String },
    #[error(
        "member '{member}' could not confirm the commit within {waited:?}: no majority of the \
         group answered. The transaction was rolled back here; if a majority received it, it \
         will still be applied"
    )]
    CommitUnknown { member: String, waited: Duration },
    #[error(
        "member '{member}': a definition changed outside the group's log; DDL on a group member \
         must go through a session"
    )]
    OutsideTheLog { member: String },
    #[error("member '{member}' failed while {action}: {message}")]
    Raft {
        member: String,
        action: &'static str,
        message: String,
    },
    #[error("member '{member}' cannot listen on {address} for the group's Raft port")]
    Listen {
        member: String,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: SQLite failed while {action}")]
    Storage {
        path: String,
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("member '{member}': {what} is not supported")]
    Unsupported { member: String, what: String },
}

/// MySQL Group Replication's refusal of a commit by its hook
/// (ER_RUN_HOOK_ERROR), which is what a client of a MySQL group sees.
const RUN_HOOK_ERROR: MySqlCode = MySqlCode::new(3100, "HY000");
/// ER_OPTION_PREVENTS_STATEMENT: a secondary runs with super_read_only.
const READ_ONLY: MySqlCode = MySqlCode::new(1290, "HY000");

impl GroupError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            GroupError::File { .. } | GroupError::UnknownMember { .. } => ErrorKind::Interface,
            GroupError::Unsupported { .. } => ErrorKind::NotSupported,
            _ => ErrorKind::Operational,
        }
    }

    pub fn code(&self) -> MySqlCode {
        match self {
            GroupError::File { .. } | GroupError::UnknownMember { .. } => codes::WRONG_ARGUMENTS,
            GroupError::NotPrimary { .. } | GroupError::WritesClosed { .. } => READ_ONLY,
            GroupError::CommitUnknown { .. }
            | GroupError::LostPrimary { .. }
            | GroupError::OutsideTheLog { .. }
            | GroupError::Unconfirmed { .. } => RUN_HOOK_ERROR,
            GroupError::Raft { .. } => codes::UNKNOWN_ERROR,
            GroupError::Listen { .. } => MySqlCode::new(1081, "08S01"),
            GroupError::Storage { .. } => codes::GET_ERRNO,
            GroupError::Unsupported { .. } => codes::NOT_SUPPORTED_YET,
        }
    }
}
