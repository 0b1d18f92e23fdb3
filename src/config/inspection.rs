//! Request inspection: the `inspection` block (policy-wide, and per route onto it) and the
//! policy's own detection rules (`inspection_rules`). A route's block is merged onto the
//! policy-wide one, so that conversion is `merge` (base plus raw block); an own rule stands
//! alone and converts with `TryFrom`. Rule ids are kept unique by `rules`.

use serde::Deserialize;

use super::de;
use super::error::{ConfigError, FieldError};
use super::names::{self, Located, Names};
use crate::inspect::rules::{check_pattern, Class, Rule};

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawInspection {
    /// `block`, `detect` or `off`.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub paranoia: Option<u8>,
    /// Bodies are inspected up to this size (after decompression).
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_body: Option<u64>,
    /// A body over `max_body`: `refuse` (413, the default) or `pass` (its tail uninspected).
    #[serde(default)]
    pub oversize: Option<String>,
    /// Rule ids switched off (the false-positive workflow).
    #[serde(default)]
    pub disabled_rules: Option<Vec<u32>>,
    /// Parameter names (query, form, JSON keys are not matched) never inspected.
    #[serde(default)]
    pub exclude_params: Option<Vec<String>>,
    /// The most values one request's head, or its body, has checked.
    #[serde(default)]
    pub max_values: Option<u32>,
    /// The deepest JSON nesting inspected.
    #[serde(default)]
    pub max_depth: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InspectionMode {
    Off,
    Detect,
    Block,
}

/// What happens to a body larger than `inspection.max_body` (compressed or decompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// 413: nothing reaches the upstream uninspected.
    Refuse,
    /// The prefix is inspected, the rest streams through (counted in
    /// `quantumvault_inspection_oversize_total`).
    Pass,
}

/// Request inspection of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionSpec {
    pub mode: InspectionMode,
    pub paranoia: u8,
    pub max_body: u64,
    pub oversize: Oversize,
    pub disabled_rules: Vec<u32>,
    pub exclude_params: Vec<String>,
    pub limits: crate::inspect::Limits,
}

impl Default for InspectionSpec {
    fn default() -> Self {
        InspectionSpec {
            mode: InspectionMode::Off,
            paranoia: 1,
            max_body: 1 << 20,
            oversize: Oversize::Refuse,
            disabled_rules: Vec::new(),
            exclude_params: Vec::new(),
            limits: crate::inspect::Limits::default(),
        }
    }
}

/// `raw` merged onto `base`; errors name the field below `inspection`.
pub(super) fn merge(base: &InspectionSpec, raw: &RawInspection) -> Result<InspectionSpec, FieldError> {
    let mut s = base.clone();
    if let Some(m) = &raw.mode {
        s.mode = match m.as_str() {
            "block" => InspectionMode::Block,
            "detect" => InspectionMode::Detect,
            "off" => InspectionMode::Off,
            other => return Err(("mode".into(), format!("{other:?} is not one of block, detect, off"))),
        };
    }
    if let Some(p) = raw.paranoia {
        if !(1..=2).contains(&p) {
            return Err(("paranoia".into(), "paranoia levels are 1 and 2".into()));
        }
        s.paranoia = p;
    }
    if let Some(m) = raw.max_body {
        s.max_body = m;
    }
    if let Some(o) = &raw.oversize {
        s.oversize = match o.as_str() {
            "refuse" => Oversize::Refuse,
            "pass" => Oversize::Pass,
            other => return Err(("oversize".into(), format!("{other:?} is not one of refuse, pass"))),
        };
    }
    if let Some(d) = &raw.disabled_rules {
        // Ids are checked against the built-in and the policy's own rules once all files are read.
        s.disabled_rules = d.clone();
    }
    if let Some(e) = &raw.exclude_params {
        s.exclude_params = e.clone();
    }
    if let Some(n) = raw.max_values {
        if !(1..=1_000_000).contains(&n) {
            return Err(("max_values".into(), "1 to 1000000".into()));
        }
        s.limits.max_values = n;
    }
    if let Some(d) = raw.max_depth {
        // serde_json stops at 128 levels on its own; the limit must come first to give a verdict.
        if !(1..=120).contains(&d) {
            return Err(("max_depth".into(), "1 to 120".into()));
        }
        s.limits.max_depth = d;
    }
    Ok(s)
}

/// A detection rule of the policy's own, next to the built-in ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInspectionRule {
    pub id: u32,
    pub class: String,
    #[serde(default = "d_paranoia")]
    pub paranoia: u8,
    pub description: String,
    pub pattern: String,
}

fn d_paranoia() -> u8 {
    1
}

impl TryFrom<&RawInspectionRule> for Rule {
    type Error = FieldError;

    /// Not a built-in id, a known class, a paranoia level of 1 to 4, a pattern that compiles
    /// within the size limit.
    fn try_from(r: &RawInspectionRule) -> Result<Rule, FieldError> {
        if crate::inspect::rules::builtin_ids().contains(&r.id) {
            return Err((
                "id".into(),
                format!(
                    "{} is a built-in rule id; disable it with disabled_rules and add yours under another id",
                    r.id
                ),
            ));
        }
        let class = Class::parse(&r.class).ok_or_else(|| {
            let names: Vec<&str> = Class::OWN.iter().map(|c| c.as_str()).collect();
            ("class".to_string(), format!("one of {}", names.join(", ")))
        })?;
        if !(1..=4).contains(&r.paranoia) {
            return Err(("paranoia".into(), "1 to 4".into()));
        }
        check_pattern(&r.pattern).map_err(|e| ("pattern".to_string(), e.to_string()))?;
        Ok(Rule {
            id: r.id,
            class,
            paranoia: r.paranoia,
            description: r.description.clone().into(),
            pattern: r.pattern.clone().into(),
            scope: crate::inspect::rules::Scope::Everywhere,
        })
    }
}

/// The policy's own detection rules of every file; ids are unique across them.
pub(super) fn rules<'a>(
    items: impl Iterator<Item = Located<'a, RawInspectionRule>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut ids: Names<u32> = Names::new(names::INSPECTION_RULE);
    for (src, i, r) in items {
        let at = |f: &str| format!("inspection_rules[{i}].{f}");
        // Only valid rules take an id, so a built-in id is never a duplicate: it is reported as
        // built-in by the conversion.
        let converted = ids.check_unique(&r.id).map_err(|m| ("id".to_string(), m.to_string()));
        match converted.and_then(|()| Rule::try_from(r)) {
            Ok(rule) => {
                ids.insert(rule.id, &src.path);
                out.push(rule);
            }
            Err((field, msg)) => errors.push(src.error(&at(&field), msg)),
        }
    }
    out
}

/// The ids `disabled_rules` may name: the built-in rules and the policy's own.
pub(super) fn known_rule_ids(own: &[Rule]) -> Vec<u32> {
    let mut known = crate::inspect::rules::builtin_ids();
    known.extend(own.iter().map(|r| r.id));
    known
}

/// A `disabled_rules` entry that names no rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no rule with id {0}")]
pub(super) struct UnknownRule(pub u32);

/// Every id of a `disabled_rules` list names a known rule (the first that does not is reported).
pub(super) fn check_disabled(list: &[u32], known: &[u32]) -> Result<(), UnknownRule> {
    match list.iter().find(|id| !known.contains(id)) {
        Some(bad) => Err(UnknownRule(*bad)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::policy::testing::{load, GOOD};

    #[test]
    fn inspection_oversize_defaults_to_refuse_and_is_checked() {
        let p = load(&format!("inspection:\n  mode: block\n{GOOD}")).unwrap();
        assert_eq!(p.routes[0].inspection.oversize, Oversize::Refuse);
        let p = load(&format!("inspection:\n  mode: block\n  oversize: pass\n{GOOD}")).unwrap();
        assert_eq!(p.routes[0].inspection.oversize, Oversize::Pass);
        let e = load(&format!("inspection:\n  oversize: drop\n{GOOD}")).unwrap_err();
        assert_eq!(e.0[0].field, "inspection.oversize", "{e}");
        assert!(e.0[0].message.contains("not one of refuse, pass"), "{e}");
        let e = load(&format!("inspection:\n  over_size: pass\n{GOOD}")).unwrap_err();
        assert!(e.0[0].message.contains("unknown field `over_size`"), "{e}");
    }

    #[test]
    fn inspection_limits_default_and_are_checked() {
        let p = load(&format!("inspection:\n  mode: block\n{GOOD}")).unwrap();
        assert_eq!(p.routes[0].inspection.limits, crate::inspect::Limits::default());
        let p = load(&format!("inspection:\n  max_values: 500\n  max_depth: 16\n{GOOD}")).unwrap();
        assert_eq!(p.routes[0].inspection.limits.max_values, 500);
        assert_eq!(p.routes[0].inspection.limits.max_depth, 16);
        for (yaml, field) in [
            ("max_values: 0", "inspection.max_values"),
            ("max_depth: 200", "inspection.max_depth"),
        ] {
            let e = load(&format!("inspection:\n  {yaml}\n{GOOD}")).unwrap_err();
            assert_eq!(e.0[0].field, field, "{e}");
        }
    }
}
