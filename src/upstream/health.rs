//! Active health checks: a background service that probes every peer of every pool that has a
//! `health_check`, on the pool's interval, with Pingora's `HttpHealthCheck` (so TLS and SNI work
//! as on the request path). Results flip [`PeerState`](super::PeerState) after the configured
//! number of consecutive successes or failures.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck};
use pingora::lb::Backend;
use pingora::prelude::*;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::Pool;
use crate::policy::Policy;

pub struct HealthChecker {
    policy: Arc<ArcSwap<Policy>>,
}

impl HealthChecker {
    pub fn new(policy: Arc<ArcSwap<Policy>>) -> Self {
        HealthChecker { policy }
    }
}

fn build_check(pool: &Pool) -> Option<Arc<HttpHealthCheck>> {
    let spec = pool.spec.health_check.as_ref()?;
    let tls = pool.spec.tls.as_ref();
    let host = spec
        .host
        .clone()
        .or_else(|| tls.map(|t| t.sni.clone()))
        .unwrap_or_else(|| "localhost".to_string());
    let mut check = HttpHealthCheck::new(&host, tls.is_some());
    let mut req = RequestHeader::build("GET", spec.path.as_bytes(), None).ok()?;
    req.insert_header("Host", host.as_str()).ok()?;
    req.insert_header("User-Agent", "quantumvault-health-check").ok()?;
    check.req = req;
    check.peer_template.options.connection_timeout = Some(spec.timeout);
    check.peer_template.options.read_timeout = Some(spec.timeout);
    check.peer_template.options.write_timeout = Some(spec.timeout);
    if let Some(t) = tls {
        check.peer_template.sni = t.sni.clone();
        check.peer_template.options.verify_cert = t.verify;
        check.peer_template.options.verify_hostname = t.verify;
    }
    let expected = spec.expected_status;
    check.validator = Some(Box::new(move |resp: &ResponseHeader| {
        if resp.status.as_u16() == expected {
            Ok(())
        } else {
            Error::e_explain(
                ErrorType::Custom("unexpected health status"),
                format!("status {}", resp.status),
            )
        }
    }));
    Some(Arc::new(check))
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Per pool: the check built for its current settings and when it is next due.
        let mut checks: HashMap<String, (String, Arc<HttpHealthCheck>, Instant)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let policy = self.policy.load_full();
            let now = crate::clock::instant();
            for pool in policy.pools.values() {
                let Some(spec) = pool.spec.health_check.as_ref() else {
                    continue;
                };
                // Rebuild the probe when the pool's settings change with a reload.
                let fingerprint = format!("{:?}{:?}", spec, pool.spec.tls);
                let entry = match checks.get(&pool.spec.name) {
                    Some((fp, _, _)) if *fp == fingerprint => checks.get_mut(&pool.spec.name),
                    _ => match build_check(pool) {
                        Some(c) => {
                            checks.insert(pool.spec.name.clone(), (fingerprint, c, now));
                            checks.get_mut(&pool.spec.name)
                        }
                        None => None,
                    },
                };
                let Some((_, check, due)) = entry else { continue };
                if *due > now {
                    continue;
                }
                *due = now + spec.interval;
                for peer in &pool.peers {
                    // Never run two probes of one peer at once (a slow peer with a short interval).
                    if peer.state.check_in_flight.swap(true, Ordering::AcqRel) {
                        continue;
                    }
                    let state = peer.state.clone();
                    let check = check.clone();
                    let addr = peer.addr;
                    let pool_name = pool.spec.name.clone();
                    let (up, down) = (spec.healthy_threshold, spec.unhealthy_threshold);
                    let timeout = spec.timeout + Duration::from_millis(100);
                    tokio::spawn(async move {
                        let ok = match Backend::new(&addr.to_string()) {
                            Ok(backend) => {
                                matches!(tokio::time::timeout(timeout, check.check(&backend)).await, Ok(Ok(())))
                            }
                            Err(_) => false,
                        };
                        if let Some(now_healthy) = state.record_check(ok, up, down) {
                            if now_healthy {
                                log::info!("upstream {pool_name}: peer {} is healthy again", state.label);
                            } else {
                                log::warn!(
                                    "upstream {pool_name}: peer {} failed its health checks and is out of rotation",
                                    state.label
                                );
                            }
                        }
                        state.check_in_flight.store(false, Ordering::Release);
                    });
                }
            }
            checks.retain(|name, _| policy.pools.contains_key(name));
            crate::telemetry::metrics::record_pool_health(policy.pools.values().map(|p| &**p));
        }
    }
}
