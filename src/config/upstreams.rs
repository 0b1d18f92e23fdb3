//! The policy's `upstreams`: pools of peers, their timeouts, health checks and passive ejection.
//! A pool stands alone, so the raw serde type converts with `TryFrom`; the pools of every file
//! are collected by `build`, which keeps their names unique.

use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::error::{ConfigError, FieldError};
use super::names::{self, check_name, Located, Names};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: String,
    #[serde(deserialize_with = "de::host_ports")]
    pub peers: Vec<String>,
    #[serde(default)]
    pub tls: Option<RawUpstreamTls>,
    #[serde(default = "d_connect", deserialize_with = "de::duration")]
    pub connect_timeout: Duration,
    #[serde(default, deserialize_with = "de::opt_duration")]
    pub total_connect_timeout: Option<Duration>,
    #[serde(default = "d_read", deserialize_with = "de::duration")]
    pub read_timeout: Duration,
    #[serde(default = "d_read", deserialize_with = "de::duration")]
    pub write_timeout: Duration,
    #[serde(default, deserialize_with = "de::opt_duration")]
    pub idle_timeout: Option<Duration>,
    #[serde(default = "d_retries")]
    pub retries: u32,
    #[serde(default)]
    pub health_check: Option<RawHealthCheck>,
    #[serde(default)]
    pub passive_ejection: Option<RawPassive>,
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
pub struct RawUpstreamTls {
    /// Server name sent in SNI and checked in the certificate.
    pub sni: String,
    #[serde(default = "default_true")]
    pub verify: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    #[serde(default = "d_hc_path")]
    pub path: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "d_hc_interval", deserialize_with = "de::duration")]
    pub interval: Duration,
    #[serde(default = "d_hc_timeout", deserialize_with = "de::duration")]
    pub timeout: Duration,
    #[serde(default = "d_status")]
    pub expected_status: u16,
    #[serde(default = "d_two")]
    pub healthy_threshold: u32,
    #[serde(default = "d_two")]
    pub unhealthy_threshold: u32,
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
pub struct RawPassive {
    #[serde(default = "d_three")]
    pub consecutive_failures: u32,
    #[serde(default = "d_eject", deserialize_with = "de::duration")]
    pub eject_for: Duration,
}

fn d_three() -> u32 {
    3
}

fn d_eject() -> Duration {
    Duration::from_secs(10)
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

impl TryFrom<&RawUpstream> for UpstreamSpec {
    type Error = FieldError;

    fn try_from(u: &RawUpstream) -> Result<UpstreamSpec, FieldError> {
        check_name(&u.name).map_err(|m| ("name".to_string(), m.to_string()))?;
        if u.peers.is_empty() {
            return Err(("peers".to_string(), "an upstream needs at least one peer".into()));
        }
        for (i, p) in u.peers.iter().enumerate() {
            if u.peers[..i].contains(p) {
                return Err(("peers".to_string(), format!("peer {p} is listed twice")));
            }
        }
        if u.connect_timeout.is_zero() || u.read_timeout.is_zero() || u.write_timeout.is_zero() {
            return Err((
                "connect_timeout".to_string(),
                "timeouts must be greater than zero".into(),
            ));
        }
        if u.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err((
                "idle_timeout".to_string(),
                "must be greater than zero (leave it out to keep idle connections)".into(),
            ));
        }
        if let Some(t) = u.total_connect_timeout {
            if t < u.connect_timeout {
                return Err((
                    "total_connect_timeout".to_string(),
                    "must not be shorter than connect_timeout".into(),
                ));
            }
        }
        if u.retries > 10 {
            return Err(("retries".to_string(), "at most 10 retries".into()));
        }
        let health_check = match &u.health_check {
            None => None,
            Some(h) => {
                if !h.path.starts_with('/') {
                    return Err(("health_check.path".to_string(), "must start with '/'".into()));
                }
                if !(100..=599).contains(&h.expected_status) {
                    return Err((
                        "health_check.expected_status".to_string(),
                        "must be an HTTP status (100-599)".into(),
                    ));
                }
                if h.healthy_threshold == 0 || h.unhealthy_threshold == 0 {
                    return Err((
                        "health_check.healthy_threshold".to_string(),
                        "thresholds must be at least 1".into(),
                    ));
                }
                if h.interval < Duration::from_millis(100) {
                    return Err(("health_check.interval".to_string(), "must be at least 100ms".into()));
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
                    return Err((
                        "passive_ejection.consecutive_failures".to_string(),
                        "must be at least 1".into(),
                    ));
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
}

/// The pools of every file, and their names (those of invalid pools too: a route that names one
/// is not reported a second time).
pub(super) fn build<'a>(
    items: impl Iterator<Item = Located<'a, RawUpstream>>,
    errors: &mut Vec<ConfigError>,
) -> (Vec<UpstreamSpec>, Names<'a>) {
    let mut upstreams = Vec::new();
    let mut taken = Names::new(names::UPSTREAM);
    for (src, i, u) in items {
        let at = |f: &str| format!("upstreams[{i}].{f}");
        if let Err(m) = taken.claim(&u.name, &src.path) {
            errors.push(src.error(&at("name"), m));
            continue;
        }
        match UpstreamSpec::try_from(u) {
            Ok(spec) => upstreams.push(spec),
            Err((field, msg)) => errors.push(src.error(&at(&field), msg)),
        }
    }
    (upstreams, taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::policy::testing::{load, GOOD};

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
}
