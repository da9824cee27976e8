//! Prepared statements' parameters: the values of a COM_STMT_EXECUTE
//! decoded from the binary protocol into typed scalars.

use std::collections::HashMap;

use datafusion::common::ScalarValue;

use super::columns::types;
use super::wire::{Decoder, WireError};

/// The type a client bound a parameter with: the MySQL type and whether it
/// is unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundType {
    pub code: u8,
    pub unsigned: bool,
}

/// Decode the parameter block of a COM_STMT_EXECUTE (after the statement id,
/// flags and iteration count). `bound` holds the types from an earlier
/// execution, which a client may omit; `long_data` what COM_STMT_SEND_LONG_DATA
/// sent for a parameter.
pub fn decode_values(
    d: &mut Decoder<'_>,
    count: usize,
    bound: &mut Vec<BoundType>,
    long_data: &HashMap<usize, Vec<u8>>,
) -> Result<Vec<ScalarValue>, WireError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let nulls = d.bytes(count.div_ceil(8), "the NULL bitmap of the parameters")?;
    let rebound = d.u8("the new-parameters-bound flag")?;
    if rebound == 1 {
        bound.clear();
        for _ in 0..count {
            let code = d.u8("a parameter type")?;
            let flag = d.u8("a parameter type")?;
            bound.push(BoundType {
                code,
                unsigned: flag & 0x80 != 0,
            });
        }
    } else if bound.len() != count {
        return Err(WireError::Invalid {
            what: "parameters were never bound with their types".into(),
        });
    }
    let mut values = Vec::with_capacity(count);
    for (index, bound) in bound.iter().enumerate() {
        if nulls[index / 8] & (1 << (index % 8)) != 0 {
            values.push(ScalarValue::Null);
            continue;
        }
        if let Some(data) = long_data.get(&index) {
            values.push(bytes_value(bound.code, data)?);
            continue;
        }
        values.push(decode_value(d, *bound)?);
    }
    Ok(values)
}

fn decode_value(d: &mut Decoder<'_>, bound: BoundType) -> Result<ScalarValue, WireError> {
    let what = "a parameter value";
    Ok(match bound.code {
        types::NULL => ScalarValue::Null,
        types::TINY => {
            let v = d.u8(what)?;
            if bound.unsigned {
                ScalarValue::UInt8(Some(v))
            } else {
                ScalarValue::Int8(Some(v as i8))
            }
        }
        types::SHORT | types::YEAR => {
            let v = d.u16(what)?;
            if bound.unsigned {
                ScalarValue::UInt16(Some(v))
            } else {
                ScalarValue::Int16(Some(v as i16))
            }
        }
        types::LONG | types::INT24 => {
            let v = d.u32(what)?;
            if bound.unsigned {
                ScalarValue::UInt32(Some(v))
            } else {
                ScalarValue::Int32(Some(v as i32))
            }
        }
        types::LONGLONG => {
            let v = d.u64(what)?;
            if bound.unsigned {
                ScalarValue::UInt64(Some(v))
            } else {
                ScalarValue::Int64(Some(v as i64))
            }
        }
        types::FLOAT => ScalarValue::Float32(Some(f32::from_bits(d.u32(what)?))),
        types::DOUBLE => ScalarValue::Float64(Some(f64::from_bits(d.u64(what)?))),
        types::DATE | types::DATETIME | types::TIMESTAMP => {
            let len = d.u8(what)?;
            let body = d.bytes(usize::from(len), what)?;
            datetime_value(bound.code, body)?
        }
        types::TIME => {
            let len = d.u8(what)?;
            let body = d.bytes(usize::from(len), what)?;
            time_value(body)?
        }
        code => bytes_value(code, d.lenenc_bytes(what)?)?,
    })
}

/// A value sent as bytes: text for the string and decimal types, bytes for
/// the binary ones.
fn bytes_value(code: u8, data: &[u8]) -> Result<ScalarValue, WireError> {
    match code {
        types::TINY_BLOB
        | types::MEDIUM_BLOB
        | types::LONG_BLOB
        | types::BLOB
        | types::BIT
        | types::GEOMETRY => Ok(ScalarValue::Binary(Some(data.to_vec()))),
        types::DECIMAL | types::NEWDECIMAL => {
            let text = std::str::from_utf8(data).map_err(|_| WireError::Invalid {
                what: "a DECIMAL parameter is not text".into(),
            })?;
            decimal_value(text)
        }
        types::VARCHAR
        | types::VAR_STRING
        | types::STRING
        | types::JSON
        | types::ENUM
        | types::SET => match std::str::from_utf8(data) {
            Ok(text) => Ok(ScalarValue::Utf8(Some(text.to_string()))),
            // Bytes a driver sent as a string (Python `bytes` in some drivers).
            Err(_) => Ok(ScalarValue::Binary(Some(data.to_vec()))),
        },
        other => Err(WireError::Invalid {
            what: format!("parameter type 0x{other:02x} is not a MySQL type"),
        }),
    }
}

/// `-123.4500` as an exact decimal with the scale it was written with.
fn decimal_value(text: &str) -> Result<ScalarValue, WireError> {
    let invalid = || WireError::Invalid {
        what: format!("'{text}' is not a DECIMAL value"),
    };
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(invalid());
    }
    let all = format!("{whole}{fraction}");
    let all = all.trim_start_matches('0');
    let precision = all.len().max(fraction.len()).max(1);
    if precision > 38 {
        return Err(invalid());
    }
    let mut value: i128 = if all.is_empty() {
        0
    } else {
        all.parse().map_err(|_| invalid())?
    };
    if negative {
        value = -value;
    }
    Ok(ScalarValue::Decimal128(
        Some(value),
        precision as u8,
        fraction.len() as i8,
    ))
}

fn datetime_value(code: u8, body: &[u8]) -> Result<ScalarValue, WireError> {
    let invalid = || WireError::Invalid {
        what: "a DATE or DATETIME parameter has a wrong length".into(),
    };
    if body.is_empty() {
        return Ok(if code == types::DATE {
            ScalarValue::Date32(None)
        } else {
            ScalarValue::TimestampMicrosecond(None, None)
        });
    }
    if body.len() < 4 {
        return Err(invalid());
    }
    let year = i32::from(u16::from_le_bytes([body[0], body[1]]));
    let date = chrono::NaiveDate::from_ymd_opt(year, u32::from(body[2]), u32::from(body[3]))
        .ok_or_else(|| WireError::Invalid {
            what: format!("{year}-{}-{} is not a date", body[2], body[3]),
        })?;
    if code == types::DATE {
        let days = (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days();
        return Ok(ScalarValue::Date32(Some(days as i32)));
    }
    let (h, m, s) = match body.len() {
        4 => (0, 0, 0),
        7 | 11 => (body[4], body[5], body[6]),
        _ => return Err(invalid()),
    };
    let micros = if body.len() == 11 {
        u32::from_le_bytes([body[7], body[8], body[9], body[10]])
    } else {
        0
    };
    let time =
        chrono::NaiveTime::from_hms_micro_opt(u32::from(h), u32::from(m), u32::from(s), micros)
            .ok_or_else(|| WireError::Invalid {
                what: format!("{h}:{m}:{s}.{micros} is not a time of day"),
            })?;
    let stamp = date.and_time(time).and_utc().timestamp_micros();
    Ok(ScalarValue::TimestampMicrosecond(Some(stamp), None))
}

fn time_value(body: &[u8]) -> Result<ScalarValue, WireError> {
    if body.is_empty() {
        return Ok(ScalarValue::Time64Microsecond(Some(0)));
    }
    if body.len() != 8 && body.len() != 12 {
        return Err(WireError::Invalid {
            what: "a TIME parameter has a wrong length".into(),
        });
    }
    let negative = body[0] == 1;
    let days = i64::from(u32::from_le_bytes([body[1], body[2], body[3], body[4]]));
    if days > 34 {
        // MySQL's TIME ends at 838:59:59.
        return Err(WireError::Invalid {
            what: format!("a TIME parameter of {days} days is out of range"),
        });
    }
    let seconds =
        days * 86_400 + i64::from(body[5]) * 3600 + i64::from(body[6]) * 60 + i64::from(body[7]);
    let micros = if body.len() == 12 {
        i64::from(u32::from_le_bytes([body[8], body[9], body[10], body[11]]))
    } else {
        0
    };
    let total = seconds * 1_000_000 + micros;
    Ok(ScalarValue::Time64Microsecond(Some(if negative {
        -total
    } else {
        total
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(
            decimal_value("-123.4500").unwrap(),
            ScalarValue::Decimal128(Some(-1_234_500), 7, 4)
        );
        assert_eq!(
            decimal_value("0.05").unwrap(),
            ScalarValue::Decimal128(Some(5), 2, 2)
        );
        assert!(decimal_value("1e5").is_err());
        assert!(decimal_value("").is_err());
    }

    #[test]
    fn times_beyond_mysqls_range_are_errors_not_overflows() {
        let mut body = vec![0];
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        body.extend_from_slice(&[23, 59, 59]);
        body.extend_from_slice(&999_999u32.to_le_bytes());
        assert!(time_value(&body).is_err());
        let ok = [1, 2, 0, 0, 0, 3, 4, 5];
        assert_eq!(
            time_value(&ok).unwrap(),
            ScalarValue::Time64Microsecond(Some(-(2 * 86_400 + 3 * 3600 + 4 * 60 + 5) * 1_000_000))
        );
    }

    #[test]
    fn bound_values_decode_by_type() {
        // Two parameters: a BIGINT 42 and a VAR_STRING "hé"; the second NULL bit clear.
        let mut bytes = vec![0b00, 1, types::LONGLONG, 0, types::VAR_STRING, 0];
        bytes.extend_from_slice(&42i64.to_le_bytes());
        bytes.push(3);
        bytes.extend_from_slice("hé".as_bytes());
        let mut bound = Vec::new();
        let values =
            decode_values(&mut Decoder::new(&bytes), 2, &mut bound, &HashMap::new()).unwrap();
        assert_eq!(
            values,
            vec![
                ScalarValue::Int64(Some(42)),
                ScalarValue::Utf8(Some("hé".into()))
            ]
        );
        // Without types bound now or before: an error, not a guess.
        let mut unbound = Vec::new();
        assert!(
            decode_values(&mut Decoder::new(&[0, 0]), 1, &mut unbound, &HashMap::new()).is_err()
        );
        // A DATETIME with microseconds.
        let mut bytes = vec![0, 1, types::DATETIME, 0, 11];
        bytes.extend_from_slice(&2024u16.to_le_bytes());
        bytes.extend_from_slice(&[2, 29, 13, 14, 15]);
        bytes.extend_from_slice(&500_000u32.to_le_bytes());
        let values =
            decode_values(&mut Decoder::new(&bytes), 1, &mut bound, &HashMap::new()).unwrap();
        let ScalarValue::TimestampMicrosecond(Some(micros), None) = values[0] else {
            panic!("{values:?}")
        };
        assert_eq!(
            super::super::columns::format_datetime(micros, 6),
            "2024-02-29 13:14:15.500000"
        );
    }
}
