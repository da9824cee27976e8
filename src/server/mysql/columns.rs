//! Result sets on the wire: a column definition per Arrow field (the MySQL
//! type drivers turn into `Decimal`, `date`, `datetime`, `bytes`, ...) and
//! rows in the text protocol (COM_QUERY) or the binary one (prepared
//! statements), encoded straight from Arrow arrays.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Decimal256Array};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Field, Float16Type, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::wire::{put_lenenc_bytes, put_lenenc_int, put_u16, put_u32};

/// MySQL column types (`enum_field_types`).
pub mod types {
    pub const DECIMAL: u8 = 0x00;
    pub const TINY: u8 = 0x01;
    pub const SHORT: u8 = 0x02;
    pub const LONG: u8 = 0x03;
    pub const FLOAT: u8 = 0x04;
    pub const DOUBLE: u8 = 0x05;
    pub const NULL: u8 = 0x06;
    pub const TIMESTAMP: u8 = 0x07;
    pub const LONGLONG: u8 = 0x08;
    pub const INT24: u8 = 0x09;
    pub const DATE: u8 = 0x0A;
    pub const TIME: u8 = 0x0B;
    pub const DATETIME: u8 = 0x0C;
    pub const YEAR: u8 = 0x0D;
    pub const VARCHAR: u8 = 0x0F;
    pub const BIT: u8 = 0x10;
    pub const JSON: u8 = 0xF5;
    pub const NEWDECIMAL: u8 = 0xF6;
    pub const ENUM: u8 = 0xF7;
    pub const SET: u8 = 0xF8;
    pub const TINY_BLOB: u8 = 0xF9;
    pub const MEDIUM_BLOB: u8 = 0xFA;
    pub const LONG_BLOB: u8 = 0xFB;
    pub const BLOB: u8 = 0xFC;
    pub const VAR_STRING: u8 = 0xFD;
    pub const STRING: u8 = 0xFE;
    pub const GEOMETRY: u8 = 0xFF;
}

mod flags {
    pub const NOT_NULL: u16 = 1;
    pub const BLOB: u16 = 16;
    pub const UNSIGNED: u16 = 32;
    pub const BINARY: u16 = 128;
    pub const NUM: u16 = 32768;
}

/// The `binary` character set, which marks bytes (not text) for drivers.
const BINARY_CHARSET: u16 = 63;
const UTF8MB4_CHARSET: u16 = 255;

/// How one Arrow field is described to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnType {
    pub code: u8,
    pub flags: u16,
    pub charset: u16,
    pub length: u32,
    pub decimals: u8,
}

/// The MySQL type of an Arrow type.
pub fn column_type(field: &Field) -> ColumnType {
    let number = |code: u8, length: u32, unsigned: bool| ColumnType {
        code,
        flags: flags::NUM | flags::BINARY | if unsigned { flags::UNSIGNED } else { 0 },
        charset: BINARY_CHARSET,
        length,
        decimals: 0,
    };
    let mut column = match field.data_type() {
        DataType::Boolean => number(types::TINY, 1, false),
        DataType::Int8 => number(types::TINY, 4, false),
        DataType::UInt8 => number(types::TINY, 3, true),
        DataType::Int16 => number(types::SHORT, 6, false),
        DataType::UInt16 => number(types::SHORT, 5, true),
        DataType::Int32 => number(types::LONG, 11, false),
        DataType::UInt32 => number(types::LONG, 10, true),
        DataType::Int64 => number(types::LONGLONG, 20, false),
        DataType::UInt64 => number(types::LONGLONG, 20, true),
        DataType::Float16 | DataType::Float32 => ColumnType {
            decimals: 31,
            ..number(types::FLOAT, 12, false)
        },
        DataType::Float64 => ColumnType {
            decimals: 31,
            ..number(types::DOUBLE, 22, false)
        },
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            let scale = (*s).max(0) as u8;
            ColumnType {
                decimals: scale,
                ..number(
                    types::NEWDECIMAL,
                    u32::from(*p) + u32::from(scale > 0) + 1,
                    false,
                )
            }
        }
        DataType::Date32 | DataType::Date64 => ColumnType {
            flags: flags::BINARY,
            ..number(types::DATE, 10, false)
        },
        DataType::Timestamp(unit, tz) => {
            let decimals = fraction_digits(*unit);
            ColumnType {
                flags: flags::BINARY,
                decimals,
                ..number(
                    if tz.is_some() {
                        types::TIMESTAMP
                    } else {
                        types::DATETIME
                    },
                    19 + if decimals > 0 {
                        1 + u32::from(decimals)
                    } else {
                        0
                    },
                    false,
                )
            }
        }
        DataType::Time32(unit) | DataType::Time64(unit) => {
            let decimals = fraction_digits(*unit);
            ColumnType {
                flags: flags::BINARY,
                decimals,
                ..number(
                    types::TIME,
                    10 + if decimals > 0 {
                        1 + u32::from(decimals)
                    } else {
                        0
                    },
                    false,
                )
            }
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ColumnType {
            code: types::BLOB,
            flags: flags::BLOB | flags::BINARY,
            charset: BINARY_CHARSET,
            length: u32::MAX,
            decimals: 0,
        },
        DataType::Null => ColumnType {
            code: types::NULL,
            flags: flags::BINARY,
            charset: BINARY_CHARSET,
            length: 0,
            decimals: 0,
        },
        DataType::Dictionary(_, value) => {
            return column_type(&Field::new(
                field.name(),
                value.as_ref().clone(),
                field.is_nullable(),
            ));
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => ColumnType {
            code: types::JSON,
            flags: flags::BLOB | flags::BINARY,
            charset: BINARY_CHARSET,
            length: u32::MAX,
            decimals: 0,
        },
        _ => ColumnType {
            code: types::VAR_STRING,
            flags: 0,
            charset: UTF8MB4_CHARSET,
            length: 262_140,
            decimals: 0,
        },
    };
    if !field.is_nullable() {
        column.flags |= flags::NOT_NULL;
    }
    column
}

fn fraction_digits(unit: TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
    }
}

/// A `ColumnDefinition41` packet for `field`. `default` is for
/// COM_FIELD_LIST, whose definitions end with the column's default.
pub fn definition(field: &Field, table: &str, with_default: bool) -> Vec<u8> {
    let column = column_type(field);
    let mut out = Vec::with_capacity(64 + field.name().len());
    put_lenenc_bytes(&mut out, b"def");
    put_lenenc_bytes(&mut out, b"");
    put_lenenc_bytes(&mut out, table.as_bytes());
    put_lenenc_bytes(&mut out, table.as_bytes());
    put_lenenc_bytes(&mut out, field.name().as_bytes());
    put_lenenc_bytes(&mut out, field.name().as_bytes());
    out.push(0x0C);
    put_u16(&mut out, column.charset);
    put_u32(&mut out, column.length);
    out.push(column.code);
    put_u16(&mut out, column.flags);
    out.push(column.decimals);
    out.extend_from_slice(&[0, 0]);
    if with_default {
        out.push(0xFB);
    }
    out
}

/// A parameter's definition in a prepare response (its type is not known
/// before the client binds it).
pub fn parameter_definition() -> Vec<u8> {
    definition(&Field::new("?", DataType::Utf8, true), "", false)
}

/// Reads one column of a batch, row by row, in the wire's encodings.
pub struct ColumnEncoder {
    array: ArrayRef,
    kind: Kind,
    formatter_options: FormatOptions<'static>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    UInt,
    Float,
    Decimal,
    Date,
    Timestamp(TimeUnit, u8),
    Time(TimeUnit, u8),
    Text,
    Bytes,
    Null,
    Other,
}

impl ColumnEncoder {
    pub fn new(array: &ArrayRef) -> ColumnEncoder {
        let array = match array.data_type() {
            DataType::Dictionary(_, value) => {
                arrow::compute::cast(array, value).unwrap_or_else(|_| Arc::clone(array))
            }
            DataType::Utf8View | DataType::LargeUtf8 => {
                arrow::compute::cast(array, &DataType::Utf8).unwrap_or_else(|_| Arc::clone(array))
            }
            DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
                arrow::compute::cast(array, &DataType::Binary).unwrap_or_else(|_| Arc::clone(array))
            }
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => {
                arrow::compute::cast(array, &DataType::Decimal128(*p, *s))
                    .unwrap_or_else(|_| Arc::clone(array))
            }
            DataType::Date64 => {
                arrow::compute::cast(array, &DataType::Date32).unwrap_or_else(|_| Arc::clone(array))
            }
            _ => Arc::clone(array),
        };
        let kind = match array.data_type() {
            DataType::Boolean => Kind::Bool,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Kind::Int,
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => Kind::UInt,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Kind::Float,
            DataType::Decimal128(..) | DataType::Decimal256(..) => Kind::Decimal,
            DataType::Date32 => Kind::Date,
            DataType::Timestamp(unit, _) => Kind::Timestamp(*unit, fraction_digits(*unit)),
            DataType::Time32(unit) | DataType::Time64(unit) => {
                Kind::Time(*unit, fraction_digits(*unit))
            }
            DataType::Utf8 => Kind::Text,
            DataType::Binary => Kind::Bytes,
            DataType::Null => Kind::Null,
            _ => Kind::Other,
        };
        ColumnEncoder {
            array,
            kind,
            formatter_options: FormatOptions::default().with_display_error(true),
        }
    }

    pub fn is_null(&self, row: usize) -> bool {
        matches!(self.kind, Kind::Null) || self.array.is_null(row)
    }

    fn int(&self, row: usize) -> i64 {
        fn get<T: ArrowPrimitiveType>(a: &ArrayRef, row: usize) -> T::Native {
            a.as_primitive::<T>().value(row)
        }
        match self.array.data_type() {
            DataType::Int8 => i64::from(get::<Int8Type>(&self.array, row)),
            DataType::Int16 => i64::from(get::<Int16Type>(&self.array, row)),
            DataType::Int32 => i64::from(get::<Int32Type>(&self.array, row)),
            _ => get::<Int64Type>(&self.array, row),
        }
    }

    fn uint(&self, row: usize) -> u64 {
        fn get<T: ArrowPrimitiveType>(a: &ArrayRef, row: usize) -> T::Native {
            a.as_primitive::<T>().value(row)
        }
        match self.array.data_type() {
            DataType::UInt8 => u64::from(get::<UInt8Type>(&self.array, row)),
            DataType::UInt16 => u64::from(get::<UInt16Type>(&self.array, row)),
            DataType::UInt32 => u64::from(get::<UInt32Type>(&self.array, row)),
            _ => get::<UInt64Type>(&self.array, row),
        }
    }

    fn float(&self, row: usize) -> f64 {
        match self.array.data_type() {
            DataType::Float16 => f64::from(self.array.as_primitive::<Float16Type>().value(row)),
            DataType::Float32 => f64::from(self.array.as_primitive::<Float32Type>().value(row)),
            _ => self.array.as_primitive::<Float64Type>().value(row),
        }
    }

    /// A timestamp as microseconds since the epoch.
    fn micros(&self, unit: TimeUnit, row: usize) -> i64 {
        fn get<T: ArrowPrimitiveType<Native = i64>>(a: &ArrayRef, row: usize) -> i64 {
            a.as_primitive::<T>().value(row)
        }
        match unit {
            TimeUnit::Second => {
                get::<TimestampSecondType>(&self.array, row).saturating_mul(1_000_000)
            }
            TimeUnit::Millisecond => {
                get::<TimestampMillisecondType>(&self.array, row).saturating_mul(1000)
            }
            TimeUnit::Microsecond => get::<TimestampMicrosecondType>(&self.array, row),
            TimeUnit::Nanosecond => get::<TimestampNanosecondType>(&self.array, row) / 1000,
        }
    }

    /// A time of day as microseconds since midnight.
    fn time_micros(&self, unit: TimeUnit, row: usize) -> i64 {
        match (self.array.data_type(), unit) {
            (DataType::Time32(_), TimeUnit::Second) => {
                i64::from(self.array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000
            }
            (DataType::Time32(_), _) => {
                i64::from(
                    self.array
                        .as_primitive::<Time32MillisecondType>()
                        .value(row),
                ) * 1000
            }
            (_, TimeUnit::Nanosecond) => {
                self.array.as_primitive::<Time64NanosecondType>().value(row) / 1000
            }
            _ => self
                .array
                .as_primitive::<Time64MicrosecondType>()
                .value(row),
        }
    }

    fn date(&self, row: usize) -> Option<NaiveDate> {
        let days = self.array.as_primitive::<Date32Type>().value(row);
        NaiveDate::from_num_days_from_ce_opt(days.checked_add(719_163)?)
    }

    fn decimal_text(&self, row: usize) -> String {
        match self.array.data_type() {
            DataType::Decimal256(..) => self
                .array
                .as_any()
                .downcast_ref::<Decimal256Array>()
                .expect("decimal256")
                .value_as_string(row),
            _ => self
                .array
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .expect("decimal128")
                .value_as_string(row),
        }
    }

    fn other_text(&self, row: usize) -> String {
        match ArrayFormatter::try_new(self.array.as_ref(), &self.formatter_options) {
            Ok(formatter) => formatter.value(row).to_string(),
            Err(e) => format!("<{e}>"),
        }
    }

    /// The value of `row` in the text protocol (the caller checked for NULL).
    pub fn text(&self, row: usize, out: &mut Vec<u8>) {
        match self.kind {
            Kind::Bool => {
                let b = self
                    .array
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .expect("boolean")
                    .value(row);
                put_lenenc_bytes(out, if b { b"1" } else { b"0" });
            }
            Kind::Int => put_lenenc_bytes(out, itoa_i64(self.int(row)).as_bytes()),
            Kind::UInt => put_lenenc_bytes(out, self.uint(row).to_string().as_bytes()),
            Kind::Float => {
                let text = match self.array.data_type() {
                    DataType::Float64 => format_float(self.float(row)),
                    // Printed as the f32 it is (0.1, not 0.10000000149011612).
                    _ => format_float32(self.float(row) as f32),
                };
                put_lenenc_bytes(out, text.as_bytes())
            }
            Kind::Decimal => put_lenenc_bytes(out, self.decimal_text(row).as_bytes()),
            Kind::Date => match self.date(row) {
                Some(d) => put_lenenc_bytes(out, d.format("%Y-%m-%d").to_string().as_bytes()),
                None => put_lenenc_bytes(out, b"0000-00-00"),
            },
            Kind::Timestamp(unit, digits) => {
                let text = format_datetime(self.micros(unit, row), digits);
                put_lenenc_bytes(out, text.as_bytes())
            }
            Kind::Time(unit, digits) => {
                let text = format_time(self.time_micros(unit, row), digits);
                put_lenenc_bytes(out, text.as_bytes())
            }
            Kind::Text => {
                put_lenenc_bytes(out, self.array.as_string::<i32>().value(row).as_bytes())
            }
            Kind::Bytes => put_lenenc_bytes(out, self.array.as_binary::<i32>().value(row)),
            Kind::Null => out.push(0xFB),
            Kind::Other => put_lenenc_bytes(out, self.other_text(row).as_bytes()),
        }
    }

    /// The value of `row` in the binary protocol, in the encoding of the type
    /// [`column_type`] declared (the caller checked for NULL).
    pub fn binary(&self, row: usize, out: &mut Vec<u8>) {
        match self.kind {
            Kind::Bool => {
                let b = self
                    .array
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .expect("boolean")
                    .value(row);
                out.push(u8::from(b));
            }
            Kind::Int => {
                let v = self.int(row);
                match self.array.data_type() {
                    DataType::Int8 => out.push(v as i8 as u8),
                    DataType::Int16 => out.extend_from_slice(&(v as i16).to_le_bytes()),
                    DataType::Int32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
                    _ => out.extend_from_slice(&v.to_le_bytes()),
                }
            }
            Kind::UInt => {
                let v = self.uint(row);
                match self.array.data_type() {
                    DataType::UInt8 => out.push(v as u8),
                    DataType::UInt16 => out.extend_from_slice(&(v as u16).to_le_bytes()),
                    DataType::UInt32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
                    _ => out.extend_from_slice(&v.to_le_bytes()),
                }
            }
            Kind::Float => match self.array.data_type() {
                DataType::Float64 => out.extend_from_slice(&self.float(row).to_le_bytes()),
                _ => out.extend_from_slice(&(self.float(row) as f32).to_le_bytes()),
            },
            Kind::Date => match self.date(row) {
                Some(d) => {
                    out.push(4);
                    out.extend_from_slice(&(d.year() as u16).to_le_bytes());
                    out.push(d.month() as u8);
                    out.push(d.day() as u8);
                }
                None => out.push(0),
            },
            Kind::Timestamp(unit, _) => {
                match DateTime::from_timestamp_micros(self.micros(unit, row)) {
                    Some(t) => put_binary_datetime(out, &t.naive_utc()),
                    None => out.push(0),
                }
            }
            Kind::Time(unit, _) => {
                let micros = self.time_micros(unit, row);
                let negative = micros < 0;
                let micros = micros.unsigned_abs();
                let seconds = micros / 1_000_000;
                out.push(12);
                out.push(u8::from(negative));
                out.extend_from_slice(&((seconds / 86_400) as u32).to_le_bytes());
                out.push(((seconds / 3600) % 24) as u8);
                out.push(((seconds / 60) % 60) as u8);
                out.push((seconds % 60) as u8);
                out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
            }
            Kind::Decimal | Kind::Text | Kind::Bytes | Kind::Other => self.text(row, out),
            Kind::Null => {}
        }
    }
}

fn put_binary_datetime(out: &mut Vec<u8>, t: &NaiveDateTime) {
    out.push(11);
    out.extend_from_slice(&(t.year() as u16).to_le_bytes());
    out.push(t.month() as u8);
    out.push(t.day() as u8);
    out.push(t.hour() as u8);
    out.push(t.minute() as u8);
    out.push(t.second() as u8);
    out.extend_from_slice(&(t.nanosecond() / 1000).to_le_bytes());
}

fn itoa_i64(v: i64) -> String {
    v.to_string()
}

/// Floats as MySQL prints them: the shortest text that reads back the same.
fn format_float(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return v.to_string();
    }
    let plain = v.to_string();
    let exponent = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    if (-5..=15).contains(&exponent) {
        plain
    } else {
        format!("{v:e}")
    }
}

fn format_float32(v: f32) -> String {
    if v.is_nan() || v.is_infinite() {
        return v.to_string();
    }
    let exponent = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    if (-5..=15).contains(&exponent) {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` with exactly `digits` fraction digits.
pub fn format_datetime(micros: i64, digits: u8) -> String {
    match DateTime::from_timestamp_micros(micros) {
        Some(t) => {
            let t = t.naive_utc();
            let mut text = t.format("%Y-%m-%d %H:%M:%S").to_string();
            push_fraction(&mut text, t.nanosecond() / 1000, digits);
            text
        }
        None => "0000-00-00 00:00:00".to_string(),
    }
}

fn format_time(micros: i64, digits: u8) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    let seconds = micros / 1_000_000;
    let mut text = format!(
        "{sign}{:02}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    );
    push_fraction(&mut text, (micros % 1_000_000) as u32, digits);
    text
}

fn push_fraction(text: &mut String, micros: u32, digits: u8) {
    if digits > 0 {
        let fraction = format!("{micros:06}");
        text.push('.');
        text.push_str(&fraction[..usize::from(digits.min(6))]);
    }
}

/// A row of the text protocol.
pub fn text_row(encoders: &[ColumnEncoder], row: usize, out: &mut Vec<u8>) {
    for encoder in encoders {
        if encoder.is_null(row) {
            out.push(0xFB);
        } else {
            encoder.text(row, out);
        }
    }
}

/// A row of the binary protocol: a header, a NULL bitmap (offset by two
/// bits), then the values that are not NULL.
pub fn binary_row(encoders: &[ColumnEncoder], row: usize, out: &mut Vec<u8>) {
    out.push(0);
    let bitmap_at = out.len();
    out.resize(bitmap_at + (encoders.len() + 7 + 2) / 8, 0);
    for (i, encoder) in encoders.iter().enumerate() {
        if encoder.is_null(row) {
            let bit = i + 2;
            out[bitmap_at + bit / 8] |= 1 << (bit % 8);
        } else {
            encoder.binary(row, out);
        }
    }
}

/// The column count of a result set.
pub fn column_count(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    put_lenenc_int(&mut out, n as u64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryArray, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray,
        TimestampMicrosecondArray, UInt64Array,
    };

    fn texts(array: ArrayRef) -> Vec<Option<String>> {
        let encoder = ColumnEncoder::new(&array);
        (0..array.len())
            .map(|row| {
                let mut out = Vec::new();
                text_row(std::slice::from_ref(&encoder), row, &mut out);
                if out == [0xFB] {
                    None
                } else {
                    Some(String::from_utf8(out[1..].to_vec()).unwrap())
                }
            })
            .collect()
    }

    #[test]
    fn values_print_as_mysql_prints_them() {
        let decimals = Decimal128Array::from(vec![Some(12345), None, Some(-5)])
            .with_precision_and_scale(15, 2)
            .unwrap();
        assert_eq!(
            texts(Arc::new(decimals)),
            vec![Some("123.45".into()), None, Some("-0.05".into())]
        );
        assert_eq!(
            texts(Arc::new(Date32Array::from(vec![0, 19_723]))),
            vec![Some("1970-01-01".into()), Some("2024-01-01".into())]
        );
        assert_eq!(
            texts(Arc::new(TimestampMicrosecondArray::from(vec![1_500_000]))),
            vec![Some("1970-01-01 00:00:01.500000".into())]
        );
        assert_eq!(
            texts(Arc::new(Float64Array::from(vec![0.1, 1e20, 2.5]))),
            vec![Some("0.1".into()), Some("1e20".into()), Some("2.5".into())]
        );
        assert_eq!(
            texts(Arc::new(UInt64Array::from(vec![u64::MAX]))),
            vec![Some(u64::MAX.to_string())]
        );
        assert_eq!(
            texts(Arc::new(StringArray::from(vec![Some("é"), None]))),
            vec![Some("é".into()), None]
        );
    }

    #[test]
    fn types_and_flags_follow_the_arrow_types() {
        let decimal = column_type(&Field::new("d", DataType::Decimal128(15, 2), false));
        assert_eq!((decimal.code, decimal.decimals), (types::NEWDECIMAL, 2));
        assert!(decimal.flags & flags::NOT_NULL != 0);
        let unsigned = column_type(&Field::new("u", DataType::UInt32, true));
        assert!(unsigned.flags & flags::UNSIGNED != 0);
        let blob = column_type(&Field::new("b", DataType::Binary, true));
        assert_eq!((blob.code, blob.charset), (types::BLOB, BINARY_CHARSET));
        let text = column_type(&Field::new("t", DataType::Utf8View, true));
        assert_eq!(
            (text.code, text.charset),
            (types::VAR_STRING, UTF8MB4_CHARSET)
        );
        let datetime = column_type(&Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ));
        assert_eq!((datetime.code, datetime.decimals), (types::DATETIME, 6));
    }

    #[test]
    fn binary_rows_mark_nulls_after_the_two_reserved_bits() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), None]));
        let b: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&b"\x00\x01"[..]), Some(b"x")]));
        let encoders = [ColumnEncoder::new(&a), ColumnEncoder::new(&b)];
        let mut out = Vec::new();
        binary_row(&encoders, 0, &mut out);
        assert_eq!(out, vec![0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]);
        let mut out = Vec::new();
        binary_row(&encoders, 1, &mut out);
        assert_eq!(out, vec![0, 0b100, 1, b'x']);
    }
}
