//! Checkpoints of loaded source tables: each table's cluster copy written to
//! a Parquet file beside the instance's metadata file, with the binlog
//! position it is current at, so that a restart reads the file and follows
//! the binlog from that position instead of reading the whole table from the
//! server again (as HeatWave recovers its cluster from its persisted copy
//! rather than from InnoDB). Replaying from the position is exact, not only
//! safe: the copy holds each key's state at the position, and the binlog
//! gives every later change to a key as its whole new row or its delete.
//!
//! A checkpoint is written on the first tick of `checkpoint_interval` after a
//! load and then on every tick in which the table changed. The file is
//! written beside, synced and renamed into place before the metadata file
//! names it, and the file it replaces is removed only after that: a crash at
//! any point leaves the previous checkpoint or the new one, never a torn
//! file. A restart that cannot use a checkpoint (the file is gone or
//! unreadable, the table's columns changed, a newer load took over) loads the
//! table from the server; a binlog purged past the position is found by the
//! reader, which loads every table again (see `tail`).
//!
//! This module owns the checkpoint files and their rows in the metadata file;
//! it reads the cluster's published copies and never changes them itself
//! (publishing is `switch_to_binlog`'s).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{Position, Recovery, Source, SourceError, SourceStatus, TableDef, server};
use crate::cancel::Cancel;
use crate::catalog::TableName;
use crate::cluster::Cluster;
use crate::error::Result;
use crate::load::{LoadSpec, Loader, Piece};
use crate::store::ColumnarTable;

/// The checkpoints of `meta.db` are in `meta.db.checkpoints/`.
const DIRECTORY_SUFFIX: &str = ".checkpoints";
/// Rows per batch read back from a checkpoint.
const READ_BATCH_ROWS: usize = 65_536;

/// A checkpoint as the metadata file records it.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    name: TableName,
    file: PathBuf,
    position: Position,
}

impl Source {
    /// Where checkpoints go; `None` when they are off or the metadata file
    /// is a scratch file (nothing survives the process) or read-only.
    fn checkpoint_dir(&self) -> Option<PathBuf> {
        if self.config.checkpoint_interval.is_none()
            || self.metadata.is_scratch()
            || self.metadata.is_read_only()
        {
            return None;
        }
        let mut path = self.metadata.path().as_os_str().to_owned();
        path.push(DIRECTORY_SUFFIX);
        Some(PathBuf::from(path))
    }

    /// Write the checkpoints that are due, every `checkpoint_interval`,
    /// until the source shuts down.
    pub(super) async fn checkpoints(self: Arc<Self>) {
        let Some(interval) = self.config.checkpoint_interval else {
            return;
        };
        if self.checkpoint_dir().is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.stop.notified() => return,
            }
            if self.is_stopping() {
                return;
            }
            let due: Vec<TableName> = self
                .state
                .lock()
                .tables
                .iter()
                .filter(|(_, tracked)| {
                    tracked.table.status == SourceStatus::Available
                        && tracked.checkpointed_changes != Some(tracked.table.changes_applied)
                })
                .map(|(name, _)| name.clone())
                .collect();
            for name in due {
                if self.is_stopping() {
                    return;
                }
                if let Err(error) = self.checkpoint(&name).await {
                    // The previous checkpoint stays; the next tick tries again.
                    eprintln!("lakewave: {}", error.chain_message());
                }
            }
        }
    }

    /// Write a checkpoint of `name` as the cluster holds it now.
    pub(super) async fn checkpoint(&self, name: &TableName) -> Result<()> {
        let Some(dir) = self.checkpoint_dir() else {
            return Ok(());
        };
        // The copy and its position are taken together: changes are applied
        // under `apply`, and the position moves with them.
        let taken = {
            let _apply = self.apply.lock().await;
            let state = self.state.lock();
            state
                .tables
                .get(name)
                .filter(|tracked| tracked.table.status == SourceStatus::Available)
                .and_then(|tracked| {
                    Some((
                        self.cluster.table(name)?,
                        tracked.table.scn.clone()?,
                        tracked.table.changes_applied,
                        tracked.load,
                    ))
                })
        };
        let Some((table, at, changes, load)) = taken else {
            return Ok(());
        };
        let file = dir.join(file_name(name));
        let failed = |message: String| -> crate::Error {
            SourceError::Checkpoint {
                table: name.clone(),
                path: file.display().to_string(),
                message,
            }
            .into()
        };
        let written = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || write_checkpoint(&dir, &file, &table))
                .await
                .map_err(|e| super::task_failed("writing a checkpoint", e))?
        };
        written.map_err(failed)?;
        let current = self
            .state
            .lock()
            .tables
            .get(name)
            .is_some_and(|tracked| tracked.load == load);
        if !current {
            // Reloaded or unloaded meanwhile: this copy is no one's.
            let _ = tokio::fs::remove_file(&file).await;
            return Ok(());
        }
        self.save_checkpoint(name, &file, &at).await?;
        if let Some(tracked) = self.state.lock().tables.get_mut(name)
            && tracked.load == load
        {
            tracked.table.persisted = Some(at);
            tracked.checkpointed_changes = Some(changes);
        }
        Ok(())
    }

    /// Record `file` as the checkpoint of `name` at `at`, and remove the
    /// file it replaces.
    async fn save_checkpoint(&self, name: &TableName, file: &Path, at: &Position) -> Result<()> {
        let name = name.clone();
        let file = file.to_path_buf();
        let at = at.clone();
        self.with_metadata(move |conn| {
            let previous = checkpoint_file(conn, &name);
            let text = file.display().to_string();
            conn.execute(
                "INSERT OR REPLACE INTO _lw_source_checkpoints \
                 (database, name, file, binlog_file, binlog_offset, gtid) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                (
                    &name.database,
                    &name.table,
                    &text,
                    &at.file,
                    at.offset as i64,
                    &at.gtid,
                ),
            )?;
            if let Some(previous) = previous.filter(|p| *p != text) {
                let _ = std::fs::remove_file(previous);
            }
            Ok(())
        })
        .await
    }

    /// Bring back every table the metadata file says was loaded (at open):
    /// from its checkpoint where it has a usable one, following the binlog
    /// from the oldest checkpoint's position; from a new snapshot otherwise.
    pub async fn restore(self: &Arc<Self>) -> Result<Vec<(TableName, Result<()>)>> {
        let names = self.remembered().await?;
        let saved = match self.checkpoint_dir() {
            Some(dir) => self.saved_checkpoints(dir).await?,
            None => HashMap::new(),
        };
        let mut outcomes = Vec::new();
        let mut resuming = Vec::new();
        let mut reloading = Vec::new();
        if !saved.is_empty() {
            // Every resumed table is tracked before the reader starts at the
            // oldest position: a change it reads for a table not yet tracked
            // would be dropped.
            let mut conn = server::connect(&self.config, None).await?;
            for name in &names {
                let Some(saved) = saved.get(name) else {
                    reloading.push(name.clone());
                    continue;
                };
                match self.describe(&mut conn, name).await {
                    Ok(def) => {
                        let def = Arc::new(def);
                        let load = self.track_loading(
                            &def,
                            Some(saved.position.clone()),
                            SystemTime::now(),
                        );
                        resuming.push((def, saved, load));
                    }
                    Err(error) => outcomes.push((name.clone(), Err(error))),
                }
            }
            if let Some(start) = resuming.iter().map(|(_, s, _)| &s.position).min() {
                let started = self.ensure_tail(&mut conn, Some(start.clone())).await;
                if let Err(error) = started {
                    let _ = conn.disconnect().await;
                    for (def, _, _) in &resuming {
                        self.mark_stale(
                            &def.name,
                            format!("restoring failed: {}", error.chain_message()),
                        );
                    }
                    return Err(error);
                }
            }
            let _ = conn.disconnect().await;
        } else {
            reloading = names;
        }
        for (def, saved, load) in resuming {
            let name = def.name.clone();
            let outcome = match self.resume(def, saved, load).await {
                Ok(()) => Ok(()),
                // A statement in the binlog made the copy stale: its reload
                // is under way already.
                Err(_) if self.is_stale(&name) => Ok(()),
                Err(error) => {
                    eprintln!(
                        "lakewave: {}; loading {name} from the server instead",
                        error.chain_message()
                    );
                    self.load(&name, &Cancel::new()).await.map(|_| ())
                }
            };
            outcomes.push((name, outcome));
        }
        for name in reloading {
            let outcome = self.load(&name, &Cancel::new()).await.map(|_| ());
            outcomes.push((name, outcome));
        }
        Ok(outcomes)
    }

    fn is_stale(&self, name: &TableName) -> bool {
        self.state
            .lock()
            .tables
            .get(name)
            .is_some_and(|t| matches!(t.table.status, SourceStatus::Stale { .. }))
    }

    /// Publish `saved`'s copy of the tracked table `def` and follow the
    /// binlog from its position.
    async fn resume(self: &Arc<Self>, def: Arc<TableDef>, saved: &Saved, load: u64) -> Result<()> {
        let spec = self.load_spec(&def);
        let cluster = Arc::clone(&self.cluster);
        let file = saved.file.clone();
        let built = tokio::task::spawn_blocking(move || read_checkpoint(&cluster, &spec, &file))
            .await
            .map_err(|e| super::task_failed("reading a checkpoint", e))?
            .map_err(|message| SourceError::Checkpoint {
                table: saved.name.clone(),
                path: saved.file.display().to_string(),
                message,
            })?;
        self.switch_to_binlog(
            &def,
            built?,
            saved.position.clone(),
            load,
            Recovery::Checkpoint,
        )
        .await
    }

    /// The checkpoints of tables that are still loaded; rows and files of
    /// any other table (unloaded while a checkpoint was written, left by a
    /// crash between rename and record) are removed.
    async fn saved_checkpoints(&self, dir: PathBuf) -> Result<HashMap<TableName, Saved>> {
        self.with_metadata(move |conn| {
            conn.execute(
                "DELETE FROM _lw_source_checkpoints WHERE NOT EXISTS (SELECT 1 FROM \
                 _lw_source_tables t WHERE t.database = _lw_source_checkpoints.database \
                 AND t.name = _lw_source_checkpoints.name)",
                [],
            )?;
            let mut statement = conn.prepare(
                "SELECT database, name, file, binlog_file, binlog_offset, gtid \
                 FROM _lw_source_checkpoints",
            )?;
            let saved = statement
                .query_map([], |row| {
                    Ok(Saved {
                        name: TableName::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                        file: PathBuf::from(row.get::<_, String>(2)?),
                        position: Position {
                            file: row.get(3)?,
                            offset: row.get::<_, i64>(4)? as u64,
                            gtid: row.get(5)?,
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if !saved.iter().any(|s| s.file == path) {
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
            Ok(saved
                .into_iter()
                .filter(|s| s.file.exists())
                .map(|s| (s.name.clone(), s))
                .collect())
        })
        .await
    }
}

/// The file the metadata file names as `name`'s checkpoint.
fn checkpoint_file(conn: &rusqlite::Connection, name: &TableName) -> Option<String> {
    conn.query_row(
        "SELECT file FROM _lw_source_checkpoints WHERE database = ?1 AND name = ?2",
        (&name.database, &name.table),
        |row| row.get(0),
    )
    .ok()
}

/// Remove the checkpoint of `name` (the table is no longer loaded).
pub(super) fn drop_checkpoint(
    conn: &rusqlite::Connection,
    name: &TableName,
) -> rusqlite::Result<()> {
    let file = checkpoint_file(conn, name);
    conn.execute(
        "DELETE FROM _lw_source_checkpoints WHERE database = ?1 AND name = ?2",
        (&name.database, &name.table),
    )?;
    if let Some(file) = file {
        let _ = std::fs::remove_file(file);
    }
    Ok(())
}

/// A new file name for a checkpoint of `name`: readable, and unique so that
/// a new checkpoint never overwrites the one the metadata file names.
fn file_name(name: &TableName) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}.{}.{stamp:x}.parquet",
        clean(&name.database),
        clean(&name.table)
    )
}

/// Write `table`'s visible rows to `file`, durably and atomically.
fn write_checkpoint(dir: &Path, file: &Path, table: &ColumnarTable) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory: {e}"))?;
    let partial = file.with_extension("partial");
    let written = (|| -> Result<(), String> {
        let out = File::create(&partial).map_err(|e| e.to_string())?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).map_err(|e| e.to_string())?,
            ))
            .build();
        let mut writer =
            ArrowWriter::try_new(out, Arc::clone(&table.logical_schema), Some(properties))
                .map_err(|e| e.to_string())?;
        for partition in &table.partitions {
            for chunk in partition.chunks.iter().filter(|c| c.rows() > 0) {
                let batch = table.decode(chunk).map_err(|e| e.to_string())?;
                writer.write(&batch).map_err(|e| e.to_string())?;
            }
        }
        let out = writer.into_inner().map_err(|e| e.to_string())?;
        out.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&partial, file).map_err(|e| e.to_string())?;
        // The rename itself is durable once the directory is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| e.to_string())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Build `spec`'s table from a checkpoint file. The outer error is the
/// file's (unreadable, or its columns are not the table's); the inner one
/// the loader's (out of memory, say).
fn read_checkpoint(
    cluster: &Cluster,
    spec: &LoadSpec,
    file: &Path,
) -> Result<Result<ColumnarTable>, String> {
    let opened = File::open(file).map_err(|e| format!("cannot open it: {e}"))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(opened)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !same_columns(builder.schema(), &spec.schema) {
        return Err("its columns are not the table's on the server any more".into());
    }
    let reader = builder
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| format!("cannot read it: {e}"))?;
    let cancel = Cancel::new();
    let mut progress = |_: crate::store::LoadProgress| {};
    let mut loader = match Loader::new(cluster, spec, &cancel, &mut progress) {
        Ok(loader) => loader,
        Err(error) => return Ok(Err(error)),
    };
    for batch in reader {
        let batch = batch.map_err(|e| format!("cannot read it: {e}"))?;
        if let Err(error) = loader.push(Piece::batch(batch)) {
            return Ok(Err(error));
        }
    }
    Ok(loader.finish())
}

/// Same column names and types, in the same order (nullability aside:
/// Parquet keeps it, but a column made NOT NULL changes no value).
fn same_columns(file: &arrow::datatypes::Schema, table: &arrow::datatypes::Schema) -> bool {
    file.fields().len() == table.fields().len()
        && file
            .fields()
            .iter()
            .zip(table.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
}
