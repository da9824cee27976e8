//! `CREATE EXTERNAL TABLE` in HeatWave's form, parsed into a structured
//! definition (never kept as text):
//!
//! ```sql
//! CREATE EXTERNAL TABLE [IF NOT EXISTS] db.t [(col TYPE, ...)]
//!   FILE_FORMAT = (FORMAT csv [HEADER ON|OFF] [FIELD_DELIMITER ','] [QUOTATION_MARKS '"'] [NULL_VALUE 'NA'])
//!   FILES = (URI 'path/' [, URI = 'other.csv'] [, PREFIX 'p'] [, PATTERN 'data/*.csv'])
//!   [STORAGE_OPTIONS = ('key' 'value', ...)] [REFRESH_INTERVAL = '30s']
//!   [ENGINE = lakehouse] [SECONDARY_ENGINE = rapid]
//! ```
//!
//! The same definition can be built from Python's keyword arguments
//! ([`external_definition`]). Statements that carry secret storage options
//! are redacted before they are shown anywhere ([`redact_statement`]).

use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::{Session, SqlError, abbreviate};
use crate::catalog::{CsvOptions, ExternalTableDef, FileFormat, SqlType, TableName, is_secret};
use crate::error::{Error, Result};

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

fn tokens_of(text: &str) -> Option<Vec<Token>> {
    Tokenizer::new(&GenericDialect {}, text)
        .tokenize()
        .ok()
        .map(|tokens| {
            tokens
                .into_iter()
                .filter(|t| !matches!(t, Token::Whitespace(_)))
                .collect()
        })
}

/// The statement with the values of secret storage options replaced, for
/// messages and the process list. A statement that does not tokenize is
/// shown only up to its first quote when it mentions options.
pub fn redact_statement(text: &str) -> String {
    if !text.to_ascii_uppercase().contains("OPTIONS") {
        return text.to_string();
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
        return match text.find(['\'', '"']) {
            Some(at) => format!("{} <redacted>", &text[..at]),
            None => text.to_string(),
        };
    };
    let mut out = String::new();
    let mut after_secret_key = false;
    for token in tokens {
        let is_value = matches!(
            token,
            Token::SingleQuotedString(_)
                | Token::DoubleQuotedString(_)
                | Token::Word(_)
                | Token::Number(_, _)
        );
        if after_secret_key && is_value {
            out.push_str("'<redacted>'");
            after_secret_key = false;
            continue;
        }
        match &token {
            Token::Whitespace(_) | Token::Eq => {}
            other => after_secret_key = token_text(other).is_some_and(|t| is_secret(&t)),
        }
        out.push_str(&token.to_string());
    }
    out
}

fn token_text(token: &Token) -> Option<String> {
    match token {
        Token::Word(w) => Some(w.value.clone()),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Some(s.clone()),
        _ => None,
    }
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
pub(super) fn file_format(
    text: &str,
    name: &str,
    options: &[(String, String)],
) -> Result<FileFormat> {
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

/// A parsed definition.
pub struct ExternalDdl {
    pub def: ExternalTableDef,
    pub if_not_exists: bool,
}

impl Session {
    /// Parse the HeatWave form.
    pub(super) fn parse_external(&self, text: &str) -> Result<ExternalDdl> {
        let tokens = tokens_of(text).ok_or_else(|| syntax(text, "cannot read the statement"))?;
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
            let mut declared = Vec::new();
            for column in &create.columns {
                let (def, _) = self.column_def_for(column, &name)?;
                declared.push((def.name, def.sql_type));
            }
            columns = Some(declared);
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
                id: 0,
                name,
                format,
                locations,
                columns,
                storage_options,
                refresh_interval,
                loaded: false,
            },
            if_not_exists,
        })
    }
}

/// A file format by its name alone (`Connection.load(..., format=)`).
pub fn file_format_named(name: &str) -> Result<FileFormat> {
    file_format(&format!("format '{name}'"), name, &[])
}

/// A definition from keyword arguments (Python's `create_external_table`):
/// the same checks as the statement, without composing SQL from values.
#[allow(clippy::too_many_arguments)]
pub fn external_definition(
    name: TableName,
    format: &str,
    options: &[(String, String)],
    locations: Vec<String>,
    columns: Option<Vec<(String, String)>>,
    storage_options: std::collections::BTreeMap<String, String>,
    refresh_interval: Option<std::time::Duration>,
) -> Result<ExternalTableDef> {
    let what = format!("external table {name}");
    let options: Vec<(String, String)> = options
        .iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
        .collect();
    let format = file_format(&what, format, &options)?;
    let columns = columns
        .map(|columns| {
            columns
                .into_iter()
                .map(|(column, type_text)| {
                    let data_type = Parser::new(&GenericDialect {})
                        .try_with_sql(&type_text)
                        .and_then(|mut p| p.parse_data_type())
                        .map_err(|e| syntax(&what, format!("column '{column}': {e}")))?;
                    let sql_type = super::ddl::sql_type(&data_type).map_err(|m| {
                        Error::from(SqlError::NotSupported {
                            statement: what.clone(),
                            what: format!("column '{column}': {m}"),
                        })
                    })?;
                    Ok((column, sql_type))
                })
                .collect::<Result<Vec<(String, SqlType)>>>()
        })
        .transpose()?;
    if refresh_interval.is_some_and(|d| d.is_zero()) {
        return Err(syntax(&what, "refresh_interval must be positive"));
    }
    Ok(ExternalTableDef {
        id: 0,
        name,
        format,
        locations,
        columns,
        storage_options: storage_options
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        refresh_interval,
        loaded: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_however_they_are_quoted() {
        let text = "CREATE EXTERNAL TABLE t FILE_FORMAT = (FORMAT parquet) FILES = (URI 's3://b/') \
                    STORAGE_OPTIONS = ('secret_access_key' 'it''s \\ s3cr3t', 'endpoint' 'http://h', \
                    aws_session_token = \"tok\")";
        let shown = redact_statement(text);
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok\""),
            "{shown}"
        );
        assert!(shown.contains("http://h"), "{shown}");
        assert_eq!(redact_statement("SELECT 'secret'"), "SELECT 'secret'");
    }
}
