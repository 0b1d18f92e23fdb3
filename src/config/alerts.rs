//! Alert rules: the `alerts:` block of the policy files (hot-reloadable), merged onto the
//! built-in defaults. A rule compares one metric the gateway computes itself (over a sliding
//! window of its statistics, or from live state) with a threshold; when the comparison holds for
//! `for`, the alert fires.
//!
//! ```yaml
//! alerts:
//!   builtin: true               # keep the built-in rules (a rule of the same name replaces one)
//!   rules:
//!     - name: HighErrorRate
//!       metric: error_rate      # see AlertMetric
//!       comparison: ">"
//!       threshold: 0.05
//!       window: 5m
//!       for: 1m
//!       severity: critical      # info | warning | critical
//!       per_route: false        # one alert per route instead of one for the gateway
//!       min_requests: 20        # ratios and latencies need this many requests in the window
//!       labels: {team: api}
//!       description: More than 5% of requests fail
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::error::{ConfigError, SourceFile};
use super::names::{self, Names};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    #[serde(default = "yes")]
    pub builtin: bool,
    #[serde(default)]
    pub rules: Vec<RawAlertRule>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertRule {
    name: String,
    metric: String,
    comparison: String,
    threshold: f64,
    #[serde(default, deserialize_with = "de::opt_duration")]
    window: Option<Duration>,
    #[serde(default, rename = "for", deserialize_with = "de::opt_duration")]
    for_: Option<Duration>,
    severity: String,
    #[serde(default)]
    per_route: bool,
    #[serde(default)]
    min_requests: Option<u64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    description: Option<String>,
}

/// What a rule measures. Request metrics are over the rule's window, gateway-wide or per route;
/// the others are per algorithm, pool, key or the whole process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertMetric {
    /// Failures (5xx, no response) over requests.
    ErrorRate,
    /// Requests per second.
    RequestRate,
    /// Denied requests over requests.
    DenialRate,
    /// Latencies in seconds.
    LatencyAvg,
    LatencyP50,
    LatencyP95,
    LatencyP99,
    UpstreamLatencyP95,
    /// Signing failures over attempts, per algorithm.
    SigningFailureRate,
    /// Peers in rotation, per upstream pool.
    UpstreamHealthyPeers,
    /// Peers in rotation over peers configured, per upstream pool.
    UpstreamHealthyRatio,
    /// 1 while the last reload failed, else 0.
    ConfigReloadFailed,
    /// Days until a published signing key version expires, per key.
    SigningKeyExpiryDays,
    /// Failed anchor-log appends over attempts (batch signing).
    AnchorFailureRate,
    /// 1 while Redis is unreachable in cluster mode (the breaker is open), else 0.
    RedisUnavailable,
}

impl AlertMetric {
    pub const ALL: [(&'static str, AlertMetric); 15] = [
        ("error_rate", AlertMetric::ErrorRate),
        ("request_rate", AlertMetric::RequestRate),
        ("denial_rate", AlertMetric::DenialRate),
        ("latency_avg", AlertMetric::LatencyAvg),
        ("latency_p50", AlertMetric::LatencyP50),
        ("latency_p95", AlertMetric::LatencyP95),
        ("latency_p99", AlertMetric::LatencyP99),
        ("upstream_latency_p95", AlertMetric::UpstreamLatencyP95),
        ("signing_failure_rate", AlertMetric::SigningFailureRate),
        ("upstream_healthy_peers", AlertMetric::UpstreamHealthyPeers),
        ("upstream_healthy_ratio", AlertMetric::UpstreamHealthyRatio),
        ("config_reload_failed", AlertMetric::ConfigReloadFailed),
        ("signing_key_expiry_days", AlertMetric::SigningKeyExpiryDays),
        ("anchor_failure_rate", AlertMetric::AnchorFailureRate),
        ("redis_unavailable", AlertMetric::RedisUnavailable),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown")
    }

    /// Computed from the request statistics over a window (so `window`, `per_route` and
    /// `min_requests` apply).
    pub fn is_request_metric(self) -> bool {
        matches!(
            self,
            AlertMetric::ErrorRate
                | AlertMetric::RequestRate
                | AlertMetric::DenialRate
                | AlertMetric::LatencyAvg
                | AlertMetric::LatencyP50
                | AlertMetric::LatencyP95
                | AlertMetric::LatencyP99
                | AlertMetric::UpstreamLatencyP95
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Comparison {
    fn parse(s: &str) -> Option<Comparison> {
        Some(match s {
            ">" => Comparison::Gt,
            ">=" => Comparison::Ge,
            "<" => Comparison::Lt,
            "<=" => Comparison::Le,
            "==" => Comparison::Eq,
            "!=" => Comparison::Ne,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
            Comparison::Eq => value == threshold,
            Comparison::Ne => value != threshold,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A validated alert rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub name: String,
    pub metric: AlertMetric,
    pub comparison: Comparison,
    pub threshold: f64,
    pub window: Duration,
    pub for_: Duration,
    pub severity: Severity,
    pub per_route: bool,
    pub min_requests: u64,
    pub labels: BTreeMap<String, String>,
    pub description: String,
}

impl AlertRule {
    #[allow(clippy::too_many_arguments)]
    fn builtin(
        name: &str,
        metric: AlertMetric,
        comparison: Comparison,
        threshold: f64,
        window_s: u64,
        for_s: u64,
        severity: Severity,
        min_requests: u64,
        description: &str,
    ) -> AlertRule {
        AlertRule {
            name: name.into(),
            metric,
            comparison,
            threshold,
            window: Duration::from_secs(window_s),
            for_: Duration::from_secs(for_s),
            severity,
            per_route: false,
            min_requests,
            labels: BTreeMap::new(),
            description: description.into(),
        }
    }
}

/// The defaults of the seed document, plus a failed reload and a key near expiry. The
/// `prometheus/alerts.yml` rules are their PromQL equivalents.
pub fn builtin_rules() -> Vec<AlertRule> {
    use AlertMetric as M;
    use Comparison as C;
    use Severity as S;
    vec![
        AlertRule::builtin(
            "HighErrorRate",
            M::ErrorRate,
            C::Gt,
            0.05,
            300,
            60,
            S::Critical,
            20,
            "More than 5% of requests failed (5xx or no response) over 5 minutes",
        ),
        AlertRule::builtin(
            "HighLatencyP95",
            M::LatencyP95,
            C::Gt,
            5.0,
            300,
            120,
            S::Warning,
            20,
            "p95 request latency above 5 s over 5 minutes",
        ),
        AlertRule::builtin(
            "SigningFailures",
            M::SigningFailureRate,
            C::Gt,
            0.10,
            300,
            60,
            S::Warning,
            10,
            "More than 10% of response signatures failed over 5 minutes",
        ),
        AlertRule::builtin(
            "UpstreamDown",
            M::UpstreamHealthyPeers,
            C::Le,
            0.0,
            60,
            30,
            S::Critical,
            0,
            "Every peer of an upstream pool is out of rotation",
        ),
        AlertRule::builtin(
            "ConfigReloadFailed",
            M::ConfigReloadFailed,
            C::Ge,
            1.0,
            60,
            0,
            S::Warning,
            0,
            "The last policy reload failed; the previous policy is still running",
        ),
        AlertRule::builtin(
            "SigningKeyExpiring",
            M::SigningKeyExpiryDays,
            C::Lt,
            7.0,
            60,
            0,
            S::Warning,
            0,
            "A published signing key expires within 7 days",
        ),
        AlertRule::builtin(
            "AnchorFailures",
            M::AnchorFailureRate,
            C::Gt,
            0.10,
            60,
            0,
            S::Warning,
            1,
            "More than 10% of signed batches could not be written to the anchor log",
        ),
        AlertRule::builtin(
            "RedisUnavailable",
            M::RedisUnavailable,
            C::Ge,
            1.0,
            60,
            0,
            S::Warning,
            0,
            "Cluster mode: Redis is unreachable; shared rate limits and quotas decide by their fallbacks",
        ),
    ]
}

/// Validates one rule; errors name the field.
pub fn rule(raw: &RawAlertRule) -> Result<AlertRule, (&'static str, String)> {
    if raw.name.is_empty()
        || raw.name.len() > 64
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(("name", "letters, digits, '-' and '_' (at most 64)".into()));
    }
    let metric = AlertMetric::ALL
        .iter()
        .find(|(n, _)| *n == raw.metric)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let names: Vec<&str> = AlertMetric::ALL.iter().map(|(n, _)| *n).collect();
            (
                "metric",
                format!("unknown metric {:?}; one of {}", raw.metric, names.join(", ")),
            )
        })?;
    let comparison =
        Comparison::parse(&raw.comparison).ok_or(("comparison", "one of >, >=, <, <=, ==, !=".to_string()))?;
    if !raw.threshold.is_finite() {
        return Err(("threshold", "must be a finite number".into()));
    }
    let window = raw.window.unwrap_or(Duration::from_secs(300));
    if window.is_zero() || window > crate::telemetry::stats::MAX_WINDOW {
        return Err(("window", "between 1s and 15m (the statistics keep 15 minutes)".into()));
    }
    let severity = match raw.severity.as_str() {
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        "critical" => Severity::Critical,
        _ => return Err(("severity", "one of info, warning, critical".into())),
    };
    if raw.per_route && !metric.is_request_metric() {
        return Err(("per_route", format!("{} is not a request metric", raw.metric)));
    }
    for k in raw.labels.keys() {
        let ok = !k.is_empty()
            && !k.starts_with("__")
            && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok
            || matches!(
                k.as_str(),
                "alertname" | "severity" | "route" | "upstream" | "alg" | "keyid"
            )
        {
            return Err((
                "labels",
                format!("{k:?} is not a free label name (Prometheus syntax; alertname, severity, route, upstream, alg and keyid are set by the gateway)"),
            ));
        }
    }
    Ok(AlertRule {
        name: raw.name.clone(),
        metric,
        comparison,
        threshold: raw.threshold,
        window,
        for_: raw.for_.unwrap_or(Duration::ZERO),
        severity,
        per_route: raw.per_route,
        min_requests: raw.min_requests.unwrap_or(match metric {
            AlertMetric::RequestRate => 0,
            m if m.is_request_metric() => 20,
            _ => 0,
        }),
        labels: raw.labels.clone(),
        description: raw.description.clone().unwrap_or_default(),
    })
}

/// The built-in alert rules, replaced by name or switched off by the policy's `alerts` blocks
/// (which may sit in several files; rule names are unique across them).
pub(super) fn build<'a>(
    blocks: impl Iterator<Item = (&'a SourceFile, &'a RawAlerts)> + Clone,
    errors: &mut Vec<ConfigError>,
) -> Vec<AlertRule> {
    let builtin = blocks.clone().all(|(_, a)| a.builtin);
    let mut own: Vec<AlertRule> = Vec::new();
    let mut own_names = Names::new(names::ALERT_RULE);
    for (src, alerts) in blocks {
        for (i, r) in alerts.rules.iter().enumerate() {
            match rule(r) {
                Ok(rule) => match own_names.claim(&rule.name, &src.path) {
                    Ok(()) => own.push(rule),
                    Err(m) => errors.push(src.error(&format!("alerts.rules[{i}].name"), m)),
                },
                Err((field, msg)) => errors.push(src.error(&format!("alerts.rules[{i}].{field}"), msg)),
            }
        }
    }
    let mut rules: Vec<AlertRule> = if builtin {
        builtin_rules()
            .into_iter()
            .filter(|b| !own.iter().any(|o| o.name == b.name))
            .collect()
    } else {
        Vec::new()
    };
    rules.extend(own);
    rules
}
