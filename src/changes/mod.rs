//! Change propagation: keeps the cluster's copy of every loaded row-store table
//! equal to the row store, in small atomic batches, without ever making a
//! writer wait.
//!
//! The propagator owns the run-time state of loaded row-store tables (SCN,
//! load status, why a table is stale). A background thread wakes every
//! `interval`, when writers report `max_pending_bytes` of changes, or when a
//! query asks for read-your-writes; each wake-up is one *cycle*: in one read
//! snapshot of the file it reads the change log past the last applied
//! sequence number and the current rows of the keys it names, then applies
//! them to the cluster table by table. Because rows are read by key at the
//! snapshot, a cycle is idempotent and lands the cluster exactly on a
//! committed state of the row store: a query sees whole transactions only. A
//! cycle and a full load never overlap.
//!
//! The propagator is one consumer of the change log: it records its applied
//! position in the file, and the log is pruned only below every consumer's
//! position. A failing cycle is retried at the next wake-up and shows in
//! `global_status` until one succeeds.
//!
//! This module reads the file only through `rowstore::log`, builds tables
//! only through `load`, and learns definitions only from the catalog; it
//! parses no SQL and knows nothing of Python.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arrow::array::RecordBatch;
use parking_lot::{Condvar, Mutex};

use crate::cancel::Cancel;
use crate::catalog::{Catalog, Entry, RowTable, TableName};
use crate::cluster::Cluster;
use crate::config::PropagationConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::load::{LoadSpec, Loader, Piece, Placement};
use crate::rowstore::log::LogReader;
use crate::rowstore::{Database, RowStoreError};
use crate::store::ChangeSet;

/// The propagator's name among the change log's consumers.
pub const CONSUMER: &str = "propagator";

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
    /// Cycles that failed in a row, and why the last one did.
    pub failing_cycles: u64,
    pub last_error: Option<String>,
}

struct State {
    tables: BTreeMap<TableName, LoadedTable>,
    applied_seq: i64,
    last_pruned: i64,
    last_prune_at: Instant,
    stats: PropagationStats,
    last_reload_attempt: Option<Instant>,
}

pub struct Propagator {
    catalog: Arc<Catalog>,
    cluster: Arc<Cluster>,
    config: PropagationConfig,
    read_only: bool,
    state: Mutex<State>,
    /// Held by a cycle or a full load, with the connection they read through.
    work: Mutex<LogReader>,
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

/// Prune the log after this many applied changes, or this often.
const PRUNE_EVERY: i64 = 50_000;
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);
/// Retry an out-of-memory reload at most this often.
const RELOAD_RETRY: Duration = Duration::from_secs(1);
/// Rows per batch read from the row store.
const READ_ROWS: usize = 65_536;

impl Propagator {
    /// Bring every table marked loaded back into the cluster (from the row
    /// store's current state) and start the background thread.
    pub fn start(
        db: Arc<Database>,
        catalog: Arc<Catalog>,
        cluster: Arc<Cluster>,
        config: PropagationConfig,
    ) -> Result<Arc<Propagator>> {
        let reader = LogReader::open(&db)?;
        let seq = reader.last_seq()?;
        let propagator = Arc::new(Propagator {
            catalog: Arc::clone(&catalog),
            cluster,
            config,
            read_only: db.is_read_only(),
            state: Mutex::new(State {
                tables: BTreeMap::new(),
                applied_seq: seq,
                last_pruned: 0,
                last_prune_at: Instant::now(),
                stats: PropagationStats::default(),
                last_reload_attempt: None,
            }),
            work: Mutex::new(reader),
            wake: Condvar::new(),
            wake_flag: Mutex::new(false),
            pending_bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            running: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        for entry in catalog.entries() {
            let Entry::Row(table) = entry else { continue };
            if !table.loaded {
                continue;
            }
            if let Err(e) = propagator.load(&table.name, &Cancel::default()) {
                // The table stays marked loaded; the error is its stale reason
                // and an out-of-memory one is retried when the cluster is idle.
                propagator.mark_stale(&table, &e);
            }
        }
        propagator.record_position();
        let worker = Arc::clone(&propagator);
        let handle = std::thread::Builder::new()
            .name("lakewave-propagator".into())
            .spawn(move || worker.run())
            .map_err(Error::Runtime)?;
        propagator.running.store(true, Ordering::Release);
        *propagator.thread.lock() = Some(handle);
        Ok(propagator)
    }

    /// Whether changes are flowing: the thread runs and the last cycle
    /// succeeded.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire) && self.state.lock().stats.failing_cycles == 0
    }

    pub fn config(&self) -> &PropagationConfig {
        &self.config
    }

    /// Stop the background thread and record how far propagation got (the
    /// instance is closing).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.nudge();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
        self.running.store(false, Ordering::Release);
        self.record_position();
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
    /// turned capture on (`DbConnection::set_capture`). The rows stream from
    /// the snapshot into the cluster.
    pub fn load(&self, name: &TableName, cancel: &Cancel) -> Result<LoadedTable> {
        let reader = self.work.lock();
        let started = SystemTime::now();
        let table = self.catalog.row_table(name)?;
        let spec = LoadSpec {
            name: name.clone(),
            schema: table.schema(),
            placement: Placement::Key(table.key_names()),
            source_name: format!("the row store table {name}"),
        };
        let mut progress = |_: crate::store::LoadProgress| {};
        let mut loader = Loader::new(&self.cluster, &spec, cancel, &mut progress)?;
        let seq = reader.snapshot(|snapshot| -> Result<i64, Error> {
            let seq = snapshot.last_seq()?;
            snapshot.scan_table::<Error>(&table, READ_ROWS, &mut |batch| {
                loader.push(Piece::batch(batch))
            })?;
            Ok(seq)
        })?;
        let built = loader.finish()?;
        // The table may have been dropped while it was read.
        if !matches!(self.catalog.resolve(name), Some(Entry::Row(t)) if t.id == table.id) {
            return Err(crate::catalog::CatalogError::TableNotFound(name.clone()).into());
        }
        self.cluster.publish(built);
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
    pub fn unload(&self, name: &TableName) {
        let _work = self.work.lock();
        self.state.lock().tables.remove(name);
        self.cluster.unload(name);
    }

    /// The table was renamed in the row store: carry the cluster copy over.
    pub fn rename(&self, name: &TableName, to: &TableName) {
        let _work = self.work.lock();
        self.cluster.rename(name, to);
        let mut state = self.state.lock();
        if let Some(mut loaded) = state.tables.remove(name) {
            loaded.name = to.clone();
            state.tables.insert(to.clone(), loaded);
        }
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
            // A failing cycle is recorded by `cycle` and retried at the next
            // wake-up.
            if let Ok(false) = self.cycle_counting() {
                self.retry_out_of_memory();
            }
        }
    }

    fn cycle(&self) -> Result<()> {
        self.cycle_counting().map(|_| ())
    }

    /// One propagation cycle, recorded in the status whether it worked or
    /// not. Returns whether there was anything to apply.
    fn cycle_counting(&self) -> Result<bool> {
        let outcome = self.try_cycle();
        let mut state = self.state.lock();
        match &outcome {
            Ok(_) => {
                state.stats.failing_cycles = 0;
                state.stats.last_error = None;
            }
            Err(e) => {
                state.stats.failing_cycles += 1;
                state.stats.last_error = Some(e.chain_message());
            }
        }
        outcome
    }

    fn try_cycle(&self) -> Result<bool> {
        let reader = self.work.lock();
        let begun = Instant::now();
        let applied = self.state.lock().applied_seq;
        // A cheap look first: most cycles find nothing.
        let upto = reader.last_seq()?;
        if upto <= applied {
            drop(reader);
            self.maybe_prune();
            return Ok(false);
        }
        self.pending_bytes.store(0, Ordering::Release);
        let (upto, work) = reader.snapshot(|snapshot| {
            // Re-read inside the snapshot: the log and the rows must agree.
            let upto = snapshot.last_seq()?;
            let ids = snapshot.changed_tables(applied, upto)?;
            let mut work: Vec<TableChanges> = Vec::new();
            for id in ids {
                let Some(Entry::Row(table)) = self.catalog.by_id(id) else {
                    continue;
                };
                let available = self
                    .state
                    .lock()
                    .tables
                    .get(&table.name)
                    .is_some_and(|t| t.is_available() && t.id == table.id);
                if !available {
                    continue;
                }
                let read = snapshot
                    .changed_keys(&table, applied, upto)
                    .and_then(|keys| {
                        snapshot
                            .changed_rows(&table, applied, upto, READ_ROWS)
                            .map(|rows| (keys, rows))
                    });
                match read {
                    Ok((keys, rows)) => work.push((table, keys, rows)),
                    Err(e) => self.mark_stale(&table, &e.into()),
                }
            }
            Ok::<_, RowStoreError>((upto, work))
        })?;
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
        {
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
        }
        drop(reader);
        self.maybe_prune();
        Ok(true)
    }

    /// Record the applied position and prune what every consumer has
    /// applied, every `PRUNE_EVERY` changes or `PRUNE_INTERVAL`. Best effort
    /// and never waiting: a busy writer simply keeps the log a little longer.
    fn maybe_prune(&self) {
        let due = {
            let state = self.state.lock();
            state.applied_seq > state.last_pruned
                && (state.applied_seq - state.last_pruned >= PRUNE_EVERY
                    || state.last_prune_at.elapsed() >= PRUNE_INTERVAL)
        };
        if !due || self.read_only {
            return;
        }
        let applied = self.record_position();
        let reader = self.work.lock();
        if let Ok(Some(_)) = reader.prune() {
            let mut state = self.state.lock();
            state.last_pruned = applied;
            state.last_prune_at = Instant::now();
        }
    }

    /// Write the applied position to the file; returns it.
    fn record_position(&self) -> i64 {
        let applied = self.state.lock().applied_seq;
        if !self.read_only {
            let _ = self.work.lock().set_position(CONSUMER, applied);
        }
        applied
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
            self.cluster.unload(&name);
            if let Err(e) = self.load(&name, &Cancel::default())
                && let Ok(table) = self.catalog.row_table(&name)
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
