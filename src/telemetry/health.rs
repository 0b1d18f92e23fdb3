//! Gateway health: one status from the alerts, the reload state and the upstream pools, with
//! the reasons, as `GET /health` on the admin port serves it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::clock::mono_ms;
use crate::reload::Runtime;
use crate::telemetry::alerts::AlertEngine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
    Critical,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Critical => "critical",
        }
    }
}

/// What health is computed from: the alert engine, the reloadable state (reload status and
/// the running policy's pools), and when the gateway started.
pub struct Health {
    alerts: Arc<AlertEngine>,
    runtime: Arc<Runtime>,
    started: SystemTime,
}

impl Health {
    pub fn new(alerts: Arc<AlertEngine>, runtime: Arc<Runtime>, started: SystemTime) -> Health {
        Health {
            alerts,
            runtime,
            started,
        }
    }

    pub fn report(&self) -> (HealthStatus, serde_json::Value) {
        health(&self.alerts, &self.runtime, self.started)
    }
}

/// Health from the alerts, the reload state and the pools:
/// - critical: a critical alert is firing, or a pool has no peer left (its routes can only
///   answer 502);
/// - unhealthy: a critical alert is pending (its condition holds, its `for` has not elapsed);
/// - degraded: a warning alert is firing, the last reload failed, a pool lost some peers, or
///   Redis is unreachable in cluster mode;
/// - healthy otherwise (info alerts are listed but change nothing).
///
/// An acknowledged alert still counts: acknowledging says someone is on it, not that it is fixed.
fn health(alerts: &AlertEngine, runtime: &Runtime, started: SystemTime) -> (HealthStatus, serde_json::Value) {
    let mut status = HealthStatus::Healthy;
    let mut reasons = Vec::new();
    let (alerts, _) = alerts.snapshot();
    let mut alert_counts = serde_json::Map::new();
    for a in &alerts {
        use crate::config::alerts::Severity;
        use crate::telemetry::alerts::AlertState;
        let effect = match (a.state, a.severity) {
            (AlertState::Firing, Severity::Critical) => HealthStatus::Critical,
            (AlertState::Pending, Severity::Critical) => HealthStatus::Unhealthy,
            (AlertState::Firing, Severity::Warning) => HealthStatus::Degraded,
            _ => HealthStatus::Healthy,
        };
        if a.state != AlertState::Resolved {
            let key = format!(
                "{}_{}",
                a.severity.as_str(),
                if a.state == AlertState::Firing {
                    "firing"
                } else {
                    "pending"
                }
            );
            let n = alert_counts.get(&key).and_then(|v| v.as_u64()).unwrap_or(0);
            alert_counts.insert(key, (n + 1).into());
            status = status.max(effect);
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            reasons.push(format!(
                "alert {} {} ({}{}): {} {} {} (value {}){}",
                a.rule,
                if a.state == AlertState::Firing {
                    "firing"
                } else {
                    "pending"
                },
                a.severity.as_str(),
                if labels.is_empty() {
                    String::new()
                } else {
                    format!(", {}", labels.join(", "))
                },
                a.metric,
                a.comparison,
                a.threshold,
                (a.value * 1e4).round() / 1e4,
                if a.acknowledged.is_some() { ", acknowledged" } else { "" },
            ));
        }
    }
    let reload = runtime.status();
    if let Some(err) = &reload.last_error {
        status = status.max(HealthStatus::Degraded);
        reasons.push(format!(
            "last config reload failed, running policy generation {} kept: {}",
            reload.generation,
            err.lines().next().unwrap_or("")
        ));
    }
    if !reload.restart_needed.is_empty() {
        reasons.push(format!("restart needed for: {}", reload.restart_needed.join(", ")));
    }
    if crate::integrity::anchor::failing() {
        // Batch-signed responses cannot be released while their roots cannot be logged.
        status = status.max(HealthStatus::Critical);
        reasons.push("anchor log unwritable: batch-signed responses go out unsigned".to_string());
    }
    if crate::cluster::unavailable() {
        status = status.max(HealthStatus::Degraded);
        reasons.push(
            "redis unreachable: shared rate limits and quotas decide by their fallbacks (on_redis_down)".to_string(),
        );
    }
    let policy = runtime.policy.load();
    let now = mono_ms();
    let mut upstreams = serde_json::Map::new();
    let mut names: Vec<&String> = policy.pools.keys().collect();
    names.sort();
    for name in names {
        let pool = &policy.pools[name];
        let healthy = pool.healthy_count(now);
        let total = pool.peers.len();
        if healthy == 0 {
            status = status.max(HealthStatus::Critical);
            reasons.push(format!("upstream {name}: no peer available"));
        } else if healthy < total {
            status = status.max(HealthStatus::Degraded);
            reasons.push(format!("upstream {name}: {healthy} of {total} peers available"));
        }
        let peers: Vec<_> = pool
            .peers
            .iter()
            .map(
                |p| json!({"peer": p.state.label, "healthy": p.state.is_healthy(), "ejected": p.state.is_ejected(now)}),
            )
            .collect();
        upstreams.insert(
            name.clone(),
            json!({"available": healthy, "total": total, "peers": peers}),
        );
    }
    let body = json!({
        "status": status.as_str(),
        "reasons": reasons,
        "policy": {"generation": policy.generation, "hash": policy.hash()},
        "reloads": {"ok": reload.ok, "failed": reload.failed,
                    "last": reload.last_reload.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
                    "last_trigger": reload.last_trigger},
        "upstreams": upstreams,
        "alerts": alert_counts,
        "uptime_seconds": started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
        "version": env!("CARGO_PKG_VERSION"),
    });
    (status, body)
}
