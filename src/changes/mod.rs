//! Change propagation: keeps the cluster's copy of every loaded row-store table
//! equal to the row store, in small atomic batches, without ever making a
//! writer wait.
//!
//! The propagator owns the set of loaded tables and their state (SCN, load
//! status, why a table is stale). A background thread wakes every `interval`,
//! when writers report `max_pending_bytes` of changes, or when a query asks for
//! read-your-writes; each wake-up is one *cycle*: in one SQLite read snapshot it
//! reads the change log past the last applied sequence number and the current
//! rows of the keys it names, then applies them to the cluster table by table.
//! Because rows are read by key at the snapshot, a cycle is idempotent and
//! lands the cluster exactly on a committed state of the row store: a query
//! sees whole transactions only. A cycle and a full load never overlap.
//!
//! This module reads SQLite only through `rowstore` and writes the cluster only
//! through `cluster`; it parses no SQL and knows nothing of Python.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arrow::array::RecordBatch;
use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

use crate::cancel::Cancel;
use crate::catalog::TableName;
use crate::cluster::{Cluster, LoadRequest};
use crate::config::PropagationConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::rowstore::{self, Database, RowStoreError, RowTable};
use crate::store::ChangeSet;

/// Where a loaded row-store table stands.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadStatus {
    Available,
    /// Changes could not be applied; queries run on the row store until the
    /// table is reloaded.
    Stale {
        reason: String,
        out_of_memory: bool,
    },
}

/// A loaded row-store table, as `performance_schema.rpd_tables` shows it.
#[derive(Debug, Clone)]
pub struct LoadedTable {
    pub id: i64,
    pub name: TableName,
    pub status: LoadStatus,
    /// The change sequence number the cluster copy reflects.
    pub scn: i64,
    pub load_started: SystemTime,
    pub load_finished: SystemTime,
    /// Changed rows applied since the load.
    pub changes_applied: u64,
    pub batches_applied: u64,
}

impl LoadedTable {
    pub fn is_available(&self) -> bool {
        self.status == LoadStatus::Available
    }
}

/// Figures for benchmarks and status.
#[derive(Debug, Clone, Default)]
pub struct PropagationStats {
    pub cycles: u64,
    pub batches: u64,
    pub changed_keys: u64,
    pub applied_seq: i64,
    pub last_cycle: Duration,
}

struct State {
    tables: BTreeMap<TableName, LoadedTable>,
    applied_seq: i64,
    last_pruned: i64,
    stats: PropagationStats,
    last_reload_attempt: Option<Instant>,
}

pub struct Propagator {
    db: Arc<Database>,
    cluster: Arc<Cluster>,
    config: PropagationConfig,
    state: Mutex<State>,
    /// Held by a cycle or a full load, with the connection they read through.
    work: Mutex<Connection>,
    wake: Condvar,
    wake_flag: Mutex<bool>,
    pending_bytes: AtomicU64,
    stop: AtomicBool,
    running: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// One table's part of a cycle: its definition, the changed keys and the
/// current rows of those keys.
type TableChanges = (Arc<RowTable>, RecordBatch, Vec<RecordBatch>);

/// Prune the log after this many applied changes (or once a second).
const PRUNE_EVERY: i64 = 50_000;
/// Retry an out-of-memory reload at most this often.
const RELOAD_RETRY: Duration = Duration::from_secs(1);

impl Propagator {
    /// Bring every table marked loaded back into the cluster (from the row
    /// store's current state) and start the background thread.
    pub fn start(
        db: Arc<Database>,
        cluster: Arc<Cluster>,
        config: PropagationConfig,
    ) -> Result<Arc<Propagator>> {
        let conn = db.connect()?;
        let propagator = Arc::new(Propagator {
            db: Arc::clone(&db),
            cluster,
            config,
            state: Mutex::new(State {
                tables: BTreeMap::new(),
                applied_seq: 0,
                last_pruned: 0,
                stats: PropagationStats::default(),
                last_reload_attempt: None,
            }),
            work: Mutex::new(conn),
            wake: Condvar::new(),
            wake_flag: Mutex::new(false),
            pending_bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            running: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        {
            let conn = propagator.work.lock();
            let seq = rowstore::log::last_seq(&conn).map_err(|e| {
                RowStoreError::sqlite(
                    &TableName::new("", "_lw_changes"),
                    "reading the change log",
                    e,
                )
            })?;
            propagator.state.lock().applied_seq = seq;
        }
        for table in db.tables().into_iter().filter(|t| t.loaded) {
            if let Err(e) = propagator.load(&table.name, &Cancel::default()) {
                // The table stays marked loaded; the error is its stale reason
                // and an out-of-memory one is retried when the cluster is idle.
                propagator.mark_stale(&table, &e);
            }
        }
        let worker = Arc::clone(&propagator);
        let handle = std::thread::Builder::new()
            .name("lakewave-propagator".into())
            .spawn(move || worker.run())
            .map_err(Error::Runtime)?;
        propagator.running.store(true, Ordering::Release);
        *propagator.thread.lock() = Some(handle);
        Ok(propagator)
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub fn config(&self) -> &PropagationConfig {
        &self.config
    }

    /// Stop the background thread (the instance is closing).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.nudge();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
        self.running.store(false, Ordering::Release);
    }

    fn nudge(&self) {
        *self.wake_flag.lock() = true;
        self.wake.notify_all();
    }

    /// A writer committed about `bytes` of changes: propagate early once
    /// enough are pending. Never blocks.
    pub fn note_commit(&self, bytes: u64) {
        let pending = self.pending_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if pending >= self.config.max_pending_bytes {
            self.nudge();
        }
    }

    pub fn table(&self, name: &TableName) -> Option<LoadedTable> {
        self.state.lock().tables.get(name).cloned()
    }

    pub fn tables(&self) -> Vec<LoadedTable> {
        self.state.lock().tables.values().cloned().collect()
    }

    pub fn stats(&self) -> PropagationStats {
        let state = self.state.lock();
        PropagationStats {
            applied_seq: state.applied_seq,
            ..state.stats.clone()
        }
    }

    /// Load (or reload) a row-store table into the cluster from one snapshot
    /// and start propagating its changes from that snapshot on. The caller has
    /// turned capture on (`rowstore::DbConnection::set_capture`).
    pub fn load(&self, name: &TableName, cancel: &Cancel) -> Result<LoadedTable> {
        let conn = self.work.lock();
        let started = SystemTime::now();
        let table = self
            .db
            .table(name)
            .ok_or_else(|| RowStoreError::TableNotFound(name.clone()))?;
        let sqlite_error = |e| RowStoreError::sqlite(name, "SECONDARY_LOAD", e);
        conn.execute_batch("BEGIN").map_err(sqlite_error)?;
        let snapshot = (|| -> Result<(i64, Vec<RecordBatch>)> {
            let seq = rowstore::log::last_seq(&conn).map_err(sqlite_error)?;
            let columns: Vec<usize> = (0..table.columns.len()).collect();
            let batches = rowstore::read_rows(
                &conn,
                &table,
                &columns,
                false,
                None,
                self.cluster.config().batch_rows.max(65_536),
            )?;
            Ok((seq, batches))
        })();
        let _ = conn.execute_batch("COMMIT");
        let (seq, batches) = snapshot?;
        let request = LoadRequest {
            name: name.clone(),
            primary_key: table.key_names(),
            placement_keys: Vec::new(),
            replace: true,
            source_name: format!("the row store table {name}"),
        };
        self.cluster.load(
            &request,
            table.schema(),
            Box::new(batches.into_iter().map(Ok)),
            cancel,
            &mut |_| {},
        )?;
        let loaded = LoadedTable {
            id: table.id,
            name: name.clone(),
            status: LoadStatus::Available,
            scn: seq,
            load_started: started,
            load_finished: SystemTime::now(),
            changes_applied: 0,
            batches_applied: 0,
        };
        self.state
            .lock()
            .tables
            .insert(name.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Stop propagating a table and drop its cluster copy.
    pub fn unload(&self, name: &TableName) -> Result<()> {
        let _work = self.work.lock();
        self.state.lock().tables.remove(name);
        match self.cluster.unload(name) {
            Ok(()) => Ok(()),
            Err(Error::Catalog(e)) if e.kind() == ErrorKind::TableNotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The table was renamed in the row store: carry the cluster copy over.
    pub fn rename(&self, name: &TableName, to: &TableName) -> Result<()> {
        let _work = self.work.lock();
        self.cluster.rename(name, to)?;
        let mut state = self.state.lock();
        if let Some(mut loaded) = state.tables.remove(name) {
            loaded.name = to.clone();
            state.tables.insert(to.clone(), loaded);
        }
        Ok(())
    }

    /// Mark a table stale by hand (its definition changed under it).
    pub fn mark_stale_reason(&self, name: &TableName, reason: String) {
        if let Some(loaded) = self.state.lock().tables.get_mut(name) {
            loaded.status = LoadStatus::Stale {
                reason,
                out_of_memory: false,
            };
        }
    }

    fn mark_stale(&self, table: &RowTable, error: &Error) {
        let now = SystemTime::now();
        let mut state = self.state.lock();
        let entry = state
            .tables
            .entry(table.name.clone())
            .or_insert_with(|| LoadedTable {
                id: table.id,
                name: table.name.clone(),
                status: LoadStatus::Available,
                scn: 0,
                load_started: now,
                load_finished: now,
                changes_applied: 0,
                batches_applied: 0,
            });
        entry.status = LoadStatus::Stale {
            reason: error.chain_message(),
            out_of_memory: error.kind() == ErrorKind::OutOfMemory,
        };
    }

    /// Read-your-writes: make sure every change committed so far has reached
    /// the cluster before a query reads `tables` there.
    pub fn sync(&self, tables: &[TableName]) -> Result<()> {
        if !self.config.read_your_writes || tables.is_empty() {
            return Ok(());
        }
        self.cycle()
    }

    /// Propagate everything committed so far, now (whatever the settings).
    pub fn flush(&self) -> Result<()> {
        self.cycle()
    }

    fn run(self: Arc<Self>) {
        let mut last_cycle = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            {
                let mut woken = self.wake_flag.lock();
                let deadline = last_cycle + self.config.interval;
                while !*woken && !self.stop.load(Ordering::Acquire) {
                    if self.wake.wait_until(&mut woken, deadline).timed_out() {
                        break;
                    }
                }
                *woken = false;
            }
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            last_cycle = Instant::now();
            // A failing cycle is retried at the next wake-up.
            let had_changes = self.cycle_counting().unwrap_or_default();
            if !had_changes {
                self.retry_out_of_memory();
            }
        }
    }

    fn cycle(&self) -> Result<()> {
        self.cycle_counting().map(|_| ())
    }

    /// One propagation cycle. Returns whether there was anything to apply.
    fn cycle_counting(&self) -> Result<bool> {
        let conn = self.work.lock();
        let begun = Instant::now();
        let log_error = |e| {
            RowStoreError::sqlite(
                &TableName::new("", "_lw_changes"),
                "reading the change log",
                e,
            )
        };
        let applied = self.state.lock().applied_seq;
        // A cheap look first: most cycles find nothing.
        let upto = rowstore::log::last_seq(&conn).map_err(log_error)?;
        if upto <= applied {
            return Ok(false);
        }
        self.pending_bytes.store(0, Ordering::Release);
        conn.execute_batch("BEGIN").map_err(log_error)?;
        let read = (|| -> Result<(i64, Vec<TableChanges>)> {
            // Re-read inside the snapshot: the log and the rows must agree.
            let upto = rowstore::log::last_seq(&conn).map_err(log_error)?;
            let ids = rowstore::log::changed_tables(&conn, applied, upto).map_err(log_error)?;
            let mut work = Vec::new();
            for id in ids {
                let Some(table) = self.db.table_by_id(id) else {
                    continue;
                };
                let available = self
                    .state
                    .lock()
                    .tables
                    .get(&table.name)
                    .is_some_and(|t| t.is_available());
                if !available {
                    continue;
                }
                let read =
                    rowstore::log::changed_keys(&conn, &table, applied, upto).and_then(|keys| {
                        rowstore::log::changed_rows(&conn, &table, applied, upto, 65_536)
                            .map(|rows| (keys, rows))
                    });
                match read {
                    Ok((keys, rows)) => work.push((table, keys, rows)),
                    Err(e) => self.mark_stale(&table, &e.into()),
                }
            }
            Ok((upto, work))
        })();
        let _ = conn.execute_batch("COMMIT");
        let (upto, work) = read?;
        for (table, keys, rows) in work {
            let changes = ChangeSet {
                keys: &keys,
                rows: &rows,
            };
            match self.cluster.apply_changes(&table.name, &changes) {
                Ok(_) => {
                    let mut state = self.state.lock();
                    state.stats.batches += 1;
                    state.stats.changed_keys += keys.num_rows() as u64;
                    if let Some(loaded) = state.tables.get_mut(&table.name) {
                        loaded.scn = upto;
                        loaded.changes_applied += keys.num_rows() as u64;
                        loaded.batches_applied += 1;
                    }
                }
                Err(e) => self.mark_stale(&table, &e),
            }
        }
        let prune = {
            let mut state = self.state.lock();
            state.applied_seq = upto;
            state.stats.cycles += 1;
            state.stats.last_cycle = begun.elapsed();
            // Available tables without changes are current as of `upto` too.
            for loaded in state.tables.values_mut() {
                if loaded.is_available() && loaded.scn < upto {
                    loaded.scn = upto;
                }
            }
            upto - state.last_pruned >= PRUNE_EVERY
        };
        if prune {
            // Best effort and never waiting: a busy writer simply keeps the
            // log a little longer.
            let _ = conn.busy_timeout(Duration::from_millis(0));
            if rowstore::log::prune(&conn, upto).is_ok() {
                self.state.lock().last_pruned = upto;
            }
            let _ = conn.busy_timeout(Duration::from_secs(10));
        }
        Ok(true)
    }

    /// A table made stale by running out of memory is reloaded once the
    /// cluster is idle (no changes pending), at most once per `RELOAD_RETRY`.
    fn retry_out_of_memory(&self) {
        let candidates: Vec<TableName> = {
            let mut state = self.state.lock();
            if state
                .last_reload_attempt
                .is_some_and(|t| t.elapsed() < RELOAD_RETRY)
            {
                return;
            }
            let names: Vec<TableName> = state
                .tables
                .values()
                .filter(|t| {
                    matches!(
                        t.status,
                        LoadStatus::Stale {
                            out_of_memory: true,
                            ..
                        }
                    )
                })
                .map(|t| t.name.clone())
                .collect();
            if !names.is_empty() {
                state.last_reload_attempt = Some(Instant::now());
            }
            names
        };
        for name in candidates {
            // Free the stale copy first: it is what filled the memory.
            let _ = self.cluster.unload(&name);
            if let Err(e) = self.load(&name, &Cancel::default())
                && let Some(table) = self.db.table(&name)
            {
                self.mark_stale(&table, &e);
            }
        }
    }
}

impl Drop for Propagator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}
