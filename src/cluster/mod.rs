//! Cluster mode: several gateway instances share rate limits, quotas, API-key usage and their
//! key directory through Redis (a single node or a Redis Cluster), configured by `cluster:` in
//! gateway.yaml.
//!
//! - [`limit`]: `shared: true` rate limits, one atomic GCRA decision in Redis per request (or per
//!   `reserve` requests), falling back to a local limiter at limit ÷ instances, or refusing,
//!   while Redis is unreachable.
//! - [`usage`]: daily and monthly quotas as atomic counters in Redis, and per-key usage flushed
//!   every `usage_flush` and read back as the fleet's totals on `/usage`.
//! - [`fleet`]: each instance publishes its public keys with a TTL; every instance's JWKS lists
//!   the whole fleet's, so a response verifies whichever instance served it.
//!
//! Every call has the deadline `cluster.timeout` and goes through one circuit breaker
//! ([`breaker`]): after `breaker_failures` failures in a row, no calls are made (the fallbacks
//! decide at once) except one probe every `breaker_probe`, whose success closes it again. The
//! Redis client runs on a thread of its own (`qv-redis`); requests await its answers.

pub mod breaker;
pub mod fleet;
pub mod limit;
pub mod usage;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, RedisFuture, Value};

use crate::config::cluster::{ClusterConfig, RedisMode, Secret};
use breaker::{Breaker, Switch};

/// Whether the breaker is open (Redis unreachable): `/health` is degraded and the
/// `RedisUnavailable` alert fires.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

pub fn unavailable() -> bool {
    UNAVAILABLE.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.password_file {path}: {message}")]
    PasswordFile { path: String, message: String },
    #[error("cluster.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("cluster.password_env: the environment variable {0} is not set")]
    PasswordEnv(String),
    #[error("cluster.redis: {0}")]
    Client(String),
    #[error("cluster: the Redis client thread could not start: {0}")]
    Thread(String),
}

/// Opens a connection driven by the current runtime: a single node's reconnects by itself
/// (lazily, so this does not wait for Redis); a cluster's is connected here.
async fn open(connector: &Connector) -> redis::RedisResult<Link> {
    match connector {
        Connector::Single(client, config) => Ok(Link::Single(ConnectionManager::new_lazy_with_config(
            client.clone(),
            config.clone(),
        )?)),
        Connector::Cluster(client) => Ok(Link::Cluster(client.get_async_connection().await?)),
    }
}

/// Why a call got no answer; the caller falls back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The breaker is open: no call was made.
    Open,
    /// Not connected yet (a Redis Cluster that was down at start).
    NotConnected,
    Error,
    Timeout,
}

/// A connection to a single node (reconnects by itself) or to a Redis Cluster.
#[derive(Clone)]
pub enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// How to open a connection on the thread that needs one.
#[derive(Clone)]
enum Connector {
    Single(redis::Client, ConnectionManagerConfig),
    Cluster(redis::cluster::ClusterClient),
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// This thread's connection per cluster handle (by id): requests on a Pingora worker
    /// thread talk to Redis over a connection driven by that thread's runtime, so a call costs
    /// no wake-up of another thread (measured: a shared connection driven by the Redis thread
    /// cost about 17 µs of CPU a request).
    /// `None`: this thread had a connection and lost it.
    static LINKS: std::cell::RefCell<Vec<(u64, Option<Link>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A handle on the shared Redis, cheap to clone (`Arc`).
pub struct Cluster {
    pub config: ClusterConfig,
    id: u64,
    connector: Connector,
    /// The Redis thread's connection, for background work.
    link: ArcSwapOption<Link>,
    breaker: Breaker,
    runtime: tokio::runtime::Handle,
    /// Instances seen alive in the fleet's directory at its last refresh (at least 1).
    live_instances: AtomicU32,
    /// The other instances' public keys.
    pub fleet: fleet::Fleet,
    pub quotas: usage::Quotas,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.config.instance)
            .field("addresses", &self.config.addresses)
            .finish()
    }
}

fn password(secret: &Secret) -> Result<String, ClusterError> {
    match secret {
        Secret::File(p) => std::fs::read_to_string(p)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| ClusterError::PasswordFile {
                path: p.display().to_string(),
                message: e.to_string(),
            }),
        Secret::Env(name) => std::env::var(name).map_err(|_| ClusterError::PasswordEnv(name.clone())),
    }
}

impl Cluster {
    /// Starts the Redis client thread and connects lazily: the gateway starts, and falls back,
    /// while Redis is down, and picks it up when it comes.
    pub fn start(config: &ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
        let password = config.password.as_ref().map(password).transpose()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("qv-redis".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(Ok(rt.handle().clone()));
                rt.block_on(std::future::pending::<()>());
            })
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        let runtime = rx
            .recv()
            .map_err(|e| ClusterError::Thread(e.to_string()))?
            .map_err(ClusterError::Thread)?;
        let client_err = |e: redis::RedisError| ClusterError::Client(e.to_string());
        // `tls: true` makes every address a TLS one.
        let addresses: Vec<String> = config
            .addresses
            .iter()
            .map(|a| match a.strip_prefix("redis://") {
                Some(rest) if config.tls => format!("rediss://{rest}"),
                _ => a.clone(),
            })
            .collect();
        let certs = match &config.ca_file {
            Some(path) => Some(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(path).map_err(|e| ClusterError::CaFile {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?),
            }),
            None => None,
        };
        let connector = match config.mode {
            RedisMode::Single => {
                let mut info = addresses[0].as_str().into_connection_info().map_err(client_err)?;
                let mut settings = info.redis_settings().clone();
                if let Some(u) = &config.username {
                    settings = settings.set_username(u);
                }
                if let Some(p) = &password {
                    settings = settings.set_password(p);
                }
                info = info.set_redis_settings(settings);
                let client = match certs {
                    Some(c) => redis::Client::build_with_tls(info, c),
                    None => redis::Client::open(info),
                }
                .map_err(client_err)?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.timeout.max(Duration::from_millis(100))))
                    // A refused connect fails the call at once; the next call opens anew.
                    .set_number_of_retries(0)
                    .set_max_delay(Duration::from_millis(200));
                Connector::Single(client, manager_config)
            }
            RedisMode::Cluster => {
                let mut b = redis::cluster::ClusterClientBuilder::new(addresses)
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.timeout.max(Duration::from_millis(100)))
                    .retries(1);
                if let Some(u) = &config.username {
                    b = b.username(u);
                }
                if let Some(p) = &password {
                    b = b.password(p);
                }
                if config.tls {
                    b = b.tls(redis::TlsMode::Secure);
                }
                if let Some(c) = certs {
                    b = b.certs(c);
                }
                Connector::Cluster(b.build().map_err(client_err)?)
            }
        };
        let cluster = Arc::new(Cluster {
            config: config.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            connector: connector.clone(),
            link: ArcSwapOption::empty(),
            breaker: Breaker::new(config.breaker_failures, config.breaker_probe.as_millis() as u64),
            runtime: runtime.clone(),
            live_instances: AtomicU32::new(1),
            fleet: fleet::Fleet::default(),
            quotas: usage::Quotas::default(),
        });
        // The Redis thread's own connection (background work), made there.
        let weak = Arc::downgrade(&cluster);
        let retry = config.breaker_probe;
        runtime.spawn(async move {
            loop {
                match open(&connector).await {
                    Ok(link) => {
                        if let Some(cl) = weak.upgrade() {
                            cl.link.store(Some(Arc::new(link)));
                        }
                        return;
                    }
                    Err(e) => {
                        log::warn!("cluster: Redis not reachable yet: {e}");
                        tokio::time::sleep(retry).await;
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
            }
        });
        crate::telemetry::metrics::cluster_started();
        Ok(cluster)
    }

    /// Runs `f` on the connection with the call deadline, through the breaker; `op` names the
    /// call in metrics.
    pub async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, Unavailable>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let now = crate::clock::mono_ms();
        if !self.breaker.allow(now) {
            crate::telemetry::metrics::cluster_call(op, "skipped", None);
            return Err(Unavailable::Open);
        }
        let started = crate::clock::instant();
        let local = LINKS.with(|l| l.borrow().iter().find(|(id, _)| *id == self.id).map(|(_, c)| c.clone()));
        // The call that opens this thread's first connection may take `connect_timeout` (a TLS
        // and AUTH handshake to a distant Redis can outlast the call deadline); a reconnect,
        // as while Redis is away, keeps to the call deadline.
        let deadline = match &local {
            None => self.config.timeout.max(self.config.connect_timeout),
            Some(_) => self.config.timeout,
        };
        let work = async {
            let link = match local.flatten() {
                Some(l) => l,
                None => {
                    let l = open(&self.connector).await?;
                    // Calls that started together on this thread keep one connection.
                    LINKS.with(|links| {
                        let mut links = links.borrow_mut();
                        match links.iter_mut().find(|(id, _)| *id == self.id) {
                            Some((_, Some(existing))) => existing.clone(),
                            Some((_, slot)) => {
                                *slot = Some(l.clone());
                                l
                            }
                            None => {
                                links.push((self.id, Some(l.clone())));
                                l
                            }
                        }
                    })
                }
            };
            f(link).await
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(Ok(v)) => {
                if self.breaker.success() == Some(Switch::Closed) {
                    self.switched(false);
                }
                crate::telemetry::metrics::cluster_call(op, "ok", Some(started.elapsed()));
                Ok(v)
            }
            Ok(Err(e)) => {
                log::debug!("cluster: {op}: {e}");
                // Any error: a dropped connection, or a server that answers LOADING, READONLY
                // or MASTERDOWN after a failover behind one address.
                self.forget_link();
                self.failed(now);
                crate::telemetry::metrics::cluster_call(op, "error", Some(started.elapsed()));
                Err(Unavailable::Error)
            }
            Err(_) => {
                self.forget_link();
                self.failed(now);
                crate::telemetry::metrics::cluster_call(op, "timeout", Some(started.elapsed()));
                Err(Unavailable::Timeout)
            }
        }
    }

    /// As [`Cluster::call`], for background work (usage flushes, the key directory) with a
    /// deadline of its own. Its failures do not open the breaker (a slow bulk call says
    /// little about the request path), but a success closes it.
    pub async fn background<T, F, Fut>(&self, deadline: Duration, f: F) -> Result<T, Unavailable>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(link) = self.link.load_full() else {
            return Err(Unavailable::NotConnected);
        };
        let answer = tokio::time::timeout(deadline, f((*link).clone())).await;
        let broken = match &answer {
            Ok(Err(e)) => e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal(),
            Err(_) => true,
            Ok(Ok(_)) => false,
        };
        if broken && matches!(self.connector, Connector::Single(..)) {
            // As for the request path: a fresh connection for the next round (made on the
            // Redis thread, which drives it).
            let connector = self.connector.clone();
            if let Ok(Ok(l)) = self.runtime.spawn(async move { open(&connector).await }).await {
                self.link.store(Some(Arc::new(l)));
            }
        }
        match answer {
            Ok(Ok(v)) => {
                // Redis answers: without request traffic to probe it, this closes the breaker
                // (and clears health and the alert) too.
                if self.breaker.success() == Some(Switch::Closed) {
                    self.switched(false);
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                log::debug!("cluster: background call: {e}");
                Err(Unavailable::Error)
            }
            Err(_) => Err(Unavailable::Timeout),
        }
    }

    /// After an error or a deadline, the next call on this thread opens a fresh single-node
    /// connection (within `connect_timeout`) instead of waiting out the old one's reconnect
    /// schedule: after an outage every thread is back with its first call. A cluster
    /// connection reconnects its nodes itself, and one dead master must not reset the others.
    fn forget_link(&self) {
        if matches!(self.connector, Connector::Single(..)) {
            LINKS.with(|l| {
                for (id, slot) in l.borrow_mut().iter_mut() {
                    if *id == self.id {
                        *slot = None;
                    }
                }
            });
        }
    }

    fn failed(&self, now: u64) {
        if self.breaker.failure(now) == Some(Switch::Opened) {
            self.switched(true);
        }
    }

    fn switched(&self, open: bool) {
        UNAVAILABLE.store(open, Ordering::Relaxed);
        crate::telemetry::metrics::cluster_breaker(open);
        if open {
            log::warn!(
                "cluster: Redis unreachable ({} calls in a row failed); shared limits fall back, probing every {:?}",
                self.config.breaker_failures,
                self.config.breaker_probe
            );
        } else {
            log::info!("cluster: Redis reachable again; shared limits are shared again");
        }
    }

    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// The fleet size a fallback divides a shared limit by: `cluster.instances`, else the
    /// instances last seen alive.
    pub fn instances(&self) -> u32 {
        self.config
            .instances
            .unwrap_or_else(|| self.live_instances.load(Ordering::Relaxed))
            .max(1)
    }

    /// Starts the background work: the key directory and the usage flushes.
    pub fn start_background(
        self: &Arc<Cluster>,
        keyring: Arc<arc_swap::ArcSwap<crate::kms::keystore::KeyRing>>,
        usage: Arc<crate::usage::UsageStore>,
    ) {
        fleet::spawn(self.clone(), keyring);
        usage::spawn_flusher(self.clone(), usage);
    }

    /// Spawns `fut` on the Redis thread.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(fut);
    }
}
