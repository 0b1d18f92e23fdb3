//! Per-API-key usage: requests, bytes in and out, denials, last seen, per route, and the daily
//! and monthly quota counters. Kept in memory on the request path (atomics; one short lock for
//! the per-route table), persisted to `data_dir/usage.json` every `flush_interval` and on
//! shutdown (written atomically: temp file, fsync, rename). A crash loses at most the last
//! interval. Served on the admin port as `GET /usage` and `GET /usage/{key_id}`.
//!
//! Two processes may count at once: during a graceful upgrade the old one drains while the new
//! one serves. So a save never overwrites: under an exclusive lock on `usage.json.lock` it reads
//! the file, adds what this process counted since it last read or wrote it, takes in what the
//! other counted meanwhile, and writes the sum.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    pub denials: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuotaState {
    /// Days since the Unix epoch (UTC) the daily count belongs to.
    pub day: u64,
    pub day_count: u64,
    /// `year * 12 + month - 1` (UTC) the monthly count belongs to.
    pub month: u64,
    pub month_count: u64,
}

#[derive(Debug, Default)]
pub struct KeyUsage {
    requests: AtomicU64,
    denials: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    last_seen: AtomicU64,
    routes: Mutex<HashMap<String, Counters>>,
    quota: Mutex<QuotaState>,
    /// What the file held for this key when this process last read or wrote it.
    synced: Mutex<KeyUsageSnapshot>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct KeyUsageSnapshot {
    #[serde(flatten)]
    pub totals: Counters,
    /// Unix seconds of the last request, 0 if never.
    pub last_seen: u64,
    pub routes: BTreeMap<String, Counters>,
    pub quota: QuotaState,
}

/// Why a quota refused a request, and when it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    Daily { reset_in: Duration },
    Monthly { reset_in: Duration },
}

impl KeyUsage {
    pub fn record(&self, route: &str, denied: bool, bytes_in: u64, bytes_out: u64, now_secs: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if denied {
            self.denials.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.last_seen.fetch_max(now_secs, Ordering::Relaxed);
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        // Routes are named in config, so this table is bounded by the policy.
        if !routes.contains_key(route) {
            routes.insert(route.to_string(), Counters::default());
        }
        let Some(c) = routes.get_mut(route) else { return };
        c.requests += 1;
        c.denials += u64::from(denied);
        c.bytes_in += bytes_in;
        c.bytes_out += bytes_out;
    }

    /// Counts one request against the quotas, or says which one is spent.
    pub fn consume_quota(&self, daily: Option<u64>, monthly: Option<u64>, now_secs: u64) -> Result<(), QuotaExceeded> {
        if daily.is_none() && monthly.is_none() {
            return Ok(());
        }
        let day = now_secs / 86_400;
        let month = month_index(day);
        let mut q = self.quota.lock().unwrap_or_else(|p| p.into_inner());
        if q.day != day {
            q.day = day;
            q.day_count = 0;
        }
        if q.month != month {
            q.month = month;
            q.month_count = 0;
        }
        if let Some(limit) = daily {
            if q.day_count >= limit {
                return Err(QuotaExceeded::Daily {
                    reset_in: Duration::from_secs((day + 1) * 86_400 - now_secs),
                });
            }
        }
        if let Some(limit) = monthly {
            if q.month_count >= limit {
                let next = days_from_month_index(month + 1) * 86_400;
                return Err(QuotaExceeded::Monthly {
                    reset_in: Duration::from_secs(next - now_secs),
                });
            }
        }
        q.day_count += 1;
        q.month_count += 1;
        Ok(())
    }

    pub fn snapshot(&self) -> KeyUsageSnapshot {
        KeyUsageSnapshot {
            totals: Counters {
                requests: self.requests.load(Ordering::Relaxed),
                denials: self.denials.load(Ordering::Relaxed),
                bytes_in: self.bytes_in.load(Ordering::Relaxed),
                bytes_out: self.bytes_out.load(Ordering::Relaxed),
            },
            last_seen: self.last_seen.load(Ordering::Relaxed),
            routes: self
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            quota: *self.quota.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    fn restore(s: &KeyUsageSnapshot) -> KeyUsage {
        KeyUsage {
            requests: AtomicU64::new(s.totals.requests),
            denials: AtomicU64::new(s.totals.denials),
            bytes_in: AtomicU64::new(s.totals.bytes_in),
            bytes_out: AtomicU64::new(s.totals.bytes_out),
            last_seen: AtomicU64::new(s.last_seen),
            routes: Mutex::new(s.routes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            quota: Mutex::new(s.quota),
            synced: Mutex::new(s.clone()),
        }
    }

    /// The file's entry for this key (`disk`, absent if the file has none) merged with what this
    /// process counted since its last sync; what another process added to the file meanwhile
    /// is taken into memory too (quotas are shared). Returns the entry to write.
    fn merge_with(&self, disk: Option<&KeyUsageSnapshot>) -> KeyUsageSnapshot {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        let disk = disk.cloned().unwrap_or_else(|| synced.clone());
        // What others counted since our last sync.
        let others = disk.totals.since(&synced.totals);
        self.requests.fetch_add(others.requests, Ordering::Relaxed);
        self.denials.fetch_add(others.denials, Ordering::Relaxed);
        self.bytes_in.fetch_add(others.bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(others.bytes_out, Ordering::Relaxed);
        self.last_seen.fetch_max(disk.last_seen, Ordering::Relaxed);
        {
            let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            for (name, d) in &disk.routes {
                let base = synced.routes.get(name).cloned().unwrap_or_default();
                routes.entry(name.clone()).or_default().add(&d.since(&base));
            }
        }
        {
            let mut q = self.quota.lock().unwrap_or_else(|p| p.into_inner());
            let (d, b) = (disk.quota, synced.quota);
            (q.day, q.day_count) = merge_period((q.day, q.day_count), (d.day, d.day_count), (b.day, b.day_count));
            (q.month, q.month_count) = merge_period(
                (q.month, q.month_count),
                (d.month, d.month_count),
                (b.month, b.month_count),
            );
        }
        let merged = self.snapshot();
        *synced = merged.clone();
        merged
    }
}

impl Counters {
    /// What `self` holds beyond `base` (another process's counts since our last sync).
    fn since(&self, base: &Counters) -> Counters {
        Counters {
            requests: self.requests.saturating_sub(base.requests),
            denials: self.denials.saturating_sub(base.denials),
            bytes_in: self.bytes_in.saturating_sub(base.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(base.bytes_out),
        }
    }

    fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.denials += other.denials;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// One quota period (a day or a month) as `(period, count)`: here, on disk, and at our last
/// sync. On the same period the other's count is what it added since our sync (or all of it if
/// our last sync was in another period); a later period on disk replaces an earlier one here.
fn merge_period(here: (u64, u64), disk: (u64, u64), synced: (u64, u64)) -> (u64, u64) {
    let (period, count) = disk;
    if period == here.0 {
        let others = if period == synced.0 {
            count.saturating_sub(synced.1)
        } else {
            count
        };
        (here.0, here.1 + others)
    } else if period > here.0 {
        disk
    } else {
        here
    }
}

/// Month index (`year * 12 + month - 1`) of a day number, by Howard Hinnant's civil calendar.
pub fn month_index(days: u64) -> u64 {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y * 12 + m - 1) as u64
}

/// First day (days since epoch) of a month index.
pub fn days_from_month_index(idx: u64) -> u64 {
    let (y, m) = ((idx / 12) as i64, (idx % 12 + 1) as i64);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as u64
}

#[derive(Serialize, Deserialize)]
struct UsageFile {
    version: u32,
    keys: BTreeMap<String, KeyUsageSnapshot>,
}

/// Why the usage file cannot be opened; the running counts are never silently reset.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage file {} is corrupt ({error}); move it aside to start counting afresh", .path.display())]
    Corrupt { path: PathBuf, error: serde_json::Error },
    #[error("cannot read usage file {}: {error}", .path.display())]
    Read { path: PathBuf, error: std::io::Error },
}

/// All keys' usage, by key id. Entries survive reloads and restarts; a revoked key's history
/// stays until the file is pruned by hand.
pub struct UsageStore {
    path: Option<PathBuf>,
    keys: RwLock<HashMap<String, Arc<KeyUsage>>>,
    save_lock: Mutex<()>,
}

impl UsageStore {
    /// Opens `path` (missing is fine: no usage yet; unreadable or corrupt is an error, never
    /// silently reset).
    pub fn open(path: Option<PathBuf>) -> Result<UsageStore, UsageError> {
        let mut keys = HashMap::new();
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(bytes) => {
                    let file: UsageFile = serde_json::from_slice(&bytes)
                        .map_err(|error| UsageError::Corrupt { path: p.clone(), error })?;
                    for (id, snap) in &file.keys {
                        keys.insert(id.clone(), Arc::new(KeyUsage::restore(snap)));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(UsageError::Read { path: p.clone(), error }),
            }
        }
        Ok(UsageStore {
            path,
            keys: RwLock::new(keys),
            save_lock: Mutex::new(()),
        })
    }

    /// The usage record of `key_id`, created on first use (at policy load, not per request).
    pub fn entry(&self, key_id: &str) -> Arc<KeyUsage> {
        if let Some(u) = self.keys.read().unwrap_or_else(|p| p.into_inner()).get(key_id) {
            return u.clone();
        }
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key_id.to_string())
            .or_default()
            .clone()
    }

    pub fn snapshot(&self) -> BTreeMap<String, KeyUsageSnapshot> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.snapshot()))
            .collect()
    }

    pub fn get(&self, key_id: &str) -> Option<KeyUsageSnapshot> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .map(|u| u.snapshot())
    }

    /// Merges this process's counts into the file (see the module comment) and writes it
    /// atomically: temp file, fsync, rename, fsync of the folder.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let _one_writer = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PathBuf::from(lock_path))?;
        lock.lock()?;
        let mut keys = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice::<UsageFile>(&bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
                    .keys
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        for (id, usage) in self.keys.read().unwrap_or_else(|p| p.into_inner()).iter() {
            let merged = usage.merge_with(keys.get(id));
            keys.insert(id.clone(), merged);
        }
        let body = serde_json::to_vec_pretty(&UsageFile { version: 1, keys })?;
        write_atomic(path, &body, 0o600)
    }
}

pub fn write_atomic(path: &Path, body: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trip() {
        // 2026-11-28 is day 20785; its month index is 2026*12+10.
        assert_eq!(month_index(20_785), 2026 * 12 + 10);
        assert_eq!(days_from_month_index(2026 * 12 + 10), 20_758); // 2026-11-01
        assert_eq!(days_from_month_index(2026 * 12 + 11 + 1), 20_819); // 2027-01-01
        for d in (0..30_000).step_by(7) {
            let m = month_index(d);
            assert!(days_from_month_index(m) <= d && d < days_from_month_index(m + 1));
        }
    }

    #[test]
    fn quotas_exhaust_and_reset_on_a_fake_clock() {
        let u = KeyUsage::default();
        let t0 = 20_785 * 86_400 + 3600; // 2026-11-28 01:00 UTC
        for _ in 0..3 {
            assert!(u.consume_quota(Some(3), Some(5), t0).is_ok());
        }
        assert_eq!(
            u.consume_quota(Some(3), Some(5), t0),
            Err(QuotaExceeded::Daily {
                reset_in: Duration::from_secs(23 * 3600)
            })
        );
        let next_day = t0 + 86_400;
        assert!(u.consume_quota(Some(3), Some(5), next_day).is_ok());
        assert!(u.consume_quota(Some(3), Some(5), next_day).is_ok());
        match u.consume_quota(Some(3), Some(5), next_day) {
            Err(QuotaExceeded::Monthly { reset_in }) => assert_eq!(reset_in.as_secs(), 20_788 * 86_400 - next_day),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn persists_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.json");
        let store = UsageStore::open(Some(path.clone())).unwrap();
        store.entry("k1").record("api", false, 10, 20, 100);
        store.entry("k1").record("api", true, 1, 2, 200);
        store.save().unwrap();
        let again = UsageStore::open(Some(path.clone())).unwrap();
        let s = again.get("k1").unwrap();
        assert_eq!(
            (s.totals.requests, s.totals.denials, s.totals.bytes_out, s.last_seen),
            (2, 1, 22, 200)
        );
        assert_eq!(s.routes["api"].requests, 2);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(UsageStore::open(Some(path))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("corrupt"));
    }

    #[test]
    fn two_processes_on_one_file_add_up_and_never_overwrite() {
        // A graceful upgrade: the old process drains while the new one, which read the file at
        // start, serves; both flush now and then, in any order.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.json");
        let old = UsageStore::open(Some(path.clone())).unwrap();
        old.entry("k").record("api", false, 1, 1, 100);
        old.save().unwrap();
        let new = UsageStore::open(Some(path.clone())).unwrap();
        for _ in 0..3 {
            old.entry("k").record("api", false, 1, 1, 200);
        }
        old.entry("k").consume_quota(Some(10), None, 200).unwrap();
        for _ in 0..2 {
            new.entry("k").record("api", true, 1, 1, 300);
        }
        new.entry("k").consume_quota(Some(10), None, 300).unwrap();
        new.entry("n").record("api", false, 0, 0, 300);
        old.save().unwrap();
        new.save().unwrap();
        old.save().unwrap(); // again: nothing counted twice
        let file = UsageStore::open(Some(path.clone())).unwrap();
        let k = file.get("k").unwrap();
        assert_eq!((k.totals.requests, k.totals.denials, k.last_seen), (6, 2, 300));
        assert_eq!(k.routes["api"].requests, 6);
        assert_eq!(k.quota.day_count, 2, "both processes' quota use counts");
        assert_eq!(file.get("n").unwrap().totals.requests, 1, "a key only one process saw");
        // Each process now knows the other's counts (quotas are shared).
        assert_eq!(old.get("k").unwrap().totals.requests, 6);
        assert_eq!(new.get("k").unwrap().totals.requests, 6);
    }
}
