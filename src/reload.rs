//! Hot reload of the policy files: on file change (watcher, debounced), on SIGHUP and on
//! `POST /reload`. All three call [`Runtime::reload`], which parses and validates off the request
//! path and swaps the new snapshot in atomically. A failed reload keeps the running policy,
//! logs the exact errors, counts `quantumvault_config_reloads_total{result="error"}` and leaves
//! `/health` degraded until a reload succeeds.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};

use crate::config::gateway::AdminToken;
use crate::config::{GatewayConfig, PolicyConfig};
use crate::filters::rate_limit::LimiterRegistry;
use crate::kms::keystore::{KeyRing, MasterSource};
use crate::kms::provider::SoftwareProvider;
use crate::kms::Keystore;
use crate::policy::{Policy, Registries};
use crate::telemetry::metrics;
use crate::upstream::PeerRegistry;
use crate::usage::UsageStore;

#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    pub generation: u64,
    pub last_reload: Option<SystemTime>,
    pub last_trigger: Option<String>,
    /// The errors of the last reload, while it failed; cleared by a good reload.
    pub last_error: Option<String>,
    /// Settings of gateway.yaml that changed on disk but need a restart.
    pub restart_needed: Vec<&'static str>,
    pub ok: u64,
    pub failed: u64,
}

/// The reloadable state and the reload operation: the policy snapshot, the signing keys, the
/// registries that outlive a policy (peers, limiters, usage), and the reload status. The proxy
/// takes the snapshots it reads; the admin port, the reload triggers and the background
/// services share this.
pub struct Runtime {
    /// gateway.yaml as loaded at start: where a reload re-reads from, and what it compares
    /// against to report settings that need a restart.
    gateway: GatewayConfig,
    pub policy: Arc<ArcSwap<Policy>>,
    pub registries: Registries,
    /// Signing keys; empty when there is no keystore.
    pub keyring: Arc<ArcSwap<KeyRing>>,
    /// The admin app's bearer token, which it hands over at start: read from
    /// `admin.token_file` / `token_env` again at every reload, so a rotated token takes effect
    /// without a restart.
    admin_token: Arc<ArcSwap<Option<AdminToken>>>,
    status: Mutex<ReloadStatus>,
    /// Serialises reloads, so generations are strictly increasing.
    reload_lock: Mutex<()>,
}

/// Why the gateway could not start with, or reload to, a configuration. The running policy
/// stays when a reload fails.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// gateway.yaml or a policy file is invalid (every error, with file, line and field).
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// Signing is configured but there is no keystore.
    #[error("response signing is enabled but there is no keystore at {}; create it with `quantumvault keys init --config {}`", .keystore.display(), .config.display())]
    NoKeystore { keystore: PathBuf, config: PathBuf },
    /// The keystore cannot be unlocked, or is damaged.
    #[error(transparent)]
    Kms(#[from] crate::kms::keystore::KmsError),
    #[error(transparent)]
    Usage(#[from] crate::usage::UsageError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

impl Runtime {
    /// Builds the first policy (generation 1). `admin_token` is the admin app's token, which
    /// reloads refresh.
    pub fn new(
        gateway: GatewayConfig,
        policy: PolicyConfig,
        admin_token: Arc<ArcSwap<Option<AdminToken>>>,
    ) -> Result<Runtime, ReloadError> {
        let keyring = load_keyring(&gateway, &policy)?;
        let usage = Arc::new(UsageStore::open(Some(gateway.data_dir.join("usage.json")))?);
        let registries = Registries {
            peers: PeerRegistry::default(),
            limiters: LimiterRegistry::default(),
            usage,
            cluster: gateway
                .cluster
                .as_ref()
                .map(crate::cluster::Cluster::start)
                .transpose()?,
            shared: Default::default(),
        };
        let policy = Policy::build(policy, 1, &registries)?;
        metrics::policy_loaded(1, policy.hash(), None);
        Ok(Runtime {
            admin_token,
            gateway,
            policy: Arc::new(ArcSwap::from_pointee(policy)),
            registries,
            keyring: Arc::new(ArcSwap::from_pointee(keyring)),
            status: Mutex::new(ReloadStatus {
                generation: 1,
                ..Default::default()
            }),
            reload_lock: Mutex::new(()),
        })
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads gateway.yaml and the policy files and swaps in the new policy.
    /// Returns the new generation, or every error found (the running policy stays).
    pub fn reload(&self, trigger: &str) -> Result<u64, ReloadError> {
        let _serial = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.try_reload();
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.last_reload = Some(crate::clock::system_time());
        status.last_trigger = Some(trigger.to_string());
        match result {
            Ok((generation, restart_needed)) => {
                status.generation = generation;
                status.last_error = None;
                status.ok += 1;
                if !restart_needed.is_empty() {
                    log::warn!(
                        "reload ({trigger}): gateway.yaml changes to {} need a restart (or a graceful upgrade) to take effect",
                        restart_needed.join(", ")
                    );
                }
                status.restart_needed = restart_needed;
                metrics::reload(true);
                log::info!("reload ({trigger}): policy generation {generation} is live");
                Ok(generation)
            }
            Err(e) => {
                status.last_error = Some(e.to_string());
                status.failed += 1;
                metrics::reload(false);
                log::error!("reload ({trigger}) failed; the running policy stays in force:\n{e}");
                Err(e)
            }
        }
    }

    /// Re-reads the keystore for the running policy (auto-rotation by age and expiry) and swaps
    /// the new key ring in; on an error the current keys stay.
    pub fn refresh_keys(&self) -> Result<(), ReloadError> {
        let policy = self.policy.load();
        let ring = load_keyring(&self.gateway, &policy.config)?;
        self.keyring.store(Arc::new(ring));
        Ok(())
    }

    fn try_reload(&self) -> Result<(u64, Vec<&'static str>), ReloadError> {
        let gateway = GatewayConfig::load(&self.gateway.path)?;
        let restart_needed = gateway.restart_needed(&self.gateway);
        let config = PolicyConfig::load(&gateway)?;
        // Keys changed by `quantumvault keys ...` are picked up here too.
        let keyring = load_keyring(&self.gateway, &config)?;
        let current = self.policy.load();
        let generation = current.generation + 1;
        let previous_hash = current.hash().to_string();
        let policy = Policy::build(config, generation, &self.registries)?;
        metrics::policy_loaded(generation, policy.hash(), Some(&previous_hash));
        self.policy.store(Arc::new(policy));
        self.keyring.store(Arc::new(keyring));
        if gateway.admin_token != **self.admin_token.load() {
            log::info!("admin token changed: the new one is in force");
            self.admin_token.store(Arc::new(gateway.admin_token.clone()));
        }
        Ok((generation, restart_needed))
    }
}

/// Opens the keystore (if there is one), rotates keys that are due, and returns the key ring.
/// Signing configured without a keystore is an error, never a silent downgrade.
pub fn load_keyring(gateway: &GatewayConfig, policy: &PolicyConfig) -> Result<KeyRing, ReloadError> {
    let k = &gateway.keys;
    let wants_signing = policy.access.signing.enabled || policy.routes.iter().any(|r| r.signing.enabled);
    if !k.keystore.exists() {
        if wants_signing {
            return Err(ReloadError::NoKeystore {
                keystore: k.keystore.clone(),
                config: gateway.path.clone(),
            });
        }
        return Ok(KeyRing::default());
    }
    let source = MasterSource::from_settings(k.key_file.as_deref(), k.passphrase_file.as_deref(), &k.passphrase_env)?;
    let mut ks = Keystore::open(&k.keystore, &source, Arc::new(SoftwareProvider))?;
    let rotated = ks.auto_rotate(k.rotate_after.map(|d| d.as_secs()), k.lifetime.map(|d| d.as_secs()))?;
    for name in rotated {
        log::info!("key {name}: rotated (age or expiry)");
    }
    let added = ks.add_checkpoint_keys(k.lifetime.map(|d| d.as_secs()))?;
    if !added.is_empty() {
        ks.save()?;
        log::info!("anchor log checkpoint keys created: {}", added.join(", "));
    }
    let mut ring = ks.key_ring()?;
    if let Some(c) = &gateway.cluster {
        // Every instance keeps keys of its own; their ids name the instance, so the fleet's
        // one directory has no two keys of one id.
        ring.name_instance(&c.instance);
    }
    metrics::key_ring(&ring);
    Ok(ring)
}

/// Reloads on SIGHUP (which would otherwise kill the process: Pingora does not handle it).
pub fn spawn_sighup(runtime: Arc<Runtime>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new().name("sighup".into()).spawn(move || {
        for _ in signals.forever() {
            let _ = runtime.reload("SIGHUP");
        }
    })?;
    Ok(())
}

fn watch_dirs(gateway: &GatewayConfig) -> HashSet<PathBuf> {
    let mut dirs = HashSet::new();
    let parent = |p: &Path| {
        p.parent()
            .map(Path::to_path_buf)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    };
    dirs.insert(parent(&gateway.path));
    for src in &gateway.policy_sources {
        dirs.insert(if src.is_dir() { src.clone() } else { parent(src) });
    }
    dirs
}

/// Policy files and the IP list files kept beside them.
fn is_config_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "txt" | "list")
    )
}

/// Watches the folders holding gateway.yaml and the policy files; a burst of events (editors
/// write, rename and chmod) becomes one reload after `debounce` of quiet.
pub fn spawn_watcher(runtime: Arc<Runtime>) -> notify::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() && ev.paths.iter().any(|p| is_config_file(p)) {
                let _ = tx.send(());
            }
        }
    })?;
    let mut watched = HashSet::new();
    for dir in watch_dirs(&runtime.gateway) {
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        watched.insert(dir);
    }
    let debounce = runtime.gateway.debounce;
    std::thread::Builder::new().name("config-watch".into()).spawn(move || {
        while rx.recv().is_ok() {
            while rx.recv_timeout(debounce).is_ok() {}
            if runtime.reload("file change").is_ok() {
                // Policy folders added to gateway.yaml since start are watched from now on.
                if let Ok(g) = GatewayConfig::load(&runtime.gateway.path) {
                    for dir in watch_dirs(&g) {
                        if !watched.contains(&dir) && watcher.watch(&dir, RecursiveMode::NonRecursive).is_ok() {
                            watched.insert(dir);
                        }
                    }
                }
            }
        }
    })?;
    Ok(())
}
