//! Request inspection in the filter chain: path, query, headers and cookies here; bodies in the
//! proxy's body phase ([`inspect_body`]). `block` answers 403 naming the rule id and class
//! (never echoing the payload); `detect` forwards with `X-QV-Inspection` and counts.

use super::chain::{Denial, FilterState, RequestFilter, RequestInfo};
use crate::config::policy::InspectionMode;
use crate::inspect::extract::{inspect, RequestView};
use crate::inspect::Finding;

pub struct Inspection;

pub fn blocked(f: &Finding) -> Denial {
    Denial::new(403, "request_blocked", "")
        .reason(format!("inspection:{}", f.rule_id))
        .with_message(format!(
            "blocked by inspection rule {} ({})",
            f.rule_id,
            f.class.as_str()
        ))
}

pub fn record(route: &str, f: &Finding, action: &'static str) {
    metrics::counter!(
        "quantumvault_inspection_findings_total",
        "route" => route.to_string(),
        "class" => f.class.as_str(),
        "rule" => f.rule_id.to_string(),
        "action" => action
    )
    .increment(1);
}

impl RequestFilter for Inspection {
    fn name(&self) -> &'static str {
        "inspection"
    }

    fn check(&self, r: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
        let Some(route) = r.route else { return Ok(()) };
        let Some(insp) = &route.inspector else { return Ok(()) };
        let spec = &route.spec.inspection;
        let raw = std::str::from_utf8(r.req.raw_path()).unwrap_or("");
        let (path, query) = match raw.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw, None),
        };
        let headers: Vec<(&str, &str)> = r
            .req
            .headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let view = RequestView {
            path,
            query,
            headers,
            content_type: None,
            body: None,
            exclude: &spec.exclude_params,
        };
        let Some(f) = inspect(insp, &view) else { return Ok(()) };
        match spec.mode {
            InspectionMode::Block => {
                record(&route.spec.name, &f, "block");
                Err(blocked(&f))
            }
            InspectionMode::Detect => {
                record(&route.spec.name, &f, "detect");
                state.finding = Some(f);
                Ok(())
            }
            InspectionMode::Off => Ok(()),
        }
    }
}
