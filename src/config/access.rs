//! Access-control settings of the policy: client address, IP lists, request validation,
//! security headers, API keys, tiers and rate-limit rules. Raw serde types here, validated
//! types built by `policy.rs` (which knows file locations for errors).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::de;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawClientIp {
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub header: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawIpFilter {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub allow_files: Vec<PathBuf>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub deny_files: Vec<PathBuf>,
    /// Policy-wide only: refuse denied socket peers at accept, before any HTTP parsing.
    #[serde(default)]
    pub drop_connections: bool,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_body: Option<u64>,
    #[serde(default)]
    pub max_headers: Option<usize>,
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_header_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_uri: Option<u64>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSecurityHeaders {
    /// Replace a value the upstream set (true) or keep the upstream's (false, default).
    #[serde(default)]
    pub replace_upstream: Option<bool>,
    /// Header name to value; `null` removes a default.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// Sent on TLS listeners only.
    #[serde(default)]
    pub strict_transport_security: Option<Option<String>>,
    /// Upstream response headers to remove.
    #[serde(default)]
    pub remove: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Header carrying the key (default `X-API-Key`).
    #[serde(default)]
    pub header: Option<String>,
    /// Also accept `Authorization: Bearer <key>` (default true).
    #[serde(default)]
    pub bearer: Option<bool>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRouteAuth {
    #[serde(default = "yes")]
    pub required: bool,
    /// Accept the key from this query parameter too (stripped before the request goes upstream).
    #[serde(default)]
    pub query_param: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    ClientIp,
    ApiKey,
    Route,
    ApiKeyRoute,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ClientIp => "client_ip",
            Scope::ApiKey => "api_key",
            Scope::Route => "route",
            Scope::ApiKeyRoute => "api_key_route",
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub name: String,
    pub scope: Scope,
    pub rate: u64,
    #[serde(deserialize_with = "de::duration")]
    pub per: Duration,
    /// Requests allowed at once (the bucket); default: `rate`.
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub max_tracked: Option<usize>,
    /// `client_ip` scope: IPv6 clients are grouped by this prefix length (default 64).
    #[serde(default)]
    pub ipv6_prefix: Option<u8>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub name: String,
    #[serde(default)]
    pub rate_limits: Vec<String>,
    #[serde(default)]
    pub daily_quota: Option<u64>,
    #[serde(default)]
    pub monthly_quota: Option<u64>,
    /// Route names this tier may use; absent or `["*"]` means all.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    pub id: String,
    pub name: String,
    pub tier: String,
    /// Hex SHA-256 of the key; the key itself is never stored.
    pub sha256: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `ecdsa-p256`, `ml-dsa-65` or `hybrid` (both, under two labels).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// `sha-256` (default), `sha-512`, `sha3-256` or `blake3`.
    #[serde(default)]
    pub digest: Option<String>,
    /// Responses are held (and signed) up to this size.
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_hold: Option<u64>,
    /// Media types that stream (never held): passed unsigned with `Integrity-Status`.
    #[serde(default)]
    pub stream_types: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawInspection {
    /// `block`, `detect` or `off`.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub paranoia: Option<u8>,
    /// Bodies are inspected up to this size (after decompression).
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_body: Option<u64>,
    /// A body over `max_body`: `refuse` (413, the default) or `pass` (its tail uninspected).
    #[serde(default)]
    pub oversize: Option<String>,
    /// Rule ids switched off (the false-positive workflow).
    #[serde(default)]
    pub disabled_rules: Option<Vec<u32>>,
    /// Parameter names (query, form, JSON keys are not matched) never inspected.
    #[serde(default)]
    pub exclude_params: Option<Vec<String>>,
}
