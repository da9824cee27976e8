//! Zone maps as DataFusion pruning statistics: each chunk is a "container", so a
//! `PruningPredicate` built from the query's filters says which chunks cannot
//! hold a matching row.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};

use crate::store::{Chunk, ColumnEncoding};

pub struct ChunkStatistics<'a> {
    pub chunks: Vec<&'a Arc<Chunk>>,
    pub schema: SchemaRef,
    pub encodings: &'a [ColumnEncoding],
}

impl ChunkStatistics<'_> {
    fn bound_values(
        &self,
        column: &Column,
        pick: impl Fn(&Chunk, usize) -> Option<ScalarValue>,
    ) -> Option<ArrayRef> {
        let index = self.schema.index_of(column.name()).ok()?;
        let physical = self.schema.field(index).data_type();
        let logical = match physical {
            DataType::Dictionary(_, value) => value.as_ref().clone(),
            other => other.clone(),
        };
        let null = ScalarValue::try_from(&logical).ok()?;
        let values = self
            .chunks
            .iter()
            .map(|chunk| pick(chunk, index).unwrap_or_else(|| null.clone()));
        let array = ScalarValue::iter_to_array(values).ok()?;
        if self.encodings[index] == ColumnEncoding::Dictionary {
            cast(&array, physical).ok()
        } else {
            Some(array)
        }
    }
}

impl PruningStatistics for ChunkStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound_values(column, |chunk, i| chunk.zone_maps[i].min.clone())
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound_values(column, |chunk, i| chunk.zone_maps[i].max.clone())
    }

    fn num_containers(&self) -> usize {
        self.chunks.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let index = self.schema.index_of(column.name()).ok()?;
        Some(Arc::new(UInt64Array::from_iter_values(
            self.chunks.iter().map(|c| c.zone_maps[index].null_count),
        )))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(UInt64Array::from_iter_values(
            self.chunks.iter().map(|c| c.stored_rows() as u64),
        )))
    }

    #[allow(clippy::mutable_key_type)]
    fn contained(
        &self,
        _column: &Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<BooleanArray> {
        None
    }
}
