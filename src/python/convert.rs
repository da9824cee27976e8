//! Python values to and from Arrow scalars: rows for `fetchall`, parameters for
//! placeholders. Temporal and decimal values go through Python's `datetime` and
//! `decimal` classes (the limited API has no C-level datetime access).

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

static DATETIME: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static DECIMAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn datetime(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(DATETIME
        .get_or_try_init(py, || py.import("datetime").map(Bound::unbind))?
        .bind(py))
}

fn decimal_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(DECIMAL
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("decimal")?.getattr("Decimal")?.unbind())
        })?
        .bind(py))
}

/// Every row of the batches as tuples.
pub fn rows_to_python<'py>(
    py: Python<'py>,
    batches: &[RecordBatch],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|column| cell_to_python(py, column.as_ref(), row))
                .collect::<PyResult<Vec<_>>>()?;
            list.append(PyTuple::new(py, values)?)?;
        }
    }
    Ok(list)
}

fn cell_to_python<'py>(
    py: Python<'py>,
    array: &dyn Array,
    row: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let scalar = ScalarValue::try_from_array(array, row)
        .map_err(|e| super::errors::InternalError::new_err(e.to_string()))?;
    scalar_to_python(py, &scalar)
}

pub fn scalar_to_python<'py>(py: Python<'py>, value: &ScalarValue) -> PyResult<Bound<'py, PyAny>> {
    use ScalarValue as S;
    if value.is_null() {
        return Ok(py.None().into_bound(py));
    }
    Ok(match value {
        S::Boolean(Some(v)) => PyBool::new(py, *v).to_owned().into_any(),
        S::Int8(Some(v)) => v.into_pyobject(py)?.into_any(),
        S::Int16(Some(v)) => v.into_pyobject(py)?.into_any(),
        S::Int32(Some(v)) => v.into_pyobject(py)?.into_any(),
        S::Int64(Some(v)) => v.into_pyobject(py)?.into_any(),
        S::UInt8(Some(v)) => v.into_pyobject(py)?.into_any(),
        S::UInt16(Some(v)) => v.into_pyobject(py)?.into_any(),
        S::UInt32(Some(v)) => v.into_pyobject(py)?.into_any(),
        S::UInt64(Some(v)) => v.into_pyobject(py)?.into_any(),
        S::Float16(Some(v)) => PyFloat::new(py, f64::from(*v)).into_any(),
        S::Float32(Some(v)) => PyFloat::new(py, f64::from(*v)).into_any(),
        S::Float64(Some(v)) => PyFloat::new(py, *v).into_any(),
        S::Utf8(Some(v)) | S::LargeUtf8(Some(v)) | S::Utf8View(Some(v)) => {
            PyString::new(py, v).into_any()
        }
        S::Binary(Some(v))
        | S::LargeBinary(Some(v))
        | S::BinaryView(Some(v))
        | S::FixedSizeBinary(_, Some(v)) => PyBytes::new(py, v).into_any(),
        S::Decimal32(..) | S::Decimal64(..) | S::Decimal128(..) | S::Decimal256(..) => {
            decimal_class(py)?.call1((value.to_string(),))?
        }
        S::Date32(Some(days)) => date_from_days(py, i64::from(*days))?,
        S::Date64(Some(ms)) => date_from_days(py, ms.div_euclid(86_400_000))?,
        S::TimestampSecond(Some(v), tz) => timestamp(py, i128::from(*v) * 1_000_000, tz)?,
        S::TimestampMillisecond(Some(v), tz) => timestamp(py, i128::from(*v) * 1_000, tz)?,
        S::TimestampMicrosecond(Some(v), tz) => timestamp(py, i128::from(*v), tz)?,
        S::TimestampNanosecond(Some(v), tz) => timestamp(py, i128::from(*v) / 1_000, tz)?,
        S::Time32Second(Some(v)) => time_of_day(py, i64::from(*v) * 1_000_000)?,
        S::Time32Millisecond(Some(v)) => time_of_day(py, i64::from(*v) * 1_000)?,
        S::Time64Microsecond(Some(v)) => time_of_day(py, *v)?,
        S::Time64Nanosecond(Some(v)) => time_of_day(py, v / 1_000)?,
        S::DurationSecond(Some(v)) => timedelta(py, i128::from(*v) * 1_000_000)?,
        S::DurationMillisecond(Some(v)) => timedelta(py, i128::from(*v) * 1_000)?,
        S::DurationMicrosecond(Some(v)) => timedelta(py, i128::from(*v))?,
        S::DurationNanosecond(Some(v)) => timedelta(py, i128::from(*v) / 1_000)?,
        S::List(array) => list_to_python(py, array.as_ref())?,
        S::LargeList(array) => list_to_python(py, array.as_ref())?,
        S::FixedSizeList(array) => list_to_python(py, array.as_ref())?,
        S::Struct(array) => {
            let dict = PyDict::new(py);
            for (field, column) in array.fields().iter().zip(array.columns()) {
                dict.set_item(field.name(), cell_to_python(py, column.as_ref(), 0)?)?;
            }
            dict.into_any()
        }
        S::Dictionary(_, inner) => scalar_to_python(py, inner)?,
        // Intervals, maps, unions: their text form is unambiguous.
        other => PyString::new(py, &other.to_string()).into_any(),
    })
}

fn list_to_python<'py>(py: Python<'py>, list: &dyn Array) -> PyResult<Bound<'py, PyAny>> {
    // A list scalar is a one-row list array; its single row holds the values.
    let values = match list.data_type() {
        DataType::List(_) => list
            .as_any()
            .downcast_ref::<arrow::array::ListArray>()
            .map(|l| l.value(0)),
        DataType::LargeList(_) => list
            .as_any()
            .downcast_ref::<arrow::array::LargeListArray>()
            .map(|l| l.value(0)),
        DataType::FixedSizeList(_, _) => list
            .as_any()
            .downcast_ref::<arrow::array::FixedSizeListArray>()
            .map(|l| l.value(0)),
        _ => None,
    };
    let out = PyList::empty(py);
    if let Some(values) = values {
        for i in 0..values.len() {
            out.append(cell_to_python(py, values.as_ref(), i)?)?;
        }
    }
    Ok(out.into_any())
}

fn date_from_days<'py>(py: Python<'py>, days: i64) -> PyResult<Bound<'py, PyAny>> {
    // 719_163 is the proleptic ordinal of 1970-01-01.
    datetime(py)?
        .getattr("date")?
        .call_method1("fromordinal", (days + 719_163,))
}

fn timedelta<'py>(py: Python<'py>, micros: i128) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("microseconds", micros as i64)?;
    datetime(py)?.getattr("timedelta")?.call((), Some(&kwargs))
}

fn timestamp<'py>(
    py: Python<'py>,
    micros: i128,
    tz: &Option<Arc<str>>,
) -> PyResult<Bound<'py, PyAny>> {
    let module = datetime(py)?;
    let epoch = module.getattr("datetime")?.call1((1970, 1, 1))?;
    let naive = epoch.call_method1("__add__", (timedelta(py, micros)?,))?;
    match tz {
        None => Ok(naive),
        Some(zone) => {
            let utc = module.getattr("timezone")?.getattr("utc")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("tzinfo", utc)?;
            let aware = naive.call_method("replace", (), Some(&kwargs))?;
            if zone.as_ref() == "UTC" || zone.as_ref() == "+00:00" {
                return Ok(aware);
            }
            match py
                .import("zoneinfo")
                .and_then(|z| z.getattr("ZoneInfo")?.call1((zone.as_ref(),)))
            {
                Ok(info) => aware.call_method1("astimezone", (info,)),
                Err(_) => Ok(aware),
            }
        }
    }
}

fn time_of_day<'py>(py: Python<'py>, micros: i64) -> PyResult<Bound<'py, PyAny>> {
    let seconds = micros.div_euclid(1_000_000);
    datetime(py)?.getattr("time")?.call1((
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60,
        micros.rem_euclid(1_000_000),
    ))
}

/// A placeholder value from Python.
pub fn python_to_scalar(value: &Bound<'_, PyAny>) -> PyResult<ScalarValue> {
    let py = value.py();
    if value.is_none() {
        return Ok(ScalarValue::Null);
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(ScalarValue::Boolean(Some(b.is_true())));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(ScalarValue::Int64(Some(value.extract()?)));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(ScalarValue::Float64(Some(value.extract()?)));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(ScalarValue::Utf8(Some(s.to_str()?.to_string())));
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(ScalarValue::Binary(Some(b.as_bytes().to_vec())));
    }
    if value.is_instance(decimal_class(py)?)? {
        let text: String = value.str()?.extract()?;
        return ScalarValue::try_from_string(text.clone(), &decimal_type(&text)).map_err(|e| {
            super::errors::DataError::new_err(format!("cannot bind {text} as a decimal: {e}"))
        });
    }
    let module = datetime(py)?;
    if value.is_instance(&module.getattr("datetime")?)? {
        let tz = value.getattr("tzinfo")?;
        let epoch = if tz.is_none() {
            module.getattr("datetime")?.call1((1970, 1, 1))?
        } else {
            let kwargs = PyDict::new(py);
            kwargs.set_item("tzinfo", module.getattr("timezone")?.getattr("utc")?)?;
            module
                .getattr("datetime")?
                .call((1970, 1, 1), Some(&kwargs))?
        };
        let delta = value.call_method1("__sub__", (epoch,))?;
        let micros = timedelta_micros(&delta)?;
        let zone = (!tz.is_none()).then(|| Arc::<str>::from("UTC"));
        return Ok(ScalarValue::TimestampMicrosecond(Some(micros), zone));
    }
    if value.is_instance(&module.getattr("date")?)? {
        let ordinal: i64 = value.call_method0("toordinal")?.extract()?;
        return Ok(ScalarValue::Date32(Some((ordinal - 719_163) as i32)));
    }
    Err(super::errors::InterfaceError::new_err(format!(
        "cannot bind a parameter of type {}",
        value.get_type().name()?
    )))
}

fn timedelta_micros(delta: &Bound<'_, PyAny>) -> PyResult<i64> {
    let days: i64 = delta.getattr("days")?.extract()?;
    let seconds: i64 = delta.getattr("seconds")?.extract()?;
    let micros: i64 = delta.getattr("microseconds")?.extract()?;
    Ok((days * 86_400 + seconds) * 1_000_000 + micros)
}

fn decimal_type(text: &str) -> DataType {
    let digits = text.chars().filter(|c| c.is_ascii_digit()).count().max(1);
    let scale = text.split_once('.').map(|(_, f)| f.len()).unwrap_or(0);
    DataType::Decimal128(digits.clamp(scale.max(1), 38) as u8, scale as i8)
}
