//! Column types of the server and the Arrow types lakewave holds them as, and
//! the builders that turn the server's values into Arrow arrays. Two kinds of
//! values arrive: text (result sets of the text protocol: snapshots and
//! statements run on the server) and binlog values (row events). Both go
//! through the same [`Kind`], so a table loaded from a snapshot, its changes
//! from the binlog and a query the server answers itself have the same
//! schema and the same values.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::{Column, Value};

/// The binary collation: bytes, not characters.
const BINARY_CHARSET: u16 = 63;
/// Widest DECIMAL the cluster holds exactly (Arrow's Decimal128).
pub const MAX_LOADED_PRECISION: u8 = 38;

/// How lakewave holds one column of the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
    /// DECIMAL(p, s), exact. Wider than 38 digits it cannot be loaded.
    Decimal {
        precision: u8,
        scale: i8,
    },
    Date,
    /// DATETIME: wall-clock time, no zone, microseconds.
    DateTime,
    /// TIMESTAMP: an instant, in UTC.
    Timestamp,
    /// TIME within a day (values outside 00:00:00–23:59:59 are refused).
    Time,
    Year,
    /// BIT(n), as an unsigned number.
    Bit,
    /// Character data; `latin1` says how binlog bytes are encoded (the text
    /// protocol converts to utf8mb4 on the server).
    Text {
        latin1: bool,
    },
    Binary,
    /// ENUM with its labels, in declaration order.
    Enum(Vec<String>),
    /// SET with its labels, in bit order.
    Set(Vec<String>),
    /// A type the cluster cannot hold (GEOMETRY, VECTOR, ...), by name.
    Unsupported(String),
}

impl Kind {
    pub fn arrow_type(&self) -> DataType {
        match self {
            Kind::Int8 => DataType::Int8,
            Kind::Int16 | Kind::Year => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt8 => DataType::UInt8,
            Kind::UInt16 => DataType::UInt16,
            Kind::UInt32 => DataType::UInt32,
            Kind::UInt64 | Kind::Bit => DataType::UInt64,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Decimal { precision, scale } => {
                DataType::Decimal128((*precision).min(MAX_LOADED_PRECISION), *scale)
            }
            Kind::Date => DataType::Date32,
            Kind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
            Kind::Text { .. } | Kind::Enum(_) | Kind::Set(_) => DataType::Utf8,
            Kind::Binary | Kind::Unsupported(_) => DataType::Binary,
        }
    }

    /// Why the cluster cannot hold this kind, if it cannot.
    pub fn unloadable(&self) -> Option<String> {
        match self {
            Kind::Unsupported(name) => Some(format!("type {name} is not supported by the cluster")),
            Kind::Decimal { precision, .. } if *precision > MAX_LOADED_PRECISION => Some(format!(
                "DECIMAL({precision}) is wider than the cluster's {MAX_LOADED_PRECISION} digits"
            )),
            _ => None,
        }
    }

    /// The kind of a result-set column, from the metadata the server sends.
    pub fn of_column(column: &Column) -> Kind {
        let flags = column.flags();
        let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
        let pick = |signed: Kind, not: Kind| if unsigned { not } else { signed };
        use ColumnType::*;
        match column.column_type() {
            MYSQL_TYPE_TINY => pick(Kind::Int8, Kind::UInt8),
            MYSQL_TYPE_SHORT => pick(Kind::Int16, Kind::UInt16),
            MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG => pick(Kind::Int32, Kind::UInt32),
            MYSQL_TYPE_LONGLONG => pick(Kind::Int64, Kind::UInt64),
            MYSQL_TYPE_FLOAT => Kind::Float32,
            MYSQL_TYPE_DOUBLE => Kind::Float64,
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
                let scale = column.decimals();
                // The display length counts the sign and the point.
                let length = column.column_length() as i64;
                let precision = length - i64::from(scale > 0) - i64::from(!unsigned);
                Kind::Decimal {
                    precision: precision.clamp(i64::from(scale.max(1)), 65) as u8,
                    scale: scale as i8,
                }
            }
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date,
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => Kind::DateTime,
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => Kind::Timestamp,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Kind::Time,
            MYSQL_TYPE_YEAR => Kind::Year,
            MYSQL_TYPE_BIT => Kind::Bit,
            MYSQL_TYPE_JSON | MYSQL_TYPE_NULL | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => {
                Kind::Text { latin1: false }
            }
            MYSQL_TYPE_GEOMETRY => Kind::Unsupported("GEOMETRY".into()),
            MYSQL_TYPE_VECTOR => Kind::Unsupported("VECTOR".into()),
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB
                if flags.contains(ColumnFlags::ENUM_FLAG)
                    || flags.contains(ColumnFlags::SET_FLAG) =>
            {
                Kind::Text { latin1: false }
            }
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB => {
                if column.character_set() == BINARY_CHARSET {
                    Kind::Binary
                } else {
                    Kind::Text { latin1: false }
                }
            }
            other => Kind::Unsupported(format!("{other:?}")),
        }
    }
}

/// One column of a loaded table or a result set.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceColumn {
    pub name: String,
    pub kind: Kind,
    pub nullable: bool,
}

impl SourceColumn {
    pub fn of_column(column: &Column) -> SourceColumn {
        SourceColumn {
            name: column.name_str().into_owned(),
            kind: Kind::of_column(column),
            nullable: !column.flags().contains(ColumnFlags::NOT_NULL_FLAG),
        }
    }
}

pub fn schema_of(columns: &[SourceColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.kind.arrow_type(), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

/// Labels of `enum('a','b')` or `set('a','b')` as `COLUMN_TYPE` spells them.
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let inner = column_type[open + 1..].trim_end().trim_end_matches(')');
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        label.push(escaped);
                    }
                }
                other => label.push(other),
            }
        }
        labels.push(label);
    }
    labels
}

/// Where values come from: their encodings differ for TIMESTAMP, ENUM, SET,
/// YEAR and latin1 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Text,
    Binlog,
}

enum Builder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
    Text(StringBuilder),
    Binary(BinaryBuilder),
}

/// Arrow batches from rows of server values, in the columns' order.
pub struct RowsBuilder {
    schema: SchemaRef,
    columns: Vec<SourceColumn>,
    builders: Vec<Builder>,
    origin: Origin,
    rows: usize,
}

impl RowsBuilder {
    pub fn new(columns: &[SourceColumn], origin: Origin) -> RowsBuilder {
        let mut builder = RowsBuilder {
            schema: schema_of(columns),
            columns: columns.to_vec(),
            builders: Vec::new(),
            origin,
            rows: 0,
        };
        builder.builders = builder.fresh();
        builder
    }

    fn fresh(&self) -> Vec<Builder> {
        self.columns
            .iter()
            .map(|c| match &c.kind {
                Kind::Int8 => Builder::Int8(Int8Builder::new()),
                Kind::Int16 | Kind::Year => Builder::Int16(Int16Builder::new()),
                Kind::Int32 => Builder::Int32(Int32Builder::new()),
                Kind::Int64 => Builder::Int64(Int64Builder::new()),
                Kind::UInt8 => Builder::UInt8(UInt8Builder::new()),
                Kind::UInt16 => Builder::UInt16(UInt16Builder::new()),
                Kind::UInt32 => Builder::UInt32(UInt32Builder::new()),
                Kind::UInt64 | Kind::Bit => Builder::UInt64(UInt64Builder::new()),
                Kind::Float32 => Builder::Float32(Float32Builder::new()),
                Kind::Float64 => Builder::Float64(Float64Builder::new()),
                Kind::Decimal { precision, scale } => Builder::Decimal(
                    Decimal128Builder::new()
                        .with_precision_and_scale((*precision).min(MAX_LOADED_PRECISION), *scale)
                        .expect("precision and scale were clamped"),
                ),
                Kind::Date => Builder::Date(Date32Builder::new()),
                Kind::DateTime => Builder::Timestamp(TimestampMicrosecondBuilder::new()),
                Kind::Timestamp => {
                    Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                }
                Kind::Time => Builder::Time(Time64MicrosecondBuilder::new()),
                Kind::Text { .. } | Kind::Enum(_) | Kind::Set(_) => {
                    Builder::Text(StringBuilder::new())
                }
                Kind::Binary | Kind::Unsupported(_) => Builder::Binary(BinaryBuilder::new()),
            })
            .collect()
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Append one row. On a value that does not fit its column, nothing of
    /// the row is kept and the error names the column.
    pub fn push_row(&mut self, values: &[Value]) -> Result<(), String> {
        if values.len() != self.columns.len() {
            return Err(format!(
                "a row has {} values where the table has {} columns",
                values.len(),
                self.columns.len()
            ));
        }
        // Check every value first so that a bad one leaves no partial row.
        let mut converted = Vec::with_capacity(values.len());
        for (column, value) in self.columns.iter().zip(values) {
            let cell = convert(&column.kind, value, self.origin)
                .map_err(|e| format!("column `{}`: {e}", column.name))?;
            if matches!(cell, Cell::Null) && !column.nullable {
                return Err(format!("column `{}` is NOT NULL but got NULL", column.name));
            }
            converted.push(cell);
        }
        for (builder, cell) in self.builders.iter_mut().zip(converted) {
            append(builder, cell);
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows so far as one batch; the builder starts again empty.
    pub fn finish(&mut self) -> RecordBatch {
        let fresh = self.fresh();
        let builders = std::mem::replace(&mut self.builders, fresh);
        self.rows = 0;
        let arrays: Vec<ArrayRef> = builders.into_iter().map(finish).collect();
        RecordBatch::try_new(Arc::clone(&self.schema), arrays).expect("builders follow the schema")
    }
}

/// A value converted to what its builder takes.
#[derive(Debug, PartialEq)]
enum Cell {
    Null,
    I(i64),
    U(u64),
    F(f64),
    D(i128),
    Micros(i64),
    Days(i32),
    S(String),
    B(Vec<u8>),
}

fn append(builder: &mut Builder, cell: Cell) {
    macro_rules! put {
        ($b:expr, $v:expr) => {
            match $v {
                Some(v) => $b.append_value(v),
                None => $b.append_null(),
            }
        };
    }
    let int = |c: &Cell| match c {
        Cell::I(v) => Some(*v),
        _ => None,
    };
    let uint = |c: &Cell| match c {
        Cell::U(v) => Some(*v),
        _ => None,
    };
    match builder {
        Builder::Int8(b) => put!(b, int(&cell).map(|v| v as i8)),
        Builder::Int16(b) => put!(b, int(&cell).map(|v| v as i16)),
        Builder::Int32(b) => put!(b, int(&cell).map(|v| v as i32)),
        Builder::Int64(b) => put!(b, int(&cell)),
        Builder::UInt8(b) => put!(b, uint(&cell).map(|v| v as u8)),
        Builder::UInt16(b) => put!(b, uint(&cell).map(|v| v as u16)),
        Builder::UInt32(b) => put!(b, uint(&cell).map(|v| v as u32)),
        Builder::UInt64(b) => put!(b, uint(&cell)),
        Builder::Float32(b) => put!(
            b,
            match cell {
                Cell::F(v) => Some(v as f32),
                _ => None,
            }
        ),
        Builder::Float64(b) => put!(
            b,
            match cell {
                Cell::F(v) => Some(v),
                _ => None,
            }
        ),
        Builder::Decimal(b) => put!(
            b,
            match cell {
                Cell::D(v) => Some(v),
                _ => None,
            }
        ),
        Builder::Date(b) => put!(
            b,
            match cell {
                Cell::Days(v) => Some(v),
                _ => None,
            }
        ),
        Builder::Timestamp(b) => put!(
            b,
            match cell {
                Cell::Micros(v) => Some(v),
                _ => None,
            }
        ),
        Builder::Time(b) => put!(
            b,
            match cell {
                Cell::Micros(v) => Some(v),
                _ => None,
            }
        ),
        Builder::Text(b) => put!(
            b,
            match cell {
                Cell::S(v) => Some(v),
                _ => None,
            }
        ),
        Builder::Binary(b) => put!(
            b,
            match cell {
                Cell::B(v) => Some(v),
                _ => None,
            }
        ),
    }
}

fn finish(builder: Builder) -> ArrayRef {
    match builder {
        Builder::Int8(mut b) => Arc::new(b.finish()),
        Builder::Int16(mut b) => Arc::new(b.finish()),
        Builder::Int32(mut b) => Arc::new(b.finish()),
        Builder::Int64(mut b) => Arc::new(b.finish()),
        Builder::UInt8(mut b) => Arc::new(b.finish()),
        Builder::UInt16(mut b) => Arc::new(b.finish()),
        Builder::UInt32(mut b) => Arc::new(b.finish()),
        Builder::UInt64(mut b) => Arc::new(b.finish()),
        Builder::Float32(mut b) => Arc::new(b.finish()),
        Builder::Float64(mut b) => Arc::new(b.finish()),
        Builder::Decimal(mut b) => Arc::new(b.finish()),
        Builder::Date(mut b) => Arc::new(b.finish()),
        Builder::Timestamp(mut b) => Arc::new(b.finish()),
        Builder::Time(mut b) => Arc::new(b.finish()),
        Builder::Text(mut b) => Arc::new(b.finish()),
        Builder::Binary(mut b) => Arc::new(b.finish()),
    }
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "the value is not valid UTF-8".to_string())
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .expect("a valid date")
        .and_hms_opt(0, 0, 0)
        .expect("a valid time")
}

fn convert(kind: &Kind, value: &Value, origin: Origin) -> Result<Cell, String> {
    if matches!(value, Value::NULL) {
        return Ok(Cell::Null);
    }
    let range = |what: &str| format!("{value:?} is out of range for {what}");
    Ok(match kind {
        Kind::Int8 | Kind::Int16 | Kind::Int32 | Kind::Int64 => {
            let v = signed(value)?;
            let (lo, hi) = match kind {
                Kind::Int8 => (i8::MIN as i64, i8::MAX as i64),
                Kind::Int16 => (i16::MIN as i64, i16::MAX as i64),
                Kind::Int32 => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if v < lo || v > hi {
                return Err(range("its integer type"));
            }
            Cell::I(v)
        }
        Kind::UInt8 | Kind::UInt16 | Kind::UInt32 | Kind::UInt64 => {
            let v = unsigned(value)?;
            let hi = match kind {
                Kind::UInt8 => u8::MAX as u64,
                Kind::UInt16 => u16::MAX as u64,
                Kind::UInt32 => u32::MAX as u64,
                _ => u64::MAX,
            };
            if v > hi {
                return Err(range("its unsigned integer type"));
            }
            Cell::U(v)
        }
        Kind::Year => {
            let v = signed(value)?;
            // The binlog spells YEAR 0000 as 1900 (it stores years after 1900).
            Cell::I(if origin == Origin::Binlog && v == 1900 {
                0
            } else {
                v
            })
        }
        Kind::Bit => match value {
            Value::Bytes(bytes) if bytes.len() <= 8 => {
                Cell::U(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            }
            Value::Int(v) => Cell::U(*v as u64),
            Value::UInt(v) => Cell::U(*v),
            _ => return Err(range("BIT")),
        },
        Kind::Float32 | Kind::Float64 => Cell::F(match value {
            Value::Float(v) => f64::from(*v),
            Value::Double(v) => *v,
            Value::Int(v) => *v as f64,
            Value::UInt(v) => *v as f64,
            Value::Bytes(b) => text(b)?
                .trim()
                .parse()
                .map_err(|_| range("a floating-point number"))?,
            _ => return Err(range("a floating-point number")),
        }),
        Kind::Decimal { precision, scale } => {
            let digits = match value {
                Value::Bytes(b) => text(b)?.to_string(),
                Value::Int(v) => v.to_string(),
                Value::UInt(v) => v.to_string(),
                _ => return Err(range("DECIMAL")),
            };
            Cell::D(
                parse_decimal(&digits, *precision, *scale).ok_or_else(|| {
                    format!("'{digits}' does not fit DECIMAL({precision},{scale})")
                })?,
            )
        }
        Kind::Date => match value {
            Value::Date(y, m, d, ..) => Cell::Days(days(*y as i32, *m as u32, *d as u32)?),
            Value::Bytes(b) => {
                let t = text(b)?;
                let date = NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .map_err(|_| format!("'{t}' is not a date the cluster can hold"))?;
                Cell::Days((date - epoch().date()).num_days() as i32)
            }
            _ => return Err(range("DATE")),
        },
        Kind::DateTime | Kind::Timestamp => match value {
            Value::Date(y, mo, d, h, mi, s, us) => {
                let date = NaiveDate::from_ymd_opt(*y as i32, *mo as u32, *d as u32)
                    .and_then(|date| date.and_hms_micro_opt(*h as u32, *mi as u32, *s as u32, *us))
                    .ok_or_else(|| {
                        format!("{value:?} is not a date and time the cluster can hold")
                    })?;
                Cell::Micros(
                    (date - epoch())
                        .num_microseconds()
                        .ok_or_else(|| range("DATETIME"))?,
                )
            }
            Value::Bytes(b) => {
                let t = text(b)?;
                if *kind == Kind::Timestamp && origin == Origin::Binlog {
                    // TIMESTAMP2 in the binlog: seconds since the epoch.
                    Cell::Micros(epoch_micros(t).ok_or_else(|| range("TIMESTAMP"))?)
                } else {
                    let parsed =
                        NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").map_err(|_| {
                            format!("'{t}' is not a date and time the cluster can hold")
                        })?;
                    Cell::Micros(
                        (parsed - epoch())
                            .num_microseconds()
                            .ok_or_else(|| range("DATETIME"))?,
                    )
                }
            }
            Value::Int(seconds) if *kind == Kind::Timestamp => Cell::Micros(seconds * 1_000_000),
            _ => return Err(range("DATETIME")),
        },
        Kind::Time => match value {
            Value::Time(negative, days, h, m, s, us) => {
                if *negative || *days > 0 {
                    return Err(format!(
                        "TIME {value:?} is outside 00:00:00–23:59:59, which the cluster holds"
                    ));
                }
                Cell::Micros(
                    ((*h as i64 * 60 + *m as i64) * 60 + *s as i64) * 1_000_000 + *us as i64,
                )
            }
            Value::Bytes(b) => {
                let t = text(b)?;
                let time = NaiveTime::parse_from_str(t, "%H:%M:%S%.f").map_err(|_| {
                    format!("TIME '{t}' is outside 00:00:00–23:59:59, which the cluster holds")
                })?;
                Cell::Micros(
                    (time - NaiveTime::MIN)
                        .num_microseconds()
                        .ok_or_else(|| range("TIME"))?,
                )
            }
            _ => return Err(range("TIME")),
        },
        Kind::Text { latin1 } => match value {
            Value::Bytes(b) if *latin1 && origin == Origin::Binlog => Cell::S(decode_latin1(b)),
            Value::Bytes(b) => Cell::S(text(b)?.to_string()),
            other => Cell::S(other.as_sql(true).trim_matches('\'').to_string()),
        },
        Kind::Enum(labels) => match (value, origin) {
            (Value::Int(index), Origin::Binlog) => Cell::S(label(labels, *index)?),
            (Value::UInt(index), Origin::Binlog) => Cell::S(label(labels, *index as i64)?),
            (Value::Bytes(b), _) => Cell::S(text(b)?.to_string()),
            _ => return Err(range("ENUM")),
        },
        Kind::Set(labels) => match (value, origin) {
            (Value::Bytes(bits), Origin::Binlog) => {
                let mask = bits
                    .iter()
                    .rev()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                let chosen: Vec<&str> = labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, l)| l.as_str())
                    .collect();
                Cell::S(chosen.join(","))
            }
            (Value::Bytes(b), Origin::Text) => Cell::S(text(b)?.to_string()),
            _ => return Err(range("SET")),
        },
        Kind::Binary | Kind::Unsupported(_) => match value {
            Value::Bytes(b) => Cell::B(b.clone()),
            other => Cell::B(other.as_sql(true).into_bytes()),
        },
    })
}

fn signed(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(v) => Ok(*v),
        Value::UInt(v) => i64::try_from(*v).map_err(|_| format!("{v} is out of range")),
        Value::Bytes(b) => text(b)?
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not an integer", String::from_utf8_lossy(b))),
        other => Err(format!("{other:?} is not an integer")),
    }
}

fn unsigned(value: &Value) -> Result<u64, String> {
    match value {
        Value::UInt(v) => Ok(*v),
        // The binlog hands unsigned columns over as they were declared.
        Value::Int(v) => u64::try_from(*v).map_err(|_| format!("{v} is out of range")),
        Value::Bytes(b) => text(b)?.trim().parse().map_err(|_| {
            format!(
                "'{}' is not an unsigned integer",
                String::from_utf8_lossy(b)
            )
        }),
        other => Err(format!("{other:?} is not an integer")),
    }
}

fn days(y: i32, m: u32, d: u32) -> Result<i32, String> {
    let date = NaiveDate::from_ymd_opt(y, m, d)
        .ok_or_else(|| format!("{y:04}-{m:02}-{d:02} is not a date the cluster can hold"))?;
    Ok((date - epoch().date()).num_days() as i32)
}

fn label(labels: &[String], index: i64) -> Result<String, String> {
    if index == 0 {
        // MySQL's "invalid value" of an ENUM is the empty string, index 0.
        return Ok(String::new());
    }
    usize::try_from(index - 1)
        .ok()
        .and_then(|i| labels.get(i))
        .cloned()
        .ok_or_else(|| format!("ENUM index {index} has no label"))
}

/// `seconds[.fraction]` since the epoch, in microseconds.
fn epoch_micros(text: &str) -> Option<i64> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = seconds.parse().ok()?;
    let mut micros: i64 = 0;
    for digit in fraction.chars().chain(std::iter::repeat('0')).take(6) {
        micros = micros * 10 + digit.to_digit(10)? as i64;
    }
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

/// An exact decimal in text (`-12.345`) as an integer scaled by `scale`, when
/// it fits `precision` digits.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let scale = scale.max(0) as usize;
    if fraction.len() > scale && fraction[scale..].chars().any(|c| c != '0') {
        return None;
    }
    let mut value: i128 = 0;
    let mut count = 0usize;
    for c in whole
        .chars()
        .chain(fraction.chars().chain(std::iter::repeat('0')).take(scale))
    {
        let digit = c.to_digit(10)? as i128;
        value = value.checked_mul(10)?.checked_add(digit)?;
        if value != 0 {
            count += 1;
        }
    }
    if count > precision as usize {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// MySQL's latin1 is Windows-1252: 0x80–0x9F are punctuation, not controls.
fn decode_latin1(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9f => HIGH[(b - 0x80) as usize],
            other => other as char,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn column(name: &str, kind: Kind) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            kind,
            nullable: true,
        }
    }

    #[test]
    fn decimals_parse_exactly_at_their_precision() {
        assert_eq!(parse_decimal("123.45", 5, 2), Some(12345));
        assert_eq!(parse_decimal("-0.5", 3, 2), Some(-50));
        assert_eq!(parse_decimal("999.99", 5, 2), Some(99999));
        assert_eq!(parse_decimal("1000.00", 5, 2), None);
        assert_eq!(parse_decimal("1.234", 5, 2), None);
        assert_eq!(parse_decimal("1.230", 5, 2), Some(123));
        assert_eq!(
            parse_decimal("99999999999999999999999999999999999999", 38, 0),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert_eq!(parse_decimal("", 5, 2), None);
        assert_eq!(parse_decimal("1e3", 5, 2), None);
    }

    #[test]
    fn text_and_binlog_values_build_the_same_arrays() {
        let columns = vec![
            column("d", Kind::Date),
            column("ts", Kind::Timestamp),
            column("dt", Kind::DateTime),
            column("e", Kind::Enum(vec!["small".into(), "large".into()])),
            column("s", Kind::Set(vec!["a".into(), "b".into(), "c".into()])),
            column("y", Kind::Year),
            column("t", Kind::Time),
        ];
        let mut text = RowsBuilder::new(&columns, Origin::Text);
        text.push_row(&[
            Value::Bytes(b"2024-02-29".to_vec()),
            Value::Bytes(b"1970-01-01 00:00:01.500000".to_vec()),
            Value::Bytes(b"2024-02-29 23:59:59.000001".to_vec()),
            Value::Bytes(b"large".to_vec()),
            Value::Bytes(b"a,c".to_vec()),
            Value::Bytes(b"0".to_vec()),
            Value::Bytes(b"12:34:56.789".to_vec()),
        ])
        .unwrap();
        let mut binlog = RowsBuilder::new(&columns, Origin::Binlog);
        binlog
            .push_row(&[
                Value::Date(2024, 2, 29, 0, 0, 0, 0),
                Value::Bytes(b"1.5".to_vec()),
                Value::Date(2024, 2, 29, 23, 59, 59, 1),
                Value::Int(2),
                Value::Bytes(vec![0b101]),
                Value::Bytes(b"1900".to_vec()),
                Value::Time(false, 0, 12, 34, 56, 789_000),
            ])
            .unwrap();
        assert_eq!(text.finish(), binlog.finish());
    }

    #[test]
    fn a_bad_value_names_its_column_and_leaves_no_partial_row() {
        let columns = vec![
            column("id", Kind::Int32),
            SourceColumn {
                name: "t".into(),
                kind: Kind::Time,
                nullable: false,
            },
        ];
        let mut builder = RowsBuilder::new(&columns, Origin::Binlog);
        let error = builder
            .push_row(&[Value::Int(1), Value::Time(false, 2, 0, 0, 0, 0)])
            .unwrap_err();
        assert!(
            error.contains("`t`") && error.contains("outside"),
            "{error}"
        );
        let error = builder.push_row(&[Value::Int(1), Value::NULL]).unwrap_err();
        assert!(error.contains("NOT NULL"), "{error}");
        builder
            .push_row(&[Value::Int(2), Value::Time(false, 0, 1, 0, 0, 0)])
            .unwrap();
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            batch
                .column(0)
                .as_primitive::<arrow::datatypes::Int32Type>()
                .value(0),
            2
        );
        assert_eq!(batch.column(1).null_count(), 0);
    }

    #[test]
    fn latin1_binlog_text_is_windows_1252() {
        let columns = vec![column("name", Kind::Text { latin1: true })];
        let mut builder = RowsBuilder::new(&columns, Origin::Binlog);
        builder
            .push_row(&[Value::Bytes(vec![0x80, b'1', 0xe9])])
            .unwrap();
        let batch = builder.finish();
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "€1é");
    }

    #[test]
    fn enum_and_set_labels_are_read_from_column_type() {
        assert_eq!(
            parse_labels("enum('a','it''s','x,y')"),
            vec!["a", "it's", "x,y"]
        );
        assert_eq!(parse_labels("set('r','w')"), vec!["r", "w"]);
    }
}
