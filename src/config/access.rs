//! Access control: the client address (`client_ip`), IP lists (`ip_filter`), API-key extraction
//! (`auth`), rate limits, tiers (rate limits, quotas, routes and methods) and API keys.
//!
//! A rate limit stands alone and converts with `TryFrom`. A tier names rate limits and an API
//! key names a tier, so they are built by functions that take those names (`TierSpec::build`,
//! `ApiKeySpec::build`); the policy-wide blocks are read by small functions that locate their
//! errors in the one file that sets them. See `routes.rs` for why context means a function.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::error::{ConfigError, FieldError, SourceFile};
use super::inspection::InspectionSpec;
use super::names::{self, check_name, Located, Names, NAME_RULE};
use super::security_headers::SecurityHeadersSpec;
use super::signing::SigningSpec;
use super::validation::parse_methods;
use crate::filters::ipset::{parse_cidr, parse_list_file, IpSet};

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
pub struct RawAuth {
    /// Header carrying the key (default `X-API-Key`).
    #[serde(default)]
    pub header: Option<String>,
    /// Also accept `Authorization: Bearer <key>` (default true).
    #[serde(default)]
    pub bearer: Option<bool>,
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
    /// Cluster mode: one bucket in Redis for the whole fleet (see `crate::cluster::limit`).
    #[serde(default)]
    pub shared: bool,
    /// Shared: tokens taken from Redis per call, spent locally (default 1: a call a request).
    #[serde(default)]
    pub reserve: Option<u32>,
    /// Shared: what decides while Redis is unreachable.
    #[serde(default)]
    pub on_redis_down: OnRedisDown,
}

/// What a shared limit or quota does while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisDown {
    /// Fail open to a local limiter at limit ÷ instances (quotas: this instance's count
    /// against quota ÷ instances).
    #[default]
    Local,
    /// Fail closed: refuse (429 for rate limits, 503 for quotas).
    Deny,
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
    /// Cluster mode: what the quotas do while Redis is unreachable.
    #[serde(default)]
    pub quota_on_redis_down: OnRedisDown,
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

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSpec {
    pub name: String,
    pub scope: Scope,
    pub rate: u64,
    pub per: Duration,
    pub burst: u64,
    pub max_tracked: usize,
    /// `client_ip` scope: IPv6 clients share one bucket per prefix of this length. A single
    /// client usually holds a whole /64 (SLAAC, privacy addresses), so counting /128s would
    /// give it 2^64 buckets.
    pub ipv6_prefix: u8,
    pub shared: bool,
    pub reserve: u32,
    pub on_redis_down: OnRedisDown,
}

impl RateLimitSpec {
    /// The bucket key of a client address under the `client_ip` scope: IPv4 (and IPv4-mapped
    /// IPv6, `::ffff:a.b.c.d`) as the address, other IPv6 as its `ipv6_prefix` network.
    pub fn client_key(&self, ip: std::net::IpAddr, out: &mut Vec<u8>) {
        match ip {
            std::net::IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => out.extend_from_slice(&v4.octets()),
                None => {
                    let bits = u128::from(v6);
                    let prefix = u32::from(self.ipv6_prefix.clamp(1, 128));
                    let masked = bits & (u128::MAX << (128 - prefix));
                    out.extend_from_slice(&masked.to_be_bytes());
                }
            },
        }
    }

    /// Identity of the limiter's state: a reload that keeps these keeps the counters.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{:?}|{}|{}",
            self.shared,
            self.ipv6_prefix,
            self.name,
            self.scope.as_str(),
            self.rate,
            self.per,
            self.burst,
            self.max_tracked
        )
    }
}

#[derive(Debug, Clone)]
pub struct TierSpec {
    pub name: String,
    pub rate_limits: Vec<String>,
    pub daily_quota: Option<u64>,
    pub monthly_quota: Option<u64>,
    pub quota_on_redis_down: OnRedisDown,
    pub routes: Option<Vec<String>>,
    pub methods: Option<Vec<http::Method>>,
}

#[derive(Clone)]
pub struct ApiKeySpec {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub sha256: [u8; 32],
    pub created: String,
    pub expires: Option<std::time::SystemTime>,
    pub revoked: bool,
}

impl std::fmt::Debug for ApiKeySpec {
    // The hash is not the key, but there is no reason to print it either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeySpec")
            .field("id", &self.id)
            .field("tier", &self.tier)
            .field("revoked", &self.revoked)
            .finish()
    }
}

/// Policy-wide access settings.
#[derive(Debug, Clone)]
pub struct AccessSpec {
    pub trusted_proxies: Arc<IpSet>,
    pub client_ip_header: http::HeaderName,
    pub ip_allow: Option<Arc<IpSet>>,
    pub ip_deny: Arc<IpSet>,
    /// Close connections from globally denied socket peers at accept (`ip_filter.drop_connections`).
    pub ip_drop_connections: bool,
    pub auth_header: http::HeaderName,
    pub auth_bearer: bool,
    /// Security headers of responses that match no route.
    pub security_headers: SecurityHeadersSpec,
    /// Signing of responses that match no route (and the default of every route).
    pub signing: SigningSpec,
    /// The default inspection of every route.
    pub inspection: InspectionSpec,
    pub rate_limits: Vec<RateLimitSpec>,
    pub tiers: Vec<TierSpec>,
    pub api_keys: Vec<ApiKeySpec>,
}

impl TryFrom<&RawRateLimit> for RateLimitSpec {
    type Error = FieldError;

    fn try_from(r: &RawRateLimit) -> Result<RateLimitSpec, FieldError> {
        let err = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        if !names::valid_name(&r.name) {
            err("name", NAME_RULE)
        } else if r.rate == 0 {
            err("rate", "must be at least 1")
        } else if r.per.is_zero() {
            err("per", "must be longer than zero")
        } else if r.burst == Some(0) {
            err("burst", "must be at least 1")
        } else if r.ipv6_prefix.is_some_and(|p| !(1..=128).contains(&p)) {
            err("ipv6_prefix", "must be a prefix length from 1 to 128")
        } else if r.ipv6_prefix.is_some() && r.scope != Scope::ClientIp {
            err("ipv6_prefix", "applies to the client_ip scope only")
        } else if r.reserve == Some(0) || r.reserve.is_some_and(|n| u64::from(n) > r.burst.unwrap_or(r.rate)) {
            err("reserve", "between 1 and the rule's burst")
        } else if r.reserve.is_some() && !r.shared {
            err("reserve", "applies to shared rate limits only")
        } else {
            Ok(RateLimitSpec {
                name: r.name.clone(),
                scope: r.scope,
                rate: r.rate,
                per: r.per,
                burst: r.burst.unwrap_or(r.rate),
                max_tracked: r.max_tracked.unwrap_or(1 << 20).max(1024),
                ipv6_prefix: r.ipv6_prefix.unwrap_or(64),
                shared: r.shared,
                reserve: r.reserve.unwrap_or(1),
                on_redis_down: r.on_redis_down,
            })
        }
    }
}

impl TierSpec {
    /// One tier; `rate_limits` are the valid rate limits. Errors name the field below the tier.
    pub(super) fn build(t: &RawTier, rate_limits: &Names) -> Result<TierSpec, FieldError> {
        // The tier travels to the upstream in X-Api-Key-Tier and names metrics.
        check_name(&t.name).map_err(|m| ("name".to_string(), m.to_string()))?;
        rate_limits
            .resolve_all(&t.rate_limits)
            .map_err(|(j, m)| (format!("rate_limits[{j}]"), m.to_string()))?;
        let methods = t
            .methods
            .as_ref()
            .map(|m| parse_methods(m))
            .transpose()
            .map_err(|e| ("methods".to_string(), e))?;
        let routes = t.routes.clone().filter(|r| !r.iter().any(|x| x == "*"));
        Ok(TierSpec {
            name: t.name.clone(),
            rate_limits: t.rate_limits.clone(),
            daily_quota: t.daily_quota,
            monthly_quota: t.monthly_quota,
            quota_on_redis_down: t.quota_on_redis_down,
            routes,
            methods,
        })
    }
}

impl ApiKeySpec {
    /// One key; `tiers` are the valid tiers, `taken` the keys accepted so far (no two share a
    /// hash). Errors name the field below the key.
    pub(super) fn build(k: &RawApiKey, tiers: &Names, taken: &[ApiKeySpec]) -> Result<ApiKeySpec, FieldError> {
        let err = |f: &str, m: &dyn std::fmt::Display| (f.to_string(), m.to_string());
        // The id travels to the upstream in X-Api-Key-Id and names the key in /usage/{id}.
        check_name(&k.id).map_err(|m| err("id", &m))?;
        tiers.resolve(&k.tier).map_err(|m| err("tier", &m))?;
        let mut sha = [0u8; 32];
        if k.sha256.len() != 64 || hex::decode_to_slice(&k.sha256, &mut sha).is_err() {
            return Err(err("sha256", &"must be 64 hex digits (the SHA-256 of the key)"));
        }
        if taken.iter().any(|x| x.sha256 == sha) {
            return Err(err("sha256", &"two API keys have the same hash"));
        }
        let expires = match &k.expires {
            None => None,
            Some(e) => Some(humantime::parse_rfc3339_weak(e).map_err(|_| {
                err(
                    "expires",
                    &format!("{e:?} is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)"),
                )
            })?),
        };
        Ok(ApiKeySpec {
            id: k.id.clone(),
            name: k.name.clone(),
            tier: k.tier.clone(),
            sha256: sha,
            created: k.created.clone(),
            expires,
            revoked: k.revoked,
        })
    }
}

/// The policy-wide `client_ip` block: trusted proxies and the header they write.
pub(super) fn client_ip(
    block: Option<(&SourceFile, &RawClientIp)>,
    errors: &mut Vec<ConfigError>,
) -> (IpSet, http::HeaderName) {
    let mut trusted = IpSet::default();
    let mut header = http::HeaderName::from_static("x-forwarded-for");
    if let Some((src, c)) = block {
        match IpSet::parse(c.trusted_proxies.iter().map(String::as_str)) {
            Ok(s) => trusted = s,
            Err(e) => errors.push(src.error("client_ip.trusted_proxies", e)),
        }
        if let Some(h) = &c.header {
            match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => header = n,
                Err(_) => errors.push(src.error("client_ip.header", format!("{h:?} is not a header name"))),
            }
        }
    }
    (trusted, header)
}

/// The policy-wide `ip_filter` block: allow list (absent: all), deny list, whether denied peers
/// are dropped at accept.
pub(super) fn ip_filter(
    block: Option<(&SourceFile, &RawIpFilter)>,
    errors: &mut Vec<ConfigError>,
) -> (Option<Arc<IpSet>>, Arc<IpSet>, bool) {
    let (mut allow, mut deny) = (None, Arc::new(IpSet::default()));
    let mut drop_connections = false;
    if let Some((src, f)) = block {
        drop_connections = f.drop_connections;
        match ip_lists(f, src, "ip_filter") {
            Ok((a, d)) => {
                allow = a;
                deny = d.unwrap_or_default();
            }
            Err((field, msg)) => errors.push(src.error(&field, msg)),
        }
    }
    (allow, deny, drop_connections)
}

/// The policy-wide `auth` block: the header that carries the key, and whether a bearer token
/// counts too.
pub(super) fn auth(block: Option<(&SourceFile, &RawAuth)>, errors: &mut Vec<ConfigError>) -> (http::HeaderName, bool) {
    let (mut header, mut bearer) = (http::HeaderName::from_static("x-api-key"), true);
    if let Some((src, a)) = block {
        if let Some(h) = &a.header {
            match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => header = n,
                Err(_) => errors.push(src.error("auth.header", format!("{h:?} is not a header name"))),
            }
        }
        bearer = a.bearer.unwrap_or(true);
    }
    (header, bearer)
}

/// The rate limits of every file, and the names of the valid ones.
pub(super) fn rate_limits<'a>(
    items: impl Iterator<Item = Located<'a, RawRateLimit>>,
    errors: &mut Vec<ConfigError>,
) -> (Vec<RateLimitSpec>, Names<'a>) {
    let mut out = Vec::new();
    let mut taken = Names::new(names::RATE_LIMIT);
    for (src, i, r) in items {
        let at = |f: &str| format!("rate_limits[{i}].{f}");
        let converted = taken
            .check_unique(&r.name)
            .map_err(|m| ("name".to_string(), m.to_string()));
        match converted.and_then(|()| RateLimitSpec::try_from(r)) {
            Ok(spec) => {
                taken.insert(spec.name.clone(), &src.path);
                out.push(spec);
            }
            Err((field, msg)) => errors.push(src.error(&at(&field), msg)),
        }
    }
    (out, taken)
}

/// The tiers of every file, and the names of the valid ones.
pub(super) fn tiers<'a>(
    items: impl Iterator<Item = Located<'a, RawTier>>,
    rate_limits: &Names,
    errors: &mut Vec<ConfigError>,
) -> (Vec<TierSpec>, Names<'a>) {
    let mut out = Vec::new();
    let mut taken = Names::new(names::TIER);
    for (src, i, t) in items {
        let at = |f: &str| format!("tiers[{i}].{f}");
        // Only valid tiers take a name, so an invalid name is reported as such, never as a duplicate.
        let converted = taken
            .check_unique(&t.name)
            .map_err(|m| ("name".to_string(), m.to_string()));
        match converted.and_then(|()| TierSpec::build(t, rate_limits)) {
            Ok(spec) => {
                taken.insert(spec.name.clone(), &src.path);
                out.push(spec);
            }
            Err((field, msg)) => errors.push(src.error(&at(&field), msg)),
        }
    }
    (out, taken)
}

/// The API keys of every file: ids and hashes unique across them.
pub(super) fn api_keys<'a>(
    items: impl Iterator<Item = Located<'a, RawApiKey>>,
    tiers: &Names,
    errors: &mut Vec<ConfigError>,
) -> Vec<ApiKeySpec> {
    let mut out: Vec<ApiKeySpec> = Vec::new();
    let mut taken = Names::new(names::API_KEY);
    for (src, i, k) in items {
        let at = |f: &str| format!("api_keys[{i}].{f}");
        let converted = taken.check_unique(&k.id).map_err(|m| ("id".to_string(), m.to_string()));
        match converted.and_then(|()| ApiKeySpec::build(k, tiers, &out)) {
            Ok(spec) => {
                taken.insert(spec.id.clone(), &src.path);
                out.push(spec);
            }
            Err((field, msg)) => errors.push(src.error(&at(&field), msg)),
        }
    }
    out
}

/// Tiers name routes, so they are checked once every route is known; every unknown name is
/// reported (`"*"` means all routes).
pub(super) fn check_tier_routes<'a>(
    items: impl Iterator<Item = Located<'a, RawTier>>,
    routes: &Names,
    errors: &mut Vec<ConfigError>,
) {
    for (src, i, t) in items {
        for (j, r) in t.routes.iter().flatten().enumerate() {
            if r == "*" {
                continue;
            }
            if let Err(m) = routes.resolve(r) {
                errors.push(src.error(&format!("tiers[{i}].routes[{j}]"), m));
            }
        }
    }
}

pub(super) type Lists = (Option<Arc<IpSet>>, Option<Arc<IpSet>>);

/// Inline entries plus list files (relative to the policy file). Absent allow = allow all.
pub(super) fn ip_lists(f: &RawIpFilter, src: &SourceFile, prefix: &str) -> Result<Lists, FieldError> {
    let base = src.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let load = |inline: &[String], files: &[PathBuf], name: &str| -> Result<Option<Arc<IpSet>>, (String, String)> {
        if inline.is_empty() && files.is_empty() {
            return Ok(None);
        }
        let mut ranges = Vec::new();
        for (i, e) in inline.iter().enumerate() {
            ranges.push(parse_cidr(e).map_err(|m| (format!("{prefix}.{name}[{i}]"), m.to_string()))?);
        }
        for (i, file) in files.iter().enumerate() {
            let path = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            let field = format!("{prefix}.{name}_files[{i}]");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| (field.clone(), format!("cannot read {}: {e}", path.display())))?;
            let parsed = parse_list_file(&text)
                .map_err(|(line, m)| (field.clone(), format!("{}:{line}: {m}", path.display())))?;
            ranges.extend(parsed);
        }
        Ok(Some(Arc::new(IpSet::from_ranges(ranges))))
    };
    Ok((
        load(&f.allow, &f.allow_files, "allow")?,
        load(&f.deny, &f.deny_files, "deny")?,
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::policy::testing::{load, GOOD};

    #[test]
    fn tier_and_key_names_are_checked() {
        let key = |id: &str, tier: &str| {
            format!(
                "tiers:\n  - name: {tier}\napi_keys:\n  - {{id: {id}, name: n, tier: {tier}, sha256: {}, created: '2026-01-01T00:00:00Z'}}\n{GOOD}",
                "ab".repeat(32)
            )
        };
        assert!(load(&key("k_1", "gold")).is_ok());
        let e = load(&key("k_1", "\"gold star\"")).unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].field.as_str()), (2, "tiers[0].name"), "{e}");
        let e = load(&key("\"k 1\"", "gold")).unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].field.as_str()), (4, "api_keys[0].id"), "{e}");
    }
}
