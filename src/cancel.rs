//! Cancelling calls from another thread: a token any thread may trigger,
//! observed by a WASM call wherever it is (guest code at the next epoch
//! tick, a blocked host call at once) and by a native call only before it
//! starts (native code cannot be interrupted safely).

use std::sync::atomic::{AtomicBool, Ordering};

/// Once triggered, stays triggered: every call given it is cancelled.
#[derive(Debug, Default)]
pub struct Cancel {
    triggered: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancel every call using this token (idempotent, any thread).
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once triggered.
    pub async fn triggered(&self) {
        loop {
            // Registered before the check, so a trigger in between is not missed.
            let notified = self.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// The error a cancelled guest is stopped with (in its epoch callback).
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the call was cancelled")
    }
}

impl std::error::Error for Cancelled {}
