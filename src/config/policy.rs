//! `policies/*.yaml`: routes and upstream pools. Hot-reloadable; several files merge into one
//! policy, and names must be unique across all of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::access::{
    RawApiKey, RawAuth, RawClientIp, RawInspection, RawIpFilter, RawRateLimit, RawRouteAuth, RawSecurityHeaders,
    RawSigning, RawTier, RawValidation, Scope,
};
use super::alerts::{AlertRule, RawAlerts};
use super::de;
use super::error::{ConfigErrors, FieldError, SourceFile};
use super::gateway::GatewayConfig;
use super::names::{self, check_name, Names, NAME_RULE};
use crate::filters::ipset::{parse_cidr, parse_list_file, IpSet};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicyFile {
    #[serde(default)]
    upstreams: Vec<RawUpstream>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    client_ip: Option<RawClientIp>,
    #[serde(default)]
    ip_filter: Option<RawIpFilter>,
    #[serde(default)]
    validation: Option<RawValidation>,
    #[serde(default)]
    security_headers: Option<RawSecurityHeaders>,
    #[serde(default)]
    auth: Option<RawAuth>,
    #[serde(default)]
    rate_limits: Vec<RawRateLimit>,
    #[serde(default)]
    tiers: Vec<RawTier>,
    #[serde(default)]
    api_keys: Vec<RawApiKey>,
    #[serde(default)]
    signing: Option<RawSigning>,
    #[serde(default)]
    inspection: Option<RawInspection>,
    #[serde(default)]
    alerts: Option<RawAlerts>,
    #[serde(default)]
    inspection_rules: Vec<RawInspectionRule>,
    #[serde(default)]
    normalization: Option<super::normalization::RawNormalization>,
}

/// A detection rule of the policy's own, next to the built-in ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInspectionRule {
    id: u32,
    class: String,
    #[serde(default = "d_paranoia")]
    paranoia: u8,
    description: String,
    pattern: String,
}

fn d_paranoia() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: String,
    #[serde(deserialize_with = "de::host_ports")]
    peers: Vec<String>,
    #[serde(default)]
    tls: Option<RawUpstreamTls>,
    #[serde(default = "d_connect", deserialize_with = "de::duration")]
    connect_timeout: Duration,
    #[serde(default, deserialize_with = "de::opt_duration")]
    total_connect_timeout: Option<Duration>,
    #[serde(default = "d_read", deserialize_with = "de::duration")]
    read_timeout: Duration,
    #[serde(default = "d_read", deserialize_with = "de::duration")]
    write_timeout: Duration,
    #[serde(default, deserialize_with = "de::opt_duration")]
    idle_timeout: Option<Duration>,
    #[serde(default = "d_retries")]
    retries: u32,
    #[serde(default)]
    health_check: Option<RawHealthCheck>,
    #[serde(default)]
    passive_ejection: Option<RawPassive>,
}

fn d_connect() -> Duration {
    Duration::from_secs(2)
}
fn d_read() -> Duration {
    Duration::from_secs(30)
}
fn d_retries() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreamTls {
    /// Server name sent in SNI and checked in the certificate.
    sni: String,
    #[serde(default = "default_true")]
    verify: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    #[serde(default = "d_hc_path")]
    path: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default = "d_hc_interval", deserialize_with = "de::duration")]
    interval: Duration,
    #[serde(default = "d_hc_timeout", deserialize_with = "de::duration")]
    timeout: Duration,
    #[serde(default = "d_status")]
    expected_status: u16,
    #[serde(default = "d_two")]
    healthy_threshold: u32,
    #[serde(default = "d_two")]
    unhealthy_threshold: u32,
}

fn d_hc_path() -> String {
    "/".into()
}
fn d_hc_interval() -> Duration {
    Duration::from_secs(5)
}
fn d_hc_timeout() -> Duration {
    Duration::from_secs(1)
}
fn d_status() -> u16 {
    200
}
fn d_two() -> u32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassive {
    #[serde(default = "d_three")]
    consecutive_failures: u32,
    #[serde(default = "d_eject", deserialize_with = "de::duration")]
    eject_for: Duration,
}
fn d_three() -> u32 {
    3
}
fn d_eject() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    #[serde(default)]
    hosts: Vec<String>,
    path_prefix: String,
    upstream: String,
    /// Replace the Host header sent upstream; absent keeps the client's Host.
    #[serde(default)]
    upstream_host: Option<String>,
    #[serde(default)]
    ip_filter: Option<RawIpFilter>,
    #[serde(default)]
    validation: Option<RawValidation>,
    #[serde(default)]
    security_headers: Option<RawSecurityHeaders>,
    #[serde(default)]
    auth: Option<RawRouteAuth>,
    #[serde(default)]
    rate_limits: Vec<String>,
    #[serde(default)]
    signing: Option<RawSigning>,
    #[serde(default)]
    inspection: Option<RawInspection>,
    /// Match `path_prefix` ignoring ASCII case (for backends that route that way).
    #[serde(default)]
    case_insensitive: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as `.example.com`; matches any deeper name, not the apex.
    Suffix(String),
}

impl HostPattern {
    fn parse(raw: &str) -> Result<HostPattern, String> {
        let lower = raw.trim().to_ascii_lowercase();
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        };
        if let Some(rest) = lower.strip_prefix("*.") {
            if valid_name(rest) {
                return Ok(HostPattern::Suffix(format!(".{rest}")));
            }
        } else if valid_name(&lower) {
            return Ok(HostPattern::Exact(lower));
        }
        Err(format!("{raw:?} is not a host name or a *.domain wildcard"))
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    pub path_prefix: String,
    pub upstream: String,
    pub upstream_host: Option<String>,
    /// Route-level lists, checked after the global ones.
    pub ip_allow: Option<Arc<IpSet>>,
    pub ip_deny: Option<Arc<IpSet>>,
    pub validation: ValidationSpec,
    pub security_headers: SecurityHeadersSpec,
    pub auth: Option<RouteAuthSpec>,
    pub rate_limits: Vec<String>,
    pub signing: SigningSpec,
    pub inspection: InspectionSpec,
    /// `path_prefix` matches ignoring ASCII case (the route's or the policy's setting).
    pub case_insensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InspectionMode {
    Off,
    Detect,
    Block,
}

/// What happens to a body larger than `inspection.max_body` (compressed or decompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// 413: nothing reaches the upstream uninspected.
    Refuse,
    /// The prefix is inspected, the rest streams through (counted in
    /// `quantumvault_inspection_oversize_total`).
    Pass,
}

/// Request inspection of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionSpec {
    pub mode: InspectionMode,
    pub paranoia: u8,
    pub max_body: u64,
    pub oversize: Oversize,
    pub disabled_rules: Vec<u32>,
    pub exclude_params: Vec<String>,
}

impl Default for InspectionSpec {
    fn default() -> Self {
        InspectionSpec {
            mode: InspectionMode::Off,
            paranoia: 1,
            max_body: 1 << 20,
            oversize: Oversize::Refuse,
            disabled_rules: Vec::new(),
            exclude_params: Vec::new(),
        }
    }
}

fn merge_inspection(base: &InspectionSpec, raw: &RawInspection) -> Result<InspectionSpec, (String, String)> {
    let mut s = base.clone();
    if let Some(m) = &raw.mode {
        s.mode = match m.as_str() {
            "block" => InspectionMode::Block,
            "detect" => InspectionMode::Detect,
            "off" => InspectionMode::Off,
            other => return Err(("mode".into(), format!("{other:?} is not one of block, detect, off"))),
        };
    }
    if let Some(p) = raw.paranoia {
        if !(1..=2).contains(&p) {
            return Err(("paranoia".into(), "paranoia levels are 1 and 2".into()));
        }
        s.paranoia = p;
    }
    if let Some(m) = raw.max_body {
        s.max_body = m;
    }
    if let Some(o) = &raw.oversize {
        s.oversize = match o.as_str() {
            "refuse" => Oversize::Refuse,
            "pass" => Oversize::Pass,
            other => return Err(("oversize".into(), format!("{other:?} is not one of refuse, pass"))),
        };
    }
    if let Some(d) = &raw.disabled_rules {
        // Ids are checked against the built-in and the policy's own rules once all files are read.
        s.disabled_rules = d.clone();
    }
    if let Some(e) = &raw.exclude_params {
        s.exclude_params = e.clone();
    }
    Ok(s)
}

/// Response signing of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningSpec {
    pub enabled: bool,
    pub algorithms: Vec<crate::integrity::sig::SigAlg>,
    pub digest: crate::integrity::digest::DigestAlg,
    pub max_hold: u64,
    pub stream_types: Vec<String>,
}

impl Default for SigningSpec {
    fn default() -> Self {
        SigningSpec {
            enabled: false,
            algorithms: vec![
                crate::integrity::sig::SigAlg::EcdsaP256,
                crate::integrity::sig::SigAlg::MlDsa65,
            ],
            digest: crate::integrity::digest::DigestAlg::Sha256,
            max_hold: 8 << 20,
            stream_types: vec!["text/event-stream".into()],
        }
    }
}

fn merge_signing(base: &SigningSpec, raw: &RawSigning) -> Result<SigningSpec, (String, String)> {
    use crate::integrity::sig::SigAlg;
    let mut s = base.clone();
    if let Some(e) = raw.enabled {
        s.enabled = e;
    }
    if let Some(a) = &raw.algorithm {
        s.algorithms = match a.as_str() {
            "ecdsa-p256" => vec![SigAlg::EcdsaP256],
            "ml-dsa-65" => vec![SigAlg::MlDsa65],
            "hybrid" => vec![SigAlg::EcdsaP256, SigAlg::MlDsa65],
            other => {
                return Err((
                    "algorithm".into(),
                    format!("{other:?} is not one of ecdsa-p256, ml-dsa-65, hybrid"),
                ))
            }
        };
    }
    if let Some(d) = &raw.digest {
        s.digest = crate::integrity::digest::DigestAlg::parse(d).ok_or_else(|| {
            (
                "digest".to_string(),
                format!("{d:?} is not one of sha-256, sha-512, sha3-256, blake3"),
            )
        })?;
    }
    if let Some(m) = raw.max_hold {
        s.max_hold = m;
    }
    if let Some(t) = &raw.stream_types {
        s.stream_types = t.iter().map(|t| t.to_ascii_lowercase()).collect();
    }
    Ok(s)
}

#[derive(Debug, Clone)]
pub struct RouteAuthSpec {
    pub required: bool,
    pub query_param: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidationSpec {
    /// Allowed methods; `None` allows any.
    pub methods: Option<Vec<http::Method>>,
    /// Allowed media types (lower case, no parameters) of request bodies; `None` allows any.
    pub content_types: Option<Vec<String>>,
    pub max_body: u64,
    pub max_headers: usize,
    pub max_header_bytes: u64,
    pub max_uri: u64,
}

impl Default for ValidationSpec {
    fn default() -> Self {
        ValidationSpec {
            methods: None,
            content_types: None,
            max_body: 100 << 20,
            max_headers: 100,
            max_header_bytes: 64 << 10,
            max_uri: 8 << 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityHeadersSpec {
    pub replace_upstream: bool,
    /// Lower-case names and values, in a stable order.
    pub headers: Vec<(String, String)>,
    pub hsts: Option<String>,
    pub remove: Vec<String>,
}

impl Default for SecurityHeadersSpec {
    fn default() -> Self {
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        SecurityHeadersSpec {
            replace_upstream: false,
            headers: vec![
                h("x-frame-options", "DENY"),
                h("x-content-type-options", "nosniff"),
                // "0" turns the legacy XSS auditor off, as OWASP advises: its filtering mode
                // introduced vulnerabilities, and CSP is the real protection.
                h("x-xss-protection", "0"),
                h("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
                h("referrer-policy", "no-referrer"),
                h(
                    "permissions-policy",
                    "camera=(), microphone=(), geolocation=(), payment=()",
                ),
            ],
            hsts: Some("max-age=31536000; includeSubDomains".into()),
            remove: vec!["server".into(), "x-powered-by".into()],
        }
    }
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
            "{}|{}|{}|{}|{:?}|{}|{}",
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

#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub sni: String,
    pub verify: bool,
}

#[derive(Debug, Clone)]
pub struct HealthCheckSpec {
    pub path: String,
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub expected_status: u16,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

#[derive(Debug, Clone)]
pub struct PassiveSpec {
    pub consecutive_failures: u32,
    pub eject_for: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    pub peers: Vec<String>,
    pub tls: Option<UpstreamTls>,
    pub connect_timeout: Duration,
    pub total_connect_timeout: Option<Duration>,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// How long an idle pooled connection is kept (`None`: until the upstream closes it or the
    /// pool needs the room).
    pub idle_timeout: Option<Duration>,
    pub retries: u32,
    pub health_check: Option<HealthCheckSpec>,
    pub passive: PassiveSpec,
}

/// The validated policy, merged from every policy file.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub routes: Vec<RouteSpec>,
    pub upstreams: Vec<UpstreamSpec>,
    pub access: AccessSpec,
    /// Detection rules of the policy's own (`inspection_rules`), added to the built-in ones.
    pub inspection_rules: Vec<crate::inspect::Rule>,
    /// How the canonical request is made (`normalization`).
    pub normalization: crate::canonical::NormalizationSpec,
    /// Alert rules: the built-in ones (unless `alerts.builtin: false`) with the policy's own
    /// replacing those of the same name.
    pub alerts: Vec<AlertRule>,
    /// SHA-256 over the files' names and contents, in load order (first 16 hex digits).
    pub hash: String,
    pub files: Vec<PathBuf>,
}

impl PolicyConfig {
    /// Loads every policy file `gateway` names and validates them together.
    pub fn load(gateway: &GatewayConfig) -> Result<PolicyConfig, ConfigErrors> {
        let files = gateway.policy_files()?;
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for f in &files {
            match SourceFile::read(f) {
                Ok(s) => sources.push(s),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Self::from_sources(&sources)
    }

    pub fn from_sources(sources: &[SourceFile]) -> Result<PolicyConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        let mut hasher = Sha256::new();
        for src in sources {
            hasher.update(src.path.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(src.text.as_bytes());
            hasher.update([0]);
            // An empty file (or one holding only comments) is an empty policy, not an error.
            let empty = src
                .text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
            if empty {
                parsed.push((src, RawPolicyFile::default()));
                continue;
            }
            match src.parse::<RawPolicyFile>() {
                Ok(raw) => parsed.push((src, raw)),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }

        let access = build_access(&parsed, &mut errors);
        let mut normalization = merged_default(
            &parsed,
            "normalization",
            |r| r.normalization.as_ref(),
            |_, raw| crate::canonical::NormalizationSpec::try_from(raw),
            &mut errors,
        );

        // Upstreams first, so routes can refer to pools from any file.
        let mut upstreams = Vec::new();
        let mut upstream_names = Names::new(names::UPSTREAM);
        for (src, i, u) in names::located(&parsed, |r| &r.upstreams) {
            let at = |f: &str| format!("upstreams[{i}].{f}");
            if let Err(m) = upstream_names.claim(&u.name, &src.path) {
                errors.push(src.error(&at("name"), m));
                continue;
            }
            match upstream_spec(u) {
                Ok(spec) => upstreams.push(spec),
                Err((field, msg)) => errors.push(src.error(&at(field), msg)),
            }
        }

        let mut routes = Vec::new();
        let mut route_names = Names::new(names::ROUTE);
        let mut match_keys: HashMap<(Vec<HostPattern>, String), String> = HashMap::new();
        for (src, raw) in &parsed {
            for (i, r) in raw.routes.iter().enumerate() {
                let at = |f: &str| format!("routes[{i}].{f}");
                if let Err(m) = route_names.claim(&r.name, &src.path) {
                    errors.push(src.error(&at("name"), m));
                    continue;
                }
                match route_spec(r, &upstream_names, &access.defaults, src, &access.rate_limit_names) {
                    Ok(mut spec) => {
                        spec.case_insensitive |= normalization.case_insensitive;
                        let mut key_hosts = spec.hosts.clone();
                        key_hosts.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
                        let key = (key_hosts, spec.path_prefix.clone());
                        if let Some(other) = match_keys.get(&key) {
                            errors.push(src.error(
                                &at("path_prefix"),
                                format!(
                                    "route {:?} matches exactly the same hosts and prefix as route {other:?}",
                                    r.name
                                ),
                            ));
                        } else {
                            match_keys.insert(key, r.name.clone());
                        }
                        routes.push(spec);
                    }
                    Err((field, msg)) => errors.push(src.error(&at(&field), msg)),
                }
            }
        }
        // Tiers name routes, so check them once every route is known.
        for (src, raw) in &parsed {
            for (i, t) in raw.tiers.iter().enumerate() {
                for (j, r) in t.routes.iter().flatten().enumerate() {
                    if r == "*" {
                        continue;
                    }
                    if let Err(m) = route_names.resolve(r) {
                        errors.push(src.error(&format!("tiers[{i}].routes[{j}]"), m));
                    }
                }
            }
        }
        let alerts = build_alerts(&parsed, &mut errors);
        let inspection_rules = build_inspection_rules(&parsed, &mut errors);
        check_disabled_rules(&parsed, &inspection_rules, &mut errors);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let digest = hasher.finalize();
        // A backend that folds case with Unicode rules reads `ſ` as `s`: refuse such paths
        // wherever a route matches case-insensitively.
        normalization.path.reject_case_fold_lookalikes = routes.iter().any(|r| r.case_insensitive);
        Ok(PolicyConfig {
            normalization,
            routes,
            upstreams,
            access: access.spec,
            alerts,
            inspection_rules,
            hash: hex::encode(&digest[..8]),
            files: sources.iter().map(|s| s.path.clone()).collect(),
        })
    }
}

/// The policy's own detection rules: ids unique and apart from the built-in ones, a known class,
/// a paranoia level of 1 to 4, a pattern that compiles within the size limit.
fn build_inspection_rules(
    parsed: &[(&SourceFile, RawPolicyFile)],
    errors: &mut Vec<super::ConfigError>,
) -> Vec<crate::inspect::Rule> {
    use crate::inspect::rules::{check_pattern, Class, Rule};
    let builtin_ids = crate::inspect::rules::builtin_ids();
    let mut out: Vec<Rule> = Vec::new();
    let mut ids: Names<u32> = Names::new(names::INSPECTION_RULE);
    for (src, raw) in parsed {
        for (i, r) in raw.inspection_rules.iter().enumerate() {
            let at = |f: &str| format!("inspection_rules[{i}].{f}");
            if builtin_ids.contains(&r.id) {
                errors.push(src.error(
                    &at("id"),
                    format!(
                        "{} is a built-in rule id; disable it with disabled_rules and add yours under another id",
                        r.id
                    ),
                ));
                continue;
            }
            if let Err(m) = ids.check_unique(&r.id) {
                errors.push(src.error(&at("id"), m));
                continue;
            }
            let Some(class) = Class::parse(&r.class) else {
                errors.push(src.error(&at("class"), "one of sqli, xss, traversal, cmdi, crlf"));
                continue;
            };
            if !(1..=4).contains(&r.paranoia) {
                errors.push(src.error(&at("paranoia"), "1 to 4"));
                continue;
            }
            if let Err(e) = check_pattern(&r.pattern) {
                errors.push(src.error(&at("pattern"), e));
                continue;
            }
            ids.insert(r.id, &src.path);
            out.push(Rule {
                id: r.id,
                class,
                paranoia: r.paranoia,
                description: r.description.clone().into(),
                pattern: r.pattern.clone().into(),
            });
        }
    }
    out
}

/// Every `disabled_rules` id (policy-wide and per route) names a built-in or an own rule.
fn check_disabled_rules(
    parsed: &[(&SourceFile, RawPolicyFile)],
    own: &[crate::inspect::Rule],
    errors: &mut Vec<super::ConfigError>,
) {
    let mut known = crate::inspect::rules::builtin_ids();
    known.extend(own.iter().map(|r| r.id));
    for (src, raw) in parsed {
        let mut lists: Vec<(String, &Vec<u32>)> = Vec::new();
        if let Some(d) = raw.inspection.as_ref().and_then(|i| i.disabled_rules.as_ref()) {
            lists.push(("inspection.disabled_rules".into(), d));
        }
        for (i, r) in raw.routes.iter().enumerate() {
            if let Some(d) = r.inspection.as_ref().and_then(|i| i.disabled_rules.as_ref()) {
                lists.push((format!("routes[{i}].inspection.disabled_rules"), d));
            }
        }
        for (field, list) in lists {
            if let Some(bad) = list.iter().find(|id| !known.contains(id)) {
                errors.push(src.error(&field, format!("no rule with id {bad}")));
            }
        }
    }
}

/// The built-in alert rules, replaced by name or switched off by the policy's `alerts` block
/// (which may sit in several files; rule names are unique across them).
fn build_alerts(parsed: &[(&SourceFile, RawPolicyFile)], errors: &mut Vec<super::ConfigError>) -> Vec<AlertRule> {
    let builtin = parsed
        .iter()
        .all(|(_, raw)| raw.alerts.as_ref().is_none_or(|a| a.builtin));
    let mut own: Vec<AlertRule> = Vec::new();
    let mut own_names = Names::new(names::ALERT_RULE);
    for (src, raw) in parsed {
        let Some(alerts) = &raw.alerts else { continue };
        for (i, r) in alerts.rules.iter().enumerate() {
            match super::alerts::rule(r) {
                Ok(rule) => match own_names.claim(&rule.name, &src.path) {
                    Ok(()) => own.push(rule),
                    Err(m) => errors.push(src.error(&format!("alerts.rules[{i}].name"), m)),
                },
                Err((field, msg)) => errors.push(src.error(&format!("alerts.rules[{i}].{field}"), msg)),
            }
        }
    }
    let mut rules: Vec<AlertRule> = if builtin {
        super::alerts::builtin_rules()
            .into_iter()
            .filter(|b| !own.iter().any(|o| o.name == b.name))
            .collect()
    } else {
        Vec::new()
    };
    rules.extend(own);
    rules
}

struct BuiltAccess<'a> {
    spec: AccessSpec,
    defaults: RouteDefaults,
    /// The rate limits routes may name.
    rate_limit_names: Names<'a>,
}

/// Global defaults a route's own settings are merged onto.
struct RouteDefaults {
    validation: ValidationSpec,
    security_headers: SecurityHeadersSpec,
    signing: SigningSpec,
    inspection: InspectionSpec,
}

/// At most one file may set each policy-wide block.
fn singleton<'a, T>(
    parsed: &'a [(&'a SourceFile, RawPolicyFile)],
    field: &str,
    get: impl Fn(&'a RawPolicyFile) -> Option<&'a T>,
    errors: &mut Vec<super::ConfigError>,
) -> Option<(&'a SourceFile, &'a T)> {
    let mut found: Option<(&SourceFile, &T)> = None;
    for (src, raw) in parsed {
        if let Some(v) = get(raw) {
            if let Some((first, _)) = found {
                errors.push(src.error(
                    field,
                    format!(
                        "`{field}` is already set in {}; set it in one policy file",
                        first.path.display()
                    ),
                ));
            } else {
                found = Some((src, v));
            }
        }
    }
    found
}

/// A policy-wide block (set in at most one file) merged onto the built-in defaults; errors are
/// reported at `field.subfield`.
fn merged_default<'a, T: Default, R: 'a>(
    parsed: &'a [(&'a SourceFile, RawPolicyFile)],
    field: &str,
    get: impl Fn(&'a RawPolicyFile) -> Option<&'a R>,
    merge: fn(&T, &R) -> Result<T, (String, String)>,
    errors: &mut Vec<super::ConfigError>,
) -> T {
    let base = T::default();
    let Some((src, raw)) = singleton(parsed, field, get, errors) else {
        return base;
    };
    match merge(&base, raw) {
        Ok(merged) => merged,
        Err((sub, msg)) => {
            errors.push(src.error(&format!("{field}.{sub}"), msg));
            base
        }
    }
}

fn build_access<'a>(
    parsed: &'a [(&'a SourceFile, RawPolicyFile)],
    errors: &mut Vec<super::ConfigError>,
) -> BuiltAccess<'a> {
    let mut trusted = IpSet::default();
    let mut client_ip_header = http::HeaderName::from_static("x-forwarded-for");
    if let Some((src, c)) = singleton(parsed, "client_ip", |r| r.client_ip.as_ref(), errors) {
        match IpSet::parse(c.trusted_proxies.iter().map(String::as_str)) {
            Ok(s) => trusted = s,
            Err(e) => errors.push(src.error("client_ip.trusted_proxies", e)),
        }
        if let Some(h) = &c.header {
            match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => client_ip_header = n,
                Err(_) => errors.push(src.error("client_ip.header", format!("{h:?} is not a header name"))),
            }
        }
    }
    let (mut ip_allow, mut ip_deny) = (None, Arc::new(IpSet::default()));
    let mut ip_drop_connections = false;
    if let Some((src, f)) = singleton(parsed, "ip_filter", |r| r.ip_filter.as_ref(), errors) {
        ip_drop_connections = f.drop_connections;
        match ip_lists(f, src, "ip_filter") {
            Ok((a, d)) => {
                ip_allow = a;
                ip_deny = d.unwrap_or_default();
            }
            Err((field, msg)) => errors.push(src.error(&field, msg)),
        }
    }
    let validation = merged_default(
        parsed,
        "validation",
        |r| r.validation.as_ref(),
        merge_validation,
        errors,
    );
    let security_headers = merged_default(
        parsed,
        "security_headers",
        |r| r.security_headers.as_ref(),
        merge_headers,
        errors,
    );
    let signing = merged_default(parsed, "signing", |r| r.signing.as_ref(), merge_signing, errors);
    let inspection = merged_default(
        parsed,
        "inspection",
        |r| r.inspection.as_ref(),
        merge_inspection,
        errors,
    );
    let (mut auth_header, mut auth_bearer) = (http::HeaderName::from_static("x-api-key"), true);
    if let Some((src, a)) = singleton(parsed, "auth", |r| r.auth.as_ref(), errors) {
        if let Some(h) = &a.header {
            match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => auth_header = n,
                Err(_) => errors.push(src.error("auth.header", format!("{h:?} is not a header name"))),
            }
        }
        auth_bearer = a.bearer.unwrap_or(true);
    }

    let mut rate_limits: Vec<RateLimitSpec> = Vec::new();
    let mut rate_limit_names = Names::new(names::RATE_LIMIT);
    for (src, raw) in parsed {
        for (i, r) in raw.rate_limits.iter().enumerate() {
            let at = |f: &str| format!("rate_limits[{i}].{f}");
            if let Err(m) = rate_limit_names.check_unique(&r.name) {
                errors.push(src.error(&at("name"), m));
                continue;
            }
            if !names::valid_name(&r.name) {
                errors.push(src.error(&at("name"), NAME_RULE));
            } else if r.rate == 0 {
                errors.push(src.error(&at("rate"), "must be at least 1"));
            } else if r.per.is_zero() {
                errors.push(src.error(&at("per"), "must be longer than zero"));
            } else if r.burst == Some(0) {
                errors.push(src.error(&at("burst"), "must be at least 1"));
            } else if r.ipv6_prefix.is_some_and(|p| !(1..=128).contains(&p)) {
                errors.push(src.error(&at("ipv6_prefix"), "must be a prefix length from 1 to 128"));
            } else if r.ipv6_prefix.is_some() && r.scope != Scope::ClientIp {
                errors.push(src.error(&at("ipv6_prefix"), "applies to the client_ip scope only"));
            } else {
                rate_limit_names.insert(r.name.clone(), &src.path);
                rate_limits.push(RateLimitSpec {
                    name: r.name.clone(),
                    scope: r.scope,
                    rate: r.rate,
                    per: r.per,
                    burst: r.burst.unwrap_or(r.rate),
                    max_tracked: r.max_tracked.unwrap_or(1 << 20).max(1024),
                    ipv6_prefix: r.ipv6_prefix.unwrap_or(64),
                });
            }
        }
    }

    let mut tiers: Vec<TierSpec> = Vec::new();
    let mut tier_names = Names::new(names::TIER);
    for (src, raw) in parsed {
        for (i, t) in raw.tiers.iter().enumerate() {
            let at = |f: &str| format!("tiers[{i}].{f}");
            // The tier travels to the upstream in X-Api-Key-Tier and names metrics.
            if let Err(m) = check_name(&t.name).and_then(|()| tier_names.check_unique(&t.name)) {
                errors.push(src.error(&at("name"), m));
                continue;
            }
            if let Err((j, m)) = rate_limit_names.resolve_all(&t.rate_limits) {
                errors.push(src.error(&format!("tiers[{i}].rate_limits[{j}]"), m));
                continue;
            }
            let methods = match t.methods.as_ref().map(|m| parse_methods(m)).transpose() {
                Ok(m) => m,
                Err(e) => {
                    errors.push(src.error(&at("methods"), e));
                    continue;
                }
            };
            let routes = t.routes.clone().filter(|r| !r.iter().any(|x| x == "*"));
            tier_names.insert(t.name.clone(), &src.path);
            tiers.push(TierSpec {
                name: t.name.clone(),
                rate_limits: t.rate_limits.clone(),
                daily_quota: t.daily_quota,
                monthly_quota: t.monthly_quota,
                routes,
                methods,
            });
        }
    }

    let mut api_keys: Vec<ApiKeySpec> = Vec::new();
    let mut key_ids = Names::new(names::API_KEY);
    for (src, raw) in parsed {
        for (i, k) in raw.api_keys.iter().enumerate() {
            let at = |f: &str| format!("api_keys[{i}].{f}");
            // The id travels to the upstream in X-Api-Key-Id and names the key in /usage/{id}.
            if let Err(m) = check_name(&k.id).and_then(|()| key_ids.check_unique(&k.id)) {
                errors.push(src.error(&at("id"), m));
                continue;
            }
            if let Err(m) = tier_names.resolve(&k.tier) {
                errors.push(src.error(&at("tier"), m));
                continue;
            }
            let mut sha = [0u8; 32];
            if k.sha256.len() != 64 || hex::decode_to_slice(&k.sha256, &mut sha).is_err() {
                errors.push(src.error(&at("sha256"), "must be 64 hex digits (the SHA-256 of the key)"));
                continue;
            }
            if api_keys.iter().any(|x| x.sha256 == sha) {
                errors.push(src.error(&at("sha256"), "two API keys have the same hash"));
                continue;
            }
            let expires = match &k.expires {
                None => None,
                Some(e) => match humantime::parse_rfc3339_weak(e) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        errors.push(src.error(
                            &at("expires"),
                            format!("{e:?} is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)"),
                        ));
                        continue;
                    }
                },
            };
            key_ids.insert(k.id.clone(), &src.path);
            api_keys.push(ApiKeySpec {
                id: k.id.clone(),
                name: k.name.clone(),
                tier: k.tier.clone(),
                sha256: sha,
                created: k.created.clone(),
                expires,
                revoked: k.revoked,
            });
        }
    }

    BuiltAccess {
        spec: AccessSpec {
            trusted_proxies: Arc::new(trusted),
            client_ip_header,
            ip_allow,
            ip_deny,
            ip_drop_connections,
            auth_header,
            auth_bearer,
            security_headers: security_headers.clone(),
            signing: signing.clone(),
            inspection: inspection.clone(),
            rate_limits,
            tiers,
            api_keys,
        },
        defaults: RouteDefaults {
            validation,
            security_headers,
            signing,
            inspection,
        },
        rate_limit_names,
    }
}

type Lists = (Option<Arc<IpSet>>, Option<Arc<IpSet>>);

/// Inline entries plus list files (relative to the policy file). Absent allow = allow all.
fn ip_lists(f: &RawIpFilter, src: &SourceFile, prefix: &str) -> Result<Lists, (String, String)> {
    let base = src.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let load = |inline: &[String], files: &[PathBuf], name: &str| -> Result<Option<Arc<IpSet>>, (String, String)> {
        if inline.is_empty() && files.is_empty() {
            return Ok(None);
        }
        let mut ranges = Vec::new();
        for (i, e) in inline.iter().enumerate() {
            ranges.push(parse_cidr(e).map_err(|m| (format!("{prefix}.{name}[{i}]"), m))?);
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

fn parse_methods(list: &[String]) -> Result<Vec<http::Method>, String> {
    list.iter()
        .map(|m| {
            let up = m.to_ascii_uppercase();
            http::Method::from_bytes(up.as_bytes()).map_err(|_| format!("{m:?} is not an HTTP method"))
        })
        .collect()
}

fn merge_validation(base: &ValidationSpec, raw: &RawValidation) -> Result<ValidationSpec, (String, String)> {
    let mut v = base.clone();
    if let Some(m) = &raw.methods {
        v.methods = Some(parse_methods(m).map_err(|e| ("methods".to_string(), e))?);
    }
    if let Some(c) = &raw.content_types {
        let mut types = Vec::new();
        for t in c {
            let t = t.trim().to_ascii_lowercase();
            if t.split_once('/')
                .is_none_or(|(a, b)| a.is_empty() || b.is_empty() || t.contains(';'))
            {
                return Err((
                    "content_types".into(),
                    format!("{t:?} is not a media type like application/json"),
                ));
            }
            types.push(t);
        }
        v.content_types = Some(types);
    }
    if let Some(b) = raw.max_body {
        v.max_body = b;
    }
    if let Some(h) = raw.max_headers {
        if h == 0 {
            return Err(("max_headers".into(), "must be at least 1".into()));
        }
        v.max_headers = h;
    }
    if let Some(b) = raw.max_header_bytes {
        v.max_header_bytes = b;
    }
    if let Some(u) = raw.max_uri {
        v.max_uri = u;
    }
    Ok(v)
}

fn merge_headers(
    base: &SecurityHeadersSpec,
    raw: &RawSecurityHeaders,
) -> Result<SecurityHeadersSpec, (String, String)> {
    let mut h = base.clone();
    if let Some(r) = raw.replace_upstream {
        h.replace_upstream = r;
    }
    for (name, value) in &raw.headers {
        let lname = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ("headers".to_string(), format!("{name:?} is not a header name")))?
            .as_str()
            .to_string();
        h.headers.retain(|(n, _)| *n != lname);
        if let Some(v) = value {
            http::HeaderValue::from_str(v).map_err(|_| ("headers".to_string(), format!("invalid value for {name}")))?;
            h.headers.push((lname, v.clone()));
        }
    }
    if let Some(hsts) = &raw.strict_transport_security {
        h.hsts = hsts.clone();
    }
    if let Some(remove) = &raw.remove {
        if let Some(bad) = remove.iter().find(|r| !names::valid_name(r)) {
            return Err(("remove".to_string(), format!("{bad:?} is not a header name")));
        }
        // Framing and the gateway's own response headers are not the upstream's to remove.
        const MANAGED: [&str; 5] = [
            "connection",
            "content-length",
            "transfer-encoding",
            "x-request-id",
            "date",
        ];
        if let Some(bad) = remove
            .iter()
            .find(|r| MANAGED.iter().any(|m| r.eq_ignore_ascii_case(m)))
        {
            return Err((
                "remove".to_string(),
                format!("{bad:?} is managed by the gateway (framing, or its own header) and cannot be removed"),
            ));
        }
        h.remove = remove.iter().map(|r| r.to_ascii_lowercase()).collect();
    }
    Ok(h)
}

fn upstream_spec(u: &RawUpstream) -> Result<UpstreamSpec, (&'static str, String)> {
    check_name(&u.name).map_err(|m| ("name", m))?;
    if u.peers.is_empty() {
        return Err(("peers", "an upstream needs at least one peer".into()));
    }
    for (i, p) in u.peers.iter().enumerate() {
        if u.peers[..i].contains(p) {
            return Err(("peers", format!("peer {p} is listed twice")));
        }
    }
    if u.connect_timeout.is_zero() || u.read_timeout.is_zero() || u.write_timeout.is_zero() {
        return Err(("connect_timeout", "timeouts must be greater than zero".into()));
    }
    if u.idle_timeout.is_some_and(|t| t.is_zero()) {
        return Err((
            "idle_timeout",
            "must be greater than zero (leave it out to keep idle connections)".into(),
        ));
    }
    if let Some(t) = u.total_connect_timeout {
        if t < u.connect_timeout {
            return Err((
                "total_connect_timeout",
                "must not be shorter than connect_timeout".into(),
            ));
        }
    }
    if u.retries > 10 {
        return Err(("retries", "at most 10 retries".into()));
    }
    let health_check = match &u.health_check {
        None => None,
        Some(h) => {
            if !h.path.starts_with('/') {
                return Err(("health_check.path", "must start with '/'".into()));
            }
            if !(100..=599).contains(&h.expected_status) {
                return Err((
                    "health_check.expected_status",
                    "must be an HTTP status (100-599)".into(),
                ));
            }
            if h.healthy_threshold == 0 || h.unhealthy_threshold == 0 {
                return Err(("health_check.healthy_threshold", "thresholds must be at least 1".into()));
            }
            if h.interval < Duration::from_millis(100) {
                return Err(("health_check.interval", "must be at least 100ms".into()));
            }
            Some(HealthCheckSpec {
                path: h.path.clone(),
                host: h.host.clone(),
                interval: h.interval,
                timeout: h.timeout,
                expected_status: h.expected_status,
                healthy_threshold: h.healthy_threshold,
                unhealthy_threshold: h.unhealthy_threshold,
            })
        }
    };
    let passive = match &u.passive_ejection {
        None => PassiveSpec {
            consecutive_failures: d_three(),
            eject_for: d_eject(),
        },
        Some(p) => {
            if p.consecutive_failures == 0 {
                return Err(("passive_ejection.consecutive_failures", "must be at least 1".into()));
            }
            PassiveSpec {
                consecutive_failures: p.consecutive_failures,
                eject_for: p.eject_for,
            }
        }
    };
    Ok(UpstreamSpec {
        name: u.name.clone(),
        peers: u.peers.clone(),
        tls: u.tls.as_ref().map(|t| UpstreamTls {
            sni: t.sni.clone(),
            verify: t.verify,
        }),
        connect_timeout: u.connect_timeout,
        total_connect_timeout: u.total_connect_timeout,
        read_timeout: u.read_timeout,
        write_timeout: u.write_timeout,
        idle_timeout: u.idle_timeout,
        retries: u.retries,
        health_check,
        passive,
    })
}

fn route_spec(
    r: &RawRoute,
    upstreams: &Names,
    defaults: &RouteDefaults,
    src: &SourceFile,
    rate_limits: &Names,
) -> Result<RouteSpec, FieldError> {
    let err = |f: &str, m: String| (f.to_string(), m);
    check_name(&r.name).map_err(|m| err("name", m))?;
    if !r.path_prefix.starts_with('/') {
        return Err(err("path_prefix", "must start with '/'".into()));
    }
    // Prefixes are compared with canonical paths, so they must be canonical themselves and
    // spelled with characters that have one spelling only.
    let plain = r
        .path_prefix
        .bytes()
        .all(|b| b == b'/' || crate::canonical::path::is_unreserved(b));
    let canonical = crate::canonical::path::canonicalize(r.path_prefix.as_bytes(), &Default::default());
    if !plain || canonical.as_deref() != Ok(r.path_prefix.as_str()) {
        return Err(err(
            "path_prefix",
            "must be a plain canonical path: letters, digits, '-', '.', '_', '~' and single '/', no '.' or '..' segments".into(),
        ));
    }
    let mut hosts = Vec::new();
    for h in &r.hosts {
        hosts.push(HostPattern::parse(h).map_err(|m| err("hosts", m))?);
    }
    upstreams.resolve(&r.upstream).map_err(|m| err("upstream", m))?;
    if let Some(h) = &r.upstream_host {
        if h.is_empty() || h.chars().any(|c| c.is_control() || c == ' ') {
            return Err(err("upstream_host", "must be a host name".into()));
        }
    }
    let (ip_allow, ip_deny) = match &r.ip_filter {
        None => (None, None),
        Some(f) if f.drop_connections => {
            return Err(err(
                "ip_filter.drop_connections",
                "only the policy-wide ip_filter can drop connections (a connection has no route yet)".into(),
            ))
        }
        Some(f) => {
            let (a, d) = ip_lists(f, src, "ip_filter")?;
            (a, d)
        }
    };
    let validation = match &r.validation {
        None => defaults.validation.clone(),
        Some(v) => merge_validation(&defaults.validation, v).map_err(|(f, m)| (format!("validation.{f}"), m))?,
    };
    let security_headers = match &r.security_headers {
        None => defaults.security_headers.clone(),
        Some(h) => {
            merge_headers(&defaults.security_headers, h).map_err(|(f, m)| (format!("security_headers.{f}"), m))?
        }
    };
    let auth = match &r.auth {
        None => None,
        Some(a) => {
            if let Some(q) = &a.query_param {
                if q.is_empty() || !q.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    return Err(err("auth.query_param", "must be a plain parameter name".into()));
                }
            }
            Some(RouteAuthSpec {
                required: a.required,
                query_param: a.query_param.clone(),
            })
        }
    };
    let signing = match &r.signing {
        None => defaults.signing.clone(),
        Some(raw) => merge_signing(&defaults.signing, raw).map_err(|(f, m)| (format!("signing.{f}"), m))?,
    };
    let inspection = match &r.inspection {
        None => defaults.inspection.clone(),
        Some(raw) => merge_inspection(&defaults.inspection, raw).map_err(|(f, m)| (format!("inspection.{f}"), m))?,
    };
    rate_limits
        .resolve_all(&r.rate_limits)
        .map_err(|(i, m)| (format!("rate_limits[{i}]"), m))?;
    Ok(RouteSpec {
        name: r.name.clone(),
        hosts,
        path_prefix: r.path_prefix.clone(),
        upstream: r.upstream.clone(),
        upstream_host: r.upstream_host.clone(),
        ip_allow,
        ip_deny,
        validation,
        security_headers,
        auth,
        rate_limits: r.rate_limits.clone(),
        signing,
        inspection,
        case_insensitive: r.case_insensitive.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<PolicyConfig, ConfigErrors> {
        let src = SourceFile::from_text(Path::new("p.yaml"), text.to_string());
        PolicyConfig::from_sources(&[src])
    }

    const GOOD: &str = "upstreams:\n  - name: api\n    peers: [\"127.0.0.1:1\"]\nroutes:\n  - name: r\n    path_prefix: /\n    upstream: api\n";

    #[test]
    fn accepts_minimal_policy() {
        let p = load(GOOD).expect("valid");
        assert_eq!(p.routes.len(), 1);
        assert_eq!(p.upstreams[0].retries, 1);
    }

    #[test]
    fn unknown_field_is_located() {
        let e = load(&GOOD.replace("path_prefix", "pathprefix")).unwrap_err();
        let e = &e.0[0];
        assert_eq!(
            (e.line, e.column, e.field.as_str()),
            (6, 5, "routes[0].pathprefix"),
            "{e}"
        );
        assert!(e.message.contains("unknown field `pathprefix`"), "{e}");
    }

    #[test]
    fn missing_upstream_reference_is_located() {
        let e = load(&GOOD.replace("upstream: api", "upstream: apx")).unwrap_err();
        assert_eq!(
            e.0[0].to_string(),
            "p.yaml:7:5: routes[0].upstream: no upstream named \"apx\" (defined: [\"api\"])"
        );
    }

    #[test]
    fn security_header_removal_names_are_checked() {
        let e = load(&format!("security_headers:\n  remove: [\"x powered\"]\n{GOOD}")).unwrap_err();
        assert!(e.0[0].field.starts_with("security_headers"), "{e}");
        assert!(e.0[0].message.contains("not a header name"), "{e}");
        let e = load(&format!("security_headers:\n  remove: [X-Request-Id]\n{GOOD}")).unwrap_err();
        assert!(e.0[0].message.contains("managed by the gateway"), "{e}");
        assert!(load(&format!("security_headers:\n  remove: [X-Powered-By]\n{GOOD}")).is_ok());
    }

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

    #[test]
    fn duplicate_route_name_is_an_error() {
        let text = format!("{GOOD}  - name: r\n    path_prefix: /x\n    upstream: api\n");
        let e = load(&text).unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].field.as_str()), (8, "routes[1].name"));
    }

    #[test]
    fn bad_duration_names_the_field() {
        let text = GOOD.replace(
            "peers: [\"127.0.0.1:1\"]",
            "peers: [\"127.0.0.1:1\"]\n    connect_timeout: 5",
        );
        let e = load(&text).unwrap_err();
        assert_eq!(e.0[0].field, "upstreams[0].connect_timeout", "{}", e);
        assert_eq!((e.0[0].line, e.0[0].column), (4, 5));
    }

    #[test]
    fn idle_timeout_is_optional_and_positive() {
        let with = |v: &str| {
            GOOD.replace(
                "peers: [\"127.0.0.1:1\"]",
                &format!("peers: [\"127.0.0.1:1\"]\n    idle_timeout: {v}"),
            )
        };
        assert_eq!(load(GOOD).unwrap().upstreams[0].idle_timeout, None);
        assert_eq!(
            load(&with("90s")).unwrap().upstreams[0].idle_timeout,
            Some(Duration::from_secs(90))
        );
        let e = load(&with("0s")).unwrap_err();
        assert_eq!(e.0[0].field, "upstreams[0].idle_timeout", "{e}");
    }

    #[test]
    fn wrong_type_and_bad_peer() {
        let e = load(&GOOD.replace("[\"127.0.0.1:1\"]", "[\"127.0.0.1\"]")).unwrap_err();
        assert!(e.0[0].message.contains("not host:port"), "{e}");
        let e = load(&GOOD.replace("path_prefix: /", "path_prefix: [1]")).unwrap_err();
        assert!(e.0[0].message.contains("invalid type"), "{e}");
    }

    #[test]
    fn inspection_oversize_defaults_to_refuse_and_is_checked() {
        let p = load(&format!("inspection:\n  mode: block\n{GOOD}")).unwrap();
        assert_eq!(p.routes[0].inspection.oversize, Oversize::Refuse);
        let p = load(&format!("inspection:\n  mode: block\n  oversize: pass\n{GOOD}")).unwrap();
        assert_eq!(p.routes[0].inspection.oversize, Oversize::Pass);
        let e = load(&format!("inspection:\n  oversize: drop\n{GOOD}")).unwrap_err();
        assert_eq!(e.0[0].field, "inspection.oversize", "{e}");
        assert!(e.0[0].message.contains("not one of refuse, pass"), "{e}");
        let e = load(&format!("inspection:\n  over_size: pass\n{GOOD}")).unwrap_err();
        assert!(e.0[0].message.contains("unknown field `over_size`"), "{e}");
    }

    #[test]
    fn host_patterns() {
        let s = HostPattern::parse("*.Example.com").unwrap();
        assert!(s.matches("a.example.com"));
        assert!(s.matches("a.b.example.com"));
        assert!(!s.matches("example.com"));
        assert!(HostPattern::parse("a.*.com").is_err());
        assert!(HostPattern::Exact("x.io".into()).matches("x.io"));
    }
}
