//! `cluster:` in gateway.yaml: the Redis that several gateway instances share rate limits,
//! quotas, usage and their key directory through (see [`crate::cluster`]); the raw serde type
//! and the validated one side by side. A change needs a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::error::{ConfigError, SourceFile};

/// `cluster:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    /// `redis://host:port` addresses: one for a single node, the seeds of a Redis Cluster.
    redis: Vec<String>,
    #[serde(default)]
    mode: RedisMode,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    /// TLS to Redis (`rediss://`); the addresses may also say so themselves.
    #[serde(default)]
    tls: bool,
    /// PEM file of the CA(s) that sign Redis's certificate; default: the system's roots.
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default = "d_timeout", deserialize_with = "de::duration")]
    timeout: Duration,
    #[serde(default = "d_connect_timeout", deserialize_with = "de::duration")]
    connect_timeout: Duration,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    instances: Option<u32>,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default = "d_usage_flush", deserialize_with = "de::duration")]
    usage_flush: Duration,
    #[serde(default = "d_failures")]
    breaker_failures: u32,
    #[serde(default = "d_probe", deserialize_with = "de::duration")]
    breaker_probe: Duration,
    #[serde(default = "d_key_ttl", deserialize_with = "de::duration")]
    key_ttl: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    #[default]
    Single,
    Cluster,
}

fn d_timeout() -> Duration {
    Duration::from_millis(20)
}
fn d_connect_timeout() -> Duration {
    Duration::from_millis(500)
}
fn d_usage_flush() -> Duration {
    Duration::from_secs(2)
}
fn d_failures() -> u32 {
    5
}
fn d_probe() -> Duration {
    Duration::from_millis(250)
}
fn d_key_ttl() -> Duration {
    Duration::from_secs(60)
}

/// Where the password comes from; read at start, never logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    File(PathBuf),
    Env(String),
}

/// Validated `cluster:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub addresses: Vec<String>,
    pub mode: RedisMode,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: bool,
    /// With TLS: the CA(s) Redis's certificate must chain to (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// The deadline of every Redis call on a request's path.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// This instance's name in the fleet (default: the host name).
    pub instance: String,
    /// Fleet size for the fail-open divisor; `None`: the live instances last seen in Redis.
    pub instances: Option<u32>,
    /// If set, only these instances' keys are served in the fleet's directory (and counted).
    pub members: Vec<String>,
    pub usage_flush: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// While open, one call is let through this often to see if Redis is back.
    pub breaker_probe: Duration,
    /// How long an instance's public keys stay in the fleet's directory without a refresh.
    pub key_ttl: Duration,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl RawCluster {
    pub(super) fn validate(
        &self,
        file: &SourceFile,
        resolve: &dyn Fn(&Path) -> PathBuf,
        errors: &mut Vec<ConfigError>,
    ) -> ClusterConfig {
        if self.redis.is_empty() {
            errors.push(file.error("cluster.redis", "at least one redis:// address"));
        }
        for (i, a) in self.redis.iter().enumerate() {
            let ok = (a.starts_with("redis://") || a.starts_with("rediss://")) && redis::parse_redis_url(a).is_some();
            if !ok {
                errors.push(file.error(
                    &format!("cluster.redis[{i}]"),
                    "a redis://host:port or rediss://host:port address",
                ));
            }
            if a.contains('#') {
                errors.push(file.error(
                    &format!("cluster.redis[{i}]"),
                    "no '#' fragment (`#insecure` would switch certificate checks off)",
                ));
            }
            if a.contains('@') {
                errors.push(file.error(
                    &format!("cluster.redis[{i}]"),
                    "no credentials in the address; use cluster.password_file or cluster.password_env",
                ));
            }
        }
        if self.mode == RedisMode::Single && self.redis.len() > 1 {
            errors.push(file.error(
                "cluster.redis",
                "one address for mode: single (seeds need mode: cluster)",
            ));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            errors.push(file.error("cluster.password_file", "set password_file or password_env, not both"));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(5) {
            errors.push(file.error("cluster.timeout", "between 1ms and 5s"));
        }
        if self.connect_timeout.is_zero() {
            errors.push(file.error("cluster.connect_timeout", "must be longer than zero"));
        }
        if self.usage_flush < Duration::from_millis(100) {
            errors.push(file.error("cluster.usage_flush", "at least 100ms"));
        }
        if self.breaker_failures == 0 {
            errors.push(file.error("cluster.breaker_failures", "at least 1"));
        }
        if self.breaker_probe < Duration::from_millis(10) {
            errors.push(file.error("cluster.breaker_probe", "at least 10ms"));
        }
        if self.key_ttl < Duration::from_secs(5) {
            errors.push(file.error("cluster.key_ttl", "at least 5s"));
        }
        if self.ca_file.is_some() && !(self.tls || self.redis.iter().any(|a| a.starts_with("rediss://"))) {
            errors.push(file.error("cluster.ca_file", "applies with tls: true or rediss:// addresses"));
        }
        if self.instances == Some(0) {
            errors.push(file.error("cluster.instances", "at least 1"));
        }
        let instance = self.instance.clone().unwrap_or_else(host_name);
        if instance.is_empty()
            || instance.len() > 64
            || !instance
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            errors.push(file.error("cluster.instance", "1 to 64 letters, digits, '-', '_' or '.'"));
        }
        if !self.members.is_empty() && !self.members.contains(&instance) {
            errors.push(file.error("cluster.members", "must list this instance (cluster.instance) too"));
        }
        ClusterConfig {
            addresses: self.redis.clone(),
            mode: self.mode,
            username: self.username.clone(),
            password: match (&self.password_file, &self.password_env) {
                (Some(f), _) => Some(Secret::File(resolve(f))),
                (None, Some(e)) => Some(Secret::Env(e.clone())),
                (None, None) => None,
            },
            tls: self.tls || self.redis.iter().any(|a| a.starts_with("rediss://")),
            ca_file: self.ca_file.as_deref().map(resolve),
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            instance,
            instances: self.instances,
            members: self.members.clone(),
            usage_flush: self.usage_flush,
            breaker_failures: self.breaker_failures,
            breaker_probe: self.breaker_probe,
            key_ttl: self.key_ttl,
        }
    }
}
