//! Access control through the real proxy: IP lists and trusted proxies, validation statuses,
//! API keys and tiers, quotas, rate limits, usage persistence, reloads under traffic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

fn upstream_block(up: std::net::SocketAddr) -> String {
    format!("upstreams:\n  - {{ name: u, peers: [\"{up}\"] }}\n")
}

#[test]
fn ip_lists_trusted_proxies_and_spoofing() {
    let up = echo("u");
    let lists = tempfile::tempdir().unwrap();
    let list_file = lists.path().join("blocked.txt");
    std::fs::write(&list_file, "# blocked networks\n198.51.100.0/24\n2001:db8:bad::/48\n").unwrap();
    let policy = format!(
        r#"{}client_ip:
  trusted_proxies: ["127.0.0.1/32"]
ip_filter:
  deny: ["203.0.113.7"]
  deny_files: ["{}"]
routes:
  - {{ name: open, path_prefix: /, upstream: u }}
  - name: internal
    path_prefix: /internal/
    upstream: u
    ip_filter: {{ allow: ["10.0.0.0/8"] }}
"#,
        upstream_block(up.addr()),
        list_file.display()
    );
    let gw = Gateway::start(&policy);
    let ag = agent();
    let as_client = |path: &str, xff: &str| send(&ag, "GET", &gw.url(path), &[("X-Forwarded-For", xff)]).unwrap();
    assert_eq!(as_client("/", "192.0.2.1").status, 200);
    let r = as_client("/", "203.0.113.7");
    assert_eq!((r.status, r.json()["error"].as_str()), (403, Some("ip_denied")));
    assert_eq!(as_client("/", "198.51.100.77").status, 403, "list file entry");
    // Prepending a forged address does not help: the rightmost untrusted address is the client.
    assert_eq!(as_client("/", "10.1.1.1, 203.0.113.7").status, 403);
    // The upstream sees the resolved chain.
    assert_eq!(
        as_client("/", "192.0.2.1").json()["headers"]["x-forwarded-for"],
        "192.0.2.1, 127.0.0.1"
    );
    // Route allow list.
    assert_eq!(as_client("/internal/x", "10.2.3.4").status, 200);
    assert_eq!(as_client("/internal/x", "192.0.2.1").status, 403);

    // From an untrusted peer, X-Forwarded-For is never believed.
    let untrusted = policy.replace("127.0.0.1/32", "192.0.2.0/24");
    gw.write_policy(&untrusted);
    gw.wait_for(10, "reload", || as_client("/", "203.0.113.7").status == 200);
    assert_eq!(
        as_client("/internal/x", "10.2.3.4").status,
        403,
        "a forged 10.x address is ignored"
    );
    let metrics = get(&gw.admin_url("/metrics")).body;
    assert!(
        metrics.contains(r#"quantumvault_requests_denied_total{route="open",reason="ip_deny"}"#),
        "{metrics}"
    );
}

/// `ip_filter.drop_connections`: a denied socket peer is closed at accept, before any HTTP; a
/// trusted proxy never is; turning it off (by reload) brings back the 403.
#[test]
fn denied_peers_are_dropped_at_accept() {
    let up = echo("u");
    let policy = |drop: bool, trusted: &str| {
        format!(
            "{}client_ip: {{ trusted_proxies: [\"{trusted}\"] }}\nip_filter: {{ deny: [\"127.0.0.0/8\"], drop_connections: {drop} }}\nroutes:\n  - {{ name: r, path_prefix: /, upstream: u }}\n",
            upstream_block(up.addr())
        )
    };
    let gw = Gateway::start(&policy(true, "192.0.2.1/32"));
    // The connection is accepted by the kernel, then closed without a byte of HTTP.
    let answer = raw(gw.listen, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(answer, "", "no HTTP response at all");
    // (The harness's readiness probe was a connection too.)
    gw.wait_for(5, "drop counted", || {
        get(&gw.admin_url("/metrics"))
            .body
            .lines()
            .find_map(|l| l.strip_prefix("quantumvault_connections_dropped_total "))
            .is_some_and(|n| n.trim().parse::<f64>().unwrap_or(0.0) >= 1.0)
    });
    // A trusted proxy's connection is not dropped: its clients are judged per request.
    gw.write_policy(&policy(true, "127.0.0.1/32"));
    gw.wait_for(10, "reload", || gw.generation() == 2);
    let r = send(&agent(), "GET", &gw.url("/"), &[("X-Forwarded-For", "192.0.2.9")]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // Without drop_connections the same peer gets the 403 JSON.
    gw.write_policy(&policy(false, "192.0.2.1/32"));
    gw.wait_for(10, "reload", || gw.generation() == 3);
    let r = send(&agent(), "GET", &gw.url("/"), &[]).unwrap();
    assert_eq!((r.status, r.json()["error"].as_str()), (403, Some("ip_denied")));
    // Only the policy-wide list can drop connections.
    let on_route = format!(
        "{}routes:\n  - {{ name: r, path_prefix: /, upstream: u, ip_filter: {{ deny: [\"10.0.0.0/8\"], drop_connections: true }} }}\n",
        upstream_block(up.addr())
    );
    gw.write_policy(&on_route);
    gw.wait_for(10, "reload error", || {
        gw.health()["reasons"]
            .to_string()
            .contains("routes[0].ip_filter.drop_connections")
    });
}

#[test]
fn validation_statuses() {
    let up = echo("u");
    let policy = format!(
        r#"{}routes:
  - name: api
    path_prefix: /
    upstream: u
    validation:
      methods: [GET, POST]
      content_types: [application/json]
      max_body: 1KiB
      max_headers: 20
      max_header_bytes: 2KiB
      max_uri: 256
"#,
        upstream_block(up.addr())
    );
    let gw = Gateway::start(&policy);
    let ag = agent();
    let r = send(&ag, "DELETE", &gw.url("/x"), &[]).unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, POST")));
    let post = |ct: &str, body: &str| {
        let req = format!(
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        status_of(&raw(gw.listen, req.as_bytes()))
    };
    assert_eq!(post("application/json", "{}"), 200);
    assert_eq!(post("text/plain", "hi"), 415);
    assert_eq!(post("application/json", &"x".repeat(2000)), 413);
    let chunked = format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n{}\r\n400\r\n{}\r\n0\r\n\r\n", "a".repeat(1024), "b".repeat(1024));
    let resp = raw(gw.listen, chunked.as_bytes());
    assert_eq!(
        status_of(&resp),
        413,
        "chunked bodies are counted as they stream: {resp}"
    );
    assert!(resp.contains("body_too_large"), "{resp}");
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(300));
    assert_eq!(status_of(&raw(gw.listen, long.as_bytes())), 414);
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(
        status_of(&raw(
            gw.listen,
            format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes()
        )),
        431
    );
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "v".repeat(3000));
    assert_eq!(status_of(&raw(gw.listen, big.as_bytes())), 431);
    // Pingora's parser refuses conflicting lengths itself (a bare 400, before any filter).
    let dup = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}";
    assert_eq!(status_of(&raw(gw.listen, dup.as_bytes())), 400);
    let dup_same = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(status_of(&raw(gw.listen, dup_same.as_bytes())), 400);
    let cl_te = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(status_of(&raw(gw.listen, cl_te.as_bytes())), 400);
    let ctl = "GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n";
    assert_eq!(status_of(&raw(gw.listen, ctl.as_bytes())), 400);
}

fn key_policy(up: std::net::SocketAddr, extra_tier: &str) -> String {
    format!(
        r#"{}rate_limits:
  - {{ name: gold-rate, scope: api_key, rate: 1000, per: 1s }}
tiers:
  - name: gold
    rate_limits: [gold-rate]
    daily_quota: 3
  - name: narrow
    routes: [private]
    methods: [GET]
{extra_tier}routes:
  - name: private
    path_prefix: /private/
    upstream: u
    auth: {{ required: true, query_param: api_key }}
  - name: other
    path_prefix: /other/
    upstream: u
    auth: {{ required: true }}
  - {{ name: open, path_prefix: /open/, upstream: u }}
"#,
        upstream_block(up)
    )
}

fn create_key(gw: &Gateway, tier: &str, expires: Option<&str>) -> (String, String) {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["apikey", "create", "--name", "test", "--tier", tier, "--policy"])
        .arg(gw.path("policies/keys.yaml"));
    if let Some(e) = expires {
        cmd.args(["--expires", e]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr.split_whitespace().nth(3).unwrap().to_string();
    (id, key)
}

#[test]
fn api_keys_tiers_quotas_and_usage_across_restart() {
    let up = echo("u");
    let mut gw = Gateway::start(&key_policy(up.addr(), ""));
    let (gold_id, gold) = create_key(&gw, "gold", None);
    let (_, narrow) = create_key(&gw, "narrow", None);
    let (_, expired) = create_key(&gw, "gold", Some("2020-01-01T00:00:00Z"));
    let keys_text = std::fs::read_to_string(gw.path("policies/keys.yaml")).unwrap();
    assert!(
        !keys_text.contains(&gold) && keys_text.contains(&gold_id),
        "only the hash is stored"
    );
    gw.wait_for(10, "keys loaded", || {
        send(&agent(), "GET", &gw.url("/other/x"), &[("X-API-Key", narrow.as_str())])
            .unwrap()
            .status
            == 403
    });
    let ag = agent();
    let call = |path: &str, headers: &[(&str, &str)]| send(&ag, "GET", &gw.url(path), headers).unwrap();

    let r = call("/private/a", &[]);
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("missing_api_key")));
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"quantumvault\""));
    let r = call("/private/a", &[("X-API-Key", "qv_wrong")]);
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("invalid_api_key")));
    assert!(r.header("www-authenticate").unwrap().contains("invalid_token"));
    let r = call("/private/a", &[("X-API-Key", expired.as_str())]);
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("expired_api_key")));
    let r = call("/other/a", &[("X-API-Key", narrow.as_str())]);
    assert_eq!((r.status, r.json()["error"].as_str()), (403, Some("tier_forbidden")));

    // What the gateway tells the upstream about the caller is never taken from the caller.
    let forged = [
        ("X-Api-Key-Id", "k_admin"),
        ("X-Api-Key-Tier", "platinum"),
        ("X-QV-Inspection", "rule=0"),
    ];
    let r = call("/open/a", &forged);
    assert_eq!(r.status, 200);
    for (name, _) in forged {
        assert!(
            r.json()["headers"].get(name.to_ascii_lowercase()).is_none(),
            "{name} forged"
        );
    }

    // Gold: header, bearer and query parameter; the upstream gets id and tier, never the key.
    let r = call("/private/a", &[("X-API-Key", gold.as_str()), forged[0], forged[1]]);
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(
        (
            j["headers"]["x-api-key-id"].as_str(),
            j["headers"]["x-api-key-tier"].as_str()
        ),
        (Some(gold_id.as_str()), Some("gold"))
    );
    assert!(!r.body.contains(&gold), "the key never reaches the upstream");
    assert!(r
        .header("ratelimit-policy")
        .unwrap()
        .contains("\"gold-rate\";q=1000;w=1"));
    let bearer = format!("Bearer {gold}");
    let r = call("/private/b", &[("Authorization", bearer.as_str())]);
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("authorization").is_none());

    // Usage persists across a restart, and so does the daily quota (3).
    gw.restart();
    let usage = get(&gw.admin_url(&format!("/usage/{gold_id}"))).json();
    assert_eq!(usage["usage"]["requests"], 2, "{usage}");
    assert_eq!(usage["usage"]["routes"]["private"]["requests"], 2);
    let url = format!("/private/c?api_key={gold}&q=1");
    let r = send(&agent(), "GET", &gw.url(&url), &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["query"],
        serde_json::json!({"q": "1"}),
        "key stripped from the query"
    );
    let r = send(&agent(), "GET", &gw.url("/private/d"), &[("X-API-Key", gold.as_str())]).unwrap();
    assert_eq!((r.status, r.json()["error"].as_str()), (429, Some("quota_exceeded")));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 86_400);
    // Usage is recorded in the logging phase, just after the response went out.
    gw.wait_for(5, "denial counted", || {
        get(&gw.admin_url("/usage")).json()["keys"][&gold_id]["denials"] == 1
    });
    assert!(!gw.stderr().contains(&gold) && !std::fs::read_to_string(gw.path("access.log")).unwrap().contains(&gold));

    // Revoking takes effect by hot reload.
    let out = std::process::Command::new(bin())
        .args(["apikey", "revoke", "--policy"])
        .arg(gw.path("policies/keys.yaml"))
        .arg(&gold_id)
        .output()
        .unwrap();
    assert!(out.status.success());
    gw.wait_for(10, "revocation", || {
        send(&agent(), "GET", &gw.url("/private/e"), &[("X-API-Key", gold.as_str())])
            .unwrap()
            .status
            == 401
    });
}

#[test]
fn rate_limit_is_accurate_across_threads_and_survives_reload() {
    let up = echo("u");
    let policy = |extra: &str| {
        format!(
            "{}rate_limits:\n  - {{ name: per-ip, scope: client_ip, rate: 20, per: 1h, burst: 20 }}\n  - {{ name: slow, scope: route, rate: 2, per: 1h }}\n\
routes:\n  - {{ name: r, path_prefix: /, upstream: u, rate_limits: [per-ip] }}\n  - {{ name: s, path_prefix: /slow/, upstream: u, rate_limits: [slow] }}\n{extra}",
            upstream_block(up.addr())
        )
    };
    let gw = Arc::new(Gateway::start(&policy("")));
    // 8 threads race 200 requests against a burst of 20 that refills one token every 3 minutes:
    // exactly 20 pass however the requests interleave and however long they take (the
    // rate limiter's accuracy over time is unit-tested with an injected clock).
    let allowed = Arc::new(AtomicUsize::new(0));
    let denied = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (gw, allowed, denied) = (gw.clone(), allowed.clone(), denied.clone());
            std::thread::spawn(move || {
                let ag = agent();
                let mut bad = Vec::new();
                for _ in 0..25 {
                    match send(&ag, "GET", &gw.url("/"), &[]) {
                        Ok(r) if r.status == 200 => {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) if r.status == 429 => {
                            assert!(r.header("retry-after").is_some());
                            denied.fetch_add(1, Ordering::Relaxed);
                        }
                        other => bad.push(format!("{:?}", other.map(|r| r.status))),
                    }
                }
                bad
            })
        })
        .collect();
    let bad: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        allowed.load(Ordering::Relaxed),
        20,
        "the burst, exactly, across threads"
    );
    assert_eq!(denied.load(Ordering::Relaxed), 180);

    // Exhaust a slow rule (2 per hour), then reload an unrelated change: the counter is kept.
    let ag = agent();
    let statuses: Vec<u16> = (0..3)
        .map(|_| send(&ag, "GET", &gw.url("/slow/x"), &[]).unwrap().status)
        .collect();
    assert_eq!(statuses, vec![200, 200, 429]);
    gw.write_policy(&policy("# touched\n"));
    let gen = gw.generation();
    gw.wait_for(10, "reload", || gw.generation() > gen);
    let r = send(&ag, "GET", &gw.url("/slow/x"), &[]).unwrap();
    assert_eq!(r.status, 429, "counters survive a reload that keeps the rule");
    assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"slow\";q=2;w=3600"));
}

#[test]
fn lists_reload_while_traffic_flows() {
    let up = echo("u");
    let policy = |deny: &str| {
        format!(
            "{}client_ip: {{ trusted_proxies: [\"127.0.0.1/32\"] }}\nip_filter: {{ deny: [{deny}] }}\nroutes:\n  - {{ name: r, path_prefix: /, upstream: u }}\n",
            upstream_block(up.addr())
        )
    };
    let gw = Arc::new(Gateway::start(&policy("\"192.0.2.250\"")));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (gw, stop) = (gw.clone(), stop.clone());
        std::thread::spawn(move || {
            let ag = agent();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = send(&ag, "GET", &gw.url("/"), &[("X-Forwarded-For", "198.51.100.9")]).unwrap();
                seen.push(r.status);
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    gw.write_policy(&policy("\"192.0.2.250\", \"198.51.100.9\""));
    gw.wait_for(10, "deny applied", || {
        send(&agent(), "GET", &gw.url("/"), &[("X-Forwarded-For", "198.51.100.9")])
            .unwrap()
            .status
            == 403
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let seen = traffic.join().unwrap();
    assert!(seen.iter().all(|s| *s == 200 || *s == 403), "{seen:?}");
    let first_denied = seen.iter().position(|s| *s == 403).expect("denied after reload");
    assert!(
        seen[first_denied..].iter().all(|s| *s == 403),
        "once denied, always denied"
    );
    assert!(first_denied > 0, "allowed before the reload");
}

#[test]
fn security_headers_defaults_overrides_and_removal() {
    let up = echo("u");
    let policy = format!(
        r#"{}security_headers:
  headers: {{ X-Frame-Options: SAMEORIGIN }}
routes:
  - {{ name: a, path_prefix: /a/, upstream: u }}
  - name: b
    path_prefix: /b/
    upstream: u
    security_headers:
      replace_upstream: true
      headers: {{ Content-Security-Policy: null, Referrer-Policy: same-origin }}
"#,
        upstream_block(up.addr())
    );
    let gw = Gateway::start(&policy);
    let r = get(&gw.url("/a/x?set_header=Referrer-Policy:origin"));
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("referrer-policy"),
        Some("origin"),
        "the upstream's value is kept by default"
    );
    assert!(r.header("content-security-policy").is_some());
    assert!(r.header("permissions-policy").is_some());
    assert!(r.header("strict-transport-security").is_none(), "HSTS only over TLS");
    assert!(r.header("server").is_none() && r.header("x-powered-by").is_none());
    let r = get(&gw.url("/b/x?set_header=Referrer-Policy:origin"));
    assert_eq!(r.header("referrer-policy"), Some("same-origin"), "replaced");
    assert!(r.header("content-security-policy").is_none(), "removed for this route");
    // Gateway-made responses carry them too.
    let r = get(&gw.url("/nowhere"));
    assert_eq!((r.status, r.header("x-frame-options")), (404, Some("SAMEORIGIN")));
}

/// IPv6 clients (here behind a trusted proxy) share one `client_ip` bucket per /64 by
/// default; another /64 has its own; an IPv4-mapped address counts as the IPv4 address.
#[test]
fn ipv6_clients_are_limited_per_prefix() {
    let up = echo("u");
    let policy = format!(
        "{}client_ip:\n  trusted_proxies: [\"127.0.0.1/32\"]\n\
rate_limits:\n  - {{ name: per-ip, scope: client_ip, rate: 2, per: 1h }}\n  - {{ name: per-host, scope: client_ip, rate: 2, per: 1h, ipv6_prefix: 128 }}\n\
routes:\n  - {{ name: r, path_prefix: /, upstream: u, rate_limits: [per-ip] }}\n  - {{ name: h, path_prefix: /host/, upstream: u, rate_limits: [per-host] }}\n",
        upstream_block(up.addr())
    );
    let gw = Gateway::start(&policy);
    let ag = agent();
    let from = |path: &str, ip: &str| {
        send(&ag, "GET", &gw.url(path), &[("X-Forwarded-For", ip)])
            .unwrap()
            .status
    };
    assert_eq!(from("/", "2001:db8:1:2::1"), 200);
    assert_eq!(from("/", "2001:db8:1:2::beef"), 200);
    assert_eq!(from("/", "2001:db8:1:2:ffff::9"), 429, "the same /64 shares the bucket");
    assert_eq!(from("/", "2001:db8:1:3::1"), 200, "another /64 has its own");
    assert_eq!(from("/", "10.0.0.1"), 200);
    assert_eq!(from("/", "::ffff:10.0.0.1"), 200);
    assert_eq!(from("/", "10.0.0.1"), 429, "IPv4-mapped counts as the IPv4 address");
    // ipv6_prefix: 128 counts each address.
    assert_eq!(from("/host/", "2001:db8:9::1"), 200);
    assert_eq!(from("/host/", "2001:db8:9::1"), 200);
    assert_eq!(from("/host/", "2001:db8:9::2"), 200);
    assert_eq!(from("/host/", "2001:db8:9::1"), 429);
}

/// SIGKILL loses at most one flush interval of API-key usage (README, "usage.flush_interval"):
/// what was counted before the last flush survives, what came after may not.
#[test]
fn sigkill_loses_at_most_one_flush_interval_of_usage() {
    let up = echo("u");
    let mut gw = Gateway::start_with(&key_policy(up.addr(), ""), "usage:\n  flush_interval: 300ms\n");
    let (id, key) = create_key(&gw, "gold", None);
    let ag = agent();
    gw.wait_for(10, "key loaded", || {
        send(&ag, "GET", &gw.url("/other/x"), &[("X-API-Key", key.as_str())])
            .unwrap()
            .status
            == 200
    });
    let used = |gw: &Gateway| -> u64 {
        get(&gw.admin_url(&format!("/usage/{id}"))).json()["usage"]["requests"]
            .as_u64()
            .unwrap_or(0)
    };
    // Two more requests, then a flush interval and more: they are on disk.
    for _ in 0..2 {
        send(&ag, "GET", &gw.url("/other/x"), &[("X-API-Key", key.as_str())]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(900));
    let flushed = used(&gw);
    assert!(flushed >= 2, "{flushed}");
    let on_disk = std::fs::read_to_string(gw.path("data/usage.json")).unwrap();
    assert!(on_disk.contains(&id), "flushed within the interval: {on_disk}");
    // One more request and SIGKILL at once: it may be lost, nothing before it is.
    let _ = send(&ag, "GET", &gw.url("/other/x"), &[("X-API-Key", key.as_str())]);
    gw.kill9();
    gw.spawn();
    let after = used(&gw);
    assert!(
        after >= flushed,
        "what was flushed before the kill survives: {after} < {flushed}"
    );
    assert!(after <= flushed + 1, "nothing is invented: {after} > {flushed} + 1");
}

/// An upstream for the protocol-switch test, on raw sockets: `/fake101` answers a bare 101 (as a
/// status knob or a buggy handler would), `/wrong-accept` a 101 with a wrong
/// `Sec-WebSocket-Accept`, `/ws` the real WebSocket handshake and then echoes bytes; anything
/// else gets 200. Every line that looks like a request line, before or after a 101, is
/// recorded.
fn switching_upstream() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut out = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                let mut switched = false;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end().to_string();
                    if line.is_empty() {
                        continue;
                    }
                    log.lock().unwrap().push(line.clone());
                    if switched {
                        continue; // after a bare 101: only record what comes through
                    }
                    let mut key = String::new();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((n, v)) = h.split_once(':') {
                            if n.eq_ignore_ascii_case("sec-websocket-key") {
                                key = v.trim().to_string();
                            }
                        }
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("");
                    if path.starts_with("/fake101") {
                        out.write_all(
                            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                        )
                        .unwrap();
                        switched = true;
                    } else if path.starts_with("/wrong-accept") {
                        out.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n").unwrap();
                        switched = true;
                    } else if path.starts_with("/ws") {
                        let accept = quantumvault::proxy::forward::websocket_accept(key.as_bytes());
                        write!(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").unwrap();
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = r.read(&mut buf) {
                            if n == 0 || out.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        return;
                    } else {
                        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .unwrap();
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// A 101 from the upstream turns the client's connection into a tunnel no filter reads again.
/// The gateway lets one stand only as the WebSocket handshake the client asked for: a bare 101
/// (an endpoint that echoes a status) or one with the wrong `Sec-WebSocket-Accept` gets a 502,
/// and a request sent next on that connection reaches the upstream only through the filters:
/// here it is IP-denied, and the upstream never sees it. A real handshake still switches and
/// carries bytes both ways.
#[test]
fn a_101_opens_a_tunnel_only_as_the_websocket_handshake_asked_for() {
    use std::io::{Read, Write};
    let (up, seen) = switching_upstream();
    let policy = format!(
        "{}routes:\n  - {{ name: open, path_prefix: /, upstream: u }}\n  - {{ name: private, path_prefix: /private/, upstream: u, ip_filter: {{ deny: [\"127.0.0.0/8\", \"::1\"] }} }}\n",
        upstream_block(up)
    );
    let gw = Gateway::start(&policy);
    assert_eq!(
        status_of(&raw(gw.listen, b"GET /private/x HTTP/1.1\r\nHost: a\r\n\r\n")),
        403
    );
    let upgrade = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    let read_head = |s: &mut std::net::TcpStream| {
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(1) => got.push(b[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    for path in ["/fake101", "/wrong-accept"] {
        let mut s = std::net::TcpStream::connect(gw.listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(upgrade(path).as_bytes()).unwrap();
        let head = read_head(&mut s);
        assert_eq!(status_of(&head), 502, "{path}: {head}");
        // What the client sends next never reaches the upstream unfiltered (the gateway may
        // have closed the connection; a write error is fine).
        let _ = s.write_all(b"GET /private/smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    std::thread::sleep(Duration::from_millis(200));
    let lines = seen.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.starts_with("GET /fake101")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("/private/")),
        "a request reached the upstream unfiltered: {lines:?}"
    );

    // The real handshake switches, and bytes go both ways.
    let mut s = std::net::TcpStream::connect(gw.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(upgrade("/ws").as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    s.write_all(b"frame bytes").unwrap();
    let mut echo = [0u8; 11];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"frame bytes");
}

/// The gateway's own documents under `/.well-known/` (key directory, batch documents, the
/// anchor log) are answered only to addresses the IP lists let in: the global lists, and the
/// lists of the route the path falls under.
#[test]
fn well_known_documents_follow_the_ip_lists() {
    let up = echo("u");
    let paths = [
        "/.well-known/http-message-signatures-directory",
        "/.well-known/http-batch-sig/v1/log/checkpoint",
        "/.well-known/http-batch-sig/v1/batch/00",
    ];
    let open = Gateway::start(&format!(
        "{}routes:\n  - {{ name: r, path_prefix: /, upstream: u }}\n",
        upstream_block(up.addr())
    ));
    let denied = Gateway::start(&format!(
        "{}ip_filter: {{ deny: [\"127.0.0.0/8\", \"::1\"] }}\nroutes:\n  - {{ name: r, path_prefix: /, upstream: u }}\n",
        upstream_block(up.addr())
    ));
    let route_denied = Gateway::start(&format!(
        "{}routes:\n  - {{ name: r, path_prefix: /, upstream: u, ip_filter: {{ allow: [\"10.0.0.0/8\"] }} }}\n",
        upstream_block(up.addr())
    ));
    for path in paths {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert_ne!(status_of(&raw(open.listen, req.as_bytes())), 403, "{path}");
        for gw in [&denied, &route_denied] {
            let answer = raw(gw.listen, req.as_bytes());
            assert_eq!(status_of(&answer), 403, "{path}: {answer}");
            assert!(answer.contains("ip_denied"), "{answer}");
        }
    }
}
