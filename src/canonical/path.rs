//! The canonical path: the one spelling of a request path that routing, access control,
//! inspection, logs and the upstream all use.
//!
//! Backends disagree on what a path means: most decode `%70` to `p`, merge `//`, resolve
//! `/./` and `/../` (Python's `unquote` + `posixpath.normpath`, Go's `path.Clean`, nginx),
//! some strip `;` parameters (Tomcat, Spring), some decode `%2F` to a separator and some do
//! not. The gateway picks one meaning and forwards it, and refuses the spellings whose meaning
//! depends on the backend.
//!
//! The canonical form, in order:
//! 1. Percent escapes are decoded to bytes; an invalid escape is refused. Escaped unreserved
//!    characters (`A-Z a-z 0-9 - . _ ~`) become themselves (RFC 3986 6.2.2.2).
//! 2. Escaped `/` and `\` (`%2F`, `%5C`), escaped or raw control bytes and NUL, raw `\`,
//!    double encoding (`%25` followed by two hex digits once decoded) and byte sequences that
//!    are not UTF-8 (overlong forms and surrogates included) are refused or, where
//!    [`PathOptions`] says so, decoded.
//! 3. `;` path parameters are refused, or stripped from each segment (Tomcat's `..;/`).
//! 4. Repeated slashes are merged (or refused); dot segments, raw or escaped, are resolved as
//!    RFC 3986 5.2.4 does (or refused). A path that has both an empty segment and a `..` is
//!    refused: merging first (nginx, Go, Python) and resolving first (RFC 3986, Java's
//!    `URI.normalize`) give two different paths.
//! 5. The result is written with unreserved characters, sub-delimiters, `:` and `@` as
//!    received (raw or escaped), and every other byte as an upper-case `%XX`.
//!
//! The function is idempotent: the canonical form of a canonical path is itself (a property
//! test and a fuzz target check this).

use std::fmt::Write as _;

/// What to do with `%2F` and `%5C` in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// 400: the backend may or may not treat them as separators (Envoy `REJECT_REQUEST`).
    Reject,
    /// They become separators before routing (Envoy `UNESCAPE_AND_FORWARD`).
    Decode,
    /// They stay data inside a segment (Envoy `KEEP_UNCHANGED`): only for backends that do
    /// not decode them before routing.
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backslashes {
    Reject,
    /// A raw `\` is a separator, as Windows servers and some frameworks treat it.
    Slash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathParameters {
    Reject,
    /// `;...` is cut from each segment, as servlet containers do before routing.
    Strip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatedSlashes {
    Merge,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotSegments {
    Resolve,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    pub escaped_slashes: EscapedSlashes,
    pub backslashes: Backslashes,
    pub path_parameters: PathParameters,
    pub repeated_slashes: RepeatedSlashes,
    pub dot_segments: DotSegments,
    /// Refuse `%25` followed by two hex digits (a backend that decodes twice sees another path).
    pub reject_double_encoding: bool,
    /// Refuse the non-ASCII characters that turn into ASCII letters under Unicode case mapping
    /// (`ſ` to `S`, the Kelvin sign to `k`, dotted and dotless `i`, `ß` to `SS`, ligatures such
    /// as `ﬁ` to `FI`): set when any route matches case-insensitively, since a backend folding
    /// with Unicode rules would see `/ſecret` as `/SECRET`.
    pub reject_case_fold_lookalikes: bool,
}

impl Default for PathOptions {
    fn default() -> PathOptions {
        PathOptions {
            escaped_slashes: EscapedSlashes::Reject,
            backslashes: Backslashes::Reject,
            path_parameters: PathParameters::Reject,
            repeated_slashes: RepeatedSlashes::Merge,
            dot_segments: DotSegments::Resolve,
            reject_double_encoding: true,
            reject_case_fold_lookalikes: false,
        }
    }
}

/// Why a path was refused. The message names the rule, never the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("the request target has a fragment")]
    Fragment,
    #[error("the path has an invalid percent escape")]
    InvalidEscape,
    #[error("the path has an escaped '/' or '\\'")]
    EscapedSlash,
    #[error("the path has a '\\'")]
    Backslash,
    #[error("the path has a control byte")]
    ControlByte,
    #[error("the path is not valid UTF-8")]
    InvalidUtf8,
    #[error("the path is percent-encoded twice")]
    DoubleEncoding,
    #[error("the path has ';' parameters")]
    PathParameter,
    #[error("the path has repeated slashes")]
    RepeatedSlash,
    #[error("the path has '.' or '..' segments")]
    DotSegment,
    #[error("the path mixes repeated slashes and '..' segments")]
    AmbiguousDotSegment,
    #[error("the path has a character that changes under case folding")]
    CaseFoldLookalike,
}

impl PathError {
    /// The denial's `reason` label (bounded: one per variant).
    pub fn reason(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path_not_absolute",
            PathError::Fragment => "path_fragment",
            PathError::InvalidEscape => "path_invalid_escape",
            PathError::EscapedSlash => "path_escaped_slash",
            PathError::Backslash => "path_backslash",
            PathError::ControlByte => "path_control_byte",
            PathError::InvalidUtf8 => "path_invalid_utf8",
            PathError::DoubleEncoding => "path_double_encoding",
            PathError::PathParameter => "path_parameter",
            PathError::RepeatedSlash => "path_repeated_slash",
            PathError::DotSegment => "path_dot_segment",
            PathError::AmbiguousDotSegment => "path_ambiguous_dots",
            PathError::CaseFoldLookalike => "path_case_fold",
        }
    }
}

/// One byte of the decoded path and whether it arrived percent-encoded.
#[derive(Clone, Copy)]
struct Unit {
    byte: u8,
    escaped: bool,
}

impl Unit {
    fn is_separator(self) -> bool {
        self.byte == b'/' && !self.escaped
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Sub-delimiters, `:` and `@`: path characters whose escaped and raw forms stay as received
/// (RFC 3986 does not make them equivalent). `;` is handled as a parameter separator first.
fn is_kept_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
    )
}

/// The canonical form of `raw`, the path part of an origin-form request target (no query).
pub fn canonicalize(raw: &[u8], opts: &PathOptions) -> Result<String, PathError> {
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Fast path: a path of plain characters with no dot segments, repeated slashes or
    // parameters is already canonical.
    if is_plain(raw) {
        // Invariant: is_plain admits ASCII only.
        return Ok(String::from_utf8_lossy(raw).into_owned());
    }
    let units = decode(raw, opts)?;
    if opts.reject_double_encoding {
        check_double_encoding(&units)?;
    }
    let bytes: Vec<u8> = units.iter().map(|u| u.byte).collect();
    let text = std::str::from_utf8(&bytes).map_err(|_| PathError::InvalidUtf8)?;
    if opts.reject_case_fold_lookalikes && text.chars().any(folds_to_ascii) {
        return Err(PathError::CaseFoldLookalike);
    }
    let segments = segments(&units, opts)?;
    Ok(write(&segments))
}

/// Whether a non-ASCII character turns into ASCII letters under Unicode's full case mappings,
/// upper, lower, or lower then upper (as `casefold` does): `ſ` to `S`, the Kelvin sign to `k`,
/// `ı` to `I`, `İ` to `i` plus a combining dot, `ß` to `SS`, `ẞ` through `ß` to `SS`, the
/// ligatures (`ﬁ` to `FI`), `ŉ` to `ʼN`. A backend that compares paths with those rules
/// (Python's `upper`/`casefold`, Java's and JavaScript's `toUpperCase`) reads `/ﬁles` as
/// `/FILES`.
fn folds_to_ascii(c: char) -> bool {
    !c.is_ascii()
        && (c.to_uppercase().any(|u| u.is_ascii_alphabetic())
            || c.to_lowercase()
                .any(|l| l.is_ascii_alphabetic() || l.to_uppercase().any(|u| u.is_ascii_alphabetic())))
}

/// Only unreserved characters, kept delimiters and single slashes, no `.` or `..` segment.
fn is_plain(raw: &[u8]) -> bool {
    let mut prev_slash = false;
    let mut seg_start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == b'/' {
            if prev_slash && i > 0 {
                return false;
            }
            if i > 0 && is_dot_segment(&raw[seg_start..i]) {
                return false;
            }
            prev_slash = true;
            seg_start = i + 1;
        } else if is_unreserved(b) || is_kept_delimiter(b) {
            prev_slash = false;
        } else {
            return false;
        }
    }
    !is_dot_segment(&raw[seg_start..])
}

fn is_dot_segment(seg: &[u8]) -> bool {
    seg == b"." || seg == b".."
}

fn decode(raw: &[u8], opts: &PathOptions) -> Result<Vec<Unit>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    raw.get(i + 1).and_then(|&b| hex(b)),
                    raw.get(i + 2).and_then(|&b| hex(b)),
                ) else {
                    return Err(PathError::InvalidEscape);
                };
                let byte = h << 4 | l;
                i += 3;
                if byte < 0x20 || byte == 0x7f {
                    return Err(PathError::ControlByte);
                }
                if byte == b'/' || byte == b'\\' {
                    match opts.escaped_slashes {
                        EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                        EscapedSlashes::Decode => out.push(Unit {
                            byte: b'/',
                            escaped: false,
                        }),
                        EscapedSlashes::Keep => out.push(Unit { byte, escaped: true }),
                    }
                    continue;
                }
                out.push(Unit {
                    byte,
                    escaped: !is_unreserved(byte),
                });
                continue;
            }
            b'#' => return Err(PathError::Fragment),
            b'\\' => match opts.backslashes {
                Backslashes::Reject => return Err(PathError::Backslash),
                Backslashes::Slash => out.push(Unit {
                    byte: b'/',
                    escaped: false,
                }),
            },
            _ if b < 0x20 || b == 0x7f => return Err(PathError::ControlByte),
            _ => out.push(Unit {
                byte: b,
                escaped: false,
            }),
        }
        i += 1;
    }
    Ok(out)
}

/// An escaped `%` followed by two hex digits, raw or escaped: `%2541`, `%25%34%31`.
fn check_double_encoding(units: &[Unit]) -> Result<(), PathError> {
    for w in units.windows(3) {
        if w[0].byte == b'%' && w[0].escaped && hex(w[1].byte).is_some() && hex(w[2].byte).is_some() {
            return Err(PathError::DoubleEncoding);
        }
    }
    Ok(())
}

/// Splits on separators, strips or refuses parameters, merges slashes and resolves dots.
/// The result's last segment is empty when the path ends with a slash.
fn segments(units: &[Unit], opts: &PathOptions) -> Result<Vec<Vec<Unit>>, PathError> {
    // Invariant: units[0] is the leading separator (canonicalize checked raw[0] == '/', and a
    // leading '\' or escaped slash only ever decodes to a separator or is refused... except
    // `Keep`, which cannot apply: raw[0] is a raw '/').
    let mut raw_segments: Vec<Vec<Unit>> = units[1..].split(|u| u.is_separator()).map(|s| s.to_vec()).collect();
    for seg in raw_segments.iter_mut() {
        if let Some(pos) = seg.iter().position(|u| u.byte == b';' && !u.escaped) {
            match opts.path_parameters {
                PathParameters::Reject => return Err(PathError::PathParameter),
                PathParameters::Strip => seg.truncate(pos),
            }
        }
    }
    let last = raw_segments.len() - 1;
    let empty_inner = raw_segments[..last].iter().any(|s| s.is_empty());
    let is_dot = |s: &[Unit]| {
        let b: Vec<u8> = s.iter().map(|u| u.byte).collect();
        is_dot_segment(&b)
    };
    let has_dotdot = raw_segments.iter().any(|s| s.len() == 2 && is_dot(s));
    let has_dot = raw_segments.iter().any(|s| is_dot(s));
    if empty_inner {
        if opts.repeated_slashes == RepeatedSlashes::Reject {
            return Err(PathError::RepeatedSlash);
        }
        if has_dotdot {
            return Err(PathError::AmbiguousDotSegment);
        }
    }
    if has_dot && opts.dot_segments == DotSegments::Reject {
        return Err(PathError::DotSegment);
    }
    // RFC 3986 5.2.4 over segments, with empty inner segments merged away.
    let mut out: Vec<Vec<Unit>> = Vec::with_capacity(raw_segments.len());
    let mut trailing_slash = false;
    for (i, seg) in raw_segments.into_iter().enumerate() {
        let is_last = i == last;
        if is_dot(&seg) {
            if seg.len() == 2 {
                out.pop();
            }
            trailing_slash = is_last;
            continue;
        }
        if seg.is_empty() {
            trailing_slash = is_last;
            continue;
        }
        trailing_slash = false;
        out.push(seg);
    }
    if trailing_slash || out.is_empty() {
        out.push(Vec::new());
    }
    Ok(out)
}

fn write(segments: &[Vec<Unit>]) -> String {
    let mut s = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum::<usize>() * 2);
    for seg in segments {
        s.push('/');
        for u in seg {
            let b = u.byte;
            if is_unreserved(b) || (is_kept_delimiter(b) && !u.escaped) {
                s.push(b as char);
            } else {
                // Writing to a String cannot fail.
                let _ = write!(s, "%{b:02X}");
            }
        }
    }
    s
}

/// Whether `path` (canonical) is under `prefix` (canonical: unreserved characters and `/`).
/// A prefix that ends with `/` also matches the path without it (`/private` for `/private/`),
/// since most backends serve or redirect both to the same handler.
pub fn under_prefix(path: &str, prefix: &str, case_insensitive: bool) -> bool {
    let (p, x) = (path.as_bytes(), prefix.as_bytes());
    let starts = |n: usize| {
        p.len() >= n
            && if case_insensitive {
                p[..n].eq_ignore_ascii_case(&x[..n])
            } else {
                p[..n] == x[..n]
            }
    };
    if starts(x.len()) {
        return true;
    }
    x.len() > 1 && x.ends_with(b"/") && p.len() == x.len() - 1 && starts(x.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(raw: &str) -> Result<String, PathError> {
        canonicalize(raw.as_bytes(), &PathOptions::default())
    }

    #[test]
    fn decodes_unreserved_and_resolves() {
        assert_eq!(c("/%70rivate/data").unwrap(), "/private/data");
        assert_eq!(c("//private/data").unwrap(), "/private/data");
        assert_eq!(c("/a/./private/../private/x").unwrap(), "/a/private/x");
        assert_eq!(c("/public/%2e%2e/private/").unwrap(), "/private/");
        assert_eq!(c("/public/.%2E/private").unwrap(), "/private");
        assert_eq!(c("/../private").unwrap(), "/private");
        assert_eq!(c("/a/..").unwrap(), "/");
        assert_eq!(c("/a/.").unwrap(), "/a/");
        assert_eq!(c("/").unwrap(), "/");
        assert_eq!(c("/a%7eb%2D").unwrap(), "/a~b-");
        assert_eq!(c("/q%3f%20x").unwrap(), "/q%3F%20x");
        assert_eq!(c("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        assert_eq!(
            canonicalize("/café".as_bytes(), &PathOptions::default()).unwrap(),
            "/caf%C3%A9"
        );
        assert_eq!(c("/it's%27").unwrap(), "/it's%27");
        assert_eq!(c("/a<b").unwrap(), "/a%3Cb");
    }

    #[test]
    fn refuses_ambiguous_forms() {
        assert_eq!(c("/private%2fdata"), Err(PathError::EscapedSlash));
        assert_eq!(c("/private%5Cdata"), Err(PathError::EscapedSlash));
        assert_eq!(c("/private\\data"), Err(PathError::Backslash));
        assert_eq!(c("/private%00"), Err(PathError::ControlByte));
        assert_eq!(c("/private%0a"), Err(PathError::ControlByte));
        assert_eq!(c("/private%zz"), Err(PathError::InvalidEscape));
        assert_eq!(c("/private%4"), Err(PathError::InvalidEscape));
        assert_eq!(c("/%2570rivate"), Err(PathError::DoubleEncoding));
        assert_eq!(c("/%25%37%30rivate"), Err(PathError::DoubleEncoding));
        assert_eq!(c("/%C0%AFprivate"), Err(PathError::InvalidUtf8));
        assert_eq!(c("/%ED%A0%80"), Err(PathError::InvalidUtf8));
        assert_eq!(c("/%FF"), Err(PathError::InvalidUtf8));
        assert_eq!(c("/private;x/data"), Err(PathError::PathParameter));
        assert_eq!(c("/a//../private"), Err(PathError::AmbiguousDotSegment));
        assert_eq!(c("private"), Err(PathError::NotAbsolute));
        assert_eq!(c("/a#b"), Err(PathError::Fragment));
        // A literal percent sign stays escaped and is not double encoding.
        assert_eq!(c("/100%25").unwrap(), "/100%25");
    }

    #[test]
    fn options_change_the_outcome() {
        let o = PathOptions {
            escaped_slashes: EscapedSlashes::Decode,
            backslashes: Backslashes::Slash,
            path_parameters: PathParameters::Strip,
            repeated_slashes: RepeatedSlashes::Reject,
            dot_segments: DotSegments::Reject,
            reject_double_encoding: false,
            reject_case_fold_lookalikes: true,
        };
        let c = |p: &str| canonicalize(p.as_bytes(), &o);
        assert_eq!(c("/private%2Fdata").unwrap(), "/private/data");
        assert_eq!(c("/private\\data").unwrap(), "/private/data");
        assert_eq!(c("/private;jsessionid=1/data").unwrap(), "/private/data");
        assert_eq!(c("//private"), Err(PathError::RepeatedSlash));
        assert_eq!(c("/a/../private"), Err(PathError::DotSegment));
        assert_eq!(c("/%2541").unwrap(), "/%2541");
        assert_eq!(c("/%C5%BFecret"), Err(PathError::CaseFoldLookalike));
        // Every character whose full case mapping holds ASCII letters, not only the four
        // single-letter ones: ligatures, sharp s (both cases), n preceded by apostrophe, the
        // Kelvin sign, dotted and dotless i. Letters that stay non-ASCII pass.
        for lookalike in [
            "/%EF%AC%81les",
            "/FI%EF%AC%82ES",
            "/stra%C3%9Fe",
            "/STRA%E1%BA%9EE",
            "/%C5%89ame",
            "/%E2%84%AAey",
            "/pr%C4%B1vate",
            "/%C4%B0nternal",
            "/%EF%AC%80",
            "/%EF%AC%86",
        ] {
            assert_eq!(c(lookalike), Err(PathError::CaseFoldLookalike), "{lookalike}");
        }
        for fine in [
            "/caf%C3%A9",
            "/%D0%BC%D0%B8%D1%80",
            "/%E6%97%A5%E6%9C%AC",
            "/%C3%85ngstr%C3%B6m",
        ] {
            assert!(c(fine).is_ok(), "{fine}");
        }
        let keep = PathOptions {
            escaped_slashes: EscapedSlashes::Keep,
            path_parameters: PathParameters::Strip,
            ..PathOptions::default()
        };
        assert_eq!(canonicalize(b"/a%2fb", &keep).unwrap(), "/a%2Fb");
        // Tomcat's `..;` is a dot segment once its parameter is stripped.
        assert_eq!(canonicalize(b"/public/..;/private/", &keep).unwrap(), "/private/");
    }

    #[test]
    fn prefixes() {
        assert!(under_prefix("/private/data", "/private/", false));
        assert!(under_prefix("/private", "/private/", false));
        assert!(!under_prefix("/privatex", "/private/", false));
        assert!(!under_prefix("/PRIVATE/x", "/private/", false));
        assert!(under_prefix("/PRIVATE/x", "/private/", true));
        assert!(under_prefix("/Private", "/private/", true));
        assert!(under_prefix("/anything", "/", false));
        assert!(under_prefix("/apis", "/api", false));
    }

    #[test]
    fn idempotent_on_samples() {
        for p in [
            "/%70rivate//x/./y/../z/",
            "/a%3Bb/c%3f",
            "/%2525",
            "/ü/%C3%BC",
            "/a b",
            "/%7E%7e",
            "/..",
        ] {
            if let Ok(once) = c(p) {
                assert_eq!(c(&once).unwrap(), once, "{p}");
            }
        }
    }

    /// Property: over random paths built from the pieces that matter (separators, dots and
    /// their escapes, parameters, escapes of every kind, non-ASCII), under every option set,
    /// canonicalisation is idempotent; and with escaped slashes not kept, the fully decoded
    /// canonical path has nothing left to resolve and falls under the same route prefixes as
    /// the canonical path: the route the gateway chose is the route the upstream resolves.
    #[test]
    fn property_idempotent_and_route_stable() {
        use rand::{Rng, SeedableRng};
        const PIECES: &[&str] = &[
            "/", "//", ".", "..", "%2e", "%2E", "%2e%2E", "%2f", "%2F", "%5c", "\\", ";", ";x=1", "a", "B", "private",
            "pr", "ivate", "%70", "%25", "%2541", "%41", "%C3%A9", "\u{e9}", "%FF", "%C0%AF", "%", "%4", "~", "%7E",
            "'", "%27", " ", "%20", "%00", "#", "%3B", "%C5%BF", "=", "+",
        ];
        const PREFIXES: &[&str] = &["/", "/private/", "/a/", "/private", "/B/a", "/pr"];
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let option_sets: Vec<PathOptions> = (0..64)
            .map(|i: u32| PathOptions {
                escaped_slashes: [EscapedSlashes::Reject, EscapedSlashes::Decode, EscapedSlashes::Keep]
                    [(i % 3) as usize],
                backslashes: if i & 4 == 0 {
                    Backslashes::Reject
                } else {
                    Backslashes::Slash
                },
                path_parameters: if i & 8 == 0 {
                    PathParameters::Reject
                } else {
                    PathParameters::Strip
                },
                repeated_slashes: if i & 16 == 0 {
                    RepeatedSlashes::Merge
                } else {
                    RepeatedSlashes::Reject
                },
                dot_segments: if i & 32 == 0 {
                    DotSegments::Resolve
                } else {
                    DotSegments::Reject
                },
                reject_double_encoding: i % 5 != 0,
                reject_case_fold_lookalikes: i % 7 == 0,
            })
            .collect();
        let mut accepted = 0;
        for n in 0..40_000 {
            let mut raw = String::from("/");
            for _ in 0..rng.gen_range(0..10) {
                raw.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
            }
            let opts = &option_sets[n % option_sets.len()];
            let Ok(c) = canonicalize(raw.as_bytes(), opts) else {
                continue;
            };
            accepted += 1;
            assert!(c.is_ascii() && c.starts_with('/'), "{raw:?} -> {c:?}");
            assert_eq!(
                canonicalize(c.as_bytes(), opts).as_deref(),
                Ok(c.as_str()),
                "not idempotent: {raw:?} {opts:?}"
            );
            if opts.escaped_slashes == EscapedSlashes::Keep {
                continue;
            }
            let decoded = crate::canonical::query::decode(c.as_bytes());
            let segs: Vec<&[u8]> = decoded[1..].split(|&b| b == b'/').collect();
            for (i, seg) in segs.iter().enumerate() {
                assert!(!is_dot_segment(seg), "{raw:?} -> {c:?} decodes to a dot segment");
                assert!(
                    !seg.is_empty() || i + 1 == segs.len(),
                    "{raw:?} -> {c:?} decodes to '//'"
                );
            }
            for p in PREFIXES {
                let x = p.as_bytes();
                let backend =
                    decoded.starts_with(x) || (x.len() > 1 && x.ends_with(b"/") && decoded[..] == x[..x.len() - 1]);
                assert_eq!(under_prefix(&c, p, false), backend, "{raw:?} -> {c:?} under {p}");
            }
        }
        assert!(accepted > 5_000, "the generator reaches accepted paths ({accepted})");
    }
}
