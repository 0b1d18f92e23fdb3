//! Daily and monthly request quotas of the caller's tier (UTC calendar days and months),
//! counted in the key's usage record so they survive restarts.

use super::request::{Denial, FilterState, RequestFilter, RequestInfo};
use crate::usage::QuotaExceeded;

pub struct Quota;

impl RequestFilter for Quota {
    fn name(&self) -> &'static str {
        "quota"
    }

    fn check(&self, r: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
        let Some(key) = &state.key else { return Ok(()) };
        let tier = &key.tier.spec;
        match key
            .usage
            .consume_quota(tier.daily_quota, tier.monthly_quota, r.now.unix_secs)
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let (reason, reset) = match e {
                    QuotaExceeded::Daily { reset_in } => ("quota_daily", reset_in),
                    QuotaExceeded::Monthly { reset_in } => ("quota_monthly", reset_in),
                };
                Err(
                    Denial::new(429, "quota_exceeded", "the request quota of your plan is spent")
                        .reason(reason)
                        .header(http::header::RETRY_AFTER, reset.as_secs().max(1).to_string()),
                )
            }
        }
    }
}
