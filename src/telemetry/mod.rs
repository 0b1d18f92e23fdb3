//! Telemetry: Prometheus metrics, sliding-window statistics, alerts and their webhook, health,
//! recent errors and the JSON access log.

pub mod access_log;
pub mod alerts;
pub mod errors;
pub mod health;
pub mod histogram;
pub mod metrics;
pub mod stats;
pub mod webhook;
