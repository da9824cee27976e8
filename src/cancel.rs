//! Cooperative cancellation. A [`Cancel`] is set by whoever may stop a piece
//! of work: Ctrl-C in Python, `KILL QUERY`, a client that went away. Long
//! operations check it between units of work (a group of batches while
//! loading), async work races it ([`Cancel::run`], woken at once, not by
//! polling a timer that a busy runtime may not fire), and blocking calls
//! that cannot check (a SQLite scan, a lock wait) register a hook that
//! interrupts them. Cancelled work stops and leaves nothing half-done.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
    hooks: Mutex<Vec<(u64, Hook)>>,
    next_hook: AtomicU64,
}

#[derive(Clone, Default)]
pub struct Cancel(Arc<Inner>);

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cancel({})", self.is_cancelled())
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop the work: set the flag, wake every waiter, run every hook.
    pub fn cancel(&self) {
        if self.0.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.0.notify.notify_waiters();
        for (_, hook) in self.0.hooks.lock().iter() {
            hook();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// Resolves once the flag is set.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Run `future` unless cancelled first; `None` means it was cancelled (and the
    /// future dropped, which stops DataFusion's work).
    pub async fn run<F: Future>(&self, future: F) -> Option<F::Output> {
        if self.is_cancelled() {
            return None;
        }
        tokio::select! {
            biased;
            _ = self.cancelled() => None,
            out = future => Some(out),
        }
    }

    /// Call `hook` when this is cancelled (at once if it already is), until
    /// the returned guard is dropped.
    pub fn on_cancel(&self, hook: impl Fn() + Send + Sync + 'static) -> HookGuard {
        let id = self.0.next_hook.fetch_add(1, Ordering::Relaxed);
        self.0.hooks.lock().push((id, Box::new(hook)));
        if self.is_cancelled() {
            for (hook_id, hook) in self.0.hooks.lock().iter() {
                if *hook_id == id {
                    hook();
                }
            }
        }
        HookGuard {
            cancel: self.clone(),
            id,
        }
    }

    /// Cancel `other` whenever this is cancelled (while the guard lives).
    pub fn forward_to(&self, other: &Cancel) -> HookGuard {
        let other = other.clone();
        self.on_cancel(move || other.cancel())
    }
}

/// Removes its hook when dropped.
pub struct HookGuard {
    cancel: Cancel,
    id: u64,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        self.cancel.0.hooks.lock().retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn a_busy_runtime_still_sees_a_cancel() {
        // Every worker spins without yielding: a timer-based check would
        // never fire; the notification wakes the waiting thread directly.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = Arc::clone(&stop);
        runtime.spawn(async move {
            while !spinning.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        });
        let cancel = Cancel::new();
        let remote = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            remote.cancel();
        });
        let outcome = runtime.block_on(cancel.run(std::future::pending::<()>()));
        assert!(outcome.is_none());
        stop.store(true, Ordering::Release);
    }

    #[test]
    fn hooks_run_once_and_go_with_their_guard() {
        let cancel = Cancel::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let guard = cancel.on_cancel(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let dropped = Arc::clone(&calls);
        drop(cancel.on_cancel(move || {
            dropped.fetch_add(100, Ordering::SeqCst);
        }));
        cancel.cancel();
        cancel.cancel();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(guard);
        let late = Arc::clone(&calls);
        let _late = cancel.on_cancel(move || {
            late.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(calls.load(Ordering::SeqCst), 11);
    }
}
