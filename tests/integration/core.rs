//! Routing, forwarding headers, gateway error bodies, `check`, shutdown.

use crate::common::*;

#[test]
fn routes_by_longest_prefix_and_host() {
    let (a, b, c) = (echo("root"), echo("api"), echo("shop"));
    let policy = format!(
        r#"
upstreams:
  - {{ name: root, peers: ["{}"] }}
  - {{ name: api, peers: ["{}"] }}
  - {{ name: shop, peers: ["{}"] }}
routes:
  - {{ name: root, path_prefix: /, upstream: root }}
  - {{ name: api, path_prefix: /api/, upstream: api }}
  - {{ name: shop, hosts: ["*.shop.test"], path_prefix: /api/, upstream: shop, upstream_host: shop.internal }}
  - {{ name: only-v2, hosts: ["v2.test"], path_prefix: /v2/, upstream: api }}
"#,
        a.addr(),
        b.addr(),
        c.addr()
    );
    let gw = Gateway::start(&policy);
    let ag = agent();
    let who = |path: &str, host: Option<&str>| {
        let headers: Vec<(&str, &str)> = host.map(|h| vec![("Host", h)]).unwrap_or_default();
        let r = send(&ag, "GET", &gw.url(path), &headers).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    };
    assert_eq!(who("/", None)["upstream"], "root");
    assert_eq!(who("/apix", None)["upstream"], "root");
    assert_eq!(who("/api/users", None)["upstream"], "api");
    let shop = who("/api/cart", Some("eu.shop.test:8080"));
    assert_eq!(shop["upstream"], "shop");
    assert_eq!(shop["headers"]["host"], "shop.internal", "host rewritten per route");
    assert_eq!(shop["headers"]["x-forwarded-host"], "eu.shop.test:8080");
    // The client's Host is kept when the route does not rewrite it.
    assert_eq!(who("/api/x", Some("api.test"))["headers"]["host"], "api.test");
}

#[test]
fn no_route_is_404_json() {
    let up = echo("u");
    let policy = format!(
        "upstreams:\n  - {{ name: u, peers: [\"{}\"] }}\nroutes:\n  - {{ name: only, path_prefix: /only/, upstream: u }}\n",
        up.addr()
    );
    let gw = Gateway::start(&policy);
    let r = get(&gw.url("/elsewhere?secret=1"));
    assert_eq!(r.status, 404);
    let j = r.json();
    assert_eq!(j["error"], "no_route");
    let rid = j["request_id"].as_str().unwrap();
    assert_eq!(r.header("x-request-id"), Some(rid));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn forwarding_headers_and_request_id() {
    let up = echo("u");
    let gw = Gateway::start(&policy_one("u", &[up.addr()], ""));
    let ag = agent();
    let r = send(
        &ag,
        "GET",
        &gw.url("/p?q=1"),
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Request-Id", "trace-42"),
            ("Connection", "x-hop"),
            ("X-Hop", "secret"),
            ("Keep-Alive", "timeout=1"),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(j["headers"]["x-forwarded-proto"], "http");
    assert_eq!(j["headers"]["x-request-id"], "trace-42");
    assert!(
        j["headers"].get("x-hop").is_none(),
        "headers named in Connection are hop-by-hop"
    );
    assert!(j["headers"].get("keep-alive").is_none());
    assert_eq!(j["query"]["q"], "1");
    assert_eq!(r.header("x-request-id"), Some("trace-42"));

    // Without a client id the gateway makes one and returns it.
    let r = get(&gw.url("/p"));
    let sent = r.json()["headers"]["x-request-id"].as_str().unwrap().to_string();
    assert_eq!(sent.len(), 32);
    assert_eq!(r.header("x-request-id"), Some(sent.as_str()));

    // The access log has the request, without its query string.
    gw.wait_for(5, "access log", || {
        std::fs::read_to_string(gw.path("access.log"))
            .unwrap_or_default()
            .contains("trace-42")
    });
    let log = std::fs::read_to_string(gw.path("access.log")).unwrap();
    let line: serde_json::Value = serde_json::from_str(log.lines().find(|l| l.contains("trace-42")).unwrap()).unwrap();
    assert_eq!(line["path"], "/p");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "all");
    assert!(!log.contains("q=1"), "query strings never reach the log");
}

#[test]
fn upstream_down_is_502_and_slow_is_504() {
    let dead = free_addr(); // nothing listens here
    let slow = echo("slow");
    let policy = format!(
        r#"
upstreams:
  - {{ name: dead, peers: ["{dead}"], connect_timeout: 500ms }}
  - {{ name: slow, peers: ["{}"], read_timeout: 300ms }}
routes:
  - {{ name: dead, path_prefix: /dead/, upstream: dead }}
  - {{ name: slow, path_prefix: /slow/, upstream: slow }}
"#,
        slow.addr()
    );
    let gw = Gateway::start(&policy);
    let r = get(&gw.url("/dead/x"));
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.json()["error"], "upstream_unavailable");
    assert!(!r.body.contains(&dead.to_string()), "no peer address in the body");
    let r = get(&gw.url("/slow/x?delay_ms=2000"));
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.json()["error"], "upstream_timeout");
    assert!(r.json()["request_id"].as_str().is_some());
    let metrics = get(&gw.admin_url("/metrics")).body;
    assert!(
        metrics.contains(r#"quantumvault_upstream_errors_total{upstream="dead",kind="connect_refused"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"quantumvault_errors_total{class="upstream_timeout"} 1"#),
        "{metrics}"
    );
    let errors = get(&gw.admin_url("/errors")).json();
    let list = errors["errors"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{errors}");
    assert_eq!(
        (
            list[0]["class"].as_str(),
            list[0]["route"].as_str(),
            list[0]["status"].as_u64()
        ),
        (Some("upstream_timeout"), Some("slow"), Some(504))
    );
    assert_eq!(list[1]["kind"], "connect_refused");
    assert!(!errors.to_string().contains("delay_ms"), "no query strings or bodies");
    assert!(
        metrics.contains(r#"quantumvault_upstream_errors_total{upstream="slow",kind="read_timeout"}"#),
        "{metrics}"
    );
    // Request metrics are recorded in the logging phase, just after the response went out.
    gw.wait_for(5, "request counted", || {
        get(&gw.admin_url("/metrics"))
            .body
            .contains(r#"quantumvault_requests_total{route="slow",method="GET",status_class="5xx"} 1"#)
    });
}

#[test]
fn check_reports_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    // The batch signer's settings (gateway.yaml) and a policy's signing mode.
    std::fs::write(
        dir.path().join("gateway.yaml"),
        "listeners:\n  - address: 127.0.0.1:1\ndata_dir: data\npolicies: [policies]\nsigning_batch:\n  max_leaves: 0\n",
    )
    .unwrap();
    let (code, _, stderr) = run_check(&dir.path().join("gateway.yaml"));
    assert_eq!(code, 64);
    assert!(
        stderr.contains("gateway.yaml:6:3: signing_batch.max_leaves: between 1 and 65536"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("gateway.yaml"),
        "listeners:\n  - address: 127.0.0.1:1\ndata_dir: data\npolicies: [policies]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policies/a.yaml"),
        "signing:\n  enabled: true\n  mode: batched\nupstreams:\n  - name: u\n    peers: [\"127.0.0.1:2\"]\n",
    )
    .unwrap();
    let (code, _, stderr) = run_check(&dir.path().join("gateway.yaml"));
    assert_eq!(code, 64);
    assert!(
        stderr.contains("a.yaml:3:3: signing.mode: \"batched\" is not one of inline, batch"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("gateway.yaml"),
        "listeners:\n  - address: 127.0.0.1:1\ndata_dir: data\npolicies: [policies]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policies/a.yaml"),
        "upstreams:\n  - name: u\n    peers: [\"127.0.0.1:2\"]\nroutes:\n  - name: r\n    path_prefix: /\n    upstream: nope\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policies/b.yaml"),
        "routes:\n  - name: r2\n    path_prefx: /b\n    upstream: u\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run_check(&dir.path().join("gateway.yaml"));
    assert_eq!(code, 64, "stdout {stdout} stderr {stderr}");
    assert!(
        stderr.contains("b.yaml:3:5: routes[0].path_prefx: unknown field `path_prefx`"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("policies/b.yaml"), "").unwrap();
    let (code, _, stderr) = run_check(&dir.path().join("gateway.yaml"));
    assert_eq!(code, 64);
    assert!(
        stderr.contains("a.yaml:7:5: routes[0].upstream: no upstream named \"nope\""),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("gateway.yaml"),
        "listeners:\n  - address: 127.0.0.1:1\n    tls: {cert: c.pem, key: k.pem}\ndata_dir: data\npolicies: [policies]\nworkers: 3\n",
    )
    .unwrap();
    let (code, _, stderr) = run_check(&dir.path().join("gateway.yaml"));
    assert_eq!(code, 64);
    assert!(
        stderr.contains("gateway.yaml:6:1: workers: unknown field `workers`"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("gateway.yaml"),
        "listeners:\n  - address: 127.0.0.1:1\ndata_dir: data\npolicies: [policies]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policies/a.yaml"),
        "upstreams:\n  - name: u\n    peers: [\"127.0.0.1:2\"]\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run_check(&dir.path().join("gateway.yaml"));
    assert_eq!((code, stdout.trim()), (0, "ok"), "{stderr}");
}

#[test]
fn shipped_example_config_checks_ok() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, stdout, stderr) = run_check(&root.join("gateway.yaml"));
    assert_eq!((code, stdout.trim()), (0, "ok"), "{stderr}");
}

#[test]
fn sigterm_finishes_in_flight_requests() {
    let up = echo("u");
    let mut gw = Gateway::start(&policy_one("u", &[up.addr()], ""));
    // In-flight requests get the grace period to finish; give them 4 s here.
    let conf = std::fs::read_to_string(gw.path("gateway.yaml"))
        .unwrap()
        .replace("grace_period: 1s", "grace_period: 4s");
    std::fs::write(gw.path("gateway.yaml"), conf).unwrap();
    gw.restart();
    let url = gw.url("/slow?delay_ms=1500");
    let in_flight = std::thread::spawn(move || send(&agent(), "GET", &url, &[]));
    std::thread::sleep(std::time::Duration::from_millis(400));
    let started = std::time::Instant::now();
    let status = gw.stop();
    let r = in_flight.join().unwrap().expect("in-flight request completes");
    assert_eq!(r.status, 200);
    assert!(status.success(), "clean exit: {status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}
