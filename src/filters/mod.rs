//! The gateway's filters, one module each. [`phases`] declares one trait per Pingora phase and
//! lists the filters of each, in the order they run; `proxy/` calls those lists.
pub mod auth;
pub mod client_ip;
pub mod inspection;
pub mod ip_filter;
pub mod ipset;
pub mod phases;
pub mod quota;
pub mod rate_limit;
pub mod rate_limit_filter;
pub mod request;
pub mod security_headers;
pub mod validate;
