//! # lakewave
//!
//! An embeddable re-creation of MySQL HeatWave: a row store that owns the data,
//! an in-memory columnar cluster that runs analytic SQL, change propagation
//! between them, and a lakehouse over object storage, driven from Python.
//!
//! Modules in data-flow order; each depends only on those above it:
//!
//! ```text
//!  error, config, cancel   errors per layer, typed options, Ctrl-C
//!  catalog                 databases, table names and definitions (never data)
//!  store                   columnar partitions ▸ chunks ▸ zone maps, memory per node
//!  exec                    DataFusion table provider and scan over store snapshots
//!  rowstore                the DB system: SQLite tables, MySQL types, change capture
//!  exec                    (also) the row-store scan for queries not offloaded
//!  cluster                 nodes, placement, loading, the registry of loaded tables
//!  changes                 the propagator: change log → cluster, table load status
//!  lakehouse               reading files (Parquet now; Delta and object stores next)
//!  sql                     statements, planning, results in logical types
//!  instance                runtimes + cluster: the blocking API the bindings call
//!  python                  PyO3 bindings only (feature "python")
//! ```
//!
//! A query's path: `sql::Session::sql` parses and plans with DataFusion against
//! `sql::schema`'s catalog, whose tables are `exec::ClusterTableProvider`s over
//! immutable `store::ColumnarTable` snapshots; the scan prunes chunks by their
//! zone maps and streams one execution partition per store partition.

pub mod cancel;
pub mod catalog;
pub mod changes;
pub mod cluster;
pub mod config;
pub mod error;
pub mod exec;
pub mod instance;
pub mod lakehouse;
pub mod rowstore;
pub mod sql;
pub mod store;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, ErrorKind, Result};
