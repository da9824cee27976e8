//! The binlog reader: one task per source that reads the server's row-based
//! binlog as a replica and keeps loaded tables equal to the server.
//!
//! Row events are collected per transaction and kept only when the
//! transaction commits (its XID event, or a `COMMIT` query for
//! non-transactional engines), so the cluster only ever sees whole
//! transactions. Committed changes wait in `pending` (each key's last state
//! only) and go to the cluster together every `propagation_interval`, at
//! `propagation_batch_bytes`, or at once while a query waits at the barrier;
//! then the applied position moves to the end of the last transaction read.
//!
//! DDL on a loaded table (a query event naming it) marks it stale at that
//! position and loads it again. A lost connection reconnects from the end of
//! the last whole transaction read; a binlog purged past that position marks
//! every table stale and loads them again from a new snapshot.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Value};

use super::types::{Kind, Origin, RowsBuilder};
use super::{Change, Changes, Position, Source, SourceStatus, TableDef, encode_key, value_bytes};
use crate::catalog::TableName;
use crate::error::Result;
use crate::store::ChangeSet;
use mysql_async::consts::ColumnType;

/// How long the reader waits before reconnecting after an error.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// The server's error for a binlog position it no longer has.
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;

/// A transaction being read.
#[derive(Default)]
struct Transaction {
    changes: Vec<(TableName, Vec<Value>, Option<Vec<Value>>)>,
    bytes: usize,
}

/// What the reader holds between events.
struct Reader {
    /// Where the last whole transaction read ends: a reconnect resumes here.
    committed: Position,
    /// The file events are in now.
    file: String,
    /// This connection has seen the format description (checksums known).
    formatted: bool,
    /// The GTID of the transaction being read (MariaDB's `domain-server-seq`).
    gtid: Option<String>,
    transaction: Option<Transaction>,
    pending: Changes,
    pending_bytes: usize,
    last_flush: Instant,
}

impl Source {
    /// Read the binlog from `start` until the source shuts down.
    pub(super) async fn tail(self: Arc<Self>, start: Position) {
        let mut reader = Reader {
            file: start.file.clone(),
            formatted: false,
            gtid: None,
            committed: start,
            transaction: None,
            pending: Changes::new(),
            pending_bytes: 0,
            last_flush: Instant::now(),
        };
        while !self.is_stopping() {
            match self.follow(&mut reader).await {
                Ok(()) => {}
                Err(message) => {
                    self.state.lock().tail_error = Some(message);
                    self.stats.lock().reconnects += 1;
                }
            }
            reader.transaction = None;
            if self.is_stopping() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                _ = self.stop.notified() => break,
            }
        }
    }

    /// One connection's worth of reading; returns why it ended.
    async fn follow(self: &Arc<Self>, reader: &mut Reader) -> Result<(), String> {
        let mut stream = self.open_stream(&reader.committed).await?;
        reader.file = reader.committed.file.clone();
        reader.formatted = false;
        self.state.lock().tail_error = None;
        loop {
            if self.is_stopping() {
                return Ok(());
            }
            let interval = self.propagation.interval;
            let due = reader.last_flush + interval;
            // A query waiting at the barrier gets what has been read as soon
            // as the stream has nothing more ready (not after every
            // transaction: a backlog is applied in few batches).
            let hurry = self.waiting.load(Ordering::Acquire) > 0
                && (!reader.pending.is_empty() || self.applied() != Some(reader.committed.clone()));
            let next = tokio::select! {
                biased;
                _ = self.stop.notified() => return Ok(()),
                event = stream.next() => Some(event),
                _ = std::future::ready(()), if hurry => None,
                _ = tokio::time::sleep_until(due.into()) => None,
                _ = self.wake.notified() => None,
            };
            match next {
                None => self.flush(reader).await,
                Some(None) => return Err("the server closed the binlog stream".into()),
                Some(Some(Err(error))) => {
                    if let mysql_async::Error::Server(e) = &error
                        && e.code == ER_MASTER_FATAL_ERROR_READING_BINLOG
                    {
                        self.resync(reader, &e.message).await;
                    }
                    return Err(format!(
                        "reading the binlog at {}: {error}",
                        reader.committed
                    ));
                }
                Some(Some(Ok(event))) => {
                    let committed = self.handle(&stream, reader, &event)?;
                    if committed
                        && (reader.pending_bytes as u64 >= self.propagation.max_pending_bytes
                            || reader.last_flush.elapsed() >= interval)
                    {
                        self.flush(reader).await;
                    }
                }
            }
        }
    }

    async fn open_stream(&self, at: &Position) -> Result<BinlogStream, String> {
        let mut conn = super::server::connect(&self.config, None)
            .await
            .map_err(|e| e.chain_message())?;
        // A replica that takes MariaDB's GTID events gets them as they are
        // (else the server turns each into a `BEGIN` query): each
        // transaction's GTID becomes part of the applied position.
        conn.query_drop("SET @mariadb_slave_capability = 4")
            .await
            .map_err(|e| format!("preparing the binlog connection: {e}"))?;
        let request = BinlogStreamRequest::new(self.replica_id)
            .with_filename(at.file.as_bytes())
            .with_pos(at.offset);
        conn.get_binlog_stream(request)
            .await
            .map_err(|e| format!("requesting the binlog at {at}: {e}"))
    }

    /// Take in one event; `true` when it ended a transaction (or was a
    /// statement of its own).
    fn handle(
        self: &Arc<Self>,
        stream: &BinlogStream,
        reader: &mut Reader,
        event: &Event,
    ) -> Result<bool, String> {
        let end = u64::from(event.header().log_pos());
        if event.header().event_type_raw() == MARIADB_GTID_EVENT {
            // A transaction (or a standalone statement) begins.
            reader.transaction = Some(Transaction::default());
            reader.gtid = mariadb_gtid(event.header().server_id(), event.data());
            return Ok(false);
        }
        let data = event.read_data().map_err(|e| {
            format!(
                "a binlog event at {}:{end} cannot be read: {e}",
                reader.file
            )
        })?;
        let at = |reader: &Reader| Position {
            file: reader.file.clone(),
            offset: end,
            gtid: None,
        };
        match data {
            Some(EventData::RotateEvent(rotate)) => {
                // The server's first, artificial rotate event comes before
                // the format description, so its checksum is read as part
                // of the name: it names the file that was asked for.
                reader.file = if end == 0 && !reader.formatted {
                    reader.committed.file.clone()
                } else {
                    rotate.name().into_owned()
                };
                if reader.transaction.is_none() {
                    reader.committed = Position {
                        file: reader.file.clone(),
                        offset: rotate.position(),
                        gtid: reader.committed.gtid.clone(),
                    };
                }
                Ok(false)
            }
            Some(EventData::QueryEvent(query)) => {
                let text = query.query();
                let trimmed = text.trim();
                if trimmed.starts_with('#') {
                    // MariaDB's stand-ins for events an older replica cannot
                    // take ("# Dummy event replacing event type 160 ...").
                    return Ok(false);
                }
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    reader.transaction = Some(Transaction::default());
                    return Ok(false);
                }
                if trimmed.eq_ignore_ascii_case("COMMIT") {
                    self.commit(reader, at(reader));
                    return Ok(true);
                }
                // Any other statement commits implicitly (DDL) or stands
                // alone; a loaded table it names must be loaded again.
                let schema = query.schema().into_owned();
                let position = at(reader);
                self.commit(reader, position.clone());
                self.statement_seen(&schema, trimmed, &position);
                Ok(true)
            }
            Some(EventData::FormatDescriptionEvent(_)) => {
                reader.formatted = true;
                Ok(false)
            }
            Some(EventData::XidEvent(_)) => {
                self.commit(reader, at(reader));
                Ok(true)
            }
            Some(EventData::RowsEvent(rows)) => {
                let Some(map) = stream.get_tme(rows.table_id()) else {
                    return Err(format!(
                        "a row event at {}:{end} names table id {} without its table map",
                        reader.file,
                        rows.table_id()
                    ));
                };
                let name = TableName::new(map.database_name(), map.table_name());
                let def = {
                    let state = self.state.lock();
                    match state.tables.get(&name) {
                        Some(tracked)
                            if matches!(
                                tracked.table.status,
                                SourceStatus::Available | SourceStatus::Loading
                            ) =>
                        {
                            Some(Arc::clone(&tracked.table.def))
                        }
                        _ => None,
                    }
                };
                let Some(def) = def else {
                    return Ok(false);
                };
                let transaction = reader.transaction.get_or_insert_with(Transaction::default);
                if let Err(reason) = collect_rows(&def, map, &rows, transaction) {
                    self.lost_track(&name, format!("{reason} (at {}:{end})", reader.file));
                }
                Ok(false)
            }
            _ => {
                // Format descriptions, table maps, heartbeats, MariaDB's own
                // events: nothing to apply. Between transactions the position
                // moves past them.
                if reader.transaction.is_none()
                    && end > reader.committed.offset
                    && reader.file == reader.committed.file
                    && event.header().event_type_raw() != HEARTBEAT_EVENT
                {
                    reader.committed.offset = end;
                }
                Ok(false)
            }
        }
    }

    /// The transaction being read is complete at `end`.
    fn commit(&self, reader: &mut Reader, mut end: Position) {
        if let Some(gtid) = reader.gtid.take() {
            end.gtid = Some(gtid);
        }
        if let Some(transaction) = reader.transaction.take()
            && !transaction.changes.is_empty()
        {
            self.stats.lock().transactions += 1;
            reader.pending_bytes += transaction.bytes;
            for (table, key, row) in transaction.changes {
                reader.pending.entry(table).or_default().insert(
                    encode_key(&key),
                    Change {
                        end: end.clone(),
                        key,
                        row,
                    },
                );
            }
        }
        reader.committed = end;
    }

    /// A statement that is not a transaction's: DDL on a loaded table makes
    /// its copy stale from here on.
    fn statement_seen(self: &Arc<Self>, schema: &str, text: &str, at: &Position) {
        let Some((action, names)) = ddl_targets(text, schema) else {
            return;
        };
        for name in names {
            // A copy current at or after the statement (a checkpoint written
            // later, being resumed) already has its effect.
            let follows = self
                .state
                .lock()
                .tables
                .get(&name)
                .is_some_and(|tracked| tracked.from.as_ref().is_none_or(|from| at > from));
            if !follows {
                continue;
            }
            match action {
                Ddl::Drop | Ddl::Rename => {
                    let source = Arc::clone(self);
                    let verb = if action == Ddl::Drop {
                        "dropped"
                    } else {
                        "renamed"
                    };
                    source.mark_stale(&name, format!("{verb} on the server at {at}"));
                    let name = name.clone();
                    self.runtime.spawn(async move {
                        let _ = source.unload(&name).await;
                    });
                }
                Ddl::Change => self.lost_track(
                    &name,
                    format!("its definition changed on the server at {at}"),
                ),
            }
        }
    }

    /// The copy of `name` can no longer follow the binlog: stale now,
    /// loaded again from a new snapshot.
    pub(super) fn lost_track(self: &Arc<Self>, name: &TableName, reason: String) {
        let reloading = {
            let mut state = self.state.lock();
            match state.tables.get_mut(name) {
                Some(tracked) if tracked.table.status != SourceStatus::Loading => {
                    tracked.table.status = SourceStatus::Stale { reason };
                    true
                }
                Some(tracked) => {
                    // A load under way started before this change; it must
                    // not be published.
                    tracked.table.status = SourceStatus::Stale { reason };
                    true
                }
                None => false,
            }
        };
        if reloading {
            self.reload_later(name.clone());
        }
    }

    /// The binlog no longer has the position: every table is loaded again
    /// from a new snapshot, and reading starts at the server's current end.
    async fn resync(self: &Arc<Self>, reader: &mut Reader, message: &str) {
        let names: Vec<TableName> = self.state.lock().tables.keys().cloned().collect();
        reader.pending.clear();
        reader.pending_bytes = 0;
        if let Ok(mut conn) = super::server::connect(&self.config, None).await
            && let Ok(end) = super::server::binlog_end(&mut conn, &self.config).await
        {
            let _ = conn.disconnect().await;
            reader.committed = end;
        }
        for name in names {
            self.lost_track(
                &name,
                format!("the server's binlog no longer has the position the cluster had reached ({message})"),
            );
        }
    }

    /// Apply every pending change to the cluster, then publish the position.
    async fn flush(&self, reader: &mut Reader) {
        let _apply = self.apply.lock().await;
        reader.last_flush = Instant::now();
        let pending = std::mem::take(&mut reader.pending);
        reader.pending_bytes = 0;
        let mut batches = 0;
        for (name, changes) in pending {
            let (def, from) = {
                let mut state = self.state.lock();
                let Some(tracked) = state.tables.get_mut(&name) else {
                    continue;
                };
                match tracked.table.status {
                    SourceStatus::Loading => {
                        tracked.buffer.extend(changes);
                        continue;
                    }
                    SourceStatus::Stale { .. } => continue,
                    SourceStatus::Available => {}
                }
                (Arc::clone(&tracked.table.def), tracked.from.clone())
            };
            let changes: Vec<Change> = changes
                .into_values()
                .filter(|c| from.as_ref().is_none_or(|from| c.end > *from))
                .collect();
            if changes.is_empty() {
                continue;
            }
            let count = changes.len() as u64;
            match self.apply_to_cluster(&def, changes).await {
                Ok(()) => {
                    batches += 1;
                    let mut state = self.state.lock();
                    if let Some(tracked) = state.tables.get_mut(&name) {
                        tracked.table.changes_applied += count;
                        tracked.table.batches_applied += 1;
                    }
                    self.stats.lock().rows += count;
                }
                Err(error) => {
                    self.mark_stale(
                        &name,
                        format!("applying changes failed: {}", error.chain_message()),
                    );
                }
            }
        }
        let upto = reader.committed.clone();
        {
            let mut state = self.state.lock();
            for tracked in state.tables.values_mut() {
                if tracked.table.status == SourceStatus::Available {
                    tracked.table.scn = Some(upto.clone());
                }
            }
        }
        if batches > 0 {
            self.stats.lock().batches += batches;
        }
        self.applied.send_replace(Some(upto));
    }

    /// Apply `changes` (each key's last state) to the table's cluster copy.
    pub(super) async fn apply_to_cluster(
        &self,
        def: &Arc<TableDef>,
        changes: Vec<Change>,
    ) -> Result<()> {
        let cluster = Arc::clone(&self.cluster);
        let def = Arc::clone(def);
        tokio::task::spawn_blocking(move || {
            let bad = |message: String| super::SourceError::Value {
                table: def.name.clone(),
                message,
            };
            let mut keys = RowsBuilder::new(&def.key_columns(), Origin::Binlog);
            let mut rows = RowsBuilder::new(&def.columns, Origin::Binlog);
            for change in &changes {
                keys.push_row(&change.key).map_err(bad)?;
                if let Some(row) = &change.row {
                    rows.push_row(row).map_err(bad)?;
                }
            }
            let keys = keys.finish();
            let rows = [rows.finish()];
            cluster.apply_changes(
                &def.name,
                &ChangeSet {
                    keys: &keys,
                    rows: &rows,
                },
            )?;
            Ok(())
        })
        .await
        .map_err(|e| super::task_failed("applying binlog changes", e))?
    }
}

/// The raw type of a heartbeat event (its position is not an event's end).
const HEARTBEAT_EVENT: u8 = 27;
/// MariaDB's GTID event, which opens every event group.
const MARIADB_GTID_EVENT: u8 = 162;

/// `domain-server-seq` from a MariaDB GTID event's body (sequence number,
/// then domain id, little-endian).
fn mariadb_gtid(server_id: u32, body: &[u8]) -> Option<String> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    Some(format!("{domain}-{server_id}-{seq}"))
}

/// Decode a row event's rows into the transaction.
fn collect_rows(
    def: &TableDef,
    map: &TableMapEvent<'static>,
    rows: &RowsEventData<'_>,
    transaction: &mut Transaction,
) -> Result<(), String> {
    if map.columns_count() as usize != def.columns.len() {
        return Err(format!(
            "the binlog has {} columns for {} where {} were loaded",
            map.columns_count(),
            def.name,
            def.columns.len()
        ));
    }
    // MEDIUMINT values arrive without their sign when the table map's
    // signedness does not line up with the reader's idea of numeric types;
    // the loaded definition knows which are signed.
    let medium: Vec<usize> = (0..def.columns.len())
        .filter(|&i| {
            matches!(
                map.get_column_type(i),
                Ok(Some(ColumnType::MYSQL_TYPE_INT24))
            ) && def.columns[i].kind == Kind::Int32
        })
        .collect();
    let fix = |mut row: Vec<Value>| {
        for &i in &medium {
            let raw = match row[i] {
                Value::Int(v) => v,
                Value::UInt(v) => v as i64,
                _ => continue,
            };
            if raw >= 1 << 23 {
                row[i] = Value::Int(raw - (1 << 24));
            }
        }
        row
    };
    for row in rows.rows(map) {
        let (before, after) =
            row.map_err(|e| format!("a row of {} cannot be read: {e}", def.name))?;
        let before = before.map(|r| values(def, r)).transpose()?.map(fix);
        let after = after.map(|r| values(def, r)).transpose()?.map(fix);
        let key_of = |row: &Vec<Value>| def.key.iter().map(|&i| row[i].clone()).collect::<Vec<_>>();
        match (before, after) {
            (None, Some(after)) => {
                transaction.bytes += value_bytes(&after);
                transaction
                    .changes
                    .push((def.name.clone(), key_of(&after), Some(after)));
            }
            (Some(before), None) => {
                transaction.bytes += 16;
                transaction
                    .changes
                    .push((def.name.clone(), key_of(&before), None));
            }
            (Some(before), Some(after)) => {
                let old_key = key_of(&before);
                let new_key = key_of(&after);
                if encode_key(&old_key) != encode_key(&new_key) {
                    transaction.changes.push((def.name.clone(), old_key, None));
                }
                transaction.bytes += value_bytes(&after);
                transaction
                    .changes
                    .push((def.name.clone(), new_key, Some(after)));
            }
            (None, None) => {}
        }
    }
    Ok(())
}

fn values(def: &TableDef, row: mysql_async::binlog::row::BinlogRow) -> Result<Vec<Value>, String> {
    if row.len() != def.columns.len() {
        return Err(format!(
            "a row of {} has {} columns where {} were loaded (binlog_row_image must be FULL)",
            def.name,
            row.len(),
            def.columns.len()
        ));
    }
    row.unwrap()
        .into_iter()
        .map(|value| match value {
            BinlogValue::Value(v) => Ok(v),
            BinlogValue::Jsonb(json) => serde_json::Value::try_from(json)
                .map(|j| Value::Bytes(j.to_string().into_bytes()))
                .map_err(|e| format!("a JSON value of {} cannot be read: {e}", def.name)),
            BinlogValue::JsonDiff(_) => Err(format!(
                "{} has a partial JSON update (binlog_row_value_options must be empty)",
                def.name
            )),
        })
        .collect()
}

/// What a DDL statement does to the tables it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ddl {
    Drop,
    Rename,
    /// ALTER, TRUNCATE, CREATE OR REPLACE: the table exists but its copy
    /// no longer matches.
    Change,
}

/// The tables a DDL statement changes, qualified with `schema` (the event's
/// default database). Not a parser: the statement already ran on the
/// server, so only its leading words and table names matter.
fn ddl_targets(text: &str, schema: &str) -> Option<(Ddl, Vec<TableName>)> {
    let words = tokens(text);
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let at = |i: usize| upper.get(i).map(String::as_str).unwrap_or("");
    let name = |token: &str| -> TableName {
        let parts = split_name(token);
        match parts.as_slice() {
            [database, table] => TableName::new(database.clone(), table.clone()),
            [table] => TableName::new(schema, table.clone()),
            _ => TableName::new(schema, token),
        }
    };
    // Skip "IF EXISTS" / "IF NOT EXISTS", "TEMPORARY", "ONLINE", "IGNORE".
    let skip = |mut i: usize| {
        while matches!(
            at(i),
            "IF" | "NOT" | "EXISTS" | "TEMPORARY" | "ONLINE" | "IGNORE" | "NOWAIT"
        ) {
            i += 1;
        }
        i
    };
    match (at(0), at(1)) {
        ("ALTER", _) => {
            let i = skip(1);
            (at(i) == "TABLE").then(|| (Ddl::Change, vec![name(&words[skip(i + 1)])]))
        }
        ("TRUNCATE", "TABLE") => Some((Ddl::Change, vec![name(words.get(2)?)])),
        ("TRUNCATE", _) => Some((Ddl::Change, vec![name(words.get(1)?)])),
        ("DROP", _) => {
            let i = skip(1);
            if at(i) != "TABLE" {
                return None;
            }
            let names = words[skip(i + 1)..]
                .iter()
                .filter(|w| *w != ",")
                .take_while(|w| {
                    !matches!(
                        w.to_ascii_uppercase().as_str(),
                        "RESTRICT" | "CASCADE" | "WAIT" | "NOWAIT"
                    )
                })
                .map(|w| name(w))
                .collect();
            Some((Ddl::Drop, names))
        }
        ("RENAME", "TABLE") => {
            // RENAME TABLE a TO b, c TO d: the old names go.
            let mut names = Vec::new();
            let rest = &words[2..];
            let mut i = 0;
            while i < rest.len() {
                names.push(name(&rest[i]));
                // skip "TO new" and the comma
                i += 3;
                if rest.get(i).is_some_and(|w| w == ",") {
                    i += 1;
                }
            }
            Some((Ddl::Rename, names))
        }
        ("CREATE", "OR") => {
            let i = skip(3);
            (at(2) == "REPLACE" && at(i) == "TABLE")
                .then(|| (Ddl::Change, vec![name(&words[skip(i + 1)])]))
        }
        _ => None,
    }
}

/// Words, quoted identifiers (kept with their quotes) and commas.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                // A comment (the server adds `/* generated by server */`).
                let mut previous = ' ';
                for inner in chars.by_ref() {
                    if previous == '*' && inner == '/' {
                        break;
                    }
                    previous = inner;
                }
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            '`' => {
                current.push(c);
                while let Some(q) = chars.next() {
                    current.push(q);
                    if q == '`' {
                        if chars.peek() == Some(&'`') {
                            current.push(chars.next().expect("peeked"));
                        } else {
                            break;
                        }
                    }
                }
            }
            ',' | '(' | ';' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                if c == ',' {
                    out.push(",".into());
                } else {
                    // Column lists and options follow: names are done.
                    if c == '(' {
                        break;
                    }
                }
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `db.t`, `` `db`.`t` `` or `t`, unquoted.
fn split_name(token: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = token.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' if quoted && chars.peek() == Some(&'`') => {
                chars.next();
                current.push('`');
            }
            '`' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Option<(Ddl, Vec<String>)> {
        ddl_targets(text, "shop").map(|(d, n)| (d, n.iter().map(|n| n.to_string()).collect()))
    }

    #[test]
    fn ddl_statements_name_the_tables_they_change() {
        assert_eq!(
            names("ALTER TABLE orders ADD COLUMN note TEXT"),
            Some((Ddl::Change, vec!["shop.orders".into()]))
        );
        assert_eq!(
            names("alter online table `other`.`Odd``Name` drop column x"),
            Some((Ddl::Change, vec!["other.Odd`Name".into()]))
        );
        assert_eq!(
            names("TRUNCATE orders"),
            Some((Ddl::Change, vec!["shop.orders".into()]))
        );
        assert_eq!(
            names("DROP TABLE IF EXISTS `orders`, b.items /* generated by server */"),
            Some((Ddl::Drop, vec!["shop.orders".into(), "b.items".into()]))
        );
        assert_eq!(
            names("RENAME TABLE orders TO old_orders, items TO old_items"),
            Some((Ddl::Rename, vec!["shop.orders".into(), "shop.items".into()]))
        );
        assert_eq!(
            names("CREATE OR REPLACE TABLE orders (id INT PRIMARY KEY)"),
            Some((Ddl::Change, vec!["shop.orders".into()]))
        );
        assert_eq!(names("CREATE TABLE orders (id INT)"), None);
        assert_eq!(names("INSERT INTO orders VALUES (1)"), None);
    }

    #[test]
    fn a_mariadb_gtid_event_names_domain_server_and_sequence() {
        let mut body = 57u64.to_le_bytes().to_vec();
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(1);
        assert_eq!(mariadb_gtid(7, &body).as_deref(), Some("3-7-57"));
        assert_eq!(mariadb_gtid(7, &body[..5]), None);
    }

    #[test]
    fn positions_order_by_file_sequence_then_offset() {
        let p = |file: &str, offset| Position {
            file: file.into(),
            offset,
            gtid: None,
        };
        assert!(p("binlog.000002", 4) > p("binlog.000001", 9_000));
        assert!(p("binlog.000010", 4) > p("binlog.000009", 4));
        assert!(p("binlog.000001", 500) > p("binlog.000001", 499));
    }
}
