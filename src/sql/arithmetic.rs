//! MySQL's division, for queries offloaded from an attached server: `/` of
//! integers and decimals is exact decimal division with the dividend's scale
//! plus `div_precision_increment` (4) digits, rounded half away from zero
//! (`6 / 4` is 1.5000, not 1); `/` with a floating-point operand is a double;
//! a division by zero is NULL, not an error; and `AVG` of integers and
//! decimals is such a division of `SUM` by `COUNT` (MySQL's `AVG(DECIMAL(p,s))`
//! is a `DECIMAL(p+4, s+4)` rounded the same way, `AVG(INT)` a `DECIMAL` with
//! 4 digits). DataFusion divides integers as integers, truncates decimal
//! quotients and fails on zero, so the same query would answer differently
//! offloaded and on the server.
//!
//! The rewrite works on the parsed statement (`/` becomes `mysql_divide`,
//! `AVG(x)` becomes `mysql_divide(SUM(x), COUNT(x))`, a select item so
//! changed keeps its text as its name); `mysql_divide` is a scalar function
//! registered on every session.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, i256};
use datafusion::common::{DataFusionError, Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArguments, Ident, ObjectName, ObjectNamePart, Select,
    SelectItem, VisitMut, VisitorMut,
};

/// The name the rewrite calls.
pub const MYSQL_DIVIDE: &str = "mysql_divide";
/// MySQL's `div_precision_increment` default: digits a division adds.
const DIV_PRECISION_INCREMENT: u8 = 4;
/// MySQL's largest DECIMAL scale.
const MAX_SCALE: i8 = 30;
const MAX_PRECISION: u8 = 38;

/// Rewrite `statement`'s divisions and averages to MySQL's.
pub(super) fn apply_mysql_division(statement: &mut Statement) {
    if let Some(inner) = super::names::sql_statement(statement) {
        let _ = VisitMut::visit(inner, &mut Division);
    }
}

struct Division;

/// `name(args...)`, a plain call.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArgumentList};
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn is_avg(function: &Function) -> bool {
    matches!(function.name.0.as_slice(),
        [ObjectNamePart::Identifier(ident)] if ident.value.eq_ignore_ascii_case("avg"))
        && matches!(&function.args, FunctionArguments::List(list) if list.args.len() == 1)
}

impl VisitorMut for Division {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        // A select item keeps its text as its name, as MySQL names columns.
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(expr) = item
                && changes(expr)
            {
                let name = expr.to_string();
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('`', name),
                };
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Divide,
                right,
            } => {
                let args = vec![left.as_ref().clone(), right.as_ref().clone()];
                *expr = call(MYSQL_DIVIDE, args);
            }
            Expr::Function(function) if is_avg(function) => {
                let mut sum = function.clone();
                sum.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("sum"))]);
                let mut count = function.clone();
                count.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("count"))]);
                // The division is outside the window: each part has it.
                *expr = call(
                    MYSQL_DIVIDE,
                    vec![Expr::Function(sum), Expr::Function(count)],
                );
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Whether the rewrite would change `expr`.
fn changes(expr: &Expr) -> bool {
    use datafusion::sql::sqlparser::ast::Visit;
    struct Finds;
    impl datafusion::sql::sqlparser::ast::Visitor for Finds {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::BinaryOp {
                    op: BinaryOperator::Divide,
                    ..
                } => ControlFlow::Break(()),
                Expr::Function(function) if is_avg(function) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    Visit::visit(expr, &mut Finds).is_break()
}

/// `mysql_divide(a, b)`: MySQL's `a / b`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlDivide {
    signature: Signature,
}

impl MysqlDivide {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(MysqlDivide {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

/// Precision and scale of an exact numeric type, as MySQL counts them.
fn exact(data_type: &DataType) -> Option<(u8, i8)> {
    Some(match data_type {
        DataType::Int8 | DataType::UInt8 => (3, 0),
        DataType::Int16 | DataType::UInt16 => (5, 0),
        DataType::Int32 | DataType::UInt32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::UInt64 => (20, 0),
        DataType::Decimal128(p, s) if *s >= 0 => (*p, *s),
        // A NULL literal divides as an integer would (the answer is NULL).
        DataType::Null => (1, 0),
        _ => return None,
    })
}

/// The result type of `a / b`: a DECIMAL with the dividend's scale plus 4
/// when both are exact, else a DOUBLE.
fn quotient_type(a: &DataType, b: &DataType) -> DataType {
    match (exact(a), exact(b)) {
        (Some((pa, sa)), Some((_, sb))) => {
            let scale = (sa + DIV_PRECISION_INCREMENT as i8).min(MAX_SCALE);
            let whole = (pa as i16 - sa as i16 + sb as i16).max(1);
            let precision = (whole + scale as i16).clamp(1, MAX_PRECISION as i16) as u8;
            DataType::Decimal128(precision, scale.min(precision as i8))
        }
        _ => DataType::Float64,
    }
}

impl ScalarUDFImpl for MysqlDivide {
    fn name(&self) -> &str {
        MYSQL_DIVIDE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [a, b] => Ok(quotient_type(a, b)),
            _ => plan_err!("{MYSQL_DIVIDE} takes two arguments"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] = arrays.as_slice() else {
            return exec_err!("{MYSQL_DIVIDE} takes two arguments");
        };
        let out = match quotient_type(a.data_type(), b.data_type()) {
            DataType::Decimal128(precision, scale) => divide_exact(a, b, precision, scale)?,
            _ => divide_float(a, b)?,
        };
        // Scalars in, a scalar out: one row.
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

fn as_decimal(array: &ArrayRef) -> Result<(ArrayRef, i8)> {
    let (precision, scale) = exact(array.data_type()).expect("an exact type");
    let target = DataType::Decimal128(precision.max(1), scale);
    Ok((cast(array, &target)?, scale))
}

fn divide_exact(a: &ArrayRef, b: &ArrayRef, precision: u8, scale: i8) -> Result<ArrayRef> {
    let (a, sa) = as_decimal(a)?;
    let (b, sb) = as_decimal(b)?;
    let a = a.as_primitive::<Decimal128Type>();
    let b = b.as_primitive::<Decimal128Type>();
    // a / b at `scale` = a·10^(scale + sb − sa) / b, in unscaled integers.
    let shift = (scale as i32 + sb as i32 - sa as i32) as u32;
    let ten = i256::from_i128(10);
    let factor = ten.checked_pow(shift).ok_or_else(overflow)?;
    let limit = ten.checked_pow(precision as u32).ok_or_else(overflow)?;
    let mut out = Decimal128Builder::with_capacity(a.len());
    for i in 0..a.len() {
        if a.is_null(i) || b.is_null(i) || b.value(i) == 0 {
            out.append_null();
            continue;
        }
        let numerator = i256::from_i128(a.value(i))
            .checked_mul(factor)
            .ok_or_else(overflow)?;
        let divisor = i256::from_i128(b.value(i));
        let quotient = numerator.wrapping_div(divisor);
        let remainder = numerator.wrapping_rem(divisor);
        // Half away from zero: |2r| ≥ |b| moves the quotient one away.
        let twice = remainder.wrapping_abs().wrapping_mul(i256::from_i128(2));
        let rounded = if twice >= divisor.wrapping_abs() {
            if (numerator < i256::ZERO) == (divisor < i256::ZERO) {
                quotient.wrapping_add(i256::ONE)
            } else {
                quotient.wrapping_sub(i256::ONE)
            }
        } else {
            quotient
        };
        if rounded.wrapping_abs() >= limit {
            return Err(overflow());
        }
        out.append_value(rounded.as_i128());
    }
    Ok(Arc::new(
        out.finish().with_precision_and_scale(precision, scale)?,
    ))
}

fn overflow() -> DataFusionError {
    DataFusionError::Execution("DECIMAL value is out of range in a division".into())
}

fn divide_float(a: &ArrayRef, b: &ArrayRef) -> Result<ArrayRef> {
    let a = cast(a, &DataType::Float64)?;
    let b = cast(b, &DataType::Float64)?;
    let a = a.as_primitive::<arrow::datatypes::Float64Type>();
    let b = b.as_primitive::<arrow::datatypes::Float64Type>();
    let out: Float64Array = a
        .iter()
        .zip(b.iter())
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) if b != 0.0 => Some(a / b),
            _ => None,
        })
        .collect();
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int64Array};

    fn rewritten(sql: &str) -> String {
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let mut statement = datafusion::sql::parser::DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .build()
            .unwrap()
            .parse_statements()
            .unwrap()
            .pop_front()
            .unwrap();
        apply_mysql_division(&mut statement);
        statement.to_string()
    }

    #[test]
    fn divisions_and_averages_become_mysql_divide_and_keep_their_names() {
        assert_eq!(
            rewritten("SELECT a / b, AVG(DISTINCT c) AS m, d FROM t WHERE a / 2 > 1"),
            "SELECT mysql_divide(a, b) AS `a / b`, \
             mysql_divide(sum(DISTINCT c), count(DISTINCT c)) AS m, d \
             FROM t WHERE mysql_divide(a, 2) > 1"
        );
    }

    fn decimals(values: &[Option<i128>], precision: u8, scale: i8) -> ArrayRef {
        Arc::new(
            values
                .iter()
                .copied()
                .collect::<Decimal128Array>()
                .with_precision_and_scale(precision, scale)
                .unwrap(),
        )
    }

    #[test]
    fn exact_division_rounds_half_away_from_zero_at_four_more_digits() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(6),
            Some(1),
            Some(-2),
            None,
            Some(5),
        ]));
        let by: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(4),
            Some(3),
            Some(3),
            Some(1),
            Some(0),
        ]));
        let (precision, scale) = match quotient_type(ints.data_type(), by.data_type()) {
            DataType::Decimal128(p, s) => (p, s),
            other => panic!("{other}"),
        };
        assert_eq!(scale, 4);
        let out = divide_exact(&ints, &by, precision, scale).unwrap();
        let out = out.as_primitive::<Decimal128Type>();
        let values: Vec<Option<i128>> = out.iter().collect();
        // 1.5000, 0.3333, -0.6667, NULL, NULL (by zero).
        assert_eq!(
            values,
            vec![Some(15000), Some(3333), Some(-6667), None, None]
        );
        // DECIMAL(10,2) 5.00 / 3 = 1.666667 (scale 6, rounded up).
        let amounts = decimals(&[Some(500), Some(9_999_999_999)], 10, 2);
        let three: ArrayRef = Arc::new(Int64Array::from(vec![3, 1]));
        let DataType::Decimal128(p, s) = quotient_type(amounts.data_type(), three.data_type())
        else {
            panic!()
        };
        assert_eq!(s, 6);
        let out = divide_exact(&amounts, &three, p, s).unwrap();
        let out = out.as_primitive::<Decimal128Type>();
        assert_eq!(out.value(0), 1_666_667);
        // The largest value at its precision divided by one still fits.
        assert_eq!(out.value(1), 99_999_999_990_000);
    }

    #[test]
    fn a_quotient_beyond_38_digits_is_an_error_not_a_wrong_value() {
        let huge = decimals(&[Some(10_i128.pow(37))], 38, 0);
        let one: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let DataType::Decimal128(p, s) = quotient_type(huge.data_type(), one.data_type()) else {
            panic!()
        };
        let error = divide_exact(&huge, &one, p, s).unwrap_err();
        assert!(error.to_string().contains("out of range"), "{error}");
    }

    #[test]
    fn a_float_operand_divides_as_double_and_zero_gives_null() {
        assert_eq!(
            quotient_type(&DataType::Float64, &DataType::Int64),
            DataType::Float64
        );
        let a: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 1.0]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![4, 0]));
        let out = divide_float(&a, &b).unwrap();
        let out = out.as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(out.value(0), 0.25);
        assert!(out.is_null(1));
    }
}
