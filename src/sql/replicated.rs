//! Sessions on a member of an HA group. Which statements the group must
//! see, and how: a write statement runs here and its transaction's row
//! changes pass the database's commit gate (the group replicates them before
//! they commit); a statement that changes definitions or what the cluster
//! holds (DDL, `SECONDARY_LOAD`, external tables, loads) is replicated as
//! text and run by every member in log order; a read runs here, after the
//! group confirms (on the primary) that nothing acknowledged is missing.
//!
//! The group itself (consensus, membership, roles) is `crate::group`; this
//! module only defines what a session asks of it ([`Replication`]) and sorts
//! statements, so that `sql` does not depend on `group`.

use async_trait::async_trait;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use super::{QueryResult, Session, SqlError, abbreviate};
use crate::error::Result;

/// What a session on a group member needs from the group.
#[async_trait]
pub trait Replication: Send + Sync {
    /// `Err` when this member may not write (it is not the primary), naming
    /// the primary. While the primary has closed writes for a switchover,
    /// waits for them to open again (at most the commit timeout), as new
    /// transactions wait in a MySQL group during a primary change.
    async fn check_writable(&self, statement: &str) -> Result<()>;

    /// Before a read: wait until every write acknowledged before now is
    /// applied here, so that no read sees older data than a write
    /// acknowledged before it began (the primary confirms it still leads; a
    /// secondary waits for the primary's read index). A read replica reads
    /// what it has applied, within its lag bound.
    async fn before_read(&self, statement: &str) -> Result<()>;

    /// Run `text` (in `database`) on every member in log order; returns this
    /// member's own outcome of it.
    async fn replicate(&self, text: &str, database: &str) -> Result<QueryResult>;

    /// The primary, with writes open (what `GET /role/primary` answers).
    fn is_writable_primary(&self) -> bool;

    /// Serves reads within the group's lag bound (`GET /role/readable`).
    fn is_readable(&self) -> bool;

    /// The member's role, state and positions, as JSON (`GET /group`).
    fn status(&self) -> serde_json::Value;

    /// Whether `token` is this member's administration token (the one in
    /// its directory's `admin.token`).
    fn admits(&self, token: &str) -> bool;

    /// An administration action (`lakewave group switchover` drives them):
    /// `writes` (open or close writes), `elect` (may this member start
    /// elections), `heartbeat` (does it, as primary, send heartbeats),
    /// `campaign` (start an election now). The member's status after it.
    async fn admin(
        &self,
        action: &str,
        enabled: Option<bool>,
    ) -> std::result::Result<serde_json::Value, String>;
}

/// How a statement runs on a group member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GroupRoute {
    /// Reads: here, after [`Replication::before_read`].
    Read,
    /// Row writes: here, on the primary only; the commit gate replicates them.
    Write,
    /// Replicated as text, run by every member.
    Replicate,
    /// Session-local (SET, USE, transaction control, KILL...).
    Local,
}

impl Session {
    pub(super) fn group_route(&self, piece: &str) -> GroupRoute {
        if let Some(custom) = super::split::parse_custom(piece) {
            return match custom {
                super::split::Custom::SecondaryLoad(_)
                | super::split::Custom::SecondaryUnload(_)
                | super::split::Custom::SecondaryEngine(..) => GroupRoute::Replicate,
                super::split::Custom::ShowProcessList | super::split::Custom::Kill { .. } => {
                    GroupRoute::Local
                }
            };
        }
        if matches!(super::set::parse_set(piece), Ok(Some(_))) {
            return GroupRoute::Local;
        }
        if super::external_ddl::is_external_ddl(piece) {
            return GroupRoute::Replicate;
        }
        let Ok(Some(statement)) = self.parse(piece) else {
            // Not parsed: the normal path reports the error.
            return GroupRoute::Local;
        };
        match statement {
            datafusion::sql::parser::Statement::Statement(inner) => route_of(&inner),
            datafusion::sql::parser::Statement::Explain(_) => GroupRoute::Read,
            _ => GroupRoute::Local,
        }
    }

    /// A statement every member must run: the open transaction commits
    /// first (as DDL does in MySQL), then the group runs it.
    pub(super) async fn replicate_statement(
        &self,
        group: &dyn Replication,
        piece: &str,
        has_params: bool,
    ) -> Result<QueryResult> {
        if has_params {
            return Err(SqlError::NotSupported {
                statement: abbreviate(piece),
                what: "parameters in a statement an HA group replicates as text".into(),
            }
            .into());
        }
        group.check_writable(piece).await?;
        self.blocking(piece, |conn| conn.commit()).await?;
        group.replicate(piece, &self.current_database()).await
    }
}

fn route_of(statement: &SqlStatement) -> GroupRoute {
    match statement {
        SqlStatement::Query(_)
        | SqlStatement::Explain { .. }
        | SqlStatement::ExplainTable { .. }
        | SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ShowDatabases { .. }
        | SqlStatement::ShowSchemas { .. }
        | SqlStatement::ShowVariables { .. }
        | SqlStatement::ShowVariable { .. }
        | SqlStatement::ShowStatus { .. }
        | SqlStatement::ShowCreate { .. }
        | SqlStatement::ShowFunctions { .. }
        | SqlStatement::ShowCollation { .. } => GroupRoute::Read,
        SqlStatement::Insert(_) | SqlStatement::Update(_) | SqlStatement::Delete(_) => {
            GroupRoute::Write
        }
        SqlStatement::CreateTable(_)
        | SqlStatement::CreateView(_)
        | SqlStatement::CreateIndex(_)
        | SqlStatement::Drop { .. }
        | SqlStatement::CreateDatabase { .. }
        | SqlStatement::CreateSchema { .. }
        | SqlStatement::Truncate(_)
        | SqlStatement::AlterTable(_)
        | SqlStatement::RenameTable(_)
        | SqlStatement::Call(_) => GroupRoute::Replicate,
        _ => GroupRoute::Local,
    }
}
