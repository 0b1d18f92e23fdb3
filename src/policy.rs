//! The running policy: an immutable snapshot built from [`PolicyConfig`], swapped whole by a
//! reload (`ArcSwap<Policy>`). A request loads one snapshot when it starts and keeps it to the
//! end, so it never sees half of an old policy and half of a new one.
//!
//! Route selection: the most specific host first (exact, then the longest `*.` wildcard, then
//! routes without hosts), and within that the longest path prefix. Prefixes match the
//! canonical path's bytes (ignoring ASCII case on `case_insensitive` routes), like nginx
//! `location` and Envoy `prefix`: write `/api/` rather than `/api` to stop at a segment. A
//! prefix ending in `/` also matches the path without it (`/api` for `/api/`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ApiKeySpec, HostPattern, PolicyConfig, RateLimitSpec, RouteSpec, TierSpec};
use crate::filters::rate_limit::{LimiterRegistry, RateLimiter};
use crate::filters::security_headers::CompiledHeaders;
use crate::telemetry::metrics::RouteMetrics;
use crate::upstream::{PeerRegistry, Pool};
use crate::usage::{KeyUsage, UsageStore};

pub struct Route {
    pub spec: RouteSpec,
    pub pool: Arc<Pool>,
    pub metrics: RouteMetrics,
    pub limiters: Vec<Rule>,
    /// The `Allow` header value for 405 answers.
    pub allow_header: String,
    pub security_headers: CompiledHeaders,
    /// Request inspection's compiled rules; `None` when the route's mode is `off`.
    pub inspector: Option<Arc<crate::inspect::Inspector>>,
}

/// A rate-limit rule with its (reload-surviving) state.
pub struct Rule {
    pub spec: RateLimitSpec,
    pub limiter: Arc<RateLimiter>,
    /// `shared: true` in cluster mode: the bucket in Redis (`limiter` is then unused).
    pub shared: Option<Arc<crate::cluster::limit::SharedLimit>>,
    /// This rule's item of the `RateLimit-Policy` field, made once.
    pub policy_item: String,
}

pub struct Tier {
    pub spec: TierSpec,
    pub limiters: Vec<Rule>,
}

pub struct ApiKey {
    pub spec: ApiKeySpec,
    /// The key's id and tier as the header values the upstream receives (parsed once).
    pub id_value: http::HeaderValue,
    pub tier_value: http::HeaderValue,
    pub tier: Arc<Tier>,
    pub usage: Arc<KeyUsage>,
}

/// State that outlives policy snapshots: peer health, rate-limit counters, key usage.
pub struct Registries {
    pub peers: PeerRegistry,
    pub limiters: LimiterRegistry,
    pub usage: Arc<UsageStore>,
    /// Cluster mode's Redis (`cluster:` in gateway.yaml).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Shared rate limits (cluster mode), by rule.
    pub shared: crate::cluster::limit::SharedRegistry,
}

struct Entry {
    host: Option<HostPattern>,
    route: Arc<Route>,
}

/// Why a validated config could not become a running policy (what validation cannot know:
/// names that do not resolve, rules that do not compile).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    #[error("upstream {pool}: {message}")]
    Upstream { pool: String, message: String },
    #[error("api key {key}: {message}")]
    ApiKey { key: String, message: String },
    #[error("route {route}: no upstream {upstream}")]
    NoUpstream { route: String, upstream: String },
    #[error("inspection rules: {0}")]
    Inspection(crate::inspect::CompileError),
}

pub struct Policy {
    pub generation: u64,
    pub config: PolicyConfig,
    pub routes: Vec<Arc<Route>>,
    entries: Vec<Entry>,
    pub pools: HashMap<String, Arc<Pool>>,
    pub keys_by_hash: HashMap<[u8; 32], Arc<ApiKey>>,
    /// Metrics for requests that matched no route.
    pub unrouted: RouteMetrics,
    /// Security headers of responses that match no route.
    pub unrouted_headers: CompiledHeaders,
    /// Cluster mode's Redis, for shared quotas.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Policy {
    pub fn build(config: PolicyConfig, generation: u64, reg: &Registries) -> Result<Policy, PolicyError> {
        let pools = reg
            .peers
            .build_pools(&config.upstreams)
            .map_err(|(pool, message)| PolicyError::Upstream { pool, message })?;
        let access = &config.access;
        let rule = |name: &str| -> Option<Rule> {
            let spec = access.rate_limits.iter().find(|r| r.name == name)?.clone();
            let limiter = reg.limiters.get(&spec.fingerprint(), || {
                RateLimiter::new(spec.rate, spec.per, spec.burst, spec.max_tracked)
            });
            let policy_item = format!("\"{}\";q={};w={}", spec.name, spec.rate, spec.per.as_secs().max(1));
            let shared = match &reg.cluster {
                Some(c) if spec.shared => Some(reg.shared.get(c, &spec)),
                _ => None,
            };
            Some(Rule {
                spec,
                limiter,
                shared,
                policy_item,
            })
        };
        let live: Vec<String> = access.rate_limits.iter().map(|r| r.fingerprint()).collect();
        reg.limiters.retain(&live);
        reg.shared.retain(&live);
        let mut tiers = HashMap::new();
        for t in &access.tiers {
            let limiters = t.rate_limits.iter().filter_map(|n| rule(n)).collect();
            tiers.insert(
                t.name.clone(),
                Arc::new(Tier {
                    spec: t.clone(),
                    limiters,
                }),
            );
        }
        let mut keys_by_hash = HashMap::new();
        for k in &access.api_keys {
            // Invariant: validation checked that every key names an existing tier.
            let tier = tiers.get(&k.tier).cloned().ok_or_else(|| PolicyError::ApiKey {
                key: k.id.clone(),
                message: format!("no tier {}", k.tier),
            })?;
            let value = |v: &str| {
                http::HeaderValue::from_str(v).map_err(|_| PolicyError::ApiKey {
                    key: k.id.clone(),
                    message: format!("{v:?} cannot be sent in a header"),
                })
            };
            keys_by_hash.insert(
                k.sha256,
                Arc::new(ApiKey {
                    id_value: value(&k.id)?,
                    tier_value: value(&k.tier)?,
                    spec: k.clone(),
                    tier,
                    usage: reg.usage.entry(&k.id),
                }),
            );
        }
        let mut routes = Vec::new();
        let mut entries = Vec::new();
        // One compiled rule set per distinct (paranoia, disabled rules), shared by routes.
        let mut inspectors: HashMap<
            (u8, Vec<u32>),
            Result<Arc<crate::inspect::Inspector>, crate::inspect::CompileError>,
        > = HashMap::new();
        for spec in &config.routes {
            // Invariant: validation checked that every route names an existing upstream.
            let pool = pools
                .get(&spec.upstream)
                .cloned()
                .ok_or_else(|| PolicyError::NoUpstream {
                    route: spec.name.clone(),
                    upstream: spec.upstream.clone(),
                })?;
            let limiters = spec.rate_limits.iter().filter_map(|n| rule(n)).collect();
            let allow_header = spec
                .validation
                .methods
                .as_ref()
                .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let security_headers = CompiledHeaders::compile(&spec.security_headers);
            let insp = &spec.inspection;
            let inspector = (insp.mode != crate::config::inspection::InspectionMode::Off).then(|| {
                inspectors
                    .entry((insp.paranoia, insp.disabled_rules.clone()))
                    .or_insert_with(|| {
                        crate::inspect::Inspector::with_rules(
                            insp.paranoia,
                            &insp.disabled_rules,
                            &config.inspection_rules,
                        )
                        .map(Arc::new)
                    })
                    .clone()
            });
            let inspector = inspector.transpose().map_err(PolicyError::Inspection)?;
            let route = Arc::new(Route {
                metrics: RouteMetrics::new(&spec.name),
                spec: spec.clone(),
                pool,
                limiters,
                allow_header,
                security_headers,
                inspector,
            });
            if spec.hosts.is_empty() {
                entries.push(Entry {
                    host: None,
                    route: route.clone(),
                });
            }
            for h in &spec.hosts {
                entries.push(Entry {
                    host: Some(h.clone()),
                    route: route.clone(),
                });
            }
            routes.push(route);
        }
        entries.sort_by_key(|e| {
            let host_rank = match &e.host {
                Some(HostPattern::Exact(_)) => (2, 0),
                Some(HostPattern::Suffix(s)) => (1, s.len()),
                None => (0, 0),
            };
            std::cmp::Reverse((host_rank, e.route.spec.path_prefix.len()))
        });
        let unrouted_headers = CompiledHeaders::compile(&config.access.security_headers);
        Ok(Policy {
            generation,
            config,
            routes,
            entries,
            pools,
            keys_by_hash,
            unrouted: RouteMetrics::new("none"),
            unrouted_headers,
            cluster: reg.cluster.clone(),
        })
    }

    /// The route for `host` and `path`, both canonical ([`crate::canonical`]).
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.entries
            .iter()
            .find(|e| {
                let spec = &e.route.spec;
                e.host.as_ref().is_none_or(|h| h.matches(host))
                    && crate::canonical::path::under_prefix(path, &spec.path_prefix, spec.case_insensitive)
            })
            .map(|e| &e.route)
    }

    pub fn hash(&self) -> &str {
        &self.config.hash
    }
}

/// The policy of YAML `text`, with registries of its own (fresh rate limits and usage), for
/// unit tests.
#[cfg(test)]
pub(crate) fn test_policy(text: &str) -> Policy {
    let src = crate::config::error::SourceFile::from_text(std::path::Path::new("p.yaml"), text.to_string());
    let cfg = PolicyConfig::from_sources(&[src]).expect("valid policy");
    let reg = Registries {
        peers: PeerRegistry::default(),
        limiters: LimiterRegistry::default(),
        usage: Arc::new(UsageStore::open(None).unwrap()),
        cluster: None,
        shared: Default::default(),
    };
    Policy::build(cfg, 1, &reg).expect("builds")
}

/// An `api_keys` entry of YAML for unit tests: key `id` of `tier`, its hash `n` 32 times.
#[cfg(test)]
pub(crate) fn test_key_entry(id: &str, tier: &str, n: u8) -> String {
    format!(
        "  - {{ id: {id}, name: t, tier: {tier}, sha256: \"{}\", created: '2026-01-01T00:00:00Z' }}\n",
        hex::encode([n; 32])
    )
}

/// The key `id` of policy `p`, for unit tests.
#[cfg(test)]
pub(crate) fn test_key(p: &Policy, id: &str) -> Option<Arc<ApiKey>> {
    p.keys_by_hash.values().find(|k| k.spec.id == id).cloned()
}

#[cfg(test)]
mod tests {
    use super::test_policy as policy;

    #[test]
    fn longest_prefix_and_host_specificity() {
        let p = policy(
            r#"
upstreams:
  - name: u
    peers: ["127.0.0.1:9"]
routes:
  - { name: root, path_prefix: /, upstream: u }
  - { name: api, path_prefix: /api/, upstream: u }
  - { name: api-v2, path_prefix: /api/v2/, upstream: u }
  - { name: wild, hosts: ["*.example.com"], path_prefix: /, upstream: u }
  - { name: exact, hosts: ["shop.example.com"], path_prefix: /cart, upstream: u }
"#,
        );
        let r = |h: &str, path: &str| p.route(h, path).map(|r| r.spec.name.clone());
        assert_eq!(r("x.org", "/"), Some("root".into()));
        assert_eq!(r("x.org", "/api/v1"), Some("api".into()));
        assert_eq!(r("x.org", "/api/v2/users"), Some("api-v2".into()));
        assert_eq!(r("a.example.com", "/api/v2/users"), Some("wild".into()));
        assert_eq!(r("shop.example.com", "/cart/1"), Some("exact".into()));
        assert_eq!(r("shop.example.com", "/other"), Some("wild".into()));
        assert_eq!(r("example.com", "/api/x"), Some("api".into()));
    }

    #[test]
    fn no_route_when_nothing_matches() {
        let p = policy("upstreams:\n  - name: u\n    peers: [\"127.0.0.1:9\"]\nroutes:\n  - { name: a, path_prefix: /a, upstream: u }\n");
        assert!(p.route("h", "/b").is_none());
    }
}
