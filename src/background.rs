//! Periodic work for Pingora background services: one loop that waits a period, runs the work
//! and stops at shutdown, shared by usage flushing, key maintenance, metrics upkeep and alert
//! evaluation; and the alert evaluator itself.

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
            let observations =
                crate::telemetry::alerts::observe(&live, &policy.config.alerts, std::time::Instant::now());
            self.runtime
                .alerts
                .evaluate(crate::telemetry::alerts::unix_ms(), &observations);
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
