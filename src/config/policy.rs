//! `policies/*.yaml`: the policy, hot-reloadable. Several files merge into one policy, and
//! names must be unique across all of them. This module reads the files and assembles
//! [`PolicyConfig`] from the topic modules, each of which keeps its raw serde types and its
//! validated types side by side: `upstreams`, `routes`, `access`, `validation`,
//! `security_headers`, `signing`, `inspection`, `normalization`, `alerts`; names, uniqueness and
//! references go through `names`.

use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::access::{self, AccessSpec, RawApiKey, RawAuth, RawClientIp, RawIpFilter, RawRateLimit, RawTier};
use super::alerts::{self, AlertRule, RawAlerts};
use super::error::{ConfigError, ConfigErrors, FieldError, SourceFile};
use super::gateway::GatewayConfig;
use super::inspection::{self, RawInspection, RawInspectionRule};
use super::names::located;
use super::normalization::RawNormalization;
use super::routes::{self, RawRoute, RouteContext, RouteDefaults, RouteSpec};
use super::security_headers::{self, RawSecurityHeaders};
use super::signing::{self, RawSigning};
use super::upstreams::{self, RawUpstream, UpstreamSpec};
use super::validation::{self, RawValidation};

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
    normalization: Option<RawNormalization>,
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
        let (p, e) = (&parsed, &mut errors);

        // Policy-wide blocks, in the order their errors are reported.
        let (trusted_proxies, client_ip_header) =
            access::client_ip(singleton(p, "client_ip", |r| r.client_ip.as_ref(), e), e);
        let (ip_allow, ip_deny, ip_drop_connections) =
            access::ip_filter(singleton(p, "ip_filter", |r| r.ip_filter.as_ref(), e), e);
        let defaults = RouteDefaults {
            validation: merged_default(p, "validation", |r| r.validation.as_ref(), validation::merge, e),
            security_headers: merged_default(
                p,
                "security_headers",
                |r| r.security_headers.as_ref(),
                security_headers::merge,
                e,
            ),
            signing: merged_default(p, "signing", |r| r.signing.as_ref(), signing::merge, e),
            inspection: merged_default(p, "inspection", |r| r.inspection.as_ref(), inspection::merge, e),
        };
        let (auth_header, auth_bearer) = access::auth(singleton(p, "auth", |r| r.auth.as_ref(), e), e);
        let (rate_limits, rate_limit_names) = access::rate_limits(located(p, |r| &r.rate_limits), e);
        let (tiers, tier_names) = access::tiers(located(p, |r| &r.tiers), &rate_limit_names, e);
        let api_keys = access::api_keys(located(p, |r| &r.api_keys), &tier_names, e);
        let mut normalization = merged_default(
            p,
            "normalization",
            |r| r.normalization.as_ref(),
            |_, raw| crate::canonical::NormalizationSpec::try_from(raw),
            e,
        );

        // Upstreams first, so routes can refer to pools from any file.
        let (upstreams, upstream_names) = upstreams::build(located(p, |r| &r.upstreams), e);
        let cx = RouteContext {
            upstreams: &upstream_names,
            rate_limits: &rate_limit_names,
            defaults: &defaults,
            case_insensitive: normalization.case_insensitive,
        };
        let (routes, route_names) = routes::build(located(p, |r| &r.routes), &cx, e);
        access::check_tier_routes(located(p, |r| &r.tiers), &route_names, e);

        let alerts = alerts::build(p.iter().filter_map(|(src, r)| Some((*src, r.alerts.as_ref()?))), e);
        let inspection_rules = inspection::rules(located(p, |r| &r.inspection_rules), e);
        // Every `disabled_rules` id (policy-wide and per route) names a built-in or an own rule.
        let known = inspection::known_rule_ids(&inspection_rules);
        for (src, raw) in p {
            let disabled = |i: Option<&RawInspection>| i.and_then(|i| i.disabled_rules.clone());
            let mut lists: Vec<(String, Vec<u32>)> = Vec::new();
            if let Some(d) = disabled(raw.inspection.as_ref()) {
                lists.push(("inspection.disabled_rules".into(), d));
            }
            for (i, r) in raw.routes.iter().enumerate() {
                if let Some(d) = disabled(r.inspection.as_ref()) {
                    lists.push((format!("routes[{i}].inspection.disabled_rules"), d));
                }
            }
            for (field, list) in lists {
                if let Err(m) = inspection::check_disabled(&list, &known) {
                    e.push(src.error(&field, m));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let digest = hasher.finalize();
        // A backend that folds case with Unicode rules reads `ſ` as `s`: refuse such paths
        // wherever a route matches case-insensitively.
        normalization.path.reject_case_fold_lookalikes = routes.iter().any(|r| r.case_insensitive);
        let RouteDefaults {
            security_headers,
            signing,
            inspection,
            ..
        } = defaults;
        Ok(PolicyConfig {
            normalization,
            routes,
            upstreams,
            access: AccessSpec {
                trusted_proxies: Arc::new(trusted_proxies),
                client_ip_header,
                ip_allow,
                ip_deny,
                ip_drop_connections,
                auth_header,
                auth_bearer,
                security_headers,
                signing,
                inspection,
                rate_limits,
                tiers,
                api_keys,
            },
            alerts,
            inspection_rules,
            hash: hex::encode(&digest[..8]),
            files: sources.iter().map(|s| s.path.clone()).collect(),
        })
    }
}

/// At most one file may set each policy-wide block.
fn singleton<'a, T>(
    parsed: &'a [(&'a SourceFile, RawPolicyFile)],
    field: &str,
    get: impl Fn(&'a RawPolicyFile) -> Option<&'a T>,
    errors: &mut Vec<ConfigError>,
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
    merge: fn(&T, &R) -> Result<T, FieldError>,
    errors: &mut Vec<ConfigError>,
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

/// The policy of one file `p.yaml` with `text`, for the topic modules' tests.
#[cfg(test)]
pub(super) mod testing {
    use super::*;

    pub const GOOD: &str = "upstreams:\n  - name: api\n    peers: [\"127.0.0.1:1\"]\nroutes:\n  - name: r\n    path_prefix: /\n    upstream: api\n";

    pub fn load(text: &str) -> Result<PolicyConfig, ConfigErrors> {
        let src = SourceFile::from_text(std::path::Path::new("p.yaml"), text.to_string());
        PolicyConfig::from_sources(&[src])
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{load, GOOD};

    #[test]
    fn accepts_minimal_policy() {
        let p = load(GOOD).expect("valid");
        assert_eq!(p.routes.len(), 1);
        assert_eq!(p.upstreams[0].retries, 1);
    }
}
