//! One key directory for the fleet. Each instance keeps its own signing keys (their ids begin
//! with the instance's name) and publishes its public JWKs in Redis under
//! `{qv:fleet}:keys:{instance}` with a TTL of `cluster.key_ttl`, refreshed every third of it,
//! and lists itself in the sorted set `{qv:fleet}:instances` (score: when its entry expires).
//! Every instance reads all live entries back, so the JWKS any instance serves lists every
//! instance's keys and a client verifies a response whichever instance served it. The count of
//! live instances is the divisor of the fallbacks.
//!
//! Trust: whoever can write to Redis can publish keys under an instance name of their own,
//! and every instance would serve them. Redis is inside the trust boundary (ACL user,
//! password, TLS); `cluster.members` restricts the directory to named instances. What is read
//! back is bounded, must be well-formed, and an entry's key ids must begin with its own
//! instance's name.
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
/// Bounds on what is read back from Redis: instances, bytes of one entry, keys of one instance.
const MAX_INSTANCES: isize = 256;
const MAX_ENTRY: usize = 64 * 1024;
const MAX_KEYS: usize = 32;

/// The JWKs of `instance`'s entry that are well-formed public keys named `instance/...`; an
/// entry cannot claim another instance's key ids, and nothing oversized is taken.
fn valid_keys(instance: &str, entry: &str) -> Vec<Value> {
    if entry.len() > MAX_ENTRY {
        log::warn!("cluster: the key directory entry of {instance} is oversized; ignored");
        return Vec::new();
    }
    let Ok(Value::Array(list)) = serde_json::from_str::<Value>(entry) else {
        return Vec::new();
    };
    let prefix = format!("{instance}/");
    list.into_iter()
        .filter(|k| k["kid"].as_str().is_some_and(|kid| kid.starts_with(&prefix)))
        .filter(|k| crate::integrity::jwks::parse(&serde_json::json!({ "keys": [k] })).is_ok_and(|p| p.len() == 1))
        .take(MAX_KEYS)
        .collect()
}

fn keys_key(instance: &str) -> String {
    format!("{{qv:fleet}}:keys:{instance}")
}

/// The other instances' public JWKs, as last read.
#[derive(Default)]
pub struct Fleet {
    others: ArcSwapOption<Vec<Value>>,
    /// This instance's entry as last written.
    mine: ArcSwapOption<String>,
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
        let mine_copy = mine.clone();
        let deadline = cluster.config.timeout.max(Duration::from_secs(2));
        let me2 = me.clone();
        let last = self.mine.load_full();
        let (live, others, entries, previous): (Vec<String>, Vec<String>, Vec<Option<String>>, Option<String>) =
            cluster
                .background(deadline, |mut link| async move {
                    // Redis's clock, not ours: an instance whose clock runs ahead must not drop
                    // the others' entries.
                    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut link).await?;
                    let now_ms = secs * 1000 + micros / 1000;
                    let expires = now_ms + ttl.as_millis() as u64;
                    // What is there now under our name: another instance's keys if two share it.
                    let previous: Option<String> = redis::cmd("GET").arg(keys_key(&me2)).query_async(&mut link).await?;
                    let mut pipe = redis::pipe();
                    pipe.set_ex(keys_key(&me2), mine, ttl.as_secs().max(1))
                        .ignore()
                        .zadd(INSTANCES, &me2, expires)
                        .ignore()
                        .zrembyscore(INSTANCES, 0, now_ms)
                        .ignore()
                        .zrangebyscore_limit(INSTANCES, now_ms, "+inf", 0, MAX_INSTANCES);
                    let (live,): (Vec<String>,) = pipe.query_async(&mut link).await?;
                    let others: Vec<String> = live.iter().filter(|i| **i != me2).cloned().collect();
                    let keys: Vec<String> = others.iter().map(|i| keys_key(i)).collect();
                    let entries: Vec<Option<String>> = if keys.is_empty() {
                        Vec::new()
                    } else {
                        redis::cmd("MGET").arg(&keys).query_async(&mut link).await?
                    };
                    Ok((live, others, entries, previous))
                })
                .await?;
        if let (Some(prev), Some(last)) = (&previous, last.as_deref()) {
            if prev != last {
                log::error!(
                    "cluster: another instance publishes keys under this instance's name ({me}); give every instance its own cluster.instance"
                );
                crate::telemetry::metrics::cluster_name_clash();
            }
        }
        self.mine.store(Some(Arc::new(mine_copy)));
        let members = &cluster.config.members;
        let allowed = |i: &str| members.is_empty() || members.iter().any(|m| m == i);
        let mut keys = Vec::new();
        for (instance, entry) in others.iter().zip(entries) {
            if let Some(e) = entry.filter(|_| allowed(instance)) {
                keys.extend(valid_keys(instance, &e));
            }
        }
        self.others.store(Some(Arc::new(keys)));
        let n = live.iter().filter(|i| allowed(i)).count().max(1) as u32;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::sig::{generate, load_signer, SigAlg};

    fn jwk(kid: &str) -> Value {
        let signer = load_signer(SigAlg::EcdsaP256, &generate(SigAlg::EcdsaP256).unwrap()).unwrap();
        crate::integrity::jwks::jwk(kid, SigAlg::EcdsaP256, signer.public_key())
    }

    #[test]
    fn an_entry_serves_only_well_formed_keys_of_its_own_instance() {
        let entry = serde_json::to_string(&vec![
            jwk("gw-2/gateway-signing-ecdsa-v1"),
            // Another instance's key id, a name without the prefix, a broken key.
            jwk("gw-1/gateway-signing-ecdsa-v1"),
            jwk("gateway-signing-ecdsa-v1"),
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "gw-2/bad"}),
        ])
        .unwrap();
        let kept = valid_keys("gw-2", &entry);
        let kids: Vec<&str> = kept.iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, ["gw-2/gateway-signing-ecdsa-v1"]);
        // At most MAX_KEYS of one instance; nothing of an oversized or malformed entry.
        let many: Vec<Value> = (0..40).map(|i| jwk(&format!("gw-2/k{i}"))).collect();
        assert_eq!(
            valid_keys("gw-2", &serde_json::to_string(&many).unwrap()).len(),
            MAX_KEYS
        );
        assert!(valid_keys("gw-2", &format!("[{}]", " ".repeat(MAX_ENTRY))).is_empty());
        assert!(valid_keys("gw-2", "{\"keys\": 1}").is_empty());
        // The directory adds the others' keys after this instance's own, once per key id.
        let fleet = Fleet::default();
        fleet.others.store(Some(Arc::new(vec![jwk("gw-2/a"), jwk("gw-2/a")])));
        let dir = fleet.directory(serde_json::json!({"keys": [jwk("gw-1/a")]}));
        let kids: Vec<&str> = dir["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["gw-1/a", "gw-2/a"]);
    }
}
