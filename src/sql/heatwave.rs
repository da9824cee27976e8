//! HeatWave's procedural surface: user variables holding JSON
//! (`SET @options = JSON_OBJECT('refresh_external_tables', TRUE)`) and
//! `CALL sys.HEATWAVE_LOAD(CAST('[...]' AS JSON), @options)`, which loads the
//! listed tables that are not loaded and, with `refresh_external_tables`,
//! refreshes the external tables that are.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::ast::{
    DataType as AstType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde_json::Value as Json;

use super::{QueryResult, Session, SqlError, abbreviate};
use crate::cancel::Cancel;
use crate::catalog::TableName;
use crate::error::Result;

fn bad(text: &str, message: impl Into<String>) -> crate::error::Error {
    SqlError::Plan {
        statement: abbreviate(text),
        message: message.into(),
    }
    .into()
}

/// `SET @name = expr` → (name, expr text); `None` for other statements.
pub fn parse_user_variable(text: &str) -> Option<(String, String)> {
    let rest = text.trim();
    let head = rest.get(..3)?;
    if !head.eq_ignore_ascii_case("SET") {
        return None;
    }
    let rest = rest[3..].trim_start();
    let rest = rest.strip_prefix('@')?;
    if rest.starts_with('@') {
        return None;
    }
    let (name, expr) = rest.split_once('=')?;
    Some((name.trim().to_ascii_lowercase(), expr.trim().to_string()))
}

/// `CALL sys.HEATWAVE_LOAD(a, b)` → the argument text; `None` otherwise.
pub fn parse_heatwave_load(text: &str) -> Option<String> {
    let compact = text.trim();
    let upper = compact.to_ascii_uppercase();
    let rest = upper.strip_prefix("CALL")?.trim_start();
    if !rest.starts_with("SYS.HEATWAVE_LOAD") {
        return None;
    }
    let open = compact.find('(')?;
    let close = compact.rfind(')')?;
    Some(compact[open + 1..close].to_string())
}

impl Session {
    /// Evaluate a JSON-valued expression: a string, CAST(... AS JSON),
    /// JSON_OBJECT, JSON_ARRAY, TRUE/FALSE, numbers, NULL, @variables.
    fn json_value(&self, expr: &Expr, text: &str) -> Result<Json> {
        Ok(match expr {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                    Json::String(s.clone())
                }
                Value::Boolean(b) => Json::Bool(*b),
                Value::Number(n, _) => serde_json::from_str(n).unwrap_or(Json::String(n.clone())),
                Value::Null => Json::Null,
                other => return Err(bad(text, format!("unsupported value {other}"))),
            },
            Expr::Cast {
                expr, data_type, ..
            } => {
                let is_json = matches!(data_type, AstType::JSON)
                    || matches!(data_type, AstType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("json"));
                let inner = self.json_value(expr, text)?;
                match (is_json, inner) {
                    (true, Json::String(s)) => serde_json::from_str(&s)
                        .map_err(|e| bad(text, format!("invalid JSON: {e}")))?,
                    (_, other) => other,
                }
            }
            Expr::Identifier(ident) if ident.value.starts_with('@') => {
                let name = ident.value.trim_start_matches('@').to_ascii_lowercase();
                self.variables
                    .lock()
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| bad(text, format!("user variable @{name} is not set")))?
            }
            Expr::Function(function) => {
                let name = function.name.to_string().to_ascii_uppercase();
                let FunctionArguments::List(list) = &function.args else {
                    return Err(bad(text, format!("{name} needs arguments")));
                };
                let mut args = Vec::new();
                for arg in &list.args {
                    let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg else {
                        return Err(bad(text, format!("unsupported argument in {name}")));
                    };
                    args.push(self.json_value(e, text)?);
                }
                match name.as_str() {
                    "JSON_ARRAY" => Json::Array(args),
                    "JSON_OBJECT" => {
                        if args.len() % 2 != 0 {
                            return Err(bad(text, "JSON_OBJECT needs key, value pairs"));
                        }
                        let mut object = serde_json::Map::new();
                        for pair in args.chunks(2) {
                            let Json::String(key) = &pair[0] else {
                                return Err(bad(text, "JSON_OBJECT keys are strings"));
                            };
                            object.insert(key.clone(), pair[1].clone());
                        }
                        Json::Object(object)
                    }
                    other => {
                        return Err(bad(text, format!("function {other} is not supported here")));
                    }
                }
            }
            Expr::Nested(inner) => self.json_value(inner, text)?,
            other => return Err(bad(text, format!("unsupported expression {other}"))),
        })
    }

    fn parse_expressions(&self, list: &str, text: &str) -> Result<Vec<Expr>> {
        let sql = format!("SELECT {list}");
        let statements = Parser::parse_sql(&GenericDialect {}, &sql).map_err(|e| {
            crate::error::Error::from(SqlError::Syntax {
                statement: abbreviate(text),
                message: e.to_string(),
            })
        })?;
        let Some(datafusion::sql::sqlparser::ast::Statement::Query(query)) = statements.first()
        else {
            return Err(bad(text, "cannot read the arguments"));
        };
        let datafusion::sql::sqlparser::ast::SetExpr::Select(select) = query.body.as_ref() else {
            return Err(bad(text, "cannot read the arguments"));
        };
        Ok(select
            .projection
            .iter()
            .filter_map(|item| match item {
                datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(e) => Some(e.clone()),
                datafusion::sql::sqlparser::ast::SelectItem::ExprWithAlias { expr, .. } => {
                    Some(expr.clone())
                }
                _ => None,
            })
            .collect())
    }

    pub(super) fn set_user_variable(
        &self,
        name: &str,
        expr: &str,
        text: &str,
    ) -> Result<QueryResult> {
        let exprs = self.parse_expressions(expr, text)?;
        let [expr] = exprs.as_slice() else {
            return Err(bad(text, "SET @variable takes one value"));
        };
        let value = self.json_value(expr, text)?;
        self.variables.lock().insert(name.to_string(), value);
        Ok(self.done(text, format!("@{name} is set")))
    }

    pub(super) async fn heatwave_load(
        &self,
        args: &str,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let exprs = self.parse_expressions(args, text)?;
        let (input, options) = match exprs.as_slice() {
            [input] => (self.json_value(input, text)?, Json::Null),
            [input, options] => (
                self.json_value(input, text)?,
                self.json_value(options, text)?,
            ),
            _ => {
                return Err(bad(
                    text,
                    "sys.HEATWAVE_LOAD takes an input list and options",
                ));
            }
        };
        let refresh = options
            .get("refresh_external_tables")
            .is_some_and(|v| v.as_bool().unwrap_or(false) || v.as_i64() == Some(1));
        let dry_run = options.get("mode").and_then(Json::as_str) == Some("dryrun");
        let Json::Array(entries) = input else {
            return Err(bad(
                text,
                "the input list must be a JSON array of {\"db_name\": ..., \"tables\": [...]}",
            ));
        };
        let mut names = Vec::new();
        for entry in entries {
            let db = entry
                .get("db_name")
                .and_then(Json::as_str)
                .ok_or_else(|| bad(text, "each input entry needs \"db_name\""))?
                .to_string();
            match entry.get("tables").and_then(Json::as_array) {
                Some(tables) => {
                    for table in tables {
                        let table = table
                            .get("table_name")
                            .and_then(Json::as_str)
                            .or_else(|| table.as_str())
                            .ok_or_else(|| bad(text, "each table needs \"table_name\""))?;
                        names.push(TableName::new(db.clone(), table));
                    }
                }
                None => {
                    let mut all = self.sources.conn.database().table_names(&db);
                    all.extend(self.sources.externals.names(&db));
                    names.extend(all.into_iter().map(|t| TableName::new(db.clone(), t)));
                }
            }
        }
        let mut report: Vec<(String, String)> = Vec::new();
        for name in names {
            let external = self.sources.externals.get(&name).is_some();
            let row_store = self.sources.conn.database().table(&name).is_some();
            let action = if external && self.sources.externals.is_loaded(&name) {
                if refresh {
                    "refresh"
                } else {
                    "skip (already loaded)"
                }
            } else if external || (row_store && self.sources.propagator.table(&name).is_none()) {
                "load"
            } else if row_store {
                "skip (already loaded)"
            } else {
                return Err(SqlError::TableNotFound {
                    statement: abbreviate(text),
                    table: name.to_string(),
                }
                .into());
            };
            let outcome = if dry_run || action.starts_with("skip") {
                action.to_string()
            } else if action == "refresh" {
                self.refresh_external(&name, cancel).await?.to_string()
            } else {
                let statement = format!("ALTER TABLE {name} SECONDARY_LOAD");
                let load_name = format!(
                    "{}.{}",
                    crate::rowstore::quote(&name.database),
                    crate::rowstore::quote(&name.table)
                );
                self.secondary_load(&load_name, &statement, cancel).await?;
                "loaded".into()
            };
            report.push((name.to_string(), outcome));
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    report.iter().map(|r| r.0.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    report.iter().map(|r| r.1.as_str()),
                )),
            ],
        )
        .expect("two string columns");
        Ok(QueryResult::ready(text, schema, vec![batch]))
    }
}
