//! Configuration: YAML in, validated settings out.
//!
//! Two layers, as in rustls' "parse, don't validate": serde structs that mirror the files
//! (`deny_unknown_fields` everywhere) and validated types the rest of the gateway uses. Every
//! error names `file:line:column: field: message`.

pub mod access;
pub mod alerts;
pub mod cluster;
mod de;
pub mod error;
pub mod gateway;
pub mod inspection;
mod locate;
pub mod monitoring;
mod names;
pub mod normalization;
pub mod policy;
pub mod routes;
pub mod security_headers;
pub mod signing;
pub mod upstreams;
pub mod validation;

pub use access::{AccessSpec, ApiKeySpec, RateLimitSpec, TierSpec};
pub use error::{ConfigError, ConfigErrors};
pub use gateway::{AccessLogTarget, GatewayConfig};
pub use policy::PolicyConfig;
pub use routes::{HostPattern, RouteSpec};
pub use upstreams::UpstreamSpec;

/// Loads `gateway.yaml` and every policy it names: what `quantumvault check` validates.
pub fn load_all(path: &std::path::Path) -> Result<(GatewayConfig, PolicyConfig), ConfigErrors> {
    let gateway = GatewayConfig::load(path)?;
    let policy = PolicyConfig::load(&gateway)?;
    Ok((gateway, policy))
}
