//! The gateway's background services (Pingora `BackgroundService`s besides the health checker,
//! which lives with the pools in `upstream/`): alert evaluation, API-key usage flushing, key
//! maintenance, metrics upkeep; and the one loop they share, which waits a period, runs the
//! work and stops at shutdown.

use std::future::Future;
use std::time::Duration;

use pingora::server::ShutdownWatch;
use tokio::time::MissedTickBehavior;

/// Runs `work` every `period`, the first time one period after the start, until shutdown is
/// signalled. A run that overruns delays the next one instead of bunching them up.
pub async fn every<F, Fut>(period: Duration, shutdown: &mut ShutdownWatch, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await; // the first tick completes at once
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => work().await,
        }
    }
}

/// Evaluates the running policy's alert rules every `interval`, against the running policy,
/// keys and reload state.
pub struct AlertEvaluator {
    pub runtime: std::sync::Arc<crate::reload::Runtime>,
    pub alerts: std::sync::Arc<crate::telemetry::alerts::AlertEngine>,
    pub interval: Duration,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for AlertEvaluator {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        every(self.interval, &mut shutdown, || async {
            let policy = self.runtime.policy.load_full();
            let keyring = self.runtime.keyring.load();
            let live = crate::telemetry::alerts::LiveState {
                policy: &policy,
                reload_failed: self.runtime.status().last_error.is_some(),
                keyring: &keyring,
            };
            let observations = crate::telemetry::alerts::observe(&live, &policy.config.alerts, crate::clock::instant());
            self.alerts.evaluate(crate::clock::unix_ms(), &observations);
        })
        .await;
    }
}

/// Persists API-key usage every `interval` and once more when the server shuts down.
pub struct UsageFlusher {
    pub runtime: std::sync::Arc<crate::reload::Runtime>,
    pub interval: Duration,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for UsageFlusher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        every(self.interval, &mut shutdown, || self.save()).await;
        self.save().await;
    }
}

impl UsageFlusher {
    async fn save(&self) {
        let runtime = self.runtime.clone();
        let saved = tokio::task::spawn_blocking(move || runtime.registries.usage.save()).await;
        if let Ok(Err(e)) = saved {
            log::error!("cannot save API-key usage: {e}");
        }
    }
}

/// Re-reads the keystore every `interval`: auto-rotation by age and expiry happens on a
/// long-running gateway too, not only at start and reload.
pub struct KeyMaintenance {
    pub runtime: std::sync::Arc<crate::reload::Runtime>,
    pub interval: Duration,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for KeyMaintenance {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        every(self.interval, &mut shutdown, || async {
            let runtime = self.runtime.clone();
            let result = tokio::task::spawn_blocking(move || runtime.refresh_keys()).await;
            if let Ok(Err(e)) = result {
                log::error!("key maintenance: {e}; the current keys stay in use");
            }
        })
        .await;
    }
}

/// Signs a checkpoint of the anchor log whenever it grew (every `checkpoint_interval`), and
/// once an hour drops ML-DSA-65 root signatures older than the retention window.
#[derive(Clone)]
pub struct AnchorMaintenance {
    pub log: std::sync::Arc<crate::integrity::anchor::AnchorLog>,
    pub keyring: std::sync::Arc<arc_swap::ArcSwap<crate::kms::keystore::KeyRing>>,
    pub settings: crate::config::gateway::BatchSettings,
}

impl AnchorMaintenance {
    fn checkpoint(&self) {
        let ring = self.keyring.load();
        if ring.checkpoint.is_empty() {
            return;
        }
        let signers: Vec<&dyn crate::integrity::sig::Signer> = ring.checkpoint.iter().map(|s| &*s.signer).collect();
        match self.log.sign_checkpoint(&signers) {
            Ok(Some(size)) => crate::telemetry::metrics::checkpoint_signed(size, self.log.index_bytes()),
            Ok(None) => {}
            Err(e) => {
                crate::telemetry::metrics::checkpoint_failed();
                log::error!("{e}");
            }
        }
    }

    fn prune(&self) {
        let Some(window) = self.settings.pq_retention else {
            return;
        };
        let before = crate::clock::unix_now().saturating_sub(window.as_secs()) * 1000;
        match self.log.prune_pq(before) {
            Ok(0) => {}
            Ok(n) => {
                crate::telemetry::metrics::pq_signatures_pruned(n);
                log::info!("anchor log: {n} ML-DSA-65 root signatures older than the retention window dropped");
            }
            Err(e) => log::error!("anchor log retention: {e}"),
        }
    }
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for AnchorMaintenance {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let ticks_per_prune = (3600 / self.settings.checkpoint_interval.as_secs().max(1)).max(1);
        let mut tick: u64 = 0;
        every(self.settings.checkpoint_interval, &mut shutdown, || {
            // Signing (ML-DSA-65 about 0.3 ms) and the rewrite are blocking work: off the
            // runtime's thread, never on a proxy thread.
            let me = self.clone();
            let prune = tick.is_multiple_of(ticks_per_prune);
            tick += 1;
            async move {
                let _ = tokio::task::spawn_blocking(move || {
                    if prune {
                        me.prune();
                    }
                    me.checkpoint();
                })
                .await;
            }
        })
        .await;
    }
}

/// Drains histogram samples into their buckets so memory stays flat between scrapes, and
/// forgets the statistics of routes that are gone.
pub struct MetricsUpkeep(pub metrics_exporter_prometheus::PrometheusHandle);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for MetricsUpkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        every(Duration::from_secs(5), &mut shutdown, || async {
            self.0.run_upkeep();
            crate::telemetry::stats::stats().prune(crate::clock::instant());
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn runs_each_period_and_stops_at_shutdown() {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let runs = std::sync::Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let task = tokio::spawn(async move {
            every(Duration::from_secs(10), &mut rx, || {
                counted.fetch_add(1, Ordering::SeqCst);
                async {}
            })
            .await
        });
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "at 10, 20 and 30 s, not at 0");
        tx.send(true).unwrap();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "nothing after shutdown");
    }
}
