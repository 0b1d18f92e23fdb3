//! The JSON access log: one line per request.
//!
//! Request threads format their lines into a shared in-memory buffer under a short lock; a
//! writer thread swaps the buffer out every `FLUSH_EVERY` (or sooner when it passes
//! `FLUSH_AT` bytes) and writes it with one system call. A per-line hand-off to another thread
//! would cost a wake-up per request, which measured at about 15 µs of CPU each. If the buffer
//! reaches `MAX_BUFFERED` because the disk stalls, lines are dropped and counted
//! (`quantumvault_access_log_dropped_total`) rather than stalling traffic. A crash loses at most
//! the last `FLUSH_EVERY` of lines.
//!
//! What never appears: the query string, Authorization, cookies, API keys, bodies.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use std::fmt::Write as _;

use crate::config::AccessLogTarget;
use crate::text::{push_ip, push_millis, push_u64};

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_AT: usize = 256 * 1024;
const MAX_BUFFERED: usize = 16 * 1024 * 1024;
/// Room kept free for the next line (paths are bounded by the routes' URI limits).
const LINE_MARGIN: usize = 64 * 1024;

pub struct AccessEntry<'a> {
    pub time: std::time::SystemTime,
    pub request_id: &'a str,
    pub client: Option<std::net::IpAddr>,
    pub method: &'a str,
    pub route: &'a str,
    /// Path only: the query string can carry secrets and is never logged.
    pub path: &'a str,
    pub status: u16,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// Written as milliseconds, with up to three decimals.
    pub duration_us: u64,
    pub upstream: Option<&'a str>,
    /// Which filter and rule decided, or the error code, or `ok`.
    pub outcome: &'a str,
    /// The API key's id (never the key).
    pub key_id: Option<&'a str>,
    /// The inspection rule that flagged the request (`detect` mode).
    pub inspection: Option<u32>,
}

thread_local! {
    /// The formatted second of the last line this thread wrote: most lines share it.
    static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

fn push_time(out: &mut String, t: std::time::SystemTime) {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    SECOND.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let full = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .to_string();
            // "2026-11-28T12:00:00Z" without the zone, to append milliseconds.
            c.1 = full.trim_end_matches('Z').to_string();
            c.0 = secs;
        }
        out.push_str(&c.1);
    });
    out.push('.');
    out.extend(crate::text::three_digits(d.subsec_millis().into()));
    out.push('Z');
}

/// A JSON string; the values here are short and mostly plain, so runs of plain bytes are copied
/// whole and only what needs it is escaped.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    if !needs_escape(s.as_bytes()) {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b'"' || b == b'\\' || b < 0x20 {
            out.push_str(&s[plain..i]);
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                c => {
                    let _ = write!(out, "\\u{:04x}", c);
                }
            }
            plain = i + 1;
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// Whether any byte needs escaping in a JSON string: `"`, `\\` or a control byte.
fn needs_escape(bytes: &[u8]) -> bool {
    crate::text::any_byte_below_or(bytes, 0x20, b"\"\\")
}

impl AccessEntry<'_> {
    /// Appends one JSON line to `o`, written by hand: serde_json plus time formatting cost
    /// several microseconds per request, most of the log's cost.
    pub fn write_line(&self, o: &mut String) {
        o.push_str("{\"time\":\"");
        push_time(o, self.time);
        o.push_str("\",\"request_id\":");
        push_str(o, self.request_id);
        o.push_str(",\"client\":\"");
        if let Some(ip) = self.client {
            push_ip(o, ip);
        }
        o.push_str("\",\"method\":");
        push_str(o, self.method);
        o.push_str(",\"route\":");
        push_str(o, self.route);
        o.push_str(",\"path\":");
        push_str(o, self.path);
        o.push_str(",\"status\":");
        push_u64(o, self.status.into());
        o.push_str(",\"bytes_in\":");
        push_u64(o, self.bytes_in as u64);
        o.push_str(",\"bytes_out\":");
        push_u64(o, self.bytes_out as u64);
        o.push_str(",\"duration_ms\":");
        push_millis(o, self.duration_us);
        o.push_str(",\"upstream\":");
        match self.upstream {
            Some(u) => push_str(o, u),
            None => o.push_str("null"),
        }
        o.push_str(",\"outcome\":");
        push_str(o, self.outcome);
        if let Some(k) = self.key_id {
            o.push_str(",\"key_id\":");
            push_str(o, k);
        }
        if let Some(rule) = self.inspection {
            o.push_str(",\"inspection_rule\":");
            push_u64(o, rule.into());
        }
        o.push_str("}\n");
    }
}

struct Shared {
    buffer: Mutex<String>,
    wake: Condvar,
}

#[derive(Clone)]
pub struct AccessLog {
    shared: Option<Arc<Shared>>,
    dropped: metrics::Counter,
}

impl AccessLog {
    pub fn start(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        let dropped = crate::telemetry::metrics::access_log_dropped();
        let mut out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(AccessLog { shared: None, dropped }),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
        };
        let shared = Arc::new(Shared {
            buffer: Mutex::new(String::with_capacity(FLUSH_AT)),
            wake: Condvar::new(),
        });
        let writer = shared.clone();
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let mut spare = String::with_capacity(FLUSH_AT);
            loop {
                {
                    let guard = writer.buffer.lock().unwrap_or_else(|p| p.into_inner());
                    let (mut guard, _) = writer
                        .wake
                        .wait_timeout_while(guard, FLUSH_EVERY, |b| b.len() < FLUSH_AT)
                        .unwrap_or_else(|p| p.into_inner());
                    std::mem::swap(&mut *guard, &mut spare);
                }
                if !spare.is_empty() {
                    let _ = out.write_all(spare.as_bytes());
                    let _ = out.flush();
                    spare.clear();
                }
            }
        })?;
        Ok(AccessLog {
            shared: Some(shared),
            dropped,
        })
    }

    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }

    pub fn log(&self, entry: &AccessEntry<'_>) {
        let Some(shared) = &self.shared else { return };
        // Written straight into the shared buffer: the lock is held while one line is formatted
        // (well under a microsecond), and the writer thread only takes it to swap buffers.
        let mut buf = shared.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let before = buf.len();
        // Checked before writing too, so a stalled disk never makes the buffer grow past the
        // bound (a line is far shorter than the margin; a longer one is cut away below).
        if before + LINE_MARGIN > MAX_BUFFERED {
            drop(buf);
            self.dropped.increment(1);
            return;
        }
        entry.write_line(&mut buf);
        if buf.len() > MAX_BUFFERED {
            buf.truncate(before);
            drop(buf);
            self.dropped.increment(1);
            return;
        }
        if buf.len() >= FLUSH_AT {
            shared.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert!(!needs_escape(b"plain text/with-every-visible: char~"));
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\u{1}/é");
        assert_eq!(out, r#""a\"b\\c\u0001/é""#);
    }

    #[test]
    fn lines_are_valid_json() {
        let e = AccessEntry {
            time: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_868_506_123),
            request_id: "r1",
            client: "2001:db8::1".parse().ok(),
            method: "GET",
            route: "api",
            path: "/a\"b\\c\u{1}",
            status: 200,
            bytes_in: 1,
            bytes_out: 2,
            duration_us: 405,
            upstream: None,
            outcome: "ok",
            key_id: Some("k_1"),
            inspection: None,
        };
        let mut line = String::new();
        e.write_line(&mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["path"], "/a\"b\\c\u{1}");
        assert_eq!(v["time"], "2026-11-28T12:21:46.123Z");
        assert_eq!(v["client"], "2001:db8::1");
        assert_eq!(v["upstream"], serde_json::Value::Null);
        assert_eq!(v["key_id"], "k_1");
    }
}
