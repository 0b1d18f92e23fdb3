//! Request filters, one module each, run in the order of [`chain::CHAIN`]; response headers in
//! [`security_headers`].
pub mod auth;
pub mod chain;
pub mod client_ip;
pub mod inspection;
pub mod ip_filter;
pub mod ipset;
pub mod quota;
pub mod rate_limit;
pub mod rate_limit_filter;
pub mod request;
pub mod security_headers;
pub mod validate;

/// Monotonic nanoseconds for rate limiting (process-local clock) at `t`: the request's start,
/// so the request path reads the clock once.
pub fn rate_limit_clock_at(t: std::time::Instant) -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    t.saturating_duration_since(*START.get_or_init(std::time::Instant::now))
        .as_nanos() as u64
}
