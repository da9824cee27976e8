//! Loading a source table: its definition from the server, a consistent
//! snapshot read without locking writers (MariaDB's `START TRANSACTION WITH
//! CONSISTENT SNAPSHOT` and its `binlog_snapshot_file/_position`), and the
//! switch to following the binlog from exactly that position. The binlog
//! reader runs before the snapshot starts and keeps the table's changes
//! aside while it loads; those after the snapshot's position are applied
//! when it is in, so no change is lost or applied twice.
//!
//! Which tables are loaded is kept in the instance's metadata file, so that
//! a restart brings them back (from their checkpoints, see [`super::checkpoint`],
//! or from new snapshots).

use std::sync::Arc;
use std::time::SystemTime;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::server::{self, query_rows, text_of};
use super::types::{Kind, Origin, RowsBuilder, SourceColumn, parse_labels};
use super::{
    Position, Recovery, Source, SourceError, SourceStatus, SourceTable, TableDef, Tracked,
};
use crate::cancel::Cancel;
use crate::catalog::{ClusterTable, Entry, Placement as CatalogPlacement, TableName};
use crate::error::{Error, Result};
use crate::load::{LoadSpec, Loader, Piece, Placement};

/// Rows per batch handed to the loader.
const SNAPSHOT_BATCH_ROWS: usize = 65_536;

/// Character sets whose binlog bytes lakewave can read as text.
const READABLE_CHARSETS: &[&str] = &["utf8mb4", "utf8mb3", "utf8", "ascii", "latin1", "binary"];

fn quote(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

fn quoted(name: &TableName) -> String {
    format!("{}.{}", quote(&name.database), quote(&name.table))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

impl Source {
    /// `ALTER TABLE t SECONDARY_LOAD` for a table of the server.
    pub async fn load(self: &Arc<Self>, name: &TableName, cancel: &Cancel) -> Result<SourceTable> {
        let started = SystemTime::now();
        let mut conn = server::connect(&self.config, None).await?;
        let def = Arc::new(self.describe(&mut conn, name).await?);
        self.ensure_tail(&mut conn, None).await?;
        let load = self.track_loading(&def, None, started);
        let loaded = self.read_snapshot(&mut conn, &def, cancel).await;
        let _ = conn.disconnect().await;
        let (built, at) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                self.mark_stale(name, format!("loading failed: {}", error.chain_message()));
                return Err(error);
            }
        };
        self.switch_to_binlog(&def, built, at, load, Recovery::Server)
            .await?;
        self.remember(name).await?;
        Ok(self.table(name).expect("just loaded"))
    }

    /// Track `def` as loading from now on: the binlog reader keeps its
    /// changes aside (those after `from`, when the copy's position is known
    /// already) until the copy is in. The id returned names this load: a
    /// later one supersedes it.
    pub(super) fn track_loading(
        &self,
        def: &Arc<TableDef>,
        from: Option<Position>,
        started: SystemTime,
    ) -> u64 {
        let load = self
            .next_load
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut state = self.state.lock();
        let previous = state.tables.remove(&def.name);
        state.tables.insert(
            def.name.clone(),
            Tracked {
                table: SourceTable {
                    def: Arc::clone(def),
                    status: SourceStatus::Loading,
                    scn: None,
                    persisted: previous.as_ref().and_then(|p| p.table.persisted.clone()),
                    recovery: Recovery::Server,
                    load_started: started,
                    load_finished: None,
                    changes_applied: previous.as_ref().map_or(0, |p| p.table.changes_applied),
                    batches_applied: previous.as_ref().map_or(0, |p| p.table.batches_applied),
                },
                load,
                from,
                buffer: Default::default(),
                checkpointed_changes: None,
            },
        );
        load
    }

    /// How a table of the server is built in the cluster: hash-placed by
    /// its primary key.
    pub(super) fn load_spec(&self, def: &TableDef) -> LoadSpec {
        LoadSpec {
            name: def.name.clone(),
            schema: super::types::schema_of(&def.columns),
            placement: Placement::Key(def.key_names()),
            source_name: format!("the source table {} on {}", def.name, self.server()),
        }
    }

    /// Columns, key and loadability of a table, from the server.
    pub(super) async fn describe(&self, conn: &mut Conn, name: &TableName) -> Result<TableDef> {
        let columns_query = format!(
            "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, CHARACTER_SET_NAME, COLUMN_KEY \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
             ORDER BY ORDINAL_POSITION",
            literal(&name.database),
            literal(&name.table)
        );
        let described = query_rows(conn, &self.config, &columns_query).await?;
        if described.is_empty() {
            return Err(SourceError::TableNotFound {
                table: name.clone(),
                server: self.server(),
            }
            .into());
        }
        let engine_query = format!(
            "SELECT ENGINE, TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            literal(&name.database),
            literal(&name.table)
        );
        let engine = query_rows(conn, &self.config, &engine_query).await?;
        let (engine, table_type) = engine
            .first()
            .map(|r| {
                (
                    text_of(r, 0).unwrap_or_default(),
                    text_of(r, 1).unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        if table_type.eq_ignore_ascii_case("VIEW") {
            return Err(SourceError::Unloadable {
                table: name.clone(),
                reason: "it is a view; load the tables it reads".into(),
            }
            .into());
        }
        if !engine.eq_ignore_ascii_case("InnoDB") {
            return Err(SourceError::Unloadable {
                table: name.clone(),
                reason: format!(
                    "its engine is {engine}; a consistent snapshot needs InnoDB (ALTER TABLE ... ENGINE=InnoDB)"
                ),
            }
            .into());
        }
        // The result metadata of an empty read gives the types exactly as
        // statements run on the server return them.
        let probe = format!("SELECT * FROM {} LIMIT 0", quoted(name));
        let result = conn
            .query_iter(probe.as_str())
            .await
            .map_err(|e| server::server_error(&self.config, &probe, e))?;
        let metadata = result.columns().unwrap_or_else(|| Arc::from(Vec::new()));
        result
            .drop_result()
            .await
            .map_err(|e| server::server_error(&self.config, &probe, e))?;
        if metadata.len() != described.len() {
            return Err(SourceError::Unloadable {
                table: name.clone(),
                reason: "its definition changed while it was read; try again".into(),
            }
            .into());
        }
        let mut columns = Vec::with_capacity(described.len());
        let mut key = Vec::new();
        for (index, (row, column)) in described.iter().zip(metadata.iter()).enumerate() {
            let mut def = SourceColumn::of_column(column);
            let column_type = text_of(row, 1).unwrap_or_default();
            let data_type = text_of(row, 2).unwrap_or_default().to_ascii_lowercase();
            let charset = text_of(row, 3).map(|c| c.to_ascii_lowercase());
            match data_type.as_str() {
                "enum" => def.kind = Kind::Enum(parse_labels(&column_type)),
                "set" => def.kind = Kind::Set(parse_labels(&column_type)),
                "geometry" | "point" | "linestring" | "polygon" | "multipoint"
                | "multilinestring" | "multipolygon" | "geometrycollection" => {
                    def.kind = Kind::Unsupported(data_type.to_ascii_uppercase())
                }
                _ => {}
            }
            if let Some(charset) = &charset {
                if !READABLE_CHARSETS.contains(&charset.as_str()) {
                    return Err(SourceError::Unloadable {
                        table: name.clone(),
                        reason: format!(
                            "column `{}` is in character set {charset}; the cluster reads utf8mb4, \
                             utf8mb3, ascii and latin1 (ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4)",
                            def.name
                        ),
                    }
                    .into());
                }
                if let Kind::Text { latin1 } = &mut def.kind {
                    *latin1 = charset == "latin1";
                }
            }
            if let Some(reason) = def.kind.unloadable() {
                return Err(SourceError::Unloadable {
                    table: name.clone(),
                    reason: format!("column `{}`: {reason}", def.name),
                }
                .into());
            }
            if text_of(row, 4).as_deref() == Some("PRI") {
                key.push(index);
            }
            columns.push(def);
        }
        // COLUMN_KEY marks key columns in table order; the key's own order
        // comes from the index.
        let key_query = format!(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {} \
             AND TABLE_NAME = {} AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            literal(&name.database),
            literal(&name.table)
        );
        let key_rows = query_rows(conn, &self.config, &key_query).await?;
        let ordered: Vec<usize> = key_rows
            .iter()
            .filter_map(|r| text_of(r, 0))
            .filter_map(|n| columns.iter().position(|c| c.name == n))
            .collect();
        if !ordered.is_empty() {
            key = ordered;
        }
        if key.is_empty() {
            return Err(SourceError::NoPrimaryKey {
                table: name.clone(),
            }
            .into());
        }
        Ok(TableDef {
            name: name.clone(),
            columns,
            key,
        })
    }

    /// Read the table in a consistent snapshot; the built (unpublished)
    /// cluster table and the binlog position the snapshot is at.
    async fn read_snapshot(
        &self,
        conn: &mut Conn,
        def: &Arc<TableDef>,
        cancel: &Cancel,
    ) -> Result<(crate::store::ColumnarTable, Position)> {
        let config = &self.config;
        for statement in [
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        ] {
            conn.query_drop(statement)
                .await
                .map_err(|e| server::server_error(config, statement, e))?;
        }
        let status = query_rows(conn, config, "SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
        let mut file = None;
        let mut offset = None;
        for row in &status {
            match text_of(row, 0).as_deref() {
                Some("Binlog_snapshot_file") => file = text_of(row, 1),
                Some("Binlog_snapshot_position") => {
                    offset = text_of(row, 1).and_then(|p| p.parse().ok())
                }
                _ => {}
            }
        }
        let (Some(file), Some(offset)) = (file.filter(|f| !f.is_empty()), offset) else {
            return Err(SourceError::Preflight {
                server: self.server(),
                problems: vec![
                    "the server reports no binlog_snapshot_file (log_bin must be ON)".into(),
                ],
            }
            .into());
        };
        let at = Position {
            file,
            offset,
            gtid: None,
        };
        let spec = self.load_spec(def);
        // The loader runs on a blocking thread; batches reach it through a
        // bounded channel, so reading the server and building chunks overlap.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<RecordBatch>(2);
        let cluster = Arc::clone(&self.cluster);
        let loader_cancel = cancel.clone();
        let builder =
            tokio::task::spawn_blocking(move || -> Result<crate::store::ColumnarTable> {
                let mut progress = |_: crate::store::LoadProgress| {};
                let mut loader = Loader::new(&cluster, &spec, &loader_cancel, &mut progress)?;
                while let Some(batch) = receiver.blocking_recv() {
                    loader.push(Piece::batch(batch))?;
                }
                loader.finish()
            });
        let select = format!(
            "SELECT {} FROM {}",
            def.columns
                .iter()
                .map(|c| quote(&c.name))
                .collect::<Vec<_>>()
                .join(", "),
            quoted(&def.name)
        );
        let read = async {
            let mut result = conn
                .query_iter(select.as_str())
                .await
                .map_err(|e| server::server_error(config, &select, e))?;
            let mut rows = RowsBuilder::new(&def.columns, Origin::Text);
            let mut stream = result
                .stream::<Row>()
                .await
                .map_err(|e| server::server_error(config, &select, e))?
                .ok_or_else(|| SourceError::Value {
                    table: def.name.clone(),
                    message: "the snapshot read returned no result set".into(),
                })?;
            use futures::StreamExt;
            while let Some(row) = stream.next().await {
                let row = row.map_err(|e| server::server_error(config, &select, e))?;
                rows.push_row(&row.unwrap())
                    .map_err(|message| SourceError::Value {
                        table: def.name.clone(),
                        message,
                    })?;
                if rows.len() >= SNAPSHOT_BATCH_ROWS && sender.send(rows.finish()).await.is_err() {
                    // The loader stopped: its error is the one to report.
                    return Ok(());
                }
            }
            if !rows.is_empty() {
                let _ = sender.send(rows.finish()).await;
            }
            Ok::<(), Error>(())
        };
        let read = cancel.run(read).await;
        drop(sender);
        let built = builder.await.map_err(|e| super::task_failed(&select, e))?;
        let _ = conn.query_drop("COMMIT").await;
        match read {
            None => Err(Error::Interrupted {
                what: format!("loading {}", def.name),
            }),
            Some(Err(error)) => Err(error),
            Some(Ok(())) => Ok((built?, at)),
        }
    }

    /// Publish a copy current at `at` (a snapshot, or a checkpoint), apply
    /// what the binlog brought since that position, and follow the binlog
    /// from there on.
    pub(super) async fn switch_to_binlog(
        &self,
        def: &Arc<TableDef>,
        built: crate::store::ColumnarTable,
        at: Position,
        load: u64,
        recovery: Recovery,
    ) -> Result<()> {
        let _apply = self.apply.lock().await;
        let name = &def.name;
        let buffered = {
            let mut state = self.state.lock();
            match state.tables.get_mut(name) {
                Some(tracked)
                    if tracked.load == load && tracked.table.status == SourceStatus::Loading =>
                {
                    std::mem::take(&mut tracked.buffer)
                }
                // A newer load took over (its buffer is its own), or the
                // table was unloaded or dropped while it was read.
                Some(tracked) if tracked.load != load => {
                    return Err(SourceError::Unloadable {
                        table: name.clone(),
                        reason: "a newer load of it started while it was loading".into(),
                    }
                    .into());
                }
                _ => {
                    return Err(SourceError::Unloadable {
                        table: name.clone(),
                        reason: "it was unloaded, dropped or changed while it was loading".into(),
                    }
                    .into());
                }
            }
        };
        if !self.catalog.has_database(&name.database) {
            let _ = self.catalog.create_database(&name.database);
        }
        self.cluster.publish(built);
        let entry = Entry::Cluster(Arc::new(ClusterTable {
            id: self.catalog.transient_id(),
            name: name.clone(),
            schema: super::types::schema_of(&def.columns),
            primary_key: def.key_names(),
            placement: CatalogPlacement::Hash(def.key_names()),
        }));
        self.catalog.replace(entry)?;
        let later: Vec<super::Change> = buffered
            .into_values()
            .filter(|change| change.end > at)
            .collect();
        let applied = self
            .applied()
            .filter(|a| *a > at)
            .unwrap_or_else(|| at.clone());
        let count = later.len() as u64;
        if !later.is_empty() {
            self.apply_to_cluster(def, later).await?;
        }
        let mut state = self.state.lock();
        if let Some(tracked) = state.tables.get_mut(name) {
            if recovery == Recovery::Checkpoint {
                // The checkpoint is the copy as it was published; the changes
                // applied on top of it make the next one due.
                tracked.table.persisted = Some(at.clone());
                tracked.checkpointed_changes = Some(tracked.table.changes_applied);
            }
            tracked.from = Some(at);
            tracked.table.status = SourceStatus::Available;
            tracked.table.recovery = recovery;
            tracked.table.scn = Some(applied);
            tracked.table.load_finished = Some(SystemTime::now());
            tracked.table.changes_applied += count;
        }
        Ok(())
    }

    /// Start the binlog reader (and the checkpoint writer) at `start`, or at
    /// the server's current end, unless it runs.
    pub(super) async fn ensure_tail(
        self: &Arc<Self>,
        conn: &mut Conn,
        start: Option<Position>,
    ) -> Result<()> {
        if self.state.lock().tail_running {
            return Ok(());
        }
        server::preflight(conn, &self.config).await?;
        let start = match start {
            Some(start) => start,
            None => server::binlog_end(conn, &self.config).await?,
        };
        let mut state = self.state.lock();
        if state.tail_running {
            return Ok(());
        }
        state.tail_running = true;
        drop(state);
        self.applied.send_replace(Some(start.clone()));
        let source = Arc::clone(self);
        self.runtime.spawn(async move { source.tail(start).await });
        let source = Arc::clone(self);
        self.runtime
            .spawn(async move { source.checkpoints().await });
        Ok(())
    }

    /// Load again, in the background, a table whose copy can no longer
    /// follow the binlog (DDL, a purged binlog, a bad value).
    pub(super) fn reload_later(self: &Arc<Self>, name: TableName) {
        let source = Arc::clone(self);
        self.runtime.spawn(async move {
            if source.is_stopping() {
                return;
            }
            // A failure is recorded as the table's stale reason.
            let _ = source.load(&name, &Cancel::new()).await;
        });
    }

    pub(super) async fn with_metadata<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = Arc::clone(&self.metadata);
        let path = db.path().display().to_string();
        let fail = move |message: String| -> Error {
            SourceError::Metadata {
                path: path.clone(),
                message,
            }
            .into()
        };
        tokio::task::spawn_blocking(move || {
            let conn = db.connect().map_err(|e| e.to_string())?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS _lw_source_tables \
                 (database TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (database, name)); \
                 CREATE TABLE IF NOT EXISTS _lw_source_checkpoints \
                 (database TEXT NOT NULL, name TEXT NOT NULL, file TEXT NOT NULL, \
                  binlog_file TEXT NOT NULL, binlog_offset INTEGER NOT NULL, gtid TEXT, \
                  PRIMARY KEY (database, name))",
            )
            .map_err(|e| e.to_string())?;
            work(&conn).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(fail)
    }

    async fn remember(&self, name: &TableName) -> Result<()> {
        if self.metadata.is_read_only() {
            return Ok(());
        }
        let name = name.clone();
        self.with_metadata(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO _lw_source_tables (database, name) VALUES (?1, ?2)",
                (&name.database, &name.table),
            )
            .map(|_| ())
        })
        .await
    }

    pub(super) async fn forget(&self, name: &TableName) -> Result<()> {
        if self.metadata.is_read_only() {
            return Ok(());
        }
        let name = name.clone();
        self.with_metadata(move |conn| {
            conn.execute(
                "DELETE FROM _lw_source_tables WHERE database = ?1 AND name = ?2",
                (&name.database, &name.table),
            )?;
            super::checkpoint::drop_checkpoint(conn, &name)
        })
        .await
    }

    pub(super) async fn remembered(&self) -> Result<Vec<TableName>> {
        self.with_metadata(|conn| {
            let mut statement =
                conn.prepare("SELECT database, name FROM _lw_source_tables ORDER BY 1, 2")?;
            let names = statement
                .query_map([], |row| {
                    Ok(TableName::new(
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(names)
        })
        .await
    }
}

use arrow::record_batch::RecordBatch;
