//! Hot reload: by file edit, SIGHUP and POST /reload, under traffic, and failed reloads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;

fn policy_with_header(up: std::net::SocketAddr, host: &str) -> String {
    format!(
        "upstreams:\n  - name: u\n    peers: [\"{up}\"]\nroutes:\n  - name: all\n    path_prefix: /\n    upstream: u\n    upstream_host: {host}\n"
    )
}

#[test]
fn reloads_under_traffic_lose_no_request() {
    let up = echo("u");
    let gw = Arc::new(Gateway::start(&policy_with_header(up.addr(), "gen-0")));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(std::thread::spawn(move || {
            let ag = agent();
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match send(&ag, "GET", &gw.url("/r"), &[]) {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{} {}", r.status, r.body));
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(e);
                    }
                }
            }
            errors
        }));
    }
    let ag = agent();
    let mut generation = gw.generation();
    for i in 1..=21 {
        let host = format!("gen-{i}");
        match i % 3 {
            0 => {
                gw.write_policy(&policy_with_header(up.addr(), &host));
            }
            1 => {
                std::fs::write(gw.path("policies/main.yaml"), policy_with_header(up.addr(), &host)).unwrap();
                // Wait out the watcher's debounce before signalling, so the two do not merge.
                std::thread::sleep(std::time::Duration::from_millis(300));
                gw.signal("HUP");
            }
            _ => {
                std::fs::write(gw.path("policies/main.yaml"), policy_with_header(up.addr(), &host)).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(300));
                let r = send(&ag, "POST", &gw.admin_url("/reload"), &[]).unwrap();
                assert_eq!(r.status, 200, "{}", r.body);
            }
        }
        gw.wait_for(10, &format!("reload {i} live"), || {
            send(&ag, "GET", &gw.url("/probe"), &[])
                .map(|r| r.json()["headers"]["host"] == host.as_str())
                .unwrap_or(false)
        });
        let g = gw.generation();
        assert!(g > generation, "generation advances");
        generation = g;
        std::thread::sleep(std::time::Duration::from_millis(60));
    }
    // Keep traffic flowing until at least 2,000 requests went through the reloads.
    gw.wait_for(60, "2000 requests", || ok.load(Ordering::Relaxed) >= 2000);
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert!(errors.is_empty(), "failed requests during reloads: {errors:?}");
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) >= 2000);
    let metrics = get(&gw.admin_url("/metrics")).body;
    let reloads_ok: f64 = metrics
        .lines()
        .find(|l| l.starts_with("quantumvault_config_reloads_total{result=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(reloads_ok >= 20.0, "{metrics}");
}

#[test]
fn bad_edit_keeps_running_policy_and_degrades_health() {
    let up = echo("u");
    let gw = Gateway::start(&policy_with_header(up.addr(), "good"));
    let gen = gw.generation();
    gw.write_policy("upstreams:\n  - name: u\n    peers: [\"127.0.0.1:1\"]\n    bogus: 1\nroutes: []\n");
    gw.wait_for(10, "failed reload recorded", || gw.health()["status"] == "degraded");
    let h = gw.health();
    let reason = h["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("main.yaml:4:5: upstreams[0].bogus: unknown field `bogus`"),
        "{reason}"
    );
    assert_eq!(
        h["policy"]["generation"].as_u64(),
        Some(gen),
        "old policy keeps running"
    );
    let r = get(&gw.url("/x"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["host"], "good");
    // POST /reload reports the same errors.
    let r = send(&agent(), "POST", &gw.admin_url("/reload"), &[]).unwrap();
    assert_eq!(r.status, 422);
    assert!(r.body.contains("unknown field `bogus`"), "{}", r.body);
    let metrics = get(&gw.admin_url("/metrics")).body;
    assert!(
        metrics.contains("quantumvault_config_reloads_total{result=\"error\"}"),
        "{metrics}"
    );
    assert!(gw.stderr().contains("unknown field `bogus`"), "the error is logged");
    // A good edit clears the degraded state.
    gw.write_policy(&policy_with_header(up.addr(), "fixed"));
    gw.wait_for(10, "recovered", || gw.health()["status"] == "healthy");
    assert_eq!(get(&gw.url("/x")).json()["headers"]["host"], "fixed");
}

#[test]
fn listener_change_is_reported_as_needing_restart() {
    let up = echo("u");
    let gw = Gateway::start(&policy_with_header(up.addr(), "h"));
    let text = std::fs::read_to_string(gw.path("gateway.yaml")).unwrap();
    let other = free_addr();
    std::fs::write(
        gw.path("gateway.yaml"),
        text.replacen(&gw.listen.to_string(), &other.to_string(), 1),
    )
    .unwrap();
    let r = send(&agent(), "POST", &gw.admin_url("/reload"), &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let h = gw.health();
    assert!(
        h["reasons"].to_string().contains("restart needed for: listeners"),
        "{h}"
    );
    assert_eq!(get(&gw.url("/")).status, 200, "still serving on the old socket");
}

#[test]
fn admin_token_guards_reload_and_non_loopback_needs_one() {
    let up = echo("u");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "s3cret-admin-token\n").unwrap();
    let gw = Gateway::start_with_pre(&policy_with_header(up.addr(), "h"), "", |conf| {
        let text = std::fs::read_to_string(conf).unwrap();
        let text = text.replacen(
            "admin:\n  address:",
            &format!("admin:\n  token_file: {}\n  address:", token_file.display()),
            1,
        );
        std::fs::write(conf, text).unwrap();
    });
    assert_eq!(get(&gw.admin_url("/ready")).status, 200);
    let r = send(&agent(), "POST", &gw.admin_url("/reload"), &[]).unwrap();
    assert_eq!(r.status, 401);
    let r = send(
        &agent(),
        "POST",
        &gw.admin_url("/reload"),
        &[("Authorization", "Bearer wrong")],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let r = send(
        &agent(),
        "POST",
        &gw.admin_url("/reload"),
        &[("Authorization", "Bearer s3cret-admin-token")],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // A rotated token takes effect at the next reload; the old one stops working.
    std::fs::write(&token_file, "rotated-admin-token\n").unwrap();
    let reload = |token: &str| {
        send(
            &agent(),
            "POST",
            &gw.admin_url("/reload"),
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .unwrap()
        .status
    };
    assert_eq!(reload("s3cret-admin-token"), 200, "the reload that reads the new token");
    assert_eq!(
        reload("s3cret-admin-token"),
        401,
        "the old token is refused after the rotation"
    );
    assert_eq!(reload("rotated-admin-token"), 200);
    assert!(
        !gw.stderr().contains("s3cret") && !gw.stderr().contains("rotated-admin"),
        "the token is never logged"
    );

    // A non-loopback admin address without a token is refused at start.
    let conf = dir.path().join("gateway.yaml");
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.yaml"), policy_with_header(up.addr(), "h")).unwrap();
    std::fs::write(&conf, "listeners: [{address: \"127.0.0.1:1\"}]\nadmin: {address: \"0.0.0.0:9901\"}\ndata_dir: data\npolicies: [policies]\n").unwrap();
    let (code, _, stderr) = run_check(&conf);
    assert_eq!(code, 64);
    assert!(
        stderr.contains("admin.address") && stderr.contains("no token"),
        "{stderr}"
    );
}
