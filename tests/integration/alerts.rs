//! Statistics and alerts end to end: `/stats` windows from real traffic, and an upstream that
//! starts failing makes the error-rate alert go pending then firing, `/health` critical, the
//! webhook receive it (after a retry), an acknowledgement stick, and everything resolve when the
//! upstream comes back. Short windows (1 s slots, 3 s window) stand in for a fake clock.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// An Alertmanager stand-in: records every POSTed body; answers 503 to the first `fail_first`.
pub(crate) struct Receiver {
    pub(crate) addr: std::net::SocketAddr,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    pub(crate) fn start(fail_first: usize) -> Receiver {
        // A port no other test is given (see common::reserve).
        let (listener, addr) = loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            if reserve(a.port()) {
                break (l, a);
            }
        };
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut s) = stream else { continue };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(k) = s.read(&mut chunk) else { break None };
                    if k == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break Some(buf[end + 4..end + 4 + len].to_vec());
                        }
                    }
                };
                if let Some(b) = body {
                    seen.lock().unwrap().push(serde_json::from_slice(&b).unwrap());
                }
                let status = if n < fail_first {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                );
            }
        });
        Receiver { addr, bodies }
    }

    pub(crate) fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// `/alerts`, with the token of the test that sets one (ignored where none is set).
fn alerts(gw: &Gateway) -> serde_json::Value {
    send(
        &agent(),
        "GET",
        &gw.admin_url("/alerts"),
        &[("Authorization", "Bearer alert-ack-token")],
    )
    .unwrap()
    .json()
}

fn state_of(gw: &Gateway, rule: &str) -> Option<String> {
    alerts(gw)["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == rule)
        .map(|a| a["state"].as_str().unwrap().to_string())
}

#[test]
fn stats_windows_reflect_traffic() {
    let up = echo("u");
    let gw = Gateway::start(&policy_one("pool", &[up.addr()], ""));
    let ag = agent();
    for i in 0..20 {
        let path = if i % 4 == 0 { "/?status=503" } else { "/?delay_ms=20" };
        send(&ag, "GET", &gw.url(path), &[]).unwrap();
    }
    // Statistics are recorded in the logging phase, just after each response: wait for the last.
    gw.wait_for(5, "20 requests in the statistics", || {
        get(&gw.admin_url("/stats")).json()["routes"]["all"]["1m"]["requests"] == 20
    });
    let stats = get(&gw.admin_url("/stats")).json();
    for w in ["1m", "5m", "15m"] {
        let s = &stats["routes"]["all"][w];
        assert_eq!(s["requests"], 20, "{w}: {s}");
        assert_eq!(s["failures"], 5, "{w}: {s}");
        assert_eq!(s["success"], 15, "{w}: {s}");
        assert_eq!(s["error_rate"], 0.25, "{w}: {s}");
        assert_eq!(stats["gateway"][w]["requests"], 20);
    }
    let s = &stats["routes"]["all"]["1m"];
    // 15 requests waited 20 ms upstream, so the p50 is at least that, and upstream latency
    // plus overhead is the total.
    let p50 = s["latency"]["p50_ms"].as_f64().unwrap();
    assert!((19.0..200.0).contains(&p50), "{s}");
    assert_eq!(s["upstream_latency"]["count"], 20, "{s}");
    let up_p50 = s["upstream_latency"]["p50_ms"].as_f64().unwrap();
    assert!(up_p50 >= 18.0 && up_p50 <= p50 * 1.07, "{s}");
    assert!(s["gateway_overhead"]["p50_ms"].as_f64().unwrap() < p50, "{s}");
    assert!(s["rate_per_second"].as_f64().unwrap() > 0.0);
    // The same facts for Prometheus.
    gw.wait_for(5, "upstream histograms", || {
        let m = get(&gw.admin_url("/metrics")).body;
        m.contains("quantumvault_upstream_duration_seconds_count{route=\"all\"} 20")
            && m.contains("quantumvault_gateway_overhead_seconds_count{route=\"all\"} 20")
    });
}

#[test]
fn failing_upstream_fires_notifies_acknowledges_and_resolves() {
    let up = echo("u");
    let addr = up.addr();
    let hook = Receiver::start(1);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "alert-ack-token\n").unwrap();
    // Only the error-rate rule, and passive ejection out of the way: /health must turn critical
    // because of the alert, not because the pool emptied.
    let policy = format!(
        "{}alerts:\n  builtin: false\n  rules:\n    - name: HighErrorRate\n      metric: error_rate\n      comparison: \">\"\n      threshold: 0.05\n      window: 3s\n      for: 1s\n      severity: critical\n      min_requests: 5\n      labels: {{team: edge}}\n      description: too many failures\n",
        policy_one("pool", &[addr], "    passive_ejection: { consecutive_failures: 100000, eject_for: 1s }\n    retries: 0\n")
    );
    let monitoring = format!(
        "monitoring:\n  resolution: 1s\n  evaluate_every: 200ms\n  webhook:\n    url: http://{}/api/v2/alerts\n    timeout: 2s\n    retries: 3\n    resend_every: 1h\n",
        hook.addr
    );
    let gw = Gateway::start_with_pre(&policy, &monitoring, |conf| {
        let text = std::fs::read_to_string(conf).unwrap();
        let text = text.replacen(
            "admin:\n  address:",
            &format!("admin:\n  token_file: {}\n  address:", token_file.display()),
            1,
        );
        std::fs::write(conf, text).unwrap();
    });
    let ag = agent();
    for _ in 0..10 {
        assert_eq!(send(&ag, "GET", &gw.url("/"), &[]).unwrap().status, 200);
    }
    assert_eq!(gw.health()["status"], "healthy");
    assert_eq!(alerts(&gw)["rules"][0]["name"], "HighErrorRate");

    // The upstream goes away. Traffic keeps flowing from another thread for the rest of the
    // test (502s now, 200s after recovery), so the windows never run dry whatever the pauses.
    up.stop();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, url) = (stop.clone(), gw.url("/"));
        std::thread::spawn(move || {
            let ag = agent();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = send(&ag, "GET", &url, &[]);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut saw_pending = false;
    gw.wait_for(20, "HighErrorRate firing", || {
        // One /health read holds both the alert counts and the status derived from them.
        let h = gw.health();
        if h["alerts"]["critical_pending"].as_u64().unwrap_or(0) > 0
            && h["alerts"]["critical_firing"].as_u64().unwrap_or(0) == 0
        {
            saw_pending = true;
            assert_eq!(h["status"], "unhealthy", "a pending critical alert: {h}");
        }
        state_of(&gw, "HighErrorRate").as_deref() == Some("firing")
    });
    assert!(
        saw_pending || alerts(&gw)["history"].to_string().contains("\"to\":\"pending\""),
        "the alert waited `for` before firing"
    );
    let r = get(&gw.admin_url("/health"));
    assert_eq!(r.status, 503);
    let h = r.json();
    assert_eq!(h["status"], "critical", "{h}");
    assert!(h["reasons"].to_string().contains("alert HighErrorRate firing"), "{h}");
    assert_eq!(h["upstreams"]["pool"]["available"], 1, "the pool itself still looks up");

    // The webhook got it, on the second attempt (the first was answered 503).
    gw.wait_for(10, "webhook delivery", || hook.received().len() >= 2);
    let first = &hook.received()[0][0];
    assert_eq!(hook.received()[1], hook.received()[0], "a retry resends the same batch");
    assert_eq!(first["labels"]["alertname"], "HighErrorRate");
    assert_eq!(first["labels"]["severity"], "critical");
    assert_eq!(first["labels"]["team"], "edge");
    assert_eq!(first["annotations"]["state"], "firing");
    // Real times (this year), and a firing alert's endsAt lies ahead (three resend periods).
    let starts = first["startsAt"].as_str().unwrap();
    assert!(
        starts.starts_with("20") && !starts.starts_with("1970") && starts.ends_with('Z'),
        "{first}"
    );
    assert!(first["endsAt"].as_str().unwrap() > starts, "{first}");
    let m = send(
        &agent(),
        "GET",
        &gw.admin_url("/metrics"),
        &[("Authorization", "Bearer alert-ack-token")],
    )
    .unwrap()
    .body;
    assert!(
        m.contains("quantumvault_alerts{state=\"firing\",severity=\"critical\"} 1"),
        "{m}"
    );

    // Acknowledge: the token is required, and the acknowledgement sticks while it fires.
    let id = alerts(&gw)["alerts"][0]["id"].as_str().unwrap().to_string();
    let ack_url = gw.admin_url(&format!("/alerts/{id}/ack"));
    assert_eq!(send(&ag, "POST", &ack_url, &[]).unwrap().status, 401);
    let auth = [("Authorization", "Bearer alert-ack-token")];
    let nope = gw.admin_url("/alerts/0000000000000000/ack");
    assert_eq!(send(&ag, "POST", &nope, &auth).unwrap().status, 404);
    let r = ag
        .post(&ack_url)
        .set("Authorization", "Bearer alert-ack-token")
        .set("Content-Type", "application/json")
        .send_string(r#"{"by": "oncall", "comment": "upstream restarting"}"#)
        .unwrap();
    assert_eq!(r.status(), 200);
    std::thread::sleep(Duration::from_millis(1000));
    let a = &alerts(&gw)["alerts"][0];
    assert_eq!(a["state"], "firing");
    assert_eq!(a["acknowledged"]["by"], "oncall", "{a}");
    assert_eq!(a["acknowledged"]["comment"], "upstream restarting");
    assert!(gw.health()["reasons"].to_string().contains("acknowledged"));

    // The upstream recovers: the failures leave the 3 s window and the alert resolves.
    let back = EchoServer::start("u", addr).expect("restart the upstream on its address");
    gw.wait_for(20, "HighErrorRate resolved", || {
        state_of(&gw, "HighErrorRate").as_deref() == Some("resolved")
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.join().unwrap();
    assert_eq!(gw.health()["status"], "healthy");
    gw.wait_for(10, "resolved notification", || {
        hook.received().last().is_some_and(|b| {
            b[0]["annotations"]["state"] == "resolved" && b[0]["labels"]["alertname"] == "HighErrorRate"
        })
    });
    let history: Vec<String> = alerts(&gw)["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|t| t["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(history, ["pending", "firing", "acknowledged", "resolved"]);
    assert_eq!(
        send(&ag, "POST", &ack_url, &auth).unwrap().status,
        409,
        "a resolved alert cannot be acknowledged"
    );
    assert!(!gw.stderr().contains("alert-ack-token"), "the token is never logged");
    back.stop();
}

#[test]
fn bad_alert_rules_name_file_line_and_field_and_keep_the_running_rules() {
    let up = echo("u");
    let gw = Gateway::start(&policy_one("pool", &[up.addr()], ""));
    let rules: Vec<String> = alerts(&gw)["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(rules.contains(&"HighErrorRate".to_string()) && rules.contains(&"UpstreamDown".to_string()));
    let bad = format!(
        "{}alerts:\n  rules:\n    - name: Slow\n      metric: latency_p95\n      comparison: \">\"\n      threshold: 1\n      window: 20m\n      severity: warning\n",
        policy_one("pool", &[up.addr()], "")
    );
    gw.write_policy(&bad);
    gw.wait_for(10, "reload error", || gw.health()["status"] == "degraded");
    let h = gw.health();
    assert!(
        h["reasons"]
            .to_string()
            .contains("main.yaml:14:7: alerts.rules[0].window"),
        "{h}"
    );
    assert_eq!(alerts(&gw)["rules"].as_array().unwrap().len(), rules.len());
    back_to_good(&gw, &up);
}

fn back_to_good(gw: &Gateway, up: &EchoServer) {
    let good = format!(
        "{}alerts:\n  rules:\n    - name: Slow\n      metric: latency_p95\n      comparison: \">\"\n      threshold: 1\n      window: 10m\n      severity: warning\n      per_route: true\n",
        policy_one("pool", &[up.addr()], "")
    );
    gw.write_policy(&good);
    gw.wait_for(10, "good reload", || {
        alerts(gw)["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "Slow" && r["per_route"] == true)
    });
}

/// `monitoring.enabled: false` (the benchmark's comparison) really turns recording off: traffic
/// leaves no statistics and no request series, and no rule is evaluated.
#[test]
fn monitoring_off_records_nothing() {
    let up = echo("u");
    let gw = Gateway::start_with(
        &policy_one("pool", &[up.addr()], ""),
        "monitoring:\n  enabled: false\n  evaluate_every: 200ms\n",
    );
    let ag = agent();
    for _ in 0..5 {
        assert_eq!(send(&ag, "GET", &gw.url("/"), &[]).unwrap().status, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let stats = get(&gw.admin_url("/stats")).json();
    assert_eq!(stats["enabled"], false);
    assert!(stats["gateway"]["1m"]["requests"] == 0, "{stats}");
    let a = alerts(&gw);
    assert_eq!(a["evaluation_enabled"], false);
    assert!(a["alerts"].as_array().unwrap().is_empty());
    let m = get(&gw.admin_url("/metrics")).body;
    assert!(!m.contains("quantumvault_requests_total{"), "{m}");
    // The proxy itself is unaffected, and the access log still records.
    gw.wait_for(5, "access log", || {
        std::fs::read_to_string(gw.path("access.log"))
            .unwrap_or_default()
            .lines()
            .count()
            >= 5
    });
}
