//! Request smuggling on raw sockets (issue 17): a table of framing attacks sent to the
//! gateway, each on its own connection, in front of a raw upstream that parses what it
//! receives strictly (Content-Length or chunked, nothing else) and records every request it
//! sees. For each attack the upstream must see no more requests than the gateway answered,
//! and never the request hidden inside the attack (its path is `/smuggled`): each attack is
//! refused or normalised to what the gateway itself read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// A strict HTTP/1.1 upstream: one thread per connection, requests framed by Content-Length or
/// chunked (RFC 9112 section 6), each answered 200 with a short body; every request line seen,
/// with the connection's number, goes to `seen`.
struct RawUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(conn, &log));
            }
        });
        RawUpstream { addr, seen }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<String>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line.trim().is_empty() {
            continue;
        }
        let request_line = line.trim_end().to_string();
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
        if chunked {
            loop {
                let mut size = String::new();
                if r.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                if r.read_exact(&mut chunk).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0u8; length];
            if r.read_exact(&mut body).is_err() {
                return;
            }
        }
        log.lock().unwrap().push(request_line);
        if out
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// Sends `bytes` on one connection and returns the status codes of the responses read until
/// the gateway closes or stays quiet.
fn send(gw: SocketAddr, bytes: &[u8]) -> Vec<u16> {
    let mut s = TcpStream::connect(gw).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    s.write_all(bytes).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&data).into_owned();
    let mut statuses = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("HTTP/1.") {
        let head_end = rest[start..].find("\r\n\r\n").map_or(rest.len(), |e| start + e + 4);
        let head = &rest[start..head_end];
        if let Some(code) = head.get(9..12).and_then(|c| c.parse().ok()) {
            statuses.push(code);
        }
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(0);
        rest = rest.get(head_end + len..).unwrap_or("");
    }
    statuses
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// The attacks: (name, bytes). Every hidden request has the path `/smuggled`.
fn attacks() -> Vec<(&'static str, String)> {
    let s = SMUGGLED;
    let n = s.len();
    vec![
        ("CL.TE", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("TE.CL", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{s}\r\n0\r\n\r\n", n)),
        ("TE.TE xchunked", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("TE space before colon", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{s}")),
        ("CL space before colon", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length : {}\r\n\r\n{s}", n)),
        ("TE chunked, identity", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{s}")),
        ("TE identity, chunked", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("TE tab", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("TE upper case", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("two TE headers", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("TE obs-fold", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("header obs-fold", format!("POST /a HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("bare LF before TE", format!("POST /a HTTP/1.1\r\nHost: a\r\nX-A: b\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("bare CR before TE", format!("POST /a HTTP/1.1\r\nHost: a\r\nX-A: b\rTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("two different CL", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: {n}\r\n\r\n{s}")),
        ("two equal CL", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\nContent-Length: {n}\r\n\r\n{s}")),
        ("comma-listed CL", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0, {n}\r\n\r\n{s}")),
        ("comma-listed equal CL", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {n}, {n}\r\n\r\n{s}")),
        ("CL with plus sign", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +{n}\r\n\r\n{s}")),
        ("CL hex", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0x{n:x}\r\n\r\n{s}")),
        ("CL with inner space", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0 {n}\r\n\r\n{s}")),
        ("CL negative", format!("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n{s}")),
        ("HTTP/1.0 with TE", format!("POST /a HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
        ("chunk size overflow", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff1\r\nx\r\n0\r\n\r\n{s}")),
        ("chunk size 0x prefix", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x{:x}\r\n{s}\r\n0\r\n\r\n", n)),
        ("chunk size with space", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n {:x}\r\n{s}\r\n0\r\n\r\n", n)),
        ("chunk extension with LF", format!("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{:x};x\n{s}\r\n0\r\n\r\n", n)),
        ("absolute URI, other Host", format!("GET http://b.example/a HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n{s}")),
        ("NUL in a header", format!("POST /a HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\nContent-Length: {n}\r\n\r\n{s}")),
        ("GET with a body holding a request", format!("GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n{s}")),
        ("pipelined plain pair", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n".to_string()),
        ("TE on GET, CL too", format!("GET /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{s}", 5 + n)),
    ]
}

#[test]
fn framing_attacks_are_refused_or_normalised_never_smuggled() {
    let up = RawUpstream::start();
    let policy = format!(
        "upstreams:\n  - {{ name: u, peers: [\"{}\"] }}\nroutes:\n  - {{ name: all, path_prefix: /, upstream: u }}\n",
        up.addr
    );
    let gw = Gateway::start(&policy);
    // The upstream works: a plain request reaches it once.
    assert_eq!(send(gw.listen, b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"), vec![200]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(up.take(), vec!["GET /one HTTP/1.1"]);

    let table = attacks();
    assert!(table.len() >= 25);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (name, bytes) in &table {
        let statuses = send(gw.listen, bytes.as_bytes());
        std::thread::sleep(Duration::from_millis(100));
        let seen = up.take();
        let forwarded = statuses.iter().filter(|s| **s < 400).count();
        report.push(format!("{name:<34} answers {statuses:?} upstream saw {seen:?}"));
        if seen.iter().any(|l| l.contains("/smuggled")) {
            failures.push(format!("{name}: the hidden request reached the upstream: {seen:?}"));
        }
        if seen.len() > forwarded {
            failures.push(format!(
                "{name}: upstream saw {} requests, the gateway answered {statuses:?}",
                seen.len()
            ));
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}\n\n{}", failures.join("\n"), report.join("\n"));
}
