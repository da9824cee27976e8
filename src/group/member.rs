//! One member of an HA group, running inside an instance: its Raft (log,
//! state machine, transport), the commit gate every session's transaction
//! passes, what sessions ask of the group (writable? read barrier,
//! replicated statements) and its role as the status port reports it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use rusqlite::Connection;
use serde_json::json;

use super::GroupError;
use super::file::{GroupFile, MemberKind, MemberSpec};
use super::log::LogStore;
use super::raft::{self, Network, Raft, Request, Token};
use super::state::{Handover, Pending, StateMachine, Waiter, write_applied};
use crate::cancel::Cancel;
use crate::instance::Instance;
use crate::rowstore::changeset::Captured;
use crate::rowstore::{CommitGate, CommitTicket};
use crate::sql::{QueryResult, Replication, abbreviate};

/// How long a voter other than the first waits for a leader before it forms
/// the group itself.
const FORM_ALONE_AFTER: Duration = Duration::from_secs(5);

/// How often a member looks at the group's membership (replicas to add).
const RECONCILE_EVERY: Duration = Duration::from_millis(500);

/// A running member. Dropping it does not stop it; [`Member::stop`] does.
pub struct Member {
    inner: Arc<Inner>,
}

struct Inner {
    spec: MemberSpec,
    file: GroupFile,
    raft: Raft,
    log: LogStore,
    pending: Arc<Pending>,
    incarnation: u64,
    sequence: AtomicU64,
    runtime: tokio::runtime::Handle,
    /// Closed on the primary for a controlled switchover: writes wait out.
    writes_open: AtomicBool,
    /// When a leader last reached this member.
    last_contact: Mutex<Option<Instant>>,
    /// When this member last had applied everything in its log.
    caught_up_at: Mutex<Option<Instant>>,
    started: Instant,
    stopping: Cancel,
    /// Authorises the status port's administration requests; kept in the
    /// member's directory (`admin.token`, owner-only) for the local CLI.
    admin_token: String,
    /// Connections to the other members (for read indexes).
    network: Network,
    /// The shape and configuration this process runs with.
    shape: BTreeMap<String, String>,
    config: BTreeMap<String, String>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source");
    bytes
}

fn incarnation() -> u64 {
    u64::from_le_bytes(random_bytes())
}

/// A new administration token, written owner-only to `path`.
fn write_admin_token(path: &std::path::Path) -> Result<String, GroupError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let token: String = random_bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let failed = |e: std::io::Error| GroupError::File {
        path: path.display().to_string(),
        message: format!("the administration token cannot be written: {e}"),
    };
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.write_all(token.as_bytes()).map_err(failed)?;
    Ok(token)
}

impl Member {
    /// Join `instance` to the group of `file` as `name`: open the member's
    /// log, start its Raft and its Raft port, and route every session's
    /// commits and statements through the group from now on. Voting members
    /// form the group the first time they start (all with the same list).
    /// `running` is the options this process was started with (the group's,
    /// the member's own, any given on the command line): what `status`
    /// reports as its shape and configuration.
    pub fn start(
        instance: &Arc<Instance>,
        file: GroupFile,
        name: &str,
        running: BTreeMap<String, String>,
    ) -> crate::Result<Member> {
        let spec = file.member(name)?.clone();
        let services = Arc::clone(instance.services());
        if services.source.is_some() {
            return Err(GroupError::Unsupported {
                member: spec.name.clone(),
                what: "an HA group of instances attached to a MariaDB server (the server has its \
                       own replication)"
                    .into(),
            }
            .into());
        }
        if services.db.is_scratch() {
            return Err(GroupError::Unsupported {
                member: spec.name.clone(),
                what: "a group member without a database file".into(),
            }
            .into());
        }
        std::fs::create_dir_all(&spec.dir).map_err(|e| GroupError::File {
            path: spec.dir.display().to_string(),
            message: format!("the member's directory cannot be created: {e}"),
        })?;
        let log = LogStore::open(&spec.dir.join("raft.db"))?;
        let pending = Arc::new(Pending::default());
        let incarnation = incarnation();
        let machine = StateMachine::open(
            Arc::clone(&services),
            Arc::clone(&pending),
            (spec.id, incarnation),
        )?;
        let config = Config {
            cluster_name: file.name.clone(),
            // A follower that hears nothing for the leader's lease (the
            // maximum) plus a random election timeout campaigns: 1.5-2 s
            // after a primary dies, ten missed heartbeats at the least.
            heartbeat_interval: 150,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            snapshot_policy: SnapshotPolicy::Never,
            max_payload_entries: 64,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| GroupError::Raft {
            member: spec.name.clone(),
            action: "configuring Raft",
            message: e.to_string(),
        })?;
        let runtime = instance.handle();
        let network = Network::default();
        let raft = runtime
            .block_on(Raft::new(
                spec.id,
                Arc::new(config),
                network.clone(),
                log.clone(),
                machine,
            ))
            .map_err(|e| GroupError::Raft {
                member: spec.name.clone(),
                action: "starting Raft",
                message: e.to_string(),
            })?;
        let address = file.raft_address(&spec);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(&address))
            .map_err(|source| GroupError::Listen {
                member: spec.name.clone(),
                address: address.clone(),
                source,
            })?;
        let admin_token = write_admin_token(&spec.dir.join("admin.token"))?;
        let (shape, config): (BTreeMap<_, _>, BTreeMap<_, _>) = running
            .into_iter()
            .partition(|(k, _)| super::file::SHAPE_KEYS.contains(&k.as_str()));
        let inner = Arc::new(Inner {
            network,
            shape,
            config,
            admin_token,
            spec,
            file,
            raft: raft.clone(),
            log,
            pending,
            incarnation,
            sequence: AtomicU64::new(0),
            runtime: runtime.clone(),
            writes_open: AtomicBool::new(true),
            last_contact: Mutex::new(None),
            caught_up_at: Mutex::new(None),
            started: Instant::now(),
            stopping: Cancel::new(),
        });
        let contact = {
            let inner = Arc::downgrade(&inner);
            Arc::new(move || {
                if let Some(inner) = inner.upgrade() {
                    *inner.last_contact.lock() = Some(Instant::now());
                }
            })
        };
        runtime.spawn(raft::serve(
            listener,
            raft.clone(),
            contact,
            inner.stopping.clone(),
        ));
        if inner.spec.role == MemberKind::Voter {
            let voters: BTreeMap<u64, BasicNode> = inner
                .file
                .voters()
                .map(|m| (m.id, BasicNode::new(inner.file.raft_address(m))))
                .collect();
            // The first voter forms the group at once; the others only if
            // no leader has reached them after a while (the first is down).
            // A voter that initialised while a leader was being elected
            // would campaign at once and depose it.
            let first = inner.file.voters().map(|m| m.id).min() == Some(inner.spec.id);
            let wait = if first {
                Duration::ZERO
            } else {
                FORM_ALONE_AFTER
            };
            let raft = raft.clone();
            let stopping = inner.stopping.clone();
            runtime.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping.cancelled() => return,
                }
                if raft.is_initialized().await == Ok(false) {
                    // The same list on every voter: a second initialisation
                    // of a formed group is refused, which is what it wanted.
                    let _ = raft.initialize(voters).await;
                }
            });
        }
        runtime.spawn(reconcile(Arc::downgrade(&inner)));
        runtime.spawn(watch_applied(Arc::downgrade(&inner), raft.metrics()));
        let member = Member { inner };
        services
            .db
            .set_commit_gate(Arc::new(Gate(Arc::clone(&member.inner))));
        let _ = services
            .group
            .set(Arc::new(Sessions(Arc::clone(&member.inner))));
        Ok(member)
    }

    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// `GET /role/primary`: the primary, with writes open.
    pub fn is_writable_primary(&self) -> bool {
        self.inner.ready_primary() && self.inner.writes_open.load(Ordering::Acquire)
    }

    /// `GET /role/readable`: can serve reads within the lag bound.
    pub fn is_readable(&self) -> bool {
        self.inner.readable()
    }

    /// Close or open writes on this member (a switchover closes them on the
    /// primary first).
    pub fn set_writes_open(&self, open: bool) {
        self.inner.writes_open.store(open, Ordering::Release);
    }

    /// The member's state as `lakewave group status` shows it.
    pub fn status(&self) -> serde_json::Value {
        self.inner.status()
    }

    /// Stop taking part: the Raft port closes and Raft shuts down.
    pub fn stop(&self) {
        self.inner.stopping.cancel();
        let _ = std::fs::remove_file(self.inner.spec.dir.join("admin.token"));
        let raft = self.inner.raft.clone();
        let _ = self.inner.runtime.block_on(async move {
            tokio::time::timeout(Duration::from_secs(5), raft.shutdown()).await
        });
    }
}

impl Inner {
    fn metrics(&self) -> openraft::RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The leader of the current term, with everything before its term
    /// applied (openraft commits a blank entry when a term starts).
    fn ready_primary(&self) -> bool {
        let m = self.metrics();
        m.state == ServerState::Leader
            && m.current_leader == Some(self.spec.id)
            && m.last_applied
                .is_some_and(|applied| applied.leader_id.term == m.current_term)
    }

    fn readable(&self) -> bool {
        if self.ready_primary() {
            return true;
        }
        let m = self.metrics();
        let within =
            |at: &Option<Instant>| at.is_some_and(|at| at.elapsed() <= self.file.max_replica_lag);
        // Heard from the primary, and applied all it had received, no longer
        // than the lag bound ago.
        m.current_leader.is_some()
            && within(&self.last_contact.lock())
            && within(&self.caught_up_at.lock())
    }

    fn member_name(&self, id: Option<u64>) -> Option<String> {
        id.and_then(|id| self.file.member_by_id(id))
            .map(|m| m.name.clone())
    }

    fn not_primary(&self, statement: &str) -> crate::Error {
        let m = self.metrics();
        GroupError::NotPrimary {
            member: self.spec.name.clone(),
            primary: self.member_name(m.current_leader),
            statement: abbreviate(statement),
        }
        .into()
    }

    fn check_writable(&self, statement: &str) -> crate::Result<()> {
        if !self.writes_open.load(Ordering::Acquire) {
            return Err(GroupError::WritesClosed {
                member: self.spec.name.clone(),
                statement: abbreviate(statement),
            }
            .into());
        }
        if self.ready_primary() {
            Ok(())
        } else {
            Err(self.not_primary(statement))
        }
    }

    fn token(&self) -> Token {
        Token {
            member: self.spec.id,
            incarnation: self.incarnation,
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn proposal_error(
        &self,
        error: RaftError<u64, ClientWriteError<u64, BasicNode>>,
        statement: &str,
    ) -> crate::Error {
        // Once proposed, an entry may still be committed by a newer primary
        // (a majority may have it): the outcome is unknown, never "refused".
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => GroupError::LostPrimary {
                member: self.spec.name.clone(),
                primary: self.member_name(self.metrics().current_leader),
                statement: abbreviate(statement),
            }
            .into(),
            other => GroupError::Raft {
                member: self.spec.name.clone(),
                action: "replicating a commit",
                message: other.to_string(),
            }
            .into(),
        }
    }

    fn status(&self) -> serde_json::Value {
        let m = self.metrics();
        let role = if m.state == ServerState::Leader {
            "primary"
        } else if self.spec.role == MemberKind::Replica {
            "replica"
        } else {
            "secondary"
        };
        let state = if m.running_state.is_err() {
            "ERROR"
        } else if self.readable() {
            "ONLINE"
        } else {
            "RECOVERING"
        };
        let replication: serde_json::Map<String, serde_json::Value> = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter_map(|(id, matched)| {
                        let name = self.member_name(Some(*id))?;
                        Some((name, json!(matched.map(|l| l.index))))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let membership = m.membership_config.membership();
        let voters: Vec<String> = membership
            .voter_ids()
            .filter_map(|id| self.member_name(Some(id)))
            .collect();
        let learners: Vec<String> = membership
            .learner_ids()
            .filter_map(|id| self.member_name(Some(id)))
            .collect();
        json!({
            "group": self.file.name,
            "name": self.spec.name,
            "id": self.spec.id,
            "kind": match self.spec.role { MemberKind::Voter => "voter", MemberKind::Replica => "replica" },
            "role": role,
            "state": state,
            "writable": self.ready_primary() && self.writes_open.load(Ordering::Acquire),
            "writes_open": self.writes_open.load(Ordering::Acquire),
            "readable": self.readable(),
            "term": m.current_term,
            "primary": self.member_name(m.current_leader),
            "last_log_index": m.last_log_index,
            "applied_index": m.last_applied.map(|l| l.index),
            "last_contact_ms": self.last_contact.lock().map(|at| at.elapsed().as_millis() as u64),
            "replication": replication,
            "voters": voters,
            "learners": learners,
            "shape": self.shape,
            "config": self.config,
            "log_file": self.log.path().display().to_string(),
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs(),
            "error": m.running_state.as_ref().err().map(|e| e.to_string()),
        })
    }
}

/// Keeps the membership what the file says: the primary adds the read
/// replicas as learners (non-voting, asynchronous).
async fn reconcile(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(RECONCILE_EVERY).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.stopping.is_cancelled() {
            return;
        }
        if !inner.ready_primary() {
            continue;
        }
        let m = inner.metrics();
        let known: BTreeSet<u64> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        let missing: BTreeMap<u64, BasicNode> = inner
            .file
            .replicas()
            .filter(|r| !known.contains(&r.id))
            .map(|r| (r.id, BasicNode::new(inner.file.raft_address(r))))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let raft = inner.raft.clone();
        drop(inner);
        for (id, node) in missing {
            let _ = raft.add_learner(id, node, false).await;
        }
    }
}

/// Notes each moment the member has applied everything in its log (what
/// its lag bound is measured from).
async fn watch_applied(
    inner: std::sync::Weak<Inner>,
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
) {
    while metrics.changed().await.is_ok() {
        let caught_up = {
            let m = metrics.borrow();
            m.last_log_index == m.last_applied.map(|l| l.index)
        };
        let Some(inner) = inner.upgrade() else { return };
        if caught_up {
            *inner.caught_up_at.lock() = Some(Instant::now());
        }
    }
}

/// Every session's commit on this member passes here.
struct Gate(Arc<Inner>);

struct Ticket(Option<tokio::sync::oneshot::Sender<bool>>);

impl CommitTicket for Ticket {
    fn finished(mut self: Box<Self>, committed: bool) {
        if let Some(done) = self.0.take() {
            let _ = done.send(committed);
        }
    }
}

impl CommitGate for Gate {
    fn prepare(
        &self,
        conn: &Connection,
        captured: Captured,
    ) -> crate::Result<Box<dyn CommitTicket>> {
        let inner = &self.0;
        if captured.catalog_changed {
            return Err(GroupError::OutsideTheLog {
                member: inner.spec.name.clone(),
            }
            .into());
        }
        if captured.changes.is_empty() {
            return Ok(Box::new(Ticket(None)));
        }
        // A transaction that reaches COMMIT while writes are closed for a
        // switchover waits (at most the commit timeout) and then commits here
        // or fails: after the switchover this member is no longer the primary.
        let deadline = Instant::now() + inner.file.commit_timeout;
        while !inner.writes_open.load(Ordering::Acquire)
            && inner.ready_primary()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        inner.check_writable("COMMIT")?;
        let token = inner.token();
        let (handover, handed) = std::sync::mpsc::channel();
        inner
            .pending
            .insert(token, Waiter::Commit(handover.clone()));
        let raft = inner.raft.clone();
        let request = Request::Changes {
            origin: token,
            changes: captured.changes,
        };
        let proposer = Arc::clone(inner);
        inner.runtime.spawn(async move {
            if let Err(error) = raft.client_write(request).await {
                let _ = handover.send(Handover::Failed(proposer.proposal_error(error, "COMMIT")));
            }
        });
        let deadline = Instant::now() + inner.file.commit_timeout;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match handed.recv_timeout(wait) {
                Ok(Handover::Commit { log_id, done }) => {
                    if let Err(e) = write_applied(conn, &log_id) {
                        let _ = done.send(false);
                        return Err(GroupError::Storage {
                            path: "(the member's database)".into(),
                            action: "recording the applied position",
                            source: e,
                        }
                        .into());
                    }
                    return Ok(Box::new(Ticket(Some(done))));
                }
                Ok(Handover::Failed(error)) => {
                    if inner.pending.take(&token).is_some() {
                        return Err(error);
                    }
                    // The state machine took the proposal: its commit is coming.
                }
                Err(_) => {
                    if inner.pending.take(&token).is_some() {
                        return Err(GroupError::CommitUnknown {
                            member: inner.spec.name.clone(),
                            waited: inner.file.commit_timeout,
                        }
                        .into());
                    }
                }
            }
        }
    }
}

/// What sessions on this member ask of the group.
struct Sessions(Arc<Inner>);

#[async_trait]
impl Replication for Sessions {
    fn is_writable_primary(&self) -> bool {
        self.0.ready_primary() && self.0.writes_open.load(Ordering::Acquire)
    }

    fn is_readable(&self) -> bool {
        self.0.readable()
    }

    fn status(&self) -> serde_json::Value {
        self.0.status()
    }

    fn admits(&self, token: &str) -> bool {
        let expected = self.0.admin_token.as_bytes();
        let given = token.as_bytes();
        expected.len() == given.len()
            && expected
                .iter()
                .zip(given)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    async fn admin(
        &self,
        action: &str,
        enabled: Option<bool>,
    ) -> std::result::Result<serde_json::Value, String> {
        let inner = &self.0;
        let flag = || enabled.ok_or_else(|| format!("'{action}' takes enabled=0 or enabled=1"));
        match action {
            "writes" => inner.writes_open.store(flag()?, Ordering::Release),
            "elect" => inner.raft.runtime_config().elect(flag()?),
            "heartbeat" => inner.raft.runtime_config().heartbeat(flag()?),
            "campaign" => inner.raft.trigger().elect().await.map_err(|e| {
                format!("member '{}' cannot start an election: {e}", inner.spec.name)
            })?,
            other => {
                return Err(format!(
                    "unknown action '{other}' (writes, elect, heartbeat, campaign)"
                ));
            }
        }
        Ok(inner.status())
    }

    async fn check_writable(&self, statement: &str) -> crate::Result<()> {
        let deadline = Instant::now() + self.0.file.commit_timeout;
        while !self.0.writes_open.load(Ordering::Acquire)
            && self.0.ready_primary()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.0.check_writable(statement)
    }

    async fn before_read(&self, statement: &str) -> crate::Result<()> {
        let inner = &self.0;
        let unconfirmed = || -> crate::Error {
            GroupError::Unconfirmed {
                member: inner.spec.name.clone(),
                statement: abbreviate(statement),
            }
            .into()
        };
        let deadline = Instant::now() + inner.file.commit_timeout;
        let mut metrics = inner.raft.metrics();
        loop {
            let m = metrics.borrow_and_update().clone();
            if m.state == ServerState::Leader {
                return match tokio::time::timeout_at(
                    deadline.into(),
                    inner.raft.ensure_linearizable(),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(RaftError::APIError(
                        openraft::error::CheckIsLeaderError::ForwardToLeader(_),
                    ))) => Err(inner.not_primary(statement)),
                    _ => Err(unconfirmed()),
                };
            }
            if inner.spec.role == MemberKind::Replica {
                // A read replica reads what it has (asynchronous, within the
                // lag bound HAProxy checks).
                return Ok(());
            }
            // A secondary (or a deposed primary) reads as of the primary's
            // read index: nothing acknowledged before the read began is
            // missing. Between two primaries the read waits for the next one,
            // as a MySQL group's reads with consistency BEFORE do.
            let leader = m
                .current_leader
                .filter(|id| *id != inner.spec.id)
                .and_then(|id| inner.file.member_by_id(id));
            if let Some(leader) = leader {
                let address = inner.file.raft_address(leader);
                let wait = deadline.saturating_duration_since(Instant::now());
                if let Ok(index) = inner.network.read_index(&address, wait).await {
                    let Some(index) = index else { return Ok(()) };
                    let wait = deadline.saturating_duration_since(Instant::now());
                    return inner
                        .raft
                        .wait(Some(wait))
                        .applied_index_at_least(Some(index.index), "the read index")
                        .await
                        .map(|_| ())
                        .map_err(|_| unconfirmed());
                }
            }
            // No primary known, or the one known no longer is: wait for the
            // membership to move on, then ask again.
            let changed = tokio::time::timeout_at(deadline.into(), async {
                let _ = metrics.changed().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            })
            .await;
            if changed.is_err() || Instant::now() >= deadline {
                return Err(unconfirmed());
            }
        }
    }

    async fn replicate(&self, text: &str, database: &str) -> crate::Result<QueryResult> {
        let inner = Arc::clone(&self.0);
        let token = inner.token();
        let (outcome_tx, outcome) = tokio::sync::oneshot::channel();
        inner.pending.insert(token, Waiter::Statement(outcome_tx));
        let request = Request::Statement {
            origin: token,
            database: database.to_string(),
            text: text.to_string(),
        };
        let proposed =
            tokio::time::timeout(inner.file.commit_timeout, inner.raft.client_write(request)).await;
        let failure = match proposed {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(inner.proposal_error(error, text)),
            Err(_) => Some(
                GroupError::CommitUnknown {
                    member: inner.spec.name.clone(),
                    waited: inner.file.commit_timeout,
                }
                .into(),
            ),
        };
        if let Some(error) = failure
            && inner.pending.take(&token).is_some()
        {
            return Err(error);
        }
        // Applied here before client_write returned.
        match outcome.await {
            Ok(result) => result,
            Err(_) => Err(GroupError::Raft {
                member: inner.spec.name.clone(),
                action: "running a replicated statement",
                message: "the state machine stopped".into(),
            }
            .into()),
        }
    }
}
