//! Rate limiting with GCRA (the generic cell rate algorithm, equivalent to a token bucket):
//! `rate` requests per `per`, with a bucket of `burst` requests. Each tracked key stores one
//! number, its theoretical arrival time (TAT), in a sharded table shared by all worker threads.
//!
//! Accuracy: exact (no estimation) while the number of keys with state is within `max_tracked`.
//! A key whose TAT has passed carries no state (its bucket is full), so dropping it loses
//! nothing; the table drops those first. Only when more than `max_tracked` keys are
//! simultaneously mid-bucket does the table evict the tenth of a shard closest to refilling:
//! those keys are forgiven at most the part of the bucket they had not yet refilled (errs towards
//! allowing). Memory is bounded by `max_tracked` entries, about 40 bytes each.
//!
//! Time comes from the caller (`now_ns`), so tests drive it with a fake clock.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SHARDS: usize = 64;

/// A shard's table, keyed by the limiter's own keyed (SipHash) hash of the caller's key.
type Shard = HashMap<u64, u64, BuildHasherDefault<Prehashed>>;

/// The tables' keys are already keyed hashes, so hashing them again with SipHash would only
/// cost time (two rounds a request). The low bits picked the shard, so the rest are spread
/// over the whole word (Fibonacci hashing) for the table's bucket and tag bits.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; any other input still gets a deterministic value.
        for &b in bytes {
            self.0 = (self.0 << 8 | self.0 >> 56) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, h: u64) {
        self.0 = (h >> SHARDS.trailing_zeros()).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow { remaining: u64, reset: Duration },
    Deny { retry_after: Duration, reset: Duration },
}

pub struct RateLimiter {
    /// Nanoseconds between requests at the sustained rate.
    emission_ns: u64,
    /// Bucket size in nanoseconds (`burst * emission_ns`).
    capacity_ns: u64,
    burst: u64,
    shard_capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<Shard>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("emission_ns", &self.emission_ns)
            .field("burst", &self.burst)
            .finish()
    }
}

impl RateLimiter {
    pub fn new(rate: u64, per: Duration, burst: u64, max_tracked: usize) -> RateLimiter {
        let rate = rate.max(1);
        let emission_ns = (per.as_nanos() / rate as u128).max(1) as u64;
        let burst = burst.max(1);
        RateLimiter {
            emission_ns,
            capacity_ns: emission_ns.saturating_mul(burst),
            burst,
            shard_capacity: (max_tracked / SHARDS).max(16),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// Counts one request for `key` at `now_ns` and decides.
    pub fn check<K: Hash + ?Sized>(&self, key: &K, now_ns: u64) -> Decision {
        let h = self.hasher.hash_one(key);
        let shard = &self.shards[(h as usize) % SHARDS];
        // The lock is held for a hash-map access; no await, no I/O.
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let tat = map.get(&h).copied().unwrap_or(0).max(now_ns);
        let new_tat = tat + self.emission_ns;
        let ahead = new_tat - now_ns;
        if ahead > self.capacity_ns {
            let retry_after = Duration::from_nanos(ahead - self.capacity_ns);
            return Decision::Deny {
                retry_after,
                reset: Duration::from_nanos(tat - now_ns),
            };
        }
        if map.len() >= self.shard_capacity && !map.contains_key(&h) {
            evict(&mut map, now_ns);
        }
        map.insert(h, new_tat);
        Decision::Allow {
            remaining: (self.capacity_ns - ahead) / self.emission_ns,
            reset: Duration::from_nanos(ahead),
        }
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// Makes room: drop every key whose bucket is full again; if that frees less than a tenth, also
/// drop the tenth of keys closest to full.
fn evict(map: &mut Shard, now_ns: u64) {
    let before = map.len();
    map.retain(|_, tat| *tat > now_ns);
    if map.len() > before - before / 10 {
        let mut tats: Vec<u64> = map.values().copied().collect();
        let cut = tats.len() / 10;
        if cut > 0 {
            let (_, nth, _) = tats.select_nth_unstable(cut);
            let threshold = *nth;
            map.retain(|_, tat| *tat > threshold);
        }
    }
}

/// Limiters keyed by their settings, so a reload that keeps a rule keeps its counters.
#[derive(Default)]
pub struct LimiterRegistry {
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
}

impl LimiterRegistry {
    pub fn get(&self, fingerprint: &str, make: impl FnOnce() -> RateLimiter) -> Arc<RateLimiter> {
        let mut m = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(fingerprint.to_string())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    /// Forgets limiters no policy uses any more.
    pub fn retain(&self, live: &[String]) {
        let mut m = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|k, _| live.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_sustained_rate_on_a_fake_clock() {
        let rl = RateLimiter::new(10, Duration::from_secs(1), 5, 1000);
        let mut allowed = 0;
        for _ in 0..20 {
            if matches!(rl.check("k", 0), Decision::Allow { .. }) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "the burst");
        // Ten times the limit for 10 s: 100 requests per second offered, 10 per second allowed.
        let mut allowed = 0;
        for i in 0..1000u64 {
            if matches!(rl.check("k", S / 100 * (i + 1)), Decision::Allow { .. }) {
                allowed += 1;
            }
        }
        assert!((100..=101).contains(&allowed), "{allowed}");
    }

    #[test]
    fn deny_reports_retry_after() {
        let rl = RateLimiter::new(1, Duration::from_secs(2), 1, 1000);
        assert!(matches!(rl.check("a", 0), Decision::Allow { remaining: 0, .. }));
        match rl.check("a", S / 2) {
            Decision::Deny { retry_after, .. } => assert_eq!(retry_after, Duration::from_millis(1500)),
            d => panic!("{d:?}"),
        }
        assert!(
            matches!(rl.check("b", S / 2), Decision::Allow { .. }),
            "keys are independent"
        );
        assert!(matches!(rl.check("a", 2 * S), Decision::Allow { .. }));
    }

    #[test]
    fn memory_stays_bounded_with_a_million_clients() {
        let rl = RateLimiter::new(100, Duration::from_secs(60), 100, 64 * 1024);
        for i in 0..1_000_000u32 {
            rl.check(&i, u64::from(i) * 1000);
        }
        assert!(rl.tracked() <= 64 * 1024 + SHARDS, "{}", rl.tracked());
    }

    #[test]
    fn concurrent_threads_share_one_budget() {
        let rl = Arc::new(RateLimiter::new(1000, Duration::from_secs(1), 1000, 1000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let rl = rl.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| matches!(rl.check("shared", 0), Decision::Allow { .. }))
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 1000);
    }
}
