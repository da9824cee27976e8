//! The column types a table declares, MySQL-style (INT, BIGINT, DECIMAL(p,s),
//! VARCHAR(n), TEXT, DOUBLE, DATE, DATETIME, TIMESTAMP, BOOLEAN), and the
//! Arrow type each is read as. How a type is held in SQLite is the row
//! store's business; how it is spelled in SQL is the front end's.

use std::fmt;

use arrow::datatypes::{DataType, TimeUnit};

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

pub const MAX_DECIMAL_PRECISION: u64 = 38;

impl SqlType {
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

/// One column of a row-store table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: bool,
    /// Filled in when inserted as NULL (a single integer key).
    pub auto_increment: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
