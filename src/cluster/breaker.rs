//! The circuit breaker in front of Redis: after `failures` calls in a row fail (error or
//! deadline), it opens and calls are not made at all, so requests stop waiting out the
//! timeout; while open, one call every `probe` goes through, and its success closes it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

#[derive(Debug)]
pub struct Breaker {
    failures: AtomicU32,
    open: AtomicBool,
    /// Monotonic ms when the next probe may go.
    next_probe: AtomicU64,
    threshold: u32,
    probe_ms: u64,
}

/// A change of the breaker's state, for the caller to count and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    Opened,
    Closed,
}

impl Breaker {
    pub fn new(threshold: u32, probe_ms: u64) -> Breaker {
        Breaker {
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
            next_probe: AtomicU64::new(0),
            threshold: threshold.max(1),
            probe_ms: probe_ms.max(1),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether a call may go now: always while closed; while open, the first caller after each
    /// probe interval.
    pub fn allow(&self, now_ms: u64) -> bool {
        if !self.is_open() {
            return true;
        }
        let next = self.next_probe.load(Ordering::Relaxed);
        now_ms >= next
            && self
                .next_probe
                .compare_exchange(next, now_ms + self.probe_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    pub fn success(&self) -> Option<Switch> {
        self.failures.store(0, Ordering::Relaxed);
        self.open.swap(false, Ordering::Relaxed).then_some(Switch::Closed)
    }

    pub fn failure(&self, now_ms: u64) -> Option<Switch> {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold && !self.open.load(Ordering::Relaxed) {
            self.next_probe.store(now_ms + self.probe_ms, Ordering::Relaxed);
            return (!self.open.swap(true, Ordering::Relaxed)).then_some(Switch::Opened);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_and_closes_on_success() {
        let b = Breaker::new(3, 250);
        assert!(b.allow(0));
        assert_eq!(b.failure(10), None);
        assert_eq!(b.failure(11), None);
        // A success in between starts the count again.
        assert_eq!(b.success(), None);
        assert_eq!(b.failure(12), None);
        assert_eq!(b.failure(13), None);
        assert_eq!(b.failure(14), Some(Switch::Opened));
        assert!(b.is_open());
        assert_eq!(b.failure(15), None, "already open");
        // No calls until the probe time; then exactly one.
        assert!(!b.allow(100) && !b.allow(263));
        assert!(b.allow(264));
        assert!(!b.allow(264) && !b.allow(400));
        // The probe failed: the next one comes a probe interval later.
        assert_eq!(b.failure(300), None);
        assert!(b.allow(514));
        assert_eq!(b.success(), Some(Switch::Closed));
        assert!(!b.is_open() && b.allow(515) && b.allow(515));
    }
}
