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

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::config::gateway::AdminToken;
use crate::config::GatewayConfig;
use crate::reload::Runtime;
use crate::telemetry::alerts::AlertEngine;
use crate::telemetry::health::{Health, HealthStatus};

pub struct AdminApp {
    /// Reload, the running policy, keys and usage.
    runtime: Arc<Runtime>,
    alerts: Arc<AlertEngine>,
    health: Health,
    /// The bearer token in force; a reload that reads a new one swaps it in.
    token: Arc<ArcSwap<Option<AdminToken>>>,
    /// `admin.allowed_hosts` and `admin.open_endpoints` (restart to change).
    allowed_hosts: Vec<String>,
    open_endpoints: Vec<String>,
    evaluation_enabled: bool,
    metrics: PrometheusHandle,
}

impl AdminApp {
    pub fn new(
        gateway: &GatewayConfig,
        runtime: Arc<Runtime>,
        alerts: Arc<AlertEngine>,
        health: Health,
        token: Arc<ArcSwap<Option<AdminToken>>>,
        metrics: PrometheusHandle,
    ) -> AdminApp {
        AdminApp {
            runtime,
            alerts,
            health,
            token,
            allowed_hosts: gateway.admin_hosts.clone(),
            open_endpoints: gateway.admin_open.clone(),
            evaluation_enabled: gateway.monitoring.enabled,
            metrics,
        }
    }

    /// State-changing endpoints need the bearer token when one is configured (compared in
    /// constant time).
    fn authorized(&self, session: &ServerSession) -> bool {
        let token = self.token.load();
        let Some(token) = token.as_ref() else {
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

/// Whether a request may reach the admin port from where it came: its `Host` is an IP literal,
/// `localhost` or an allowed name (so a page that rebinds its own DNS name to this address
/// cannot read it), and a POST is not sent cross-site by a browser (`Origin` naming another
/// host, or `Sec-Fetch-Site` other than `same-origin` / `none`).
fn admitted(req: &pingora::http::RequestHeader, method: &Method, allowed: &[String]) -> Result<(), &'static str> {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host").or(req.uri.authority().map(|a| a.as_str())).unwrap_or("");
    // (No Host at all: an HTTP/1.0 probe, never a browser.)
    let name = match host {
        "" => String::new(),
        h => {
            crate::canonical::host::parse_authority(h.as_bytes())
                .map_err(|_| "this admin port does not answer to that Host; add it to admin.allowed_hosts")?
                .host
        }
    };
    let literal = name.is_empty() || name.parse::<std::net::IpAddr>().is_ok();
    if !(literal || name == "localhost" || allowed.iter().any(|a| *a == name)) {
        return Err("this admin port does not answer to that Host; add it to admin.allowed_hosts");
    }
    if *method == Method::POST {
        // A browser sends a cross-site POST without a CORS preflight only with a form,
        // multipart or text/plain body; the admin port answers no preflight, so a POST whose
        // body is anything but JSON is refused, and a forged form is refused even by a browser
        // that sends neither Origin nor Sec-Fetch-Site. A POST without a body type
        // (`curl -X POST`) is not one a page can forge with a body.
        let ct = req.headers.get(http::header::CONTENT_TYPE);
        if ct.is_some() && crate::text::media_type_of(&req.headers) != "application/json" {
            return Err("admin POST bodies must be Content-Type: application/json");
        }
        if let Some(site) = header("sec-fetch-site") {
            if site != "same-origin" && site != "none" {
                return Err("cross-site requests to the admin port are refused");
            }
        }
        if let Some(origin) = header("origin") {
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
            if !origin_host.eq_ignore_ascii_case(host) {
                return Err("cross-site requests to the admin port are refused");
            }
        }
    }
    Ok(())
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        if let Err(why) = admitted(session.req_header(), &method, &self.allowed_hosts) {
            return json_response(StatusCode::FORBIDDEN, json!({"error": "forbidden", "message": why}));
        }
        // With a token set, reads that reveal key ids, peers, usage or errors need it too;
        // the probes' endpoints (`admin.open_endpoints`) stay open.
        if method == Method::GET && !self.open_endpoints.iter().any(|p| *p == path) && !self.authorized(session) {
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "message": "this endpoint needs the admin bearer token"}),
            );
        }
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
                let (status, body) = self.health.report();
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
                crate::telemetry::stats::stats().report(crate::clock::instant()),
            ),
            (Method::GET, "/alerts") => {
                let (alerts, history) = self.alerts.snapshot();
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
                           "evaluation_enabled": self.evaluation_enabled}),
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
                match self.alerts.acknowledge(&id, crate::clock::unix_ms(), &by, &comment) {
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
                        json!({"result": "error", "errors": errors.to_string().lines().collect::<Vec<_>>(), "generation": self.runtime.policy.load().generation}),
                    ),
                    Err(_) => json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"result": "error", "errors": ["reload task failed"]}),
                    ),
                }
            }
            (Method::GET, "/usage") => {
                let (scope, usage) = self.usage(None).await;
                json_response(StatusCode::OK, json!({"scope": scope, "keys": usage}))
            }
            (Method::GET, p) if p.starts_with("/usage/") => {
                let id = &p["/usage/".len()..];
                let (scope, mut usage) = self.usage(Some(id)).await;
                match usage.remove(id) {
                    Some(u) => json_response(StatusCode::OK, json!({"scope": scope, "key_id": id, "usage": u})),
                    None => json_response(StatusCode::NOT_FOUND, json!({"error": "unknown_key"})),
                }
            }
            (Method::GET, "/keys") => {
                let ring = self.runtime.keyring.load();
                let now = crate::clock::unix_now();
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
impl AdminApp {
    /// Usage of every key (or of `only`): in cluster mode the fleet's totals from Redis
    /// (`scope: fleet`), else, or while Redis is unreachable, this instance's (`scope: local`).
    async fn usage(
        &self,
        only: Option<&str>,
    ) -> (
        &'static str,
        std::collections::BTreeMap<String, crate::usage::KeyUsageSnapshot>,
    ) {
        let store = &self.runtime.registries.usage;
        let local = match only {
            Some(id) => store.get(id).map(|u| (id.to_string(), u)).into_iter().collect(),
            None => store.snapshot(),
        };
        let Some(cluster) = &self.runtime.registries.cluster else {
            return ("local", local);
        };
        let ids: Vec<String> = local.keys().cloned().collect();
        match crate::cluster::usage::fleet_usage(cluster, ids, crate::clock::unix_now()).await {
            Ok(fleet) => ("fleet", fleet),
            Err(_) => ("local", local),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_hosts_and_same_site_posts_are_admitted() {
        let req = |method: &str, headers: &[(&str, &str)]| {
            let mut r = pingora::http::RequestHeader::build(method, b"/reload", None).unwrap();
            for (k, v) in headers {
                r.insert_header(k.to_string(), *v).unwrap();
            }
            r
        };
        let allowed = vec!["gw.internal".to_string()];
        let ok = |m: Method, h: &[(&str, &str)]| admitted(&req(m.as_str(), h), &m, &allowed).is_ok();
        for host in [
            "127.0.0.1:9901",
            "[::1]:9901",
            "localhost:9901",
            "LOCALHOST",
            "gw.internal:9901",
            "10.0.0.5",
        ] {
            assert!(ok(Method::GET, &[("Host", host)]), "{host}");
        }
        for host in [
            "evil.example:9901",
            "127.0.0.1.evil.example",
            "gw.internal.evil:9901",
            "[::1]x.evil",
        ] {
            assert!(!ok(Method::GET, &[("Host", host)]), "{host}");
        }
        assert!(ok(Method::POST, &[("Host", "127.0.0.1:9901")]));
        assert!(ok(
            Method::POST,
            &[("Host", "127.0.0.1:9901"), ("Origin", "http://127.0.0.1:9901")]
        ));
        assert!(!ok(
            Method::POST,
            &[("Host", "127.0.0.1:9901"), ("Origin", "http://evil.example")]
        ));
        assert!(!ok(
            Method::POST,
            &[("Host", "127.0.0.1:9901"), ("Sec-Fetch-Site", "cross-site")]
        ));
        assert!(ok(
            Method::POST,
            &[("Host", "127.0.0.1:9901"), ("Sec-Fetch-Site", "same-origin")]
        ));
        // Bodies a page can post cross-site without a preflight are refused; JSON and no
        // body at all are not.
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "Text/Plain; charset=utf-8",
            "application/json-but-not",
        ] {
            assert!(
                !ok(Method::POST, &[("Host", "127.0.0.1:9901"), ("Content-Type", ct)]),
                "{ct}"
            );
        }
        assert!(ok(
            Method::POST,
            &[
                ("Host", "127.0.0.1:9901"),
                ("Content-Type", "application/json; charset=utf-8")
            ]
        ));
        // A GET's Origin does not matter (reads are guarded by the Host check).
        assert!(ok(
            Method::GET,
            &[("Host", "127.0.0.1:9901"), ("Origin", "http://evil.example")]
        ));
    }
}
