//! Request inspection: SQL injection, XSS, path traversal, OS command injection and CRLF
//! header injection, detected on normalised values the way a web application firewall does.
//! The gateway detects and blocks or flags; it never rewrites a payload.
//!
//! What is inspected: the path, query parameter names and values, selected headers, cookies
//! (non-ASCII bytes read lossily, never skipped), and bodies ([`body`]: decompressed, sniffed,
//! JSON walked value by value, form-urlencoded, multipart part headers and contents, XML, and
//! raw text whenever the structure is in doubt).

pub mod body;
pub mod extract;
pub mod normalize;
pub mod record;
pub mod rules;
mod walk;

use regex::bytes::RegexSet;

pub use rules::{Class, Rule};
pub use walk::json_strings;

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule_id: u32,
    pub class: Class,
    pub location: &'static str,
}

/// What inspecting one request may cost (`inspection.max_values`, `inspection.max_depth`):
/// with the body bounded by `max_body`, these bound its CPU (see the README for the worst case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Values (parameters, names, headers, JSON keys and strings, parts, XML values) checked
    /// in one phase (the head, the body); one more is refused, rule 920110.
    pub max_values: u32,
    /// JSON arrays and objects nested deeper are refused, rule 920120.
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_values: 10_000,
            max_depth: 64,
        }
    }
}

/// The rule ids of the limits' refusals.
pub const TOO_MANY_VALUES: u32 = 920110;
pub const TOO_DEEP: u32 = 920120;

/// One phase's scan: the shared inspector and what is left of the request's value budget.
/// It checks like the inspector, and once the budget is spent every check is a finding
/// (rule 920110), which stops the scan.
pub struct Scan<'a> {
    insp: &'a Inspector,
    left: std::cell::Cell<u32>,
    pub limits: Limits,
}

impl<'a> Scan<'a> {
    pub fn new(insp: &'a Inspector, limits: Limits) -> Scan<'a> {
        Scan {
            insp,
            left: std::cell::Cell::new(limits.max_values),
            limits,
        }
    }

    fn spend(&self, location: &'static str) -> Option<Finding> {
        match self.left.get() {
            0 => Some(Finding {
                rule_id: TOO_MANY_VALUES,
                class: Class::Malformed,
                location,
            }),
            n => {
                self.left.set(n - 1);
                None
            }
        }
    }

    /// Empty values (the whitespace between XML elements) cost nothing and are not counted.
    pub fn check(&self, raw: &str, form: bool, location: &'static str) -> Option<Finding> {
        if raw.is_empty() {
            return None;
        }
        self.spend(location).or_else(|| self.insp.check(raw, form, location))
    }

    pub fn check_pair(
        &self,
        name: &str,
        value: &str,
        form: bool,
        name_location: &'static str,
        value_location: &'static str,
    ) -> Option<Finding> {
        self.spend(value_location)
            .or_else(|| self.insp.check_pair(name, value, form, name_location, value_location))
    }

    pub fn check_include(&self, name: &str, value: &str, form: bool, location: &'static str) -> Option<Finding> {
        self.insp.check_include(name, value, form, location)
    }

    /// Another reading of what was already counted (a cookie's name, repeated parameters
    /// joined): not counted again, since its size is bounded by the values it comes from.
    pub fn recheck(&self, raw: &str, form: bool, location: &'static str) -> Option<Finding> {
        self.insp.check(raw, form, location)
    }
}

/// The rule set does not compile (config validation compiles each pattern first, so this is
/// a set too large for the regex engine's limits).
#[derive(Debug, Clone, thiserror::Error)]
#[error("inspection rules do not compile: {0}")]
pub struct CompileError(#[source] regex::Error);

pub struct Inspector {
    rules: Vec<Rule>,
    set: RegexSet,
    /// Whether each rule in `rules` is active (paranoia level and disabled ids).
    active: Vec<bool>,
    /// The active tokenizer rules.
    tokenizers: Vec<rules::TokenizerRule>,
}

impl Inspector {
    /// The built-in rules at `paranoia`, minus `disabled` rule ids.
    pub fn new(paranoia: u8, disabled: &[u32]) -> Inspector {
        // Invariant: the built-in patterns are tested to compile (rules/mod.rs unit test).
        Self::with_rules(paranoia, disabled, &[]).expect("built-in rules compile")
    }

    /// The built-in rules plus the policy's own (`inspection_rules`), at `paranoia`, minus
    /// `disabled` rule ids. Fails only if a pattern does not compile (config validation checks
    /// each one first).
    pub fn with_rules(paranoia: u8, disabled: &[u32], own: &[Rule]) -> Result<Inspector, CompileError> {
        let mut rules = rules::builtin();
        rules.extend(own.iter().cloned());
        // Matched over bytes with ASCII classes: `\w`, `\s` and `\b` stay small, so the lazy
        // DFA of the whole set stays in its cache instead of falling back to the slow engine.
        // Non-ASCII text still matches literally (UTF-8 bytes of the pattern's own literals).
        let set = regex::bytes::RegexSetBuilder::new(rules.iter().map(|r| r.pattern.as_ref()))
            .unicode(false)
            .size_limit(rules::PATTERN_SIZE_LIMIT * (own.len() + 32))
            .dfa_size_limit(16 << 20)
            .build()
            .map_err(CompileError)?;
        let active = rules
            .iter()
            .map(|r| r.paranoia <= paranoia && !disabled.contains(&r.id))
            .collect();
        let tokenizers = rules::tokenizers()
            .into_iter()
            .filter(|t| t.paranoia <= paranoia && !disabled.contains(&t.id))
            .collect();
        Ok(Inspector {
            rules,
            set,
            active,
            tokenizers,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks one `name=value` parameter: the name, the value, and the pair
    /// ([`Inspector::check_include`]).
    pub fn check_pair(
        &self,
        name: &str,
        value: &str,
        form: bool,
        name_location: &'static str,
        value_location: &'static str,
    ) -> Option<Finding> {
        self.check(name, form, name_location)
            .or_else(|| self.check(value, form, value_location))
            .or_else(|| self.check_include(name, value, form, value_location))
    }

    /// For a parameter name that include loaders take (`file`, `page`, `template`, ...), checks
    /// `name=value`, so that a remote URL there is seen as remote file inclusion.
    pub fn check_include(&self, name: &str, value: &str, form: bool, location: &'static str) -> Option<Finding> {
        let bare = name.strip_suffix("[]").unwrap_or(name);
        if value.is_empty() || !rules::is_include_param(bare) {
            return None;
        }
        self.check(&format!("{}={value}", bare.to_ascii_lowercase()), form, location)
    }

    /// Checks one value (`form`: `+` means space).
    pub fn check(&self, raw: &str, form: bool, location: &'static str) -> Option<Finding> {
        if raw.is_empty() {
            return None;
        }
        if !may_match(raw) {
            return None;
        }
        let n = normalize::normalize(raw, form);
        if n.malformed {
            return Some(Finding {
                rule_id: 920100,
                class: Class::Malformed,
                location,
            });
        }
        let hit = |text: &str, only: Option<Class>| {
            // Most values match nothing: `is_match` answers that without allocating.
            if !self.set.is_match(text.as_bytes()) {
                return None;
            }
            self.set
                .matches(text.as_bytes())
                .iter()
                .find(|i| {
                    let r = &self.rules[*i];
                    self.active[*i] && only.is_none_or(|c| r.class == c) && r.scope.applies_to(location)
                })
                .map(|i| Finding {
                    rule_id: self.rules[i].id,
                    class: self.rules[i].class,
                    location,
                })
        };
        hit(&n.text, None)
            .or_else(|| {
                // Shells drop quotes, carets and backslashes inside words (w'h'o'am'i, wh^oami):
                // command rules also see the text without them.
                // Empty expansions (`c$@at`, `w$()hoami`) go the same way.
                if n.text.contains(['\'', '"', '^', '\\', '$', '[']) {
                    let stripped: String = shell_unquote(&n.text);
                    hit(&stripped, Some(Class::Cmdi))
                } else {
                    None
                }
            })
            .or_else(|| n.joined.as_deref().and_then(|j| hit(j, Some(Class::Sqli))))
            .or_else(|| {
                self.tokenizers.iter().find(|t| (t.detect)(&n.text)).map(|t| Finding {
                    rule_id: t.id,
                    class: t.class,
                    location,
                })
            })
    }
}

/// What a shell leaves of a word once it has removed quotes, carets, backslashes and empty
/// expansions (`$@`, `$()`, and `$name` and `${name}` variables, which are unset in an attack:
/// `cat$u /etc${u}/passwd`), with one-character bracket globs read as the character.
fn shell_unquote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '^' | '\\' => {}
            // A one-character bracket glob is that character (`/bin/c[a]t`).
            '[' if {
                let mut look = chars.clone();
                look.next().is_some_and(|c| c != ']') && look.next() == Some(']')
            } =>
            {
                if let Some(c) = chars.next() {
                    out.push(c);
                }
                chars.next();
            }
            '$' => match chars.peek() {
                Some('@') => {
                    chars.next();
                }
                Some('(') if text.contains("$()") => {
                    let mut look = chars.clone();
                    look.next();
                    if look.peek() == Some(&')') {
                        chars.next();
                        chars.next();
                    } else {
                        out.push('$');
                    }
                }
                Some('{') => {
                    // `${name}`: empty like `$name` (`c${u}at`); `${ifs}` is kept for the evasion rule.
                    let name: String = chars
                        .clone()
                        .skip(1)
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    let closed = chars.clone().nth(name.chars().count() + 1) == Some('}');
                    if closed && !name.is_empty() && name != "ifs" {
                        for _ in 0..name.chars().count() + 2 {
                            chars.next();
                        }
                    } else {
                        out.push('$');
                    }
                }
                Some(c) if c.is_ascii_lowercase() || *c == '_' => {
                    let name: String = chars
                        .clone()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    // `$ifs` is a separator, not an empty word: the evasion rule sees it as is.
                    if name == "ifs" {
                        out.push('$');
                    } else {
                        for _ in 0..name.chars().count() {
                            chars.next();
                        }
                    }
                }
                _ => out.push('$'),
            },
            c => out.push(c),
        }
    }
    out
}

/// A cheap pre-check: every rule needs either a metacharacter or an SQL keyword, so values
/// made only of letters, digits, spaces, `-` and `_` without those keywords (ids, names,
/// numbers: most of a JSON body) skip normalisation and matching. The keyword list is what the
/// letter-only rules start from; `corpus_detection_and_false_positive_rates` guards it.
fn may_match(raw: &str) -> bool {
    if raw
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || b == b' ' || b == b'-' || b == b'_'))
    {
        return true;
    }
    // One case-insensitive pass for all keywords (the regex crate turns a literal alternation
    // into a multi-substring search), instead of lower-casing and scanning once per keyword.
    static KEYWORDS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::RegexBuilder::new(
            "union|select|or|and|order|group|having|waitfor|case|xor|sleep|benchmark|exec|drop|insert|delete|update|powershell|pwsh|invoke|iex|whoami|systeminfo|tasklist|ifconfig|ipconfig|netstat|uname|mkfifo|certutil|bitsadmin|rundll|regsvr|mshta|wmic|cscript|ro0ab|aced0005|net user|bash|ncat|netcat|2852039166|a9fea9fe|0x2e|__proto__|prototype|y29zcnn5c3rlbq|kgnvcwpzexn0zw0|gasv|aaeaaad",
        )
        .case_insensitive(true)
        .unicode(false)
        .build()
        // Invariant: a fixed alternation of ASCII literals.
        .expect("keyword alternation compiles")
    });
    KEYWORDS.is_match(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_demo_attack_and_passes_a_search() {
        let i = Inspector::new(1, &[]);
        let f = i.check("1%27%20OR%20%271%27=%271", true, "query").unwrap();
        assert_eq!(f.class, Class::Sqli);
        assert!(i.check("rock+%26+roll+O%27Brien", true, "query").is_none());
        assert!(i
            .check("how to select a good laptop from the store", true, "query")
            .is_none());
        assert_eq!(
            i.check("%c0%ae%c0%ae/etc", false, "path").unwrap().class,
            Class::Malformed
        );
    }

    #[test]
    fn tokenizers_are_paranoia_2_and_can_be_disabled() {
        let patterns: Vec<u32> = rules::builtin().iter().map(|r| r.id).collect();
        let sqli = "1' or '1'='1";
        let xss = "<img src=x onerror=alert(1)>";
        // Paranoia 1: no tokenizer, and with every pattern off nothing fires.
        assert!(Inspector::new(1, &patterns).check(sqli, false, "query").is_none());
        let two = Inspector::new(2, &patterns);
        assert_eq!(two.check(sqli, false, "query").unwrap().rule_id, 942001);
        assert_eq!(two.check(xss, false, "query").unwrap().rule_id, 941001);
        assert!(two.check("rock and roll", false, "query").is_none());
        let off = Inspector::new(2, &[patterns, vec![942001, 941001]].concat());
        assert!(off.check(sqli, false, "query").is_none());
    }
}
