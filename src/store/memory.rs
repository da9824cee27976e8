//! Per-node memory accounting. Every byte a loaded table holds is reserved on the
//! node that owns it; a reservation is released when the table snapshot holding
//! it is dropped, so unloading or replacing a table frees its memory as soon as
//! the last query reading the old snapshot finishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One node's memory budget and what is in use.
#[derive(Debug)]
pub struct NodeMemory {
    pub id: usize,
    pub budget: u64,
    used: AtomicU64,
}

impl NodeMemory {
    pub fn new(id: usize, budget: u64) -> Arc<Self> {
        Arc::new(NodeMemory {
            id,
            budget,
            used: AtomicU64::new(0),
        })
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn free(&self) -> u64 {
        self.budget.saturating_sub(self.used())
    }

    /// An empty reservation on this node, to grow as chunks are built.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            node: Arc::clone(self),
            bytes: 0,
        }
    }

    /// Take `bytes` if they fit under the budget; `Err(free)` otherwise. Lock-free
    /// so that partitions loading in parallel on one node never overshoot.
    fn try_take(&self, bytes: u64) -> Result<(), u64> {
        let mut current = self.used.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(bytes);
            if next > self.budget {
                return Err(self.budget.saturating_sub(current));
            }
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes held on one node; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    node: Arc<NodeMemory>,
    bytes: u64,
}

impl Reservation {
    pub fn node(&self) -> &Arc<NodeMemory> {
        &self.node
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Grow by `bytes`, or return the node's free bytes when they do not fit.
    pub fn try_grow(&mut self, bytes: u64) -> Result<(), u64> {
        self.node.try_take(bytes)?;
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.node.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_respect_the_budget_and_free_on_drop() {
        let node = NodeMemory::new(0, 100);
        let mut a = node.reservation();
        a.try_grow(60).unwrap();
        let mut b = node.reservation();
        assert_eq!(b.try_grow(50), Err(40));
        b.try_grow(40).unwrap();
        assert_eq!(node.used(), 100);
        drop(a);
        assert_eq!(node.used(), 40);
        drop(b);
        assert_eq!(node.used(), 0);
    }

    #[test]
    fn parallel_growth_never_overshoots() {
        let node = NodeMemory::new(0, 10_000);
        let held: Vec<Reservation> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let node = Arc::clone(&node);
                    scope.spawn(move || {
                        let mut r = node.reservation();
                        while r.try_grow(7).is_ok() {}
                        r
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total: u64 = held.iter().map(|r| r.bytes()).sum();
        assert!(total <= 10_000 && total > 10_000 - 7 * 8);
        assert_eq!(node.used(), total);
    }
}
