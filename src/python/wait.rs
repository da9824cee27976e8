//! Waiting on engine work with the GIL released and Ctrl-C honoured: the work
//! runs on a helper thread while this thread sleeps without the GIL, waking
//! every 100 ms to let Python check for signals. On KeyboardInterrupt the work
//! is cancelled, awaited (it stops at its next check and publishes nothing) and
//! the KeyboardInterrupt is raised.

use std::sync::mpsc;
use std::time::Duration;

use pyo3::prelude::*;

use super::errors::to_pyerr;
use crate::cancel::Cancel;
use crate::error::{Error, Result};

pub fn wait<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&Cancel) -> Result<T> + Send,
{
    let cancel = Cancel::new();
    let (sender, receiver) = mpsc::channel();
    // Receivers are not Sync; the lock lets the GIL-free closure borrow it.
    let receiver = parking_lot::Mutex::new(receiver);
    std::thread::scope(|scope| {
        let worker_cancel = cancel.clone();
        scope.spawn(move || {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&worker_cancel)))
                    .unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "unknown panic".to_string());
                        Err(Error::Panic {
                            what: "a lakewave call".to_string(),
                            message,
                        })
                    });
            let _ = sender.send(outcome);
        });
        loop {
            match py.detach(|| receiver.lock().recv_timeout(Duration::from_millis(100))) {
                Ok(outcome) => return outcome.map_err(to_pyerr),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(interrupt) = py.check_signals() {
                        cancel.cancel();
                        let _ = py.detach(|| receiver.lock().recv());
                        return Err(interrupt);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(super::errors::InternalError::new_err(
                        "lakewave worker thread stopped without an answer",
                    ));
                }
            }
        }
    })
}
