//! HeatWave's procedural surface: JSON-valued user variables
//! (`SET @options = JSON_OBJECT('refresh_external_tables', TRUE)`) and
//! `CALL sys.HEATWAVE_LOAD(CAST('[...]' AS JSON), @options)`, which loads the
//! listed tables that are not loaded and, with `refresh_external_tables`,
//! refreshes the external tables that are. `CALL` is parsed by the SQL
//! parser; any other procedure is MySQL's error 1305.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::ast::{
    DataType as AstType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde_json::Value as Json;

use super::result::QueryResult;
use super::{Session, SqlError, abbreviate};
use crate::cancel::Cancel;
use crate::catalog::{Entry, TableName};
use crate::error::Result;

fn bad(text: &str, message: impl Into<String>) -> crate::error::Error {
    SqlError::Plan {
        statement: abbreviate(text),
        message: message.into(),
    }
    .into()
}

fn wrong_arguments(message: impl Into<String>) -> crate::error::Error {
    SqlError::WrongArguments {
        what: "PROCEDURE sys.heatwave_load".into(),
        message: message.into(),
    }
    .into()
}

/// Whether an expression is one of the JSON constructors HeatWave's
/// procedures take (evaluated here; anything else is SQL for DataFusion).
fn is_json_expression(expr: &Expr) -> bool {
    match expr {
        Expr::Function(function) => {
            let name = function.name.to_string().to_ascii_uppercase();
            name == "JSON_OBJECT" || name == "JSON_ARRAY"
        }
        Expr::Cast { data_type, .. } => is_json_type(data_type),
        Expr::Nested(inner) => is_json_expression(inner),
        _ => false,
    }
}

fn is_json_type(data_type: &AstType) -> bool {
    matches!(data_type, AstType::JSON)
        || matches!(data_type, AstType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("json"))
}

impl Session {
    /// `CALL procedure(args)`.
    pub(super) async fn call(
        &self,
        function: &Function,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let name = function.name.to_string().to_ascii_lowercase();
        let name = name.replace('`', "");
        if name != "sys.heatwave_load" {
            return Err(SqlError::UnknownRoutine {
                kind: "PROCEDURE",
                name: function.name.to_string(),
            }
            .into());
        }
        let args: Vec<&Expr> = match &function.args {
            FunctionArguments::List(list) => list
                .args
                .iter()
                .map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                    other => Err(wrong_arguments(format!("unsupported argument {other}"))),
                })
                .collect::<Result<_>>()?,
            FunctionArguments::None => Vec::new(),
            FunctionArguments::Subquery(_) => {
                return Err(wrong_arguments("a subquery is not an argument list"));
            }
        };
        let (input, options) = match args.as_slice() {
            [input] => (self.json_value(input, text)?, Json::Null),
            [input, options] => (
                self.json_value(input, text)?,
                self.json_value(options, text)?,
            ),
            other => {
                return Err(wrong_arguments(format!(
                    "expected 2 (an input list and options), got {}",
                    other.len()
                )));
            }
        };
        self.heatwave_load(input, options, text, cancel).await
    }

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
                let inner = self.json_value(expr, text)?;
                match (is_json_type(data_type), inner) {
                    (true, Json::String(s)) => serde_json::from_str(&s)
                        .map_err(|e| bad(text, format!("invalid JSON: {e}")))?,
                    (_, other) => other,
                }
            }
            Expr::Identifier(ident) if ident.value.starts_with('@') => {
                let name = ident.value.trim_start_matches('@').to_ascii_lowercase();
                self.settings
                    .lock()
                    .user
                    .get(&name)
                    .map(|v| v.to_json())
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

    /// The JSON value of a `SET @x = expression` when the expression is a
    /// JSON constructor; `None` for any other expression.
    pub(super) fn json_expression(&self, expression: &str, text: &str) -> Result<Option<Json>> {
        let sql = format!("SELECT {expression}");
        let Ok(statements) = Parser::parse_sql(&GenericDialect {}, &sql) else {
            return Ok(None);
        };
        let Some(datafusion::sql::sqlparser::ast::Statement::Query(query)) = statements.first()
        else {
            return Ok(None);
        };
        let datafusion::sql::sqlparser::ast::SetExpr::Select(select) = query.body.as_ref() else {
            return Ok(None);
        };
        let [datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(expr)] =
            select.projection.as_slice()
        else {
            return Ok(None);
        };
        if !is_json_expression(expr) {
            return Ok(None);
        }
        self.json_value(expr, text).map(Some)
    }

    async fn heatwave_load(
        &self,
        input: Json,
        options: Json,
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let refresh = options
            .get("refresh_external_tables")
            .is_some_and(|v| v.as_bool().unwrap_or(false) || v.as_i64() == Some(1));
        let dry_run = options.get("mode").and_then(Json::as_str) == Some("dryrun");
        let Json::Array(entries) = input else {
            return Err(wrong_arguments(
                "the input list must be a JSON array of {\"db_name\": ..., \"tables\": [...]}",
            ));
        };
        let catalog = &self.services.catalog;
        let mut names = Vec::new();
        for entry in entries {
            let db = entry
                .get("db_name")
                .and_then(Json::as_str)
                .ok_or_else(|| wrong_arguments("each input entry needs \"db_name\""))?
                .to_string();
            if !catalog.has_database(&db) {
                return Err(SqlError::DatabaseNotFound {
                    statement: abbreviate(text),
                    database: db,
                }
                .into());
            }
            match entry.get("tables").and_then(Json::as_array) {
                Some(tables) => {
                    for table in tables {
                        let table = table
                            .get("table_name")
                            .and_then(Json::as_str)
                            .or_else(|| table.as_str())
                            .ok_or_else(|| wrong_arguments("each table needs \"table_name\""))?;
                        names.push(TableName::new(db.clone(), table));
                    }
                }
                None => {
                    for table in catalog.names(&db) {
                        let name = TableName::new(db.clone(), table);
                        if matches!(
                            catalog.resolve(&name),
                            Some(Entry::Row(_) | Entry::External(_))
                        ) {
                            names.push(name);
                        }
                    }
                }
            }
        }
        let report = self
            .load_or_refresh(names, refresh, dry_run, text, cancel)
            .await?;
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

    /// Load the tables that are not loaded and (with `refresh`) refresh the
    /// loaded external tables; every name is checked before any is touched.
    /// Returns what was done to each.
    pub(super) async fn load_or_refresh(
        &self,
        names: Vec<TableName>,
        refresh: bool,
        dry_run: bool,
        text: &str,
        cancel: &Cancel,
    ) -> Result<Vec<(String, String)>> {
        let catalog = &self.services.catalog;
        let mut plan = Vec::new();
        for name in names {
            let action = match catalog.resolve(&name) {
                Some(Entry::External(def)) if def.loaded && refresh => "refresh",
                Some(Entry::External(def)) if def.loaded => "skip (already loaded)",
                Some(Entry::External(_)) => "load",
                Some(Entry::Row(table)) if table.loaded => "skip (already loaded)",
                Some(Entry::Row(_)) => "load",
                Some(other) => {
                    return Err(wrong_arguments(format!(
                        "{name} is {}, which HEATWAVE_LOAD does not load",
                        other.kind().article()
                    )));
                }
                None => {
                    return Err(SqlError::TableNotFound {
                        statement: abbreviate(text),
                        table: name.to_string(),
                    }
                    .into());
                }
            };
            plan.push((name, action));
        }
        let mut report: Vec<(String, String)> = Vec::new();
        for (name, action) in plan {
            let outcome = if dry_run || action.starts_with("skip") {
                action.to_string()
            } else if action == "refresh" {
                self.refresh_external(&name, cancel).await?.to_string()
            } else {
                let statement = format!("ALTER TABLE {name} SECONDARY_LOAD");
                self.load_table(&name, &statement, cancel).await?;
                "loaded".into()
            };
            report.push((name.to_string(), outcome));
        }
        Ok(report)
    }

    /// `Connection.refresh(*tables)`: HEATWAVE_LOAD with
    /// `refresh_external_tables`.
    pub async fn refresh_tables(
        &self,
        names: &[TableName],
        cancel: &Cancel,
    ) -> Result<Vec<(String, String)>> {
        let text = format!(
            "refresh {}",
            names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.load_or_refresh(names.to_vec(), true, false, &text, cancel)
            .await
    }

    /// `Connection.reload(table)`: SECONDARY_UNLOAD, then SECONDARY_LOAD.
    pub async fn reload_table(&self, name: &TableName, cancel: &Cancel) -> Result<()> {
        let text = format!("reload {name}");
        let quoted = format!(
            "{}.{}",
            crate::rowstore::quote(&name.database),
            crate::rowstore::quote(&name.table)
        );
        self.secondary_unload(&quoted, &text).await?;
        self.secondary_load(&quoted, &text, cancel).await?;
        Ok(())
    }
}
