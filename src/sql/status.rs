//! `performance_schema`: HeatWave's status tables, built from live state on every
//! lookup. Column names are lower case (DataFusion folds unquoted identifiers),
//! so HeatWave's queries, written in upper case, work as they are.
//!
//! - `global_status(variable_name, variable_value)`
//! - `rpd_table_id(id, name, schema_name, table_name)`
//! - `rpd_tables(id, snapshot_scn, persisted_scn, pool_type, data_placement_type,
//!   nrows, load_status, load_progress, size_bytes, stale_reason,
//!   load_start_timestamp, load_end_timestamp, source_position, source_gtid,
//!   recovery_source)`
//! - `rpd_nodes(id, status, memory_usage, memory_total, baserel_memory_usage,
//!   num_partitions)`
//! - `processlist(id, user, host, db, command, time, state, info)`

use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::MemTable;

use super::Services;
use crate::catalog::{Entry, TableName};
use crate::changes::LoadStatus;
use crate::source::SourceStatus;

const TABLES: [&str; 5] = [
    "global_status",
    "processlist",
    "rpd_nodes",
    "rpd_table_id",
    "rpd_tables",
];

pub struct PerformanceSchema {
    services: Arc<Services>,
}

impl std::fmt::Debug for PerformanceSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PerformanceSchema")
    }
}

impl PerformanceSchema {
    pub fn new(services: Arc<Services>) -> Self {
        PerformanceSchema { services }
    }
}

/// One row of `rpd_tables` joined with `rpd_table_id`.
#[derive(Debug, Clone)]
pub struct TableRow {
    pub id: i64,
    pub name: TableName,
    pub snapshot_scn: i64,
    /// The SCN the table's persisted copy is at (a source table's
    /// checkpoint); the snapshot SCN where the copy is rebuilt from the DB
    /// system itself.
    pub persisted_scn: i64,
    /// Where the copy was last recovered from: `MySQL` (the DB system),
    /// `Checkpoint` (a source table's checkpoint); `NULL` for tables loaded
    /// from files or Arrow data.
    pub recovery_source: Option<&'static str>,
    pub pool_type: &'static str,
    pub placement: &'static str,
    pub rows: i64,
    pub load_status: &'static str,
    pub size_bytes: i64,
    pub stale_reason: Option<String>,
    pub load_started: Option<SystemTime>,
    pub load_finished: Option<SystemTime>,
    /// For a table of an attached server: the binlog position its copy is
    /// current at (`binlog.000003:1234`); `snapshot_scn` encodes it as
    /// file number × 2³² + offset.
    pub source_position: Option<String>,
    /// And the GTID of the last transaction applied, when the server sends GTIDs.
    pub source_gtid: Option<String>,
}

/// `global_status` and `SHOW STATUS`: name and value of every status variable.
pub fn global_status(services: &Services) -> Vec<(String, String)> {
    let stats = services.propagator.stats();
    let on_off = |b: bool| if b { "ON" } else { "OFF" };
    let vars: Vec<(&str, String)> = vec![
        (
            "rapid_change_propagation_status",
            on_off(services.propagator.is_running()).into(),
        ),
        (
            "rapid_change_propagation_failures",
            stats.failing_cycles.to_string(),
        ),
        (
            "rapid_change_propagation_last_error",
            stats.last_error.clone().unwrap_or_default(),
        ),
        ("threads_connected", services.sessions.count().to_string()),
        ("uptime", services.started.elapsed().as_secs().to_string()),
        ("rapid_service_status", "ON".into()),
        ("rapid_cluster_status", "ON".into()),
        (
            "rapid_cluster_nodes",
            services.cluster.node_status().len().to_string(),
        ),
        (
            "rapid_change_propagation_batches",
            stats.batches.to_string(),
        ),
        (
            "rapid_change_propagation_changes",
            stats.changed_keys.to_string(),
        ),
        (
            "rapid_change_propagation_scn",
            stats.applied_seq.to_string(),
        ),
    ];
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Tables loaded straight into the cluster get ids above the row store's.
const DIRECT_ID_BASE: i64 = 1 << 40;

/// Every table that is (or was meant to be) in the cluster.
pub fn table_rows(services: &Services) -> Vec<TableRow> {
    let mut rows = Vec::new();
    let statuses = services.cluster.table_status();
    let propagated = services.propagator.tables();
    let stats = services.propagator.stats();
    // While cycles fail, every propagated table may be behind: say why.
    let failing = stats.last_error.as_ref().map(|error| {
        format!(
            "change propagation is failing ({} cycles in a row): {error}",
            stats.failing_cycles
        )
    });
    for loaded in &propagated {
        let status = statuses.iter().find(|s| s.name == loaded.name);
        let (load_status, reason) = match &loaded.status {
            LoadStatus::Available => ("AVAIL_RPDGSTABSTATE", failing.clone()),
            LoadStatus::Stale { reason, .. } => ("STALE_RPDGSTABSTATE", Some(reason.clone())),
        };
        rows.push(TableRow {
            id: loaded.id,
            name: loaded.name.clone(),
            snapshot_scn: loaded.scn,
            persisted_scn: loaded.scn,
            recovery_source: Some("MySQL"),
            pool_type: "TRANSACTIONAL",
            placement: "PrimaryKey",
            rows: status.map(|s| s.rows as i64).unwrap_or(0),
            load_status,
            size_bytes: status.map(|s| s.bytes as i64).unwrap_or(0),
            stale_reason: reason,
            load_started: Some(loaded.load_started),
            load_finished: Some(loaded.load_finished),
            source_position: None,
            source_gtid: None,
        });
    }
    let sourced = services
        .source
        .as_ref()
        .map(|source| source.tables())
        .unwrap_or_default();
    let tail_error = services.source.as_ref().and_then(|s| s.tail_error());
    for (index, table) in sourced.iter().enumerate() {
        let name = &table.def.name;
        let status = statuses.iter().find(|s| &s.name == name);
        let (load_status, reason) = match &table.status {
            SourceStatus::Available => ("AVAIL_RPDGSTABSTATE", tail_error.clone()),
            SourceStatus::Loading => ("LOADING_RPDGSTABSTATE", None),
            SourceStatus::Stale { reason } => ("STALE_RPDGSTABSTATE", Some(reason.clone())),
        };
        rows.push(TableRow {
            id: services
                .catalog
                .resolve(name)
                .map(|e| e.id())
                .unwrap_or(SOURCE_ID_BASE + index as i64),
            name: name.clone(),
            snapshot_scn: table.scn.as_ref().map_or(0, |p| p.as_scn()),
            persisted_scn: table.persisted.as_ref().map_or(0, |p| p.as_scn()),
            recovery_source: Some(table.recovery.as_str()),
            pool_type: "TRANSACTIONAL",
            placement: "PrimaryKey",
            rows: status.map(|s| s.rows as i64).unwrap_or(0),
            load_status,
            size_bytes: status.map(|s| s.bytes as i64).unwrap_or(0),
            stale_reason: reason,
            load_started: Some(table.load_started),
            load_finished: table.load_finished,
            source_position: table.scn.as_ref().map(|p| p.to_string()),
            source_gtid: table.scn.as_ref().and_then(|p| p.gtid.clone()),
        });
    }
    for (index, status) in statuses
        .iter()
        .filter(|s| !propagated.iter().any(|p| p.name == s.name))
        .filter(|s| !sourced.iter().any(|t| t.def.name == s.name))
        .enumerate()
    {
        let entry = services.catalog.resolve(&status.name);
        let keyed = matches!(&entry, Some(Entry::Cluster(t))
            if !matches!(t.placement, crate::catalog::Placement::RoundRobin));
        // External tables show the Delta version they hold.
        let loaded = services.externals.loaded(&status.name);
        let id = entry
            .as_ref()
            .map(Entry::id)
            .unwrap_or(DIRECT_ID_BASE + index as i64);
        let snapshot_scn = loaded
            .as_ref()
            .and_then(|l| l.version)
            .unwrap_or(status.version as i64);
        rows.push(TableRow {
            id,
            name: status.name.clone(),
            snapshot_scn,
            persisted_scn: snapshot_scn,
            recovery_source: None,
            pool_type: "SNAPSHOT",
            placement: if keyed { "PrimaryKey" } else { "RoundRobin" },
            rows: status.rows as i64,
            load_status: "AVAIL_RPDGSTABSTATE",
            size_bytes: status.bytes as i64,
            stale_reason: loaded.and_then(|l| l.refresh_error),
            load_started: None,
            load_finished: None,
            source_position: None,
            source_gtid: None,
        });
    }
    rows.sort_by_key(|r| r.id);
    rows
}

/// Ids of source tables not (or no longer) in the catalog.
const SOURCE_ID_BASE: i64 = 3_000_000_000;

fn micros(t: Option<SystemTime>) -> Option<i64> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as i64)
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

impl PerformanceSchema {
    fn build(&self, name: &str) -> Option<(SchemaRef, Vec<ArrayRef>)> {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        let int = |n: &str| Field::new(n, DataType::Int64, true);
        match name {
            "global_status" => {
                let vars = global_status(&self.services);
                Some((
                    Arc::new(Schema::new(vec![
                        text("variable_name"),
                        text("variable_value"),
                    ])),
                    vec![
                        strings(vars.iter().map(|(k, _)| Some(k.as_str()))),
                        strings(vars.iter().map(|(_, v)| Some(v.as_str()))),
                    ],
                ))
            }
            "rpd_nodes" => {
                let nodes = self.services.cluster.node_status();
                Some((
                    Arc::new(Schema::new(vec![
                        int("id"),
                        text("status"),
                        int("memory_usage"),
                        int("memory_total"),
                        int("baserel_memory_usage"),
                        int("num_partitions"),
                    ])),
                    vec![
                        Arc::new(Int64Array::from_iter_values(
                            nodes.iter().map(|n| n.id as i64),
                        )),
                        strings(nodes.iter().map(|_| Some("AVAIL_RNSTATE"))),
                        Arc::new(Int64Array::from_iter_values(
                            nodes.iter().map(|n| n.used as i64),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            nodes.iter().map(|n| n.budget as i64),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            nodes.iter().map(|n| n.used as i64),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            nodes.iter().map(|n| n.partitions as i64),
                        )),
                    ],
                ))
            }
            "rpd_table_id" => {
                let rows = table_rows(&self.services);
                let names: Vec<String> = rows.iter().map(|r| r.name.to_string()).collect();
                Some((
                    Arc::new(Schema::new(vec![
                        int("id"),
                        text("name"),
                        text("schema_name"),
                        text("table_name"),
                    ])),
                    vec![
                        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
                        strings(names.iter().map(|n| Some(n.as_str()))),
                        strings(rows.iter().map(|r| Some(r.name.database.as_str()))),
                        strings(rows.iter().map(|r| Some(r.name.table.as_str()))),
                    ],
                ))
            }
            "rpd_tables" => {
                let rows = table_rows(&self.services);
                let timestamp = |n: &str| {
                    Field::new(
                        n,
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                        true,
                    )
                };
                Some((
                    Arc::new(Schema::new(vec![
                        int("id"),
                        int("snapshot_scn"),
                        int("persisted_scn"),
                        text("pool_type"),
                        text("data_placement_type"),
                        int("nrows"),
                        text("load_status"),
                        Field::new("load_progress", DataType::Float64, true),
                        int("size_bytes"),
                        text("stale_reason"),
                        timestamp("load_start_timestamp"),
                        timestamp("load_end_timestamp"),
                        text("source_position"),
                        text("source_gtid"),
                        text("recovery_source"),
                    ])),
                    vec![
                        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
                        Arc::new(Int64Array::from_iter_values(
                            rows.iter().map(|r| r.snapshot_scn),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            rows.iter().map(|r| r.persisted_scn),
                        )),
                        strings(rows.iter().map(|r| Some(r.pool_type))),
                        strings(rows.iter().map(|r| Some(r.placement))),
                        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.rows))),
                        strings(rows.iter().map(|r| Some(r.load_status))),
                        Arc::new(Float64Array::from_iter_values(rows.iter().map(|_| 100.0))),
                        Arc::new(Int64Array::from_iter_values(
                            rows.iter().map(|r| r.size_bytes),
                        )),
                        strings(rows.iter().map(|r| r.stale_reason.as_deref())),
                        Arc::new(
                            rows.iter()
                                .map(|r| micros(r.load_started))
                                .collect::<TimestampMicrosecondArray>()
                                .with_timezone("UTC"),
                        ),
                        Arc::new(
                            rows.iter()
                                .map(|r| micros(r.load_finished))
                                .collect::<TimestampMicrosecondArray>()
                                .with_timezone("UTC"),
                        ),
                        strings(rows.iter().map(|r| r.source_position.as_deref())),
                        strings(rows.iter().map(|r| r.source_gtid.as_deref())),
                        strings(rows.iter().map(|r| r.recovery_source)),
                    ],
                ))
            }
            "processlist" => {
                let sessions = self.services.sessions.list();
                Some((
                    Arc::new(Schema::new(vec![
                        int("id"),
                        text("user"),
                        text("host"),
                        text("db"),
                        text("command"),
                        int("time"),
                        text("state"),
                        text("info"),
                    ])),
                    process_columns(&sessions),
                ))
            }
            _ => None,
        }
    }
}

/// The columns of a process list (`SHOW PROCESSLIST` and
/// `performance_schema.processlist`).
pub(super) fn process_columns(sessions: &[super::ProcessInfo]) -> Vec<ArrayRef> {
    vec![
        Arc::new(Int64Array::from_iter_values(
            sessions.iter().map(|s| s.id as i64),
        )),
        strings(sessions.iter().map(|s| Some(s.user.as_str()))),
        strings(sessions.iter().map(|s| Some(s.host.as_str()))),
        strings(sessions.iter().map(|s| Some(s.database.as_str()))),
        strings(sessions.iter().map(|s| Some(s.command))),
        Arc::new(Int64Array::from_iter_values(
            sessions.iter().map(|s| s.time as i64),
        )),
        strings(sessions.iter().map(|s| Some(s.state))),
        strings(sessions.iter().map(|s| s.info.as_deref())),
    ]
}

#[async_trait]
impl SchemaProvider for PerformanceSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some((schema, columns)) = self.build(name) else {
            return Ok(None);
        };
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        Ok(Some(Arc::new(MemTable::try_new(
            schema,
            vec![vec![batch]],
        )?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}
