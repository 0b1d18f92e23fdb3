//! Names of policy items: the one name rule, uniqueness across every policy file, and references
//! from one item to another. Every kind (upstream pools, routes, rate limits, tiers, API keys,
//! inspection rules, alert rules) goes through [`Names`], so their messages have one shape:
//! `duplicate tier name "gold"`, `no rate limit named "burst"`.
//!
//! A registry is filled while the items are converted, one at a time, so a duplicate is reported
//! at the item that repeats a name and that item is then skipped. Pools and routes claim their
//! name before they are checked (a route may refer to a pool whose own settings are wrong, and
//! is not reported twice for it); the other kinds record a name once the item is valid.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

use super::error::SourceFile;

/// What a name must look like: it travels in headers and names metrics.
pub const NAME_RULE: &str = "names use letters, digits, '-' and '_' (at most 64)";

pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// [`NAME_RULE`] as a check.
pub fn check_name(name: &str) -> Result<(), String> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(NAME_RULE.to_string())
    }
}

/// One item of a list in some policy file: the file, the item's index in the list, the item.
pub type Located<'a, T> = (&'a SourceFile, usize, &'a T);

/// The items of one list (`upstreams`, `routes`, ...) of every file, in load order.
pub fn located<'a, F: 'a, T: 'a>(
    files: impl IntoIterator<Item = &'a (&'a SourceFile, F)>,
    list: impl Fn(&'a F) -> &'a [T],
) -> impl Iterator<Item = Located<'a, T>> {
    files
        .into_iter()
        .flat_map(move |(src, raw)| list(raw).iter().enumerate().map(move |(i, item)| (*src, i, item)))
}

/// How the messages of a registry name its items.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// `upstream`, `rate limit`, `API key`.
    pub noun: &'static str,
    /// The field that names an item: `name` or `id`.
    pub key: &'static str,
    /// A duplicate names the file of the first definition.
    pub first_file: bool,
    /// A reference to nothing lists the names that exist.
    pub list_known: bool,
}

impl Kind {
    const fn new(noun: &'static str, key: &'static str) -> Kind {
        Kind {
            noun,
            key,
            first_file: false,
            list_known: false,
        }
    }
}

pub const UPSTREAM: Kind = Kind {
    first_file: true,
    list_known: true,
    ..Kind::new("upstream", "name")
};
pub const ROUTE: Kind = Kind {
    first_file: true,
    ..Kind::new("route", "name")
};
pub const RATE_LIMIT: Kind = Kind::new("rate limit", "name");
pub const TIER: Kind = Kind::new("tier", "name");
pub const API_KEY: Kind = Kind::new("API key", "id");
pub const INSPECTION_RULE: Kind = Kind::new("inspection rule", "id");
pub const ALERT_RULE: Kind = Kind::new("alert rule", "name");

/// The names one kind of item has taken, across every policy file, with the file of each.
#[derive(Debug)]
pub struct Names<'a, K = String> {
    kind: Kind,
    taken: BTreeMap<K, &'a Path>,
}

impl<'a, K: Ord + Debug + Clone> Names<'a, K> {
    pub fn new(kind: Kind) -> Self {
        Names {
            kind,
            taken: BTreeMap::new(),
        }
    }

    /// `Err(message)` when `name` is already taken.
    pub fn check_unique(&self, name: &K) -> Result<(), String> {
        let Kind { noun, key, .. } = self.kind;
        match self.taken.get(name) {
            None => Ok(()),
            Some(file) if self.kind.first_file => Err(format!(
                "duplicate {noun} {key} {name:?} (first defined in {})",
                file.display()
            )),
            Some(_) => Err(format!("duplicate {noun} {key} {name:?}")),
        }
    }

    /// Takes `name`, defined in `file`.
    pub fn insert(&mut self, name: K, file: &'a Path) {
        self.taken.entry(name).or_insert(file);
    }

    /// [`check_unique`](Self::check_unique), then [`insert`](Self::insert).
    pub fn claim(&mut self, name: &K, file: &'a Path) -> Result<(), String> {
        self.check_unique(name)?;
        self.insert(name.clone(), file);
        Ok(())
    }

    /// A reference to `name`: `Err(message)` when nothing has that name.
    pub fn resolve<Q>(&self, name: &Q) -> Result<(), String>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + Debug + ?Sized,
    {
        if self.taken.contains_key(name) {
            return Ok(());
        }
        let noun = self.kind.noun;
        if self.kind.list_known {
            let known: Vec<&K> = self.taken.keys().collect();
            Err(format!("no {noun} named {name:?} (defined: {known:?})"))
        } else {
            Err(format!("no {noun} named {name:?}"))
        }
    }

    /// The first of a list of references that names nothing: `Err((index, message))`.
    pub fn resolve_all<Q>(&self, names: &[Q]) -> Result<(), (usize, String)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + Debug,
    {
        for (i, n) in names.iter().enumerate() {
            self.resolve(n).map_err(|m| (i, m))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_kind_and_the_first_file() {
        let (a, b) = (Path::new("a.yaml"), Path::new("b.yaml"));
        let mut pools: Names = Names::new(UPSTREAM);
        pools.claim(&"api".to_string(), a).unwrap();
        assert_eq!(
            pools.claim(&"api".to_string(), b).unwrap_err(),
            "duplicate upstream name \"api\" (first defined in a.yaml)"
        );
        assert_eq!(
            pools.resolve("apx").unwrap_err(),
            "no upstream named \"apx\" (defined: [\"api\"])"
        );
        let mut tiers: Names = Names::new(TIER);
        tiers.claim(&"gold".to_string(), a).unwrap();
        assert_eq!(
            tiers.check_unique(&"gold".to_string()).unwrap_err(),
            "duplicate tier name \"gold\""
        );
        assert_eq!(
            tiers.resolve_all(&["gold".to_string(), "tin".to_string()]).unwrap_err(),
            (1, "no tier named \"tin\"".to_string())
        );
        let mut ids: Names<u32> = Names::new(INSPECTION_RULE);
        ids.claim(&5, a).unwrap();
        assert_eq!(ids.claim(&5, a).unwrap_err(), "duplicate inspection rule id 5");
    }

    #[test]
    fn the_name_rule() {
        assert!(valid_name("gold_1-a"));
        assert!(!valid_name(""));
        assert!(!valid_name("gold star"));
        assert!(!valid_name(&"a".repeat(65)));
        assert_eq!(check_name("a b").unwrap_err(), NAME_RULE);
    }
}
