//! Immutable chunks: a record batch of at most 64Ki rows in the table's physical
//! encoding, with a zone map (min, max, null count) per column computed before
//! encoding, so pruning compares logical values.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::cast;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;

use super::memory::Reservation;

/// How one column is held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnEncoding {
    /// The logical Arrow array as is.
    Plain,
    /// Strings as a per-chunk dictionary with 16-bit keys: a chunk never has more
    /// than 65,536 rows, so its keys always fit.
    Dictionary,
}

impl ColumnEncoding {
    pub fn is_dictionary(&self) -> bool {
        matches!(self, ColumnEncoding::Dictionary)
    }

    pub fn physical_type(&self, logical: &DataType) -> DataType {
        match self {
            ColumnEncoding::Plain => logical.clone(),
            ColumnEncoding::Dictionary => {
                DataType::Dictionary(Box::new(DataType::UInt16), Box::new(logical.clone()))
            }
        }
    }
}

/// The physical schema for a logical schema and per-column encodings.
pub fn physical_schema(logical: &Schema, encodings: &[ColumnEncoding]) -> SchemaRef {
    let fields: Vec<Field> = logical
        .fields()
        .iter()
        .zip(encodings)
        .map(|(field, encoding)| {
            field
                .as_ref()
                .clone()
                .with_data_type(encoding.physical_type(field.data_type()))
        })
        .collect();
    Arc::new(Schema::new_with_metadata(
        fields,
        logical.metadata().clone(),
    ))
}

/// Per-column statistics of one chunk. `min`/`max` are `None` when the column is
/// all NULL or its type has no order that pruning can use (nested types).
#[derive(Debug, Clone)]
pub struct ZoneMap {
    pub min: Option<ScalarValue>,
    pub max: Option<ScalarValue>,
    pub null_count: u64,
}

impl ZoneMap {
    fn of(array: &ArrayRef) -> Self {
        let null_count = array.null_count() as u64;
        if null_count as usize == array.len() || !has_order(array.data_type()) {
            return ZoneMap {
                min: None,
                max: None,
                null_count,
            };
        }
        let min = MinAccumulator::try_new(array.data_type())
            .and_then(|mut acc| {
                acc.update_batch(std::slice::from_ref(array))?;
                acc.evaluate()
            })
            .ok()
            .filter(|v| !v.is_null());
        let max = MaxAccumulator::try_new(array.data_type())
            .and_then(|mut acc| {
                acc.update_batch(std::slice::from_ref(array))?;
                acc.evaluate()
            })
            .ok()
            .filter(|v| !v.is_null());
        ZoneMap {
            min,
            max,
            null_count,
        }
    }
}

fn has_order(data_type: &DataType) -> bool {
    !(data_type.is_nested() || matches!(data_type, DataType::Null))
}

/// An immutable piece of one partition.
#[derive(Debug)]
pub struct Chunk {
    pub batch: RecordBatch,
    /// Computed over every row of `batch`, deleted or not, so they stay valid
    /// (if loose) bounds as rows are deleted.
    pub zone_maps: Vec<ZoneMap>,
    /// Bytes of memory this chunk's buffers occupy.
    pub bytes: u64,
    /// Rows still visible (`true`) when some were deleted by propagated
    /// changes; `None` when every row is live.
    pub live: Option<BooleanBuffer>,
    /// The node memory held for `batch`; shared by every version of the chunk
    /// (a new delete mask reuses the batch) and given back with the last one.
    pub(super) memory: Option<Arc<Reservation>>,
    /// The file every row came from, for tables loaded from files (external
    /// tables): a refresh drops the chunks of a removed or rewritten file and
    /// keeps the rest. `None` for rows with no single source file.
    pub source: Option<Arc<str>>,
}

impl Chunk {
    /// Encode a logical batch (already compact: its buffers hold only its rows).
    pub fn build(
        logical: RecordBatch,
        encodings: &[ColumnEncoding],
        physical: &SchemaRef,
    ) -> Result<Chunk, ArrowError> {
        let zone_maps = logical.columns().iter().map(ZoneMap::of).collect();
        let columns = logical
            .columns()
            .iter()
            .zip(encodings)
            .zip(physical.fields())
            .map(|((column, encoding), field)| match encoding {
                ColumnEncoding::Plain => Ok(Arc::clone(column)),
                ColumnEncoding::Dictionary => cast(column, field.data_type()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(Arc::clone(physical), columns)?;
        let bytes = batch.get_array_memory_size() as u64;
        Ok(Chunk {
            batch,
            zone_maps,
            bytes,
            live: None,
            memory: None,
            source: None,
        })
    }

    /// Visible rows.
    pub fn rows(&self) -> usize {
        match &self.live {
            Some(live) => live.count_set_bits(),
            None => self.batch.num_rows(),
        }
    }

    /// Rows held, visible or deleted (what the zone maps describe).
    pub fn stored_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The same rows with a new delete mask.
    pub fn with_live(&self, live: BooleanBuffer) -> Chunk {
        Chunk {
            batch: self.batch.clone(),
            zone_maps: self.zone_maps.clone(),
            bytes: self.bytes,
            live: Some(live),
            memory: self.memory.clone(),
            source: self.source.clone(),
        }
    }

    /// The same chunk, recorded as holding rows of `source` only.
    pub fn with_source(mut self, source: Arc<str>) -> Chunk {
        self.source = Some(source);
        self
    }

    /// Visible rows of `batch.slice(offset, length)`, projected.
    pub fn live_slice_projected(
        &self,
        offset: usize,
        length: usize,
        projection: Option<&[usize]>,
    ) -> Result<RecordBatch, ArrowError> {
        let slice = self.batch.slice(offset, length);
        let slice = match projection {
            Some(indices) => slice.project(indices)?,
            None => slice,
        };
        match &self.live {
            None => Ok(slice),
            Some(live) => {
                let mask = BooleanArray::new(live.slice(offset, length), None);
                filter_record_batch(&slice, &mask)
            }
        }
    }
}

/// Decide encodings from a sample: a string column whose sample has at most
/// `max_ratio` distinct values per row is dictionary-encoded.
pub fn choose_encodings(
    schema: &Schema,
    sample: &[RecordBatch],
    max_ratio: f64,
) -> Vec<ColumnEncoding> {
    let sample_rows: usize = sample.iter().map(|b| b.num_rows()).sum();
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            if field.data_type() != &DataType::Utf8 || sample_rows == 0 {
                return ColumnEncoding::Plain;
            }
            let mut distinct = ahash::AHashSet::new();
            for batch in sample {
                let strings = batch
                    .column(index)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("normalised string columns are Utf8");
                distinct.extend(strings.iter().flatten());
            }
            if (distinct.len() as f64) <= max_ratio * sample_rows as f64 {
                ColumnEncoding::Dictionary
            } else {
                ColumnEncoding::Plain
            }
        })
        .collect()
}

/// The logical type lakewave stores for a source type: every string flavour is
/// held as Utf8 and every binary flavour as Binary (each chunk is far below 2 GiB,
/// and one string type keeps encodings and comparisons simple); dictionaries
/// from the source are decoded, since lakewave chooses its own.
pub fn logical_type(source: &DataType) -> DataType {
    match source {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => logical_type(value),
        other => without_views(other),
    }
}

/// Nested types with their view strings and binaries as plain ones, so that
/// sources that read the same column as views or not store the same type.
fn without_views(data_type: &DataType) -> DataType {
    let field = |f: &arrow::datatypes::FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(without_views(f.data_type())),
        )
    };
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn zone_maps_ignore_nulls_and_encoding() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("flag", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(5), None, Some(-3), Some(9)])),
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("a"),
                    None,
                    Some("b"),
                ])),
            ],
        )
        .unwrap();
        let encodings = choose_encodings(&schema, std::slice::from_ref(&batch), 0.75);
        assert_eq!(
            encodings,
            vec![ColumnEncoding::Plain, ColumnEncoding::Dictionary]
        );
        let physical = physical_schema(&schema, &encodings);
        let chunk = Chunk::build(batch, &encodings, &physical).unwrap();
        assert_eq!(chunk.zone_maps[0].min, Some(ScalarValue::Int64(Some(-3))));
        assert_eq!(chunk.zone_maps[0].max, Some(ScalarValue::Int64(Some(9))));
        assert_eq!(chunk.zone_maps[0].null_count, 1);
        assert_eq!(
            chunk.zone_maps[1].min,
            Some(ScalarValue::Utf8(Some("a".into())))
        );
        assert!(matches!(
            chunk.batch.column(1).data_type(),
            DataType::Dictionary(_, _)
        ));
        assert!(chunk.bytes > 0);
    }

    #[test]
    fn all_null_columns_have_no_bounds() {
        let array: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        let zone = ZoneMap::of(&array);
        assert!(zone.min.is_none() && zone.max.is_none());
        assert_eq!(zone.null_count, 2);
    }
}
