//! Slow clients and connection bounds (issue 17): 2,000 connections trickling request heads
//! (slowloris) and bodies (slow POST) a byte at a time, each byte well inside the per-read
//! timeout, do not stop a normal client, and the gateway closes every one of them with the head
//! and body deadlines of `crate::connections`; `downstream.max_connections` closes connections
//! over the limit on accept; the HTTP/2 stream and header-list limits are advertised and
//! enforced.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;

fn metric(gw: &Gateway, key: &str) -> f64 {
    let text = get(&gw.admin_url("/metrics")).body;
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().parse().unwrap_or(0.0)))
        .unwrap_or(0.0)
}

/// One trickling client: its socket, the bytes it still has to send and whether the gateway
/// has closed it.
struct Slow {
    s: TcpStream,
    rest: Vec<u8>,
    closed: Option<Duration>,
}

/// Sends one more byte on every open connection; notes the ones the gateway closed.
fn trickle(conns: &mut [Slow], started: Instant) {
    let mut buf = [0u8; 4096];
    for c in conns.iter_mut().filter(|c| c.closed.is_none()) {
        let gone = match c.s.read(&mut buf) {
            Ok(0) => true,
            // An answer (a 408 or 400) is as good as a close for a client that keeps trickling.
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(_) => true,
        };
        let gone = gone
            || match c.rest.first().copied() {
                Some(b) => match c.s.write(&[b]) {
                    Ok(_) => {
                        c.rest.remove(0);
                        false
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                    Err(_) => true,
                },
                None => false,
            };
        if gone {
            c.closed = Some(started.elapsed());
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `n` requests on fresh connections; returns their latencies, sorted. Each must be a 200.
fn normal_client(gw: &Gateway, n: usize) -> Vec<Duration> {
    let url = format!("http://{}/normal", gw.listen);
    let mut lat: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let r = get(&url);
            assert_eq!(
                r.status, 200,
                "a normal client is served beside the slow ones: {}",
                r.body
            );
            t.elapsed()
        })
        .collect();
    lat.sort();
    lat
}

#[test]
fn two_thousand_slow_clients_do_not_stop_a_normal_one_and_are_closed() {
    let up = echo("e");
    // The per-read timeout (10 s) would never fire: each connection sends a byte every ~0.3 s.
    let gw = Gateway::start_with(
        &policy_one("e", &[up.addr()], ""),
        "downstream:\n  read_timeout: 10s\n  header_timeout: 2s\n  body_timeout: 2s\n  body_min_rate: 500\n",
    );
    let idle = normal_client(&gw, 200);

    let started = Instant::now();
    let mut conns = Vec::new();
    for i in 0..2_000 {
        let s = TcpStream::connect(gw.listen).expect("connect");
        s.set_nonblocking(true).unwrap();
        // Half trickle a head that never ends; half send a whole head, then a body far slower
        // than the minimum rate.
        let (first, rest): (&[u8], Vec<u8>) = if i % 2 == 0 {
            (
                b"GET /slow HTTP/1.1\r\nHost: a\r\n",
                b"X-Slow: ".iter().chain([b'x'; 4096].iter()).copied().collect(),
            )
        } else {
            (
                b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n",
                vec![b'y'; 100_000],
            )
        };
        let mut s = s;
        let _ = s.write(first);
        conns.push(Slow { s, rest, closed: None });
    }
    // Keep trickling while a normal client works beside them.
    let mut loaded = Vec::new();
    let mut last = Instant::now();
    while loaded.len() < 200 && started.elapsed() < Duration::from_secs(30) {
        if last.elapsed() >= Duration::from_millis(300) {
            trickle(&mut conns, started);
            last = Instant::now();
        }
        let t = Instant::now();
        let r = get(&format!("http://{}/normal", gw.listen));
        assert_eq!(r.status, 200, "normal client beside 2,000 slow ones: {}", r.body);
        loaded.push(t.elapsed());
    }
    loaded.sort();
    // Then trickle until every slow connection is closed (the deadlines are 2 s; a head sends
    // 4 KiB and a body 100 KB at ~3 B/s, so nothing ends on its own within the bound).
    while conns.iter().any(|c| c.closed.is_none()) && started.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(300));
        trickle(&mut conns, started);
    }
    let open = conns.iter().filter(|c| c.closed.is_none()).count();
    let mut closed: Vec<Duration> = conns.iter().filter_map(|c| c.closed).collect();
    closed.sort();
    println!(
        "normal client: idle p50 {:?} p99 {:?}; beside 2,000 slow connections p50 {:?} p99 {:?} ({} requests); \
         slow connections closed after p50 {:?}, max {:?}",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99),
        percentile(&loaded, 0.5),
        percentile(&loaded, 0.99),
        loaded.len(),
        closed.get(closed.len() / 2),
        closed.last()
    );
    assert_eq!(loaded.len(), 200, "the normal client finished its requests");
    assert_eq!(
        open, 0,
        "every trickling connection is closed by the head or body deadline"
    );
    let header = metric(&gw, "quantumvault_downstream_timeouts_total{kind=\"header\"}");
    let body = metric(&gw, "quantumvault_downstream_timeouts_total{kind=\"body\"}");
    assert!(
        header >= 1_000.0,
        "slowloris connections closed by the head deadline: {header}"
    );
    assert!(body >= 1_000.0, "slow bodies closed by the body deadline: {body}");
    // A body at a fair rate is not cut: 3,000 bytes over ~3 s is above 500 B/s after the
    // 2 s allowance.
    let mut s = TcpStream::connect(gw.listen).unwrap();
    s.write_all(b"POST /fair HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 3000\r\n\r\n")
        .unwrap();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        s.write_all(&[b'z'; 500]).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "a body at the minimum rate arrives whole");
}

#[test]
fn connections_over_the_limit_are_closed_on_accept() {
    let up = echo("e");
    let gw = Gateway::start_with(
        &policy_one("e", &[up.addr()], ""),
        "downstream:\n  max_connections: 20\n  header_timeout: 60s\n",
    );
    // 20 connections that say nothing hold every place.
    let held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(gw.listen).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&gw, "quantumvault_connections_open") < 20.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&gw, "quantumvault_connections_open"), 20.0);
    // The 21st is accepted by the kernel and closed by the gateway without an answer.
    let mut extra = TcpStream::connect(gw.listen).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut buf = [0u8; 64];
    let n = extra.read(&mut buf).unwrap_or(0);
    assert_eq!(
        n,
        0,
        "over the limit: closed, not served: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(metric(&gw, "quantumvault_connections_refused_total") >= 1.0);
    // A place given back is a place for the next client.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = send(&agent(), "GET", &format!("http://{}/x", gw.listen), &[]).is_ok_and(|r| r.status == 200);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "served again once connections closed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn http2_stream_and_header_list_limits_are_advertised_and_enforced() {
    let certs = tempfile::tempdir().unwrap();
    crate::tls::make_certs(certs.path());
    let (cert, key, ca) = (
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
        certs.path().join("ca.pem"),
    );
    let up = echo("e");
    let gw = Gateway::start_with_pre(
        &policy_one("e", &[up.addr()], ""),
        "downstream:\n  h2_max_streams: 7\n  h2_max_header_bytes: 4096\n",
        |conf| crate::tls::with_tls_listener(conf, &cert, &key),
    );
    let port = gw.listen.port().to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/h2");
    let curl = |extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-v",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "--http2",
            ])
            .args(["--cacert", ca.to_str().unwrap(), "--resolve", &resolve])
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, verbose) = curl(&[]);
    assert_eq!(code, "200", "{verbose}");
    // The server's first SETTINGS frame, read with Python's ssl module (ALPN h2, the client
    // preface and an empty SETTINGS frame), printed as `id=value` pairs.
    let settings = std::process::Command::new("python3")
        .arg("-c")
        .arg(H2_SETTINGS_PY)
        .args([ca.to_str().unwrap(), &port])
        .output()
        .expect("python3");
    let settings = String::from_utf8_lossy(&settings.stdout).into_owned();
    assert!(
        settings.contains("3=7 "),
        "SETTINGS_MAX_CONCURRENT_STREAMS is 7: {settings}"
    );
    assert!(
        settings.contains("6=4096 "),
        "SETTINGS_MAX_HEADER_LIST_SIZE is 4096: {settings}"
    );
    // A header list over 4 KiB decoded is refused; one under it passes.
    let big = format!("X-Big: {}", "b".repeat(6000));
    let (code, verbose) = curl(&["-H", &big]);
    assert_ne!(code, "200", "a header list over the limit is not served: {verbose}");
    let small = format!("X-Small: {}", "s".repeat(1000));
    let (code, verbose) = curl(&["-H", &small]);
    assert_eq!(code, "200", "{verbose}");
}

const H2_SETTINGS_PY: &str = r#"
import socket, ssl, struct, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))), server_hostname="localhost")
assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + bytes([4, 0]) + struct.pack(">I", 0))
def read(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise SystemExit("closed")
        b += c
    return b
while True:
    head = read(9)
    length = int.from_bytes(head[:3], "big"); kind = head[3]; flags = head[4]
    payload = read(length)
    if kind == 4 and not flags & 1:
        out = ""
        for i in range(0, length, 6):
            ident, value = struct.unpack(">HI", payload[i:i + 6])
            out += f"{ident}={value} "
        print(out)
        break
"#;
