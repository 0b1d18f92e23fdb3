//! Recent errors for `GET /errors`: the last 100 requests that failed on the gateway's side
//! (upstream unavailable or timed out, internal errors), with time, route, request id, error
//! class, upstream peer and a safe message. Never request bodies, keys or secrets. Counts by
//! class are `quantumvault_errors_total{class}`.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

pub const KEEP: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct ErrorRecord {
    /// Unix milliseconds.
    pub time_ms: u64,
    pub route: String,
    pub request_id: String,
    /// The stable error code (`upstream_unavailable`, `upstream_timeout`, `internal_error`).
    pub class: &'static str,
    /// The metric kind (`connect_refused`, `read_timeout`, ...).
    pub kind: &'static str,
    pub upstream: Option<String>,
    pub status: u16,
}

static RECENT: Mutex<VecDeque<ErrorRecord>> = Mutex::new(VecDeque::new());

pub fn record(rec: ErrorRecord) {
    metrics::counter!("quantumvault_errors_total", "class" => rec.class).increment(1);
    let mut q = RECENT.lock().unwrap_or_else(|p| p.into_inner());
    if q.len() == KEEP {
        q.pop_front();
    }
    q.push_back(rec);
}

/// Newest first.
pub fn recent() -> Vec<ErrorRecord> {
    RECENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .cloned()
        .collect()
}
