//! The heartbeat timer: one pending timeout at most, cancelled when replaced or dropped.

use gloo_timers::callback::Timeout;

/// Holds the pending timeout, if any.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    pending: Option<Timeout>,
}

impl Schedule {
    /// Calls `f` after `delay_ms`, cancelling whatever was pending.
    pub(crate) fn arm(&mut self, delay_ms: u32, f: impl FnOnce() + 'static) {
        self.pending = Some(Timeout::new(delay_ms, f));
    }

    /// Cancels what is pending; returns the timeout so that the caller can drop it once no
    /// borrow is held (dropping a running callback's timeout is safe either way).
    #[must_use]
    pub(crate) fn take(&mut self) -> Option<Timeout> {
        self.pending.take()
    }
}
