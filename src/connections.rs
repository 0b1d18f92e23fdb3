//! Bounds on client connections, around Pingora's HTTP handling of each one: the connection
//! limit, the request-head deadline (slowloris) and the request-body minimum rate (slow POST).
//!
//! Pingora times each read of a request on its own (`downstream.read_timeout`), so a client
//! that sends one byte of its head or body just before each read would time out holds its
//! connection, its task and its read buffer for as long as it likes. [`Guarded`] wraps the
//! proxy app: it counts open connections and refuses those over `downstream.max_connections`
//! (closed at once, before any byte is read), and for HTTP/1 it watches each connection with a
//! [`Watch`] that the proxy phases move along:
//!
//! | phase | deadline | moved on by |
//! |---|---|---|
//! | head | `header_timeout` from the connection's start, or from the end of the previous response (dated by the watcher, at most one `header_timeout` late) plus `keepalive_timeout` | [`begin_request`] (`early_request_filter`) |
//! | body | `body_timeout` from the head, plus 1 s for every `body_min_rate` bytes received | [`Watch::body`] (the body phase) |
//! | busy | none: the upstream's time and the response are bounded by the upstream and write timeouts | [`Watch::end_request`] (`logging`) |
//!
//! A connection past its deadline is closed (`quantumvault_downstream_timeouts_total{kind=
//! "header"|"body"}`); the check runs on Pingora's coarse timer (10 ms resolution) and costs a
//! request two relaxed atomic stores. HTTP/2 connections are bounded by the h2 limits set in
//! [`crate::server`] (streams, header list size, idle timeout) instead: their streams are tasks
//! of their own.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;

use crate::config::gateway::DownstreamTimeouts;
use crate::telemetry::metrics;

tokio::task_local! {
    /// The watch of the HTTP/1 connection this task serves.
    static WATCH: Arc<Watch>;
}

const HEAD: u8 = 0;
const BODY: u8 = 1;
const BUSY: u8 = 2;
/// A head phase whose deadline the watcher has not set yet (after a response ended).
const UNDATED: u64 = u64::MAX;

/// Milliseconds since the first call (a monotonic clock shared by every connection).
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(crate::clock::instant).elapsed().as_millis() as u64
}

/// Where one HTTP/1 connection stands, and until when it may stay there.
#[derive(Debug)]
pub struct Watch {
    phase: AtomicU8,
    /// Head: the deadline. Body: when the body phase began.
    since_or_deadline: AtomicU64,
    /// Body bytes received in the body phase.
    body_bytes: AtomicU64,
    limits: Limits,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    header_ms: u64,
    keepalive_ms: u64,
    body_ms: u64,
    body_min_rate: u64,
}

impl Watch {
    fn new(limits: Limits, now: u64) -> Watch {
        Watch {
            phase: AtomicU8::new(HEAD),
            since_or_deadline: AtomicU64::new(now + limits.header_ms),
            body_bytes: AtomicU64::new(0),
            limits,
        }
    }

    /// The head was read; `body` says whether a body follows.
    fn head_read(&self, body: bool, now: u64) {
        if body {
            self.body_bytes.store(0, Relaxed);
            self.since_or_deadline.store(now, Relaxed);
            self.phase.store(BODY, Relaxed);
        } else {
            self.phase.store(BUSY, Relaxed);
        }
    }

    /// `n` body bytes arrived; `end` marks the last of them. A body replayed to a second
    /// upstream (a retry) arrives after the end and changes nothing.
    pub fn body(&self, n: usize, end: bool) {
        if self.phase.load(Relaxed) != BODY {
            return;
        }
        if end {
            self.phase.store(BUSY, Relaxed);
        } else {
            self.body_bytes.fetch_add(n as u64, Relaxed);
        }
    }

    /// The response is done: the next head is due within the keep-alive and header timeouts.
    /// The clock is not read here (this runs once a request): the watcher dates the end when
    /// it next wakes, at most one `header_timeout` later ([`UNDATED`]).
    pub fn end_request(&self) {
        self.since_or_deadline.store(UNDATED, Relaxed);
        self.phase.store(HEAD, Relaxed);
    }

    /// Called by the watcher when it wakes: gives an undated head phase its deadline.
    fn date(&self, now: u64) {
        let l = self.limits;
        let _ = self
            .since_or_deadline
            .compare_exchange(UNDATED, now + l.keepalive_ms + l.header_ms, Relaxed, Relaxed);
    }

    /// The deadline of the current phase, if it has one.
    fn deadline(&self) -> Option<(u64, &'static str)> {
        let at = self.since_or_deadline.load(Relaxed);
        match self.phase.load(Relaxed) {
            HEAD if at == UNDATED => None,
            HEAD => Some((at, "header")),
            BODY => {
                let l = self.limits;
                let earned = self.body_bytes.load(Relaxed).saturating_mul(1000) / l.body_min_rate.max(1);
                Some((at + l.body_ms + earned, "body"))
            }
            _ => None,
        }
    }
}

/// A request's head was read on this task's connection: moves its watch to the body (or busy)
/// phase and returns it for the body phase and `logging`. `None` on HTTP/2 and where no watch
/// runs.
pub fn begin_request(body: bool) -> Option<Arc<Watch>> {
    WATCH
        .try_with(|w| {
            w.head_read(body, now_ms());
            w.clone()
        })
        .ok()
}

/// The proxy app with the connection limit and the HTTP/1 deadlines around it.
pub struct Guarded<A> {
    inner: Arc<A>,
    max_connections: usize,
    limits: Option<Limits>,
    open: AtomicUsize,
    open_gauge: ::metrics::Gauge,
}

impl<A> Guarded<A> {
    pub fn new(inner: A, d: &DownstreamTimeouts) -> Guarded<A> {
        let ms = |t: Duration| t.as_millis() as u64;
        Guarded {
            inner: Arc::new(inner),
            max_connections: d.max_connections,
            limits: (!d.header_timeout.is_zero()).then(|| Limits {
                header_ms: ms(d.header_timeout),
                keepalive_ms: ms(d.keepalive),
                body_ms: ms(d.body_timeout),
                body_min_rate: d.body_min_rate,
            }),
            open: AtomicUsize::new(0),
            open_gauge: metrics::connections_open(),
        }
    }
}

/// One admitted connection; gives its place back when dropped.
struct Slot<'a> {
    open: &'a AtomicUsize,
    gauge: &'a ::metrics::Gauge,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let n = self.open.fetch_sub(1, Relaxed) - 1;
        self.gauge.set(n as f64);
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let n = self.open.fetch_add(1, Relaxed) + 1;
        let _slot = Slot {
            open: &self.open,
            gauge: &self.open_gauge,
        };
        if n > self.max_connections {
            metrics::connection_refused();
            return None; // dropping the stream closes it
        }
        self.open_gauge.set(n as f64);
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let Some(limits) = self.limits.filter(|_| !h2) else {
            return self.inner.process_new(stream, shutdown).await;
        };
        let watch = Arc::new(Watch::new(limits, now_ms()));
        let work = WATCH.scope(watch.clone(), self.inner.process_new(stream, shutdown));
        tokio::pin!(work);
        loop {
            watch.date(now_ms());
            let wait = match watch.deadline() {
                Some((at, _)) => at.saturating_sub(now_ms()),
                // Busy, or a response just ended: look again after a header timeout (a long
                // response wakes this rarely).
                None => limits.header_ms,
            };
            tokio::select! {
                // The connection's work first, and no random branch order: this runs at every
                // wake of the connection's task.
                biased;
                r = &mut work => return r,
                _ = pingora::prelude::sleep(Duration::from_millis(wait.max(1))) => {}
            }
            if let Some((at, kind)) = watch.deadline() {
                if now_ms() >= at {
                    metrics::downstream_timeout(kind);
                    return None; // dropping the connection's work closes it
                }
            }
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_ms: 1_000,
            keepalive_ms: 5_000,
            body_ms: 2_000,
            body_min_rate: 500,
        }
    }

    #[test]
    fn phases_move_the_deadline() {
        let w = Watch::new(limits(), 100);
        assert_eq!(w.deadline(), Some((1_100, "header")));
        // A head with a body: the body deadline starts at the head and grows with the bytes.
        w.head_read(true, 400);
        assert_eq!(w.deadline(), Some((2_400, "body")));
        w.body(1_000, false);
        assert_eq!(w.deadline(), Some((4_400, "body")), "1,000 bytes at 500 B/s earn 2 s");
        w.body(0, true);
        assert_eq!(w.deadline(), None, "no deadline while the upstream answers");
        // A replayed body (a retry) after the end changes nothing.
        w.body(1_000_000, false);
        assert_eq!(w.deadline(), None);
        // A head without a body goes straight to busy.
        let w = Watch::new(limits(), 0);
        w.head_read(false, 10);
        assert_eq!(w.deadline(), None);
        w.end_request();
        assert_eq!(w.deadline(), None, "undated until the watcher wakes");
        w.date(20_000);
        assert_eq!(
            w.deadline(),
            Some((26_000, "header")),
            "keep-alive plus header timeout from then"
        );
        w.date(30_000);
        assert_eq!(w.deadline(), Some((26_000, "header")), "dated once");
    }

    #[test]
    fn begin_request_outside_a_watched_connection_is_none() {
        assert!(begin_request(true).is_none());
    }
}
