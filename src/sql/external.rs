//! `CREATE EXTERNAL TABLE` in HeatWave's form:
//!
//! ```sql
//! CREATE EXTERNAL TABLE [IF NOT EXISTS] db.t [(col TYPE, ...)]
//!   FILE_FORMAT = (FORMAT csv [HEADER ON|OFF] [FIELD_DELIMITER ','] [QUOTATION_MARKS '"'] [NULL_VALUE 'NA'])
//!   FILES = (URI 'path/' [, URI = 'other.csv'] [, PREFIX 'p'] [, PATTERN 'data/*.csv'])
//!   [ENGINE = lakehouse] [SECONDARY_ENGINE = rapid]
//! ```
//!
//! and DataFusion's (`STORED AS PARQUET LOCATION '...' OPTIONS (...)`), plus
//! loading, unloading and dropping external tables. The files are never
//! written: `DROP TABLE` removes only the definition.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;

use super::{QueryResult, Session, SqlError, abbreviate};
use crate::cancel::Cancel;
use crate::catalog::TableName;
use crate::cluster::{FileSource, LoadRequest, SourceFile, TableStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::lakehouse::LakehouseError;
use crate::lakehouse::external::{
    CsvOptions, DataFile, ExternalTable, ExternalTableDef, FileFormat, file_changes, open_external,
};
use crate::rowstore::RowStoreError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a refresh of an external table did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// The Delta version now defined (and loaded, if loaded).
    pub version: Option<i64>,
    /// Whether the table is loaded (else only its definition was refreshed).
    pub loaded: bool,
    pub files_added: usize,
    pub files_removed: usize,
    /// Reloaded whole, because its columns changed.
    pub whole: bool,
}

impl std::fmt::Display for RefreshOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = match self.version {
            Some(v) => format!(" to version {v}"),
            None => String::new(),
        };
        let plural = |n: usize| if n == 1 { "file" } else { "files" };
        if !self.loaded {
            write!(f, "definition refreshed{version} (not loaded)")
        } else if self.whole {
            write!(
                f,
                "reloaded{version}: the columns changed ({} {})",
                self.files_added,
                plural(self.files_added)
            )
        } else {
            write!(
                f,
                "refreshed{version} ({} {} added, {} removed)",
                self.files_added,
                plural(self.files_added),
                self.files_removed
            )
        }
    }
}

/// Whether a loaded table's columns are still those of its source: the same
/// names with the same stored types.
fn same_columns(loaded: &arrow::datatypes::Schema, source: &arrow::datatypes::Schema) -> bool {
    loaded.fields().len() == source.fields().len()
        && loaded.fields().iter().zip(source.fields()).all(|(l, s)| {
            l.name() == s.name() && *l.data_type() == crate::store::logical_type(s.data_type())
        })
}

/// Is this a HeatWave-form external table definition?
pub fn is_external_ddl(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    words == ["CREATE", "EXTERNAL", "TABLE"] && text.to_ascii_uppercase().contains("FILE_FORMAT")
}

fn syntax(text: &str, message: impl Into<String>) -> Error {
    SqlError::Syntax {
        statement: abbreviate(text),
        message: message.into(),
    }
    .into()
}

struct Tokens {
    tokens: Vec<Token>,
    at: usize,
}

impl Tokens {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn word(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let value = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_ascii_uppercase()
                };
                self.at += 1;
                Some(value)
            }
            _ => None,
        }
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A value after an option name: a string, a word or a number.
    fn value(&mut self) -> Option<String> {
        self.eat(&Token::Eq);
        match self.next()? {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Some(s),
            Token::Word(w) => Some(w.value),
            Token::Number(n, _) => Some(n),
            _ => None,
        }
    }
}

fn single_byte(text: &str, option: &str, value: &str) -> Result<u8> {
    let bytes = value.as_bytes();
    match bytes {
        [b] => Ok(*b),
        b"\\t" => Ok(b'\t'),
        _ => Err(syntax(
            text,
            format!("{option} must be one character, not '{value}'"),
        )),
    }
}

fn boolean(text: &str, option: &str, value: &str) -> Result<bool> {
    match value.to_ascii_uppercase().as_str() {
        "ON" | "TRUE" | "1" | "YES" => Ok(true),
        "OFF" | "FALSE" | "0" | "NO" => Ok(false),
        _ => Err(syntax(
            text,
            format!("{option} must be ON or OFF, not '{value}'"),
        )),
    }
}

/// Format name and options into a [`FileFormat`]; unknown options are errors.
fn file_format(text: &str, name: &str, options: &[(String, String)]) -> Result<FileFormat> {
    let format = match name.to_ascii_lowercase().as_str() {
        "parquet" => FileFormat::Parquet,
        "json" | "ndjson" => FileFormat::Json,
        "avro" => FileFormat::Avro,
        "csv" => FileFormat::Csv(CsvOptions::default()),
        "delta" => {
            let mut version = None;
            for (key, value) in options {
                match key.to_ascii_uppercase().as_str() {
                    "VERSION" => {
                        version = Some(value.parse::<u64>().map_err(|_| {
                            syntax(
                                text,
                                format!("VERSION must be a whole number, not '{value}'"),
                            )
                        })?)
                    }
                    other => {
                        return Err(syntax(
                            text,
                            format!("unknown Delta option '{other}' (VERSION)"),
                        ));
                    }
                }
            }
            return Ok(FileFormat::Delta { version });
        }
        other => {
            return Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: format!("external table format '{other}' (parquet, csv, json, avro and delta are supported)"),
            }
            .into());
        }
    };
    match format {
        FileFormat::Csv(mut csv) => {
            for (key, value) in options {
                match key.to_ascii_uppercase().as_str() {
                    "HEADER" => csv.header = boolean(text, key, value)?,
                    "FIELD_DELIMITER" | "DELIMITER" => {
                        csv.delimiter = single_byte(text, key, value)?
                    }
                    "QUOTATION_MARKS" | "QUOTE" => csv.quote = single_byte(text, key, value)?,
                    "NULL_VALUE" | "NULL" => csv.null = Some(value.clone()),
                    other => {
                        return Err(syntax(
                            text,
                            format!(
                                "unknown CSV option '{other}' (HEADER, FIELD_DELIMITER, QUOTATION_MARKS, NULL_VALUE)"
                            ),
                        ));
                    }
                }
            }
            Ok(FileFormat::Csv(csv))
        }
        other => match options.first() {
            Some((key, _)) => Err(syntax(
                text,
                format!("option '{key}' does not apply to {} files", other.name()),
            )),
            None => Ok(other),
        },
    }
}

/// A refresh interval: a number of seconds, or a number with `ms`, `s`, `m`
/// or `h`. At least a millisecond.
fn parse_interval(text: &str) -> Option<std::time::Duration> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text.as_str(), "s"),
    };
    let number: f64 = number.trim().parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" | "sec" | "second" | "seconds" => number,
        "m" | "min" | "minute" | "minutes" => number * 60.0,
        "h" | "hour" | "hours" => number * 3600.0,
        _ => return None,
    };
    (0.001..1e9)
        .contains(&seconds)
        .then(|| std::time::Duration::from_secs_f64(seconds))
}

/// The DDL kept in the database file: the statement without the values of
/// secret storage options (they come from the environment after a reopen).
fn persisted_ddl(text: &str, def: &ExternalTableDef) -> String {
    let mut out = text.to_string();
    for (key, value) in &def.storage_options {
        if crate::lakehouse::external::is_secret(key) && !value.is_empty() {
            out = out.replace(&format!("'{value}'"), "''");
        }
    }
    out
}

/// A parsed definition.
pub struct ExternalDdl {
    pub def: ExternalTableDef,
    pub if_not_exists: bool,
}

impl Session {
    /// Parse the HeatWave form.
    pub(super) fn parse_external(&self, text: &str) -> Result<ExternalDdl> {
        let tokens = Tokenizer::new(&GenericDialect {}, text)
            .tokenize()
            .map_err(|e| syntax(text, e.to_string()))?
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        let mut t = Tokens { tokens, at: 3 };
        let mut if_not_exists = false;
        if t.peek()
            .is_some_and(|tok| matches!(tok, Token::Word(w) if w.value.eq_ignore_ascii_case("IF")))
        {
            t.next();
            let (not, exists) = (t.word(), t.word());
            if not.as_deref() != Some("NOT") || exists.as_deref() != Some("EXISTS") {
                return Err(syntax(text, "expected IF NOT EXISTS"));
            }
            if_not_exists = true;
        }
        // The name: word [. word]
        let mut parts = Vec::new();
        loop {
            match t.next() {
                Some(Token::Word(w)) => parts.push(if w.quote_style.is_some() {
                    w.value
                } else {
                    w.value.to_lowercase()
                }),
                _ => {
                    return Err(syntax(
                        text,
                        "expected a table name after CREATE EXTERNAL TABLE",
                    ));
                }
            }
            if !t.eat(&Token::Period) {
                break;
            }
        }
        let name = match parts.as_slice() {
            [table] => TableName::new(self.current_database(), table.clone()),
            [database, table] => TableName::new(database.clone(), table.clone()),
            _ => return Err(syntax(text, "expected table or database.table")),
        };
        // The optional column list, parsed as a CREATE TABLE's.
        let mut columns = None;
        if t.peek() == Some(&Token::LParen) {
            let start = t.at;
            let mut depth = 0;
            loop {
                match t.next() {
                    Some(Token::LParen) => depth += 1,
                    Some(Token::RParen) => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => return Err(syntax(text, "unclosed column list")),
                }
            }
            let list: String = t.tokens[start..t.at]
                .iter()
                .map(|tok| format!("{tok} "))
                .collect();
            let ddl = format!("CREATE TABLE x {list}");
            let parsed = Parser::parse_sql(&GenericDialect {}, &ddl)
                .map_err(|e| syntax(text, e.to_string()))?;
            let Some(SqlStatement::CreateTable(create)) = parsed.first() else {
                return Err(syntax(text, "cannot read the column list"));
            };
            let mut fields = Vec::new();
            for column in &create.columns {
                let (def, _) = self.column_def_for(column, &name)?;
                fields.push(Field::new(def.name, def.sql_type.arrow_type(), true));
            }
            columns = Some(Arc::new(Schema::new(fields)));
        }
        let mut format = None;
        let mut locations = Vec::new();
        let mut storage_options = std::collections::BTreeMap::new();
        let mut refresh_interval = None;
        while let Some(keyword) = t.word() {
            match keyword.as_str() {
                "FILE_FORMAT" => {
                    t.eat(&Token::Eq);
                    if !t.eat(&Token::LParen) {
                        return Err(syntax(text, "expected FILE_FORMAT = (FORMAT ...)"));
                    }
                    let mut name = None;
                    let mut options = Vec::new();
                    while !t.eat(&Token::RParen) {
                        t.eat(&Token::Comma);
                        let Some(key) = t.word() else {
                            return Err(syntax(text, "expected an option name in FILE_FORMAT"));
                        };
                        let value = t
                            .value()
                            .ok_or_else(|| syntax(text, format!("expected a value after {key}")))?;
                        if key == "FORMAT" {
                            name = Some(value);
                        } else {
                            options.push((key, value));
                        }
                    }
                    let name = name.ok_or_else(|| syntax(text, "FILE_FORMAT needs FORMAT"))?;
                    format = Some(file_format(text, &name, &options)?);
                }
                "FILES" => {
                    t.eat(&Token::Eq);
                    if !t.eat(&Token::LParen) {
                        return Err(syntax(text, "expected FILES = (URI '...')"));
                    }
                    while !t.eat(&Token::RParen) {
                        t.eat(&Token::Comma);
                        let kind = t
                            .word()
                            .ok_or_else(|| syntax(text, "expected URI, PREFIX or PATTERN"))?;
                        let value = t.value().ok_or_else(|| {
                            syntax(text, format!("expected a location after {kind}"))
                        })?;
                        match kind.as_str() {
                            "URI" | "NAME" | "PREFIX" => locations.push(value),
                            "PATTERN" => locations.push(value),
                            other => {
                                return Err(syntax(text, format!("unknown FILES entry '{other}'")));
                            }
                        }
                    }
                }
                "STORAGE_OPTIONS" | "OPTIONS" => {
                    // lakewave's own clause: object store settings.
                    t.eat(&Token::Eq);
                    if !t.eat(&Token::LParen) {
                        return Err(syntax(
                            text,
                            "expected STORAGE_OPTIONS = (key 'value', ...)",
                        ));
                    }
                    while !t.eat(&Token::RParen) {
                        t.eat(&Token::Comma);
                        let key = match t.next() {
                            Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
                            Some(Token::SingleQuotedString(s)) => s.to_ascii_lowercase(),
                            _ => return Err(syntax(text, "expected a storage option name")),
                        };
                        let value = t.value().ok_or_else(|| {
                            syntax(text, format!("expected a value for storage option '{key}'"))
                        })?;
                        storage_options.insert(key, value);
                    }
                }
                "REFRESH_INTERVAL" => {
                    // lakewave's own clause: seconds, or '500ms', '30s', '5m', '1h'.
                    let value = t.value().ok_or_else(|| {
                        syntax(text, "expected a duration after REFRESH_INTERVAL")
                    })?;
                    refresh_interval = Some(parse_interval(&value).ok_or_else(|| {
                        syntax(
                            text,
                            format!(
                                "REFRESH_INTERVAL must be a positive number of seconds or a duration such as '30s', '5m' or '500ms', not '{value}'"
                            ),
                        )
                    })?);
                }
                "ENGINE" | "SECONDARY_ENGINE" => {
                    t.value();
                }
                other => return Err(syntax(text, format!("unexpected '{other}'"))),
            }
        }
        if t.peek().is_some() {
            return Err(syntax(
                text,
                format!("unexpected '{}'", t.peek().expect("checked")),
            ));
        }
        let format = format.ok_or_else(|| syntax(text, "FILE_FORMAT is missing"))?;
        Ok(ExternalDdl {
            def: ExternalTableDef {
                name,
                format,
                locations,
                columns,
                storage_options,
                refresh_interval,
            },
            if_not_exists,
        })
    }

    /// Re-define a persisted external table when an instance opens.
    pub async fn restore_external(&self, ddl: &str, loaded: bool, cancel: &Cancel) -> Result<()> {
        let parsed = self.parse_external(ddl)?;
        let name = parsed.def.name.clone();
        let state = self.ctx.state();
        let table = open_external(parsed.def, &state).await?;
        self.sources.externals.insert(table);
        if loaded {
            self.load_external(&name, ddl, cancel).await?;
        }
        Ok(())
    }

    /// Define an external table (checking its files now) and persist it.
    pub(super) async fn create_external(
        &self,
        ddl: ExternalDdl,
        text: &str,
    ) -> Result<QueryResult> {
        let name = ddl.def.name.clone();
        let exists = self.sources.conn.database().table(&name).is_some()
            || self.sources.externals.get(&name).is_some()
            || self.sources.cluster.table(&name).is_some();
        if exists {
            if ddl.if_not_exists {
                return Ok(self.done(text, format!("table {name} already exists")));
            }
            return Err(RowStoreError::TableExists(name).into());
        }
        if !self.sources.cluster.catalog().has_database(&name.database) {
            return Err(RowStoreError::DatabaseNotFound(name.database.clone()).into());
        }
        let state = self.ctx.state();
        let persisted = persisted_ddl(text, &ddl.def);
        let table = open_external(ddl.def, &state).await?;
        self.sources.conn.save_external(&name, &persisted)?;
        self.sources.externals.insert(table);
        Ok(self.done(text, format!("defined external table {name}")))
    }

    /// `SECONDARY_LOAD` of an external table: read it file by file into the
    /// cluster, and publish it whole or not at all.
    pub(super) async fn load_external(
        &self,
        name: &TableName,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let _loading = self.sources.externals.load_lock().lock().await;
        let defined = self
            .sources
            .externals
            .get(name)
            .expect("checked by the caller");
        // Load what the files hold now: list them (or read the Delta log)
        // again, as a refresh would.
        let table = open_external(defined.def.clone(), &self.ctx.state()).await?;
        let status = self.load_external_files(&table, text, cancel).await?;
        self.sources.externals.insert(table);
        Ok(self.done(
            text,
            format!(
                "loaded {} rows of external table {name} into the cluster",
                status.rows
            ),
        ))
    }

    /// Load every file of `table` and record what the cluster now holds.
    async fn load_external_files(
        &self,
        table: &ExternalTable,
        text: &str,
        cancel: &Cancel,
    ) -> Result<TableStatus> {
        let name = table.def.name.clone();
        let request = LoadRequest {
            name: name.clone(),
            primary_key: Vec::new(),
            placement_keys: Vec::new(),
            replace: true,
            source_name: format!("external table {name} ({})", table.def.locations.join(", ")),
        };
        let cluster = Arc::clone(&self.sources.cluster);
        let schema = Arc::clone(&table.schema);
        let status = self
            .stream_files(
                table,
                table.files.to_vec(),
                text,
                cancel,
                move |files, cancel| {
                    cluster.load_files(&request, schema, files, cancel, &mut |_| {})
                },
            )
            .await?;
        self.sources.externals.set_loaded_state(
            &name,
            table.delta_version,
            Arc::clone(&table.files),
        );
        self.sources.conn.set_external_loaded(&name, true)?;
        Ok(status)
    }

    /// Read `files` of `table` on the runtime and hand them, one file at a
    /// time, to `store` on a blocking thread (which builds chunks on rayon).
    /// `store` sees the end of the files only when every file was read; if
    /// the read fails or is interrupted it gets an error instead, so it never
    /// publishes a part of the files.
    async fn stream_files<T: Send + 'static>(
        &self,
        table: &ExternalTable,
        files: Vec<DataFile>,
        text: &str,
        cancel: &Cancel,
        store: impl FnOnce(FileSource<'_>, &Cancel) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        type Item = Option<std::result::Result<SourceFile, LakehouseError>>;
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Item>(2);
        let consumer_cancel = cancel.clone();
        let consumer = tokio::task::spawn_blocking(move || {
            let files = std::iter::from_fn(move || match receiver.blocking_recv() {
                Some(Some(file)) => Some(file.map_err(|e| Box::new(e) as BoxError)),
                Some(None) => None,
                None => Some(Err("reading the files stopped before the last one".into())),
            });
            store(Box::new(files), &consumer_cancel)
        });
        let producer = async move {
            let mut stream = std::pin::pin!(table.read_files(&self.ctx, files));
            while let Some(file) = stream.next().await {
                let failed = file.is_err();
                if sender.send(Some(file)).await.is_err() || failed {
                    return;
                }
            }
            let _ = sender.send(None).await;
        };
        let ((), stored) = tokio::join!(producer, consumer);
        stored.map_err(|e| super::task_failed(text, e))?
    }

    /// Bring an external table to its source's current state: re-read the
    /// Delta log or re-list the files and, if it is loaded, apply to the
    /// cluster only the files added and removed since the loaded version (a
    /// rewritten file, or a Delta file with a new deletion vector, is both).
    /// A schema change reloads the table whole. Queries see the old or the
    /// new version, never a mix.
    pub async fn refresh_external(
        &self,
        name: &TableName,
        cancel: &Cancel,
    ) -> Result<RefreshOutcome> {
        let statement = format!("refresh {name}");
        let _loading = self.sources.externals.load_lock().lock().await;
        let Some(current) = self.sources.externals.get(name) else {
            return Err(SqlError::TableNotFound {
                statement,
                table: name.to_string(),
            }
            .into());
        };
        let state = self.ctx.state();
        // A pinned Delta VERSION stays pinned; otherwise the newest is read.
        let fresh = open_external(current.def.clone(), &state).await?;
        let mut outcome = RefreshOutcome {
            version: fresh.delta_version,
            loaded: self.sources.externals.is_loaded(name),
            files_added: 0,
            files_removed: 0,
            whole: false,
        };
        if !outcome.loaded {
            self.sources.externals.insert(fresh);
            return Ok(outcome);
        }
        let before = self.sources.externals.loaded_files(name);
        let same_schema = self
            .sources
            .cluster
            .table(name)
            .is_some_and(|loaded| same_columns(&loaded.logical_schema, &fresh.schema));
        let Some(before) = before.filter(|_| same_schema) else {
            self.load_external_files(&fresh, &statement, cancel).await?;
            outcome.whole = true;
            outcome.files_added = fresh.files.len();
            self.sources.externals.insert(fresh);
            return Ok(outcome);
        };
        let (added, removed) = file_changes(&before, &fresh.files);
        outcome.files_added = added.len();
        outcome.files_removed = removed.len();
        if !added.is_empty() || !removed.is_empty() {
            let removed: HashSet<String> = removed.into_iter().map(|f| f.path).collect();
            let cluster = Arc::clone(&self.sources.cluster);
            let table_name = name.clone();
            let source_name = format!("external table {name} ({})", fresh.def.locations.join(", "));
            let refreshed = self
                .stream_files(&fresh, added, &statement, cancel, move |files, cancel| {
                    cluster.refresh_files(&table_name, &removed, files, &source_name, cancel)
                })
                .await?;
            if refreshed.is_none() {
                return Err(SqlError::Execution {
                    statement,
                    message: format!("external table {name} was unloaded during the refresh"),
                    kind: ErrorKind::Operational,
                }
                .into());
            }
        }
        self.sources.externals.set_loaded_state(
            name,
            fresh.delta_version,
            Arc::clone(&fresh.files),
        );
        self.sources.externals.insert(fresh);
        Ok(outcome)
    }

    pub(super) fn unload_external(&self, name: &TableName, text: &str) -> Result<QueryResult> {
        if self.sources.externals.is_loaded(name) {
            let _ = self.sources.cluster.unload(name);
        }
        self.sources.externals.set_unloaded(name);
        self.sources.conn.set_external_loaded(name, false)?;
        Ok(self.done(text, format!("unloaded external table {name}")))
    }

    /// `DROP TABLE` of an external table: the definition only, never the files.
    pub(super) fn drop_external(&self, name: &TableName, text: &str) -> Result<QueryResult> {
        if self.sources.externals.is_loaded(name) {
            let _ = self.sources.cluster.unload(name);
        }
        self.sources.externals.remove(name);
        self.sources.conn.remove_external(name)?;
        Ok(self.done(
            text,
            format!("dropped external table {name} (its files are untouched)"),
        ))
    }
}
