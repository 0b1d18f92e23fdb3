//! `policies/*.yaml`: routes and upstream pools. Hot-reloadable; several files merge into one
//! policy, and names must be unique across all of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::de;
use super::error::{ConfigErrors, SourceFile};
use super::gateway::GatewayConfig;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicyFile {
    #[serde(default)]
    upstreams: Vec<RawUpstream>,
    #[serde(default)]
    routes: Vec<RawRoute>,
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
    pub retries: u32,
    pub health_check: Option<HealthCheckSpec>,
    pub passive: PassiveSpec,
}

/// The validated policy, merged from every policy file.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub routes: Vec<RouteSpec>,
    pub upstreams: Vec<UpstreamSpec>,
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
            let empty = src.text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
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

        // Upstreams first, so routes can refer to pools from any file.
        let mut upstreams = Vec::new();
        let mut upstream_at: HashMap<String, (&Path, usize)> = HashMap::new();
        for (src, raw) in &parsed {
            for (i, u) in raw.upstreams.iter().enumerate() {
                let at = |f: &str| format!("upstreams[{i}].{f}");
                if let Some((file, _)) = upstream_at.get(&u.name) {
                    errors.push(src.error(&at("name"), format!("duplicate upstream name {:?} (first defined in {})", u.name, file.display())));
                    continue;
                }
                upstream_at.insert(u.name.clone(), (&src.path, i));
                match upstream_spec(u) {
                    Ok(spec) => upstreams.push(spec),
                    Err((field, msg)) => errors.push(src.error(&at(field), msg)),
                }
            }
        }

        let mut routes = Vec::new();
        let mut route_at: HashMap<String, &Path> = HashMap::new();
        let mut match_keys: HashMap<(Vec<HostPattern>, String), String> = HashMap::new();
        for (src, raw) in &parsed {
            for (i, r) in raw.routes.iter().enumerate() {
                let at = |f: &str| format!("routes[{i}].{f}");
                if let Some(file) = route_at.get(&r.name) {
                    errors.push(src.error(&at("name"), format!("duplicate route name {:?} (first defined in {})", r.name, file.display())));
                    continue;
                }
                route_at.insert(r.name.clone(), &src.path);
                match route_spec(r, &upstream_at) {
                    Ok(spec) => {
                        let mut key_hosts = spec.hosts.clone();
                        key_hosts.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
                        let key = (key_hosts, spec.path_prefix.clone());
                        if let Some(other) = match_keys.get(&key) {
                            errors.push(src.error(&at("path_prefix"), format!("route {:?} matches exactly the same hosts and prefix as route {other:?}", r.name)));
                        } else {
                            match_keys.insert(key, r.name.clone());
                        }
                        routes.push(spec);
                    }
                    Err((field, msg)) => errors.push(src.error(&at(field), msg)),
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let digest = hasher.finalize();
        Ok(PolicyConfig {
            routes,
            upstreams,
            hash: hex::encode(&digest[..8]),
            files: sources.iter().map(|s| s.path.clone()).collect(),
        })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

type FieldError = (&'static str, String);

fn upstream_spec(u: &RawUpstream) -> Result<UpstreamSpec, FieldError> {
    if !valid_name(&u.name) {
        return Err(("name", "names use letters, digits, '-' and '_' (at most 64)".into()));
    }
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
    if let Some(t) = u.total_connect_timeout {
        if t < u.connect_timeout {
            return Err(("total_connect_timeout", "must not be shorter than connect_timeout".into()));
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
                return Err(("health_check.expected_status", "must be an HTTP status (100-599)".into()));
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
        None => PassiveSpec { consecutive_failures: d_three(), eject_for: d_eject() },
        Some(p) => {
            if p.consecutive_failures == 0 {
                return Err(("passive_ejection.consecutive_failures", "must be at least 1".into()));
            }
            PassiveSpec { consecutive_failures: p.consecutive_failures, eject_for: p.eject_for }
        }
    };
    Ok(UpstreamSpec {
        name: u.name.clone(),
        peers: u.peers.clone(),
        tls: u.tls.as_ref().map(|t| UpstreamTls { sni: t.sni.clone(), verify: t.verify }),
        connect_timeout: u.connect_timeout,
        total_connect_timeout: u.total_connect_timeout,
        read_timeout: u.read_timeout,
        write_timeout: u.write_timeout,
        retries: u.retries,
        health_check,
        passive,
    })
}

fn route_spec(r: &RawRoute, upstreams: &HashMap<String, (&Path, usize)>) -> Result<RouteSpec, FieldError> {
    if !valid_name(&r.name) {
        return Err(("name", "names use letters, digits, '-' and '_' (at most 64)".into()));
    }
    if !r.path_prefix.starts_with('/') {
        return Err(("path_prefix", "must start with '/'".into()));
    }
    if r.path_prefix.contains(['?', '#']) || r.path_prefix.chars().any(|c| c.is_control() || c == ' ') {
        return Err(("path_prefix", "must be a plain path (no query, fragment, spaces)".into()));
    }
    let mut hosts = Vec::new();
    for h in &r.hosts {
        hosts.push(HostPattern::parse(h).map_err(|m| ("hosts", m))?);
    }
    if !upstreams.contains_key(&r.upstream) {
        let mut known: Vec<&String> = upstreams.keys().collect();
        known.sort();
        return Err(("upstream", format!("no upstream named {:?} (defined: {known:?})", r.upstream)));
    }
    if let Some(h) = &r.upstream_host {
        if h.is_empty() || h.chars().any(|c| c.is_control() || c == ' ') {
            return Err(("upstream_host", "must be a host name".into()));
        }
    }
    Ok(RouteSpec {
        name: r.name.clone(),
        hosts,
        path_prefix: r.path_prefix.clone(),
        upstream: r.upstream.clone(),
        upstream_host: r.upstream_host.clone(),
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
        assert_eq!((e.line, e.column, e.field.as_str()), (6, 5, "routes[0].pathprefix"), "{e}");
        assert!(e.message.contains("unknown field `pathprefix`"), "{e}");
    }

    #[test]
    fn missing_upstream_reference_is_located() {
        let e = load(&GOOD.replace("upstream: api", "upstream: apx")).unwrap_err();
        assert_eq!(e.0[0].to_string(), "p.yaml:7:5: routes[0].upstream: no upstream named \"apx\" (defined: [\"api\"])");
    }

    #[test]
    fn duplicate_route_name_is_an_error() {
        let text = format!("{GOOD}  - name: r\n    path_prefix: /x\n    upstream: api\n");
        let e = load(&text).unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].field.as_str()), (8, "routes[1].name"));
    }

    #[test]
    fn bad_duration_names_the_field() {
        let text = GOOD.replace("peers: [\"127.0.0.1:1\"]", "peers: [\"127.0.0.1:1\"]\n    connect_timeout: 5");
        let e = load(&text).unwrap_err();
        assert_eq!(e.0[0].field, "upstreams[0].connect_timeout", "{}", e);
        assert_eq!((e.0[0].line, e.0[0].column), (4, 5));
    }

    #[test]
    fn wrong_type_and_bad_peer() {
        let e = load(&GOOD.replace("[\"127.0.0.1:1\"]", "[\"127.0.0.1\"]")).unwrap_err();
        assert!(e.0[0].message.contains("not host:port"), "{e}");
        let e = load(&GOOD.replace("path_prefix: /", "path_prefix: [1]")).unwrap_err();
        assert!(e.0[0].message.contains("invalid type"), "{e}");
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
