//! Cluster mode against real `redis-server` processes on loopback (a single node, and a
//! 3-master Redis Cluster), started and stopped here: two gateway processes share one limit
//! and one quota, Redis is killed and restarted under load, a cluster master is killed, and a
//! response of one instance verifies against the key directory of the other.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A `redis-server` child on a loopback port; killed on drop.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    free_addr().port()
}

/// One RESP command on a fresh connection; the raw reply.
pub fn redis_cmd(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut buf = vec![0; 65536];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).to_string())
}

impl Redis {
    pub fn start(dir: &Path, extra: &[&str]) -> Redis {
        let port = free_port();
        let dir = dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        r.spawn();
        r
    }

    pub fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // (A server with a password answers -NOAUTH: it is up.)
        while !redis_cmd(self.port, &["PING"]).is_ok_and(|r| r.starts_with("+PONG") || r.starts_with("-NOAUTH")) {
            assert!(Instant::now() < deadline, "redis-server on {} did not start", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Three masters, no replicas, `cluster-require-full-coverage no`.
pub fn redis_cluster(dir: &Path) -> Vec<Redis> {
    let nodes: Vec<Redis> = (0..3)
        .map(|_| {
            Redis::start(
                dir,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-require-full-coverage",
                    "no",
                ],
            )
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    assert!(
        out.status.success(),
        "cluster create: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in &nodes {
        while !redis_cmd(n.port, &["CLUSTER", "INFO"]).is_ok_and(|r| r.contains("cluster_state:ok")) {
            assert!(Instant::now() < deadline, "cluster did not reach cluster_state:ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    nodes
}

fn cluster_yaml(addresses: &[String], mode: &str, instance: &str, extra: &str) -> String {
    let list = addresses
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "cluster:\n  redis: [{list}]\n  mode: {mode}\n  instance: {instance}\n  timeout: 50ms\n  usage_flush: 200ms\n  key_ttl: 10s\n{extra}"
    )
}

const KEY_A: &str = "qv_clustertest_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// A key whose tier's quota fails closed.
const KEY_B: &str = "qv_clustertest_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn policy(up: SocketAddr) -> String {
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(KEY_A.as_bytes()));
    let sha_b = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(KEY_B.as_bytes()));
    format!(
        r#"upstreams:
  - {{ name: u, peers: ["{up}"] }}
rate_limits:
  - {{ name: fleet, scope: route, rate: 40, per: 1h, shared: true }}
  - {{ name: fleet-reserve, scope: route, rate: 40, per: 1h, shared: true, reserve: 5 }}
  - {{ name: alone, scope: route, rate: 40, per: 1h }}
  - {{ name: crowd, scope: route, rate: 40, per: 1h, shared: true }}
  - {{ name: open, scope: client_ip, rate: 100000, per: 1s, shared: true }}
  - {{ name: strict, scope: route, rate: 100000, per: 1s, shared: true, on_redis_down: deny }}
  - {{ name: per-key, scope: api_key, rate: 100000, per: 1s, shared: true }}
{slot_rules}tiers:
  - {{ name: metered, daily_quota: 12 }}
  - {{ name: big, rate_limits: [per-key] }}
  - {{ name: strictq, daily_quota: 1000, quota_on_redis_down: deny }}
api_keys:
  - {{ id: a, name: a, tier: metered, sha256: "{sha}", created: '2026-01-01T00:00:00Z' }}
  - {{ id: b, name: b, tier: strictq, sha256: "{sha_b}", created: '2026-01-01T00:00:00Z' }}
routes:
  - {{ name: shared, path_prefix: /shared/, upstream: u, rate_limits: [fleet] }}
  - {{ name: reserved, path_prefix: /reserved/, upstream: u, rate_limits: [fleet-reserve] }}
  - {{ name: local, path_prefix: /local/, upstream: u, rate_limits: [alone] }}
  - {{ name: crowd, path_prefix: /crowd/, upstream: u, rate_limits: [crowd] }}
  - {{ name: open, path_prefix: /open/, upstream: u, rate_limits: [open] }}
  - {{ name: strict, path_prefix: /strict/, upstream: u, rate_limits: [strict] }}
  - {{ name: metered, path_prefix: /metered/, upstream: u, auth: {{ required: true }} }}
{slot_routes}"#,
        slot_rules = (0..SLOT_ROUTES)
            .map(|i| format!("  - {{ name: s{i}, scope: route, rate: 100000, per: 1s, shared: true }}\n"))
            .collect::<String>(),
        slot_routes = (0..SLOT_ROUTES)
            .map(|i| format!("  - {{ name: s{i}, path_prefix: /s{i}/, upstream: u, rate_limits: [s{i}] }}\n"))
            .collect::<String>(),
    )
}

/// Routes `s0`..: one shared bucket each, so their keys spread over a cluster's masters.
const SLOT_ROUTES: usize = 9;

/// The Redis key of route `s{i}`'s bucket (`qv:rl:{rule}:{scope}:{rate}/{per ms}:{burst}:{hex
/// of the route name}`).
fn slot_key(i: usize) -> String {
    format!("qv:rl:s{i}:route:100000/1000:100000:{}", hex::encode(format!("s{i}")))
}

/// The port of the master that owns `key` (a `-MOVED` answer names it).
fn owner(nodes: &[Redis], key: &str) -> u16 {
    let r = redis_cmd(nodes[0].port, &["GET", key]).unwrap();
    match r.strip_prefix("-MOVED ") {
        Some(rest) => rest.trim().rsplit(':').next().unwrap().parse().unwrap(),
        None => nodes[0].port,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    send(&agent(), "GET", url, headers).map(|r| r.status).unwrap_or(0)
}

/// Requests spread over both gateways in turn; the number answered 200.
fn admitted(gws: &[&Gateway], path: &str, n: usize, headers: &[(&str, &str)]) -> usize {
    (0..n)
        .filter(|i| status(&gws[i % gws.len()].url(path), headers) == 200)
        .count()
}

fn metric(gw: &Gateway, prefix: &str) -> f64 {
    let text = get(&gw.admin_url("/metrics")).body;
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn shared_limits_and_quotas_hold_across_two_gateways(addresses: Vec<String>, mode: &str) {
    let up = echo("u");
    let p = policy(up.addr());
    let a = Gateway::start_with(&p, &cluster_yaml(&addresses, mode, "gw-a", ""));
    let b = Gateway::start_with(&p, &cluster_yaml(&addresses, mode, "gw-b", ""));
    // One bucket of 40 for the fleet (refilling one token every 90 s). The rate-limit fields
    // count the fleet's bucket: b's answer follows a's.
    let first = send(&agent(), "GET", &a.url("/shared/x"), &[]).unwrap();
    assert_eq!(first.header("ratelimit"), Some("\"fleet\";r=39;t=90"), "{mode}");
    assert_eq!(first.header("x-ratelimit-limit"), Some("40"));
    let second = send(&agent(), "GET", &b.url("/shared/x"), &[]).unwrap();
    assert_eq!(second.header("ratelimit"), Some("\"fleet\";r=38;t=180"), "{mode}");
    assert_eq!(second.header("x-ratelimit-remaining"), Some("38"));
    // 38 more of 120 pass.
    let shared = admitted(&[&a, &b], "/shared/x", 120, &[]);
    assert!(
        (38..=40).contains(&shared),
        "{mode}: shared limit admitted {} of 122 (limit 40)",
        shared + 2
    );
    let refused = send(&agent(), "GET", &b.url("/shared/x"), &[]).unwrap();
    assert_eq!(refused.status, 429);
    assert!(refused
        .header("retry-after")
        .is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
    // Reservations of 5 tokens never admit more than the bucket.
    let reserved = admitted(&[&a, &b], "/reserved/x", 120, &[]);
    assert!(
        (36..=42).contains(&reserved),
        "{mode}: reserve 5 admitted {reserved} (limit 40)"
    );
    // Concurrent requests for one bucket are decided together, one call per round trip; the
    // bucket still admits 40 of 160 sent by 16 clients at once.
    let calls = |g: &Gateway| metric(g, "quantumvault_cluster_calls_total{op=\"rate_limit\",result=\"ok\"}");
    let before = calls(&a) + calls(&b);
    let urls = [a.url("/crowd/x"), b.url("/crowd/x")];
    let crowd: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let url = urls[t % 2].clone();
                sc.spawn(move || (0..10).filter(|_| status(&url, &[]) == 200).count())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let made = calls(&a) + calls(&b) - before;
    println!("{mode}: 160 concurrent requests, {crowd} admitted, {made} Redis calls");
    assert!(
        (40..=42).contains(&crowd),
        "{mode}: concurrent shared limit admitted {crowd} of 160 (limit 40)"
    );
    // Without `shared`, each instance counts alone: the fleet admits twice the limit.
    let alone = admitted(&[&a, &b], "/local/x", 120, &[]);
    assert_eq!(alone, 80, "{mode}: local limits count per instance");
    // The daily quota of 12 holds across both instances.
    let key = [("X-API-Key", KEY_A)];
    let statuses: Vec<u16> = (0..30)
        .map(|i| status(&[&a, &b][i % 2].url("/metered/x"), &key))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        12,
        "{mode}: {statuses:?}"
    );
    assert!(statuses[12..].iter().all(|s| *s == 429), "{statuses:?}");
    // /usage on either instance shows the fleet's totals once flushed (every 200 ms).
    a.wait_for(10, "fleet usage on b", || {
        let u = get(&b.admin_url("/usage/a")).json();
        u["scope"] == "fleet" && u["usage"]["requests"] == 30
    });
    let u = get(&a.admin_url("/usage/a")).json();
    assert_eq!(
        (u["scope"].as_str(), u["usage"]["requests"].as_u64()),
        (Some("fleet"), Some(30)),
        "{u}"
    );
    assert_eq!(u["usage"]["quota"]["day_count"], 12, "{u}");
    assert_eq!(u["usage"]["routes"]["metered"]["requests"], 30, "{u}");
    // A second key (another hash slot in a cluster): each key's usage is written on its own.
    for i in 0..7 {
        assert_eq!(status(&[&a, &b][i % 2].url("/metered/x"), &[("X-API-Key", KEY_B)]), 200);
    }
    a.wait_for(10, "fleet usage of the second key", || {
        let u = get(&a.admin_url("/usage/b")).json();
        u["scope"] == "fleet" && u["usage"]["requests"] == 7 && u["usage"]["quota"]["day_count"] == 7
    });
    assert_eq!(get(&b.admin_url("/usage/a")).json()["usage"]["requests"], 30);
    // The fleet's key directory lists both instances' keys, and each instance counts two.
    a.wait_for(10, "two instances", || {
        metric(&a, "quantumvault_cluster_instances") == 2.0
    });
    assert_eq!(metric(&a, "quantumvault_cluster_fallback_total"), 0.0);
}

#[test]
fn two_gateways_share_limits_quotas_and_usage_on_one_redis() {
    let work = tempfile::tempdir().unwrap();
    let redis = Redis::start(work.path(), &[]);
    shared_limits_and_quotas_hold_across_two_gateways(vec![redis.url()], "single");
    // The quota counters expire a day after their UTC window.
    let day = unix_now() / 86_400;
    let ttl = redis_cmd(redis.port, &["TTL", &format!("qv:quota:{{a}}:d:{day}")]).unwrap();
    let ttl: u64 = ttl.trim().trim_start_matches(':').parse().unwrap();
    let want = (day + 2) * 86_400 - unix_now();
    assert!(
        ttl <= want && ttl + 5 >= want,
        "TTL {ttl}, window end + 1 day in {want}"
    );
}

#[test]
fn two_gateways_share_limits_quotas_and_usage_on_a_redis_cluster() {
    let work = tempfile::tempdir().unwrap();
    let nodes = redis_cluster(work.path());
    shared_limits_and_quotas_hold_across_two_gateways(nodes.iter().map(Redis::url).collect(), "cluster");
}

#[test]
fn redis_killed_under_load_falls_back_then_recovers() {
    let work = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(work.path(), &[]);
    let up = echo("u");
    let extra = "monitoring:\n  evaluate_every: 200ms\n";
    let gw = Gateway::start_with(
        &policy(up.addr()),
        &cluster_yaml(&[redis.url()], "single", "gw-a", extra),
    );
    let key = [("X-API-Key", KEY_A)];
    for _ in 0..5 {
        assert_eq!(status(&gw.url("/open/x"), &[]), 200);
        assert_eq!(status(&gw.url("/strict/x"), &[]), 200);
    }
    assert_eq!(status(&gw.url("/metered/x"), &key), 200);
    // Load from four clients on the fail-open route across the kill and the restart below:
    // every answer must be a 200 (decided by Redis, or by the fallback while it is away).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop) = (gw.url("/open/x"), stop.clone());
            std::thread::spawn(move || {
                let (mut n, mut bad, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    let s = status(&url, &[]);
                    slowest = slowest.max(t.elapsed());
                    n += 1;
                    if s != 200 {
                        bad.push(s);
                    }
                }
                (n, bad, slowest)
            })
        })
        .collect();
    // The key's first request is in Redis before the kill.
    gw.wait_for(10, "usage flushed before the outage", || {
        get(&gw.admin_url("/usage/a")).json()["usage"]["requests"] == 1
    });
    redis.kill9();
    // While Redis is gone: fail open where configured (the default), closed on `deny`, and no
    // request waits much past the 50 ms deadline (the breaker stops the waiting after 5).
    let mut slowest = Duration::ZERO;
    let (mut open_ok, mut strict_refused) = (0, 0);
    for _ in 0..40 {
        let t = Instant::now();
        open_ok += usize::from(status(&gw.url("/open/x"), &[]) == 200);
        slowest = slowest.max(t.elapsed());
        let t = Instant::now();
        strict_refused += usize::from(status(&gw.url("/strict/x"), &[]) == 429);
        slowest = slowest.max(t.elapsed());
    }
    println!("redis down: slowest request {slowest:?} (deadline 50 ms)");
    assert_eq!((open_ok, strict_refused), (40, 40));
    assert!(slowest < Duration::from_millis(1000), "a request waited {slowest:?}");
    // Quota fallback (local share): counted here while Redis is away; a tier that fails
    // closed answers 503.
    for _ in 0..3 {
        assert_eq!(status(&gw.url("/metered/x"), &key), 200);
    }
    let closed = send(&agent(), "GET", &gw.url("/metered/x"), &[("X-API-Key", KEY_B)]).unwrap();
    assert_eq!(
        (closed.status, closed.json()["error"].as_str()),
        (503, Some("quota_unavailable"))
    );
    assert_eq!(closed.header("retry-after"), Some("1"));
    let h = gw.health();
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h.to_string().contains("redis unreachable"), "{h}");
    gw.wait_for(10, "RedisUnavailable firing", || {
        get(&gw.admin_url("/alerts")).body.contains("RedisUnavailable")
    });
    assert!(metric(&gw, "quantumvault_cluster_fallback_total") >= 80.0);
    assert_eq!(
        metric(&gw, "quantumvault_cluster_breaker_switches_total{to=\"open\"}"),
        1.0
    );
    // Redis back (empty: it kept nothing): shared decisions again within a second or so.
    redis.spawn();
    let back = Instant::now();
    gw.wait_for(10, "breaker closed", || {
        let _ = status(&gw.url("/strict/x"), &[]);
        metric(&gw, "quantumvault_cluster_breaker_open") == 0.0
    });
    let recovery = back.elapsed();
    println!("redis back: shared decisions again after {recovery:?}");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut total, mut slowest_loaded) = (0, Duration::ZERO);
    for l in loaders {
        let (n, bad, slow) = l.join().unwrap();
        assert!(bad.is_empty(), "fail-open answers under load: {bad:?}");
        total += n;
        slowest_loaded = slowest_loaded.max(slow);
    }
    println!("under load across the outage: {total} requests, all 200, slowest {slowest_loaded:?}");
    assert!(
        slowest_loaded < Duration::from_millis(1000),
        "a loaded request waited {slowest_loaded:?}"
    );
    assert_eq!(status(&gw.url("/strict/x"), &[]), 200);
    // The alert resolves at its next evaluation, and health with it.
    gw.wait_for(10, "healthy again", || gw.health()["status"] == "healthy");
    // Usage reaches Redis with the next flushes: each instance writes its totals, so the
    // restarted (empty) Redis gets all 4 requests of the key, the one before the outage too.
    gw.wait_for(10, "usage flushed after the outage", || {
        let u = get(&gw.admin_url("/usage/a")).json();
        u["scope"] == "fleet" && u["usage"]["requests"] == 4
    });
    // The quota counters died with the Redis process (it ran without persistence: keeping
    // them across Redis's restarts is its AOF, RDB or a replica); the next call adds what the
    // fallback admitted meanwhile (3) and counts itself (1).
    assert_eq!(status(&gw.url("/metered/x"), &key), 200);
    let u = get(&gw.admin_url("/usage/a")).json();
    assert_eq!(u["usage"]["quota"]["day_count"], 4, "{u}");
}

#[test]
fn a_killed_cluster_master_leaves_the_other_slots_working() {
    let work = tempfile::tempdir().unwrap();
    let mut nodes = redis_cluster(work.path());
    let up = echo("u");
    let addrs: Vec<String> = nodes.iter().map(Redis::url).collect();
    let gw = Gateway::start_with(&policy(up.addr()), &cluster_yaml(&addrs, "cluster", "gw-a", ""));
    let owners: Vec<u16> = (0..SLOT_ROUTES).map(|i| owner(&nodes, &slot_key(i))).collect();
    for i in 0..SLOT_ROUTES {
        assert_eq!(status(&gw.url(&format!("/s{i}/x")), &[]), 200);
    }
    assert_eq!(metric(&gw, "quantumvault_cluster_fallback_total"), 0.0);
    // Kill a master that owns some of the buckets but not all.
    let victim = (0..3)
        .find(|&n| {
            let k = owners.iter().filter(|p| **p == nodes[n].port).count();
            k > 0 && k < SLOT_ROUTES
        })
        .expect("the buckets spread over more than one master");
    let dead = nodes[victim].port;
    nodes[victim].kill9();
    std::thread::sleep(Duration::from_millis(300));
    let (live, gone): (Vec<usize>, Vec<usize>) = (0..SLOT_ROUTES).partition(|&i| owners[i] != dead);
    println!("killed master {dead}: buckets {gone:?} on it, {live:?} on the others");
    let ok = |gw: &Gateway| metric(gw, "quantumvault_cluster_calls_total{op=\"rate_limit\",result=\"ok\"}");
    let (ok_before, fallback_before) = (ok(&gw), metric(&gw, "quantumvault_cluster_fallback_total"));
    // Alternate between the buckets: every request is served (the dead ones fail open), and the
    // buckets on the live masters are still decided in Redis.
    for _ in 0..5 {
        for i in 0..SLOT_ROUTES {
            assert_eq!(status(&gw.url(&format!("/s{i}/x")), &[]), 200);
        }
    }
    let answered = ok(&gw) - ok_before;
    let fell_back = metric(&gw, "quantumvault_cluster_fallback_total") - fallback_before;
    println!("one master down: {answered} decisions by the live masters, {fell_back} fallbacks");
    assert!(
        answered >= (live.len() * 5) as f64 * 0.8,
        "{answered} of {} live-slot decisions in Redis",
        live.len() * 5
    );
    assert!(fell_back >= 1.0, "the dead master's buckets fell back");
}

/// A policy that signs every response with ECDSA, in front of `up`.
fn signing_policy(up: SocketAddr) -> String {
    format!(
        "signing:\n  enabled: true\n  algorithm: ecdsa-p256\nupstreams:\n  - {{ name: u, peers: [\"{up}\"] }}\nroutes:\n  - {{ name: api, path_prefix: /api/, upstream: u }}\n"
    )
}

/// A signing gateway (a keystore of its own) in cluster mode on `redis` as `instance`;
/// `key_ttl`, if given (`key_ttl: 5s`), replaces the harness's 10 s.
fn signing_instance(policy: &str, redis: &Redis, instance: &str, key_ttl: &str) -> Gateway {
    let mut yaml = cluster_yaml(&[redis.url()], "single", instance, "");
    if !key_ttl.is_empty() {
        yaml = yaml.replace("key_ttl: 10s", key_ttl);
    }
    crate::signing::signing_gateway_with(policy, |y| {
        let mut text = std::fs::read_to_string(y).unwrap();
        text.push_str(&yaml);
        std::fs::write(y, text).unwrap();
    })
}

#[test]
fn a_response_of_one_instance_verifies_with_the_other_instances_directory() {
    let work = tempfile::tempdir().unwrap();
    let redis = Redis::start(work.path(), &[]);
    let up = echo("u");
    let policy = signing_policy(up.addr());
    let a = signing_instance(&policy, &redis, "gw-a", "");
    let b = signing_instance(&policy, &redis, "gw-b", "");
    let c = crate::signing::capture("GET", &a.url("/api/items"), &[], None);
    assert_eq!(c.status, 200);
    assert!(
        c.header("signature-input").unwrap().contains("keyid=\"gw-a/"),
        "{:?}",
        c.headers
    );
    let dir_url = "/.well-known/http-message-signatures-directory";
    b.wait_for(10, "b lists a's keys", || get(&b.url(dir_url)).body.contains("gw-a/"));
    let jwks: serde_json::Value = get(&b.url(dir_url)).json();
    let kids = key_ids(&jwks);
    assert!(
        kids.iter().any(|k| k.starts_with("gw-a/")) && kids.iter().any(|k| k.starts_with("gw-b/")),
        "{kids:?}"
    );
    let ex = crate::signing::write_json(work.path(), "ex.json", &c.exchange);
    let jwks_path = crate::signing::write_json(work.path(), "jwks.json", &jwks);
    let (code, out) = crate::signing::qv_verify(&ex, &jwks_path);
    assert_eq!(code, 0, "a's response against b's directory: {out}");
    let (code, out) = crate::signing::py_verify(&ex, &jwks_path, &[]);
    assert_eq!(code, 0, "independent verifier: {out}");
    // b's own directory without the fleet (a's keys removed) does not verify it.
    let own: Vec<serde_json::Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kid"].as_str().unwrap().starts_with("gw-b/"))
        .cloned()
        .collect();
    let own_path = crate::signing::write_json(work.path(), "own.json", &serde_json::json!({"keys": own}));
    assert_ne!(crate::signing::qv_verify(&ex, &own_path).0, 0);
}

/// The quota counters are per UTC day: spent on one day, counted afresh the next (the script
/// and the key names, driven here with two times; the gateway passes its request time).
#[test]
fn a_fleet_quota_resets_with_its_utc_window() {
    use quantumvault::config::cluster::{ClusterConfig, RedisMode};
    use quantumvault::config::TierSpec;
    let work = tempfile::tempdir().unwrap();
    let redis = Redis::start(work.path(), &[]);
    let config = ClusterConfig {
        addresses: vec![redis.url()],
        mode: RedisMode::Single,
        username: None,
        password: None,
        tls: false,
        ca_file: None,
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        instance: "t".into(),
        instances: None,
        members: vec![],
        usage_flush: Duration::from_secs(2),
        breaker_failures: 5,
        breaker_probe: Duration::from_millis(250),
        key_ttl: Duration::from_secs(60),
    };
    let cluster = quantumvault::cluster::Cluster::start(&config).unwrap();
    let tier = TierSpec {
        name: "t".into(),
        rate_limits: vec![],
        daily_quota: Some(3),
        monthly_quota: Some(5),
        quota_on_redis_down: Default::default(),
        routes: None,
        methods: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // 2027-11-30 23:59:00 UTC, then the next day (a new month too). In the future: counters
    // expire a day after their window, and Redis drops a key whose expiry has passed.
    let nov_30 = 21_152 * 86_400 + 86_340;
    let dec_1 = nov_30 + 120;
    let spend = |t: u64| rt.block_on(cluster.quotas.consume(&cluster, "k", &tier, t));
    use quantumvault::cluster::usage::QuotaAnswer;
    let counted = |a: &QuotaAnswer| matches!(a, QuotaAnswer::Counted);
    let day1: Vec<bool> = (0..4).map(|_| counted(&spend(nov_30))).collect();
    assert_eq!(day1, [true, true, true, false], "3 a day");
    match spend(nov_30) {
        QuotaAnswer::Exceeded(quantumvault::usage::QuotaExceeded::Daily { reset_in }) => {
            assert_eq!(reset_in, Duration::from_secs(60))
        }
        _ => panic!("the daily quota is spent"),
    }
    // A new day and month: counted afresh.
    let day2: Vec<bool> = (0..4).map(|_| counted(&spend(dec_1))).collect();
    assert_eq!(day2, [true, true, true, false]);
    // The monthly quota (5) spans days: two more on Dec 2, then the month is spent.
    let dec_2 = dec_1 + 86_400;
    let day3: Vec<bool> = (0..3).map(|_| counted(&spend(dec_2))).collect();
    assert_eq!(day3, [true, true, false], "3 of December's 5 were spent on the 1st");
}

/// A Redis that requires a password: the gateway reads it from `password_file`, and a wrong
/// one is an error (fallbacks), never a silent success.
#[test]
fn the_redis_password_comes_from_a_file() {
    let work = tempfile::tempdir().unwrap();
    let secret = "s3cret-for-the-test";
    let redis = Redis::start(work.path(), &["--requirepass", secret]);
    let up = echo("u");
    let good = work.path().join("redis.pass");
    std::fs::write(&good, format!("{secret}\n")).unwrap();
    let bad = work.path().join("wrong.pass");
    std::fs::write(&bad, "not-it\n").unwrap();
    let conf = |file: &Path| {
        cluster_yaml(
            &[redis.url()],
            "single",
            "gw-a",
            &format!("  password_file: {}\n", file.display()),
        )
    };
    let gw = Gateway::start_with(&policy(up.addr()), &conf(&good));
    for _ in 0..3 {
        assert_eq!(status(&gw.url("/strict/x"), &[]), 200);
    }
    assert_eq!(
        metric(&gw, "quantumvault_cluster_calls_total{op=\"rate_limit\",result=\"ok\"}"),
        3.0
    );
    assert!(!gw.stderr().contains(secret), "the password is never logged");
    let wrong = Gateway::start_with(&policy(up.addr()), &conf(&bad));
    assert_eq!(
        status(&wrong.url("/strict/x"), &[]),
        429,
        "fail closed: Redis refused us"
    );
    assert_eq!(
        metric(
            &wrong,
            "quantumvault_cluster_calls_total{op=\"rate_limit\",result=\"ok\"}"
        ),
        0.0
    );
}

/// Redis over TLS: the certificate must chain to `ca_file`; a gateway trusting another CA gets
/// no answer from Redis (the strict rule fails closed).
#[test]
fn redis_over_tls_checks_the_certificate() {
    let work = tempfile::tempdir().unwrap();
    crate::tls::make_certs(work.path());
    let tls_port = free_port();
    let p = |f: &str| work.path().join(f).display().to_string();
    let (cert, key, ca) = (p("cert.pem"), p("key.pem"), p("ca.pem"));
    let redis = Redis::start(
        work.path(),
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ],
    );
    let up = echo("u");
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let conf = |ca: &str| cluster_yaml(&[url.clone()], "single", "gw-a", &format!("  ca_file: {ca}\n"));
    let gw = Gateway::start_with(&policy(up.addr()), &conf(&ca));
    for _ in 0..3 {
        assert_eq!(status(&gw.url("/strict/x"), &[]), 200);
    }
    let ok = "quantumvault_cluster_calls_total{op=\"rate_limit\",result=\"ok\"}";
    assert_eq!(metric(&gw, ok), 3.0, "decided by Redis over TLS");
    let untrusting = Gateway::start_with(&policy(up.addr()), &conf(&p("other.pem")));
    assert_eq!(
        status(&untrusting.url("/strict/x"), &[]),
        429,
        "an untrusted certificate is no answer"
    );
    assert_eq!(metric(&untrusting, ok), 0.0);
    drop(redis);
}

/// Two instances that share an instance name overwrite each other's keys in the directory:
/// each notices, says so in its log and counts it.
#[test]
fn two_instances_with_one_name_are_reported() {
    let work = tempfile::tempdir().unwrap();
    let redis = Redis::start(work.path(), &[]);
    let up = echo("u");
    let policy = signing_policy(up.addr());
    // A key directory refreshed every 1.7 s (a third of the shortest key_ttl).
    let a = signing_instance(&policy, &redis, "twin", "key_ttl: 5s");
    let b = signing_instance(&policy, &redis, "twin", "key_ttl: 5s");
    a.wait_for(15, "a name clash reported", || {
        metric(&a, "quantumvault_cluster_name_clashes_total") + metric(&b, "quantumvault_cluster_name_clashes_total")
            > 0.0
    });
    let logs = a.stderr() + &b.stderr();
    assert!(
        logs.contains("another instance publishes keys under this instance's name"),
        "{logs}"
    );
}
