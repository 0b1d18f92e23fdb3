//! The JSON access log: one line per request.
//!
//! Request threads append each line's fields (numbers, and the bytes of its strings) to a shared
//! batch under a short lock; a writer thread swaps the batch out every `FLUSH_EVERY` (or sooner
//! when it passes `FLUSH_LINES` lines or `FLUSH_AT` bytes), formats the JSON lines and writes
//! them with one system call. Formatting (escaping, the time, numbers) is most of a line's cost,
//! and this way it stays off the threads that serve requests. A per-line hand-off to another
//! thread would cost a wake-up per request, which measured at about 15 µs of CPU each. If the
//! batch reaches `MAX_BUFFERED` because the disk stalls, lines are dropped and counted
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
const FLUSH_LINES: usize = 4096;
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

/// A line waiting for the writer thread: its numbers, and its strings as ranges of the batch's
/// text (`NONE` for an absent optional string).
struct Pending {
    time: std::time::SystemTime,
    client: Option<std::net::IpAddr>,
    status: u16,
    inspection: Option<u32>,
    bytes_in: usize,
    bytes_out: usize,
    duration_us: u64,
    /// request id, method, route, path, upstream, outcome, key id.
    strs: [(u32, u32); 7],
}

const NONE: (u32, u32) = (u32::MAX, 0);

/// The lines logged since the last swap: the records, and the bytes of their strings.
#[derive(Default)]
struct Batch {
    lines: Vec<Pending>,
    text: String,
}

impl Batch {
    fn with_capacity() -> Batch {
        Batch {
            lines: Vec::with_capacity(FLUSH_LINES),
            text: String::with_capacity(FLUSH_AT),
        }
    }

    /// Memory the batch holds, for the bound.
    fn size(&self) -> usize {
        self.text.len() + self.lines.len() * std::mem::size_of::<Pending>()
    }

    fn full(&self) -> bool {
        self.lines.len() >= FLUSH_LINES || self.text.len() >= FLUSH_AT
    }

    fn push_str(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(s);
        (start as u32, s.len() as u32)
    }

    fn push(&mut self, e: &AccessEntry<'_>) {
        let strs = [
            self.push_str(e.request_id),
            self.push_str(e.method),
            self.push_str(e.route),
            self.push_str(e.path),
            e.upstream.map_or(NONE, |u| self.push_str(u)),
            self.push_str(e.outcome),
            e.key_id.map_or(NONE, |k| self.push_str(k)),
        ];
        self.lines.push(Pending {
            time: e.time,
            client: e.client,
            status: e.status,
            inspection: e.inspection,
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            duration_us: e.duration_us,
            strs,
        });
    }

    /// Formats every line into `out` and empties the batch (keeping its capacity).
    fn format_into(&mut self, out: &mut String) {
        let text = self.text.as_str();
        let s = |(start, len): (u32, u32)| {
            (start != u32::MAX).then(|| text.get(start as usize..(start + len) as usize).unwrap_or_default())
        };
        for p in &self.lines {
            AccessEntry {
                time: p.time,
                request_id: s(p.strs[0]).unwrap_or_default(),
                client: p.client,
                method: s(p.strs[1]).unwrap_or_default(),
                route: s(p.strs[2]).unwrap_or_default(),
                path: s(p.strs[3]).unwrap_or_default(),
                status: p.status,
                bytes_in: p.bytes_in,
                bytes_out: p.bytes_out,
                duration_us: p.duration_us,
                upstream: s(p.strs[4]),
                outcome: s(p.strs[5]).unwrap_or_default(),
                key_id: s(p.strs[6]),
                inspection: p.inspection,
            }
            .write_line(out);
        }
        self.lines.clear();
        self.text.clear();
    }
}

struct Shared {
    batch: Mutex<Batch>,
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
            batch: Mutex::new(Batch::with_capacity()),
            wake: Condvar::new(),
        });
        let writer = shared.clone();
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let mut spare = Batch::with_capacity();
            let mut text = String::with_capacity(2 * FLUSH_AT);
            loop {
                {
                    let guard = writer.batch.lock().unwrap_or_else(|p| p.into_inner());
                    let (mut guard, _) = writer
                        .wake
                        .wait_timeout_while(guard, FLUSH_EVERY, |b| !b.full())
                        .unwrap_or_else(|p| p.into_inner());
                    std::mem::swap(&mut *guard, &mut spare);
                }
                spare.format_into(&mut text);
                if !text.is_empty() {
                    let _ = out.write_all(text.as_bytes());
                    let _ = out.flush();
                    text.clear();
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
        // Only the line's numbers and strings are copied under the lock; the writer thread
        // formats them.
        let mut batch = shared.batch.lock().unwrap_or_else(|p| p.into_inner());
        // A stalled disk must not grow the batch past the bound: the margin covers the longest
        // line (paths are bounded by the routes' URI limits).
        if batch.size() + LINE_MARGIN > MAX_BUFFERED {
            drop(batch);
            self.dropped.increment(1);
            return;
        }
        let was_full = batch.full();
        let (lines, text) = (batch.lines.len(), batch.text.len());
        batch.push(entry);
        if batch.size() > MAX_BUFFERED {
            // A line longer than the margin (a route allowing huge URIs): cut it away.
            batch.lines.truncate(lines);
            batch.text.truncate(text);
            drop(batch);
            self.dropped.increment(1);
            return;
        }
        // One wake-up when the batch fills, not one per line after that.
        if !was_full && batch.full() {
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

    fn entry<'a>(path: &'a str, upstream: Option<&'a str>, key_id: Option<&'a str>) -> AccessEntry<'a> {
        AccessEntry {
            time: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_868_506_123),
            request_id: "0123456789abcdef",
            client: "192.0.2.7".parse().ok(),
            method: "POST",
            route: "api",
            path,
            status: 503,
            bytes_in: 10,
            bytes_out: 20,
            duration_us: 1_234,
            upstream,
            outcome: "upstream_unavailable",
            key_id,
            inspection: Some(942100),
        }
    }

    #[test]
    fn batched_lines_format_as_written_directly() {
        let entries = [
            entry("/a", Some("127.0.0.1:8080"), Some("k1")),
            entry("/b\"q\"", None, None),
            entry("", Some(""), Some("")),
        ];
        let mut batch = Batch::with_capacity();
        let mut direct = String::new();
        for e in &entries {
            batch.push(e);
            e.write_line(&mut direct);
        }
        let mut formatted = String::new();
        batch.format_into(&mut formatted);
        assert_eq!(formatted, direct);
        assert!(batch.lines.is_empty() && batch.text.is_empty());
        let first: serde_json::Value = serde_json::from_str(formatted.lines().next().unwrap()).unwrap();
        assert_eq!(first["upstream"], "127.0.0.1:8080");
        assert_eq!(first["inspection_rule"], 942100);
    }

    /// A log with no writer thread: nothing drains the batch, as when the disk stalls.
    fn undrained() -> (AccessLog, Arc<Shared>) {
        let shared = Arc::new(Shared {
            batch: Mutex::new(Batch::default()),
            wake: Condvar::new(),
        });
        let log = AccessLog {
            shared: Some(shared.clone()),
            dropped: metrics::Counter::noop(),
        };
        (log, shared)
    }

    #[test]
    fn a_stalled_writer_cannot_grow_the_batch_past_its_bound() {
        let (log, shared) = undrained();
        let path = "/".repeat(1000);
        let long = "/".repeat(LINE_MARGIN * 2);
        for i in 0..20_000 {
            log.log(&entry(if i % 1000 == 999 { &long } else { &path }, None, None));
        }
        let batch = shared.batch.lock().unwrap();
        assert!(batch.size() <= MAX_BUFFERED, "{}", batch.size());
        assert!(
            batch.size() + LINE_MARGIN + 2_000 > MAX_BUFFERED,
            "the bound was reached"
        );
        assert!(batch.lines.len() < 20_000, "lines were dropped");
    }

    #[test]
    fn a_line_longer_than_the_margin_is_cut_away_at_the_bound() {
        let (log, shared) = undrained();
        // Fill to just under the point where the margin check refuses lines.
        let filler = "/".repeat(60_000);
        while shared.batch.lock().unwrap().size() + LINE_MARGIN + 70_000 <= MAX_BUFFERED {
            log.log(&entry(&filler, None, None));
        }
        let before = {
            let b = shared.batch.lock().unwrap();
            (b.lines.len(), b.text.len())
        };
        assert!(before.1 + LINE_MARGIN <= MAX_BUFFERED);
        // Passes the margin check, but would take the batch past the bound: cut away whole.
        log.log(&entry(&"/".repeat(2 * LINE_MARGIN), None, None));
        {
            let b = shared.batch.lock().unwrap();
            assert_eq!((b.lines.len(), b.text.len()), before);
        }
        // A short line still fits.
        log.log(&entry("/short", None, None));
        let b = shared.batch.lock().unwrap();
        assert_eq!(b.lines.len(), before.0 + 1);
        assert!(b.size() <= MAX_BUFFERED);
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
