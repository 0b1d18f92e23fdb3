//! `gateway.yaml`: process-level settings (sockets, threads, data directory, logs, policy files).
//! Changing anything here except `policies` needs a restart; a reload reports such changes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::cluster::{ClusterConfig, RawCluster};
use super::de;
use super::error::{ConfigError, ConfigErrors, SourceFile};
use super::monitoring::MonitoringConfig;
use super::monitoring::RawMonitoring;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listeners: Vec<RawListener>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    worker_threads: Option<usize>,
    data_dir: PathBuf,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    shutdown: RawShutdown,
    policies: Vec<PathBuf>,
    #[serde(default)]
    reload: RawReload,
    #[serde(default)]
    usage: RawUsage,
    #[serde(default)]
    keys: RawKeys,
    #[serde(default)]
    monitoring: RawMonitoring,
    #[serde(default)]
    signing_batch: RawSigningBatch,
    #[serde(default)]
    downstream: RawDownstream,
    #[serde(default)]
    memory: RawMemory,
    #[serde(default)]
    cluster: Option<RawCluster>,
}

/// Memory bounds (`memory:`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    /// Bytes held across all requests for inspection and signing ([`crate::held`]).
    #[serde(default = "d_held", deserialize_with = "de::byte_size")]
    held_bytes: u64,
}

/// Default for `memory.held_bytes`: 512 MiB.
pub const DEFAULT_HELD_BYTES: u64 = 512 << 20;

fn d_held() -> u64 {
    DEFAULT_HELD_BYTES
}

impl Default for RawMemory {
    fn default() -> Self {
        RawMemory { held_bytes: d_held() }
    }
}

/// Client-side timeouts (`downstream:`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDownstream {
    #[serde(default = "d_minute", deserialize_with = "de::duration")]
    read_timeout: Duration,
    #[serde(default = "d_minute", deserialize_with = "de::duration")]
    write_timeout: Duration,
    #[serde(default = "d_minute", deserialize_with = "de::duration")]
    keepalive_timeout: Duration,
    /// 0 switches the HTTP/1 head and body deadlines off.
    #[serde(default = "d_header_timeout", deserialize_with = "de::duration")]
    header_timeout: Duration,
    #[serde(default = "d_body_timeout", deserialize_with = "de::duration")]
    body_timeout: Duration,
    #[serde(default = "d_body_min_rate", deserialize_with = "de::byte_size")]
    body_min_rate: u64,
    #[serde(default = "d_max_connections")]
    max_connections: usize,
    #[serde(default = "d_h2_max_streams")]
    h2_max_streams: u32,
    #[serde(default = "d_h2_max_header_bytes", deserialize_with = "de::byte_size")]
    h2_max_header_bytes: u64,
}

// The head and body deadlines follow Apache's mod_reqtimeout defaults (header=20-40,
// body=20,MinRate=500); the HTTP/2 limits are Pingora's own defaults.
fn d_header_timeout() -> Duration {
    Duration::from_secs(20)
}
fn d_body_timeout() -> Duration {
    Duration::from_secs(20)
}
fn d_body_min_rate() -> u64 {
    500
}
fn d_max_connections() -> usize {
    10_000
}
fn d_h2_max_streams() -> u32 {
    100
}
fn d_h2_max_header_bytes() -> u64 {
    64 * 1024
}

fn d_minute() -> Duration {
    Duration::from_secs(60)
}

impl Default for RawDownstream {
    fn default() -> Self {
        RawDownstream {
            read_timeout: d_minute(),
            write_timeout: d_minute(),
            keepalive_timeout: d_minute(),
            header_timeout: d_header_timeout(),
            body_timeout: d_body_timeout(),
            body_min_rate: d_body_min_rate(),
            max_connections: d_max_connections(),
            h2_max_streams: d_h2_max_streams(),
            h2_max_header_bytes: d_h2_max_header_bytes(),
        }
    }
}

/// How long the gateway waits on a client (`downstream:` in gateway.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownstreamTimeouts {
    /// Each read of a request's head (first request) or body: a client silent that long is
    /// dropped (`quantumvault_downstream_timeouts_total{kind="read"}`).
    pub read: Duration,
    /// Each write of a response: a client that stops reading is dropped, and what was held for
    /// it is freed (`kind="write"`).
    pub write: Duration,
    /// An idle keep-alive connection between requests is closed after this (whole seconds).
    pub keepalive: Duration,
    /// The whole head of an HTTP/1 request must arrive within this, counted from the
    /// connection's start or from the previous response's end plus `keepalive` (slowloris;
    /// `kind="header"`). Zero switches the head and body deadlines off ([`crate::connections`]).
    pub header_timeout: Duration,
    /// An HTTP/1 request body must arrive within this from its head, plus one second for every
    /// `body_min_rate` bytes received (slow POST; `kind="body"`).
    pub body_timeout: Duration,
    pub body_min_rate: u64,
    /// Client connections open at once on the proxy listeners; more are closed on accept
    /// (`quantumvault_connections_refused_total`).
    pub max_connections: usize,
    /// HTTP/2: streams a client may have open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub h2_max_streams: u32,
    /// HTTP/2: the decoded size of a request's header list (SETTINGS_MAX_HEADER_LIST_SIZE).
    pub h2_max_header_bytes: u32,
}

/// The batch signer's threads and batch bounds (`signing_batch:`; see
/// `crate::integrity::batcher`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigningBatch {
    #[serde(default = "d_batch_leaves")]
    max_leaves: u32,
    #[serde(default = "d_batch_wait", deserialize_with = "de::duration")]
    max_wait: Duration,
    #[serde(default = "d_batch_threads")]
    threads: usize,
    #[serde(default = "d_batch_queue")]
    queue: usize,
    #[serde(default)]
    log_origin: Option<String>,
    #[serde(default = "d_checkpoint_interval", deserialize_with = "de::duration")]
    checkpoint_interval: Duration,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    verify_roots: bool,
}

/// How long the anchor log keeps what (`signing_batch.retention`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(default, deserialize_with = "de::opt_duration")]
    pq_signatures: Option<Duration>,
}

impl Default for RawSigningBatch {
    fn default() -> Self {
        RawSigningBatch {
            max_leaves: d_batch_leaves(),
            max_wait: d_batch_wait(),
            threads: d_batch_threads(),
            queue: d_batch_queue(),
            log_origin: None,
            checkpoint_interval: d_checkpoint_interval(),
            retention: RawRetention::default(),
            verify_roots: false,
        }
    }
}

fn d_checkpoint_interval() -> Duration {
    BatchSettings::default().checkpoint_interval
}

fn d_batch_leaves() -> u32 {
    BatchSettings::default().max_leaves
}
fn d_batch_wait() -> Duration {
    BatchSettings::default().max_wait
}
fn d_batch_threads() -> usize {
    BatchSettings::default().threads
}
fn d_batch_queue() -> usize {
    BatchSettings::default().queue
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    #[serde(default)]
    keystore: Option<PathBuf>,
    #[serde(default)]
    passphrase_env: Option<String>,
    #[serde(default)]
    passphrase_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    pbkdf2_iterations: Option<u32>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    rotate_after: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    lifetime: Option<Duration>,
}

/// Where the signing keys are and how the keystore is unlocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysConfig {
    pub keystore: PathBuf,
    pub passphrase_env: String,
    pub passphrase_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub pbkdf2_iterations: u32,
    pub rotate_after: Option<Duration>,
    pub lifetime: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsage {
    #[serde(deserialize_with = "de::duration")]
    flush_interval: Duration,
}

impl Default for RawUsage {
    fn default() -> Self {
        RawUsage {
            flush_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    address: SocketAddr,
    #[serde(default)]
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    address: SocketAddr,
    /// Environment variable holding the bearer token for state-changing endpoints.
    #[serde(default)]
    token_env: Option<String>,
    /// File holding the token (e.g. a systemd credential).
    #[serde(default)]
    token_file: Option<PathBuf>,
    /// Host names (besides IP literals and `localhost`) the admin port answers to.
    #[serde(default)]
    allowed_hosts: Vec<String>,
    /// GET endpoints that stay open without the token when one is set (probes).
    #[serde(default = "d_open_endpoints")]
    open_endpoints: Vec<String>,
}

fn d_open_endpoints() -> Vec<String> {
    vec!["/health".into(), "/ready".into()]
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
            allowed_hosts: Vec::new(),
            open_endpoints: d_open_endpoints(),
            token_env: None,
            token_file: None,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    /// `stdout`, `off`, or a file path.
    #[serde(default)]
    access_log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShutdown {
    #[serde(deserialize_with = "de::duration")]
    grace_period: Duration,
    #[serde(deserialize_with = "de::duration")]
    graceful_shutdown_timeout: Duration,
}

impl Default for RawShutdown {
    fn default() -> Self {
        RawShutdown {
            grace_period: Duration::from_secs(5),
            graceful_shutdown_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReload {
    #[serde(default = "default_true")]
    watch: bool,
    #[serde(deserialize_with = "de::duration", default = "default_debounce")]
    debounce: Duration,
}

impl Default for RawReload {
    fn default() -> Self {
        RawReload {
            watch: true,
            debounce: default_debounce(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_debounce() -> Duration {
    Duration::from_millis(250)
}

/// The admin bearer token. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Validated `gateway.yaml`. Paths are absolute (resolved against the file's folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub path: PathBuf,
    pub listeners: Vec<Listener>,
    pub admin_address: SocketAddr,
    /// Host names the admin port answers to, besides IP literals and `localhost`
    /// (`admin.allowed_hosts`): a browser tricked by DNS rebinding sends another name.
    pub admin_hosts: Vec<String>,
    /// With a token set, the GET endpoints that need none (`admin.open_endpoints`).
    pub admin_open: Vec<String>,
    /// Bearer token required by state-changing admin endpoints; `None` on loopback only.
    pub admin_token: Option<AdminToken>,
    pub worker_threads: usize,
    pub data_dir: PathBuf,
    pub access_log: AccessLogTarget,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub policy_sources: Vec<PathBuf>,
    pub watch: bool,
    pub debounce: Duration,
    /// How often API-key usage is written to `data_dir/usage.json` (also on shutdown).
    pub usage_flush_interval: Duration,
    pub keys: KeysConfig,
    pub monitoring: MonitoringConfig,
    pub signing_batch: BatchSettings,
    pub downstream: DownstreamTimeouts,
    /// `memory.held_bytes`: see [`crate::held`].
    pub held_bytes: u64,
    /// `cluster:`: state shared with other instances through Redis ([`crate::cluster`]).
    pub cluster: Option<ClusterConfig>,
}

impl GatewayConfig {
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigErrors> {
        let file = SourceFile::read(path).map_err(ConfigErrors::single)?;
        GatewayConfig::from_source(&file)
    }

    /// As [`GatewayConfig::load`], from text already read (the `config` fuzz target). Paths
    /// in it are resolved against `file.path`'s folder and checked on disk as in a load.
    pub fn from_source(file: &SourceFile) -> Result<GatewayConfig, ConfigErrors> {
        let path = file.path.as_path();
        let raw: RawGateway = file.parse().map_err(ConfigErrors::single)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let mut errors = Vec::new();

        if raw.listeners.is_empty() {
            errors.push(file.error("listeners", "at least one listener is required"));
        }
        let mut listeners = Vec::new();
        for (i, l) in raw.listeners.iter().enumerate() {
            if raw.listeners[..i].iter().any(|o| o.address == l.address) {
                errors.push(file.error(&format!("listeners[{i}].address"), "duplicate listener address"));
            }
            if l.address == raw.admin.address {
                errors.push(file.error(
                    &format!("listeners[{i}].address"),
                    "the admin port cannot share a listener address",
                ));
            }
            let tls = l.tls.as_ref().map(|t| TlsFiles {
                cert: resolve(&t.cert),
                key: resolve(&t.key),
            });
            if let Some(t) = &tls {
                for (field, p) in [("cert", &t.cert), ("key", &t.key)] {
                    if !p.is_file() {
                        errors.push(file.error(
                            &format!("listeners[{i}].tls.{field}"),
                            format!("file {} does not exist", p.display()),
                        ));
                    }
                }
            }
            listeners.push(Listener {
                address: l.address,
                tls,
            });
        }
        let worker_threads = match raw.worker_threads {
            Some(0) => {
                errors.push(file.error("worker_threads", "must be at least 1"));
                1
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        };
        let access_log = match raw.log.access_log.as_deref() {
            None | Some("stdout") => AccessLogTarget::Stdout,
            Some("off") => AccessLogTarget::Off,
            Some(p) => AccessLogTarget::File(resolve(Path::new(p))),
        };
        if raw.policies.is_empty() {
            errors.push(file.error("policies", "list at least one policy file or folder"));
        }
        let policy_sources: Vec<PathBuf> = raw.policies.iter().map(|p| resolve(p)).collect();
        for (i, p) in policy_sources.iter().enumerate() {
            if !p.exists() {
                errors.push(file.error(&format!("policies[{i}]"), format!("{} does not exist", p.display())));
            }
        }
        let admin_token = match (&raw.admin.token_file, &raw.admin.token_env) {
            (Some(f), _) => match std::fs::read_to_string(resolve(f)) {
                Ok(t) if !t.trim().is_empty() => Some(AdminToken(t.trim().to_string())),
                Ok(_) => {
                    errors.push(file.error("admin.token_file", "the token file is empty"));
                    None
                }
                Err(e) => {
                    errors.push(file.error("admin.token_file", format!("cannot read {}: {e}", f.display())));
                    None
                }
            },
            (None, Some(var)) => std::env::var(var).ok().filter(|t| !t.is_empty()).map(AdminToken),
            (None, None) => std::env::var("QV_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .map(AdminToken),
        };
        if admin_token.is_none() && !raw.admin.address.ip().is_loopback() {
            errors.push(file.error(
                "admin.address",
                "the admin port is not on loopback and has no token: set admin.token_file or admin.token_env (or QV_ADMIN_TOKEN)",
            ));
        }
        let iterations = raw
            .keys
            .pbkdf2_iterations
            .unwrap_or(crate::kms::keystore::MIN_ITERATIONS);
        if iterations < crate::kms::keystore::MIN_ITERATIONS {
            errors.push(file.error(
                "keys.pbkdf2_iterations",
                format!(
                    "at least {} (OWASP's advice for PBKDF2-HMAC-SHA256)",
                    crate::kms::keystore::MIN_ITERATIONS
                ),
            ));
        }
        let data_dir = resolve(&raw.data_dir);
        let keys = KeysConfig {
            keystore: raw
                .keys
                .keystore
                .as_deref()
                .map(|k| {
                    if k.is_absolute() {
                        k.to_path_buf()
                    } else {
                        data_dir.join(k)
                    }
                })
                .unwrap_or_else(|| data_dir.join("keystore.json")),
            passphrase_env: raw
                .keys
                .passphrase_env
                .clone()
                .unwrap_or_else(|| "QV_KEYSTORE_PASSPHRASE".into()),
            passphrase_file: raw.keys.passphrase_file.as_deref().map(&resolve),
            key_file: raw.keys.key_file.as_deref().map(&resolve),
            pbkdf2_iterations: iterations,
            rotate_after: raw.keys.rotate_after,
            lifetime: raw.keys.lifetime,
        };
        let monitoring = raw.monitoring.validate(&file, &mut errors);
        let cluster = raw.cluster.as_ref().map(|c| c.validate(file, &resolve, &mut errors));
        let b = &raw.signing_batch;
        if b.max_leaves == 0 || b.max_leaves > crate::integrity::merkle::MAX_LEAVES {
            errors.push(file.error("signing_batch.max_leaves", "between 1 and 65536"));
        }
        if b.max_wait > Duration::from_secs(1) {
            errors.push(file.error("signing_batch.max_wait", "at most 1s"));
        }
        if b.threads == 0 || b.threads > 64 {
            errors.push(file.error("signing_batch.threads", "between 1 and 64"));
        }
        if b.queue < b.max_leaves as usize {
            errors.push(file.error("signing_batch.queue", "at least max_leaves"));
        }
        if let Some(o) = &b.log_origin {
            if o.is_empty() || o.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+') {
                errors.push(file.error(
                    "signing_batch.log_origin",
                    "a non-empty name without spaces or '+', such as api.example.com/anchor",
                ));
            }
        }
        if b.checkpoint_interval < Duration::from_millis(100) || b.checkpoint_interval > Duration::from_secs(3600) {
            errors.push(file.error("signing_batch.checkpoint_interval", "between 100ms and 1h"));
        }
        if b.retention.pq_signatures.is_some_and(|d| d < Duration::from_secs(3600)) {
            errors.push(file.error("signing_batch.retention.pq_signatures", "at least 1h"));
        }
        let signing_batch = BatchSettings {
            max_leaves: b.max_leaves,
            max_wait: b.max_wait,
            threads: b.threads,
            queue: b.queue,
            log_origin: b.log_origin.clone(),
            checkpoint_interval: b.checkpoint_interval,
            pq_retention: b.retention.pq_signatures,
            verify_roots: b.verify_roots,
        };
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(GatewayConfig {
            path: path.to_path_buf(),
            listeners,
            admin_address: raw.admin.address,
            admin_hosts: raw.admin.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            admin_open: raw.admin.open_endpoints.clone(),
            admin_token,
            worker_threads,
            data_dir,
            access_log,
            grace_period: raw.shutdown.grace_period,
            graceful_shutdown_timeout: raw.shutdown.graceful_shutdown_timeout,
            policy_sources,
            watch: raw.reload.watch,
            debounce: raw.reload.debounce,
            usage_flush_interval: raw.usage.flush_interval.max(Duration::from_millis(100)),
            keys,
            monitoring,
            signing_batch,
            downstream: DownstreamTimeouts {
                read: raw.downstream.read_timeout,
                write: raw.downstream.write_timeout,
                // Pingora counts keep-alive in whole seconds.
                keepalive: raw.downstream.keepalive_timeout.max(Duration::from_secs(1)),
                header_timeout: raw.downstream.header_timeout,
                body_timeout: raw.downstream.body_timeout,
                body_min_rate: raw.downstream.body_min_rate.max(1),
                max_connections: raw.downstream.max_connections.max(1),
                h2_max_streams: raw.downstream.h2_max_streams.max(1),
                h2_max_header_bytes: raw.downstream.h2_max_header_bytes.clamp(1024, u32::MAX as u64) as u32,
            },
            held_bytes: raw.memory.held_bytes,
            cluster,
        })
    }

    /// The policy files, in load order: listed files as given, folders expanded to their
    /// `*.yaml` / `*.yml` files sorted by name.
    pub fn policy_files(&self) -> Result<Vec<PathBuf>, ConfigErrors> {
        let mut files = Vec::new();
        for src in &self.policy_sources {
            if src.is_dir() {
                let entries = std::fs::read_dir(src)
                    .map_err(|e| ConfigErrors::single(io_error(src, format!("cannot list folder: {e}"))))?;
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")))
                    .collect();
                found.sort();
                files.extend(found);
            } else {
                files.push(src.clone());
            }
        }
        Ok(files)
    }

    /// Settings that differ from `running` and only take effect after a restart.
    pub fn restart_needed(&self, running: &GatewayConfig) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.listeners != running.listeners {
            out.push("listeners");
        }
        if self.admin_address != running.admin_address {
            out.push("admin.address");
        }
        if self.admin_hosts != running.admin_hosts {
            out.push("admin.allowed_hosts");
        }
        if self.admin_open != running.admin_open {
            out.push("admin.open_endpoints");
        }
        if self.worker_threads != running.worker_threads {
            out.push("worker_threads");
        }
        if self.data_dir != running.data_dir {
            out.push("data_dir");
        }
        if self.access_log != running.access_log {
            out.push("log.access_log");
        }
        if self.grace_period != running.grace_period
            || self.graceful_shutdown_timeout != running.graceful_shutdown_timeout
        {
            out.push("shutdown");
        }
        if self.cluster != running.cluster {
            out.push("cluster");
        }
        if self.monitoring != running.monitoring {
            out.push("monitoring");
        }
        if self.signing_batch != running.signing_batch {
            out.push("signing_batch");
        }
        out
    }
}

pub(crate) fn io_error(path: &Path, message: String) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        field: String::new(),
        message,
    }
}

/// Process settings of the batch signer (`signing_batch` in gateway.yaml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettings {
    pub max_leaves: u32,
    pub max_wait: Duration,
    pub threads: usize,
    pub queue: usize,
    /// The anchor log's checkpoint origin (default: from the instance id).
    pub log_origin: Option<String>,
    /// How often a grown log gets a new signed checkpoint.
    pub checkpoint_interval: Duration,
    /// Drop ML-DSA-65 root signatures from the anchor log after this long (`None`: keep).
    pub pq_retention: Option<Duration>,
    /// Verify each root signature before its batch is released.
    pub verify_roots: bool,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_leaves: 256,
            // Measured (README, batch signing): closing as soon as the signer is free served the
            // most on two cores (0.48-0.52 of unsigned, hybrid, against 0.45 at 2 ms, whose
            // wait added 1.3 ms to each response of a closed-loop client); batches then grow by
            // themselves while the signer is busy.
            max_wait: Duration::ZERO,
            threads: 1,
            queue: 8192,
            log_origin: None,
            checkpoint_interval: Duration::from_secs(1),
            pq_retention: None,
            verify_roots: false,
        }
    }
}
