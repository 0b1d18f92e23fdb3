//! Daily and monthly request quotas of the caller's tier (UTC calendar days and months),
//! counted in the key's usage record so they survive restarts.

use super::request::{FilterState, Remote, RequestFilter, RequestInfo};
use crate::cluster::usage::QuotaAnswer;
use crate::errors::Denial;
use crate::usage::QuotaExceeded;

pub struct Quota;

impl RequestFilter for Quota {
    fn name(&self) -> &'static str {
        "quota"
    }

    fn check(&self, r: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
        let Some(key) = &state.key else { return Ok(()) };
        let tier = &key.tier.spec;
        if r.policy.cluster.is_some() && (tier.daily_quota.is_some() || tier.monthly_quota.is_some()) {
            // Counted in Redis for the fleet before the next filter runs.
            state.remote.push(Remote::Quota);
            return Ok(());
        }
        key.usage
            .consume_quota(tier.daily_quota, tier.monthly_quota, r.now.unix_secs)
            .map_err(refusal)
    }
}

fn refusal(e: QuotaExceeded) -> Denial {
    let (reason, reset) = match e {
        QuotaExceeded::Daily { reset_in } => ("quota_daily", reset_in),
        QuotaExceeded::Monthly { reset_in } => ("quota_monthly", reset_in),
    };
    Denial::new(429, "quota_exceeded", "the request quota of your plan is spent")
        .check(reason)
        .header(http::header::RETRY_AFTER, reset.as_secs().max(1).to_string())
}

/// Counts the request against the tier's quotas in Redis (cluster mode).
pub async fn settle(r: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
    let (Some(key), Some(cluster)) = (&state.key, &r.policy.cluster) else {
        return Ok(());
    };
    match cluster
        .quotas
        .consume(cluster, &key.spec.id, &key.tier.spec, r.now.unix_secs)
        .await
    {
        QuotaAnswer::Counted => Ok(()),
        QuotaAnswer::Exceeded(e) => Err(refusal(e)),
        QuotaAnswer::Unavailable => Err(Denial::new(
            503,
            "quota_unavailable",
            "the quota of your plan cannot be checked now; retry later",
        )
        .check("quota_unavailable")
        .header(http::header::RETRY_AFTER, "1".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::errors::Reason;
    use crate::filters::request::{denial_header, test_check, test_request_to};
    use crate::policy::{test_key, test_key_entry as key, test_policy, Policy};

    /// 2026-11-28 (day 20785), 01:00 UTC.
    const NOV_28_0100: u64 = 20_785 * 86_400 + 3600;
    const DEC_01: u64 = 20_788 * 86_400;

    fn policy() -> Policy {
        test_policy(&format!(
            "upstreams:\n  - {{ name: u, peers: [\"127.0.0.1:9\"] }}\n\
             tiers:\n  - {{ name: metered, daily_quota: 3, monthly_quota: 5 }}\n  - {{ name: daily, daily_quota: 1 }}\n  - {{ name: free }}\n\
             api_keys:\n{}{}{}{}\
             routes:\n  - {{ name: api, path_prefix: /, upstream: u }}\n",
            key("k1", "metered", 1),
            key("k2", "metered", 2),
            key("d", "daily", 3),
            key("f", "free", 4),
        ))
    }

    /// One request of key `id` through the quota filter at `clock`'s time.
    fn check(p: &Policy, id: &str, clock: &ManualClock) -> Result<(), Denial> {
        let mut state = FilterState {
            key: test_key(p, id),
            ..Default::default()
        };
        let req = test_request_to("GET", "/", &[]);
        test_check(&Quota, p, &req, "192.0.2.1".parse().unwrap(), clock.now(), &mut state)
    }

    fn counts(p: &Policy, id: &str) -> (u64, u64) {
        let key = test_key(p, id).unwrap();
        let q = key.usage.snapshot().quota;
        (q.day_count, q.month_count)
    }

    #[test]
    fn daily_quota_counts_and_denies_with_retry_after() {
        let p = policy();
        let clock = ManualClock::at_unix(NOV_28_0100);
        for _ in 0..3 {
            assert!(check(&p, "k1", &clock).is_ok());
        }
        let d = check(&p, "k1", &clock).unwrap_err();
        assert_eq!(
            (d.status, d.code, d.reason.label().as_ref()),
            (429, "quota_exceeded", "quota_daily")
        );
        assert_eq!(d.message, "the request quota of your plan is spent");
        // 23 hours to midnight UTC.
        assert_eq!(denial_header(&d, "retry-after"), Some("82800"));
        assert_eq!(d.headers.len(), 1);
        // Refused requests are not counted; another key has its own count.
        assert_eq!(counts(&p, "k1"), (3, 3));
        assert!(check(&p, "k2", &clock).is_ok());
        assert_eq!(counts(&p, "k2"), (1, 1));
    }

    #[test]
    fn the_day_resets_at_utc_midnight() {
        let p = policy();
        let clock = ManualClock::at_unix(DEC_01 - 86_400 + 3600); // 2026-11-30 01:00
        assert!(check(&p, "d", &clock).is_ok());
        clock.set_unix(DEC_01 - 1); // 23:59:59
        let d = check(&p, "d", &clock).unwrap_err();
        assert_eq!(
            (d.reason.label().as_ref(), denial_header(&d, "retry-after")),
            ("quota_daily", Some("1"))
        );
        clock.advance(Duration::from_secs(1)); // 2026-12-01 00:00:00
        assert!(check(&p, "d", &clock).is_ok());
        assert_eq!(counts(&p, "d"), (1, 1), "a new day and a new month");
        assert!(check(&p, "d", &clock).is_err());
    }

    #[test]
    fn the_month_resets_on_the_first_and_across_the_year() {
        let p = policy();
        let clock = ManualClock::at_unix(NOV_28_0100);
        for _ in 0..3 {
            assert!(check(&p, "k1", &clock).is_ok());
        }
        clock.advance(Duration::from_secs(86_400)); // 2026-11-29 01:00: a new day
        assert!(check(&p, "k1", &clock).is_ok());
        assert!(check(&p, "k1", &clock).is_ok());
        assert_eq!(counts(&p, "k1"), (2, 5));
        let d = check(&p, "k1", &clock).unwrap_err();
        assert_eq!(d.reason, Reason::Check("quota_monthly"));
        let to_december = (DEC_01 - NOV_28_0100 - 86_400).to_string();
        assert_eq!(denial_header(&d, "retry-after"), Some(to_december.as_str()));
        assert_eq!(to_december, "169200");
        // Still spent on the last second of the month, whatever the day count.
        clock.set_unix(DEC_01 - 1);
        assert_eq!(
            check(&p, "k1", &clock).unwrap_err().reason,
            Reason::Check("quota_monthly")
        );
        clock.set_unix(DEC_01);
        assert!(check(&p, "k1", &clock).is_ok());
        assert_eq!(counts(&p, "k1"), (1, 1));
        // December's month ends at 2027-01-01 00:00 UTC (day 20819).
        for _ in 0..2 {
            assert!(check(&p, "k1", &clock).is_ok());
        }
        clock.set_unix(20_818 * 86_400 + 7200); // 2026-12-31 02:00
        for _ in 0..2 {
            assert!(check(&p, "k1", &clock).is_ok());
        }
        let d = check(&p, "k1", &clock).unwrap_err();
        assert_eq!(
            (d.reason.label().as_ref(), denial_header(&d, "retry-after")),
            ("quota_monthly", Some("79200"))
        );
        clock.advance(Duration::from_secs(79_200));
        assert!(check(&p, "k1", &clock).is_ok(), "January");
    }

    #[test]
    fn no_key_or_no_quota_is_not_limited() {
        let p = policy();
        let clock = ManualClock::at_unix(NOV_28_0100);
        for _ in 0..10 {
            assert!(check(&p, "nobody", &clock).is_ok());
            assert!(check(&p, "f", &clock).is_ok());
        }
        assert_eq!(counts(&p, "f"), (0, 0), "a tier without quotas counts nothing");
    }
}
