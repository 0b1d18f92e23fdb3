//! Client timeouts (issue 17): `downstream.read_timeout`, `write_timeout` and
//! `keepalive_timeout` drop a client that stops sending, stops reading, or idles, and count
//! the first two in `quantumvault_downstream_timeouts_total`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::common::*;

/// An upstream that answers every request with `size` bytes, as fast as it can.
fn big_upstream(size: usize) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                let _ = c.write_all(head.as_bytes());
                let chunk = vec![b'x'; 1 << 16];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if c.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}

/// How long until the gateway closes `s` (reads return 0 or fail), reading and dropping
/// whatever arrives, up to `limit`.
fn closed_after(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 65536];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn timeouts_total(gw: &Gateway, kind: &str) -> f64 {
    let text = get(&gw.admin_url("/metrics")).body;
    let key = format!("quantumvault_downstream_timeouts_total{{kind=\"{kind}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(key.as_str()).map(|v| v.trim().parse().unwrap_or(0.0)))
        .unwrap_or(0.0)
}

#[test]
fn slow_silent_and_idle_clients_are_dropped() {
    let up = big_upstream(256 << 20);
    let echo = echo("e");
    let policy = format!(
        "upstreams:\n  - {{ name: big, peers: [\"{up}\"] }}\n  - {{ name: e, peers: [\"{}\"] }}\n\
         routes:\n  - {{ name: big, path_prefix: /big, upstream: big }}\n  - {{ name: e, path_prefix: /, upstream: e }}\n",
        echo.addr()
    );
    let gw = Gateway::start_with(
        &policy,
        "downstream:\n  read_timeout: 1s\n  write_timeout: 1s\n  keepalive_timeout: 1s\n",
    );
    let limit = Duration::from_secs(8);

    // Idle keep-alive: after one answered request, the connection is closed within ~1 s.
    let mut s = TcpStream::connect(gw.listen).unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let t = closed_after(&mut s, limit).expect("idle keep-alive connection closed");
    assert!(t < Duration::from_secs(4), "closed after {t:?}");

    // A body that stops arriving: dropped after the read timeout, counted.
    let mut s = TcpStream::connect(gw.listen).unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhalf")
        .unwrap();
    let t = closed_after(&mut s, limit).expect("silent client dropped");
    assert!(t < Duration::from_secs(4), "dropped after {t:?}");

    // A client that never reads a 256 MiB response: dropped after the write timeout, long
    // before the response could have been written.
    let mut s = TcpStream::connect(gw.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                if started.elapsed() > limit {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    assert!(
        got < 128 << 20,
        "the gateway kept writing to a client that did not read: {got} bytes"
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    while (timeouts_total(&gw, "read") < 1.0 || timeouts_total(&gw, "write") < 1.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(timeouts_total(&gw, "read") >= 1.0, "read timeouts counted");
    assert!(timeouts_total(&gw, "write") >= 1.0, "write timeouts counted");
}
