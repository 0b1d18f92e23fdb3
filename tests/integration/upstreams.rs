//! Upstream pools: round robin, active health checks, passive ejection and retries.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// A hand-written keep-alive upstream on a reserved port: `serve` handles each connection on
/// a thread of its own, and counts what its test looks for in the shared counter.
fn raw_upstream(serve: fn(TcpStream, &AtomicUsize)) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = reserved_listener();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || serve(stream, &counter));
        }
    });
    (addr, count)
}

/// Reads until `seen` holds a whole request head and takes it out; false once the client
/// closed the connection.
fn read_head(stream: &mut TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            return true;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn answer_ok(stream: &mut TcpStream) {
    let body = "{\"upstream\":\"raw\"}";
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// Counts connections; answers the first request on each with keep-alive, then closes the
/// connection when a second request arrives on it, as a pooled connection that a load
/// balancer or NAT dropped while it sat idle looks to the proxy.
fn closes_reused_connections(mut stream: TcpStream, connections: &AtomicUsize) {
    connections.fetch_add(1, Ordering::SeqCst);
    let mut seen = Vec::new();
    if read_head(&mut stream, &mut seen) {
        answer_ok(&mut stream);
        // A second request on this connection: close without answering.
        read_head(&mut stream, &mut seen);
    }
}

/// Answers every request with keep-alive; counts the connections the client (the gateway)
/// closed.
fn counts_closed_connections(mut stream: TcpStream, closed: &AtomicUsize) {
    let mut seen = Vec::new();
    while read_head(&mut stream, &mut seen) {
        answer_ok(&mut stream);
    }
    closed.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_stale_pooled_connection_is_retried_on_the_same_peer() {
    let (addr, connections) = raw_upstream(closes_reused_connections);
    let gw = Gateway::start(&policy_one("pool", &[addr], "    retries: 1\n"));
    let ag = agent();
    for i in 0..5 {
        let r = send(&ag, "GET", &gw.url("/"), &[]).unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    // Every request after the first found a pooled connection that failed, and was retried on
    // a fresh one to the only peer.
    assert!(connections.load(Ordering::SeqCst) >= 5);
}

#[test]
fn idle_timeout_closes_pooled_connections_and_is_off_by_default() {
    for (extra, expect_closed) in [("    idle_timeout: 500ms\n", true), ("", false)] {
        let (addr, closed) = raw_upstream(counts_closed_connections);
        let gw = Gateway::start(&policy_one("pool", &[addr], extra));
        let r = send(&agent(), "GET", &gw.url("/"), &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        // Health checks are off, so the request's connection is the only one.
        std::thread::sleep(std::time::Duration::from_millis(2_000));
        assert_eq!(
            closed.load(Ordering::SeqCst) > 0,
            expect_closed,
            "idle_timeout {extra:?}: pooled connection closed?"
        );
    }
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

/// Bodies the recording upstream received, one per answered request.
static RECEIVED: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// As `closes_reused_connections`, reading each first request's Content-Length body and
/// recording it before it answers.
fn records_bodies_and_closes_reused(mut stream: TcpStream, connections: &AtomicUsize) {
    connections.fetch_add(1, Ordering::SeqCst);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                .unwrap_or(0);
            while seen.len() < end + 4 + len {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            RECEIVED.lock().unwrap().push(seen[end + 4..end + 4 + len].to_vec());
            seen.drain(..end + 4 + len);
            answer_ok(&mut stream);
            // The next request on this connection: close without answering.
            let mut rest = Vec::new();
            read_head(&mut stream, &mut rest);
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// A PUT whose pooled connection turns out dead is retried with its body replayed: the body
/// reaches the upstream once, byte for byte, and the replay neither counts twice against the
/// route's body limit (600 bytes under a 1,000-byte limit) nor duplicates what inspection held.
#[test]
fn a_retried_request_forwards_its_body_once() {
    let (addr, connections) = raw_upstream(records_bodies_and_closes_reused);
    let policy = format!(
        "upstreams:\n  - name: pool\n    peers: [\"{addr}\"]\n    retries: 1\n\
routes:\n  - name: all\n    path_prefix: /\n    upstream: pool\n    validation: {{ max_body: 1000 }}\n    inspection: {{ mode: block }}\n"
    );
    let gw = Gateway::start(&policy);
    let body = format!("{{\"note\":\"{}\"}}", "x".repeat(589));
    assert_eq!(body.len(), 600);
    for i in 0..4 {
        let req = format!(
            "PUT /item HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 600\r\nConnection: close\r\n\r\n{body}"
        );
        let answer = raw(gw.listen, req.as_bytes());
        assert_eq!(status_of(&answer), 200, "request {i}: {answer}");
    }
    assert!(
        connections.load(Ordering::SeqCst) >= 4,
        "the requests after the first were retried"
    );
    let received = RECEIVED.lock().unwrap();
    assert_eq!(received.len(), 4);
    for r in received.iter() {
        assert_eq!(r, body.as_bytes(), "the upstream received the body once, intact");
    }
}
