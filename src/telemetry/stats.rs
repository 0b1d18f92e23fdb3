//! Sliding-window statistics for `GET /stats` and the alert engine: per route and for the whole
//! gateway, over the last 1, 5 and 15 minutes, the request rate, success and failure counts,
//! error rate, average and p50/p95/p99 latency, upstream latency apart from gateway overhead,
//! signing latency by algorithm and denials by reason.
//!
//! Each series is a ring of time slots (`monitoring.resolution` wide, 10 s by default) covering
//! 15 minutes plus the slot being filled. A window is the merge of its slots, so the newest
//! `resolution` of a window is partial and the window slides in steps of `resolution`.
//!
//! Latencies go into log-linear histograms: exact below 16 µs, then 8 buckets per power of two
//! up to 2^32 µs (71 minutes; longer values count in the last bucket). A quantile is reported
//! as the middle of its bucket, so it is within 6.25% of the true sample quantile. The
//! histograms merge by addition, which is what makes windows and the gateway-wide figures exact
//! merges of the per-route slots.
//!
//! Recording is lock-free (relaxed atomics) except for denials, a short mutex on a per-slot list.
//! A slot is reset by the first request that finds it holding an older period; a request racing
//! with that reset on another thread may lose its count, which shifts a window by at most one
//! request per thread per slot change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Values below this many microseconds have a bucket each.
const LINEAR: u64 = 16;
/// Buckets per power of two above `LINEAR`.
const SUB: u32 = 8;
/// Values of 2^MAX_EXP µs and more share the last bucket.
const MAX_EXP: u32 = 32;
pub const BUCKETS: usize = LINEAR as usize + ((MAX_EXP - 4) * SUB) as usize;

/// The windows `/stats` reports, in seconds.
pub const WINDOWS: [(&str, u64); 3] = [("1m", 60), ("5m", 300), ("15m", 900)];
/// The longest window a series keeps.
pub const MAX_WINDOW: Duration = Duration::from_secs(900);

fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let e = 63 - us.leading_zeros();
    if e >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (us >> (e - 3)) & (SUB as u64 - 1);
    LINEAR as usize + ((e - 4) * SUB) as usize + sub as usize
}

/// The middle of bucket `i`, in microseconds.
fn bucket_mid(i: usize) -> f64 {
    if i < LINEAR as usize {
        return i as f64;
    }
    let j = i - LINEAR as usize;
    let e = 4 + (j / SUB as usize) as u32;
    let sub = (j % SUB as usize) as u64;
    let width = 1u64 << (e - 3);
    let lo = (SUB as u64 + sub) << (e - 3);
    lo as f64 + width as f64 / 2.0
}

/// A latency histogram one slot fills concurrently.
struct Hist {
    counts: Box<[AtomicU32]>,
    sum_us: AtomicU64,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }
    fn record(&self, us: u64) {
        self.counts[bucket(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }
    fn reset(&self) {
        for c in self.counts.iter() {
            c.store(0, Relaxed);
        }
        self.sum_us.store(0, Relaxed);
    }
    fn add_to(&self, into: &mut Distribution) {
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Relaxed) as u64;
            if n > 0 {
                into.counts[i] += n;
                into.count += n;
            }
        }
        into.sum_us += self.sum_us.load(Relaxed);
    }
}

/// A merged histogram (owned, for reading).
#[derive(Clone)]
pub struct Distribution {
    counts: Vec<u64>,
    count: u64,
    sum_us: u64,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution {
            counts: vec![0; BUCKETS],
            count: 0,
            sum_us: 0,
        }
    }
}

impl Distribution {
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) in seconds; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_mid(i) / 1e6);
            }
        }
        Some(bucket_mid(BUCKETS - 1) / 1e6)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_us as f64 / self.count as f64 / 1e6)
    }

    fn merge(&mut self, other: &Distribution) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
    }

    fn summary(&self) -> LatencySummary {
        let ms = |v: Option<f64>| v.map(|s| (s * 1e6).round() / 1e3);
        LatencySummary {
            count: self.count,
            avg_ms: ms(self.mean()),
            p50_ms: ms(self.quantile(0.50)),
            p95_ms: ms(self.quantile(0.95)),
            p99_ms: ms(self.quantile(0.99)),
        }
    }
}

/// One time slot of a request series.
struct Slot {
    /// The period this slot holds (`u64::MAX`: never used).
    period: AtomicU64,
    requests: AtomicU64,
    client_errors: AtomicU64,
    failures: AtomicU64,
    latency: Hist,
    upstream: Hist,
    overhead: Hist,
    denials: Mutex<Vec<(String, u64)>>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            period: AtomicU64::new(u64::MAX),
            requests: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency: Hist::new(),
            upstream: Hist::new(),
            overhead: Hist::new(),
            denials: Mutex::new(Vec::new()),
        }
    }

    fn reset(&self) {
        self.requests.store(0, Relaxed);
        self.client_errors.store(0, Relaxed);
        self.failures.store(0, Relaxed);
        self.latency.reset();
        self.upstream.reset();
        self.overhead.reset();
        self.denials.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A slot being reset: neither written nor read until it holds its new period.
const RESETTING: u64 = u64::MAX - 1;

/// Claims the slot for `period` in `slots`, resetting it first when it holds an older period.
/// `None` (the sample is dropped) while another thread resets it, or when the slot already
/// moved past `period` (a caller stalled for a whole ring).
fn claim<T>(slots: &[T], period: u64, slot_period: impl Fn(&T) -> &AtomicU64, reset: impl Fn(&T)) -> Option<&T> {
    let slot = &slots[(period % slots.len() as u64) as usize];
    let cell = slot_period(slot);
    let held = cell.load(std::sync::atomic::Ordering::Acquire);
    if held == period {
        return Some(slot);
    }
    if held == RESETTING || (held != u64::MAX && held > period) {
        return None;
    }
    // Take the slot out of service, clear it, then publish the new period: no writer adds to
    // the old counts after they are cleared, and no reader sees a half-cleared slot.
    if cell
        .compare_exchange(held, RESETTING, std::sync::atomic::Ordering::AcqRel, Relaxed)
        .is_ok()
    {
        reset(slot);
        cell.store(period, std::sync::atomic::Ordering::Release);
        return Some(slot);
    }
    (cell.load(std::sync::atomic::Ordering::Acquire) == period).then_some(slot)
}

/// The slots of one route (or of unrouted requests), kept across policy reloads.
pub struct RouteStats {
    slots: Box<[Slot]>,
}

impl RouteStats {
    fn new(slots: usize) -> RouteStats {
        RouteStats {
            slots: (0..slots).map(|_| Slot::new()).collect(),
        }
    }

    /// One finished request: its status (0 when no response was sent), total time and, when it
    /// reached an upstream, the upstream's share (peer chosen to response header).
    pub fn record(&self, at: Instant, status: u16, total: Duration, upstream: Option<Duration>) {
        self.record_in(stats(), at, status, total, upstream)
    }

    #[cfg(test)]
    fn record_at(&self, stats: &Stats, at: Instant, status: u16) {
        self.record_in(stats, at, status, Duration::from_millis(1), None)
    }

    fn record_in(&self, stats: &Stats, at: Instant, status: u16, total: Duration, upstream: Option<Duration>) {
        let Some(slot) = claim(&self.slots, stats.period(at), |s| &s.period, Slot::reset) else {
            return;
        };
        slot.requests.fetch_add(1, Relaxed);
        match status {
            400..=499 => {
                slot.client_errors.fetch_add(1, Relaxed);
            }
            0 | 500.. => {
                slot.failures.fetch_add(1, Relaxed);
            }
            _ => {}
        }
        let total_us = total.as_micros() as u64;
        slot.latency.record(total_us);
        if let Some(up) = upstream {
            let up_us = (up.as_micros() as u64).min(total_us);
            slot.upstream.record(up_us);
            slot.overhead.record(total_us - up_us);
        }
    }

    pub fn record_denial(&self, at: Instant, reason: &str) {
        let Some(slot) = claim(&self.slots, stats().period(at), |s| &s.period, Slot::reset) else {
            return;
        };
        let mut d = slot.denials.lock().unwrap_or_else(|p| p.into_inner());
        match d.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += 1,
            None => d.push((reason.to_string(), 1)),
        }
    }

    fn window(&self, cur: u64, n: u64, into: &mut Window) {
        let first = cur.saturating_sub(n - 1);
        for slot in self.slots.iter() {
            let p = slot.period.load(std::sync::atomic::Ordering::Acquire);
            if p >= RESETTING || p < first || p > cur {
                continue;
            }
            into.requests += slot.requests.load(Relaxed);
            into.client_errors += slot.client_errors.load(Relaxed);
            into.failures += slot.failures.load(Relaxed);
            slot.latency.add_to(&mut into.latency);
            slot.upstream.add_to(&mut into.upstream);
            slot.overhead.add_to(&mut into.overhead);
            for (reason, count) in slot.denials.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                *into.denials.entry(reason.clone()).or_default() += count;
            }
        }
    }
}

/// Signing of one algorithm: one slot ring of counts and latencies.
struct SignSlot {
    period: AtomicU64,
    failures: AtomicU64,
    latency: Hist,
}

impl SignSlot {
    fn reset(&self) {
        self.failures.store(0, Relaxed);
        self.latency.reset();
    }
}

struct SignStats {
    slots: Box<[SignSlot]>,
}

/// A merged window of one series.
#[derive(Default, Clone)]
pub struct Window {
    pub requests: u64,
    pub client_errors: u64,
    pub failures: u64,
    pub latency: Distribution,
    pub upstream: Distribution,
    pub overhead: Distribution,
    pub denials: BTreeMap<String, u64>,
    /// The time the window covers so far (shorter than its length right after start).
    pub seconds: f64,
}

impl Window {
    fn merge(&mut self, other: &Window) {
        self.requests += other.requests;
        self.client_errors += other.client_errors;
        self.failures += other.failures;
        self.latency.merge(&other.latency);
        self.upstream.merge(&other.upstream);
        self.overhead.merge(&other.overhead);
        for (r, n) in &other.denials {
            *self.denials.entry(r.clone()).or_default() += n;
        }
    }

    /// Failures (5xx and responses never sent) over requests; `None` without requests. (The
    /// counters of a slot are read one after another while requests add to them, so a read can
    /// see a failure before its request: hence the clamp.)
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| (self.failures as f64 / self.requests as f64).min(1.0))
    }

    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn denied(&self) -> u64 {
        self.denials.values().sum()
    }

    pub fn summary(&self) -> WindowSummary {
        let round = |v: f64| (v * 1e4).round() / 1e4;
        WindowSummary {
            requests: self.requests,
            rate_per_second: round(self.rate()),
            success: self
                .requests
                .saturating_sub(self.client_errors)
                .saturating_sub(self.failures),
            client_errors: self.client_errors,
            failures: self.failures,
            error_rate: self.error_rate().map(round),
            latency: self.latency.summary(),
            upstream_latency: self.upstream.summary(),
            gateway_overhead: self.overhead.summary(),
            denials: self.denials.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct WindowSummary {
    pub requests: u64,
    pub rate_per_second: f64,
    /// Responses below 400.
    pub success: u64,
    /// 4xx responses (denials included).
    pub client_errors: u64,
    /// 5xx responses and requests that ended without a response.
    pub failures: u64,
    /// `failures / requests`.
    pub error_rate: Option<f64>,
    pub latency: LatencySummary,
    /// From choosing a peer to the upstream's response header.
    pub upstream_latency: LatencySummary,
    /// Total time minus upstream time, for requests that reached an upstream.
    pub gateway_overhead: LatencySummary,
    pub denials: BTreeMap<String, u64>,
}

/// Signing figures of one algorithm over one window.
#[derive(Default, Clone)]
pub struct SignWindow {
    pub latency: Distribution,
    pub failures: u64,
}

impl SignWindow {
    /// Failures over attempts; `None` without attempts.
    pub fn failure_rate(&self) -> Option<f64> {
        let attempts = self.latency.count() + self.failures;
        (attempts > 0).then(|| self.failures as f64 / attempts as f64)
    }
}

/// Every series of the process.
pub struct Stats {
    resolution: u64,
    slots: usize,
    epoch: Instant,
    enabled: AtomicBool,
    routes: Mutex<HashMap<String, Arc<RouteStats>>>,
    signing: Mutex<HashMap<&'static str, Arc<SignStats>>>,
}

static STATS: OnceLock<Stats> = OnceLock::new();

/// Sets the slot width and whether monitoring runs; first call wins (once, at start).
pub fn init(resolution: Duration, enabled: bool) {
    let s = STATS.get_or_init(|| Stats::new(resolution));
    s.enabled.store(enabled, Relaxed);
}

/// The process's statistics (10 s slots unless [`init`] said otherwise).
pub fn stats() -> &'static Stats {
    STATS.get_or_init(|| Stats::new(Duration::from_secs(10)))
}

/// Whether statistics and request metrics are recorded (`monitoring.enabled`).
pub fn enabled() -> bool {
    stats().enabled.load(Relaxed)
}

impl Stats {
    fn new(resolution: Duration) -> Stats {
        let resolution = resolution.as_secs().max(1);
        Stats {
            resolution,
            slots: (MAX_WINDOW.as_secs() / resolution) as usize + 1,
            epoch: crate::clock::instant(),
            enabled: AtomicBool::new(true),
            routes: Mutex::new(HashMap::new()),
            signing: Mutex::new(HashMap::new()),
        }
    }

    pub fn resolution(&self) -> Duration {
        Duration::from_secs(self.resolution)
    }

    fn period(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_secs() / self.resolution
    }

    /// The series of route `name`, created on first use; reloads get the same one back.
    pub fn route(&self, name: &str) -> Arc<RouteStats> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(RouteStats::new(self.slots)))
            .clone()
    }

    /// Forgets routes that no policy uses any more and that have had no traffic for the longest
    /// window, so renaming routes across many reloads does not grow memory without bound.
    pub fn prune(&self, now: Instant) {
        let (cur, n, _) = self.slots_for(MAX_WINDOW, now);
        let first = cur.saturating_sub(n - 1);
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.retain(|_, r| {
            // Held by a policy snapshot (the running one, or one a request still uses).
            if Arc::strong_count(r) > 1 {
                return true;
            }
            r.slots.iter().any(|slot| {
                let p = slot.period.load(Relaxed);
                p < RESETTING && p >= first && slot.requests.load(Relaxed) > 0
            })
        });
    }

    fn sign_series(&self, alg: &'static str) -> Arc<SignStats> {
        let mut map = self.signing.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(alg)
            .or_insert_with(|| {
                Arc::new(SignStats {
                    slots: (0..self.slots)
                        .map(|_| SignSlot {
                            period: AtomicU64::new(u64::MAX),
                            failures: AtomicU64::new(0),
                            latency: Hist::new(),
                        })
                        .collect(),
                })
            })
            .clone()
    }

    /// One signature made (`Ok(duration)`) or failed (`Err(())`).
    pub fn signed(&self, alg: &'static str, at: Instant, result: Result<Duration, ()>) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        let series = self.sign_series(alg);
        let Some(slot) = claim(&series.slots, self.period(at), |s| &s.period, SignSlot::reset) else {
            return;
        };
        match result {
            Ok(d) => slot.latency.record(d.as_micros() as u64),
            Err(()) => {
                slot.failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// The window of `len` ending now, as whole slots: every slot that overlaps the last `len`,
    /// so it covers at least `len` (at most one resolution more) and never only the slot being
    /// filled. Returns the current period, the slot count and the seconds covered.
    fn slots_for(&self, len: Duration, now: Instant) -> (u64, u64, f64) {
        let cur = self.period(now);
        let since_epoch = now.saturating_duration_since(self.epoch);
        let first = since_epoch.saturating_sub(len).as_secs() / self.resolution;
        let n = (cur - first.min(cur) + 1).min(self.slots as u64);
        let start = (cur + 1 - n) * self.resolution;
        (cur, n, (since_epoch.as_secs_f64() - start as f64).max(0.0))
    }

    /// Every route's window of `len` ending at `now`, by route name.
    pub fn route_windows(&self, len: Duration, now: Instant) -> BTreeMap<String, Window> {
        let (cur, n, seconds) = self.slots_for(len, now);
        let routes: Vec<(String, Arc<RouteStats>)> = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        routes
            .into_iter()
            .map(|(name, r)| {
                let mut w = Window {
                    seconds,
                    ..Default::default()
                };
                r.window(cur, n, &mut w);
                (name, w)
            })
            .collect()
    }

    /// Signing by algorithm over the window of `len` ending at `now`.
    pub fn signing_windows(&self, len: Duration, now: Instant) -> BTreeMap<&'static str, SignWindow> {
        let (cur, n, _) = self.slots_for(len, now);
        let first = cur.saturating_sub(n - 1);
        let series: Vec<(&'static str, Arc<SignStats>)> = self
            .signing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        series
            .into_iter()
            .map(|(alg, s)| {
                let mut w = SignWindow::default();
                for slot in s.slots.iter() {
                    let p = slot.period.load(std::sync::atomic::Ordering::Acquire);
                    if p >= RESETTING || p < first || p > cur {
                        continue;
                    }
                    w.failures += slot.failures.load(Relaxed);
                    slot.latency.add_to(&mut w.latency);
                }
                (alg, w)
            })
            .collect()
    }

    /// The sum of `windows` (the gateway as a whole).
    pub fn total(windows: &BTreeMap<String, Window>, seconds: f64) -> Window {
        let mut all = Window {
            seconds,
            ..Default::default()
        };
        for w in windows.values() {
            all.merge(w);
        }
        all
    }

    /// The `GET /stats` document.
    pub fn report(&self, now: Instant) -> serde_json::Value {
        let mut gateway = serde_json::Map::new();
        let mut routes: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
        let mut signing: BTreeMap<&str, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
        for (label, secs) in WINDOWS {
            let len = Duration::from_secs(secs);
            let windows = self.route_windows(len, now);
            let seconds = windows
                .values()
                .next()
                .map(|w| w.seconds)
                .unwrap_or_else(|| self.slots_for(len, now).2);
            gateway.insert(
                label.into(),
                serde_json::json!(Self::total(&windows, seconds).summary()),
            );
            for (name, w) in &windows {
                routes
                    .entry(name.clone())
                    .or_default()
                    .insert(label.into(), serde_json::json!(w.summary()));
            }
            for (alg, w) in self.signing_windows(len, now) {
                let mut v = serde_json::json!(w.latency.summary());
                v["failures"] = w.failures.into();
                v["failure_rate"] = w.failure_rate().into();
                signing.entry(alg).or_default().insert(label.into(), v);
            }
        }
        serde_json::json!({
            "resolution_seconds": self.resolution,
            "enabled": self.enabled.load(Relaxed),
            "quantile_error_bound": 0.0625,
            "gateway": gateway,
            "routes": routes,
            "signing": signing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_within_the_error_bound() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            999,
            1_000,
            12_345,
            1_000_000,
            5_000_000,
            1 << 31,
        ] {
            let b = bucket(us);
            assert!(b >= last, "bucket of {us} went backwards");
            last = b;
            let mid = bucket_mid(b);
            assert!(
                (mid - us as f64).abs() <= us as f64 * 0.0625 + 0.5,
                "{us} µs reported as {mid}"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket((1 << MAX_EXP) - 1), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let stats = Stats::new(Duration::from_secs(10));
        let r = RouteStats::new(stats.slots);
        let mut w = Window::default();
        let slot = &r.slots[0];
        slot.period.store(0, Relaxed);
        // 1..=1000 ms, one sample each.
        for ms in 1..=1000u64 {
            slot.latency.record(ms * 1000);
        }
        r.window(0, 1, &mut w);
        let q = |p: f64| w.latency.quantile(p).unwrap() * 1e3;
        for (p, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = q(p);
            assert!((got - want).abs() <= want * 0.0625, "p{p}: {got} ms, want {want}");
        }
        assert!((w.latency.mean().unwrap() - 0.5005).abs() < 1e-9);
    }

    #[test]
    fn routes_no_policy_holds_are_pruned_once_idle() {
        let stats = Stats::new(Duration::from_secs(10));
        let held = stats.route("kept");
        let _ = stats.route("renamed-away");
        let recent = stats.route("recent");
        recent.record_at(&stats, stats.epoch, 200);
        drop(recent);
        stats.prune(stats.epoch + Duration::from_secs(5));
        let names = |s: &Stats| {
            let mut v: Vec<String> = s.routes.lock().unwrap().keys().cloned().collect();
            v.sort();
            v
        };
        assert_eq!(names(&stats), ["kept", "recent"]);
        // Fifteen minutes later the unused one with old traffic goes too.
        stats.prune(stats.epoch + Duration::from_secs(1000));
        assert_eq!(names(&stats), ["kept"]);
        drop(held);
    }

    #[test]
    fn windows_merge_slots_and_old_slots_are_reused() {
        let stats = Stats::new(Duration::from_secs(10));
        let r = RouteStats::new(stats.slots);
        let at = |p: u64| {
            claim(&r.slots, p, |s| &s.period, Slot::reset)
                .unwrap()
                .requests
                .fetch_add(1, Relaxed)
        };
        at(0);
        at(5);
        at(5);
        let count = |cur, n| {
            let mut w = Window::default();
            r.window(cur, n, &mut w);
            w.requests
        };
        assert_eq!(count(5, 6), 3);
        assert_eq!(count(5, 1), 2);
        assert_eq!(count(6, 1), 0);
        // Period 91 lands in period 0's slot: the old counts are gone, not merged.
        at(91);
        assert_eq!(count(91, 1), 1);
        assert_eq!(count(91, 91), 3);
        // A straggler for a period the ring already left is dropped.
        assert!(claim(&r.slots, 0, |s| &s.period, Slot::reset).is_none());
    }
}
