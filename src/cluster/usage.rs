//! Quotas and usage for the fleet.
//!
//! Quotas: a tier's daily and monthly counters for a key are two Redis counters changed by one
//! script (check both, then count both), so the fleet never admits past a quota. They expire a
//! day after their UTC window ends. While Redis is unreachable, the tier's
//! `quota_on_redis_down` decides: `local` lets this instance spend its share of what was left
//! when it last heard from Redis (what was left ÷ instances), `deny` answers 503.
//!
//! Usage: each instance counts locally as without a cluster (and keeps `usage.json`), and
//! every `usage_flush` adds what it counted since its last flush to one Redis hash per key
//! (`HINCRBY`). A flush that fails is retried with the next one, so counts made during an
//! outage arrive when Redis is back. `/usage` on any instance reads the hashes: the fleet's
//! totals.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use super::{Cluster, Unavailable};
use crate::config::access::OnRedisDown;
use crate::config::TierSpec;
use crate::usage::{days_from_month_index, month_index, Counters, KeyUsageSnapshot, QuotaExceeded, UsageStore};

/// KEYS: the day and month counters. ARGV: daily and monthly limits (-1: none), the Unix
/// seconds each counter expires at. Returns {0 counted | 1 daily spent | 2 monthly spent, day
/// count, month count}.
static QUOTA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
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
        let answer = cluster
            .call("quota", |mut link| async move {
                QUOTA
                    .key(day_key)
                    .key(month_key)
                    .arg(dl)
                    .arg(ml)
                    .arg(day_end)
                    .arg(month_end)
                    .invoke_async::<(i64, u64, u64)>(&mut link)
                    .await
            })
            .await;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let s = seen.entry(key_id.to_string()).or_default();
        if s.day != day {
            *s = Seen {
                day,
                month: s.month,
                month_base: s.month_base,
                month_local: s.month_local,
                ..Seen::default()
            };
        }
        if s.month != month {
            (s.month, s.month_base, s.month_local) = (month, 0, 0);
        }
        match answer {
            Ok((which, d, m)) => {
                (s.day_base, s.day_local, s.month_base, s.month_local) = (d, 0, m, 0);
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

/// Adds what each key counted since the last flush to its hash in Redis.
pub struct UsageFlusher {
    /// Per key: the local counts already in Redis.
    flushed: Mutex<BTreeMap<String, KeyUsageSnapshot>>,
}

fn hash_key(key_id: &str) -> String {
    format!("qv:usage:{{{key_id}}}")
}

fn add_fields(out: &mut Vec<(String, i64)>, prefix: &str, now: &Counters, base: &Counters) {
    for (name, a, b) in [
        ("requests", now.requests, base.requests),
        ("denials", now.denials, base.denials),
        ("bytes_in", now.bytes_in, base.bytes_in),
        ("bytes_out", now.bytes_out, base.bytes_out),
    ] {
        let d = a.saturating_sub(b);
        if d > 0 {
            out.push((format!("{prefix}{name}"), d.min(i64::MAX as u64) as i64));
        }
    }
}

impl UsageFlusher {
    /// Starts from what `store` holds now: counts of earlier runs were flushed by them.
    pub fn new(store: &UsageStore) -> UsageFlusher {
        UsageFlusher {
            flushed: Mutex::new(store.snapshot()),
        }
    }

    /// One flush; how many keys it wrote.
    pub async fn flush(&self, cluster: &Cluster, store: &UsageStore) -> Result<usize, Unavailable> {
        let now = store.snapshot();
        let mut pipe = redis::pipe();
        let mut written = Vec::new();
        {
            let flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
            for (id, snap) in &now {
                let base = flushed.get(id).cloned().unwrap_or_default();
                let mut fields = Vec::new();
                add_fields(&mut fields, "", &snap.totals, &base.totals);
                for (route, c) in &snap.routes {
                    let b = base.routes.get(route).cloned().unwrap_or_default();
                    add_fields(&mut fields, &format!("route:{route}:"), c, &b);
                }
                if fields.is_empty() {
                    continue;
                }
                let key = hash_key(id);
                for (f, v) in &fields {
                    pipe.hincr(&key, f, *v).ignore();
                }
                pipe.hset(&key, format!("last_seen:{}", cluster.config.instance), snap.last_seen)
                    .ignore();
                written.push(id.clone());
            }
        }
        if written.is_empty() {
            return Ok(0);
        }
        let deadline = cluster.config.timeout.max(Duration::from_secs(2));
        cluster
            .background(
                deadline,
                |mut link| async move { pipe.query_async::<()>(&mut link).await },
            )
            .await?;
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        for id in &written {
            if let Some(s) = now.get(id) {
                flushed.insert(id.clone(), s.clone());
            }
        }
        Ok(written.len())
    }
}

/// The fleet's usage of `key_ids`, read from Redis: per key, totals and per-route counts, and
/// the latest `last_seen` of any instance.
pub async fn fleet_usage(
    cluster: &Cluster,
    key_ids: Vec<String>,
    now_secs: u64,
) -> Result<BTreeMap<String, KeyUsageSnapshot>, Unavailable> {
    let day = now_secs / 86_400;
    let month = month_index(day);
    let mut pipe = redis::pipe();
    for id in &key_ids {
        pipe.hgetall(hash_key(id));
        pipe.get(format!("qv:quota:{{{id}}}:d:{day}"));
        pipe.get(format!("qv:quota:{{{id}}}:m:{month}"));
    }
    let deadline = cluster.config.timeout.max(Duration::from_secs(2));
    type Row = (HashMap<String, u64>, Option<u64>, Option<u64>);
    let values: Vec<redis::Value> = cluster
        .background(deadline, |mut link| async move { pipe.query_async(&mut link).await })
        .await?;
    let mut rows: Vec<Row> = Vec::with_capacity(key_ids.len());
    for chunk in values.chunks(3) {
        let [h, d, m] = chunk else {
            return Err(Unavailable::Error);
        };
        let parse = |v: &redis::Value| -> Option<u64> { redis::from_redis_value_ref(v).ok().flatten() };
        let map: HashMap<String, u64> = redis::from_redis_value_ref(h).map_err(|_| Unavailable::Error)?;
        rows.push((map, parse(d), parse(m)));
    }
    let mut out = BTreeMap::new();
    for (id, (fields, d, m)) in key_ids.into_iter().zip(rows) {
        let mut snap = KeyUsageSnapshot::default();
        snap.quota = crate::usage::QuotaState {
            day,
            day_count: d.unwrap_or(0),
            month,
            month_count: m.unwrap_or(0),
        };
        for (f, v) in fields {
            let set = |c: &mut Counters, name: &str| match name {
                "requests" => c.requests = v,
                "denials" => c.denials = v,
                "bytes_in" => c.bytes_in = v,
                "bytes_out" => c.bytes_out = v,
                _ => {}
            };
            if f.starts_with("last_seen:") {
                snap.last_seen = snap.last_seen.max(v);
            } else if let Some(rest) = f.strip_prefix("route:") {
                if let Some((route, name)) = rest.rsplit_once(':') {
                    set(snap.routes.entry(route.to_string()).or_default(), name);
                }
            } else {
                set(&mut snap.totals, &f);
            }
        }
        out.insert(id, snap);
    }
    Ok(out)
}

/// Flushes usage every `cluster.usage_flush` on the Redis thread, and once more at `stop`.
pub fn spawn_flusher(cluster: Arc<Cluster>, store: Arc<UsageStore>) {
    let f = UsageFlusher::new(&store);
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
