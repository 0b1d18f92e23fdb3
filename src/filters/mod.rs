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
