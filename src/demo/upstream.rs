//! The demo upstream: a small HTTP/1.1 server that answers every request with a JSON echo of
//! what it received (method, path, query, headers, body size), so a user sees exactly what the
//! gateway forwarded. Like httpbin it takes two knobs in the query string: `status=NNN` answers
//! with that status and `delay_ms=N` waits before answering. Tests use it as a real upstream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

pub struct EchoServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Binds `addr` (port 0 picks a free one) and serves on a thread of its own.
    pub fn start(name: &str, addr: SocketAddr) -> std::io::Result<EchoServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let name = name.to_string();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("echo-{name}"))
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let mut stop_rx = stop_rx;
                    loop {
                        tokio::select! {
                            _ = stop_rx.changed() => return,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let _ = stream.set_nodelay(true);
                                let name = name.clone();
                                let stop = stop_rx.clone();
                                tokio::spawn(serve_conn(stream, name, stop));
                            }
                        }
                    }
                });
                // Dropping the runtime here aborts every open connection.
            })?;
        Ok(EchoServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn serve_conn(mut stream: TcpStream, name: String, mut stop: watch::Receiver<bool>) {
    let mut buf = Vec::with_capacity(8192);
    loop {
        let request = tokio::select! {
            _ = stop.changed() => return,
            r = read_request(&mut stream, &mut buf) => r,
        };
        let Some(req) = request else { return };
        if req.delay_ms > 0 {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(req.delay_ms)) => {}
            }
        }
        let body = serde_json::to_vec_pretty(&json!({
            "upstream": name,
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": req.headers,
            "body_bytes": req.body_len,
        }))
        .unwrap_or_default();
        let keep = req.keep_alive;
        let extra = req
            .query
            .get("set_header")
            .map(|h| h.replace("%20", " ").replace("%3A", ":"))
            .filter(|h| h.contains(':') && !h.contains(['\r', '\n']))
            .map(|h| format!("{h}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nServer: quantumvault-demo-upstream\r\nX-Powered-By: demo\r\n{extra}{}\r\n",
            req.status,
            reason(req.status),
            if req.method == "HEAD" { 0 } else { body.len() },
            if keep { "" } else { "Connection: close\r\n" }
        );
        let mut out = head.into_bytes();
        if req.method != "HEAD" {
            out.extend_from_slice(&body);
        }
        if stream.write_all(&out).await.is_err() || !keep {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

struct EchoRequest {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body_len: usize,
    keep_alive: bool,
    status: u16,
    delay_ms: u64,
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 {
        return None;
    }
    buf.extend_from_slice(&chunk[..n]);
    Some(())
}

async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<EchoRequest> {
    let (head_len, mut req) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let target = parsed.path.unwrap_or("/").to_string();
                let (path, query_str) = target.split_once('?').unwrap_or((&target, ""));
                let query: BTreeMap<String, String> = query_str
                    .split('&')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                let mut map = BTreeMap::new();
                for h in parsed.headers.iter() {
                    let v = String::from_utf8_lossy(h.value).into_owned();
                    map.entry(h.name.to_ascii_lowercase())
                        .and_modify(|e: &mut String| {
                            e.push_str(", ");
                            e.push_str(&v);
                        })
                        .or_insert(v);
                }
                let http10 = parsed.version == Some(0);
                let conn = map
                    .get("connection")
                    .map(|c| c.to_ascii_lowercase())
                    .unwrap_or_default();
                let keep_alive = if http10 {
                    conn.contains("keep-alive")
                } else {
                    !conn.contains("close")
                };
                let status = query
                    .get("status")
                    .and_then(|s| s.parse().ok())
                    .filter(|s| (200..=599).contains(s))
                    .unwrap_or(200);
                let delay_ms = query
                    .get("delay_ms")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0u64)
                    .min(60_000);
                let req = EchoRequest {
                    method: parsed.method.unwrap_or("GET").to_string(),
                    path: path.to_string(),
                    query,
                    headers: map,
                    body_len: 0,
                    keep_alive,
                    status,
                    delay_ms,
                };
                break (n, req);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => fill(stream, buf).await?,
            _ => return None,
        }
    };
    buf.drain(..head_len);
    let chunked = req
        .headers
        .get("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body_len = read_chunked(stream, buf).await?;
    } else if let Some(len) = req
        .headers
        .get("content-length")
        .and_then(|l| l.trim().parse::<usize>().ok())
    {
        if len > MAX_BODY {
            return None;
        }
        while buf.len() < len {
            fill(stream, buf).await?;
        }
        buf.drain(..len);
        req.body_len = len;
    }
    Some(req)
}

/// Reads a chunked body, returning its decoded length.
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut total = 0usize;
    loop {
        let line_end = loop {
            if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            if buf.len() > 1024 {
                return None;
            }
            fill(stream, buf).await?;
        };
        let line = std::str::from_utf8(&buf[..line_end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailer section ends with an empty line.
            loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = p == 0;
                    buf.drain(..p + 2);
                    if empty {
                        return Some(total);
                    }
                } else {
                    fill(stream, buf).await?;
                }
            }
        }
        total += size;
        if total > MAX_BODY {
            return None;
        }
        while buf.len() < size + 2 {
            fill(stream, buf).await?;
        }
        buf.drain(..size + 2);
    }
}
