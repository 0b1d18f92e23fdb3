//! One key directory for the fleet. Each instance keeps its own signing keys (their ids begin
//! with the instance's name) and publishes its public JWKs in Redis under
//! `{qv:fleet}:keys:{instance}` with a TTL of `cluster.key_ttl`, refreshed every third of it,
//! and lists itself in the sorted set `{qv:fleet}:instances` (score: when its entry expires).
//! Every instance reads all live entries back, so the JWKS any instance serves lists every
//! instance's keys and a client verifies a response whichever instance served it. The count of
//! live instances is the divisor of the fallbacks.
//!
//! An instance that stops is dropped from the directory when its TTL runs out, so responses it
//! signed stop verifying against the fleet's JWKS after that; clients that keep responses for
//! longer keep the JWKS with them (or the operator runs one shared keystore: see the README).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use serde_json::Value;

use super::Cluster;
use crate::kms::keystore::KeyRing;

const INSTANCES: &str = "{qv:fleet}:instances";

fn keys_key(instance: &str) -> String {
    format!("{{qv:fleet}}:keys:{instance}")
}

/// The other instances' public JWKs, as last read.
#[derive(Default)]
pub struct Fleet {
    others: ArcSwapOption<Vec<Value>>,
}

impl Fleet {
    /// `local` (this instance's JWKS) with the other live instances' keys appended.
    pub fn directory(&self, mut local: Value) -> Value {
        if let (Some(others), Some(keys)) = (self.others.load_full(), local["keys"].as_array_mut()) {
            let mut seen: std::collections::HashSet<String> = keys
                .iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_string))
                .collect();
            for k in others.iter() {
                if k["kid"].as_str().is_some_and(|kid| seen.insert(kid.to_string())) {
                    keys.push(k.clone());
                }
            }
        }
        local
    }

    /// Publishes this instance's keys and reads the fleet's: one round.
    pub async fn refresh(&self, cluster: &Cluster, ring: &KeyRing) -> Result<usize, super::Unavailable> {
        let me = cluster.config.instance.clone();
        let ttl = cluster.config.key_ttl;
        let mine = serde_json::to_string(&crate::integrity::jwks::directory(ring)["keys"]).unwrap_or_default();
        let now_ms = crate::clock::unix_ms();
        let expires = now_ms + ttl.as_millis() as u64;
        let deadline = cluster.config.timeout.max(Duration::from_secs(2));
        let me2 = me.clone();
        let (live, entries): (Vec<String>, Vec<Option<String>>) = cluster
            .background(deadline, |mut link| async move {
                let mut pipe = redis::pipe();
                pipe.set_ex(keys_key(&me2), mine, ttl.as_secs().max(1))
                    .ignore()
                    .zadd(INSTANCES, &me2, expires)
                    .ignore()
                    .zrembyscore(INSTANCES, 0, now_ms)
                    .ignore()
                    .zrangebyscore(INSTANCES, now_ms, "+inf");
                let (live,): (Vec<String>,) = pipe.query_async(&mut link).await?;
                let others: Vec<String> = live.iter().filter(|i| **i != me2).map(|i| keys_key(i)).collect();
                let entries: Vec<Option<String>> = if others.is_empty() {
                    Vec::new()
                } else {
                    redis::cmd("MGET").arg(&others).query_async(&mut link).await?
                };
                Ok((live, entries))
            })
            .await?;
        let mut keys = Vec::new();
        for e in entries.into_iter().flatten() {
            if let Ok(Value::Array(list)) = serde_json::from_str::<Value>(&e) {
                keys.extend(list);
            }
        }
        self.others.store(Some(Arc::new(keys)));
        let n = live.len().max(1) as u32;
        cluster.live_instances.store(n, Ordering::Relaxed);
        crate::telemetry::metrics::cluster_instances(n);
        Ok(n as usize)
    }
}

/// Refreshes the directory every third of `key_ttl` (and at once) on the Redis thread.
pub fn spawn(cluster: Arc<Cluster>, keyring: Arc<ArcSwap<KeyRing>>) {
    let c = cluster.clone();
    cluster.spawn(async move {
        let f = &c.fleet;
        let every = (c.config.key_ttl / 3).max(Duration::from_secs(1));
        loop {
            let ring = keyring.load_full();
            if let Err(e) = f.refresh(&c, &ring).await {
                log::debug!("cluster: key directory refresh failed ({e:?})");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            tokio::time::sleep(every).await;
        }
    });
}
