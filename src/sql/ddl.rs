//! DDL on the one catalog: `CREATE TABLE` (a row-store table), `CREATE VIEW`,
//! `CREATE DATABASE`, `USE`, `DROP TABLE | VIEW | DATABASE`, `TRUNCATE` and
//! `ALTER TABLE ... RENAME | ADD COLUMN | DROP COLUMN`.
//!
//! Each statement holds the catalog's DDL lock from its first check to its
//! last change, persists through the row store (the SQLite DDL and the
//! catalog entry in one transaction), and only then publishes the change to
//! the catalog. A name is checked against every kind of entry: a table
//! cannot shadow an external table or a view.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, CharacterLength, ColumnDef as AstColumnDef, ColumnOption, CreateTable,
    CreateView, DataType as AstType, ExactNumberInfo, Expr as AstExpr, Ident, ObjectName,
    ObjectType, RenameTableNameKind, TableConstraint, TimezoneInfo, Truncate, Use,
};

use super::result::QueryResult;
use super::{Session, SqlError, abbreviate};
use crate::cancel::Cancel;
use crate::catalog::{
    CatalogError, ColumnDef, Entry, MAX_DECIMAL_PRECISION, RowTable, SqlType, TableName, View,
};
use crate::error::{Error, MySqlCode, Result, codes};
use crate::rowstore::RowStoreError;

pub(super) fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The last part of a (possibly qualified) name, normalised.
pub(super) fn last_ident(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(normalize)
        .unwrap_or_default()
}

pub(super) fn not_supported(text: &str, what: impl Into<String>) -> Error {
    SqlError::NotSupported {
        statement: abbreviate(text),
        what: what.into(),
    }
    .into()
}

fn definition(name: &TableName, code: MySqlCode, message: impl Into<String>) -> Error {
    RowStoreError::Definition {
        table: name.clone(),
        message: message.into(),
        code,
    }
    .into()
}

/// The declared type of a column definition, or a message naming what is
/// not supported.
pub(super) fn sql_type(data_type: &AstType) -> std::result::Result<SqlType, String> {
    use AstType as T;
    let length = |l: &Option<CharacterLength>| match l {
        Some(CharacterLength::IntegerLength { length, .. }) => {
            Ok(SqlType::Varchar((*length).min(u32::MAX as u64) as u32))
        }
        Some(CharacterLength::Max) | None => Ok(SqlType::Text),
    };
    match data_type {
        T::Int(_)
        | T::Integer(_)
        | T::Int4(_)
        | T::Int32
        | T::MediumInt(_)
        | T::SmallInt(_)
        | T::TinyInt(_) => Ok(SqlType::Int),
        T::BigInt(_) | T::Int8(_) | T::Int64 => Ok(SqlType::BigInt),
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => {
            let (precision, scale) = match info {
                ExactNumberInfo::None => (10, 0),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
            };
            if precision == 0 || precision > MAX_DECIMAL_PRECISION {
                return Err(format!(
                    "DECIMAL precision must be between 1 and {MAX_DECIMAL_PRECISION}, not {precision}"
                ));
            }
            if scale < 0 || scale as u64 > precision {
                return Err(format!(
                    "DECIMAL scale must be between 0 and the precision ({precision}), not {scale}"
                ));
            }
            Ok(SqlType::Decimal {
                precision: precision as u8,
                scale: scale as i8,
            })
        }
        T::Varchar(l) | T::CharVarying(l) | T::Char(l) | T::Character(l) => length(l),
        T::String(Some(n)) => Ok(SqlType::Varchar((*n).min(u32::MAX as u64) as u32)),
        T::String(None) | T::Text | T::TinyText | T::MediumText | T::LongText => Ok(SqlType::Text),
        T::Double(_) | T::DoublePrecision | T::Float(_) | T::Real | T::Float64 | T::Float8 => {
            Ok(SqlType::Double)
        }
        T::Date => Ok(SqlType::Date),
        T::Datetime(_) => Ok(SqlType::DateTime),
        T::Timestamp(_, TimezoneInfo::WithoutTimeZone) => Ok(SqlType::DateTime),
        T::Timestamp(_, _) => Ok(SqlType::Timestamp),
        T::Boolean | T::Bool => Ok(SqlType::Boolean),
        other => Err(format!(
            "column type {other} is not supported; use INT, BIGINT, DECIMAL(p,s), VARCHAR(n), TEXT, DOUBLE, DATE, DATETIME, TIMESTAMP or BOOLEAN"
        )),
    }
}

impl Session {
    /// `db.table` or `table` from the AST.
    pub(super) fn object_name(&self, name: &ObjectName, text: &str) -> Result<TableName> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| p.as_ident().map(normalize))
            .collect::<Option<_>>()
            .ok_or_else(|| not_supported(text, format!("the name {name}")))?;
        match parts.as_slice() {
            [table] => Ok(TableName::new(self.current_database(), table.clone())),
            [database, table] => Ok(TableName::new(database.clone(), table.clone())),
            _ => Err(CatalogError::InvalidName {
                name: name.to_string(),
                reason: "expected table or database.table".into(),
            }
            .into()),
        }
    }

    /// `table` or `database.table` as text.
    /// A table name in a statement lakewave runs itself; in front of a
    /// server, read as the server reads it (unquoted names keep their case).
    pub(super) fn parse_name(&self, name: &str) -> Result<TableName> {
        let database = self.current_database();
        Ok(match self.upstream() {
            Some(_) => TableName::parse_as_written(name, &database)?,
            None => TableName::parse(name, &database)?,
        })
    }

    pub(super) fn column_def_for(
        &self,
        column: &AstColumnDef,
        table: &TableName,
    ) -> Result<(ColumnDef, bool)> {
        let name = normalize(&column.name);
        let sql_type = sql_type(&column.data_type).map_err(|m| {
            definition(
                table,
                codes::NOT_SUPPORTED_YET,
                format!("column '{name}': {m}"),
            )
        })?;
        let mut def = ColumnDef {
            name: name.clone(),
            sql_type,
            nullable: true,
            auto_increment: false,
        };
        let mut primary = false;
        for option in &column.options {
            match &option.option {
                ColumnOption::Null => def.nullable = true,
                ColumnOption::NotNull => def.nullable = false,
                ColumnOption::PrimaryKey(_) => primary = true,
                ColumnOption::DialectSpecific(tokens)
                    if tokens
                        .iter()
                        .any(|t| t.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")) =>
                {
                    def.auto_increment = true
                }
                other => {
                    return Err(definition(
                        table,
                        codes::NOT_SUPPORTED_YET,
                        format!("column option `{other}` on '{name}' is not supported"),
                    ));
                }
            }
        }
        Ok((def, primary))
    }

    pub(super) async fn create_row_table(
        &self,
        create: &CreateTable,
        text: &str,
    ) -> Result<QueryResult> {
        let name = self.object_name(&create.name, text)?;
        if create.external || create.temporary {
            return Err(not_supported(text, "CREATE TEMPORARY/EXTERNAL TABLE"));
        }
        if create.or_replace {
            return Err(not_supported(
                text,
                "CREATE OR REPLACE TABLE with a column list",
            ));
        }
        let mut columns = Vec::new();
        let mut primary_key = Vec::new();
        for (i, column) in create.columns.iter().enumerate() {
            let (def, primary) = self.column_def_for(column, &name)?;
            if primary {
                primary_key.push(i);
            }
            columns.push(def);
        }
        for constraint in &create.constraints {
            match constraint {
                TableConstraint::PrimaryKey(pk) => {
                    if !primary_key.is_empty() {
                        return Err(definition(
                            &name,
                            codes::MULTIPLE_PRI_KEY,
                            "more than one PRIMARY KEY",
                        ));
                    }
                    for column in &pk.columns {
                        let AstExpr::Identifier(ident) = &column.column.expr else {
                            return Err(definition(
                                &name,
                                codes::NOT_SUPPORTED_YET,
                                format!("PRIMARY KEY ({})", column.column.expr),
                            ));
                        };
                        let key = normalize(ident);
                        let index =
                            columns.iter().position(|c| c.name == key).ok_or_else(|| {
                                definition(
                                    &name,
                                    codes::KEY_COLUMN_DOES_NOT_EXIST,
                                    format!("PRIMARY KEY names unknown column '{key}'"),
                                )
                            })?;
                        primary_key.push(index);
                    }
                }
                other => {
                    return Err(definition(
                        &name,
                        codes::NOT_SUPPORTED_YET,
                        format!("constraint `{other}` is not supported"),
                    ));
                }
            }
        }
        let _ddl = self.services.catalog.ddl().lock().await;
        match self.services.catalog.check_free(&name) {
            Err(CatalogError::TableExists { .. }) if create.if_not_exists => {
                return Ok(QueryResult::status(
                    text,
                    format!("table {name} already exists"),
                ));
            }
            other => other?,
        }
        let table = RowTable {
            id: 0,
            name: name.clone(),
            columns,
            primary_key,
            loaded: false,
        };
        let created = self
            .blocking(text, move |conn| conn.create_table(&table))
            .await?;
        self.services
            .catalog
            .insert(Entry::Row(Arc::new(created)))?;
        Ok(QueryResult::status(text, format!("created table {name}")))
    }

    /// `CREATE [OR REPLACE] VIEW v [(columns)] AS query`: the query must plan
    /// now; its text is kept and planned anew by every statement that reads
    /// the view.
    pub(super) async fn create_view(&self, create: &CreateView, text: &str) -> Result<QueryResult> {
        if create.materialized {
            return Err(not_supported(text, "CREATE MATERIALIZED VIEW"));
        }
        let name = self.object_name(&create.name, text)?;
        let sql = create.query.to_string();
        let columns: Vec<String> = create.columns.iter().map(|c| normalize(&c.name)).collect();
        let view = View {
            id: 0,
            name: name.clone(),
            sql: sql.clone(),
            database: self.current_database(),
            columns,
        };
        // The query must plan (its tables and columns exist), on the row
        // store so no table needs to be loaded.
        let statement = datafusion::sql::parser::Statement::Statement(Box::new(
            datafusion::sql::sqlparser::ast::Statement::Query(create.query.clone()),
        ));
        let (_, plan) = self
            .plan(statement, text, super::resolve::Purpose::RowStore)
            .await?;
        if !view.columns.is_empty() && plan.schema().fields().len() != view.columns.len() {
            return Err(SqlError::Plan {
                statement: abbreviate(text),
                message: format!(
                    "view {name} names {} columns but its query gives {}",
                    view.columns.len(),
                    plan.schema().fields().len()
                ),
            }
            .into());
        }
        let _ddl = self.services.catalog.ddl().lock().await;
        let existing = self.services.catalog.resolve(&name);
        match &existing {
            Some(Entry::View(_)) if create.or_replace => {}
            Some(_) if create.if_not_exists => {
                return Ok(QueryResult::status(text, format!("{name} already exists")));
            }
            Some(other) => {
                return Err(CatalogError::TableExists {
                    name,
                    kind: other.kind(),
                }
                .into());
            }
            None => self.services.catalog.check_free(&name)?,
        }
        let entry = match existing {
            Some(Entry::View(old)) => {
                let replaced = Entry::View(Arc::new(View { id: old.id, ..view }));
                let saved = replaced.clone();
                self.blocking(text, move |conn| conn.update_entry(&saved))
                    .await?;
                replaced
            }
            _ => {
                let fresh = Entry::View(Arc::new(view.clone()));
                let id = self
                    .blocking(text, move |conn| conn.insert_entry(&fresh))
                    .await?;
                Entry::View(Arc::new(View { id, ..view }))
            }
        };
        self.services.catalog.replace(entry)?;
        Ok(QueryResult::status(text, format!("created view {name}")))
    }

    /// `DROP TABLE` / `DROP VIEW` of one or more names: all are checked
    /// before any is dropped.
    pub(super) async fn drop_names(
        &self,
        object_type: ObjectType,
        names: &[ObjectName],
        if_exists: bool,
        text: &str,
    ) -> Result<QueryResult> {
        let names: Vec<TableName> = names
            .iter()
            .map(|n| self.object_name(n, text))
            .collect::<Result<_>>()?;
        let _ddl = self.services.catalog.ddl().lock().await;
        let mut entries = Vec::new();
        let mut missing = Vec::new();
        for name in &names {
            match self.services.catalog.resolve(name) {
                Some(Entry::View(_)) if object_type == ObjectType::Table => {
                    return Err(CatalogError::WrongKind {
                        name: name.clone(),
                        kind: crate::catalog::EntryKind::View,
                        wanted: "a table (use DROP VIEW)",
                    }
                    .into());
                }
                Some(entry)
                    if object_type == ObjectType::View && !matches!(entry, Entry::View(_)) =>
                {
                    return Err(CatalogError::WrongKind {
                        name: name.clone(),
                        kind: entry.kind(),
                        wanted: "a view",
                    }
                    .into());
                }
                Some(entry) => entries.push(entry),
                None => missing.push(name.to_string()),
            }
        }
        if !missing.is_empty() && !if_exists {
            return Err(SqlError::Execution {
                statement: abbreviate(text),
                message: format!("unknown table '{}'", missing.join("', '")),
                kind: crate::error::ErrorKind::TableNotFound,
                code: codes::BAD_TABLE,
            }
            .into());
        }
        for entry in &entries {
            self.drop_entry(entry, text).await?;
        }
        let dropped: Vec<String> = entries.iter().map(|e| e.name().to_string()).collect();
        Ok(QueryResult::status(
            text,
            if dropped.is_empty() {
                format!("{} did not exist", missing.join(", "))
            } else {
                format!("dropped {}", dropped.join(", "))
            },
        ))
    }

    /// Drop one entry and everything it holds. The caller holds the DDL lock.
    async fn drop_entry(&self, entry: &Entry, text: &str) -> Result<()> {
        let services = &self.services;
        let name = entry.name().clone();
        match entry {
            Entry::Row(table) => {
                let unloaded = name.clone();
                self.with_propagator(text, move |p| p.unload(&unloaded))
                    .await?;
                let table = Arc::clone(table);
                self.blocking(text, move |conn| conn.drop_table(&table))
                    .await?;
            }
            Entry::External(_) => {
                services.cluster.unload(&name);
                services.externals.forget(&name);
                let saved = entry.clone();
                self.blocking(text, move |conn| conn.delete_entry(&saved))
                    .await?;
            }
            Entry::View(_) => {
                let saved = entry.clone();
                self.blocking(text, move |conn| conn.delete_entry(&saved))
                    .await?;
            }
            Entry::Cluster(_) => {
                services.cluster.unload(&name);
            }
        }
        services.catalog.remove(&name, entry.id());
        Ok(())
    }

    pub(super) async fn create_database(
        &self,
        name: &str,
        if_not_exists: bool,
        text: &str,
    ) -> Result<QueryResult> {
        let _ddl = self.services.catalog.ddl().lock().await;
        if self.services.catalog.has_database(name) {
            if if_not_exists {
                return Ok(QueryResult::status(text, format!("database {name} exists")));
            }
            return Err(CatalogError::DatabaseExists(name.to_string()).into());
        }
        let owned = name.to_string();
        self.blocking(text, move |conn| conn.create_database(&owned))
            .await?;
        self.services.catalog.create_database(name)?;
        Ok(QueryResult::status(
            text,
            format!("database {name} is ready"),
        ))
    }

    /// `DROP DATABASE`: the database and every table, view and external
    /// table in it (the external tables' files are not touched).
    pub(super) async fn drop_database(
        &self,
        names: &[ObjectName],
        if_exists: bool,
        text: &str,
    ) -> Result<QueryResult> {
        let [name] = names else {
            return Err(not_supported(text, "DROP DATABASE of several databases"));
        };
        let name = last_ident(name);
        if name == crate::catalog::DEFAULT_DATABASE {
            return Err(not_supported(text, "dropping the default database 'main'"));
        }
        let _ddl = self.services.catalog.ddl().lock().await;
        if !self.services.catalog.has_database(&name) {
            if if_exists {
                return Ok(QueryResult::status(
                    text,
                    format!("database {name} did not exist"),
                ));
            }
            return Err(SqlError::Execution {
                statement: abbreviate(text),
                message: format!("can't drop database '{name}'; database doesn't exist"),
                kind: crate::error::ErrorKind::TableNotFound,
                code: codes::DB_DROP_EXISTS,
            }
            .into());
        }
        let entries: Vec<Entry> = self
            .services
            .catalog
            .entries()
            .into_iter()
            .filter(|e| e.name().database == name)
            .collect();
        for entry in &entries {
            match entry {
                Entry::Row(_) => {
                    let unloaded = entry.name().clone();
                    self.with_propagator(text, move |p| p.unload(&unloaded))
                        .await?;
                }
                Entry::External(_) | Entry::Cluster(_) => {
                    self.services.cluster.unload(entry.name());
                    self.services.externals.forget(entry.name());
                }
                Entry::View(_) => {}
            }
        }
        let owned = name.clone();
        let persisted = entries.clone();
        self.blocking(text, move |conn| conn.drop_database(&owned, &persisted))
            .await?;
        self.services.catalog.drop_database(&name)?;
        if self.current_database() == name {
            self.settings.lock().database = crate::catalog::DEFAULT_DATABASE.to_string();
        }
        Ok(QueryResult::status(
            text,
            format!("dropped database {name} ({} entries)", entries.len()),
        ))
    }

    /// `USE db`.
    pub(super) fn use_database(&self, used: &Use, text: &str) -> Result<QueryResult> {
        let name = match used {
            Use::Object(name) | Use::Database(name) | Use::Schema(name) => last_ident(name),
            other => return Err(not_supported(text, format!("{other}"))),
        };
        if !self.services.catalog.has_database(&name) {
            return Err(SqlError::DatabaseNotFound {
                statement: abbreviate(text),
                database: name,
            }
            .into());
        }
        self.settings.lock().database = name.clone();
        self.slot.set_database(&name);
        Ok(QueryResult::status(text, format!("database {name}")))
    }

    pub(super) async fn truncate(&self, truncate: &Truncate, text: &str) -> Result<QueryResult> {
        let [target] = truncate.table_names.as_slice() else {
            return Err(not_supported(text, "TRUNCATE of several tables"));
        };
        let name = self.object_name(&target.name, text)?;
        let table = self.target(&name, text, "TRUNCATE")?;
        self.blocking(text, move |conn| conn.truncate(&table))
            .await?;
        Ok(QueryResult::status(text, format!("truncated {name}")))
    }

    pub(super) async fn alter(
        &self,
        object: &ObjectName,
        operations: &[AlterTableOperation],
        text: &str,
        cancel: &Cancel,
    ) -> Result<QueryResult> {
        let name = self.object_name(object, text)?;
        let [operation] = operations else {
            return Err(not_supported(
                text,
                "several ALTER TABLE operations in one statement",
            ));
        };
        let _ddl = self.services.catalog.ddl().lock().await;
        let table = self.target(&name, text, "ALTER TABLE")?;
        let loaded = self.services.propagator.table(&name).is_some();
        match operation {
            AlterTableOperation::RenameTable { table_name } => {
                let (RenameTableNameKind::To(to) | RenameTableNameKind::As(to)) = table_name;
                let to = self.object_name(to, text)?;
                self.services.catalog.check_free(&to)?;
                let target = to.clone();
                self.blocking(text, move |conn| conn.rename_table(&table, &target))
                    .await?;
                self.services.catalog.rename(&name, &to)?;
                if loaded {
                    // Carried over: the cluster copy and its propagation follow.
                    let (from, target) = (name.clone(), to.clone());
                    self.with_propagator(text, move |p| p.rename(&from, &target))
                        .await?;
                }
                Ok(QueryResult::status(text, format!("renamed {name} to {to}")))
            }
            AlterTableOperation::AddColumn { column_def, .. } => {
                let (def, primary) = self.column_def_for(column_def, &name)?;
                if primary {
                    return Err(definition(
                        &name,
                        codes::NOT_SUPPORTED_YET,
                        "ADD COLUMN cannot add a primary key column",
                    ));
                }
                let changed = self
                    .blocking(text, move |conn| conn.add_column(&table, def))
                    .await?;
                self.services
                    .catalog
                    .replace(Entry::Row(Arc::new(changed)))?;
                self.reload_after_ddl(&name, loaded, cancel).await;
                Ok(QueryResult::status(
                    text,
                    format!("added a column to {name}"),
                ))
            }
            AlterTableOperation::DropColumn { column_names, .. } => {
                let columns: Vec<String> = column_names.iter().map(normalize).collect();
                let changed = self
                    .blocking(text, move |conn| {
                        let mut current = table.as_ref().clone();
                        for column in &columns {
                            current = conn.drop_column(&current, column)?;
                        }
                        Ok(current)
                    })
                    .await?;
                self.services
                    .catalog
                    .replace(Entry::Row(Arc::new(changed)))?;
                self.reload_after_ddl(&name, loaded, cancel).await;
                Ok(QueryResult::status(
                    text,
                    format!("dropped a column of {name}"),
                ))
            }
            other => Err(not_supported(text, format!("ALTER TABLE ... {other}"))),
        }
    }

    /// A loaded table whose columns changed is reloaded from the row store so
    /// the cluster copy has the new shape; if that fails it is marked stale
    /// (and queries fall back to the row store) until reloaded.
    async fn reload_after_ddl(&self, name: &TableName, loaded: bool, cancel: &Cancel) {
        if !loaded {
            return;
        }
        let propagator = Arc::clone(&self.services.propagator);
        let name = name.clone();
        let cancel = cancel.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = propagator.load(&name, &cancel) {
                propagator.mark_stale_reason(
                    &name,
                    format!(
                        "its definition changed and the reload failed: {}",
                        e.chain_message()
                    ),
                );
            }
        })
        .await;
    }

    /// The row-store table a writing statement targets, or why it cannot be
    /// written.
    pub(super) fn target(&self, name: &TableName, text: &str, verb: &str) -> Result<Arc<RowTable>> {
        match self.services.catalog.resolve(name) {
            Some(Entry::Row(table)) => Ok(table),
            Some(Entry::View(_)) => Err(SqlError::NotUpdatable {
                table: name.to_string(),
                verb: verb.to_string(),
            }
            .into()),
            Some(other) => Err(SqlError::ReadOnlyTable {
                statement: abbreviate(text),
                table: name.to_string(),
                what: super::resolve::describe(&other).to_string(),
            }
            .into()),
            None if !self.services.catalog.has_database(&name.database) => {
                Err(SqlError::DatabaseNotFound {
                    statement: abbreviate(text),
                    database: name.database.clone(),
                }
                .into())
            }
            None => Err(SqlError::TableNotFound {
                statement: abbreviate(text),
                table: name.to_string(),
            }
            .into()),
        }
    }
}
