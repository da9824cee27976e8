//! Placement: which partition each row of a loaded table goes to. Rows with the
//! same key always land in the same partition (a hash of the key columns), so a
//! key lookup touches one partition and, later, joins on the key can be
//! co-located. Tables without a key are spread evenly in arrival order.

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::error::ArrowError;
use datafusion::common::hash_utils::create_hashes;
use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;

#[derive(Debug, Clone)]
pub enum Partitioner {
    /// Hash of the columns at these positions, modulo the partition count.
    Hash {
        columns: Vec<usize>,
        partitions: usize,
    },
    /// Slices of each batch dealt out in turn.
    RoundRobin { partitions: usize },
}

impl Partitioner {
    pub fn partitions(&self) -> usize {
        match self {
            Partitioner::Hash { partitions, .. } | Partitioner::RoundRobin { partitions } => {
                *partitions
            }
        }
    }

    /// The partition of every row, for hash placement.
    pub fn assign(&self, batch: &RecordBatch) -> Result<Vec<usize>, ArrowError> {
        match self {
            Partitioner::Hash {
                columns,
                partitions,
            } => {
                let arrays: Vec<_> = columns.iter().map(|&i| batch.column(i).clone()).collect();
                let mut hashes = vec![0u64; batch.num_rows()];
                create_hashes(
                    &arrays,
                    REPARTITION_RANDOM_STATE.random_state(),
                    &mut hashes,
                )
                .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
                Ok(hashes
                    .iter()
                    .map(|h| (*h % *partitions as u64) as usize)
                    .collect())
            }
            Partitioner::RoundRobin { .. } => Err(ArrowError::InvalidArgumentError(
                "round-robin placement assigns slices, not rows".into(),
            )),
        }
    }

    /// Split one batch into per-partition pieces. `sequence` is the batch's
    /// position in the load, so round-robin placement starts each batch at a
    /// different partition and stays balanced for small batches.
    pub fn split(
        &self,
        batch: &RecordBatch,
        sequence: usize,
    ) -> Result<Vec<(usize, RecordBatch)>, ArrowError> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(Vec::new());
        }
        match self {
            Partitioner::RoundRobin { partitions } => {
                let pieces = (*partitions).min(rows);
                let base = rows / pieces;
                let extra = rows % pieces;
                let mut offset = 0;
                Ok((0..pieces)
                    .map(|piece| {
                        let length = base + usize::from(piece < extra);
                        let slice = batch.slice(offset, length);
                        offset += length;
                        ((sequence + piece) % partitions, slice)
                    })
                    .collect())
            }
            Partitioner::Hash { partitions, .. } => {
                let assignment = self.assign(batch)?;
                let mut indices: Vec<Vec<u32>> = vec![Vec::new(); *partitions];
                for (row, partition) in assignment.into_iter().enumerate() {
                    indices[partition].push(row as u32);
                }
                indices
                    .into_iter()
                    .enumerate()
                    .filter(|(_, rows)| !rows.is_empty())
                    .map(|(partition, rows)| {
                        let rows = UInt32Array::from(rows);
                        Ok((partition, take_record_batch(batch, &rows)?))
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(values: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    #[test]
    fn equal_keys_land_in_the_same_partition() {
        let p = Partitioner::Hash {
            columns: vec![0],
            partitions: 4,
        };
        let first = p.assign(&batch((0..1000).collect())).unwrap();
        let again = p.assign(&batch((0..1000).rev().collect())).unwrap();
        for key in 0..1000usize {
            assert_eq!(first[key], again[999 - key]);
        }
        // Every partition gets a fair share of 1000 distinct keys.
        for partition in 0..4 {
            let n = first.iter().filter(|&&x| x == partition).count();
            assert!((150..350).contains(&n), "partition {partition} got {n}");
        }
        let pieces = p.split(&batch((0..1000).collect()), 0).unwrap();
        assert_eq!(
            pieces.iter().map(|(_, b)| b.num_rows()).sum::<usize>(),
            1000
        );
    }

    #[test]
    fn round_robin_is_balanced_and_keeps_every_row() {
        let p = Partitioner::RoundRobin { partitions: 3 };
        let mut per_partition = [0usize; 3];
        for sequence in 0..10 {
            for (partition, piece) in p.split(&batch((0..7).collect()), sequence).unwrap() {
                per_partition[partition] += piece.num_rows();
                assert_eq!(piece.column(0).null_count(), 0);
            }
        }
        assert_eq!(per_partition.iter().sum::<usize>(), 70);
        assert!(
            per_partition.iter().all(|&n| (20..=27).contains(&n)),
            "{per_partition:?}"
        );
    }
}
