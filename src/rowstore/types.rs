//! MySQL-style column types and how each is held in SQLite and in Arrow.
//!
//! SQLite tables are created STRICT, so every client (lakewave or Python's
//! `sqlite3`) must store a value of the column's storage class. Exact and
//! temporal types are stored as canonical text ('12.50', '2024-01-31',
//! '2024-01-31 10:00:00.5') so that other SQLite clients can read and write them
//! naturally; they are parsed back into Arrow's exact types on every read.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Array, Float64Builder, Int32Builder, Int64Array,
    Int64Builder, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;
use arrow::util::display::FormatOptions;
use datafusion::sql::sqlparser::ast::{
    CharacterLength, DataType as AstType, ExactNumberInfo, TimezoneInfo,
};
use rusqlite::types::ValueRef;

/// A declared column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    Int,
    BigInt,
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// `VARCHAR(n)`: at most `n` characters.
    Varchar(u32),
    Text,
    Double,
    Date,
    /// Wall-clock date and time, no time zone.
    DateTime,
    /// An instant, held in UTC.
    Timestamp,
    Boolean,
}

/// SQLite storage class of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Integer,
    Real,
    Text,
}

const MAX_DECIMAL_PRECISION: u64 = 38;

impl SqlType {
    /// The type of a column definition, or a message naming what is not supported.
    pub fn from_ast(data_type: &AstType) -> Result<SqlType, String> {
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
            T::String(None) | T::Text | T::TinyText | T::MediumText | T::LongText => {
                Ok(SqlType::Text)
            }
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

    /// The declared type for a column of a query result (CREATE TABLE ... AS).
    pub fn from_arrow(data_type: &DataType) -> Option<SqlType> {
        Some(match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16 => SqlType::Int,
            DataType::Int64 | DataType::UInt32 => SqlType::BigInt,
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
                if *s >= 0 && *p as u64 <= MAX_DECIMAL_PRECISION =>
            {
                SqlType::Decimal {
                    precision: *p,
                    scale: *s,
                }
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::Text,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => SqlType::Double,
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Timestamp(_, None) => SqlType::DateTime,
            DataType::Timestamp(_, Some(_)) => SqlType::Timestamp,
            DataType::Boolean => SqlType::Boolean,
            DataType::Dictionary(_, value) => return SqlType::from_arrow(value),
            _ => return None,
        })
    }

    /// Parse what `Display` wrote (the persisted catalog).
    pub fn parse(text: &str) -> Option<SqlType> {
        let upper = text.trim().to_ascii_uppercase();
        let args = |prefix: &str| -> Option<Vec<i64>> {
            let inner = upper
                .strip_prefix(prefix)?
                .strip_prefix('(')?
                .strip_suffix(')')?;
            inner.split(',').map(|p| p.trim().parse().ok()).collect()
        };
        Some(match upper.as_str() {
            "INT" => SqlType::Int,
            "BIGINT" => SqlType::BigInt,
            "TEXT" => SqlType::Text,
            "DOUBLE" => SqlType::Double,
            "DATE" => SqlType::Date,
            "DATETIME" => SqlType::DateTime,
            "TIMESTAMP" => SqlType::Timestamp,
            "BOOLEAN" => SqlType::Boolean,
            _ if upper.starts_with("DECIMAL") => match args("DECIMAL")?.as_slice() {
                [p, s] => SqlType::Decimal {
                    precision: *p as u8,
                    scale: *s as i8,
                },
                _ => return None,
            },
            _ if upper.starts_with("VARCHAR") => match args("VARCHAR")?.as_slice() {
                [n] => SqlType::Varchar(*n as u32),
                _ => return None,
            },
            _ => return None,
        })
    }

    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::Int => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Varchar(_) | SqlType::Text => DataType::Utf8,
            SqlType::Double => DataType::Float64,
            SqlType::Date => DataType::Date32,
            SqlType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            SqlType::Boolean => DataType::Boolean,
        }
    }

    pub fn storage(&self) -> Storage {
        match self {
            SqlType::Int | SqlType::BigInt | SqlType::Boolean => Storage::Integer,
            SqlType::Double => Storage::Real,
            _ => Storage::Text,
        }
    }

    /// The STRICT SQLite column type and the CHECK that keeps other clients'
    /// values inside the declared type.
    pub fn sqlite_column(&self, quoted_name: &str) -> (String, Option<String>) {
        let check = match self {
            SqlType::Int => Some(format!("{quoted_name} BETWEEN -2147483648 AND 2147483647")),
            SqlType::Boolean => Some(format!("{quoted_name} IN (0, 1)")),
            SqlType::Varchar(n) => Some(format!("length({quoted_name}) <= {n}")),
            _ => None,
        };
        let storage = match self.storage() {
            Storage::Integer => "INTEGER",
            Storage::Real => "REAL",
            Storage::Text => "TEXT",
        };
        (storage.to_string(), check)
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Int => write!(f, "INT"),
            SqlType::BigInt => write!(f, "BIGINT"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            SqlType::Varchar(n) => write!(f, "VARCHAR({n})"),
            SqlType::Text => write!(f, "TEXT"),
            SqlType::Double => write!(f, "DOUBLE"),
            SqlType::Date => write!(f, "DATE"),
            SqlType::DateTime => write!(f, "DATETIME"),
            SqlType::Timestamp => write!(f, "TIMESTAMP"),
            SqlType::Boolean => write!(f, "BOOLEAN"),
        }
    }
}

fn strict_cast() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

/// Convert any Arrow array to the column's Arrow type, failing (not nulling) on
/// values that do not fit: 'abc' into INT, 1e40 into DECIMAL(10,2).
pub fn to_column_type(array: &ArrayRef, sql_type: &SqlType) -> Result<ArrayRef, ArrowError> {
    let target = sql_type.arrow_type();
    let converted = if array.data_type() == &target {
        Arc::clone(array)
    } else {
        cast_with_options(array, &target, &strict_cast())?
    };
    if let SqlType::Varchar(limit) = sql_type {
        let strings = converted
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("VARCHAR is Utf8");
        if let Some(too_long) = strings
            .iter()
            .flatten()
            .find(|s| s.chars().count() > *limit as usize)
        {
            let shown: String = too_long.chars().take(40).collect();
            return Err(ArrowError::InvalidArgumentError(format!(
                "value '{shown}{}' is longer than VARCHAR({limit})",
                if too_long.chars().count() > 40 {
                    "..."
                } else {
                    ""
                }
            )));
        }
    }
    Ok(converted)
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
        Ok(match sql_type.storage() {
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
    fn types_round_trip_through_their_names() {
        for t in [
            SqlType::Int,
            SqlType::BigInt,
            SqlType::Decimal {
                precision: 15,
                scale: 2,
            },
            SqlType::Varchar(20),
            SqlType::Text,
            SqlType::Double,
            SqlType::Date,
            SqlType::DateTime,
            SqlType::Timestamp,
            SqlType::Boolean,
        ] {
            assert_eq!(SqlType::parse(&t.to_string()), Some(t));
        }
    }

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
        assert!(to_column_type(&text, &SqlType::Int).is_err());
        let long: ArrayRef = Arc::new(StringArray::from(vec!["abcdef"]));
        let err = to_column_type(&long, &SqlType::Varchar(3)).unwrap_err();
        assert!(err.to_string().contains("VARCHAR(3)"));
        let mut decoder = ColumnDecoder::new(&SqlType::Int, 1);
        assert!(decoder.push(ValueRef::Integer(1 << 40)).is_err());
    }
}
