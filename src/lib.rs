//! # lakewave
//!
//! An embeddable re-creation of MySQL HeatWave: a row store that owns the data,
//! an in-memory columnar cluster that runs analytic SQL, change propagation
//! between them, and a lakehouse over object storage, driven from Python.
//!
//! Modules in data-flow order; each depends only on those above it:
//!
//! ```text
//!  error, config, cancel   errors per layer (MySQL numbers), typed options, cancellation
//!  catalog                 the one namespace: tables, cluster tables, external tables, views
//!  store                   columnar partitions ▸ chunks ▸ zone maps, memory per node, builders
//!  exec                    DataFusion providers and scans over store snapshots and row scanners
//!  rowstore                the DB system: SQLite tables, persisted catalog, change log, consumers
//!  source                  a MariaDB server as the DB system: snapshots, the binlog reader, its connections
//!  cluster                 nodes, placement, the registry of loaded snapshots
//!  lakehouse               reading files: Parquet, CSV, JSON, Avro, Delta, object stores
//!  load                    the one loading path: any batch stream ▸ chunks, by key/round-robin/file
//!  changes                 the propagator: change log → cluster, table load status
//!  sql                     sessions, name resolution and routing, statements, results
//!  instance                the front door: opens an instance, hands out sessions
//!  group                   an HA group: group file, Raft (openraft) log and state machine, commit gate
//!  server                  network endpoints over an instance: MySQL protocol, status port
//!  python                  PyO3 bindings only (feature "python"), through `instance`
//! ```
//!
//! A query's path: `sql::Session::sql` parses a statement, resolves every
//! name it reads in the `catalog` once (`sql::resolve`), which decides the
//! engine and takes the snapshots it will read; DataFusion plans against
//! exactly those, as `exec::ClusterTableProvider`s over immutable
//! `store::ColumnarTable` snapshots (chunks pruned by zone maps, one execution
//! partition per store partition) or `exec::RowsTableProvider`s over the
//! session's row-store connection.

pub mod cancel;
pub mod catalog;
pub mod changes;
pub mod cluster;
pub mod config;
pub mod error;
pub mod exec;
pub mod group;
pub mod instance;
pub mod lakehouse;
pub mod load;
pub mod rowstore;
pub mod server;
pub mod source;
pub mod sql;
pub mod store;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, ErrorKind, Result};

/// One allocator for the extension, the servers and the tests: result
/// buffers are allocated and freed per batch on every query, and mimalloc
/// keeps the pages for reuse where glibc returns large blocks to the kernel
/// (every query then pays for page faults and zeroing).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
