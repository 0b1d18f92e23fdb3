//! The admin port: a separate listener, loopback by default (`admin.address`).
//!
//! Endpoints:
//! - `GET /metrics`: Prometheus text exposition of every `quantumvault_*` metric.
//! - `GET /health`: `{"status": "healthy|degraded|unhealthy|critical", "reasons": [...], ...}`;
//!   HTTP 200 when healthy or degraded, 503 otherwise.
//! - `POST /reload`: re-reads the config like SIGHUP; 200 with the new generation, or 422 with
//!   the errors (the running policy stays). With an admin token configured it needs
//!   `Authorization: Bearer <token>` (401 otherwise).
//! - `GET /stats`: per route and gateway-wide statistics over 1, 5 and 15 minutes (rate,
//!   successes, failures, error rate, latency avg/p50/p95/p99, upstream latency and gateway
//!   overhead apart, denials by reason) and signing latency by algorithm.
//! - `GET /alerts`: alert instances (pending, firing, resolved) and their history.
//! - `POST /alerts/{id}/ack`: acknowledges an alert until it resolves; needs the admin token
//!   like `/reload`. Optional JSON body `{"by": "...", "comment": "..."}`.
//! - `GET /ready`: 200 once the listeners are up and a policy is loaded (for load balancers).
//! - `GET /errors`: the last 100 gateway-side errors (no bodies, keys or secrets).
//! - `GET /usage`: per-API-key usage (requests, bytes, denials, last seen, per route, quotas).
//! - `GET /usage/{key_id}`: one key's usage; 404 if the key never existed.
//! - `GET /keys`: signing key versions (ids, algorithms, states, ages, expiry; no material).
//! - `GET /`: this list.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::json;

use crate::reload::Runtime;
use crate::upstream::now_ms;

pub struct AdminApp {
    runtime: Arc<Runtime>,
    metrics: PrometheusHandle,
}

impl AdminApp {
    pub fn new(runtime: Arc<Runtime>, metrics: PrometheusHandle) -> AdminApp {
        AdminApp { runtime, metrics }
    }

    /// State-changing endpoints need the bearer token when one is configured (compared in
    /// constant time).
    fn authorized(&self, session: &ServerSession) -> bool {
        let Some(token) = &self.runtime.gateway.admin_token else {
            return true;
        };
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        crate::integrity::hmac::ct_eq(presented.as_bytes(), token.0.as_bytes())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
    Critical,
}

impl HealthStatus {
    fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Critical => "critical",
        }
    }
}

/// Health from the alerts, the reload state and the pools:
/// - critical: a critical alert is firing, or a pool has no peer left (its routes can only
///   answer 502);
/// - unhealthy: a critical alert is pending (its condition holds, its `for` has not elapsed);
/// - degraded: a warning alert is firing, the last reload failed, or a pool lost some peers;
/// - healthy otherwise (info alerts are listed but change nothing).
///
/// An acknowledged alert still counts: acknowledging says someone is on it, not that it is fixed.
pub fn health(runtime: &Runtime) -> (HealthStatus, serde_json::Value) {
    let mut status = HealthStatus::Healthy;
    let mut reasons = Vec::new();
    let (alerts, _) = runtime.alerts.snapshot();
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
    let policy = runtime.policy.load();
    let now = now_ms();
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
        "uptime_seconds": runtime.started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
        "version": env!("CARGO_PKG_VERSION"),
    });
    (status, body)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
    let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .header("Content-Length", bytes.len())
        .body(bytes)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        match (method, path.as_str()) {
            (Method::GET, "/metrics") => {
                let mut text = self.metrics.render();
                crate::telemetry::histogram::render(&mut text);
                Response::builder()
                    .status(200)
                    .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    .header("Content-Length", text.len())
                    .body(text.into_bytes())
                    .unwrap_or_default()
            }
            (Method::GET, "/health") => {
                let (status, body) = health(&self.runtime);
                let code = if status <= HealthStatus::Degraded {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                json_response(code, body)
            }
            (Method::GET, "/errors") => {
                json_response(StatusCode::OK, json!({"errors": crate::telemetry::errors::recent()}))
            }
            (Method::GET, "/stats") => json_response(
                StatusCode::OK,
                crate::telemetry::stats::stats().report(std::time::Instant::now()),
            ),
            (Method::GET, "/alerts") => {
                let (alerts, history) = self.runtime.alerts.snapshot();
                let rules: Vec<_> = self
                    .runtime
                    .policy
                    .load()
                    .config
                    .alerts
                    .iter()
                    .map(|r| {
                        json!({"name": r.name, "metric": r.metric.name(), "comparison": r.comparison.as_str(),
                               "threshold": r.threshold, "window_seconds": r.window.as_secs_f64(),
                               "for_seconds": r.for_.as_secs_f64(), "severity": r.severity,
                               "per_route": r.per_route, "min_requests": r.min_requests, "labels": r.labels})
                    })
                    .collect();
                json_response(
                    StatusCode::OK,
                    json!({"alerts": alerts, "history": history, "rules": rules,
                           "evaluation_enabled": self.runtime.gateway.monitoring.enabled}),
                )
            }
            (Method::POST, p) if ack_id(p).is_some() && !self.authorized(session) => json_response(
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "message": "this endpoint needs the admin bearer token"}),
            ),
            (Method::POST, p) if ack_id(p).is_some() => {
                let id = ack_id(p).unwrap_or_default().to_string();
                let (by, comment) = read_ack_body(session).await;
                use crate::telemetry::alerts::AckResult;
                match self
                    .runtime
                    .alerts
                    .acknowledge(&id, crate::telemetry::alerts::unix_ms(), &by, &comment)
                {
                    AckResult::Acknowledged => {
                        log::info!("alert {id} acknowledged by {by}");
                        json_response(StatusCode::OK, json!({"result": "acknowledged", "id": id}))
                    }
                    AckResult::NotFound => json_response(StatusCode::NOT_FOUND, json!({"error": "unknown_alert"})),
                    AckResult::Resolved => json_response(
                        StatusCode::CONFLICT,
                        json!({"error": "alert_resolved", "message": "the alert has resolved; nothing to acknowledge"}),
                    ),
                }
            }
            (Method::GET, "/ready") => json_response(
                StatusCode::OK,
                json!({"ready": true, "policy_generation": self.runtime.policy.load().generation}),
            ),
            (Method::POST, "/reload") if !self.authorized(session) => json_response(
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "message": "this endpoint needs the admin bearer token"}),
            ),
            (Method::POST, "/reload") => {
                // Drain any request body; the reload itself reads the files, not the request.
                while let Ok(Some(_)) = session.read_request_body().await {}
                let runtime = self.runtime.clone();
                let result = tokio::task::spawn_blocking(move || runtime.reload("admin POST /reload")).await;
                match result {
                    Ok(Ok(generation)) => {
                        json_response(StatusCode::OK, json!({"result": "ok", "generation": generation}))
                    }
                    Ok(Err(errors)) => json_response(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"result": "error", "errors": errors.lines().collect::<Vec<_>>(), "generation": self.runtime.policy.load().generation}),
                    ),
                    Err(_) => json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"result": "error", "errors": ["reload task failed"]}),
                    ),
                }
            }
            (Method::GET, "/usage") => {
                let usage = self.runtime.registries.usage.snapshot();
                json_response(StatusCode::OK, json!({"keys": usage}))
            }
            (Method::GET, p) if p.starts_with("/usage/") => {
                let id = &p["/usage/".len()..];
                match self.runtime.registries.usage.get(id) {
                    Some(u) => json_response(StatusCode::OK, json!({"key_id": id, "usage": u})),
                    None => json_response(StatusCode::NOT_FOUND, json!({"error": "unknown_key"})),
                }
            }
            (Method::GET, "/keys") => {
                let ring = self.runtime.keyring.load();
                let now = crate::usage::unix_now();
                let primary: Vec<&str> = ring.signers.iter().map(|s| s.keyid.as_str()).collect();
                let keys: Vec<_> = ring
                    .published
                    .iter()
                    .map(|k| {
                        json!({
                            "keyid": k.keyid, "alg": k.alg.name(), "state": format!("{:?}", k.state).to_lowercase(),
                            "primary": primary.contains(&k.keyid.as_str()), "created": k.created,
                            "age_seconds": now.saturating_sub(k.created), "expires": k.expires,
                        })
                    })
                    .collect();
                json_response(StatusCode::OK, json!({"keys": keys}))
            }
            (Method::GET, "/") => json_response(
                StatusCode::OK,
                json!({"endpoints": ["GET /metrics", "GET /health", "GET /stats", "GET /alerts", "POST /alerts/{id}/ack", "POST /reload", "GET /usage", "GET /usage/{key_id}", "GET /keys", "GET /ready", "GET /errors"]}),
            ),
            (
                _,
                "/metrics" | "/health" | "/reload" | "/" | "/usage" | "/keys" | "/ready" | "/errors" | "/stats"
                | "/alerts",
            ) => json_response(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "method_not_allowed"})),
            _ => json_response(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
        }
    }
}

/// The alert id of `/alerts/{id}/ack`.
fn ack_id(path: &str) -> Option<&str> {
    path.strip_prefix("/alerts/")
        .and_then(|r| r.strip_suffix("/ack"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Reads the optional `{"by": ..., "comment": ...}` of an acknowledgement (at most 4 KiB; each
/// field cut to 200 characters). Anything else is ignored rather than refused: the
/// acknowledgement itself is what matters.
async fn read_ack_body(session: &mut ServerSession) -> (String, String) {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = session.read_request_body().await {
        if body.len() + chunk.len() > 4096 {
            while let Ok(Some(_)) = session.read_request_body().await {}
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let field = |name: &str| -> String {
        v.get(name)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect()
    };
    let by = field("by");
    (if by.is_empty() { "admin".into() } else { by }, field("comment"))
}

/// Persists API-key usage every `interval` and once more when the server shuts down.
pub struct UsageFlusher {
    pub runtime: Arc<Runtime>,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for UsageFlusher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        crate::background::every(self.interval, &mut shutdown, || self.save()).await;
        self.save().await;
    }
}

impl UsageFlusher {
    async fn save(&self) {
        let runtime = self.runtime.clone();
        let saved = tokio::task::spawn_blocking(move || runtime.registries.usage.save()).await;
        if let Ok(Err(e)) = saved {
            log::error!("cannot save API-key usage: {e}");
        }
    }
}

/// Re-reads the keystore every `interval`: auto-rotation by age and expiry happens on a
/// long-running gateway too, not only at start and reload.
pub struct KeyMaintenance {
    pub runtime: Arc<Runtime>,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for KeyMaintenance {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        crate::background::every(self.interval, &mut shutdown, || async {
            let runtime = self.runtime.clone();
            let result = tokio::task::spawn_blocking(move || {
                let policy = runtime.policy.load();
                crate::reload::load_keyring(&runtime.gateway, &policy.config)
                    .map(|ring| runtime.keyring.store(Arc::new(ring)))
            })
            .await;
            if let Ok(Err(e)) = result {
                log::error!("key maintenance: {e}; the current keys stay in use");
            }
        })
        .await;
    }
}

/// Drains histogram samples into their buckets so memory stays flat between scrapes, and
/// forgets the statistics of routes that are gone.
pub struct MetricsUpkeep(pub PrometheusHandle);

#[async_trait]
impl BackgroundService for MetricsUpkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        crate::background::every(Duration::from_secs(5), &mut shutdown, || async {
            self.0.run_upkeep();
            crate::telemetry::stats::stats().prune(std::time::Instant::now());
        })
        .await;
    }
}
