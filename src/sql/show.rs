//! MySQL's `SHOW` statements and `DESCRIBE`, answered from the catalog and
//! the session: what drivers, ORMs and the `mariadb` client send on connect
//! and when they inspect a schema. `SHOW VARIABLES`, `SHOW STATUS`, `SHOW
//! WARNINGS | ERRORS`, `SHOW ENGINES`, `SHOW DATABASES`, `SHOW [FULL]
//! TABLES`, `SHOW CREATE TABLE | VIEW`, `SHOW [FULL] COLUMNS` and `DESCRIBE`.
//! Column names and order are MySQL's, so tools that read them by position
//! work. Nothing here changes state.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    ObjectName, ShowCreateObject, ShowStatementFilter, ShowStatementFilterPosition,
    ShowStatementOptions, Statement as SqlStatement,
};

use super::result::QueryResult;
use super::session::Session;
use super::variables::{SYSTEM_VARIABLES, system_value};
use super::{SqlError, abbreviate};
use crate::catalog::{Entry, SqlType, TableName};
use crate::error::Result;

/// Databases every instance shows besides its own.
const SYSTEM_DATABASES: [&str; 2] = ["information_schema", "performance_schema"];

impl Session {
    /// Answer `statement` if it is one of the `SHOW` statements (or
    /// `DESCRIBE`) this module knows; `None` for everything else.
    pub(super) async fn show(
        &self,
        statement: &SqlStatement,
        text: &str,
    ) -> Option<Result<QueryResult>> {
        let result = match statement {
            SqlStatement::ShowVariables { filter, .. } => {
                self.show_variables(filter.as_ref(), text)
            }
            SqlStatement::ShowStatus { filter, .. } => self.show_status(filter.as_ref(), text),
            SqlStatement::ShowVariable { variable } if variable.len() == 1 => {
                match variable[0].value.to_ascii_uppercase().as_str() {
                    "WARNINGS" | "ERRORS" => Ok(strings_result(
                        text,
                        &["Level", "Code", "Message"],
                        Vec::new(),
                    )),
                    "ENGINES" => Ok(show_engines(text)),
                    _ => return None,
                }
            }
            SqlStatement::ShowDatabases { show_options, .. }
            | SqlStatement::ShowSchemas { show_options, .. } => {
                self.show_databases(show_options, text)
            }
            SqlStatement::ShowTables {
                full, show_options, ..
            } => self.show_tables(*full, show_options, text),
            SqlStatement::ShowCreate { obj_type, obj_name } => {
                self.show_create(*obj_type, obj_name, text).await
            }
            SqlStatement::ShowColumns {
                full, show_options, ..
            } => match show_options
                .show_in
                .as_ref()
                .and_then(|i| i.parent_name.as_ref())
            {
                Some(table) => {
                    self.show_columns(table, *full, filter_of(show_options), text)
                        .await
                }
                None => Err(SqlError::Syntax {
                    statement: abbreviate(text),
                    message: "SHOW COLUMNS needs FROM table".into(),
                }
                .into()),
            },
            SqlStatement::ExplainTable { table_name, .. } => {
                self.show_columns(table_name, false, None, text).await
            }
            _ => return None,
        };
        Some(result)
    }

    fn show_variables(
        &self,
        filter: Option<&ShowStatementFilter>,
        text: &str,
    ) -> Result<QueryResult> {
        let matcher = Matcher::new(filter, text)?;
        let settings = self.settings.lock().clone();
        let rows = SYSTEM_VARIABLES
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| matcher.matches(name))
            .filter_map(|name| {
                let value = system_value(&self.services, &settings, name)?;
                Some(vec![Some(name.to_string()), Some(value.to_text())])
            })
            .collect();
        Ok(strings_result(text, &["Variable_name", "Value"], rows))
    }

    fn show_status(&self, filter: Option<&ShowStatementFilter>, text: &str) -> Result<QueryResult> {
        let matcher = Matcher::new(filter, text)?;
        let rows = super::status::global_status(&self.services)
            .into_iter()
            .filter(|(name, _)| matcher.matches(name))
            .map(|(name, value)| vec![Some(name), Some(value)])
            .collect();
        Ok(strings_result(text, &["Variable_name", "Value"], rows))
    }

    fn show_databases(&self, options: &ShowStatementOptions, text: &str) -> Result<QueryResult> {
        let matcher = Matcher::new(filter_of(options), text)?;
        let mut names: Vec<String> = self.services.catalog.database_names();
        names.extend(SYSTEM_DATABASES.iter().map(|s| s.to_string()));
        names.sort();
        let rows = names
            .into_iter()
            .filter(|name| matcher.matches(name))
            .map(|name| vec![Some(name)])
            .collect();
        Ok(strings_result(text, &["Database"], rows))
    }

    fn show_tables(
        &self,
        full: bool,
        options: &ShowStatementOptions,
        text: &str,
    ) -> Result<QueryResult> {
        let matcher = Matcher::new(filter_of(options), text)?;
        let database = match options
            .show_in
            .as_ref()
            .and_then(|i| i.parent_name.as_ref())
        {
            Some(name) => super::ddl::last_ident(name),
            None => self.current_database(),
        };
        let catalog = &self.services.catalog;
        if !catalog.has_database(&database) {
            return Err(SqlError::DatabaseNotFound {
                statement: abbreviate(text),
                database,
            }
            .into());
        }
        let mut rows = Vec::new();
        for table in catalog.names(&database) {
            if !matcher.matches(&table) {
                continue;
            }
            let kind = match catalog.resolve(&TableName::new(database.clone(), table.clone())) {
                Some(Entry::View(_)) => "VIEW",
                _ => "BASE TABLE",
            };
            let mut row = vec![Some(table)];
            if full {
                row.push(Some(kind.to_string()));
            }
            rows.push(row);
        }
        let heading = format!("Tables_in_{database}");
        let mut columns = vec![heading.as_str()];
        if full {
            columns.push("Table_type");
        }
        Ok(strings_result(text, &columns, rows))
    }

    async fn show_create(
        &self,
        kind: ShowCreateObject,
        name: &ObjectName,
        text: &str,
    ) -> Result<QueryResult> {
        let name = self.object_name(name, text)?;
        let entry = self.services.catalog.require(&name)?;
        match (kind, &entry) {
            (ShowCreateObject::View, Entry::View(view))
            | (ShowCreateObject::Table, Entry::View(view)) => {
                let columns = if view.columns.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        view.columns
                            .iter()
                            .map(|c| quote(c))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                };
                let ddl = format!(
                    "CREATE VIEW {}{columns} AS {}",
                    quote(&view.name.table),
                    view.sql
                );
                Ok(strings_result(
                    text,
                    &[
                        "View",
                        "Create View",
                        "character_set_client",
                        "collation_connection",
                    ],
                    vec![vec![
                        Some(view.name.table.clone()),
                        Some(ddl),
                        Some("utf8mb4".into()),
                        Some("utf8mb4_0900_ai_ci".into()),
                    ]],
                ))
            }
            (ShowCreateObject::Table, _) => {
                let ddl = self.create_table_text(&entry, text).await?;
                Ok(strings_result(
                    text,
                    &["Table", "Create Table"],
                    vec![vec![Some(name.table.clone()), Some(ddl)]],
                ))
            }
            (ShowCreateObject::View, other) => Err(crate::catalog::CatalogError::WrongKind {
                name,
                kind: other.kind(),
                wanted: "a view",
            }
            .into()),
            (other, _) => Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: format!("SHOW CREATE {other}"),
            }
            .into()),
        }
    }

    /// `CREATE TABLE` text for a table of any kind, as MySQL prints it.
    async fn create_table_text(&self, entry: &Entry, text: &str) -> Result<String> {
        let columns = self.columns_of(entry, text).await?;
        let mut lines: Vec<String> = columns
            .iter()
            .map(|c| {
                let null = if c.nullable { "" } else { " NOT NULL" };
                let extra = if c.auto_increment {
                    " AUTO_INCREMENT"
                } else {
                    ""
                };
                format!("  {} {}{null}{extra}", quote(&c.name), c.type_name)
            })
            .collect();
        let key: Vec<String> = columns
            .iter()
            .filter(|c| c.key)
            .map(|c| quote(&c.name))
            .collect();
        if !key.is_empty() {
            lines.push(format!("  PRIMARY KEY ({})", key.join(",")));
        }
        let name = entry.name();
        let mut ddl = format!(
            "CREATE TABLE {} (\n{}\n)",
            quote(&name.table),
            lines.join(",\n")
        );
        match entry {
            Entry::Row(table) => {
                ddl.push_str(" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
                if table.loaded {
                    ddl.push_str(" SECONDARY_ENGINE=RAPID");
                }
            }
            Entry::Cluster(_) => ddl.push_str(" ENGINE=RAPID"),
            Entry::External(def) => {
                ddl.push_str(&format!(
                    " ENGINE=lakehouse SECONDARY_ENGINE=RAPID ENGINE_ATTRIBUTE='{}'",
                    external_attribute(def).replace('\'', "''")
                ));
            }
            Entry::View(_) => {}
        }
        Ok(ddl)
    }

    async fn show_columns(
        &self,
        table: &ObjectName,
        full: bool,
        filter: Option<&ShowStatementFilter>,
        text: &str,
    ) -> Result<QueryResult> {
        let matcher = Matcher::new(filter, text)?;
        let name = self.object_name(table, text)?;
        let entry = self.services.catalog.require(&name)?;
        let columns = self.columns_of(&entry, text).await?;
        let rows = columns
            .into_iter()
            .filter(|c| matcher.matches(&c.name))
            .map(|c| {
                let mut row = vec![Some(c.name), Some(c.type_name)];
                if full {
                    row.push(c.is_text.then(|| "utf8mb4_0900_ai_ci".to_string()));
                }
                row.push(Some(if c.nullable { "YES" } else { "NO" }.to_string()));
                row.push(Some(if c.key { "PRI" } else { "" }.to_string()));
                row.push(None);
                row.push(Some(
                    if c.auto_increment {
                        "auto_increment"
                    } else {
                        ""
                    }
                    .to_string(),
                ));
                if full {
                    row.push(Some("select".into()));
                    row.push(Some(String::new()));
                }
                row
            })
            .collect();
        let headings: &[&str] = if full {
            &[
                "Field",
                "Type",
                "Collation",
                "Null",
                "Key",
                "Default",
                "Extra",
                "Privileges",
                "Comment",
            ]
        } else {
            &["Field", "Type", "Null", "Key", "Default", "Extra"]
        };
        Ok(strings_result(text, headings, rows))
    }

    /// The columns of a table, view or external table: declared where the
    /// catalog has them, else from the schema a `SELECT *` plans to.
    async fn columns_of(&self, entry: &Entry, text: &str) -> Result<Vec<ShownColumn>> {
        if let Entry::Row(table) = entry {
            return Ok(table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| ShownColumn {
                    name: c.name.clone(),
                    type_name: mysql_type_name(&c.sql_type),
                    is_text: matches!(c.sql_type, SqlType::Text | SqlType::Varchar(_)),
                    // Key columns never hold NULL (MySQL makes them NOT NULL).
                    nullable: c.nullable && !table.primary_key.contains(&i),
                    key: table.primary_key.contains(&i),
                    auto_increment: c.auto_increment,
                })
                .collect());
        }
        let keys: Vec<String> = match entry {
            Entry::Cluster(t) => t.primary_key.clone(),
            _ => Vec::new(),
        };
        let name = entry.name();
        let query = format!(
            "SELECT * FROM {}.{} LIMIT 0",
            quote(&name.database),
            quote(&name.table)
        );
        let statement = datafusion::sql::parser::DFParser::parse_sql(&query)
            .map_err(|e| super::datafusion_error(text, e))?
            .pop_front()
            .expect("one statement");
        let (_, plan) = self
            .plan(statement, text, super::resolve::Purpose::Query)
            .await?;
        let schema = super::output::logical_schema(plan.schema().as_arrow());
        Ok(schema
            .fields()
            .iter()
            .map(|field| ShownColumn {
                name: field.name().clone(),
                type_name: arrow_type_name(field.data_type()),
                is_text: matches!(
                    field.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ),
                nullable: field.is_nullable(),
                key: keys.contains(field.name()),
                auto_increment: false,
            })
            .collect())
    }
}

struct ShownColumn {
    name: String,
    type_name: String,
    is_text: bool,
    nullable: bool,
    key: bool,
    auto_increment: bool,
}

fn filter_of(options: &ShowStatementOptions) -> Option<&ShowStatementFilter> {
    match &options.filter_position {
        Some(ShowStatementFilterPosition::Infix(f) | ShowStatementFilterPosition::Suffix(f)) => {
            Some(f)
        }
        None => None,
    }
}

/// `LIKE 'pattern'` of a SHOW statement, matched as MySQL does for names:
/// `%` any run, `_` one character, `\` escapes, case-insensitive.
struct Matcher(Option<Vec<char>>);

impl Matcher {
    fn new(filter: Option<&ShowStatementFilter>, text: &str) -> Result<Matcher> {
        match filter {
            None => Ok(Matcher(None)),
            Some(ShowStatementFilter::Like(p) | ShowStatementFilter::ILike(p)) => {
                Ok(Matcher(Some(p.to_lowercase().chars().collect())))
            }
            Some(ShowStatementFilter::NoKeyword(p)) => {
                Ok(Matcher(Some(p.to_lowercase().chars().collect())))
            }
            Some(ShowStatementFilter::Where(_)) => Err(SqlError::NotSupported {
                statement: abbreviate(text),
                what: "SHOW ... WHERE (use LIKE, or query information_schema)".into(),
            }
            .into()),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match &self.0 {
            None => true,
            Some(pattern) => {
                let name: Vec<char> = name.to_lowercase().chars().collect();
                like(pattern, &name)
            }
        }
    }
}

/// `%` and `_` matching in time linear in the pattern times the text: on a
/// mismatch, the last `%` takes one more character and matching resumes.
fn like(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('%') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some('_') => {
                p += 1;
                t += 1;
                continue;
            }
            Some('\\') if p + 1 < pattern.len() && pattern[p + 1] == text[t] => {
                p += 2;
                t += 1;
                continue;
            }
            Some(c) if *c != '\\' && *c == text[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((star_p, star_t)) => {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == '%')
}

fn quote(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

/// How MySQL spells a declared column type in `SHOW COLUMNS`.
fn mysql_type_name(sql_type: &SqlType) -> String {
    match sql_type {
        SqlType::Int => "int".into(),
        SqlType::BigInt => "bigint".into(),
        SqlType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        SqlType::Varchar(n) => format!("varchar({n})"),
        SqlType::Text => "text".into(),
        SqlType::Double => "double".into(),
        SqlType::Date => "date".into(),
        SqlType::DateTime => "datetime(6)".into(),
        SqlType::Timestamp => "timestamp(6)".into(),
        SqlType::Boolean => "tinyint(1)".into(),
    }
}

/// The MySQL type closest to an Arrow type (tables read from files).
pub fn arrow_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "tinyint(1)".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 => "tinyint unsigned".into(),
        DataType::UInt16 => "smallint unsigned".into(),
        DataType::UInt32 => "int unsigned".into(),
        DataType::UInt64 => "bigint unsigned".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "blob".into(),
        DataType::FixedSizeBinary(n) => format!("binary({n})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(unit, tz) => {
            let digits = match unit {
                TimeUnit::Second => "",
                TimeUnit::Millisecond => "(3)",
                TimeUnit::Microsecond | TimeUnit::Nanosecond => "(6)",
            };
            if tz.is_some() {
                format!("timestamp{digits}")
            } else {
                format!("datetime{digits}")
            }
        }
        DataType::Time32(_) | DataType::Time64(_) => "time(6)".into(),
        DataType::Dictionary(_, value) => arrow_type_name(value),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => "json".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// HeatWave Lakehouse's `ENGINE_ATTRIBUTE` JSON for an external table, with
/// secrets left out.
fn external_attribute(def: &crate::catalog::ExternalTableDef) -> String {
    let files: Vec<serde_json::Value> = def
        .locations
        .iter()
        .map(|l| serde_json::json!({ "uri": l }))
        .collect();
    serde_json::json!({
        "file": files,
        "dialect": { "format": def.format.name() },
    })
    .to_string()
}

fn show_engines(text: &str) -> QueryResult {
    let row = |engine: &str, support: &str, comment: &str, tx: &str| {
        vec![
            Some(engine.to_string()),
            Some(support.to_string()),
            Some(comment.to_string()),
            Some(tx.to_string()),
            Some("NO".to_string()),
            Some(tx.to_string()),
        ]
    };
    strings_result(
        text,
        &[
            "Engine",
            "Support",
            "Comment",
            "Transactions",
            "XA",
            "Savepoints",
        ],
        vec![
            row(
                "InnoDB",
                "DEFAULT",
                "The DB system's row store (SQLite underneath)",
                "YES",
            ),
            row(
                "RAPID",
                "YES",
                "The in-memory columnar cluster (secondary engine)",
                "NO",
            ),
            row(
                "lakehouse",
                "YES",
                "External tables on object storage",
                "NO",
            ),
        ],
    )
}

/// A result of text columns (every SHOW result is text, as in MySQL).
fn strings_result(text: &str, headings: &[&str], rows: Vec<Vec<Option<String>>>) -> QueryResult {
    let schema = Arc::new(Schema::new(
        headings
            .iter()
            .map(|h| Field::new(*h, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..headings.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("columns match");
    QueryResult::ready(text, schema, vec![batch])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        let pattern: Vec<char> = pattern.chars().collect();
        let name: Vec<char> = name.chars().collect();
        like(&pattern, &name)
    }

    #[test]
    fn like_patterns_match_as_mysql_does() {
        assert!(matches("sql_mode", "sql_mode"));
        assert!(matches("sql\\_mode", "sql_mode"));
        assert!(!matches("sql\\_mode", "sqlxmode"));
        assert!(matches("sql_mode", "sqlxmode"));
        assert!(matches("%timeout", "wait_timeout"));
        assert!(matches("char%", "character_set_client"));
        assert!(!matches("char%", "xcharacter"));
        assert!(matches("%", ""));
        assert!(!matches("_", ""));
        assert!(matches("a%b%c", "aXXbYYc"));
        assert!(!matches("a%b%c", "aXXbYY"));
        assert!(matches("%_%", "x"));
        // Many wildcards against a long name end at once.
        let long: String = "a".repeat(200);
        assert!(!matches(&format!("{}z", "%".repeat(30)), &long));
    }
}
