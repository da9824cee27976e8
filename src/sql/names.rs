//! MySQL's rules for names, applied to a query that an attached server's
//! session offloads: database, table and alias names mean what they say,
//! letter case included, quoted or not (a Linux server with
//! `lower_case_table_names = 0`), and column names match whatever their
//! case. DataFusion folds unquoted names to lower case and matches quoted
//! ones exactly, so before planning, every table-like name is marked quoted
//! as written, and every column name that matches (ignoring case) one
//! spelling among the columns of the tables the query reads is replaced by
//! that spelling, quoted. A name that matches nothing (an output alias, a
//! column that does not exist) is left for the planner to judge.
//!
//! It only rewrites a parsed statement; which tables exist is asked of the
//! caller, and the server still runs the text as the user wrote it.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, Statement as SqlStatement, TableFactor, Visit,
    VisitMut, Visitor, VisitorMut,
};

use crate::catalog::TableName;

/// Rewrite `statement`'s names by MySQL's rules. `columns` gives the column
/// names of a table the statement reads, if lakewave knows the table.
pub(super) fn apply_mysql_rules(
    statement: &mut Statement,
    database: &str,
    columns: impl Fn(&TableName) -> Option<Vec<String>>,
) {
    let Some(inner) = sql_statement(statement) else {
        return;
    };
    let mut relations = Relations::default();
    let _ = Visit::visit(&*inner, &mut relations);
    let mut everywhere = Spellings::default();
    let mut by_qualifier: HashMap<String, Spellings> = HashMap::new();
    for (qualifier, parts) in &relations.read {
        let name = match parts.as_slice() {
            [table] => TableName::new(database, table.as_str()),
            [.., schema, table] => TableName::new(schema.as_str(), table.as_str()),
            [] => continue,
        };
        for column in columns(&name).unwrap_or_default() {
            everywhere.add(&column);
            by_qualifier
                .entry(qualifier.clone())
                .or_default()
                .add(&column);
        }
    }
    let _ = VisitMut::visit(
        inner,
        &mut MysqlNames {
            everywhere,
            by_qualifier,
        },
    );
}

/// The SQL statement inside a parsed one (through `EXPLAIN`), if it is one.
pub(super) fn sql_statement(statement: &mut Statement) -> Option<&mut SqlStatement> {
    match statement {
        Statement::Statement(inner) => Some(inner.as_mut()),
        Statement::Explain(explain) => sql_statement(explain.statement.as_mut()),
        _ => None,
    }
}

/// Column spellings by lower-case name; a name spelt two ways is ambiguous.
#[derive(Default)]
struct Spellings(HashMap<String, HashSet<String>>);

impl Spellings {
    fn add(&mut self, column: &str) {
        self.0
            .entry(column.to_lowercase())
            .or_default()
            .insert(column.to_string());
    }

    fn get(&self, name: &str) -> Option<&String> {
        let spellings = self.0.get(&name.to_lowercase())?;
        let mut each = spellings.iter();
        match (each.next(), each.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }
}

/// The tables a statement reads, as written, each with the name that
/// qualifies its columns (its alias, or its own name).
#[derive(Default)]
struct Relations {
    read: Vec<(String, Vec<String>)>,
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = factor {
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|part| match part {
                    ObjectNamePart::Identifier(ident) => Some(ident.value.clone()),
                    _ => None,
                })
                .collect();
            let qualifier = alias
                .as_ref()
                .map(|a| a.name.value.clone())
                .or_else(|| parts.last().cloned())
                .unwrap_or_default();
            self.read.push((qualifier, parts));
        }
        ControlFlow::Continue(())
    }
}

struct MysqlNames {
    /// Spellings of the columns of every table read.
    everywhere: Spellings,
    /// And of each table, by the name that qualifies its columns.
    by_qualifier: HashMap<String, Spellings>,
}

impl MysqlNames {
    fn column(&self, ident: &mut Ident, qualifier: Option<&Ident>) {
        let spellings = match qualifier {
            Some(q) => self.by_qualifier.get(&q.value),
            None => Some(&self.everywhere),
        };
        if let Some(spelling) = spellings.and_then(|s| s.get(&ident.value)) {
            ident.value.clone_from(spelling);
            ident.quote_style = Some('`');
        }
    }
}

/// Keep the letter case of a table-like name as written.
fn as_written(ident: &mut Ident) {
    if ident.quote_style.is_none() {
        ident.quote_style = Some('`');
    }
}

fn object_as_written(name: &mut ObjectName) {
    for part in &mut name.0 {
        if let ObjectNamePart::Identifier(ident) = part {
            as_written(ident);
        }
    }
}

fn constraint(operator: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

impl VisitorMut for MysqlNames {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        object_as_written(relation);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let alias = match factor {
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::NestedJoin { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::TableFunction { alias, .. } => alias.as_mut(),
            _ => None,
        };
        if let Some(alias) = alias {
            as_written(&mut alias.name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                as_written(&mut cte.alias.name);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            if let SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                _,
            ) = item
            {
                object_as_written(name);
            }
        }
        for from in &mut select.from {
            for join in &mut from.joins {
                if let Some(JoinConstraint::Using(names)) = constraint(&mut join.join_operator) {
                    for name in names {
                        if let Some(ObjectNamePart::Identifier(ident)) = name.0.last_mut() {
                            self.column(ident, None);
                        }
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => self.column(ident, None),
            Expr::CompoundIdentifier(parts) => {
                if let Some((column, qualifier)) = parts.split_last_mut() {
                    qualifier.iter_mut().for_each(as_written);
                    self.column(column, qualifier.last());
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParserBuilder;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    fn rewritten(sql: &str) -> String {
        let dialect = GenericDialect {};
        let mut statements = DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .build()
            .unwrap()
            .parse_statements()
            .unwrap();
        let mut statement = statements.pop_front().unwrap();
        apply_mysql_rules(&mut statement, "shop", |name| match name.table.as_str() {
            "Orders" => Some(vec!["Id".into(), "Amount".into()]),
            "items" => Some(vec!["id".into(), "ORDER_ID".into()]),
            _ => None,
        });
        statement.to_string()
    }

    #[test]
    fn table_names_keep_their_case_and_columns_take_the_tables_spelling() {
        assert_eq!(
            rewritten("SELECT id, AMOUNT FROM Orders WHERE amount > 1"),
            "SELECT `Id`, `Amount` FROM `Orders` WHERE `Amount` > 1"
        );
        assert_eq!(
            rewritten(
                "SELECT O.id, i.order_id FROM Shop.Orders O JOIN items i ON O.ID = i.Order_Id"
            ),
            "SELECT `O`.`Id`, `i`.`ORDER_ID` FROM `Shop`.`Orders` `O` JOIN `items` `i` ON `O`.`Id` = `i`.`ORDER_ID`"
        );
    }

    #[test]
    fn ambiguous_and_unknown_names_are_left_to_the_planner() {
        // `id` is spelt `Id` in Orders and `id` in items: not rewritten.
        assert_eq!(
            rewritten("SELECT id, amount AS total FROM Orders, items ORDER BY total"),
            "SELECT id, `Amount` AS total FROM `Orders`, `items` ORDER BY total"
        );
        assert_eq!(
            rewritten("WITH Totals AS (SELECT 1 AS n) SELECT n FROM Totals"),
            "WITH `Totals` AS (SELECT 1 AS n) SELECT n FROM `Totals`"
        );
    }
}
