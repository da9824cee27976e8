//! Primary-key lookups: `SELECT columns FROM t WHERE key = value` on a
//! row-store table, answered by the row store's B-tree without DataFusion.
//!
//! HeatWave offloads a query only when MySQL's estimated cost is above
//! `secondary_engine_cost_threshold` (100000 by default); a lookup by the
//! whole primary key costs one row, so InnoDB answers it. lakewave does the
//! same, and for the same reason: resolving, planning and running such a
//! statement in DataFusion costs about a millisecond, the SQLite lookup a few
//! microseconds. Setting the threshold to 0 offloads lookups too.
//!
//! This module only recognises the statement and reads the row; anything it
//! does not recognise exactly (joins, expressions, casts it cannot make, a
//! partial key) goes the general way, which gives the same answer. It never
//! writes and never touches the cluster.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, ObjectName, Query, Select, SelectFlavor, SelectItem, SetExpr,
    Statement as SqlStatement, TableFactor, TableWithJoins, UnaryOperator, Value,
    WildcardAdditionalOptions,
};

use super::result::QueryResult;
use super::split::OffloadMode;
use super::{Session, abbreviate};
use crate::catalog::{Entry, RowTable, TableName};
use crate::error::Result;
use crate::rowstore::{FilterOp, RowFilter, read_rows};

/// The cost MySQL's optimizer gives a lookup by the whole primary key: one row.
const KEY_LOOKUP_COST: i64 = 1;

/// `secondary_engine_cost_threshold`'s default, as in MySQL.
const DEFAULT_COST_THRESHOLD: i64 = 100_000;

/// A recognised lookup, resolved against the catalog.
pub(super) struct KeyLookup {
    table: Arc<RowTable>,
    /// Table columns in output order, with their output names.
    columns: Vec<(usize, String)>,
    /// One equality per key column.
    filters: Vec<RowFilter>,
}

impl KeyLookup {
    fn schema(&self) -> SchemaRef {
        let table_schema = self.table.schema();
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|(index, name)| {
                    let field = table_schema.field(*index);
                    Field::new(name, field.data_type().clone(), field.is_nullable())
                })
                .collect::<Vec<_>>(),
        ))
    }
}

/// Why a lookup stays in the row store, as EXPLAIN says it.
pub(super) fn reason(threshold: i64) -> String {
    format!(
        "a primary-key lookup: its cost ({KEY_LOOKUP_COST} row) is not above \
         secondary_engine_cost_threshold ({threshold})"
    )
}

impl Session {
    /// The session's `secondary_engine_cost_threshold`.
    pub(super) fn cost_threshold(&self) -> i64 {
        self.settings
            .lock()
            .system
            .get("secondary_engine_cost_threshold")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_COST_THRESHOLD)
    }

    /// Whether this session answers primary-key lookups in the row store:
    /// always when offload is OFF, under ON when the threshold keeps them
    /// there, never when FORCED.
    pub(super) fn keeps_lookups_in_row_store(&self) -> bool {
        match self.offload_mode() {
            OffloadMode::Off => true,
            OffloadMode::On => KEY_LOOKUP_COST <= self.cost_threshold(),
            OffloadMode::Forced => false,
        }
    }

    /// Whether `statement` is an EXPLAIN of a lookup this session keeps in
    /// the row store under ON (under OFF, EXPLAIN already says why).
    pub(super) fn explains_key_lookup(
        &self,
        statement: &Statement,
        params: &[ScalarValue],
    ) -> bool {
        let Statement::Explain(explain) = statement else {
            return false;
        };
        if self.offload_mode() != OffloadMode::On || !self.keeps_lookups_in_row_store() {
            return false;
        }
        match explain.statement.as_ref() {
            Statement::Statement(inner) => matches!(
                inner.as_ref(),
                SqlStatement::Query(query) if self.key_lookup(query, params).is_some()
            ),
            _ => false,
        }
    }

    /// `query` as a lookup by the whole primary key of a row-store table,
    /// with `params` bound, if it is exactly one.
    pub(super) fn key_lookup(&self, query: &Query, params: &[ScalarValue]) -> Option<KeyLookup> {
        let select = simple_select(query)?;
        let (table_name, alias) = single_table(&select.from)?;
        let database = self.current_database();
        let name = table_name_of(table_name, &database)?;
        let Some(Entry::Row(table)) = self.services.catalog.resolve(&name) else {
            return None;
        };
        if table.primary_key.is_empty() {
            return None;
        }
        let qualifier_ok = |parts: &[Ident]| -> bool {
            match parts {
                [] => true,
                [t] => match alias {
                    Some(alias) => normalize(t) == normalize(alias),
                    None => normalize(t) == name.table,
                },
                [d, t] if alias.is_none() => {
                    normalize(d) == name.database && normalize(t) == name.table
                }
                _ => false,
            }
        };
        let column_of = |expr: &Expr| -> Option<usize> {
            let (qualifier, column) = match expr {
                Expr::Identifier(ident) => (&[][..], ident),
                Expr::CompoundIdentifier(parts) => {
                    let (last, qualifier) = parts.split_last()?;
                    (qualifier, last)
                }
                _ => return None,
            };
            if !qualifier_ok(qualifier) {
                return None;
            }
            table.column_index(&normalize(column))
        };
        let mut columns = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(expr) => {
                    let index = column_of(expr)?;
                    columns.push((index, table.columns[index].name.clone()));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    columns.push((column_of(expr)?, normalize(alias)));
                }
                SelectItem::Wildcard(options) if plain_wildcard(options) => {
                    columns.extend(
                        table
                            .columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (i, c.name.clone())),
                    );
                }
                _ => return None,
            }
        }
        let mut equalities = Vec::new();
        conjuncts(select.selection.as_ref()?, &mut equalities)?;
        if equalities.len() != table.primary_key.len() {
            return None;
        }
        let mut filters: Vec<RowFilter> = Vec::new();
        for (left, right) in equalities {
            let (column, value) = match (column_of(left), column_of(right)) {
                (Some(column), None) => (column, value_of(right, params)?),
                (None, Some(column)) => (column, value_of(left, params)?),
                _ => return None,
            };
            if !table.primary_key.contains(&column) || filters.iter().any(|f| f.column == column) {
                return None;
            }
            let value = lossless(value, &table.columns[column].sql_type.arrow_type())?;
            let filter = RowFilter {
                column,
                op: FilterOp::Eq,
                value,
            };
            // Only values SQLite compares exactly as SQL does elsewhere.
            filter.sqlite_value(&table)?;
            filters.push(filter);
        }
        Some(KeyLookup {
            table,
            columns,
            filters,
        })
    }

    /// Read the looked-up row (or none) on this session's connection, so a
    /// transaction sees its own writes.
    pub(super) async fn run_key_lookup(
        &self,
        lookup: KeyLookup,
        text: &str,
    ) -> Result<QueryResult> {
        let schema = lookup.schema();
        let batch_schema = Arc::clone(&schema);
        let batches = self
            .blocking(text, move |conn| {
                let indexes: Vec<usize> = lookup.columns.iter().map(|(i, _)| *i).collect();
                let batches = conn.with_conn(|c| {
                    read_rows(c, &lookup.table, &indexes, false, &lookup.filters, 16)
                })?;
                // The row store names fields after the table's columns; the
                // statement's aliases name the output.
                Ok(batches
                    .into_iter()
                    .map(|b| {
                        arrow::array::RecordBatch::try_new(
                            Arc::clone(&batch_schema),
                            b.columns().to_vec(),
                        )
                    })
                    .collect::<std::result::Result<Vec<_>, _>>())
            })
            .await?
            .map_err(|e| super::internal_error(&abbreviate(text), e))?;
        Ok(QueryResult::ready(text, schema, batches))
    }
}

/// The SELECT of a query with nothing around it (no WITH, ORDER BY, LIMIT,
/// locking clause) and nothing in it but a projection, one FROM and WHERE.
fn simple_select(query: &Query) -> Option<&Select> {
    let Query {
        with: None,
        body,
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks,
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators,
    } = query
    else {
        return None;
    };
    if !locks.is_empty() || !pipe_operators.is_empty() {
        return None;
    }
    let SetExpr::Select(select) = body.as_ref() else {
        return None;
    };
    // Every field named, so a new clause in sqlparser is seen here.
    let Select {
        select_token: _,
        optimizer_hints,
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: _,
        projection,
        exclude: None,
        into: None,
        from,
        lateral_views,
        prewhere: None,
        selection: Some(_),
        connect_by,
        group_by,
        cluster_by,
        distribute_by,
        sort_by,
        having: None,
        named_window,
        qualify: None,
        window_before_qualify: _,
        value_table_mode: None,
        flavor: SelectFlavor::Standard,
    } = select.as_ref()
    else {
        return None;
    };
    let no_group =
        matches!(group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    (optimizer_hints.is_empty()
        && !projection.is_empty()
        && from.len() == 1
        && lateral_views.is_empty()
        && connect_by.is_empty()
        && no_group
        && cluster_by.is_empty()
        && distribute_by.is_empty()
        && sort_by.is_empty()
        && named_window.is_empty())
    .then_some(select.as_ref())
}

/// The one plain table of a FROM, and its alias.
fn single_table(from: &[TableWithJoins]) -> Option<(&ObjectName, Option<&Ident>)> {
    let [TableWithJoins { relation, joins }] = from else {
        return None;
    };
    if !joins.is_empty() {
        return None;
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        with_hints,
        version: None,
        with_ordinality: false,
        partitions,
        json_path: None,
        sample: None,
        index_hints,
    } = relation
    else {
        return None;
    };
    if !with_hints.is_empty() || !partitions.is_empty() || !index_hints.is_empty() {
        return None;
    }
    match alias {
        None => Some((name, None)),
        Some(alias) if alias.columns.is_empty() => Some((name, Some(&alias.name))),
        Some(_) => None,
    }
}

/// `db.t` or `t` as the catalog names it (unquoted names in lower case, as
/// DataFusion's planner normalises them).
fn table_name_of(name: &ObjectName, database: &str) -> Option<TableName> {
    let parts: Vec<&Ident> = name.0.iter().map(|p| p.as_ident()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [table] => Some(TableName::new(database.to_string(), normalize(table))),
        [db, table] => Some(TableName::new(normalize(db), normalize(table))),
        _ => None,
    }
}

fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn plain_wildcard(options: &WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
}

/// `a = b AND c = d ...` as its equalities; `None` for anything else.
fn conjuncts<'a>(expr: &'a Expr, out: &mut Vec<(&'a Expr, &'a Expr)>) -> Option<()> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    match expr {
        Expr::Nested(inner) => conjuncts(inner, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out)?;
            conjuncts(right, out)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            out.push((left, right));
            Some(())
        }
        _ => None,
    }
}

/// A literal or a bound `$n` placeholder as a value; NULL is not one (it
/// matches no row, which the general path says just as well).
fn value_of(expr: &Expr, params: &[ScalarValue]) -> Option<ScalarValue> {
    let value = match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(text, _) => match text.parse::<i64>() {
                Ok(n) => ScalarValue::Int64(Some(n)),
                Err(_) => return None,
            },
            Value::SingleQuotedString(text) => ScalarValue::Utf8(Some(text.clone())),
            Value::Placeholder(marker) => {
                let index: usize = marker.strip_prefix('$')?.parse().ok()?;
                params.get(index.checked_sub(1)?)?.clone()
            }
            _ => return None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match value_of(expr, &[])? {
            ScalarValue::Int64(Some(n)) => ScalarValue::Int64(Some(n.checked_neg()?)),
            _ => return None,
        },
        _ => return None,
    };
    (!value.is_null()).then_some(value)
}

/// `value` as the key column's type, when that keeps its meaning: integers
/// of another width (in range), text as an integer it spells exactly. Anything else (a fraction against an integer key,
/// say) goes the general way.
fn lossless(value: ScalarValue, wanted: &arrow::datatypes::DataType) -> Option<ScalarValue> {
    use arrow::datatypes::DataType;
    let given = value.data_type();
    if given == *wanted {
        return Some(value);
    }
    let fits = match (&given, wanted) {
        (DataType::Utf8View | DataType::LargeUtf8, DataType::Utf8) => true,
        (given, DataType::Int32 | DataType::Int64) if given.is_integer() => true,
        (
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
            DataType::Int32 | DataType::Int64,
        ) => {
            // Only a plain decimal integer: MySQL reads '1.5' or ' 1' otherwise.
            let text = match &value {
                ScalarValue::Utf8(Some(t))
                | ScalarValue::Utf8View(Some(t))
                | ScalarValue::LargeUtf8(Some(t)) => t,
                _ => return None,
            };
            text.parse::<i64>().is_ok() && !text.starts_with('+')
        }
        _ => false,
    };
    if !fits {
        return None;
    }
    // An integer out of the column's range fails the cast: general way.
    value.cast_to(wanted).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    #[test]
    fn only_lossless_values_become_keys() {
        let int = |v: i64| ScalarValue::Int64(Some(v));
        let text = |t: &str| ScalarValue::Utf8(Some(t.into()));
        assert_eq!(
            lossless(int(7), &DataType::Int32),
            Some(ScalarValue::Int32(Some(7)))
        );
        assert_eq!(
            lossless(int(i64::from(i32::MAX) + 1), &DataType::Int32),
            None
        );
        assert_eq!(
            lossless(text("-12"), &DataType::Int64),
            Some(ScalarValue::Int64(Some(-12)))
        );
        for spelled in ["1.5", " 1", "+1", "1e3", ""] {
            assert_eq!(lossless(text(spelled), &DataType::Int64), None, "{spelled}");
        }
        assert_eq!(
            lossless(ScalarValue::Float64(Some(1.0)), &DataType::Int64),
            None
        );
        assert_eq!(lossless(int(1), &DataType::Utf8), None);
        assert_eq!(lossless(text("a"), &DataType::Utf8), Some(text("a")));
    }

    #[test]
    fn placeholders_and_negative_literals_are_values() {
        let parse = |sql: &str| {
            let statement = super::super::session::parse_for_tests(sql);
            let Statement::Statement(inner) = statement else {
                panic!("a statement");
            };
            let SqlStatement::Query(query) = *inner else {
                panic!("a query");
            };
            query
        };
        let query = parse("SELECT a FROM t WHERE k = -4 AND j = $2");
        let select = simple_select(&query).expect("simple");
        let mut pairs = Vec::new();
        conjuncts(select.selection.as_ref().unwrap(), &mut pairs).expect("equalities");
        let params = [
            ScalarValue::Int64(Some(1)),
            ScalarValue::Utf8(Some("x".into())),
        ];
        assert_eq!(
            value_of(pairs[0].1, &params),
            Some(ScalarValue::Int64(Some(-4)))
        );
        assert_eq!(value_of(pairs[1].1, &params), Some(params[1].clone()));
        assert_eq!(
            value_of(pairs[1].1, &params[..1]),
            None,
            "an unbound placeholder"
        );
        for other in [
            "SELECT a FROM t WHERE k = 1 GROUP BY a",
            "SELECT a FROM t WHERE k = 1 HAVING a > 1",
            "SELECT a FROM t",
            "SELECT a FROM t, u WHERE k = 1",
            "SELECT a FROM t JOIN u ON true WHERE k = 1",
            "WITH x AS (SELECT 1) SELECT a FROM t WHERE k = 1",
            "SELECT a FROM t WHERE k = 1 FOR UPDATE",
        ] {
            let query = parse(other);
            let simple = simple_select(&query).and_then(|s| single_table(&s.from).map(|_| ()));
            assert!(simple.is_none(), "{other}");
        }
    }
}
