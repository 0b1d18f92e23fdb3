//! Prometheus metrics through the `metrics` facade and `metrics-exporter-prometheus` (rendered by
//! the admin port; no HTTP listener of the exporter's own).
//!
//! Labels are bounded by configuration: route and upstream names, methods folded into a fixed
//! set, status classes and error kinds. Raw paths, client addresses and keys never become labels.
//! Request counters are resolved to handles when a policy is built, so the request path does no
//! registry look-ups.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram, Counter, Gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::histogram::{latency, Latency, LatencyHistogram, LATENCY_BUCKETS};
use super::stats::{self, RouteStats};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Batch sizes: powers of two up to the largest batch.
const BATCH_BUCKETS: [f64; 17] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0,
    65536.0,
];

/// Installs the global recorder once and returns the handle that renders `/metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                // Invariant: the bucket lists here are non-empty, the only error case.
                .expect("non-empty buckets")
                .set_buckets_for_metric(Matcher::Full("quantumvault_batch_leaves".into()), &BATCH_BUCKETS)
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            gauge!("quantumvault_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            // Series that alert rules and dashboards divide by exist from the start (at zero),
            // so "no failures yet" reads as 0 rather than as no data.
            for alg in ["ecdsa-p256-sha256", "ml-dsa-65"] {
                counter!("quantumvault_signatures_total", "alg" => alg).increment(0);
                counter!("quantumvault_signing_failures_total", "alg" => alg).increment(0);
            }
            for alg in ["ecdsa", "ml-dsa", "hybrid"] {
                counter!("quantumvault_batch_backpressure_total", "alg" => alg).increment(0);
            }
            for reason in ["too_large", "stream", "signing_failed"] {
                counter!("quantumvault_unsigned_responses_total", "reason" => reason).increment(0);
            }
            for result in ["ok", "error"] {
                counter!("quantumvault_config_reloads_total", "result" => result).increment(0);
                counter!("quantumvault_anchor_appends_total", "result" => result).increment(0);
                counter!("quantumvault_checkpoints_total", "result" => result).increment(0);
            }
            for result in ["served", "not_yet", "unknown"] {
                counter!("quantumvault_log_proofs_total", "result" => result).increment(0);
            }
            counter!("quantumvault_anchor_pruned_signatures_total").increment(0);
            gauge!("quantumvault_anchor_log_size").set(0.0);
            gauge!("quantumvault_anchor_index_bytes").set(0.0);
            gauge!("quantumvault_connections_open").set(0.0);
            counter!("quantumvault_connections_refused_total").increment(0);
            for kind in ["read", "write", "header", "body"] {
                counter!("quantumvault_downstream_timeouts_total", "kind" => kind).increment(0);
            }
            gauge!("quantumvault_config_last_reload_success").set(1.0);
            for result in ["ok", "error", "dropped"] {
                counter!("quantumvault_alert_notifications_total", "result" => result).increment(0);
            }
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "quantumvault_requests_total",
        "Requests by route, method and status class"
    );
    describe_counter!(
        "quantumvault_upstream_errors_total",
        "Upstream failures by upstream and kind"
    );
    describe_counter!(
        "quantumvault_errors_total",
        "Gateway-side request errors by class (as listed on /errors)"
    );
    describe_gauge!("quantumvault_requests_in_flight", "Requests being processed now");
    describe_gauge!(
        "quantumvault_held_bytes",
        Unit::Bytes,
        "Bytes held across requests for inspection and signing (memory.held_bytes)"
    );
    describe_counter!(
        "quantumvault_held_budget_exhausted_total",
        "Request bodies refused (503) or responses streamed unsigned because the held-bytes budget was spent"
    );
    describe_counter!(
        "quantumvault_downstream_timeouts_total",
        "Clients dropped by a downstream timeout: read, write, header (the whole head) or body (its minimum rate)"
    );
    describe_gauge!(
        "quantumvault_connections_open",
        "Client connections open on the proxy listeners"
    );
    describe_counter!(
        "quantumvault_connections_refused_total",
        "Client connections closed on accept because downstream.max_connections were open"
    );
    describe_counter!(
        "quantumvault_requests_denied_total",
        "Requests refused by a filter, by route and reason (filter and rule)"
    );
    describe_counter!("quantumvault_config_reloads_total", "Policy reloads by result");
    describe_gauge!(
        "quantumvault_config_last_reload_success",
        "1 if the last reload succeeded (or none happened), 0 while the running policy is older than a failed edit"
    );
    describe_gauge!(
        "quantumvault_policy_generation",
        "Generation of the running policy (1 at start, +1 per successful reload)"
    );
    describe_gauge!(
        "quantumvault_policy_info",
        "Always 1; the hash label identifies the running policy files"
    );
    describe_gauge!("quantumvault_build_info", "Always 1; labels carry the build version");
    describe_gauge!(
        "quantumvault_upstream_peers_healthy",
        "Peers of an upstream pool in rotation"
    );
    describe_gauge!("quantumvault_upstream_peers", "Peers configured in an upstream pool");
    describe_counter!(
        "quantumvault_access_log_dropped_total",
        "Access-log lines dropped because the writer fell behind"
    );
    describe_gauge!("quantumvault_start_time_seconds", "Unix time the process started");
    describe_gauge!(
        "quantumvault_cluster_breaker_open",
        "1 while the Redis circuit breaker is open (Redis unreachable: shared limits and quotas use their fallbacks)"
    );
    describe_counter!(
        "quantumvault_cluster_breaker_switches_total",
        "Redis circuit breaker switches, by the state switched to"
    );
    describe_counter!(
        "quantumvault_cluster_calls_total",
        "Redis calls on the request path by operation and result (ok, error, timeout, skipped)"
    );
    describe_histogram!(
        "quantumvault_cluster_call_seconds",
        Unit::Seconds,
        "Latency of Redis calls on the request path, by operation"
    );
    describe_counter!(
        "quantumvault_cluster_fallback_total",
        "Decisions of shared rate limits and quotas made without Redis, by rule and decision"
    );
    describe_counter!(
        "quantumvault_cluster_usage_flush_failures_total",
        "Usage flushes to Redis that failed (retried with the next)"
    );
    describe_gauge!(
        "quantumvault_cluster_instances",
        "Gateway instances alive in the fleet's key directory"
    );
    describe_counter!(
        "quantumvault_cluster_name_clashes_total",
        "Key directory refreshes that found another instance's keys under this instance's name"
    );
    describe_counter!(
        "quantumvault_connections_dropped_total",
        "Connections closed at accept because ip_filter.drop_connections denies the peer"
    );
    describe_counter!(
        "quantumvault_signatures_total",
        "Response signatures made, by algorithm"
    );
    describe_counter!(
        "quantumvault_inspection_findings_total",
        "Requests request inspection flagged, by route, class, rule and action (block or detect)"
    );
    describe_counter!(
        "quantumvault_inspection_oversize_total",
        "Bodies larger than the inspection bound (only the prefix was inspected)"
    );
    describe_gauge!(
        "quantumvault_alerts",
        "Alert instances by state (pending, firing) and severity"
    );
    describe_counter!(
        "quantumvault_alert_notifications_total",
        "Alertmanager webhook deliveries by result (ok, error, dropped)"
    );
    describe_histogram!(
        "quantumvault_signing_duration_seconds",
        Unit::Seconds,
        "Time to sign one response, by algorithm"
    );
    describe_counter!("quantumvault_signing_failures_total", "Signing failures, by algorithm");
    describe_histogram!(
        "quantumvault_batch_leaves",
        "Responses per signed batch, by batch algorithm"
    );
    describe_histogram!(
        "quantumvault_batch_wait_seconds",
        Unit::Seconds,
        "Time from a response's leaf arriving to its batch being signed"
    );
    describe_counter!("quantumvault_batches_total", "Signed batches, by batch algorithm");
    describe_counter!(
        "quantumvault_checkpoints_total",
        "Anchor log checkpoints signed, by result"
    );
    describe_gauge!(
        "quantumvault_anchor_log_size",
        "Batches covered by the latest anchor log checkpoint"
    );
    describe_gauge!(
        "quantumvault_anchor_index_bytes",
        Unit::Bytes,
        "Memory of the anchor log's in-memory index (offsets, batch ids, tree hashes); grows with every batch"
    );
    describe_counter!(
        "quantumvault_log_proofs_total",
        "Inclusion proofs (tlog-proof) asked for, by result: served, not_yet (newer than the latest checkpoint), unknown"
    );
    describe_counter!(
        "quantumvault_anchor_pruned_signatures_total",
        "ML-DSA-65 root signatures dropped from the anchor log by the retention window"
    );
    describe_counter!(
        "quantumvault_anchor_appends_total",
        "Signed batches appended to the anchor log, by result (ok, error)"
    );
    describe_histogram!(
        "quantumvault_anchor_latency_seconds",
        Unit::Seconds,
        "Time to append and fdatasync one group of signed batches"
    );
    describe_counter!(
        "quantumvault_batch_backpressure_total",
        "Responses that waited for room in the batch signer's queue"
    );
    describe_histogram!(
        "quantumvault_batch_signing_seconds",
        Unit::Seconds,
        "Time a signer thread spent on one batch (utilisation = rate of the sum / threads)"
    );
    describe_counter!(
        "quantumvault_unsigned_responses_total",
        "Responses on signing routes passed unsigned, by reason"
    );
    describe_gauge!(
        "quantumvault_signing_key_age_seconds",
        "Age of each published signing key version"
    );
    describe_gauge!(
        "quantumvault_signing_key_expiry_seconds",
        "Seconds until each signing key version expires"
    );
}

const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::PATCH => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// Request metrics of one route (or of "no route"). Each (method, status class) counter is
/// resolved on first use and kept, so a series appears once it has traffic and the request path
/// does no registry look-up after that.
pub struct RouteMetrics {
    route: String,
    requests: Vec<OnceLock<Counter>>,
    duration: Arc<LatencyHistogram>,
    upstream: Arc<LatencyHistogram>,
    overhead: Arc<LatencyHistogram>,
    /// The route's sliding windows (shared with the policies before and after a reload).
    pub stats: Arc<RouteStats>,
}

impl RouteMetrics {
    pub fn new(route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_string(),
            requests: (0..METHODS.len() * CLASSES.len()).map(|_| OnceLock::new()).collect(),
            duration: latency(Latency::Request, route),
            upstream: latency(Latency::Upstream, route),
            overhead: latency(Latency::Overhead, route),
            stats: stats::stats().route(route),
        }
    }

    /// A filter refused a request at `end`: the Prometheus counter and the route's denial
    /// windows. `reason` names the filter and rule (bounded by the policy).
    pub fn record_denial(&self, end: Instant, reason: &str) {
        if !stats::enabled() {
            return;
        }
        counter!("quantumvault_requests_denied_total", "route" => self.route.clone(), "reason" => reason.to_string())
            .increment(1);
        self.stats.record_denial(end, reason);
    }

    /// One finished request: counters and histograms for Prometheus, slots for `/stats`.
    /// `upstream` is the upstream's share (peer chosen to response header) when there was one.
    pub fn record(
        &self,
        method: &http::Method,
        status: u16,
        end: Instant,
        total: Duration,
        upstream: Option<Duration>,
    ) {
        if !stats::enabled() {
            return;
        }
        self.stats.record(end, status, total, upstream);
        if let Some(up) = upstream {
            let up = up.min(total);
            self.upstream.record(up);
            self.overhead.record(total - up);
        }
        let (m, c) = (method_index(method), class_index(status));
        let counter = self.requests[m * CLASSES.len() + c].get_or_init(|| {
            counter!(
                "quantumvault_requests_total",
                "route" => self.route.clone(),
                "method" => METHODS[m],
                "status_class" => CLASSES[c]
            )
        });
        counter.increment(1);
        self.duration.record(total);
    }
}

pub fn upstream_error(upstream: &str, kind: &'static str) {
    counter!("quantumvault_upstream_errors_total", "upstream" => upstream.to_string(), "kind" => kind).increment(1);
}

/// Bytes held across requests for inspection and signing (see [`crate::held`]).
pub fn held_bytes(bytes: u64) {
    gauge!("quantumvault_held_bytes").set(bytes as f64);
}

/// A request refused (or a response streamed unsigned) because the held-bytes budget was spent:
/// `kind` is `inspection` or `signing`.
pub fn held_budget_exhausted(kind: &'static str) {
    counter!("quantumvault_held_budget_exhausted_total", "kind" => kind).increment(1);
}

/// Client connections open on the proxy listeners ([`crate::connections`]).
pub fn connections_open() -> Gauge {
    gauge!("quantumvault_connections_open")
}

/// A connection closed on accept: `downstream.max_connections` were open.
pub fn connection_refused() {
    counter!("quantumvault_connections_refused_total").increment(1);
}

/// A client dropped for being too slow: `kind` is `read` (a request it stopped sending),
/// `write` (a response it stopped reading), `header` (a head not complete in time) or `body`
/// (a body below its minimum rate).
pub fn downstream_timeout(kind: &'static str) {
    counter!("quantumvault_downstream_timeouts_total", "kind" => kind).increment(1);
}

pub fn in_flight() -> Gauge {
    gauge!("quantumvault_requests_in_flight")
}

pub fn access_log_dropped() -> Counter {
    counter!("quantumvault_access_log_dropped_total")
}

pub fn reload(ok: bool) {
    counter!("quantumvault_config_reloads_total", "result" => if ok { "ok" } else { "error" }).increment(1);
    gauge!("quantumvault_config_last_reload_success").set(if ok { 1.0 } else { 0.0 });
}

pub fn policy_loaded(generation: u64, hash: &str, previous_hash: Option<&str>) {
    gauge!("quantumvault_policy_generation").set(generation as f64);
    if let Some(prev) = previous_hash {
        if prev != hash {
            gauge!("quantumvault_policy_info", "hash" => prev.to_string()).set(0.0);
        }
    }
    gauge!("quantumvault_policy_info", "hash" => hash.to_string()).set(1.0);
}

/// Age of every published signing key version.
pub fn key_ring(ring: &crate::kms::keystore::KeyRing) {
    let now = crate::clock::unix_now();
    for k in &ring.published {
        gauge!("quantumvault_signing_key_age_seconds", "keyid" => k.keyid.clone())
            .set(now.saturating_sub(k.created) as f64);
        if let Some(e) = k.expires {
            gauge!("quantumvault_signing_key_expiry_seconds", "keyid" => k.keyid.clone())
                .set(e.saturating_sub(now) as f64);
        }
    }
}

pub fn signed(alg: &'static str, started: Instant) {
    let took = started.elapsed();
    if !stats::enabled() {
        return;
    }
    stats::stats().signed(alg, started + took, Ok(took));
    counter!("quantumvault_signatures_total", "alg" => alg).increment(1);
    histogram!("quantumvault_signing_duration_seconds", "alg" => alg).record(took.as_secs_f64());
}

/// The statistics series of anchor-log appends (`/stats` signing latency, the
/// `anchor_failure_rate` alert metric).
pub const ANCHOR_SERIES: &str = "anchor-log";

/// Cluster mode started: its series exist from the start (at zero).
pub fn cluster_started() {
    gauge!("quantumvault_cluster_breaker_open").set(0.0);
    for to in ["open", "closed"] {
        counter!("quantumvault_cluster_breaker_switches_total", "to" => to).increment(0);
    }
    counter!("quantumvault_cluster_usage_flush_failures_total").increment(0);
    gauge!("quantumvault_cluster_instances").set(1.0);
    counter!("quantumvault_cluster_name_clashes_total").increment(0);
    cluster_fallback_rule("quota");
}

/// A shared rule's fallback series exist from its first policy (at zero).
pub fn cluster_fallback_rule(rule: &str) {
    for decision in ["allow", "deny"] {
        counter!("quantumvault_cluster_fallback_total", "rule" => rule.to_string(), "decision" => decision)
            .increment(0);
    }
}

/// The Redis breaker opened (`true`) or closed.
pub fn cluster_breaker(open: bool) {
    gauge!("quantumvault_cluster_breaker_open").set(if open { 1.0 } else { 0.0 });
    counter!("quantumvault_cluster_breaker_switches_total", "to" => if open { "open" } else { "closed" }).increment(1);
}

/// One Redis call on a request's path: `result` is ok, error (a failed connect included),
/// timeout or skipped (breaker open); the latency of calls that were made.
pub fn cluster_call(op: &'static str, result: &'static str, took: Option<Duration>) {
    counter!("quantumvault_cluster_calls_total", "op" => op, "result" => result).increment(1);
    if let Some(t) = took {
        histogram!("quantumvault_cluster_call_seconds", "op" => op).record(t.as_secs_f64());
    }
}

/// A shared rate limit (`rule`) or a quota (`quota`) decided without Redis.
pub fn cluster_fallback(rule: &str, allowed: bool) {
    counter!(
        "quantumvault_cluster_fallback_total",
        "rule" => rule.to_string(),
        "decision" => if allowed { "allow" } else { "deny" }
    )
    .increment(1);
}

pub fn cluster_usage_flush_failed() {
    counter!("quantumvault_cluster_usage_flush_failures_total").increment(1);
}

/// Another instance wrote keys under this instance's name.
pub fn cluster_name_clash() {
    counter!("quantumvault_cluster_name_clashes_total").increment(1);
}

/// Instances alive in the fleet's key directory.
pub fn cluster_instances(n: u32) {
    gauge!("quantumvault_cluster_instances").set(f64::from(n));
}

/// `n` signed batches were appended to the anchor log and made durable.
pub fn anchored(n: usize, started: Instant) {
    let took = started.elapsed();
    counter!("quantumvault_anchor_appends_total", "result" => "ok").increment(n as u64);
    histogram!("quantumvault_anchor_latency_seconds").record(took.as_secs_f64());
    if stats::enabled() {
        stats::stats().signed(ANCHOR_SERIES, started + took, Ok(took));
    }
}

/// `n` signed batches could not be written to the anchor log (their responses go unsigned).
/// A root signature was checked before its batch was released (`signing_batch.verify_roots`).
pub fn root_verified(alg: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    counter!("quantumvault_batch_roots_verified_total", "alg" => alg, "result" => result).increment(1);
}

/// A checkpoint of the anchor log was signed, covering `size` batches; the log's in-memory
/// index holds `index_bytes`.
pub fn checkpoint_signed(size: u64, index_bytes: u64) {
    counter!("quantumvault_checkpoints_total", "result" => "ok").increment(1);
    gauge!("quantumvault_anchor_log_size").set(size as f64);
    gauge!("quantumvault_anchor_index_bytes").set(index_bytes as f64);
}

pub fn checkpoint_failed() {
    counter!("quantumvault_checkpoints_total", "result" => "error").increment(1);
}

/// A `tlog-proof` was served (`found`) or asked for too early or for an unknown batch.
pub fn log_proof(result: &'static str) {
    counter!("quantumvault_log_proofs_total", "result" => result).increment(1);
}

pub fn pq_signatures_pruned(n: u64) {
    counter!("quantumvault_anchor_pruned_signatures_total").increment(n);
}

pub fn anchor_failed(n: usize) {
    counter!("quantumvault_anchor_appends_total", "result" => "error").increment(n as u64);
    if stats::enabled() {
        stats::stats().signed(ANCHOR_SERIES, crate::clock::instant(), Err(()));
    }
}

/// A response waited for room in the batch signer's queue (backpressure).
pub fn batch_backpressure(alg: &'static str) {
    counter!("quantumvault_batch_backpressure_total", "alg" => alg).increment(1);
}

/// Time a batch signer thread spent on one batch (its utilisation is the rate of the sum).
pub fn batch_signer_busy(alg: &'static str, took: std::time::Duration) {
    histogram!("quantumvault_batch_signing_seconds", "alg" => alg).record(took.as_secs_f64());
}

/// The batch signer's per-batch figures, for one algorithm.
pub struct BatchMetrics {
    size: metrics::Histogram,
    wait: metrics::Histogram,
    batches: Counter,
}

impl BatchMetrics {
    pub fn of(alg: &'static str) -> BatchMetrics {
        BatchMetrics {
            size: histogram!("quantumvault_batch_leaves", "alg" => alg),
            wait: histogram!("quantumvault_batch_wait_seconds", "alg" => alg),
            batches: counter!("quantumvault_batches_total", "alg" => alg),
        }
    }
    /// A batch of `n` leaves was signed.
    pub fn size(&self, n: usize) {
        self.batches.increment(1);
        self.size.record(n as f64);
    }
    /// A leaf waited `d` from its arrival to its batch's signing.
    pub fn waited(&self, d: std::time::Duration) {
        self.wait.record(d.as_secs_f64());
    }
}

pub fn signing_failed(alg: &'static str) {
    stats::stats().signed(alg, crate::clock::instant(), Err(()));
    counter!("quantumvault_signing_failures_total", "alg" => alg).increment(1);
}

pub fn unsigned(reason: &'static str) {
    counter!("quantumvault_unsigned_responses_total", "reason" => reason).increment(1);
}

/// A body over the inspection bound: only its prefix was inspected.
pub fn unsigned_inspection_oversize(route: &str) {
    counter!("quantumvault_inspection_oversize_total", "route" => route.to_string()).increment(1);
}

pub fn started() {
    let now = crate::clock::system_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    gauge!("quantumvault_start_time_seconds").set(now);
}

pub fn record_pool_health<'a>(pools: impl Iterator<Item = &'a crate::upstream::Pool>) {
    let now = crate::clock::mono_ms();
    for pool in pools {
        let name = pool.spec.name.clone();
        gauge!("quantumvault_upstream_peers_healthy", "upstream" => name.clone()).set(pool.healthy_count(now) as f64);
        gauge!("quantumvault_upstream_peers", "upstream" => name).set(pool.peers.len() as f64);
    }
}
