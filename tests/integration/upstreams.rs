//! Upstream pools: round robin, active health checks, passive ejection and retries.

use std::collections::HashMap;

use crate::common::*;

fn count_upstreams(gw: &Gateway, n: usize) -> HashMap<String, usize> {
    let ag = agent();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = send(&ag, "GET", &gw.url("/"), &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        *seen
            .entry(r.json()["upstream"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    seen
}

#[test]
fn round_robin_over_two_peers() {
    let (a, b) = (echo("a"), echo("b"));
    let gw = Gateway::start(&policy_one("pool", &[a.addr(), b.addr()], ""));
    let seen = count_upstreams(&gw, 40);
    assert_eq!(seen.get("a"), Some(&20), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&20), "{seen:?}");
}

#[test]
fn dead_peer_is_ejected_by_health_checks_and_traffic_continues() {
    let (a, b) = (echo("a"), echo("b"));
    let hc = "    health_check: { path: /healthz, interval: 200ms, timeout: 300ms, healthy_threshold: 1, unhealthy_threshold: 2 }\n    retries: 0\n";
    let gw = Gateway::start(&policy_one("pool", &[a.addr(), b.addr()], hc));
    assert_eq!(gw.health()["status"], "healthy");
    b.stop();
    gw.wait_for(10, "peer b marked unhealthy", || {
        gw.health()["upstreams"]["pool"]["available"] == 1
    });
    let h = gw.health();
    assert_eq!(h["status"], "degraded", "{h}");
    // Retries are off here, so every 200 proves the dead peer is out of rotation.
    let seen = count_upstreams(&gw, 30);
    assert_eq!(seen.get("a"), Some(&30), "{seen:?}");
    gw.wait_for(5, "healthy-peer gauge", || {
        get(&gw.admin_url("/metrics"))
            .body
            .contains("quantumvault_upstream_peers_healthy{upstream=\"pool\"} 1")
    });
    a.stop();
    gw.wait_for(10, "pool down", || gw.health()["status"] == "critical");
    let r = get(&gw.admin_url("/health"));
    assert_eq!(r.status, 503);
    let r = get(&gw.url("/"));
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (502, Some("upstream_unavailable"))
    );
}

#[test]
fn connect_failure_retries_on_another_peer() {
    let a = echo("a");
    let dead = free_addr();
    let passive = "    retries: 1\n    passive_ejection: { consecutive_failures: 1, eject_for: 30s }\n";
    let gw = Gateway::start(&policy_one("pool", &[dead, a.addr()], passive));
    let ag = agent();
    // Idempotent: retried on the live peer, so every GET succeeds.
    for _ in 0..10 {
        let r = send(&ag, "GET", &gw.url("/"), &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let h = gw.health();
    assert_eq!(h["upstreams"]["pool"]["peers"][0]["ejected"], true, "{h}");
    let metrics = get(&gw.admin_url("/metrics")).body;
    assert!(
        metrics.contains("kind=\"connect_refused\"} 1"),
        "ejected after one failure, tried once: {metrics}"
    );
}

#[test]
fn non_idempotent_requests_are_not_retried() {
    let a = echo("a");
    let dead = free_addr();
    let gw = Gateway::start(&policy_one(
        "pool",
        &[dead, a.addr()],
        "    retries: 1\n    passive_ejection: { consecutive_failures: 100, eject_for: 1s }\n",
    ));
    let ag = agent();
    let statuses: Vec<u16> = (0..4)
        .map(|_| send(&ag, "POST", &gw.url("/"), &[]).unwrap().status)
        .collect();
    assert!(
        statuses.contains(&502),
        "POST that hit the dead peer is not retried: {statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}
