//! Statement handles and tickets of the Flight SQL endpoint. Both are
//! self-contained: a handle carries the statement's text, the database it
//! was prepared in and its bound parameters (Arrow IPC); a ticket carries a
//! handle, or, for a statement that ran when its FlightInfo was asked for
//! (DML, DDL, SHOW), its rows. So any instance behind a balancer can serve
//! any ticket, and nothing is kept per ticket on the server.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use datafusion::common::ScalarValue;

const MAGIC: &[u8; 4] = b"LWH2";

/// A statement as a Flight SQL client holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Handle {
    /// Random, so that two preparations of one text are told apart.
    pub id: u64,
    /// The statement, with `$n` placeholders.
    pub sql: String,
    /// The database unqualified names resolve in.
    pub database: String,
    /// The Flight SQL transaction the statement belongs to (empty: none):
    /// it runs in that transaction's session, on the server that began it.
    pub transaction: Vec<u8>,
    /// Bound parameters: an IPC stream, empty when none are bound.
    pub params: Vec<u8>,
    /// The rows of a statement that has run already (an IPC stream).
    pub rows: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HandleError {
    #[error("the handle or ticket was not issued by a lakewave server ({0})")]
    Foreign(&'static str),
    #[error("the handle's Arrow data cannot be read")]
    Arrow(#[from] ArrowError),
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], HandleError> {
    let (len, rest) = input
        .split_first_chunk::<4>()
        .ok_or(HandleError::Foreign("truncated"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(HandleError::Foreign("truncated"));
    }
    let (field, rest) = rest.split_at(len);
    *input = rest;
    Ok(field)
}

fn text(bytes: &[u8]) -> Result<String, HandleError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| HandleError::Foreign("not UTF-8"))
}

impl Handle {
    pub fn new(sql: String, database: String) -> Handle {
        Handle {
            id: random_id(),
            sql,
            database,
            transaction: Vec::new(),
            params: Vec::new(),
            rows: None,
        }
    }

    /// The same handle, in `transaction` (empty: none).
    pub fn in_transaction(self, transaction: &[u8]) -> Handle {
        Handle {
            transaction: transaction.to_vec(),
            ..self
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            32 + self.sql.len() + self.params.len() + self.rows.as_ref().map_or(0, Vec::len),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id.to_le_bytes());
        put(&mut out, self.sql.as_bytes());
        put(&mut out, self.database.as_bytes());
        put(&mut out, &self.transaction);
        put(&mut out, &self.params);
        match &self.rows {
            Some(rows) => {
                out.push(1);
                put(&mut out, rows);
            }
            None => out.push(0),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Handle, HandleError> {
        let mut input = bytes
            .strip_prefix(MAGIC)
            .ok_or(HandleError::Foreign("no lakewave header"))?;
        let (id, rest) = input
            .split_first_chunk::<8>()
            .ok_or(HandleError::Foreign("truncated"))?;
        let id = u64::from_le_bytes(*id);
        input = rest;
        let sql = text(take(&mut input)?)?;
        let database = text(take(&mut input)?)?;
        let transaction = take(&mut input)?.to_vec();
        let params = take(&mut input)?.to_vec();
        let rows = match input.split_first() {
            Some((0, rest)) => {
                input = rest;
                None
            }
            Some((1, rest)) => {
                input = rest;
                Some(take(&mut input)?.to_vec())
            }
            _ => return Err(HandleError::Foreign("truncated")),
        };
        if !input.is_empty() {
            return Err(HandleError::Foreign("trailing bytes"));
        }
        Ok(Handle {
            id,
            sql,
            database,
            transaction,
            params,
            rows,
        })
    }

    /// One list of values per row of the bound parameters (none bound: no
    /// rows).
    pub fn parameter_rows(&self) -> Result<Vec<Vec<ScalarValue>>, HandleError> {
        if self.params.is_empty() {
            return Ok(Vec::new());
        }
        let (_, batches) = from_ipc(&self.params)?;
        rows_of(&batches)
    }
}

/// The values of each row of parameter batches, in column order.
pub(crate) fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Vec<ScalarValue>>, HandleError> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|column| ScalarValue::try_from_array(column, row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            rows.push(values);
        }
    }
    Ok(rows)
}

pub(crate) fn to_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.into_inner()
}

pub(crate) fn from_ipc(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = Arc::clone(&reader.schema());
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

fn random_id() -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source");
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn handles_round_trip_and_foreign_bytes_are_refused() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap();
        let mut handle =
            Handle::new("SELECT $1, $2".into(), "shop".into()).in_transaction(b"txn-1");
        handle.params = to_ipc(&schema, &[batch]).unwrap();
        let decoded = Handle::decode(&handle.encode()).unwrap();
        assert_eq!(decoded, handle);
        let rows = decoded.parameter_rows().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], ScalarValue::Int64(Some(7)));
        assert_eq!(rows[1][1], ScalarValue::Utf8(Some("y".into())));
        assert_ne!(Handle::new("x".into(), "d".into()).id, handle.id);

        let bytes = handle.encode();
        for cut in 0..bytes.len() {
            assert!(Handle::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Handle::decode(b"not a handle").is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Handle::decode(&longer).is_err());
    }
}
