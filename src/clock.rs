//! Every reading of the clock is here: the gateway's time decisions (rate limits, API-key
//! expiry, calendar quotas, peer ejection, alert timing) and its measurements (latencies) ask
//! this module, never `Instant::now` or `SystemTime::now` themselves (a unit test below checks
//! the sources for that).
//!
//! The request path reads a [`Clock`] once, when the request starts ([`Clock::now`]: one
//! virtual call, no allocation), and every filter decides on that one reading, carried in
//! [`crate::filters::request::RequestInfo::now`]. The proxy holds [`SystemClock`]; tests build
//! their requests from a [`ManualClock`] and move it forward by hand. Work off the request path
//! (background loops, logging at the end of a request, key maintenance) reads the system clock
//! through the free functions here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The process's monotonic origin: what [`Now::mono_ns`] and [`mono_ms`] count from.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// One reading of a clock: what a request knows of the time.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic: durations and rate limiting.
    pub instant: Instant,
    /// Unix seconds (UTC): expiry and calendar quotas.
    pub unix_secs: u64,
}

impl Now {
    /// Monotonic nanoseconds since the process's origin (the rate limiters' time).
    pub fn mono_ns(&self) -> u64 {
        self.instant.saturating_duration_since(origin()).as_nanos() as u64
    }
}

/// A source of time. The request path calls [`Clock::now`] once per request.
pub trait Clock: Send + Sync {
    fn now(&self) -> Now;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Now {
        Now {
            instant: instant(),
            unix_secs: unix_now(),
        }
    }
}

/// A clock that moves only when told: [`advance`](Self::advance) moves both readings,
/// [`set_unix`](Self::set_unix) only the wall clock (as NTP may), never the monotonic one.
/// Its monotonic reading starts at the process's origin, so [`Now::mono_ns`] is exactly the
/// time advanced.
#[derive(Debug)]
pub struct ManualClock {
    mono_ns: AtomicU64,
    unix_ns: AtomicU64,
}

impl ManualClock {
    /// Stopped at `unix_secs` (UTC), monotonic time zero.
    pub fn at_unix(unix_secs: u64) -> ManualClock {
        ManualClock {
            mono_ns: AtomicU64::new(0),
            unix_ns: AtomicU64::new(unix_secs.saturating_mul(1_000_000_000)),
        }
    }

    pub fn advance(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        self.mono_ns.fetch_add(ns, Relaxed);
        self.unix_ns.fetch_add(ns, Relaxed);
    }

    pub fn set_unix(&self, unix_secs: u64) {
        self.unix_ns.store(unix_secs.saturating_mul(1_000_000_000), Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Now {
        Now {
            instant: origin() + Duration::from_nanos(self.mono_ns.load(Relaxed)),
            unix_secs: self.unix_ns.load(Relaxed) / 1_000_000_000,
        }
    }
}

/// The monotonic clock, for measuring durations.
#[inline]
pub fn instant() -> Instant {
    Instant::now()
}

/// The wall clock (access-log timestamps, key creation times).
pub fn system_time() -> SystemTime {
    SystemTime::now()
}

/// Unix seconds (UTC).
pub fn unix_now() -> u64 {
    system_time()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix milliseconds: what alert times are.
pub fn unix_ms() -> u64 {
    system_time()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds on the process's monotonic clock (peer ejection and health).
pub fn mono_ms() -> u64 {
    instant().saturating_duration_since(origin()).as_millis() as u64
}

/// Whole seconds of `d`, rounded up: how long until a limit resets, as the headers say it.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_unix(1_800_000_000);
        let a = c.now();
        assert_eq!((a.mono_ns(), a.unix_secs), (0, 1_800_000_000));
        assert_eq!(c.now().mono_ns(), 0);
        c.advance(Duration::from_millis(1500));
        let b = c.now();
        assert_eq!((b.mono_ns(), b.unix_secs), (1_500_000_000, 1_800_000_001));
        assert_eq!(b.instant - a.instant, Duration::from_millis(1500));
        // A wall-clock step back leaves the monotonic reading alone.
        c.set_unix(1_700_000_000);
        let d = c.now();
        assert_eq!((d.mono_ns(), d.unix_secs), (1_500_000_000, 1_700_000_000));
    }

    #[test]
    fn system_clock_readings_agree() {
        let before = unix_now();
        let n = SystemClock.now();
        assert!(n.unix_secs >= before && n.unix_secs <= unix_now());
        assert!(SystemClock.now().mono_ns() >= n.mono_ns());
        assert!(unix_ms() / 1000 >= before);
    }

    #[test]
    fn ceil_secs_rounds_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
        assert_eq!(ceil_secs(Duration::from_nanos(3_000_000_001)), 4);
        assert_eq!(ceil_secs(Duration::from_millis(2500)), 3);
    }

    /// Time is read here and nowhere else, so every decision can be driven by a test clock.
    #[test]
    fn no_other_module_reads_the_clock() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut dirs = vec![src];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("src/clock.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, line) in text.lines().enumerate() {
                        if ["Instant::now", "SystemTime::now"].iter().any(|p| line.contains(p)) {
                            offenders.push(format!("{}:{}", path.display(), i + 1));
                        }
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "read the clock through crate::clock: {offenders:?}"
        );
    }
}
