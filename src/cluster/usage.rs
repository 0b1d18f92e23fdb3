//! Quotas and usage for the fleet.
//!
//! Quotas: a tier's daily and monthly counters for a key are two Redis counters changed by one
//! script (check both, then count both), so the fleet never admits past a quota. They expire a
//! day after their UTC window ends. While Redis is unreachable, the tier's
//! `quota_on_redis_down` decides: `local` lets this instance spend its share of what was left
//! when it last heard from Redis (what was left ÷ instances), and adds what it admitted so to
//! the counters with its next call once Redis is back; `deny` answers 503.
//!
//! Usage: each instance counts locally as without a cluster (and keeps `usage.json`), and
//! every `usage_flush` writes its own cumulative counts of each key to the key's Redis hash
//! (fields `i:{instance}:...`, one atomic call per key). Writing totals instead of increments
//! makes a retried or doubled flush harmless; counts made while Redis was away arrive with the
//! first flush after it returns. `/usage` on any instance adds up the instances: the fleet's
//! totals.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use super::{Cluster, Unavailable};
use crate::config::access::OnRedisDown;
use crate::config::TierSpec;
use crate::usage::{days_from_month_index, month_index, Counters, KeyUsageSnapshot, QuotaExceeded, UsageStore};

/// KEYS: the day and month counters. ARGV: daily and monthly limits (-1: none), the Unix
/// seconds each counter expires at, and the requests this instance admitted on its own while
/// Redis was away (added first). Returns {0 counted | 1 daily spent | 2 monthly spent, day
/// count, month count}.
static QUOTA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if tonumber(ARGV[5]) > 0 then
  redis.call('INCRBY', KEYS[1], ARGV[5])
  redis.call('EXPIREAT', KEYS[1], ARGV[3])
end
if tonumber(ARGV[6]) > 0 then
  redis.call('INCRBY', KEYS[2], ARGV[6])
  redis.call('EXPIREAT', KEYS[2], ARGV[4])
end
local d = tonumber(redis.call('GET', KEYS[1]) or '0')
local m = tonumber(redis.call('GET', KEYS[2]) or '0')
local dl = tonumber(ARGV[1])
local ml = tonumber(ARGV[2])
if dl >= 0 and d >= dl then return {1, d, m} end
if ml >= 0 and m >= ml then return {2, d, m} end
d = redis.call('INCR', KEYS[1])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
m = redis.call('INCR', KEYS[2])
redis.call('EXPIREAT', KEYS[2], ARGV[4])
return {0, d, m}
",
    )
});

/// What an instance last heard of a key's quota counters, and what it counted alone since.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    day: u64,
    day_base: u64,
    day_local: u64,
    month: u64,
    month_base: u64,
    month_local: u64,
}

/// Moves `s` to the windows of `day` and `month` (counts of a past window are dropped).
fn roll(s: &mut Seen, day: u64, month: u64) {
    if s.day != day {
        (s.day, s.day_base, s.day_local) = (day, 0, 0);
    }
    if s.month != month {
        (s.month, s.month_base, s.month_local) = (month, 0, 0);
    }
}

/// The quota decisions of one gateway (shared by every policy snapshot).
#[derive(Default)]
pub struct Quotas {
    seen: Mutex<HashMap<String, Seen>>,
}

pub enum QuotaAnswer {
    Counted,
    Exceeded(QuotaExceeded),
    /// Redis unreachable and the tier fails closed.
    Unavailable,
}

fn exceeded(which: i64, now_secs: u64) -> QuotaExceeded {
    let day = now_secs / 86_400;
    if which == 1 {
        QuotaExceeded::Daily {
            reset_in: Duration::from_secs((day + 1) * 86_400 - now_secs),
        }
    } else {
        let next = days_from_month_index(month_index(day) + 1) * 86_400;
        QuotaExceeded::Monthly {
            reset_in: Duration::from_secs(next - now_secs),
        }
    }
}

impl Quotas {
    /// Counts one request of `key_id` against `tier`'s quotas in Redis, or decides by the
    /// tier's fallback.
    pub async fn consume(&self, cluster: &Cluster, key_id: &str, tier: &TierSpec, now_secs: u64) -> QuotaAnswer {
        let day = now_secs / 86_400;
        let month = month_index(day);
        let day_key = format!("qv:quota:{{{key_id}}}:d:{day}");
        let month_key = format!("qv:quota:{{{key_id}}}:m:{month}");
        // Kept a day past their window, for /usage and for instances with a late clock.
        let day_end = (day + 2) * 86_400;
        let month_end = days_from_month_index(month + 1) * 86_400 + 86_400;
        let limit = |q: Option<u64>| q.map_or(-1, |v| v.min(i64::MAX as u64) as i64);
        let (dl, ml) = (limit(tier.daily_quota), limit(tier.monthly_quota));
        // What this instance admitted alone in these windows while Redis was away.
        let (pd, pm) = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let s = seen.entry(key_id.to_string()).or_default();
            roll(s, day, month);
            (s.day_local, s.month_local)
        };
        let answer = cluster
            .call("quota", |mut link| async move {
                QUOTA
                    .key(day_key)
                    .key(month_key)
                    .arg(dl)
                    .arg(ml)
                    .arg(day_end)
                    .arg(month_end)
                    .arg(pd)
                    .arg(pm)
                    .invoke_async::<(i64, u64, u64)>(&mut link)
                    .await
            })
            .await;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let s = seen.entry(key_id.to_string()).or_default();
        roll(s, day, month);
        match answer {
            Ok((which, d, m)) => {
                // The counts sent along are in Redis now.
                s.day_local -= pd.min(s.day_local);
                s.month_local -= pm.min(s.month_local);
                (s.day_base, s.month_base) = (d, m);
                if which == 0 {
                    QuotaAnswer::Counted
                } else {
                    QuotaAnswer::Exceeded(exceeded(which, now_secs))
                }
            }
            Err(e) => {
                let allowed = tier.quota_on_redis_down == OnRedisDown::Local;
                crate::telemetry::metrics::cluster_fallback("quota", allowed);
                if !allowed {
                    log::debug!("quota of {key_id}: Redis unavailable ({e:?}), refused");
                    return QuotaAnswer::Unavailable;
                }
                // This instance's share of what was left when Redis last answered.
                let n = u64::from(cluster.instances());
                let share = |limit: Option<u64>, base: u64| limit.map(|l| l.saturating_sub(base) / n);
                if share(tier.daily_quota, s.day_base).is_some_and(|q| s.day_local >= q) {
                    return QuotaAnswer::Exceeded(exceeded(1, now_secs));
                }
                if share(tier.monthly_quota, s.month_base).is_some_and(|q| s.month_local >= q) {
                    return QuotaAnswer::Exceeded(exceeded(2, now_secs));
                }
                s.day_local += 1;
                s.month_local += 1;
                QuotaAnswer::Counted
            }
        }
    }
}

/// Writes each key's usage, as this instance counted it, to the key's hash in Redis.
///
/// Each instance writes its own cumulative counts (`HSET i:{instance}:requests <total>`, ...),
/// never increments: a flush retried after a deadline, or written by both processes of a
/// graceful upgrade (which share one `usage.json` and so one total), writes the same value
/// again instead of adding it twice. Readers add up the instances. An instance's totals are
/// the ones `usage.json` keeps, so they continue across its restarts.
#[derive(Default)]
pub struct UsageFlusher {
    /// Per key: the counts last written.
    written: Mutex<BTreeMap<String, KeyUsageSnapshot>>,
}

fn hash_key(key_id: &str) -> String {
    format!("qv:usage:{{{key_id}}}")
}

fn counter_fields(out: &mut Vec<(String, u64)>, prefix: &str, c: &Counters) {
    for (name, v) in [
        ("requests", c.requests),
        ("denials", c.denials),
        ("bytes_in", c.bytes_in),
        ("bytes_out", c.bytes_out),
    ] {
        out.push((format!("{prefix}{name}"), v));
    }
}

impl UsageFlusher {
    /// One flush: every key whose counts changed since the last write, each key in one
    /// atomic call of its own (a key's fields share its hash slot; keys do not). How many keys
    /// it wrote; a key that failed is written again with the next flush.
    pub async fn flush(&self, cluster: &Cluster, store: &UsageStore) -> Result<usize, Unavailable> {
        let now = store.snapshot();
        let me = &cluster.config.instance;
        let changed: Vec<(&String, &KeyUsageSnapshot)> = {
            let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
            now.iter()
                .filter(|(id, snap)| written.get(*id) != Some(*snap))
                .collect()
        };
        let deadline = cluster.config.timeout.max(Duration::from_secs(2));
        let mut done = 0;
        let mut failed = None;
        for (id, snap) in changed {
            let mut fields = Vec::new();
            counter_fields(&mut fields, &format!("i:{me}:"), &snap.totals);
            for (route, c) in &snap.routes {
                counter_fields(&mut fields, &format!("i:{me}:route:{route}:"), c);
            }
            fields.push((format!("i:{me}:last_seen"), snap.last_seen));
            let mut pipe = redis::pipe();
            pipe.atomic().hset_multiple(hash_key(id), &fields).ignore();
            let r = cluster
                .background(
                    deadline,
                    |mut link| async move { pipe.query_async::<()>(&mut link).await },
                )
                .await;
            match r {
                Ok(()) => {
                    done += 1;
                    self.written
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.clone(), snap.clone());
                }
                Err(e) => failed = Some(e),
            }
        }
        if failed.is_some() {
            // Redis may have come back without its data: write every key again next time.
            self.written.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
}

/// The fleet's usage of `key_ids`, read from Redis: per key, the instances' totals and
/// per-route counts added up, the latest `last_seen` of any instance, and the fleet's quota
/// counters. One call per key (a key's hash and counters share its hash slot).
pub async fn fleet_usage(
    cluster: &Cluster,
    key_ids: Vec<String>,
    now_secs: u64,
) -> Result<BTreeMap<String, KeyUsageSnapshot>, Unavailable> {
    let day = now_secs / 86_400;
    let month = month_index(day);
    let deadline = cluster.config.timeout.max(Duration::from_secs(2));
    let mut out = BTreeMap::new();
    for id in key_ids {
        let mut pipe = redis::pipe();
        pipe.hgetall(hash_key(&id))
            .get(format!("qv:quota:{{{id}}}:d:{day}"))
            .get(format!("qv:quota:{{{id}}}:m:{month}"));
        let (fields, d, m): (HashMap<String, u64>, Option<u64>, Option<u64>) = cluster
            .background(deadline, |mut link| async move { pipe.query_async(&mut link).await })
            .await?;
        let mut snap = KeyUsageSnapshot {
            quota: crate::usage::QuotaState {
                day,
                day_count: d.unwrap_or(0),
                month,
                month_count: m.unwrap_or(0),
            },
            ..KeyUsageSnapshot::default()
        };
        for (f, v) in fields {
            // `i:{instance}:{field}`; instance names hold no ':'.
            let Some((_, field)) = f.strip_prefix("i:").and_then(|r| r.split_once(':')) else {
                continue;
            };
            let add = |c: &mut Counters, name: &str| match name {
                "requests" => c.requests = c.requests.saturating_add(v),
                "denials" => c.denials = c.denials.saturating_add(v),
                "bytes_in" => c.bytes_in = c.bytes_in.saturating_add(v),
                "bytes_out" => c.bytes_out = c.bytes_out.saturating_add(v),
                _ => {}
            };
            if field == "last_seen" {
                snap.last_seen = snap.last_seen.max(v);
            } else if let Some(rest) = field.strip_prefix("route:") {
                if let Some((route, name)) = rest.rsplit_once(':') {
                    add(snap.routes.entry(route.to_string()).or_default(), name);
                }
            } else {
                add(&mut snap.totals, field);
            }
        }
        out.insert(id, snap);
    }
    Ok(out)
}

/// Flushes usage every `cluster.usage_flush` on the Redis thread. A stop loses nothing for
/// long: the totals are in `usage.json`, and the restarted instance writes them again.
pub fn spawn_flusher(cluster: Arc<Cluster>, store: Arc<UsageStore>) {
    let f = UsageFlusher::default();
    let c = cluster.clone();
    cluster.spawn(async move {
        let mut tick = tokio::time::interval(c.config.usage_flush);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match f.flush(&c, &store).await {
                Ok(n) if n > 0 => log::debug!("cluster: usage of {n} keys flushed"),
                Ok(_) => {}
                Err(e) => {
                    crate::telemetry::metrics::cluster_usage_flush_failed();
                    log::debug!("cluster: usage flush failed ({e:?}); retried with the next one");
                }
            }
        }
    });
}
