//! Signing routes run Pingora's proxy path like any route, their response held to be signed
//! (`proxy/signed.rs`, through the hook in `vendor/pingora-proxy`); these tests
//! send the same requests through an unsigned and a signing route and hold the two to the same
//! behaviour, with a recording upstream that sees exactly what each path sends: HTTP/2 bodies
//! without a length (chunked to the upstream, and signed), hop-by-hop and upgrade headers, the
//! media-type allowlist for HTTP/2 bodies, the retry of a held body after a pooled upstream
//! connection failed, body limits, inspection, and 502 / 504 answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::common::*;
use crate::signing::{qv_verify, signing_gateway, signing_gateway_with, write_json};

/// One request as the recording upstream read it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    /// Names lower-cased, in the order received.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// False: read whole, then the connection was closed without an answer.
    answered: bool,
    /// 1 for the first request on its connection, 2 for the second, ...
    on_connection: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy)]
enum Mode {
    /// Answers every request and keeps the connection.
    Answer,
    /// Answers every request except one for a `put-` path that arrives on a reused connection:
    /// that one it reads whole, then closes without answering (a pooled connection that the
    /// upstream or a middlebox dropped).
    DropReusedPut,
}

/// A hand-written HTTP/1.1 upstream that records every request (head and decoded body).
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn start(name: &'static str, mode: Mode) -> Recorder {
        let listener = reserved_listener();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve(stream, name, mode, &log));
            }
        });
        Recorder { addr, seen }
    }

    /// What it saw, in order: path, request number on its connection, answered.
    fn log(&self) -> Vec<(String, usize, bool)> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .map(|s| (s.path.clone(), s.on_connection, s.answered))
            .collect()
    }

    fn at(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

fn serve(mut stream: TcpStream, name: &str, mode: Mode, log: &Mutex<Vec<Seen>>) {
    let mut buf = Vec::new();
    let mut n = 0;
    while let Some(mut req) = read_request(&mut stream, &mut buf) {
        n += 1;
        req.on_connection = n;
        if matches!(mode, Mode::DropReusedPut) && n >= 2 && req.path.contains("/put-") {
            req.answered = false;
            log.lock().unwrap().push(req);
            return; // closes the connection
        }
        let body = json!({"upstream": name, "body_bytes": req.body.len()}).to_string();
        // A path may ask for an answer without content, or one in chunks.
        let answer = if req.path.ends_with("/status-204") {
            "HTTP/1.1 204 No Content\r\n\r\n".to_string()
        } else if req.path.ends_with("/status-304") {
            "HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\n\r\n".to_string()
        } else if req.path.ends_with("/early-hints") {
            format!(
                "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        } else if req.path.ends_with("/chunked") {
            let mut a =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_string();
            for part in [&body[..5], &body[5..9], &body[9..]] {
                a.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
            }
            a + "0\r\n\r\n"
        } else {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        // Recorded before the answer leaves, so a client that has the answer sees the record.
        log.lock().unwrap().push(req);
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// Reads one request: its head, then a Content-Length or chunked body (anything else is no body).
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Seen> {
    let (head_len, path, headers) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut hs);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                break (n, req.path.unwrap_or("").to_string(), headers);
            }
            Ok(httparse::Status::Partial) => fill(stream, buf)?,
            Err(_) => return None,
        }
    };
    buf.drain(..head_len);
    let mut seen = Seen {
        path,
        headers,
        body: Vec::new(),
        answered: true,
        on_connection: 0,
    };
    if seen
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let line_end = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                fill(stream, buf)?;
            };
            let size = usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).ok()?, 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                fill(stream, buf)?;
            }
            if &buf[size..size + 2] != b"\r\n" {
                return None;
            }
            seen.body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                // No trailers are sent here: the zero chunk is followed by the empty line,
                // which the `\r\n` check above already took.
                return Some(seen);
            }
        }
    }
    if let Some(len) = seen.header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        while buf.len() < len {
            fill(stream, buf)?;
        }
        seen.body = buf.drain(..len).collect();
    }
    Some(seen)
}

/// Turns the harness's plain listener (the second line of gateway.yaml) into a TLS one.
/// What curl got: status, headers (names lower-cased) and body.
struct CurlResponse {
    status: u16,
    /// The statuses of interim (1xx) responses before it, in order.
    interim: Vec<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl CurlResponse {
    /// A response from the head curl wrote with `-D` (status line and fields) and its body file.
    fn read(head: &str, body_file: &Path) -> CurlResponse {
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        CurlResponse {
            status,
            interim: Vec::new(),
            headers,
            body: std::fs::read(body_file).unwrap_or_default(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A curl command speaking `version` (`--http2`, `--http1.1`), writing the response head to
/// `head_file` and the body to `body_file`.
fn curl(version: &str, method: &str, head_file: &Path, body_file: &Path, headers: &[&str]) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", version, "--max-time", "20", "-X", method])
        .arg("-D")
        .arg(head_file)
        .arg("-o")
        .arg(body_file);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd
}

/// curl over HTTP/2 (TLS, ALPN) to `https://localhost:PORT{path}`, the body (if any) from stdin
/// with `-T -`, so curl sends no content-length.
fn curl_h2(
    gw: &Gateway,
    certs: &Path,
    method: &str,
    path: &str,
    headers: &[&str],
    stdin: Option<&[u8]>,
) -> CurlResponse {
    let dir = tempfile::tempdir().unwrap();
    let (head_file, body_file) = (dir.path().join("head"), dir.path().join("body"));
    let port = gw.listen.port();
    let mut cmd = curl("--http2", method, &head_file, &body_file, headers);
    cmd.arg("--cacert")
        .arg(certs.join("ca.pem"))
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")]);
    if stdin.is_some() {
        cmd.args(["-T", "-"]);
    }
    cmd.arg(format!("https://localhost:{port}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("curl is installed by scripts/test.sh");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let head = std::fs::read_to_string(&head_file).unwrap_or_default();
    // Known problem, not of the signing path (main has it too): when the gateway refuses an
    // HTTP/2 request before reading its body, the client often loses the refusal with the
    // stream (curl exit 92, stream error; 52, empty reply; 18, body cut short). A lost answer
    // reads as status 0 here; the tests that can meet it say so, the others want a status.
    let lost = matches!(out.status.code(), Some(18 | 52 | 92));
    if lost && head.is_empty() {
        return CurlResponse {
            status: 0,
            interim: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        };
    }
    assert!(
        out.status.success() || lost,
        "curl {method} {path}: {}{head}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(head.starts_with("HTTP/2 "), "spoke HTTP/2: {head}");
    CurlResponse::read(&head, &body_file)
}

/// Bytes that are not all alike, so a moved, lost or doubled piece shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

/// Where the gateway publishes its public keys.
const JWKS_PATH: &str = "/.well-known/http-message-signatures-directory";

/// The signature of a response checked by `quantumvault verify` against the gateway's JWKS.
fn verify_signature(
    jwks: &serde_json::Value,
    method: &str,
    url: &str,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) {
    use base64::Engine;
    let work = tempfile::tempdir().unwrap();
    let jwks = write_json(work.path(), "jwks.json", jwks);
    let exchange = json!({
        "request": {"method": method, "url": url, "headers": []},
        "response": {"status": status, "headers": headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                     "body_b64": base64::engine::general_purpose::STANDARD.encode(body)},
    });
    let ex = write_json(work.path(), "exchange.json", &exchange);
    let (code, out) = qv_verify(&ex, &jwks);
    assert_eq!(code, 0, "{method} {url}: quantumvault verify: {out}");
}

const SIGNING: &str = "signing:\n  enabled: true\n  algorithm: hybrid\n";

#[test]
fn http2_bodies_without_a_length_arrive_whole_and_are_checked_against_content_types() {
    let up = Recorder::start("r", Mode::Answer);
    let certs = tempfile::tempdir().unwrap();
    crate::tls::make_certs(certs.path());
    let policy = format!(
        r#"{SIGNING}upstreams:
  - {{ name: u, peers: ["{}"] }}
routes:
  - {{ name: signed, path_prefix: /signed/, upstream: u }}
  - {{ name: plain, path_prefix: /plain/, upstream: u, signing: {{ enabled: false }} }}
  - {{ name: signed-typed, path_prefix: /signed-typed/, upstream: u, validation: {{ content_types: [application/json] }} }}
  - {{ name: plain-typed, path_prefix: /plain-typed/, upstream: u, signing: {{ enabled: false }}, validation: {{ content_types: [application/json] }} }}
"#,
        up.addr
    );
    let gw = signing_gateway_with(&policy, |conf| {
        crate::tls::with_tls_listener(conf, &certs.path().join("cert.pem"), &certs.path().join("key.pem"))
    });
    // Several DATA frames' worth, more than the retry buffer holds.
    let body = pattern(200_000);
    for prefix in ["/plain/", "/signed/"] {
        let path = format!("{prefix}upload");
        let r = curl_h2(
            &gw,
            certs.path(),
            "POST",
            &path,
            &["Content-Type: application/octet-stream"],
            Some(&body),
        );
        assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
        let seen = up.at(&path);
        assert_eq!(seen.len(), 1, "{path}: {seen:?}");
        let seen = &seen[0];
        assert_eq!(
            seen.header("transfer-encoding"),
            Some("chunked"),
            "{path}: {:?}",
            seen.headers
        );
        assert_eq!(seen.header("content-length"), None, "{path}");
        assert!(
            seen.body == body,
            "{path}: {} bytes arrived, not the {} sent",
            seen.body.len(),
            body.len()
        );
        let echoed: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(echoed["body_bytes"], body.len(), "{path}");
        if prefix == "/signed/" {
            assert!(r.header("signature").is_some(), "{:?}", r.headers);
            let url = format!("https://localhost:{}{path}", gw.listen.port());
            let jwks = curl_h2(&gw, certs.path(), "GET", JWKS_PATH, &[], None);
            let jwks = serde_json::from_slice(&jwks.body).unwrap();
            verify_signature(&jwks, "POST", &url, r.status, &r.headers, &r.body);
        } else {
            assert!(r.header("signature").is_none());
        }
    }

    // The media-type allowlist: an HTTP/2 body needs no content-length to be a body.
    for prefix in ["/plain-typed/", "/signed-typed/"] {
        for (case, content_type) in [("text", Some("Content-Type: text/plain")), ("untyped", None)] {
            let path = format!("{prefix}{case}");
            let id = format!("h2-{}-{case}", prefix.trim_matches('/'));
            let mut headers = vec![format!("X-Request-Id: {id}")];
            headers.extend(content_type.map(str::to_string));
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let r = curl_h2(&gw, certs.path(), "POST", &path, &headers, Some(b"hello"));
            // What the client gets of an early refusal on HTTP/2 is subject to a known problem
            // (see `curl_h2`); the gateway's decision is in its access log.
            assert!(r.status == 415 || r.status == 0, "{path}: {}", r.status);
            assert_eq!(access_log_entry(&gw, &id)["status"], 415, "{path}");
            assert_eq!(
                access_log_entry(&gw, &id)["outcome"],
                "unsupported_media_type",
                "{path}"
            );
            assert!(up.at(&path).is_empty(), "{path}: refused before the upstream");
        }
        let json_path = format!("{prefix}json");
        let r = curl_h2(
            &gw,
            certs.path(),
            "POST",
            &json_path,
            &["Content-Type: application/json"],
            Some(b"{\"a\":1}"),
        );
        assert_eq!(r.status, 200, "{json_path}: {}", String::from_utf8_lossy(&r.body));
        let seen = &up.at(&json_path)[0];
        assert_eq!(seen.body, b"{\"a\":1}");
        assert_eq!(
            seen.header("transfer-encoding"),
            Some("chunked"),
            "sent without a length"
        );
        // No body at all (the HEADERS frame ends the stream): nothing to check.
        let get_path = format!("{prefix}get");
        let r = curl_h2(&gw, certs.path(), "GET", &get_path, &[], None);
        assert_eq!(r.status, 200, "{get_path}: {}", String::from_utf8_lossy(&r.body));
        let seen = &up.at(&get_path)[0];
        assert!(
            seen.body.is_empty() && seen.header("transfer-encoding").is_none(),
            "{seen:?}"
        );
    }
}

/// The access-log entry of the request with id `id` (waiting for the log to be written).
fn access_log_entry(gw: &Gateway, id: &str) -> serde_json::Value {
    let find = || {
        std::fs::read_to_string(gw.path("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["request_id"] == id)
    };
    gw.wait_for(10, "access log entry", || find().is_some());
    find().unwrap_or_default()
}

/// The headers the upstream saw, sorted, for comparing two paths.
fn sorted_headers(seen: &Seen) -> Vec<(String, String)> {
    let mut h = seen.headers.clone();
    h.sort();
    h
}

/// A recording upstream behind two routes to it: `/plain/` unsigned and `/signed/` signing.
fn plain_and_signed() -> (Recorder, Gateway) {
    let up = Recorder::start("r", Mode::Answer);
    let policy = format!(
        r#"{SIGNING}upstreams:
  - {{ name: u, peers: ["{}"] }}
routes:
  - {{ name: signed, path_prefix: /signed/, upstream: u }}
  - {{ name: plain, path_prefix: /plain/, upstream: u, signing: {{ enabled: false }} }}
"#,
        up.addr
    );
    let gw = signing_gateway(&policy);
    (up, gw)
}

#[test]
fn connection_listed_and_upgrade_headers_are_handled_alike_on_both_paths() {
    let (up, gw) = plain_and_signed();
    let request = |path: &str, extra: &str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: parity\r\n{extra}\r\n");
        status_of(&raw(gw.listen, req.as_bytes()))
    };
    let hop = "Connection: close, X-Secret\r\nX-Secret: 1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\
Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n";
    let websocket = "Connection: Upgrade, X-Secret\r\nUpgrade: websocket\r\nX-Secret: 1\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    for (case, extra) in [("hop", hop), ("websocket", websocket)] {
        let (plain, signed) = (format!("/plain/{case}"), format!("/signed/{case}"));
        assert_eq!(request(&plain, extra), 200, "{case}");
        assert_eq!(request(&signed, extra), 200, "{case}");
        let (p, s) = (&up.at(&plain)[0], &up.at(&signed)[0]);
        // A signing route holds and signs its response, so it cannot pass on a protocol switch:
        // it offers none (no Upgrade, no Connection) and the upstream answers the plain request.
        let offer = |h: &Seen| -> Vec<(String, String)> {
            sorted_headers(h)
                .into_iter()
                .filter(|(n, _)| n != "upgrade" && n != "connection")
                .collect()
        };
        assert_eq!(offer(p), sorted_headers(s), "{case}: the same request upstream");
        assert_eq!(
            s.header("x-secret"),
            None,
            "{case}: a Connection-listed header is removed"
        );
        for gone in ["keep-alive", "te", "proxy-connection", "http2-settings"] {
            assert_eq!(s.header(gone), None, "{case}: {gone}");
        }
        if case == "hop" {
            assert_eq!(s.header("x-kept"), Some("yes"));
            assert_eq!(
                (s.header("connection"), s.header("upgrade")),
                (None, None),
                "{:?}",
                s.headers
            );
        } else {
            // A WebSocket handshake goes through, normalised, on the proxy path only.
            assert_eq!(
                (p.header("connection"), p.header("upgrade")),
                (Some("Upgrade"), Some("websocket")),
                "{:?}",
                p.headers
            );
            assert_eq!((s.header("connection"), s.header("upgrade")), (None, None));
            assert_eq!(s.header("sec-websocket-version"), Some("13"));
        }
    }
    // Listing a header the routing or the forwarding depends on is refused on both paths.
    for (case, listed) in [("host", "Host"), ("xff", "X-Forwarded-For"), ("pseudo", ":authority")] {
        for prefix in ["/plain/", "/signed/"] {
            let path = format!("{prefix}refused-{case}");
            assert_eq!(request(&path, &format!("Connection: {listed}\r\n")), 400, "{path}");
            assert!(up.at(&path).is_empty(), "{path}");
        }
    }
}

#[test]
fn a_retried_request_sends_its_held_body_once_on_both_paths() {
    let a = Recorder::start("a", Mode::DropReusedPut);
    let b = Recorder::start("b", Mode::Answer);
    // Each route has a pool of its own, so each starts its round robin at the first peer.
    // Inspection holds JSON bodies until they are complete; the body limit is between one and
    // two bodies, so a body counted twice by the retry would be refused.
    let policy = format!(
        r#"{SIGNING}inspection:
  mode: detect
upstreams:
  - {{ name: pn, peers: ["{a}", "{b}"], retries: 1 }}
  - {{ name: ps, peers: ["{a}", "{b}"], retries: 1 }}
routes:
  - {{ name: plain, path_prefix: /plain/, upstream: pn, signing: {{ enabled: false }}, validation: {{ max_body: 4KiB }} }}
  - {{ name: signed, path_prefix: /signed/, upstream: ps, validation: {{ max_body: 4KiB }} }}
"#,
        a = a.addr,
        b = b.addr
    );
    let gw = signing_gateway(&policy);
    let digits: String = (0..3000).map(|i| char::from(b'0' + (i * 7 % 10) as u8)).collect();
    let body = format!("{{\"data\":\"{digits}\"}}");
    for prefix in ["/plain/", "/signed/"] {
        // Pingora puts an upstream connection back in its pool just after the response has gone
        // to the client, so a request sent at once may find the pool empty and open a fresh
        // connection (seen on loaded 2-core machines even after a pause). Then a answers it on
        // its first request and nothing is retried: the scenario did not happen, so it is run
        // again on a new path. The retry rule itself is asserted each time it does happen.
        let mut tries = 0;
        let (path, resp) = loop {
            tries += 1;
            let ag = agent();
            // One pooled connection to each peer, the last to b, so that the round robin picks
            // a next (each route's pool starts at a; a try that did not happen leaves it at b).
            let mut seen = Vec::new();
            for i in 1..=3 {
                let r = send(&ag, "GET", &gw.url(&format!("{prefix}warm-{tries}-{i}")), &[]).unwrap();
                assert_eq!(r.status, 200, "{prefix}: {}", r.body);
                seen.push(r.json()["upstream"].as_str().unwrap_or_default().to_string());
                if seen.len() >= 2 && seen.last().map(String::as_str) == Some("b") {
                    break;
                }
            }
            assert!(
                seen.ends_with(&["a".to_string(), "b".to_string()]),
                "{prefix}: round robin over a and b: {seen:?}; a saw {:?}; b saw {:?}",
                a.log(),
                b.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
            // The third goes to a on its pooled connection, which a reads whole and drops; PUT
            // is idempotent and the body is held, so the gateway tries again.
            let path = format!("{prefix}put-{tries}");
            let resp = ag
                .put(&gw.url(&path))
                .set("Content-Type", "application/json")
                .send_string(&body);
            let resp = match resp {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => panic!("{path}: {e}"),
            };
            let fresh = a.at(&path).iter().any(|s| s.on_connection == 1);
            if fresh && tries < 5 {
                continue;
            }
            assert!(
                !fresh,
                "{path}: the pooled connection was never reused in {tries} tries"
            );
            break (path, resp);
        };
        let status = resp.status();
        let headers: Vec<(String, String)> = resp
            .headers_names()
            .into_iter()
            .map(|n| (n.clone(), resp.header(&n).unwrap_or_default().to_string()))
            .collect();
        let mut answer = Vec::new();
        resp.into_reader().read_to_end(&mut answer).unwrap();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&answer));
        let dropped = a.at(&path);
        assert_eq!(
            dropped.len(),
            1,
            "{path}: a got it once, on the pooled connection: {dropped:?}"
        );
        assert!(!dropped[0].answered && dropped[0].body == body.as_bytes(), "{path}");
        let answered: Vec<Seen> = a
            .at(&path)
            .into_iter()
            .chain(b.at(&path))
            .filter(|s| s.answered)
            .collect();
        assert_eq!(answered.len(), 1, "{path}: answered once: {answered:?}");
        assert!(
            answered[0].body == body.as_bytes(),
            "{path}: the retry carried the body once, byte for byte ({} bytes, sent {})",
            answered[0].body.len(),
            body.len()
        );
        if prefix == "/signed/" {
            let lower: Vec<(String, String)> = headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
            let jwks = get(&gw.url(JWKS_PATH)).json();
            verify_signature(&jwks, "PUT", &gw.url(&path), status, &lower, &answer);
        }
    }
}

/// Body limits, inspection, an unreachable upstream and a slow one answer alike on an unsigned
/// and a signing route (same status, same error code, same upstream traffic); the signing
/// route's answers are signed, the unsigned route's are not.
#[test]
fn limits_inspection_and_upstream_failures_answer_alike_on_both_paths() {
    let up = Recorder::start("r", Mode::Answer);
    let slow = echo("slow");
    let policy = format!(
        r#"{SIGNING}inspection:
  mode: block
upstreams:
  - {{ name: u, peers: ["{u}"] }}
  - {{ name: dead, peers: ["{dead}"] }}
  - {{ name: slow, peers: ["{slow}"], read_timeout: 500ms }}
routes:
  - {{ name: plain, path_prefix: /plain/, upstream: u, signing: {{ enabled: false }}, validation: {{ max_body: 1KiB }} }}
  - {{ name: signed, path_prefix: /signed/, upstream: u, validation: {{ max_body: 1KiB }} }}
  - {{ name: plain-dead, path_prefix: /plain-dead/, upstream: dead, signing: {{ enabled: false }} }}
  - {{ name: signed-dead, path_prefix: /signed-dead/, upstream: dead }}
  - {{ name: plain-slow, path_prefix: /plain-slow/, upstream: slow, signing: {{ enabled: false }} }}
  - {{ name: signed-slow, path_prefix: /signed-slow/, upstream: slow }}
"#,
        u = up.addr,
        dead = free_addr(),
        slow = slow.addr()
    );
    let gw = signing_gateway(&policy);
    let big = format!("{{\"data\":\"{}\"}}", "x".repeat(2000));
    let sqli = r#"{"q":"1' OR '1'='1' --"}"#;
    // (case, path suffix, method, body, expected status, expected error code)
    let cases: [(&str, &str, &str, Option<&str>, u16, Option<&str>); 5] = [
        ("ok", "/ok", "POST", Some(r#"{"name":"O'Brien"}"#), 200, None),
        (
            "over the body limit",
            "/big",
            "POST",
            Some(big.as_str()),
            413,
            Some("body_too_large"),
        ),
        (
            "injection in the body",
            "/q",
            "POST",
            Some(sqli),
            403,
            Some("request_blocked"),
        ),
        (
            "unreachable upstream",
            "-dead/x",
            "GET",
            None,
            502,
            Some("upstream_unavailable"),
        ),
        (
            "slow upstream",
            "-slow/x?delay_ms=3000",
            "GET",
            None,
            504,
            Some("upstream_timeout"),
        ),
    ];
    for (case, suffix, method, body, status, code) in cases {
        let mut seen = Vec::new();
        for kind in ["plain", "signed"] {
            let c = crate::signing::capture(
                method,
                &gw.url(&format!("/{kind}{suffix}")),
                &[("Content-Type", "application/json")],
                body,
            );
            let (got, signed) = (c.status, c.header("signature").is_some());
            let text = String::from_utf8_lossy(&c.body).into_owned();
            let error = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string));
            assert_eq!(got, status, "{case} on {kind}: {text}");
            assert_eq!(error.as_deref(), code, "{case} on {kind}: {text}");
            assert_eq!(signed, kind == "signed", "{case} on {kind}: signed?");
            seen.push(up.at(&format!("/{kind}{suffix}")).len());
        }
        assert_eq!(seen[0], seen[1], "{case}: the upstream saw the same on both paths");
        assert_eq!(
            seen[0],
            usize::from(status == 200),
            "{case}: refused requests never reach the upstream"
        );
    }
}

/// curl over HTTP/1.1 to the gateway's plain listener, with `-D` for the head of the final
/// response (curl writes an interim 100 Continue head there too; the last one is kept).
fn curl_h1(gw: &Gateway, method: &str, path: &str, headers: &[&str], body: Option<&[u8]>) -> CurlResponse {
    let dir = tempfile::tempdir().unwrap();
    let (head_file, body_file, data_file) = (
        dir.path().join("head"),
        dir.path().join("body"),
        dir.path().join("data"),
    );
    let mut cmd = curl("--http1.1", method, &head_file, &body_file, headers);
    if let Some(b) = body {
        std::fs::write(&data_file, b).unwrap();
        cmd.arg("--data-binary").arg(format!("@{}", data_file.display()));
    }
    let out = cmd
        .arg(gw.url(path))
        .output()
        .expect("curl is installed by scripts/test.sh");
    let head = std::fs::read_to_string(&head_file).unwrap_or_default();
    assert!(
        out.status.success(),
        "curl {method} {path}: {}{head}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The final response's head: after the last blank-line-separated interim head.
    let last = head
        .split("\r\n\r\n")
        .filter(|h| h.starts_with("HTTP/"))
        .last()
        .unwrap_or_default();
    let mut r = CurlResponse::read(last, &body_file);
    r.interim = head
        .split("\r\n\r\n")
        .filter(|h| h.starts_with("HTTP/"))
        .filter_map(|h| h.split_whitespace().nth(1)?.parse().ok())
        .filter(|s| (100..200).contains(s))
        .collect();
    r
}

/// Responses without content (204, 304), an interim 103 before the response, a response the
/// upstream sends in chunks, and a body sent after `Expect: 100-continue`: the same status,
/// interim responses and body on both route kinds; on the
/// signing route the response is held whole, signed (without `content-digest` when there is no
/// content) and verifies, and a chunked answer leaves with a `content-length`.
#[test]
fn no_content_chunked_and_expect_continue_answer_alike_on_both_paths() {
    let (up, gw) = plain_and_signed();
    let jwks = get(&gw.url(JWKS_PATH)).json();
    let data = br#"{"note":"sent after 100 Continue"}"#.repeat(40);
    // (path, method, headers, body, status, content expected)
    let cases: [(&str, &str, &[&str], Option<&[u8]>, u16, bool); 5] = [
        ("status-204", "GET", &[], None, 204, false),
        ("early-hints", "GET", &[], None, 200, true),
        ("status-304", "GET", &["If-None-Match: \"v1\""], None, 304, false),
        ("chunked", "GET", &[], None, 200, true),
        (
            "cont",
            "POST",
            &["Expect: 100-continue", "Content-Type: application/json"],
            Some(&data[..]),
            200,
            true,
        ),
    ];
    for (case, method, headers, body, status, content) in cases {
        let mut answers = Vec::new();
        for kind in ["plain", "signed"] {
            let path = format!("/{kind}/{case}");
            let r = curl_h1(&gw, method, &path, headers, body);
            assert_eq!(r.status, status, "{path}: {:?}", r.headers);
            // Interim responses are passed on at once on both route kinds, not held or signed.
            let hints: &[u16] = if case == "early-hints" { &[103] } else { &[] };
            assert_eq!(r.interim, hints, "{path}: interim responses");
            assert_eq!(
                !r.body.is_empty(),
                content,
                "{path}: body {:?}",
                String::from_utf8_lossy(&r.body)
            );
            let seen = up.at(&path);
            assert_eq!(seen.len(), 1, "{path}: the upstream saw it once");
            assert_eq!(
                seen[0].body.len(),
                body.map_or(0, |b| b.len()),
                "{path}: the whole body went up"
            );
            if kind == "signed" {
                assert!(r.header("signature").is_some(), "{path}: signed");
                assert_eq!(r.header("content-digest").is_some(), content, "{path}: content-digest");
                if content {
                    assert_eq!(
                        r.header("content-length"),
                        Some(r.body.len().to_string().as_str()),
                        "{path}"
                    );
                    assert!(r.header("transfer-encoding").is_none(), "{path}: held, so a length");
                }
                verify_signature(&jwks, method, &gw.url(&path), r.status, &r.headers, &r.body);
            } else {
                assert!(r.header("signature").is_none(), "{path}: unsigned route");
            }
            answers.push(r.body);
        }
        assert_eq!(answers[0], answers[1], "{case}: the same body on both paths");
    }
}
