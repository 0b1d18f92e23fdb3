//! Upstream pools: round-robin peer selection, passive ejection after connect failures, and the
//! health state that active checks ([`health`]) maintain.
//!
//! A pool belongs to one policy snapshot, but the health of its peers must survive reloads, so
//! peer state lives in a [`PeerRegistry`] keyed by pool name and peer address and is shared by
//! every snapshot that names the same peer.

pub mod health;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::UpstreamSpec;

/// Health of one peer, shared across policy snapshots.
#[derive(Debug)]
pub struct PeerState {
    /// As written in the policy (`host:port`); bounded, so usable as a metric label.
    pub label: String,
    healthy: AtomicBool,
    check_successes: AtomicU32,
    check_failures: AtomicU32,
    passive_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    pub(crate) check_in_flight: AtomicBool,
}

impl PeerState {
    fn new(label: &str) -> PeerState {
        PeerState {
            label: label.to_string(),
            healthy: AtomicBool::new(true),
            check_successes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
            passive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            check_in_flight: AtomicBool::new(false),
        }
    }

    /// Healthy by active checks and not passively ejected at `now`.
    pub fn available(&self, now: u64) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.ejected_until_ms.load(Ordering::Relaxed) <= now
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now
    }

    /// A connect failure. Returns true when this failure ejected the peer.
    pub fn record_connect_failure(&self, now: u64, threshold: u32, eject_ms: u64) -> bool {
        let n = self.passive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= threshold {
            self.passive_failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(now + eject_ms, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A response arrived from this peer.
    pub fn record_success(&self) {
        // Read first: the common case writes nothing, so the cache line stays shared.
        if self.passive_failures.load(Ordering::Relaxed) != 0 {
            self.passive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// One active check result; returns `Some(new_state)` when health flipped.
    pub fn record_check(&self, ok: bool, healthy_threshold: u32, unhealthy_threshold: u32) -> Option<bool> {
        if ok {
            self.check_failures.store(0, Ordering::Relaxed);
            let n = self.check_successes.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.healthy.load(Ordering::Relaxed) && n >= healthy_threshold {
                self.healthy.store(true, Ordering::Relaxed);
                // A peer that passes its checks again is no longer ejected either.
                self.ejected_until_ms.store(0, Ordering::Relaxed);
                return Some(true);
            }
        } else {
            self.check_successes.store(0, Ordering::Relaxed);
            let n = self.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if self.healthy.load(Ordering::Relaxed) && n >= unhealthy_threshold {
                self.healthy.store(false, Ordering::Relaxed);
                return Some(false);
            }
        }
        None
    }
}

#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub state: Arc<PeerState>,
}

/// The pool indices one request has tried, in order, kept inline: the gateway chooses at most
/// 1 + 10 peers (`retries` is at most 10). Pingora may retry a reused connection more often;
/// such tries are counted but not remembered, so they may land on a peer tried before.
#[derive(Debug, Default)]
pub struct Tried {
    idx: [usize; 11],
    len: u8,
    count: u32,
    /// A peer whose pooled connection failed (not the peer): the next choice may fall back to it.
    fallback: Option<usize>,
}

impl Tried {
    pub fn push(&mut self, i: usize) {
        if let Some(slot) = self.idx.get_mut(usize::from(self.len)) {
            *slot = i;
            self.len += 1;
        }
        self.count = self.count.saturating_add(1);
    }

    /// The last peer's pooled connection failed, not the peer: the next choice prefers a peer
    /// not tried yet and falls back to this one (a one-peer pool would otherwise have none).
    /// The try still counts.
    pub fn allow_last_again(&mut self) {
        self.fallback = self.as_slice().last().copied();
    }

    /// The remembered indices.
    pub fn as_slice(&self) -> &[usize] {
        &self.idx[..usize::from(self.len)]
    }

    /// How many peers were tried.
    pub fn count(&self) -> usize {
        self.count as usize
    }
}

#[derive(Debug)]
pub struct Pool {
    pub spec: UpstreamSpec,
    pub peers: Vec<Peer>,
    next: AtomicUsize,
}

impl Pool {
    /// The next available peer in round-robin order, skipping `tried` (indices already used by
    /// this request). `None` when no peer is available.
    pub fn select(&self, tried: &[usize], now: u64) -> Option<usize> {
        let n = self.peers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|idx| !tried.contains(idx) && self.peers[*idx].state.available(now))
    }

    /// Chooses a request's next peer and remembers it: the next available one it has not
    /// tried, else the one whose pooled connection just failed ([`Tried::allow_last_again`]).
    /// Preferring another peer matters when a peer restarts: its pooled connections fail
    /// first, then so does a fresh connection to it.
    pub fn choose(&self, tried: &mut Tried, now: u64) -> Option<usize> {
        let idx = self.select(tried.as_slice(), now).or(tried.fallback)?;
        tried.fallback = None;
        tried.push(idx);
        Some(idx)
    }

    pub fn healthy_count(&self, now: u64) -> usize {
        self.peers.iter().filter(|p| p.state.available(now)).count()
    }

    /// The Pingora peer for `idx` with this pool's TLS settings and timeouts. Used by the proxy
    /// path and by signing routes alike.
    pub fn http_peer(&self, idx: usize) -> pingora::upstreams::peer::HttpPeer {
        let spec = &self.spec;
        let (tls, sni) = match &spec.tls {
            Some(t) => (true, t.sni.clone()),
            None => (false, String::new()),
        };
        let mut peer = pingora::upstreams::peer::HttpPeer::new(self.peers[idx].addr, tls, sni);
        let o = &mut peer.options;
        o.connection_timeout = Some(spec.connect_timeout);
        o.total_connection_timeout = spec.total_connect_timeout;
        o.read_timeout = Some(spec.read_timeout);
        o.write_timeout = Some(spec.write_timeout);
        // None by default: Pingora watches every pooled connection and drops it as soon as the
        // upstream closes it. A timeout here costs a timer per request (see the README).
        o.idle_timeout = spec.idle_timeout;
        if let Some(t) = &spec.tls {
            o.verify_cert = t.verify;
            o.verify_hostname = t.verify;
        }
        peer
    }

    /// A connect failure of peer `idx`: counts towards its passive ejection.
    pub fn connect_failed(&self, idx: usize, now: u64) {
        let p = &self.spec.passive;
        if self.peers[idx]
            .state
            .record_connect_failure(now, p.consecutive_failures, p.eject_for.as_millis() as u64)
        {
            log::warn!(
                "upstream {}: peer {} ejected for {:?} after connect failures",
                self.spec.name,
                self.peers[idx].state.label,
                p.eject_for
            );
        }
    }

    /// Whether a connect failure may be retried on another peer: only idempotent requests
    /// (nothing reached the upstream, so nothing can be applied twice), within `retries`, and
    /// while an untried peer is left. `tried` counts the peers already used, the failed one
    /// included.
    pub fn may_retry(&self, tried: usize, idempotent: bool) -> bool {
        let retries_used = tried.saturating_sub(1) as u32;
        idempotent && retries_used < self.spec.retries && self.peers.len() > tried
    }
}

/// Peer health keyed by (pool, peer label), shared by successive policy snapshots.
#[derive(Default)]
pub struct PeerRegistry {
    states: Mutex<HashMap<(String, String), Arc<PeerState>>>,
}

impl PeerRegistry {
    /// Builds the pools of a new policy, reusing the health of peers that already exist.
    /// Peer host names are resolved here, off the request path.
    pub fn build_pools(&self, specs: &[UpstreamSpec]) -> Result<HashMap<String, Arc<Pool>>, (String, String)> {
        let mut resolved = Vec::new();
        for spec in specs {
            let mut addrs = Vec::new();
            for label in &spec.peers {
                let addr = label
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| (spec.name.clone(), format!("cannot resolve peer {label}")))?;
                addrs.push((label.clone(), addr));
            }
            resolved.push((spec, addrs));
        }
        // Poisoning only happens if a holder panicked; the map is still consistent then.
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut next_states = HashMap::new();
        let mut pools = HashMap::new();
        for (spec, addrs) in resolved {
            let peers = addrs
                .into_iter()
                .map(|(label, addr)| {
                    let key = (spec.name.clone(), label.clone());
                    let state = states
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(PeerState::new(&label)));
                    next_states.insert(key, state.clone());
                    Peer { addr, state }
                })
                .collect();
            pools.insert(
                spec.name.clone(),
                Arc::new(Pool {
                    spec: spec.clone(),
                    peers,
                    next: AtomicUsize::new(0),
                }),
            );
        }
        *states = next_states;
        Ok(pools)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::upstreams::PassiveSpec;
    use std::time::Duration;

    fn spec(peers: &[&str]) -> UpstreamSpec {
        UpstreamSpec {
            name: "p".into(),
            peers: peers.iter().map(|s| s.to_string()).collect(),
            tls: None,
            connect_timeout: Duration::from_secs(1),
            total_connect_timeout: None,
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            idle_timeout: None,
            retries: 1,
            health_check: None,
            passive: PassiveSpec {
                consecutive_failures: 2,
                eject_for: Duration::from_secs(10),
            },
        }
    }

    #[test]
    fn tried_remembers_eleven_and_counts_all() {
        let mut t = Tried::default();
        assert!(t.as_slice().is_empty());
        for i in 0..14 {
            t.push(i * 2);
        }
        assert_eq!(t.count(), 14);
        assert_eq!(t.as_slice(), &(0..11).map(|i| i * 2).collect::<Vec<_>>()[..]);
    }

    /// After a pooled connection failed, the retry goes to another peer when there is one, and
    /// to the same peer in a one-peer pool.
    #[test]
    fn a_failed_pooled_connection_prefers_another_peer() {
        let reg = PeerRegistry::default();
        let pools = reg
            .build_pools(&[spec(&["127.0.0.1:1", "127.0.0.1:2"]), {
                let mut one = spec(&["127.0.0.1:3"]);
                one.name = "one".into();
                one
            }])
            .unwrap();
        for _ in 0..4 {
            let mut t = Tried::default();
            let first = pools["p"].choose(&mut t, 0).unwrap();
            t.allow_last_again();
            let second = pools["p"].choose(&mut t, 0).unwrap();
            assert_ne!(first, second, "another peer first");
            assert_eq!(t.count(), 2);
        }
        let mut t = Tried::default();
        assert_eq!(pools["one"].choose(&mut t, 0), Some(0));
        assert_eq!(
            pools["one"].choose(&mut t, 0),
            None,
            "no peer left without the fallback"
        );
        t.allow_last_again();
        assert_eq!(pools["one"].choose(&mut t, 0), Some(0), "the same peer again");
        assert_eq!(pools["one"].choose(&mut t, 0), None, "once");
    }

    #[test]
    fn round_robin_and_skip_tried() {
        let reg = PeerRegistry::default();
        let pools = reg
            .build_pools(&[spec(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"])])
            .unwrap();
        let pool = &pools["p"];
        let picks: Vec<usize> = (0..6).map(|_| pool.select(&[], 0).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(pool.select(&[0, 1, 2], 0), None);
        let p = pool.select(&[1], 0).unwrap();
        assert_ne!(p, 1);
    }

    #[test]
    fn passive_ejection_expires_on_a_fake_clock() {
        let reg = PeerRegistry::default();
        let pools = reg.build_pools(&[spec(&["127.0.0.1:1", "127.0.0.1:2"])]).unwrap();
        let pool = &pools["p"];
        let s = &pool.peers[0].state;
        assert!(!s.record_connect_failure(1000, 2, 10_000));
        assert!(s.record_connect_failure(1000, 2, 10_000));
        for _ in 0..4 {
            assert_eq!(pool.select(&[], 5000), Some(1));
        }
        assert!(s.available(11_000));
    }

    #[test]
    fn health_thresholds_and_state_survive_rebuild() {
        let reg = PeerRegistry::default();
        let pools = reg.build_pools(&[spec(&["127.0.0.1:1"])]).unwrap();
        let s = pools["p"].peers[0].state.clone();
        assert_eq!(s.record_check(false, 2, 2), None);
        assert_eq!(s.record_check(false, 2, 2), Some(false));
        let again = reg.build_pools(&[spec(&["127.0.0.1:1"])]).unwrap();
        assert!(!again["p"].peers[0].state.is_healthy());
        assert_eq!(s.record_check(true, 2, 2), None);
        assert_eq!(s.record_check(true, 2, 2), Some(true));
    }
}
