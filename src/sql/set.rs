//! `SET` in MySQL's forms, which drivers send on connect:
//!
//! ```sql
//! SET [SESSION | LOCAL] name = value [, ...]      -- also @@name, @@session.name
//! SET @user_variable = expression
//! SET NAMES charset [COLLATE collation]
//! SET CHARACTER SET charset
//! SET [SESSION] TRANSACTION ISOLATION LEVEL ... | READ ONLY | READ WRITE
//! SET datafusion.option = value                 -- DataFusion's settings
//! ```
//!
//! Unknown system variables are MySQL's error 1193; values that do not fit
//! are 1231. Nothing is changed unless every assignment is valid.

use datafusion::common::ScalarValue;

use super::result::QueryResult;
use super::variables::{UserValue, set_system};
use super::{Session, SqlError, abbreviate};
use crate::cancel::Cancel;
use crate::error::Result;

/// One assignment of a `SET` statement.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SetItem {
    /// A system variable of the session, and its value as text.
    System { name: String, value: String },
    /// `@name = expression` (the expression's text, evaluated when run).
    User { name: String, expression: String },
    /// A `datafusion.*` option: the statement goes to DataFusion whole.
    DataFusion,
}

/// Split `text` on `separator` outside quotes and parentheses.
fn split_top(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == '\\' && q == '\'' {
                    if let Some(next) = chars.next() {
                        current.push(next);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '`' => {
                    quote = Some(c);
                    current.push(c);
                }
                '(' => {
                    depth += 1;
                    current.push(c);
                }
                ')' => {
                    depth -= 1;
                    current.push(c);
                }
                c if c == separator && depth == 0 => {
                    parts.push(std::mem::take(&mut current));
                }
                c => current.push(c),
            },
        }
    }
    parts.push(current);
    parts
}

/// A value as written: a quoted string's contents, or the word or number.
fn plain_value(text: &str) -> String {
    let text = text.trim();
    for quote in ['\'', '"'] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            let inner = &text[1..text.len() - 1];
            let doubled = format!("{quote}{quote}");
            return inner.replace(&doubled, &quote.to_string());
        }
    }
    text.to_string()
}

fn syntax(text: &str, message: impl Into<String>) -> crate::error::Error {
    SqlError::Syntax {
        statement: abbreviate(text),
        message: message.into(),
    }
    .into()
}

/// Parse a `SET` statement; `None` when `text` is not one.
pub(super) fn parse_set(text: &str) -> Result<Option<Vec<SetItem>>> {
    let trimmed = text.trim();
    let Some(head) = trimmed.get(..3) else {
        return Ok(None);
    };
    if !head.eq_ignore_ascii_case("SET") || !trimmed[3..].starts_with(char::is_whitespace) {
        return Ok(None);
    }
    let body = trimmed[3..].trim();
    let words: Vec<String> = body
        .split_whitespace()
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    // SET [SESSION] TRANSACTION ...
    let transaction_at = match (word(0), word(1)) {
        ("TRANSACTION", _) => Some(1),
        ("SESSION" | "LOCAL", "TRANSACTION") => Some(2),
        ("GLOBAL", "TRANSACTION") => {
            return Err(global_not_supported(text, "TRANSACTION"));
        }
        _ => None,
    };
    if let Some(at) = transaction_at {
        let rest: Vec<&str> = words[at..].iter().map(String::as_str).collect();
        return Ok(Some(match rest.as_slice() {
            ["ISOLATION", "LEVEL", level @ ..] if !level.is_empty() => vec![SetItem::System {
                name: "transaction_isolation".into(),
                value: level.join("-"),
            }],
            ["READ", "ONLY"] => vec![SetItem::System {
                name: "transaction_read_only".into(),
                value: "ON".into(),
            }],
            ["READ", "WRITE"] => vec![SetItem::System {
                name: "transaction_read_only".into(),
                value: "OFF".into(),
            }],
            _ => {
                return Err(syntax(
                    text,
                    "expected SET TRANSACTION ISOLATION LEVEL ... or READ ONLY/WRITE",
                ));
            }
        }));
    }
    if word(0) == "NAMES" || (word(0) == "CHARACTER" && word(1) == "SET") || word(0) == "CHARSET" {
        let skip = if word(0) == "CHARACTER" { 2 } else { 1 };
        let parts: Vec<&str> = body.split_whitespace().skip(skip).collect();
        let Some(charset) = parts.first() else {
            return Err(syntax(text, "expected a character set"));
        };
        let charset = plain_value(charset);
        let mut items = vec![
            SetItem::System {
                name: "character_set_client".into(),
                value: charset.clone(),
            },
            SetItem::System {
                name: "character_set_connection".into(),
                value: charset.clone(),
            },
            SetItem::System {
                name: "character_set_results".into(),
                value: charset,
            },
        ];
        if let (Some(keyword), Some(collation)) = (parts.get(1), parts.get(2))
            && keyword.eq_ignore_ascii_case("COLLATE")
        {
            items.push(SetItem::System {
                name: "collation_connection".into(),
                value: plain_value(collation),
            });
        }
        return Ok(Some(items));
    }
    let mut items = Vec::new();
    for assignment in split_top(body, ',') {
        let (target, value) = match assignment.split_once(":=") {
            Some(pair) => pair,
            None => assignment.split_once('=').ok_or_else(|| {
                syntax(
                    text,
                    format!("expected name = value in '{}'", assignment.trim()),
                )
            })?,
        };
        let target = target.trim();
        let value = value.trim();
        if value.is_empty() {
            return Err(syntax(text, format!("no value for '{target}'")));
        }
        let lower = target.to_ascii_lowercase();
        if let Some(user) = lower.strip_prefix('@')
            && !user.starts_with('@')
        {
            let name = user.trim_matches('`').trim_matches('\'').trim_matches('"');
            if name.is_empty() {
                return Err(syntax(text, "a user variable needs a name"));
            }
            items.push(SetItem::User {
                name: name.to_string(),
                expression: value.to_string(),
            });
            continue;
        }
        let mut name = lower.as_str();
        let mut global = false;
        for prefix in ["@@session.", "@@local.", "session ", "local ", "@@"] {
            if let Some(rest) = name.strip_prefix(prefix) {
                name = rest.trim();
                break;
            }
        }
        for prefix in ["@@global.", "global ", "@@persist.", "persist "] {
            if let Some(rest) = lower.strip_prefix(prefix) {
                name = rest.trim();
                global = true;
            }
        }
        if name.starts_with("datafusion.") {
            if items.is_empty() && split_top(body, ',').len() == 1 {
                return Ok(Some(vec![SetItem::DataFusion]));
            }
            return Err(syntax(text, "set a datafusion option in a SET of its own"));
        }
        if global {
            return Err(global_not_supported(text, name));
        }
        items.push(SetItem::System {
            name: name.to_string(),
            value: plain_value(value),
        });
    }
    Ok(Some(items))
}

fn global_not_supported(text: &str, name: &str) -> crate::error::Error {
    SqlError::NotSupported {
        statement: abbreviate(text),
        what: format!(
            "SET GLOBAL {name}: instance settings are given when the instance starts \
             (connect() options or `lakewave serve --config`)"
        ),
    }
    .into()
}

impl Session {
    /// Run a `SET`: every assignment is checked before any takes effect.
    pub(super) async fn run_set(
        &self,
        items: Vec<SetItem>,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        if items == [SetItem::DataFusion] {
            self.set_datafusion_option(text).await?;
            return Ok(QueryResult::status(text, "option set".into()));
        }
        // Evaluate user variables first: that can fail.
        let mut users: Vec<(String, UserValue)> = Vec::new();
        for item in &items {
            if let SetItem::User { name, expression } = item {
                users.push((
                    name.clone(),
                    self.evaluate_user(expression, text, cancel).await?,
                ));
            }
        }
        let was_autocommit = self.settings.lock().autocommit;
        {
            let mut settings = self.settings.lock();
            let mut changed = settings.clone();
            for item in &items {
                if let SetItem::System { name, value } = item {
                    set_system(&mut changed, name, value)?;
                }
            }
            for (name, value) in users {
                changed.user.insert(name, value);
            }
            *settings = changed;
        }
        // As in MySQL, turning autocommit on commits an open transaction.
        if !was_autocommit && self.settings.lock().autocommit {
            self.blocking(text, |conn| conn.commit()).await?;
        }
        let names: Vec<String> = items
            .iter()
            .map(|item| match item {
                SetItem::System { name, .. } => name.clone(),
                SetItem::User { name, .. } => format!("@{name}"),
                SetItem::DataFusion => "datafusion option".into(),
            })
            .collect();
        Ok(QueryResult::status(
            text,
            format!("{} set", names.join(", ")),
        ))
    }

    /// The value of `SET @x = expression`: a JSON document for HeatWave's
    /// JSON functions, else whatever the expression computes.
    async fn evaluate_user(
        &self,
        expression: &str,
        text: &str,
        cancel: &Cancel,
    ) -> Result<UserValue> {
        if let Some(json) = self.json_expression(expression, text)? {
            return Ok(UserValue::Json(json));
        }
        let query = format!("SELECT {expression}");
        let result = self.sql_query_value(&query, text, cancel).await?;
        Ok(UserValue::Scalar(result))
    }

    /// The single value of a one-row, one-column query.
    async fn sql_query_value(
        &self,
        query: &str,
        text: &str,
        cancel: &Cancel,
    ) -> Result<ScalarValue> {
        let mut statements = datafusion::sql::parser::DFParser::parse_sql_with_dialect(
            query,
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
        )
        .map_err(|e| super::datafusion_error(text, e))?;
        let statement = statements
            .pop_front()
            .ok_or_else(|| syntax(text, "no value"))?;
        let (state, plan) = self
            .plan(statement, text, super::resolve::Purpose::Query)
            .await?;
        let frame = datafusion::dataframe::DataFrame::new(state, plan);
        let batches = cancel
            .run(frame.collect())
            .await
            .ok_or_else(|| crate::error::Error::Interrupted {
                what: abbreviate(text),
            })?
            .map_err(|e| super::datafusion_error(text, e))?;
        let batch = batches.iter().find(|b| b.num_rows() > 0);
        match batch {
            None => Ok(ScalarValue::Utf8(None)),
            Some(batch) if batch.num_columns() == 1 && batch.num_rows() == 1 => {
                ScalarValue::try_from_array(batch.column(0), 0)
                    .map_err(|e| super::datafusion_error(text, e))
            }
            Some(_) => Err(SqlError::Execution {
                statement: abbreviate(text),
                message: "a variable holds one value; the expression gives more".into(),
                kind: crate::error::ErrorKind::Programming,
                code: crate::error::MySqlCode::new(1242, "21000"),
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(name: &str, value: &str) -> SetItem {
        SetItem::System {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn the_forms_drivers_send() {
        assert_eq!(parse_set("SELECT 1").unwrap(), None);
        assert_eq!(parse_set("SETTLE x").unwrap(), None);
        assert_eq!(
            parse_set(
                "SET autocommit=0, @@session.sql_mode = 'ANSI', SESSION time_zone = '+00:00'"
            )
            .unwrap()
            .unwrap(),
            vec![
                system("autocommit", "0"),
                system("sql_mode", "ANSI"),
                system("time_zone", "+00:00")
            ]
        );
        assert_eq!(
            parse_set("SET NAMES utf8mb4 COLLATE utf8mb4_general_ci")
                .unwrap()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            parse_set("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .unwrap()
                .unwrap(),
            vec![system("transaction_isolation", "READ-COMMITTED")]
        );
        assert_eq!(
            parse_set("SET @o = JSON_OBJECT('a', 1), @n := 2")
                .unwrap()
                .unwrap(),
            vec![
                SetItem::User {
                    name: "o".into(),
                    expression: "JSON_OBJECT('a', 1)".into()
                },
                SetItem::User {
                    name: "n".into(),
                    expression: "2".into()
                },
            ]
        );
        assert_eq!(
            parse_set("SET datafusion.execution.batch_size = 10")
                .unwrap()
                .unwrap(),
            vec![SetItem::DataFusion]
        );
        assert!(parse_set("SET GLOBAL max_connections = 10").is_err());
        assert!(parse_set("SET x").is_err());
        assert!(parse_set("SET x =").is_err());
    }
}
