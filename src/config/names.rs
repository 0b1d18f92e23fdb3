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
use std::path::{Path, PathBuf};

use super::error::SourceFile;

/// What a name must look like: it travels in headers and names metrics.
pub const NAME_RULE: &str = "names use letters, digits, '-' and '_' (at most 64)";

pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Why a name, or a reference to one, is refused. The text is the config error's message;
/// names are quoted as written (`{name:?}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{}", NAME_RULE)]
    Invalid,
    #[error("duplicate {noun} {key} {name}")]
    Duplicate {
        noun: &'static str,
        key: &'static str,
        name: String,
    },
    #[error("duplicate {noun} {key} {name} (first defined in {})", .first.display())]
    DuplicateOf {
        noun: &'static str,
        key: &'static str,
        name: String,
        first: PathBuf,
    },
    #[error("no {noun} named {name}")]
    Unknown { noun: &'static str, name: String },
    /// With the names that exist.
    #[error("no {noun} named {name} (defined: {known})")]
    UnknownOf {
        noun: &'static str,
        name: String,
        known: String,
    },
}

/// [`NAME_RULE`] as a check.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(NameError::Invalid)
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

    /// An error when `name` is already taken.
    pub fn check_unique(&self, name: &K) -> Result<(), NameError> {
        let Kind { noun, key, .. } = self.kind;
        let quoted = || format!("{name:?}");
        match self.taken.get(name) {
            None => Ok(()),
            Some(file) if self.kind.first_file => Err(NameError::DuplicateOf {
                noun,
                key,
                name: quoted(),
                first: file.to_path_buf(),
            }),
            Some(_) => Err(NameError::Duplicate {
                noun,
                key,
                name: quoted(),
            }),
        }
    }

    /// Takes `name`, defined in `file`.
    pub fn insert(&mut self, name: K, file: &'a Path) {
        self.taken.entry(name).or_insert(file);
    }

    /// [`check_unique`](Self::check_unique), then [`insert`](Self::insert).
    pub fn claim(&mut self, name: &K, file: &'a Path) -> Result<(), NameError> {
        self.check_unique(name)?;
        self.insert(name.clone(), file);
        Ok(())
    }

    /// A reference to `name`: an error when nothing has that name.
    pub fn resolve<Q>(&self, name: &Q) -> Result<(), NameError>
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
            Err(NameError::UnknownOf {
                noun,
                name: format!("{name:?}"),
                known: format!("{known:?}"),
            })
        } else {
            Err(NameError::Unknown {
                noun,
                name: format!("{name:?}"),
            })
        }
    }

    /// The first of a list of references that names nothing: `Err((index, error))`.
    pub fn resolve_all<Q>(&self, names: &[Q]) -> Result<(), (usize, NameError)>
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
            pools.claim(&"api".to_string(), b).unwrap_err().to_string(),
            "duplicate upstream name \"api\" (first defined in a.yaml)"
        );
        assert_eq!(
            pools.resolve("apx").unwrap_err().to_string(),
            "no upstream named \"apx\" (defined: [\"api\"])"
        );
        let mut tiers: Names = Names::new(TIER);
        tiers.claim(&"gold".to_string(), a).unwrap();
        assert_eq!(
            tiers.check_unique(&"gold".to_string()).unwrap_err().to_string(),
            "duplicate tier name \"gold\""
        );
        assert_eq!(
            tiers
                .resolve_all(&["gold".to_string(), "tin".to_string()])
                .map_err(|(i, e)| (i, e.to_string()))
                .unwrap_err(),
            (1, "no tier named \"tin\"".to_string())
        );
        let mut ids: Names<u32> = Names::new(INSPECTION_RULE);
        ids.claim(&5, a).unwrap();
        assert_eq!(
            ids.claim(&5, a).unwrap_err().to_string(),
            "duplicate inspection rule id 5"
        );
    }

    #[test]
    fn the_name_rule() {
        assert!(valid_name("gold_1-a"));
        assert!(!valid_name(""));
        assert!(!valid_name("gold star"));
        assert!(!valid_name(&"a".repeat(65)));
        assert_eq!(check_name("a b").unwrap_err().to_string(), NAME_RULE);
    }
}
