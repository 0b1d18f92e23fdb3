//! The per-route latency histograms of `/metrics` (request duration, upstream share, gateway
//! overhead), kept here rather than in `metrics-exporter-prometheus`.
//!
//! The exporter's histogram queues every sample with a timestamp in blocks that its upkeep
//! thread drains and frees: three samples per request cost a clock read each, and the blocks,
//! allocated on the request threads and freed on another, kept handing memory back and faulting
//! it in again. A Prometheus histogram only needs a count per bucket, the sum and the count, so
//! each one here is a fixed row of atomic counters: recording is a bucket search and two
//! relaxed additions. The rows live in a registry keyed by metric and route, so a reload that
//! keeps a route keeps its series, and `/metrics` appends their text after the exporter's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Bucket upper bounds in seconds, from 100 µs to 30 s (the same as the exporter's).
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The bounds as `le` label values (as the exporter writes them), then `+Inf`.
const LE: [&str; 18] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10", "30", "+Inf",
];

/// The same bounds in nanoseconds, for the comparisons on the request path.
const BOUNDS_NS: [u64; 17] = {
    let mut out = [0u64; 17];
    let mut i = 0;
    while i < 17 {
        out[i] = (LATENCY_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// The three histograms each route has, with their help text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Latency {
    Request,
    Upstream,
    Overhead,
}

impl Latency {
    const ALL: [Latency; 3] = [Latency::Request, Latency::Upstream, Latency::Overhead];

    fn name(self) -> &'static str {
        match self {
            Latency::Request => "quantumvault_request_duration_seconds",
            Latency::Upstream => "quantumvault_upstream_duration_seconds",
            Latency::Overhead => "quantumvault_gateway_overhead_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Latency::Request => "Request duration from first byte in to last byte out, by route",
            Latency::Upstream => "Upstream share of a request (peer chosen to upstream response header), by route",
            Latency::Overhead => {
                "Request duration minus the upstream share, by route (requests that reached an upstream)"
            }
        }
    }
}

/// One histogram series: a count per bucket (not cumulative; the last one is `+Inf`) and the
/// sum in nanoseconds.
pub struct LatencyHistogram {
    counts: [AtomicU64; 18],
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    fn new() -> LatencyHistogram {
        LatencyHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn record(&self, d: Duration) {
        // Clamped (to about 13 days) so the sum cannot wrap.
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).min(1 << 50);
        // Most requests land in the first few buckets, so a scan from the bottom is shortest.
        let i = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BOUNDS_NS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// Writes the series in the Prometheus text format: cumulative buckets, sum, count.
    fn render(&self, name: &str, route_label: &str, out: &mut String) {
        let mut cumulative = 0u64;
        for (c, le) in self.counts.iter().zip(LE) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{route=\"{route_label}\",le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_ns.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{route=\"{route_label}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{route=\"{route_label}\"}} {cumulative}");
    }
}

type Registry = Mutex<BTreeMap<(Latency, String), Arc<LatencyHistogram>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The series of `kind` for `route`, created at zero the first time.
pub fn latency(kind: Latency, route: &str) -> Arc<LatencyHistogram> {
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    map.entry((kind, route.to_string()))
        .or_insert_with(|| Arc::new(LatencyHistogram::new()))
        .clone()
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Appends every series with its `# HELP` and `# TYPE` lines.
pub fn render(out: &mut String) {
    let map = registry().lock().unwrap_or_else(|p| p.into_inner());
    for kind in Latency::ALL {
        let mut series = map
            .range((kind, String::new())..)
            .take_while(|((k, _), _)| *k == kind)
            .peekable();
        if series.peek().is_none() {
            continue;
        }
        let name = kind.name();
        let _ = writeln!(out, "# HELP {name} {}", kind.help());
        let _ = writeln!(out, "# TYPE {name} histogram");
        for ((_, route), h) in series {
            h.render(name, &escape_label(route), out);
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_match_the_published_buckets() {
        for (b, le) in LATENCY_BUCKETS.iter().zip(LE) {
            assert_eq!(b.to_string(), le);
        }
        assert_eq!(BOUNDS_NS[0], 100_000);
        assert_eq!(BOUNDS_NS[3], 1_000_000);
        assert_eq!(BOUNDS_NS[16], 30_000_000_000);
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn samples_land_in_their_buckets_and_render_cumulatively() {
        let h = LatencyHistogram::new();
        h.record(Duration::from_micros(50)); // le 0.0001
        h.record(Duration::from_micros(100)); // le 0.0001 (bounds are inclusive)
        h.record(Duration::from_micros(101)); // le 0.00025
        h.record(Duration::from_millis(3)); // le 0.005
        h.record(Duration::from_secs(60)); // +Inf only
        let mut out = String::new();
        h.render("x_seconds", "r", &mut out);
        let line = |le: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("x_seconds_bucket{{route=\"r\",le=\"{le}\"}} ")))
                .unwrap_or_else(|| panic!("no bucket {le} in\n{out}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(line("0.0001"), 2);
        assert_eq!(line("0.00025"), 3);
        assert_eq!(line("0.0025"), 3);
        assert_eq!(line("0.005"), 4);
        assert_eq!(line("30"), 4);
        assert_eq!(line("+Inf"), 5);
        assert!(out.contains("x_seconds_count{route=\"r\"} 5\n"), "{out}");
        assert!(out.contains("x_seconds_sum{route=\"r\"} 60.003251\n"), "{out}");
    }

    #[test]
    fn registry_keeps_a_series_across_lookups_and_escapes_labels() {
        let a = latency(Latency::Upstream, "hist-test \"q\"\\");
        a.record(Duration::from_millis(1));
        let b = latency(Latency::Upstream, "hist-test \"q\"\\");
        assert!(Arc::ptr_eq(&a, &b));
        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains("# TYPE quantumvault_upstream_duration_seconds histogram\n"),
            "{out}"
        );
        assert!(
            out.contains("quantumvault_upstream_duration_seconds_count{route=\"hist-test \\\"q\\\"\\\\\"} 1\n"),
            "{out}"
        );
    }
}
