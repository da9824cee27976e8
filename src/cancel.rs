//! Cooperative cancellation. The Python bindings set the flag when the user
//! presses Ctrl-C; long operations check it between units of work (a group of
//! batches while loading, a poll of the query future), stop, and leave nothing
//! half-done.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Resolves once the flag is set.
    pub async fn cancelled(&self) {
        while !self.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Run `future` unless cancelled first; `None` means it was cancelled (and the
    /// future dropped, which stops DataFusion's work).
    pub async fn run<F: Future>(&self, future: F) -> Option<F::Output> {
        tokio::select! {
            out = future => Some(out),
            _ = self.cancelled() => None,
        }
    }
}
