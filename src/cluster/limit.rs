//! Shared rate limits (`shared: true` on a rate limit): one GCRA bucket per key in Redis, decided
//! atomically by a script that reads Redis's own clock (`TIME`), so every instance spends the
//! same bucket and clocks of the instances do not matter.
//!
//! Reservation (`reserve: N`, default 1): a call may take up to N tokens at once and spend the
//! rest locally, for hot keys. Redis never grants more than the bucket holds, so the fleet never
//! admits more tokens than Redis granted; a reserved token expires unused after the time the
//! bucket takes to refill N tokens (at least 1 s), so at most instances × (N − 1) tokens of a key
//! go unused per that time, and a token is spent at most that long after it was granted.
//!
//! While Redis is unreachable (an error, the deadline, or the breaker open), `on_redis_down`
//! decides: `local` (the default) counts on a local limiter at limit ÷ instances; `deny`
//! refuses with 429 and a Retry-After of the breaker's probe interval.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::Cluster;
use crate::config::access::OnRedisDown;
use crate::config::RateLimitSpec;
use crate::filters::rate_limit::{Decision, RateLimiter};

/// KEYS[1]: the bucket. ARGV: emission interval and bucket size in µs, tokens wanted.
/// Returns granted tokens, tokens left after them, µs until the bucket is full again, and (when
/// nothing was granted) µs until one token is there.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local avail = math.floor((capacity - (tat - now)) / emission)
if avail < 1 then
  return {0, 0, tat - now, tat - now + emission - capacity}
end
local granted = math.min(want, avail)
tat = tat + granted * emission
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return {granted, avail - granted, tat - now, 0}
",
    )
});

/// What a request waiting for a round learns: its decision, or that it leads the next round
/// (for itself and the requests behind it).
enum Turn {
    Decided(Decision),
    Lead(LeadToken),
}

type Rounds = Arc<Mutex<HashMap<Vec<u8>, Vec<tokio::sync::oneshot::Sender<Turn>>>>>;

/// The lead of the next round, in flight to the request that takes it. If that request went
/// away before taking it, dropping it hands the lead on (and the batch it carried falls back).
struct LeadToken {
    rounds: Rounds,
    key: Vec<u8>,
    batch: Option<Vec<tokio::sync::oneshot::Sender<Turn>>>,
}

impl LeadToken {
    fn take(mut self) -> Vec<tokio::sync::oneshot::Sender<Turn>> {
        self.batch.take().unwrap_or_default()
    }
}

impl Drop for LeadToken {
    fn drop(&mut self) {
        if self.batch.is_some() {
            hand_on(&self.rounds, &self.key);
        }
    }
}

/// The next round's lead goes to the first request still waiting for `key`; none: the key is
/// idle and leaves the table.
fn hand_on(rounds: &Rounds, key: &[u8]) {
    let mut waiting = {
        let mut map = rounds.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = map.get_mut(key) else { return };
        if queue.is_empty() {
            map.remove(key);
            return;
        }
        std::mem::take(queue)
    };
    // Sent outside the lock: a refused lead is dropped here, and its drop hands on again.
    let next = waiting.remove(0);
    let token = LeadToken {
        rounds: rounds.clone(),
        key: key.to_vec(),
        batch: Some(waiting),
    };
    if let Err(Turn::Lead(token)) = next.send(Turn::Lead(token)) {
        // That request went away: dropping the token hands on to the next in line, whose
        // batch is the rest.
        drop(token);
    }
}

/// A round in flight: its leader decides for itself and `batch`. Dropped before it finishes
/// (the leader's request went away), it still hands the round on, so no one waits forever.
struct Round<'a> {
    limit: &'a SharedLimit,
    key: &'a [u8],
    now_ns: u64,
    batch: Vec<tokio::sync::oneshot::Sender<Turn>>,
    done: bool,
}

impl Round<'_> {
    /// Hands out the round's decisions (the leader's first), then the lead of the next round.
    fn finish(&mut self, answer: Result<(u64, u64, u64, u64), super::Unavailable>) -> Decision {
        self.done = true;
        let l = self.limit;
        let decide = |i: u64| match answer {
            Ok((granted, left, reset_us, _)) if i < granted => Decision::Allow {
                remaining: left + (granted - 1 - i),
                reset: Duration::from_micros(reset_us),
            },
            Ok((granted, _, reset_us, retry_us)) => Decision::Deny {
                // Nothing granted: the script's wait; granted short: a token's time more.
                retry_after: Duration::from_micros(if granted == 0 {
                    retry_us.max(1)
                } else {
                    (reset_us + l.emission_us).saturating_sub(l.capacity_us).max(1)
                }),
                reset: Duration::from_micros(reset_us),
            },
            Err(e) => l.unanswered(e, self.key, self.now_ns),
        };
        let mine = decide(0);
        for (i, tx) in std::mem::take(&mut self.batch).into_iter().enumerate() {
            let _ = tx.send(Turn::Decided(decide(i as u64 + 1)));
        }
        self.hand_on();
        mine
    }

    fn hand_on(&mut self) {
        hand_on(&self.limit.rounds, self.key);
    }
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The leader's request went away mid-call: its batch is decided by the fallback,
            // and the next round is handed on.
            let l = self.limit;
            for tx in std::mem::take(&mut self.batch) {
                let _ = tx.send(Turn::Decided(l.fall_back(self.key, self.now_ns)));
            }
            self.hand_on();
        }
    }
}

struct Reservation {
    left: u32,
    /// Monotonic ns after which the tokens are not spent.
    expires_ns: u64,
    remaining: u64,
    reset: Duration,
}

pub struct SharedLimit {
    cluster: Arc<Cluster>,
    /// `qv:rl:{rule}:{scope}:{rate}/{per ms}:{burst}:` and the key in hex.
    prefix: String,
    emission_us: u64,
    capacity_us: u64,
    reserve: u32,
    on_down: OnRedisDown,
    spec: RateLimitSpec,
    /// The fallback limiter and the fleet size it was made for.
    fallback: ArcSwap<(u32, Arc<RateLimiter>)>,
    reservations: Mutex<HashMap<Vec<u8>, Reservation>>,
    /// Keys with a call in flight, and the requests waiting for the next round.
    rounds: Rounds,
}

/// Reserved tokens may be spent for at least this long after Redis granted them.
const MIN_RESERVATION: Duration = Duration::from_secs(1);

/// Keys of one rule with reserved tokens, at most (older ones are dropped first).
const MAX_RESERVATIONS: usize = 65_536;

fn fallback_limiter(spec: &RateLimitSpec, instances: u32) -> Arc<RateLimiter> {
    let n = u64::from(instances.max(1));
    // rate ÷ n per `per` is rate per n × `per`.
    Arc::new(RateLimiter::new(
        spec.rate,
        spec.per * instances.max(1),
        (spec.burst / n).max(1),
        spec.max_tracked,
    ))
}

impl SharedLimit {
    pub fn new(cluster: Arc<Cluster>, spec: &RateLimitSpec) -> SharedLimit {
        let emission_us = (spec.per.as_micros() / u128::from(spec.rate.max(1))).max(1) as u64;
        let instances = cluster.instances();
        crate::telemetry::metrics::cluster_fallback_rule(&spec.name);
        SharedLimit {
            // The rule's terms are part of the bucket's name: a rule whose rate, window, burst
            // or scope changes starts a new bucket, and instances mid-rollout with different
            // terms do not share one.
            prefix: format!(
                "qv:rl:{}:{}:{}/{}:{}:",
                spec.name,
                spec.scope.as_str(),
                spec.rate,
                spec.per.as_millis(),
                spec.burst
            ),
            emission_us,
            capacity_us: emission_us.saturating_mul(spec.burst.max(1)),
            reserve: spec.reserve.max(1),
            on_down: spec.on_redis_down,
            fallback: ArcSwap::from_pointee((instances, fallback_limiter(spec, instances))),
            spec: spec.clone(),
            cluster,
            reservations: Mutex::new(HashMap::new()),
            rounds: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A decision without Redis, if this key holds reserved tokens.
    pub fn take_reserved(&self, key: &[u8], now_ns: u64) -> Option<Decision> {
        if self.reserve <= 1 {
            return None;
        }
        let mut map = self.reservations.lock().unwrap_or_else(|p| p.into_inner());
        let r = map.get_mut(key)?;
        if r.left == 0 || now_ns >= r.expires_ns {
            map.remove(key);
            return None;
        }
        r.left -= 1;
        Some(Decision::Allow {
            remaining: r.remaining + u64::from(r.left),
            reset: r.reset,
        })
    }

    /// Decides in Redis, or by the fallback if Redis does not answer in time.
    pub async fn decide(&self, key: &[u8], now_ns: u64) -> Decision {
        if self.reserve <= 1 {
            return self.decide_coalesced(key, now_ns).await;
        }
        match self.gcra(key, self.reserve).await {
            Ok((granted, remaining, reset_us, _)) if granted >= 1 => {
                let reset = Duration::from_micros(reset_us);
                if granted > 1 {
                    let mut map = self.reservations.lock().unwrap_or_else(|p| p.into_inner());
                    if map.len() >= MAX_RESERVATIONS {
                        map.retain(|_, r| r.expires_ns > now_ns);
                        if map.len() >= MAX_RESERVATIONS {
                            map.clear();
                        }
                    }
                    let extra = (granted - 1) as u32;
                    let expires_ns = now_ns + self.reservation_ns(u64::from(extra));
                    match map.get_mut(key) {
                        // Calls that ran at once each reserved: their tokens add up, none is
                        // thrown away.
                        Some(r) if r.expires_ns > now_ns => {
                            r.left += extra;
                            r.expires_ns = r.expires_ns.max(expires_ns);
                            (r.remaining, r.reset) = (remaining, reset);
                        }
                        _ => {
                            map.insert(
                                key.to_vec(),
                                Reservation {
                                    left: extra,
                                    expires_ns,
                                    remaining,
                                    reset,
                                },
                            );
                        }
                    }
                }
                Decision::Allow {
                    remaining: remaining + (granted - 1),
                    reset,
                }
            }
            Ok((_, _, reset_us, retry_us)) => Decision::Deny {
                retry_after: Duration::from_micros(retry_us.max(1)),
                reset: Duration::from_micros(reset_us),
            },
            Err(e) => self.unanswered(e, key, now_ns),
        }
    }

    /// Redis gave no answer in time: the fallback decides.
    fn unanswered(&self, e: super::Unavailable, key: &[u8], now_ns: u64) -> Decision {
        log::debug!(
            "rate limit {}: no answer from Redis ({e:?}), decided by the fallback",
            self.spec.name
        );
        self.fall_back(key, now_ns)
    }

    /// How long reserved tokens may be spent: the time the bucket takes to refill them, but at
    /// least `MIN_RESERVATION` (for fast limits, that time is microseconds).
    fn reservation_ns(&self, tokens: u64) -> u64 {
        (tokens * self.emission_us * 1000).max(MIN_RESERVATION.as_nanos() as u64)
    }

    /// One GCRA call for `want` tokens: (granted, left after them, µs until the bucket is full,
    /// µs until a token when none was granted).
    async fn gcra(&self, key: &[u8], want: u32) -> Result<(u64, u64, u64, u64), super::Unavailable> {
        let mut redis_key = String::with_capacity(self.prefix.len() + 2 * key.len());
        redis_key.push_str(&self.prefix);
        redis_key.push_str(&hex::encode(key));
        let (e, c) = (self.emission_us, self.capacity_us);
        let (g, l, r, t) = self
            .cluster
            .call("rate_limit", |mut link| async move {
                GCRA.key(redis_key)
                    .arg(e)
                    .arg(c)
                    .arg(want)
                    .invoke_async::<(i64, i64, i64, i64)>(&mut link)
                    .await
            })
            .await?;
        Ok((g.max(0) as u64, l.max(0) as u64, r.max(0) as u64, t.max(0) as u64))
    }

    /// Without reservations: requests for one key that arrive while a call for it is in flight
    /// wait for it to end, and are decided together by the next call (`want` = how many):
    /// one Redis call per round trip instead of one per request, each token still charged when
    /// its request is decided, so nothing is admitted beyond the bucket and nothing is
    /// reserved. A partial grant admits the first in line and refuses the rest.
    async fn decide_coalesced(&self, key: &[u8], now_ns: u64) -> Decision {
        let lead = {
            let mut map = self.rounds.lock().unwrap_or_else(|p| p.into_inner());
            match map.get_mut(key) {
                Some(queue) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    queue.push(tx);
                    Err(rx)
                }
                None => {
                    map.insert(key.to_vec(), Vec::new());
                    Ok(Vec::new())
                }
            }
        };
        let batch = match lead {
            Ok(batch) => batch,
            Err(rx) => {
                // Bounded: a round never takes longer than the call's deadline.
                let c = &self.cluster.config;
                let wait = c.timeout.max(c.connect_timeout) + Duration::from_millis(50);
                match tokio::time::timeout(wait, rx).await {
                    Ok(Ok(Turn::Decided(d))) => return d,
                    Ok(Ok(Turn::Lead(token))) => token.take(),
                    _ => return self.fall_back(key, now_ns),
                }
            }
        };
        let mut round = Round {
            limit: self,
            key,
            now_ns,
            batch,
            done: false,
        };
        let want = 1 + round.batch.len() as u32;
        let answer = self.gcra(key, want).await;
        round.finish(answer)
    }

    fn fall_back(&self, key: &[u8], now_ns: u64) -> Decision {
        let decision = match self.on_down {
            OnRedisDown::Local => {
                let instances = self.cluster.instances();
                let current = self.fallback.load();
                let limiter = if current.0 == instances {
                    current.1.clone()
                } else {
                    let l = fallback_limiter(&self.spec, instances);
                    self.fallback.store(Arc::new((instances, l.clone())));
                    l
                };
                limiter.check(key, now_ns)
            }
            OnRedisDown::Deny => Decision::Deny {
                retry_after: self.cluster.config.breaker_probe.max(Duration::from_secs(1)),
                reset: self.spec.per,
            },
        };
        crate::telemetry::metrics::cluster_fallback(&self.spec.name, matches!(decision, Decision::Allow { .. }));
        decision
    }
}

/// The shared limits of the running policy, by rule fingerprint: one per rule however many
/// routes and tiers use it, and kept across reloads that leave the rule as it was (its
/// fallback bucket and reserved tokens with it).
#[derive(Default)]
pub struct SharedRegistry {
    limits: Mutex<HashMap<String, Arc<SharedLimit>>>,
}

impl SharedRegistry {
    pub fn get(&self, cluster: &Arc<Cluster>, spec: &RateLimitSpec) -> Arc<SharedLimit> {
        let mut map = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(spec.fingerprint())
            .or_insert_with(|| Arc::new(SharedLimit::new(cluster.clone(), spec)))
            .clone()
    }

    /// Drops the limits of rules no longer in the policy.
    pub fn retain(&self, live: &[String]) {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|fp, _| live.contains(fp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::access::Scope;

    #[test]
    fn the_fallback_is_the_limit_divided_by_the_instances() {
        let spec = RateLimitSpec {
            name: "r".into(),
            scope: Scope::Route,
            rate: 10,
            per: Duration::from_secs(1),
            burst: 10,
            max_tracked: 1024,
            ipv6_prefix: 64,
            shared: true,
            reserve: 1,
            on_redis_down: OnRedisDown::Local,
        };
        let allowed = |instances: u32| {
            let l = fallback_limiter(&spec, instances);
            (0..20)
                .filter(|_| matches!(l.check(b"k".as_slice(), 1_000_000_000), Decision::Allow { .. }))
                .count()
        };
        // A bucket of 10 for one instance, 5 each for two, 3 each for three, at least 1.
        assert_eq!((allowed(1), allowed(2), allowed(3), allowed(50)), (10, 5, 3, 1));
        // And the rate: one instance of two refills at 5 a second.
        let l = fallback_limiter(&spec, 2);
        let t0 = 1_000_000_000;
        let burst = (0..10)
            .filter(|_| matches!(l.check(b"k".as_slice(), t0), Decision::Allow { .. }))
            .count();
        let later = (0..10)
            .filter(|_| matches!(l.check(b"k".as_slice(), t0 + 1_000_000_000), Decision::Allow { .. }))
            .count();
        assert_eq!((burst, later), (5, 5));
    }
}
