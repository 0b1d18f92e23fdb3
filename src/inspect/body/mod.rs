//! Request bodies as the application behind the gateway will parse them: decompressed
//! (`Content-Encoding` gzip and deflate, bounded), transcoded (UTF-16 and UTF-32), and split
//! into values by what the body is, not only by what its `Content-Type` says. Go's
//! `json.NewDecoder` and PHP parse a body whatever its type, so a JSON document sent as
//! `text/plain` is walked as JSON; a body whose structure the gateway cannot confirm is also
//! inspected as raw text, so no choice of type skips inspection.
//!
//! Structures: JSON (every key and string), form-urlencoded (names and values), multipart (part
//! header values such as `name`, `filename` and the part's type, and each part's content; CRLF
//! or bare LF line ends; every `boundary` the header names and the one the first line uses),
//! XML (text, CDATA, attribute values and the DOCTYPE's internal subset).

use super::walk::{json_unescape_lossy, json_walk, pairs};
use super::{Finding, Inspector, Limits, Scan};

mod charset;
mod coding;
mod multipart;
mod xml;

pub use charset::{charset, param_values, to_text, Charset};
pub use coding::{content_codings, decode, Coding};
use multipart::{multipart, Parts};
use xml::xml;

/// Why a body cannot be inspected; each becomes a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request's Content-Encoding is not gzip or deflate")]
    UnsupportedEncoding,
    #[error("the request's charset is not one the gateway can inspect")]
    UnsupportedCharset,
    #[error("the request has more than one Content-Type")]
    AmbiguousContentType,
    #[error("the request body is larger than the inspection limit")]
    TooLarge,
    #[error("the request body does not decode with its Content-Encoding")]
    Corrupt,
}

/// What a body is, by its declared type or by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Form,
    Multipart,
    Xml,
    Text,
}

fn declared_kind(media: &str) -> Kind {
    if media.contains("json") {
        Kind::Json
    } else if media == "application/x-www-form-urlencoded" {
        Kind::Form
    } else if media.starts_with("multipart/") {
        Kind::Multipart
    } else if media.contains("xml") {
        Kind::Xml
    } else {
        Kind::Text
    }
}

/// The boundary a multipart body's first line uses (`--xxx`), if it starts with one.
fn first_line_boundary(text: &str) -> Option<&str> {
    let line = text.trim_start_matches(['\r', '\n']).lines().next()?;
    let b = line.strip_prefix("--")?.trim_end();
    (!b.is_empty() && b.len() <= 200 && !b.contains(char::is_whitespace)).then_some(b)
}

/// `name=value&...`: a name of URL characters, then `=`, and no line breaks.
fn looks_like_form(text: &str) -> bool {
    let t = text.trim();
    let Some((name, _)) = t.split_once('=') else {
        return false;
    };
    !name.is_empty()
        && !t.contains(['\n', '\r'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.[]%+*~".contains(&b))
}

fn sniff(text: &str) -> Kind {
    let t = text.trim_start();
    match t.as_bytes().first() {
        Some(b'{' | b'[' | b'"') => Kind::Json,
        Some(b'<') => Kind::Xml,
        _ if first_line_boundary(t).is_some() => Kind::Multipart,
        _ if looks_like_form(t) => Kind::Form,
        _ => Kind::Text,
    }
}

/// The first finding in a body. `content_type` is the request's (one value, as sent).
pub fn inspect_body(
    insp: &Inspector,
    content_type: Option<&str>,
    body: &[u8],
    exclude: &[String],
    limits: Limits,
) -> Option<Finding> {
    let insp = &Scan::new(insp, limits);
    let ct = content_type.unwrap_or("");
    let media = crate::text::media_type(ct);
    // An unsupported charset is refused before the body phase; here it reads as ASCII.
    let text = to_text(body, charset(ct).unwrap_or(Charset::AsciiCompatible));
    let text = text.as_ref();
    let declared = declared_kind(&media);
    let sniffed = sniff(text);
    let is = |k: Kind| declared == k || sniffed == k;
    // Whether the declared type's structure read the whole body, every value of it checked.
    // Otherwise the raw text is inspected too.
    let mut covered = false;
    if is(Kind::Json) {
        if let Some(found) = json_walk::walk(text.as_bytes(), exclude, insp.limits.max_depth, |s, key| {
            insp.check(s, false, "json")
                .or_else(|| key.and_then(|k| insp.check_include(k, s, false, "json")))
        }) {
            if found.is_some() {
                return found;
            }
            covered |= declared == Kind::Json;
        }
    }
    if is(Kind::Form) {
        let found = pairs(text)
            .filter(|(k, _)| !exclude.iter().any(|e| e == k))
            .find_map(|(k, v)| insp.check_pair(k, v, true, "form", "form"));
        if found.is_some() {
            return found;
        }
        // A declared form that does not look like one (`1' OR '1'='1`) is in doubt.
        covered |= declared == Kind::Form && looks_like_form(text);
    }
    if is(Kind::Multipart) {
        let mut candidates = param_values(ct, "boundary");
        if let Some(b) = first_line_boundary(text) {
            if !candidates.contains(&b) {
                candidates.push(b);
            }
        }
        for b in candidates {
            match multipart(insp, text, b, exclude) {
                Parts::Found(f) => return Some(f),
                Parts::Clean => covered |= declared == Kind::Multipart,
                Parts::None => {}
            }
        }
    }
    if is(Kind::Xml) {
        match xml(insp, text) {
            Err(f) => return Some(f),
            Ok(complete) => covered |= declared == Kind::Xml && complete,
        }
    }
    if covered {
        return None;
    }
    // Raw text: JSON's string escapes decoded where the body may be JSON, so `\u0027` cannot
    // hide a quote from a parser that accepts what serde_json refused.
    if is(Kind::Json) || text.contains("\\u") {
        insp.check(&json_unescape_lossy(text), false, "body")
    } else {
        insp.check(text, false, "body")
    }
}

#[cfg(test)]
mod tests;
