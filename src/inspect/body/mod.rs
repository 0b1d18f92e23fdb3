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
    // An unsupported charset is refused before the body phase; here it reads as ASCII.
    let declared_charset = charset(ct).unwrap_or(Charset::AsciiCompatible);
    let text = to_text(body, declared_charset);
    if let Some(f) = inspect_text(insp, ct, text.as_ref(), exclude) {
        return Some(f);
    }
    // A body declared UTF-16 or UTF-32 whose bytes are all printable ASCII (no zero byte, as
    // every UTF-16 ASCII character has): PHP, Go and Werkzeug ignore the charset parameter and
    // read what was sent, so it is inspected that way too.
    let printable = |b: &u8| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e);
    if declared_charset != Charset::AsciiCompatible && !body.is_empty() && body.iter().all(printable) {
        return inspect_text(insp, ct, &String::from_utf8_lossy(body), exclude);
    }
    None
}

/// [`inspect_body`] on the body read as text.
fn inspect_text(insp: &Scan<'_>, ct: &str, text: &str, exclude: &[String]) -> Option<Finding> {
    let media = crate::text::media_type(ct);
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
            .find_map(|(k, v)| insp.check_pair(k, v, true, "form", "form"))
            .or_else(|| {
                let kept = pairs(text).filter(|(k, _)| !exclude.iter().any(|e| e == k));
                crate::inspect::walk::joined_repeats(kept)
                    .iter()
                    .find_map(|j| insp.recheck(j, true, "form"))
            });
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
