//! How each declared column type is held in SQLite, and the conversions
//! between SQLite values and Arrow arrays.
//!
//! SQLite tables are created STRICT, so every client (lakewave or Python's
//! `sqlite3`) must store a value of the column's storage class. Exact and
//! temporal types are stored as canonical text ('12.50', '2024-01-31',
//! '2024-01-31 10:00:00.5') so that other SQLite clients can read and write them
//! naturally; they are parsed back into Arrow's exact types on every read.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Array, Float64Builder, Int32Builder, Int64Array,
    Int64Builder, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::util::display::FormatOptions;
use rusqlite::types::ValueRef;

use crate::catalog::SqlType;

/// SQLite storage class of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Integer,
    Real,
    Text,
}

pub fn storage(sql_type: &SqlType) -> Storage {
    match sql_type {
        SqlType::Int | SqlType::BigInt | SqlType::Boolean => Storage::Integer,
        SqlType::Double => Storage::Real,
        _ => Storage::Text,
    }
}

/// The STRICT SQLite column type and the CHECK that keeps other clients'
/// values inside the declared type.
pub fn sqlite_column(sql_type: &SqlType, quoted_name: &str) -> (String, Option<String>) {
    let check = match sql_type {
        SqlType::Int => Some(format!("{quoted_name} BETWEEN -2147483648 AND 2147483647")),
        SqlType::Boolean => Some(format!("{quoted_name} IN (0, 1)")),
        SqlType::Varchar(n) => Some(format!("length({quoted_name}) <= {n}")),
        _ => None,
    };
    let storage = match storage(sql_type) {
        Storage::Integer => "INTEGER",
        Storage::Real => "REAL",
        Storage::Text => "TEXT",
    };
    (storage.to_string(), check)
}

/// What is wrong with a value that does not fit its column, which decides
/// the MySQL error a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueProblem {
    /// A string longer than VARCHAR(n) allows (1406).
    TooLong,
    /// A number outside the type's range or precision (1264).
    OutOfRange,
    /// A date or time that is not one (1292).
    BadTemporal,
    /// A value of the wrong kind: 'abc' into INT (1366).
    Incorrect,
}

/// A value that cannot be stored: what is wrong, where, and the message.
#[derive(Debug, Clone)]
pub struct ValueError {
    pub problem: ValueProblem,
    /// The row of the batch (0-based) that holds the value, when known.
    pub row: Option<usize>,
    pub message: String,
}

fn strict_cast() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

/// Convert any Arrow array to the column's Arrow type, failing (not nulling) on
/// values that do not fit: 'abc' into INT, 1e40 into DECIMAL(10,2), a string
/// longer than VARCHAR(n). The error says which row and what is wrong.
pub fn to_column_type(array: &ArrayRef, sql_type: &SqlType) -> Result<ArrayRef, ValueError> {
    let target = sql_type.arrow_type();
    let converted = if array.data_type() == &target {
        Arc::clone(array)
    } else {
        match cast_with_options(array, &target, &strict_cast()) {
            Ok(converted) => converted,
            Err(error) => return Err(classify_cast_failure(array, sql_type, error)),
        }
    };
    if let SqlType::Varchar(limit) = sql_type {
        let strings = converted
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("VARCHAR is Utf8");
        if let Some((row, too_long)) = strings.iter().enumerate().find_map(|(row, s)| {
            s.filter(|s| s.chars().count() > *limit as usize)
                .map(|s| (row, s))
        }) {
            let shown: String = too_long.chars().take(40).collect();
            return Err(ValueError {
                problem: ValueProblem::TooLong,
                row: Some(row),
                message: format!(
                    "value '{shown}{}' is longer than VARCHAR({limit})",
                    if too_long.chars().count() > 40 {
                        "..."
                    } else {
                        ""
                    }
                ),
            });
        }
    }
    Ok(converted)
}

/// Find the first value the strict cast refused (a lenient cast turns it
/// into NULL) and say what is wrong with it, from the types and the value
/// itself rather than from the cast's message.
fn classify_cast_failure(array: &ArrayRef, sql_type: &SqlType, error: ArrowError) -> ValueError {
    let lenient = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    let target = sql_type.arrow_type();
    let row = cast_with_options(array, &target, &lenient)
        .ok()
        .and_then(|cast| (0..array.len()).find(|&i| array.is_valid(i) && cast.is_null(i)));
    let value = row.and_then(|i| {
        arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
            .ok()
            .map(|f| f.value(i).to_string())
    });
    let numeric_source = array.data_type().is_numeric();
    let looks_numeric = value
        .as_deref()
        .is_some_and(|v| v.trim().parse::<f64>().is_ok());
    let problem = match sql_type {
        SqlType::Date | SqlType::DateTime | SqlType::Timestamp => ValueProblem::BadTemporal,
        SqlType::Int | SqlType::BigInt | SqlType::Decimal { .. } | SqlType::Double
            if numeric_source || looks_numeric =>
        {
            ValueProblem::OutOfRange
        }
        _ => ValueProblem::Incorrect,
    };
    let message = match &value {
        Some(v) => format!("'{v}' is not a valid {sql_type} value"),
        None => error.to_string(),
    };
    ValueError {
        problem,
        row,
        message,
    }
}

/// A column ready to bind into SQLite statements, one value per row.
pub enum Bindable {
    Integer(Int64Array),
    Real(Float64Array),
    Text(StringArray),
}

impl Bindable {
    /// `array` must already be of the column's Arrow type.
    pub fn new(array: &ArrayRef, sql_type: &SqlType) -> Result<Bindable, ArrowError> {
        Ok(match storage(sql_type) {
            Storage::Integer => Bindable::Integer(
                cast_with_options(array, &DataType::Int64, &strict_cast())?
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("cast to Int64")
                    .clone(),
            ),
            Storage::Real => Bindable::Real(
                cast_with_options(array, &DataType::Float64, &strict_cast())?
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("cast to Float64")
                    .clone(),
            ),
            Storage::Text => Bindable::Text(match sql_type {
                SqlType::DateTime | SqlType::Timestamp => format_timestamps(array),
                _ => cast_with_options(array, &DataType::Utf8, &strict_cast())?
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8")
                    .clone(),
            }),
        })
    }

    pub fn value(&self, row: usize) -> ValueRef<'_> {
        match self {
            Bindable::Integer(a) if a.is_valid(row) => ValueRef::Integer(a.value(row)),
            Bindable::Real(a) if a.is_valid(row) => ValueRef::Real(a.value(row)),
            Bindable::Text(a) if a.is_valid(row) => ValueRef::Text(a.value(row).as_bytes()),
            _ => ValueRef::Null,
        }
    }
}

/// 'YYYY-MM-DD HH:MM:SS[.ffffff]', the form SQLite's own date functions use.
fn format_timestamps(array: &ArrayRef) -> StringArray {
    let micros = array
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("temporal columns are held in microseconds");
    micros
        .iter()
        .map(|v| {
            v.and_then(arrow::temporal_conversions::timestamp_us_to_datetime)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.f").to_string())
        })
        .collect()
}

/// Builds one Arrow column from SQLite values.
pub enum ColumnDecoder {
    Int(Int32Builder),
    BigInt(Int64Builder),
    Boolean(BooleanBuilder),
    Double(Float64Builder),
    /// Text, parsed into `target` at the end (strings stay strings).
    Text(StringBuilder, SqlType),
}

impl ColumnDecoder {
    pub fn new(sql_type: &SqlType, capacity: usize) -> Self {
        match sql_type {
            SqlType::Int => ColumnDecoder::Int(Int32Builder::with_capacity(capacity)),
            SqlType::BigInt => ColumnDecoder::BigInt(Int64Builder::with_capacity(capacity)),
            SqlType::Boolean => ColumnDecoder::Boolean(BooleanBuilder::with_capacity(capacity)),
            SqlType::Double => ColumnDecoder::Double(Float64Builder::with_capacity(capacity)),
            other => ColumnDecoder::Text(
                StringBuilder::with_capacity(capacity, capacity * 8),
                other.clone(),
            ),
        }
    }

    pub fn push(&mut self, value: ValueRef<'_>) -> Result<(), String> {
        let expected = self.expected();
        let unexpected = |what: &str| Err(format!("found {what} where {expected} was expected"));
        match (&mut *self, value) {
            (ColumnDecoder::Int(b), ValueRef::Null) => b.append_null(),
            (ColumnDecoder::BigInt(b), ValueRef::Null) => b.append_null(),
            (ColumnDecoder::Boolean(b), ValueRef::Null) => b.append_null(),
            (ColumnDecoder::Double(b), ValueRef::Null) => b.append_null(),
            (ColumnDecoder::Text(b, _), ValueRef::Null) => b.append_null(),
            (ColumnDecoder::Int(b), ValueRef::Integer(v)) => match i32::try_from(v) {
                Ok(v) => b.append_value(v),
                Err(_) => return Err(format!("{v} is out of range for INT")),
            },
            (ColumnDecoder::BigInt(b), ValueRef::Integer(v)) => b.append_value(v),
            (ColumnDecoder::Boolean(b), ValueRef::Integer(v)) => b.append_value(v != 0),
            (ColumnDecoder::Double(b), ValueRef::Real(v)) => b.append_value(v),
            (ColumnDecoder::Double(b), ValueRef::Integer(v)) => b.append_value(v as f64),
            (ColumnDecoder::Text(b, _), ValueRef::Text(t)) => match std::str::from_utf8(t) {
                Ok(s) => b.append_value(s),
                Err(_) => return unexpected("invalid UTF-8"),
            },
            (ColumnDecoder::Text(b, _), ValueRef::Integer(v)) => b.append_value(v.to_string()),
            (ColumnDecoder::Text(b, _), ValueRef::Real(v)) => b.append_value(v.to_string()),
            (_, ValueRef::Blob(_)) => return unexpected("a BLOB"),
            (_, ValueRef::Text(_)) => return unexpected("text"),
            (_, ValueRef::Real(_)) => return unexpected("a REAL"),
        }
        Ok(())
    }

    fn expected(&self) -> String {
        match self {
            ColumnDecoder::Int(_) => "INT".into(),
            ColumnDecoder::BigInt(_) => "BIGINT".into(),
            ColumnDecoder::Boolean(_) => "BOOLEAN".into(),
            ColumnDecoder::Double(_) => "DOUBLE".into(),
            ColumnDecoder::Text(_, t) => t.to_string(),
        }
    }

    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            ColumnDecoder::Int(b) => Arc::new(b.finish()),
            ColumnDecoder::BigInt(b) => Arc::new(b.finish()),
            ColumnDecoder::Boolean(b) => Arc::new(b.finish()),
            ColumnDecoder::Double(b) => Arc::new(b.finish()),
            ColumnDecoder::Text(b, sql_type) => {
                let strings: ArrayRef = Arc::new(b.finish());
                match sql_type {
                    SqlType::Varchar(_) | SqlType::Text => strings,
                    other => cast_with_options(&strings, &other.arrow_type(), &strict_cast())?,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Decimal128Array};

    #[test]
    fn exact_values_survive_text_storage() {
        let decimal = SqlType::Decimal {
            precision: 15,
            scale: 2,
        };
        let array: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1250), None, Some(-1)])
                .with_precision_and_scale(15, 2)
                .unwrap(),
        );
        let bound = Bindable::new(&array, &decimal).unwrap();
        let mut decoder = ColumnDecoder::new(&decimal, 3);
        for row in 0..3 {
            decoder.push(bound.value(row)).unwrap();
        }
        assert_eq!(decoder.finish().unwrap().as_ref(), array.as_ref());

        let date: ArrayRef = Arc::new(Date32Array::from(vec![Some(19000), None]));
        let bound = Bindable::new(&date, &SqlType::Date).unwrap();
        assert_eq!(bound.value(0), ValueRef::Text(b"2022-01-08"));
    }

    #[test]
    fn bad_values_are_errors_not_nulls() {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["12", "abc"]));
        let err = to_column_type(&text, &SqlType::Int).unwrap_err();
        assert_eq!((err.problem, err.row), (ValueProblem::Incorrect, Some(1)));
        let big: ArrayRef = Arc::new(StringArray::from(vec!["99999999999"]));
        let err = to_column_type(&big, &SqlType::Int).unwrap_err();
        assert_eq!(err.problem, ValueProblem::OutOfRange);
        let wide: ArrayRef = Arc::new(Int64Array::from(vec![1, 1 << 40]));
        let err = to_column_type(&wide, &SqlType::Int).unwrap_err();
        assert_eq!((err.problem, err.row), (ValueProblem::OutOfRange, Some(1)));
        let day: ArrayRef = Arc::new(StringArray::from(vec!["2024-13-45"]));
        let err = to_column_type(&day, &SqlType::Date).unwrap_err();
        assert_eq!(err.problem, ValueProblem::BadTemporal);
        let long: ArrayRef = Arc::new(StringArray::from(vec!["abcdef"]));
        let err = to_column_type(&long, &SqlType::Varchar(3)).unwrap_err();
        assert_eq!(err.problem, ValueProblem::TooLong);
        assert!(err.message.contains("VARCHAR(3)"));
        let mut decoder = ColumnDecoder::new(&SqlType::Int, 1);
        assert!(decoder.push(ValueRef::Integer(1 << 40)).is_err());
    }
}
