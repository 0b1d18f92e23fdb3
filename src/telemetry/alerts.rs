//! The alert engine: evaluates the policy's alert rules (see `config::alerts`) every
//! `monitoring.evaluate_every`, off the request path, against the sliding-window statistics and
//! the live state (pools, reloads, keys).
//!
//! An alert instance is one rule with one set of labels (the rule's own plus `route`,
//! `upstream`, `alg` or `keyid`); its id is derived from both, so the same problem is one alert
//! however often it is seen (deduplication). Instances move:
//!
//! ```text
//!   (condition holds) -> pending --(held for `for`)--> firing --(condition ends)--> resolved
//!                          \--(condition ends before `for`)--> dropped
//! ```
//!
//! A resolved instance that fires again starts a new episode: its acknowledgement is cleared.
//! Every change is kept in a bounded history. Firing and resolved instances are handed to the
//! webhook sender ([`super::webhook`], Alertmanager's JSON), never waited for; firing ones are
//! sent again every `resend_every`, as Alertmanager expects.
//!
//! The engine itself takes the time as an argument, so its state machine is tested with a fake
//! clock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::stats::{self, Stats, Window};
use crate::config::alerts::{AlertMetric, AlertRule, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ack {
    /// Unix milliseconds.
    pub at: u64,
    pub by: String,
    pub comment: String,
}

/// One alert: a rule and a label set.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub state: AlertState,
    pub labels: BTreeMap<String, String>,
    pub description: String,
    pub metric: &'static str,
    pub comparison: &'static str,
    pub threshold: f64,
    /// The last value seen while the condition held.
    pub value: f64,
    /// Unix milliseconds: the condition started holding, the alert fired, it resolved.
    pub active_since: u64,
    pub fired_at: Option<u64>,
    pub resolved_at: Option<u64>,
    pub acknowledged: Option<Ack>,
    #[serde(skip)]
    last_sent: Option<u64>,
}

/// A state change, for the history.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub at: u64,
    pub id: String,
    pub rule: String,
    pub labels: BTreeMap<String, String>,
    pub severity: Severity,
    /// `pending`, `firing`, `resolved`, `dropped` (pending that ended) or `acknowledged`.
    pub to: &'static str,
    pub value: f64,
}

/// One rule's reading for one label set. `value` is `None` when there is not enough data
/// (fewer requests than `min_requests`): the condition does not hold.
pub struct Observation<'a> {
    pub rule: &'a AlertRule,
    pub labels: BTreeMap<String, String>,
    pub value: Option<f64>,
}

#[derive(Default)]
struct EngineState {
    alerts: BTreeMap<String, Alert>,
    history: VecDeque<Transition>,
}

/// What an acknowledgement request found.
#[derive(Debug, PartialEq, Eq)]
pub enum AckResult {
    Acknowledged,
    NotFound,
    Resolved,
}

/// Resolved alerts stay listed this long.
const KEEP_RESOLVED_MS: u64 = 15 * 60 * 1000;

pub struct AlertEngine {
    state: Mutex<EngineState>,
    history_cap: usize,
    /// The webhook queue and how often firing alerts are sent again.
    notify: OnceLock<(tokio::sync::mpsc::Sender<Notification>, u64)>,
}

/// A batch for the webhook: the alerts, when it was made, and the resend period (which sets
/// how long Alertmanager should keep a firing alert without hearing from us).
#[derive(Debug, Clone)]
pub struct Notification {
    pub alerts: Vec<Alert>,
    pub sent_at: u64,
    pub resend_every_ms: u64,
}

fn alert_id(rule: &str, labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    for (k, v) in labels {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

impl AlertEngine {
    pub fn new(history_cap: usize) -> AlertEngine {
        let engine = AlertEngine {
            state: Mutex::new(EngineState::default()),
            history_cap: history_cap.max(1),
            notify: OnceLock::new(),
        };
        // The gauges exist (at zero) before the first evaluation, for dashboards and rules.
        engine.publish_gauges(&engine.lock());
        engine
    }

    /// Connects the webhook sender (once, at start).
    pub fn set_notifier(&self, tx: tokio::sync::mpsc::Sender<Notification>, resend_every: Duration) {
        let _ = self.notify.set((tx, resend_every.as_millis() as u64));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one round of observations taken at `now_ms` (unix milliseconds). Alerts not
    /// observed at all (their rule or pool is gone) end as if their condition had.
    pub fn evaluate(&self, now_ms: u64, observations: &[Observation<'_>]) {
        let mut st = self.lock();
        let mut seen = std::collections::HashSet::new();
        let mut changes: Vec<(String, &'static str)> = Vec::new();
        for obs in observations {
            let rule = obs.rule;
            let mut labels = rule.labels.clone();
            labels.extend(obs.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            let id = alert_id(&rule.name, &labels);
            let holds = obs.value.is_some_and(|v| rule.comparison.holds(v, rule.threshold));
            if !holds {
                continue;
            }
            seen.insert(id.clone());
            let value = obs.value.unwrap_or_default();
            let fresh = |state| Alert {
                id: id.clone(),
                rule: rule.name.clone(),
                severity: rule.severity,
                state,
                labels: labels.clone(),
                description: rule.description.clone(),
                metric: rule.metric.name(),
                comparison: rule.comparison.as_str(),
                threshold: rule.threshold,
                value,
                active_since: now_ms,
                fired_at: None,
                resolved_at: None,
                acknowledged: None,
                last_sent: None,
            };
            let alert = match st.alerts.get_mut(&id) {
                Some(a) if a.state != AlertState::Resolved => a,
                _ => {
                    st.alerts.insert(id.clone(), fresh(AlertState::Pending));
                    changes.push((id.clone(), "pending"));
                    // Invariant: inserted on the line above.
                    st.alerts.get_mut(&id).expect("just inserted")
                }
            };
            alert.value = value;
            alert.severity = rule.severity;
            alert.threshold = rule.threshold;
            if alert.state == AlertState::Pending
                && now_ms.saturating_sub(alert.active_since) >= rule.for_.as_millis() as u64
            {
                alert.state = AlertState::Firing;
                alert.fired_at = Some(now_ms);
                changes.push((id.clone(), "firing"));
            }
        }
        let mut dropped = Vec::new();
        for (id, alert) in st.alerts.iter_mut() {
            if seen.contains(id) {
                continue;
            }
            match alert.state {
                AlertState::Pending => {
                    dropped.push(id.clone());
                    changes.push((id.clone(), "dropped"));
                }
                AlertState::Firing => {
                    alert.state = AlertState::Resolved;
                    alert.resolved_at = Some(now_ms);
                    changes.push((id.clone(), "resolved"));
                }
                AlertState::Resolved => {
                    if now_ms.saturating_sub(alert.resolved_at.unwrap_or(now_ms)) > KEEP_RESOLVED_MS {
                        dropped.push(id.clone());
                    }
                }
            }
        }
        for (id, to) in &changes {
            if let Some(a) = st.alerts.get(id) {
                let t = Transition {
                    at: now_ms,
                    id: id.clone(),
                    rule: a.rule.clone(),
                    labels: a.labels.clone(),
                    severity: a.severity,
                    to,
                    value: a.value,
                };
                self.push_history(&mut st, t);
            }
        }
        for id in dropped {
            st.alerts.remove(&id);
        }
        // Send what changed to firing or resolved, and firing alerts due for a resend. An alert
        // counts as sent only once its batch is queued, so a full queue means a retry at the next
        // evaluation rather than a lost notification.
        if let Some((tx, resend_every_ms)) = self.notify.get() {
            let due: Vec<String> = st
                .alerts
                .values()
                .filter(|a| match a.state {
                    AlertState::Firing => a.last_sent.is_none_or(|t| now_ms.saturating_sub(t) >= *resend_every_ms),
                    AlertState::Resolved => a.last_sent.is_some_and(|t| t < a.resolved_at.unwrap_or(0)),
                    AlertState::Pending => false,
                })
                .map(|a| a.id.clone())
                .collect();
            if !due.is_empty() {
                let batch = Notification {
                    alerts: due.iter().filter_map(|id| st.alerts.get(id).cloned()).collect(),
                    sent_at: now_ms,
                    resend_every_ms: *resend_every_ms,
                };
                match tx.try_send(batch) {
                    Ok(()) => {
                        for id in &due {
                            if let Some(a) = st.alerts.get_mut(id) {
                                a.last_sent = Some(now_ms);
                            }
                        }
                    }
                    Err(_) => {
                        metrics::counter!("quantumvault_alert_notifications_total", "result" => "dropped").increment(1);
                        log::warn!("alert webhook queue full; the notification is retried at the next evaluation");
                    }
                }
            }
        }
        self.publish_gauges(&st);
    }

    fn push_history(&self, st: &mut EngineState, t: Transition) {
        if st.history.len() >= self.history_cap {
            st.history.pop_front();
        }
        st.history.push_back(t);
    }

    fn publish_gauges(&self, st: &EngineState) {
        for state in [AlertState::Pending, AlertState::Firing] {
            for sev in [Severity::Info, Severity::Warning, Severity::Critical] {
                let n = st
                    .alerts
                    .values()
                    .filter(|a| a.state == state && a.severity == sev)
                    .count();
                let state = if state == AlertState::Pending {
                    "pending"
                } else {
                    "firing"
                };
                metrics::gauge!("quantumvault_alerts", "state" => state, "severity" => sev.as_str()).set(n as f64);
            }
        }
    }

    /// Acknowledges a pending or firing alert; the acknowledgement lasts until it resolves.
    pub fn acknowledge(&self, id: &str, now_ms: u64, by: &str, comment: &str) -> AckResult {
        let mut st = self.lock();
        let Some(a) = st.alerts.get_mut(id) else {
            return AckResult::NotFound;
        };
        if a.state == AlertState::Resolved {
            return AckResult::Resolved;
        }
        a.acknowledged = Some(Ack {
            at: now_ms,
            by: by.to_string(),
            comment: comment.to_string(),
        });
        let t = Transition {
            at: now_ms,
            id: a.id.clone(),
            rule: a.rule.clone(),
            labels: a.labels.clone(),
            severity: a.severity,
            to: "acknowledged",
            value: a.value,
        };
        self.push_history(&mut st, t);
        AckResult::Acknowledged
    }

    /// Current alerts (firing first, then pending, then resolved) and the history, newest first.
    pub fn snapshot(&self) -> (Vec<Alert>, Vec<Transition>) {
        let st = self.lock();
        let mut alerts: Vec<Alert> = st.alerts.values().cloned().collect();
        let order = |s: AlertState| match s {
            AlertState::Firing => 0,
            AlertState::Pending => 1,
            AlertState::Resolved => 2,
        };
        alerts.sort_by(|a, b| {
            (order(a.state), std::cmp::Reverse(a.severity), &a.rule).cmp(&(
                order(b.state),
                std::cmp::Reverse(b.severity),
                &b.rule,
            ))
        });
        (alerts, st.history.iter().rev().cloned().collect())
    }
}

/// The live state alert rules read besides the statistics.
pub struct LiveState<'a> {
    pub policy: &'a crate::policy::Policy,
    /// The last reload failed (and no later one succeeded).
    pub reload_failed: bool,
    pub keyring: &'a crate::kms::keystore::KeyRing,
}

/// Reads every rule of the running policy against the statistics and the live state.
pub fn observe<'a>(live: &LiveState<'_>, rules: &'a [AlertRule], now: Instant) -> Vec<Observation<'a>> {
    let stats = stats::stats();
    let policy = live.policy;
    let mut windows: BTreeMap<Duration, BTreeMap<String, Window>> = BTreeMap::new();
    let mut out = Vec::new();
    let now_unix = crate::clock::unix_now();
    for rule in rules {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        match rule.metric {
            m if m.is_request_metric() => {
                let by_route = windows
                    .entry(rule.window)
                    .or_insert_with(|| stats.route_windows(rule.window, now));
                if rule.per_route {
                    let no_traffic = Window::default();
                    for route in &policy.config.routes {
                        let w = by_route.get(&route.name).unwrap_or(&no_traffic);
                        out.push(Observation {
                            rule,
                            labels: labels(&[("route", &route.name)]),
                            value: request_value(m, w, rule.min_requests),
                        });
                    }
                } else {
                    let seconds = by_route.values().next().map(|w| w.seconds).unwrap_or(0.0);
                    let total = Stats::total(by_route, seconds);
                    out.push(Observation {
                        rule,
                        labels: BTreeMap::new(),
                        value: request_value(m, &total, rule.min_requests),
                    });
                }
            }
            AlertMetric::SigningFailureRate | AlertMetric::AnchorFailureRate => {
                let anchor = rule.metric == AlertMetric::AnchorFailureRate;
                for (alg, w) in stats.signing_windows(rule.window, now) {
                    // The anchor log's appends are kept as the series "anchor-log".
                    if (alg == crate::telemetry::metrics::ANCHOR_SERIES) != anchor {
                        continue;
                    }
                    let attempts = w.latency.count() + w.failures;
                    out.push(Observation {
                        rule,
                        labels: labels(&[("alg", alg)]),
                        value: if attempts >= rule.min_requests.max(1) {
                            w.failure_rate()
                        } else {
                            None
                        },
                    });
                }
            }
            AlertMetric::UpstreamHealthyPeers | AlertMetric::UpstreamHealthyRatio => {
                let now_ms = crate::clock::mono_ms();
                for (name, pool) in &policy.pools {
                    let healthy = pool.healthy_count(now_ms) as f64;
                    let value = if rule.metric == AlertMetric::UpstreamHealthyPeers {
                        healthy
                    } else {
                        healthy / pool.peers.len().max(1) as f64
                    };
                    out.push(Observation {
                        rule,
                        labels: labels(&[("upstream", name)]),
                        value: Some(value),
                    });
                }
            }
            AlertMetric::RedisUnavailable => out.push(Observation {
                rule,
                labels: BTreeMap::new(),
                value: Some(if crate::cluster::unavailable() { 1.0 } else { 0.0 }),
            }),
            AlertMetric::ConfigReloadFailed => out.push(Observation {
                rule,
                labels: BTreeMap::new(),
                value: Some(if live.reload_failed { 1.0 } else { 0.0 }),
            }),
            AlertMetric::SigningKeyExpiryDays => {
                for k in &live.keyring.published {
                    if let Some(exp) = k.expires {
                        out.push(Observation {
                            rule,
                            labels: labels(&[("keyid", &k.keyid)]),
                            value: Some(exp.saturating_sub(now_unix) as f64 / 86_400.0),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn request_value(metric: AlertMetric, w: &Window, min_requests: u64) -> Option<f64> {
    if metric == AlertMetric::RequestRate {
        return (w.requests >= min_requests).then(|| w.rate());
    }
    if w.requests < min_requests.max(1) {
        return None;
    }
    match metric {
        AlertMetric::ErrorRate => w.error_rate(),
        AlertMetric::DenialRate => Some(w.denied() as f64 / w.requests as f64),
        AlertMetric::LatencyAvg => w.latency.mean(),
        AlertMetric::LatencyP50 => w.latency.quantile(0.50),
        AlertMetric::LatencyP95 => w.latency.quantile(0.95),
        AlertMetric::LatencyP99 => w.latency.quantile(0.99),
        AlertMetric::UpstreamLatencyP95 => w.upstream.quantile(0.95),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerts::{builtin_rules, Comparison};

    fn rule(for_s: u64) -> AlertRule {
        let mut r = builtin_rules().remove(0);
        r.for_ = Duration::from_secs(for_s);
        r.comparison = Comparison::Gt;
        r.threshold = 0.05;
        r
    }

    fn obs(r: &AlertRule, v: Option<f64>) -> Vec<Observation<'_>> {
        vec![Observation {
            rule: r,
            labels: BTreeMap::from([("route".to_string(), "api".to_string())]),
            value: v,
        }]
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let e = AlertEngine::new(100);
        let r = rule(30);
        e.evaluate(0, &obs(&r, Some(0.5)));
        let (a, _) = e.snapshot();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].state, AlertState::Pending);
        e.evaluate(29_000, &obs(&r, Some(0.5)));
        assert_eq!(e.snapshot().0[0].state, AlertState::Pending);
        e.evaluate(30_000, &obs(&r, Some(0.6)));
        let (a, _) = e.snapshot();
        assert_eq!(a[0].state, AlertState::Firing);
        assert_eq!(a[0].fired_at, Some(30_000));
        assert_eq!(a[0].value, 0.6);
        e.evaluate(40_000, &obs(&r, Some(0.01)));
        let (a, h) = e.snapshot();
        assert_eq!(a[0].state, AlertState::Resolved);
        let kinds: Vec<&str> = h.iter().rev().map(|t| t.to).collect();
        assert_eq!(kinds, ["pending", "firing", "resolved"]);
    }

    #[test]
    fn a_short_blip_is_dropped_not_fired_and_no_data_does_not_fire() {
        let e = AlertEngine::new(100);
        let r = rule(30);
        e.evaluate(0, &obs(&r, Some(0.5)));
        e.evaluate(10_000, &obs(&r, None));
        assert!(e.snapshot().0.is_empty());
        assert_eq!(e.snapshot().1[0].to, "dropped");
    }

    #[test]
    fn same_rule_and_labels_is_one_alert_and_ack_sticks_until_resolved() {
        let e = AlertEngine::new(100);
        let r = rule(0);
        e.evaluate(0, &obs(&r, Some(0.5)));
        e.evaluate(1_000, &obs(&r, Some(0.7)));
        let (a, _) = e.snapshot();
        assert_eq!(a.len(), 1, "deduplicated by rule and labels");
        let id = a[0].id.clone();
        assert_eq!(e.acknowledge("nope", 1_500, "ops", ""), AckResult::NotFound);
        assert_eq!(e.acknowledge(&id, 1_500, "ops", "looking"), AckResult::Acknowledged);
        e.evaluate(2_000, &obs(&r, Some(0.9)));
        assert_eq!(e.snapshot().0[0].acknowledged.as_ref().unwrap().by, "ops");
        e.evaluate(3_000, &obs(&r, Some(0.0)));
        assert_eq!(e.acknowledge(&id, 3_500, "ops", ""), AckResult::Resolved);
        // Firing again is a new episode: same id, no acknowledgement.
        e.evaluate(4_000, &obs(&r, Some(0.9)));
        let (a, _) = e.snapshot();
        assert_eq!(a[0].id, id);
        assert_eq!(a[0].state, AlertState::Firing);
        assert!(a[0].acknowledged.is_none());
    }

    #[test]
    fn notifications_on_fire_resend_and_resolve() {
        let e = AlertEngine::new(100);
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        e.set_notifier(tx, Duration::from_secs(60));
        let r = rule(0);
        e.evaluate(0, &obs(&r, Some(0.5)));
        let first = rx.try_recv().unwrap();
        assert_eq!(first.alerts[0].state, AlertState::Firing);
        let body = crate::telemetry::webhook::alertmanager_body(&first, "http://x/alerts");
        assert_eq!(body[0]["annotations"]["state"], "firing");
        assert!(
            body[0]["endsAt"].as_str().unwrap().starts_with("1970-01-01T00:03:00"),
            "a firing alert lasts three resend periods: {body}"
        );
        e.evaluate(30_000, &obs(&r, Some(0.5)));
        assert!(rx.try_recv().is_err(), "not due for a resend yet");
        e.evaluate(60_000, &obs(&r, Some(0.5)));
        assert_eq!(rx.try_recv().unwrap().alerts[0].state, AlertState::Firing);
        e.evaluate(61_000, &obs(&r, Some(0.0)));
        let sent = rx.try_recv().unwrap();
        assert_eq!(sent.alerts[0].state, AlertState::Resolved);
        let body = crate::telemetry::webhook::alertmanager_body(&sent, "http://x/alerts");
        assert_eq!(body[0]["labels"]["alertname"], "HighErrorRate");
        assert_eq!(body[0]["labels"]["route"], "api");
        assert_eq!(body[0]["annotations"]["state"], "resolved");
        assert!(body[0]["endsAt"].as_str().unwrap().starts_with("1970-01-01T00:01:01"));
        e.evaluate(62_000, &obs(&r, Some(0.0)));
        assert!(rx.try_recv().is_err(), "resolved is sent once");
    }

    #[test]
    fn a_full_queue_retries_at_the_next_evaluation() {
        let e = AlertEngine::new(100);
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        e.set_notifier(tx, Duration::from_secs(60));
        let r = rule(0);
        e.evaluate(0, &obs(&r, Some(0.5)));
        e.evaluate(1_000, &obs(&r, Some(0.0)));
        // The queue held the firing batch; the resolved one could not be queued.
        assert_eq!(rx.try_recv().unwrap().alerts[0].state, AlertState::Firing);
        e.evaluate(2_000, &obs(&r, Some(0.0)));
        assert_eq!(rx.try_recv().unwrap().alerts[0].state, AlertState::Resolved);
    }

    #[test]
    fn history_is_bounded() {
        let e = AlertEngine::new(3);
        let r = rule(0);
        for i in 0..10 {
            e.evaluate(i * 1000, &obs(&r, Some(if i % 2 == 0 { 0.5 } else { 0.0 })));
        }
        assert_eq!(e.snapshot().1.len(), 3);
    }
}
