//! The JSON access log: one line per request, written by a dedicated thread so the request path
//! only formats a line and hands it over. When the writer falls behind by more than
//! `QUEUE_LINES`, lines are dropped and counted (`quantumvault_access_log_dropped_total`)
//! rather than stalling traffic.
//!
//! What never appears: the query string, Authorization, cookies, API keys, bodies.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use serde::Serialize;

use crate::config::AccessLogTarget;

const QUEUE_LINES: usize = 65_536;

#[derive(Serialize)]
pub struct AccessEntry<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub client: String,
    pub method: &'a str,
    pub route: &'a str,
    /// Path only: the query string can carry secrets and is never logged.
    pub path: &'a str,
    pub status: u16,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub duration_ms: f64,
    pub upstream: Option<&'a str>,
    pub outcome: &'a str,
}

#[derive(Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Vec<u8>>>,
    dropped: metrics::Counter,
}

impl AccessLog {
    pub fn start(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        let mut out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(AccessLog { tx: None, dropped: crate::telemetry::metrics::access_log_dropped() }),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
        };
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE_LINES);
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let mut w = BufWriter::with_capacity(64 * 1024, &mut out);
            loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => {
                        let _ = w.write_all(&line);
                        // Flush when the queue is drained, so a quiet gateway's log is current.
                        while let Ok(more) = rx.try_recv() {
                            let _ = w.write_all(&more);
                        }
                        let _ = w.flush();
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = w.flush();
                        return;
                    }
                }
            }
        })?;
        Ok(AccessLog { tx: Some(tx), dropped: crate::telemetry::metrics::access_log_dropped() })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn log(&self, entry: &AccessEntry<'_>) {
        let Some(tx) = &self.tx else { return };
        let mut line = Vec::with_capacity(320);
        if serde_json::to_writer(&mut line, entry).is_err() {
            return;
        }
        line.push(b'\n');
        if let Err(TrySendError::Full(_)) = tx.try_send(line) {
            self.dropped.increment(1);
        }
    }
}
