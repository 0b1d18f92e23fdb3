//! `monitoring:` in gateway.yaml: sliding-window statistics, request metrics, alert evaluation
//! and the alert webhook; the raw serde type and the validated one side by side. A change
//! needs a restart (a reload reports it).

use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::error::{ConfigError, SourceFile};

/// `monitoring:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitoring {
    #[serde(default = "d_enabled")]
    enabled: bool,
    #[serde(default = "d_resolution", deserialize_with = "de::duration")]
    resolution: Duration,
    #[serde(default = "d_evaluate", deserialize_with = "de::duration")]
    evaluate_every: Duration,
    #[serde(default = "d_history")]
    alert_history: usize,
    #[serde(default)]
    webhook: Option<RawWebhook>,
}

impl Default for RawMonitoring {
    fn default() -> Self {
        RawMonitoring {
            enabled: true,
            resolution: d_resolution(),
            evaluate_every: d_evaluate(),
            alert_history: d_history(),
            webhook: None,
        }
    }
}

fn d_resolution() -> Duration {
    Duration::from_secs(10)
}
fn d_evaluate() -> Duration {
    Duration::from_secs(10)
}
fn d_history() -> usize {
    500
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    #[serde(default = "d_webhook_timeout", deserialize_with = "de::duration")]
    timeout: Duration,
    #[serde(default = "d_webhook_retries")]
    retries: u32,
    #[serde(default = "d_resend", deserialize_with = "de::duration")]
    resend_every: Duration,
}

fn d_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}
fn d_webhook_retries() -> u32 {
    3
}
fn d_resend() -> Duration {
    Duration::from_secs(60)
}

/// Statistics, request metrics and alerting (`monitoring:` in gateway.yaml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringConfig {
    /// Off: no request metrics, no `/stats` windows, no alert evaluation (for benchmarks).
    pub enabled: bool,
    /// Slot width of the sliding windows; divides a minute.
    pub resolution: Duration,
    pub evaluate_every: Duration,
    /// Alert state changes kept for `GET /alerts`.
    pub alert_history: usize,
    pub webhook: Option<WebhookConfig>,
}

/// An Alertmanager-compatible receiver (`POST` of a JSON list of alerts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts after the first, with exponential backoff from 1 s.
    pub retries: u32,
    /// Firing alerts are sent again this often, as Alertmanager expects.
    pub resend_every: Duration,
}

fn d_enabled() -> bool {
    true
}

impl RawMonitoring {
    /// The validated settings; each mistake is pushed to `errors` with its place in `file`.
    pub(super) fn validate(&self, file: &SourceFile, errors: &mut Vec<ConfigError>) -> MonitoringConfig {
        let res = self.resolution.as_secs();
        if self.resolution.subsec_nanos() != 0 || res == 0 || 60 % res != 0 {
            errors.push(file.error(
                "monitoring.resolution",
                "whole seconds that divide a minute (1s, 2s, 5s, 10s, 15s, 30s, 60s, ...)",
            ));
        }
        if self.evaluate_every < Duration::from_millis(100) {
            errors.push(file.error("monitoring.evaluate_every", "at least 100ms"));
        }
        if let Some(w) = &self.webhook {
            match w.url.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
                _ => errors.push(file.error("monitoring.webhook.url", "an http:// or https:// URL with a host")),
            }
            if w.timeout.is_zero() {
                errors.push(file.error("monitoring.webhook.timeout", "must be longer than zero"));
            }
            if w.resend_every < Duration::from_secs(1) {
                errors.push(file.error("monitoring.webhook.resend_every", "at least 1s"));
            }
        }
        MonitoringConfig {
            enabled: self.enabled,
            resolution: self.resolution,
            evaluate_every: self.evaluate_every,
            alert_history: self.alert_history.max(1),
            webhook: self.webhook.as_ref().map(|w| WebhookConfig {
                url: w.url.clone(),
                timeout: w.timeout,
                retries: w.retries,
                resend_every: w.resend_every,
            }),
        }
    }
}
