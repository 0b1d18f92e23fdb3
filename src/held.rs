//! One budget of bytes held across all requests: request bodies held for inspection and
//! responses held for signing (`memory.held_bytes` in gateway.yaml). Each request takes its
//! share as it holds bytes and gives it back when they are released or the request ends, so
//! many slow clients cannot together pin more than the budget.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::gateway::DEFAULT_HELD_BYTES;

static USED: AtomicU64 = AtomicU64::new(0);
/// Config owns the default; until [`set_limit`] runs at start-up the budget is that default.
static LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_HELD_BYTES);

/// Sets the budget (at start-up, from `memory.held_bytes`).
pub fn set_limit(bytes: u64) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// Bytes held now, across requests.
pub fn used() -> u64 {
    USED.load(Ordering::Relaxed)
}

/// A request's share of the budget; given back when dropped.
#[derive(Debug, Default)]
pub struct Held {
    bytes: u64,
}

impl Held {
    /// Takes `n` more bytes; false, taking nothing, when that would exceed the budget.
    pub fn take(&mut self, n: u64) -> bool {
        let limit = LIMIT.load(Ordering::Relaxed);
        let ok = USED
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= limit)
            })
            .is_ok();
        if ok {
            self.bytes += n;
            crate::telemetry::metrics::held_bytes(used());
        }
        ok
    }

    /// Gives the whole share back (the bytes went upstream or to the client).
    pub fn release(&mut self) {
        if self.bytes > 0 {
            USED.fetch_sub(self.bytes, Ordering::AcqRel);
            self.bytes = 0;
            crate::telemetry::metrics::held_bytes(used());
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_bounded_together_and_given_back() {
        // The only test touching the global budget.
        set_limit(used() + 100);
        let mut a = Held::default();
        let mut b = Held::default();
        assert!(a.take(60));
        assert!(!b.take(50), "60 + 50 is over 100");
        assert!(b.take(40));
        assert!(!a.take(1));
        drop(a);
        assert!(b.take(50), "a's 60 came back");
        b.release();
        assert!(b.take(100));
        drop(b);
        set_limit(DEFAULT_HELD_BYTES);
    }
}
