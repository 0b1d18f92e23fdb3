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

/// Evaluates the running policy's alert rules every `interval`.
pub struct AlertEvaluator {
    pub runtime: std::sync::Arc<crate::reload::Runtime>,
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
            self.runtime.alerts.evaluate(crate::clock::unix_ms(), &observations);
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
            let result = tokio::task::spawn_blocking(move || {
                let policy = runtime.policy.load();
                crate::reload::load_keyring(&runtime.gateway, &policy.config)
                    .map(|ring| runtime.keyring.store(std::sync::Arc::new(ring)))
            })
            .await;
            if let Ok(Err(e)) = result {
                log::error!("key maintenance: {e}; the current keys stay in use");
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
