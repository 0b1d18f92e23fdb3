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

use std::borrow::Cow;
use std::io::Read;

use super::walk::{json_unescape_lossy, json_walk, pairs};
use super::{Finding, Inspector, Limits, Scan};

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

/// A content coding the gateway can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// zlib-wrapped, or raw deflate (servers accept both).
    Deflate,
}

/// Codings stacked deeper than this are refused (one is usual; two is already odd).
const MAX_CODINGS: usize = 2;

/// The codings of every `Content-Encoding` value, in the order they were applied. Names are
/// case-insensitive (`GZIP`); `identity` means none.
pub fn content_codings<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Vec<Coding>, BodyError> {
    let mut out = Vec::new();
    for v in values {
        for token in v.split(|b| *b == b',') {
            let token = token.trim_ascii();
            let coding = if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
                continue;
            } else if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
                Coding::Gzip
            } else if token.eq_ignore_ascii_case(b"deflate") {
                Coding::Deflate
            } else {
                return Err(BodyError::UnsupportedEncoding);
            };
            out.push(coding);
        }
    }
    if out.len() > MAX_CODINGS {
        return Err(BodyError::UnsupportedEncoding);
    }
    Ok(out)
}

/// Reads `r` to its end or to `max + 1` bytes, whichever is first.
fn read_bounded(mut r: impl Read, max: u64) -> Result<Vec<u8>, (Vec<u8>, BodyError)> {
    let mut out = Vec::new();
    let limit = max.saturating_add(1);
    match r.by_ref().take(limit).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > max => Err((out, BodyError::TooLarge)),
        Ok(_) => Ok(out),
        Err(_) => Err((out, BodyError::Corrupt)),
    }
}

/// A zlib stream starts with a CMF/FLG pair whose 16-bit value is a multiple of 31 and whose
/// method is 8 (RFC 1950); anything else under `deflate` is taken as raw deflate.
fn is_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// Undoes `codings` (last applied, first undone), never producing more than `max` bytes: a
/// small body that expands past the bound is `TooLarge`, however it was built. On error the
/// bytes decoded so far come back too (what `oversize: pass` inspects).
pub fn decode(body: &[u8], codings: &[Coding], max: u64) -> Result<Vec<u8>, (Vec<u8>, BodyError)> {
    let mut cur = Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        let next = match coding {
            Coding::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(&cur[..]), max),
            Coding::Deflate if is_zlib(&cur) => read_bounded(flate2::read::ZlibDecoder::new(&cur[..]), max),
            Coding::Deflate => read_bounded(flate2::read::DeflateDecoder::new(&cur[..]), max),
        };
        cur = Cow::Owned(next?);
    }
    Ok(cur.into_owned())
}

/// How a body's bytes become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 and the charsets whose ASCII range is ASCII (Latin-1, Windows code pages, the
    /// East Asian multi-byte sets): read as UTF-8, lossily, so every ASCII metacharacter shows.
    AsciiCompatible,
    Utf16Le,
    Utf16Be,
    Utf32Le,
    Utf32Be,
}

/// Charsets whose bytes 0x00-0x7f mean ASCII. Others (EBCDIC `ibm037`, `utf-7`, ...) spell
/// `<` or `'` differently, so the rules would not see them: those bodies are refused.
fn ascii_compatible(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "utf-8",
        "utf8",
        "us-ascii",
        "ascii",
        "latin1",
        "l1",
        "shift_jis",
        "sjis",
        "windows-31j",
        "euc-jp",
        "euc-kr",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "koi8-r",
        "koi8-u",
        "tis-620",
    ];
    EXACT.contains(&name)
        || name.strip_prefix("iso-8859-").is_some_and(|n| n.parse::<u8>().is_ok())
        || name
            .strip_prefix("windows-125")
            .is_some_and(|n| n.len() == 1 && n.as_bytes()[0].is_ascii_digit())
        || name
            .strip_prefix("cp125")
            .is_some_and(|n| n.len() == 1 && n.as_bytes()[0].is_ascii_digit())
}

/// Every value of parameter `param` in a `Content-Type` (case-insensitive name, quotes removed).
/// All occurrences count: a parameter given twice, or named inside another's quoted value, may
/// be read either way by the application, so callers consider each.
pub fn param_values<'a>(content_type: &'a str, param: &str) -> Vec<&'a str> {
    let lower = content_type.to_ascii_lowercase();
    let needle = format!("{param}=");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle) {
        let at = from + i;
        from = at + needle.len();
        // A parameter name starts after `;`, whitespace, or a quote.
        let before = lower[..at].trim_end().chars().last();
        if !matches!(before, Some(';' | '"' | ',') | None) && at != 0 {
            continue;
        }
        let rest = content_type[from..].trim_start();
        let value = match rest.strip_prefix('"') {
            Some(q) => q.split('"').next().unwrap_or(""),
            None => rest.split([';', ',', ' ', '"']).next().unwrap_or(""),
        };
        if !value.is_empty() && !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// The charset a body is read with: its `Content-Type`'s `charset` (more than one distinct
/// value is refused: the application may read either), or ASCII-compatible.
pub fn charset(content_type: &str) -> Result<Charset, BodyError> {
    let names = param_values(content_type, "charset");
    if names.len() > 1 {
        return Err(BodyError::UnsupportedCharset);
    }
    let Some(name) = names.first() else {
        return Ok(Charset::AsciiCompatible);
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "utf-16" | "utf-16le" => Charset::Utf16Le,
        "utf-16be" => Charset::Utf16Be,
        "utf-32" | "utf-32le" => Charset::Utf32Le,
        "utf-32be" => Charset::Utf32Be,
        n if ascii_compatible(n) => Charset::AsciiCompatible,
        _ => return Err(BodyError::UnsupportedCharset),
    })
}

/// The body as text. A byte-order mark wins over the declared charset (as in browsers and
/// Jackson); without either, the zero-byte pattern of the first four bytes finds UTF-16 and
/// UTF-32 (RFC 4627 section 3: a document starts with ASCII).
pub fn to_text(body: &[u8], declared: Charset) -> Cow<'_, str> {
    let (charset, rest) = match body {
        [0xef, 0xbb, 0xbf, rest @ ..] => (Charset::AsciiCompatible, rest),
        [0x00, 0x00, 0xfe, 0xff, rest @ ..] => (Charset::Utf32Be, rest),
        [0xff, 0xfe, 0x00, 0x00, rest @ ..] => (Charset::Utf32Le, rest),
        [0xfe, 0xff, rest @ ..] => (Charset::Utf16Be, rest),
        [0xff, 0xfe, rest @ ..] => (Charset::Utf16Le, rest),
        [0, 0, 0, a, ..] if *a != 0 && declared == Charset::AsciiCompatible => (Charset::Utf32Be, body),
        [a, 0, 0, 0, ..] if *a != 0 && declared == Charset::AsciiCompatible => (Charset::Utf32Le, body),
        [0, a, 0, b, ..] if *a != 0 && *b != 0 && declared == Charset::AsciiCompatible => (Charset::Utf16Be, body),
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 && declared == Charset::AsciiCompatible => (Charset::Utf16Le, body),
        _ => (declared, body),
    };
    let units16 = |be: bool| {
        rest.chunks(2).map(move |c| match (c, be) {
            ([a, b], true) => u16::from_be_bytes([*a, *b]),
            ([a, b], false) => u16::from_le_bytes([*a, *b]),
            _ => 0xfffd,
        })
    };
    let utf32 = |be: bool| -> String {
        rest.chunks(4)
            .map(|c| {
                let word = match <[u8; 4]>::try_from(c) {
                    Ok(w) if be => u32::from_be_bytes(w),
                    Ok(w) => u32::from_le_bytes(w),
                    Err(_) => 0xfffd,
                };
                char::from_u32(word).unwrap_or('\u{fffd}')
            })
            .collect()
    };
    match charset {
        Charset::AsciiCompatible => String::from_utf8_lossy(rest),
        Charset::Utf16Le | Charset::Utf16Be => Cow::Owned(
            char::decode_utf16(units16(charset == Charset::Utf16Be))
                .map(|c| c.unwrap_or('\u{fffd}'))
                .collect(),
        ),
        Charset::Utf32Le => Cow::Owned(utf32(false)),
        Charset::Utf32Be => Cow::Owned(utf32(true)),
    }
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

enum Parts {
    Found(Finding),
    /// Parts were found and nothing in them fired.
    Clean,
    /// No part: the boundary is not this body's.
    None,
}

/// Splits `text` at `--boundary` lines (CRLF or LF) and inspects each part's header values and
/// content. A part without a blank line after its headers is inspected whole as content.
fn multipart(insp: &Scan<'_>, text: &str, boundary: &str, exclude: &[String]) -> Parts {
    let delim = format!("--{boundary}");
    let mut pieces = text.split(delim.as_str());
    // The preamble before the first delimiter is ignored by parsers (and by RFC 2046).
    pieces.next();
    let mut any = false;
    for piece in pieces {
        if piece.starts_with("--") {
            break; // the close delimiter; the epilogue is ignored like the preamble
        }
        any = true;
        // The rest of the delimiter line is transport padding.
        let piece = piece.split_once('\n').map_or("", |(_, rest)| rest);
        let (head, content) = split_head(piece);
        let mut name = None;
        // A file's content is data, not a parameter an include loader reads.
        let mut upload = false;
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            let (field, value) = line.split_once(':').unwrap_or(("", line));
            if field.trim().eq_ignore_ascii_case("content-disposition") {
                for (k, v) in header_params(value) {
                    if k.eq_ignore_ascii_case("name") {
                        name = Some(v.to_string());
                    }
                    upload |= k.eq_ignore_ascii_case("filename") || k.eq_ignore_ascii_case("filename*");
                    if let Some(f) = insp.check(&v, false, "multipart_header") {
                        return Parts::Found(f);
                    }
                }
            } else if let Some(f) = insp.check(value.trim(), false, "multipart_header") {
                return Parts::Found(f);
            }
        }
        if name.as_ref().is_some_and(|n| exclude.contains(n)) {
            continue;
        }
        let content = content.strip_suffix('\n').unwrap_or(content);
        let content = content.strip_suffix('\r').unwrap_or(content);
        let location = if upload { "multipart_file" } else { "multipart" };
        let found = insp.check(content, false, location).or_else(|| {
            name.as_deref()
                .filter(|_| !upload)
                .and_then(|n| insp.check_include(n, content, false, "multipart"))
        });
        if let Some(f) = found {
            return Parts::Found(f);
        }
    }
    if any {
        Parts::Clean
    } else {
        Parts::None
    }
}

/// A part's header block and content, split at the first empty line (CRLF or LF). No empty
/// line: all of it is content.
fn split_head(piece: &str) -> (&str, &str) {
    let mut at = 0;
    for line in piece.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']).is_empty() {
            return (&piece[..at], &piece[at + line.len()..]);
        }
        at += line.len();
    }
    ("", piece)
}

/// `form-data; name="a"; filename="b"` as (name, value) pairs, the disposition type with an
/// empty name; semicolons inside quotes do not split, `\"` escapes a quote (other backslashes stay).
fn header_params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = value.chars();
    let mut push = |cur: &mut String| {
        let item = std::mem::take(cur);
        let (k, v) = item.split_once('=').unwrap_or(("", &item));
        out.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
    };
    while let Some(c) = chars.next() {
        match c {
            // Browsers never escape a backslash in a filename (`C:\\x`), and parsers differ on
            // whether `\\` escapes: only `\\"` is read as an escape, a backslash stays otherwise.
            '\\' if quoted && chars.clone().next() == Some('"') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => push(&mut cur),
            c => cur.push(c),
        }
    }
    push(&mut cur);
    out
}

/// XML values: character data, attribute values, dotted element names and the DOCTYPE
/// (entity declarations reach a file or URL from there). Text and CDATA sections up to the next
/// element tag are one value, as a parser's text content is (`<![CDATA[' OR]]><![CDATA[ 1=1]]>`
/// reaches the application whole); comments and processing instructions are not data and do not
/// split it. An element named like a class (`<java.lang.ProcessBuilder>`) is how XStream and
/// similar binders pick the type they build, so such names are checked too. `Ok(true)` when the
/// document was read to its end without an unterminated construct.
fn xml(insp: &Scan<'_>, text: &str) -> Result<bool, Finding> {
    let check = |v: &str| {
        let v = v.trim();
        match insp.check(v, false, "xml") {
            Some(f) => Err(f),
            None => Ok(()),
        }
    };
    // Character data since the last element tag, and the element it sits in: an element named
    // like an include parameter (`<template>http://.../x.php</template>`) is paired with it.
    let mut data = String::new();
    let mut element_name = "";
    let flush = |data: &mut String, element: &str| {
        let r = check(data).and_then(|()| match insp.check_include(element, data.trim(), false, "xml") {
            Some(f) => Err(f),
            None => Ok(()),
        });
        data.clear();
        r
    };
    let mut rest = text;
    while let Some(lt) = rest.find('<') {
        data.push_str(&rest[..lt]);
        let tag = &rest[lt..];
        let cdata = tag.starts_with("<![CDATA[");
        let (close, element) = if cdata {
            ("]]>", false)
        } else if tag.starts_with("<!--") {
            ("-->", false)
        } else if tag.starts_with("<?") {
            ("?>", false)
        } else if tag.starts_with("<!") {
            // DOCTYPE with an internal subset ends at `]>`.
            let head = &tag[..tag.find('>').unwrap_or(tag.len())];
            (if head.contains('[') { "]>" } else { ">" }, false)
        } else {
            (">", true)
        };
        let Some(end) = tag.find(close) else {
            data.push_str(tag);
            flush(&mut data, element_name)?;
            return Ok(false);
        };
        let whole = &tag[..end + close.len()];
        if cdata {
            data.push_str(&tag[9..end]);
        } else if element {
            flush(&mut data, element_name)?;
            let name = whole[1..]
                .trim_start_matches('/')
                .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .next()
                .unwrap_or("");
            // The local name (`<m:template>` is a `template`).
            element_name = if whole.starts_with("</") {
                ""
            } else {
                name.rsplit(':').next().unwrap_or(name)
            };
            if name.contains('.') {
                check(name)?;
            }
            for v in attribute_values(whole) {
                check(v)?;
            }
        } else if tag.starts_with("<!") && !tag.starts_with("<!--") {
            flush(&mut data, element_name)?;
            check(&tag[..end])?;
        }
        rest = &tag[end + close.len()..];
    }
    data.push_str(rest);
    flush(&mut data, element_name)?;
    Ok(true)
}

/// The quoted values inside one tag (`<a href="x" title='y'>`).
fn attribute_values(tag: &str) -> impl Iterator<Item = &str> {
    let mut rest = tag;
    std::iter::from_fn(move || loop {
        let eq = rest.find('=')?;
        let after = rest[eq + 1..].trim_start();
        let q = after.chars().next()?;
        if q != '"' && q != '\'' {
            rest = &rest[eq + 1..];
            continue;
        }
        let body = &after[1..];
        let end = body.find(q).unwrap_or(body.len());
        rest = &body[(end + 1).min(body.len())..];
        return Some(&body[..end]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::Class;
    use std::io::Write;

    fn insp() -> Inspector {
        Inspector::new(1, &[])
    }

    fn found(ct: Option<&str>, body: &[u8]) -> Option<Finding> {
        inspect_body(&insp(), ct, body, &[], Limits::default())
    }

    const SQLI: &str = "1' OR '1'='1";

    #[test]
    fn codings_are_case_insensitive_and_unknown_ones_refused() {
        let one = |v: &str| content_codings(std::iter::once(v.as_bytes()));
        assert_eq!(one("GZIP"), Ok(vec![Coding::Gzip]));
        assert_eq!(one(" x-gzip "), Ok(vec![Coding::Gzip]));
        assert_eq!(one("Deflate, identity"), Ok(vec![Coding::Deflate]));
        assert_eq!(one("gzip, gzip"), Ok(vec![Coding::Gzip, Coding::Gzip]));
        assert_eq!(one("identity"), Ok(vec![]));
        for bad in ["br", "zstd", "x-foo", "gzip, br", "gzip,gzip,gzip", "compress"] {
            assert_eq!(one(bad), Err(BodyError::UnsupportedEncoding), "{bad}");
        }
        // Two header lines are one list.
        let two = [b"gzip".as_slice(), b"br".as_slice()];
        assert_eq!(content_codings(two.into_iter()), Err(BodyError::UnsupportedEncoding));
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_zlib_and_raw_deflate_decode_within_the_bound() {
        let plain = SQLI.as_bytes();
        assert_eq!(decode(&gzip(plain), &[Coding::Gzip], 100).unwrap(), plain);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(plain).unwrap();
        assert_eq!(decode(&z.finish().unwrap(), &[Coding::Deflate], 100).unwrap(), plain);
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(plain).unwrap();
        assert_eq!(decode(&d.finish().unwrap(), &[Coding::Deflate], 100).unwrap(), plain);
        // Stacked: gzip applied twice, undone twice.
        assert_eq!(
            decode(&gzip(&gzip(plain)), &[Coding::Gzip, Coding::Gzip], 100).unwrap(),
            plain
        );
        // Concatenated gzip members are one body (as Go's gzip reader reads them).
        let two = [gzip(b"a=1&"), gzip(b"q=2")].concat();
        assert_eq!(decode(&two, &[Coding::Gzip], 100).unwrap(), b"a=1&q=2");
        // A bomb: 10 MB of zeros in about 10 KB stops at the bound.
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 20_000);
        let (partial, e) = decode(&bomb, &[Coding::Gzip], 1 << 20).unwrap_err();
        assert_eq!(e, BodyError::TooLarge);
        assert_eq!(partial.len(), (1 << 20) + 1);
        assert_eq!(decode(plain, &[Coding::Gzip], 100).unwrap_err().1, BodyError::Corrupt);
        let mut cut = gzip(plain);
        cut.truncate(cut.len() - 4);
        assert_eq!(decode(&cut, &[Coding::Gzip], 100).unwrap_err().1, BodyError::Corrupt);
    }

    #[test]
    fn charsets_are_parsed_and_the_non_ascii_ones_refused() {
        assert_eq!(charset("application/json"), Ok(Charset::AsciiCompatible));
        assert_eq!(
            charset("application/json; Charset=\"UTF-8\""),
            Ok(Charset::AsciiCompatible)
        );
        assert_eq!(charset("text/plain; charset=iso-8859-1"), Ok(Charset::AsciiCompatible));
        assert_eq!(charset("application/json; charset=utf-16"), Ok(Charset::Utf16Le));
        assert_eq!(charset("application/json;charset=UTF-16BE"), Ok(Charset::Utf16Be));
        for bad in [
            "application/x-www-form-urlencoded; charset=ibm037",
            "text/html; charset=utf-7",
            "application/json; charset=utf-8; charset=utf-16",
        ] {
            assert_eq!(charset(bad), Err(BodyError::UnsupportedCharset), "{bad}");
        }
        // The same value twice is not ambiguous.
        assert!(charset("a/b; charset=utf-8; charset=utf-8").is_ok());
        // `xcharset=` is another parameter.
        assert_eq!(charset("a/b; xcharset=ibm037"), Ok(Charset::AsciiCompatible));
    }

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xff, 0xfe] } else { Vec::new() };
        out.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
        out
    }

    #[test]
    fn utf16_and_utf32_bodies_are_transcoded() {
        let doc = r#"{"q":"1' OR '1'='1"}"#;
        for body in [utf16le(doc, true), utf16le(doc, false)] {
            assert_eq!(to_text(&body, Charset::AsciiCompatible), doc);
            let f = found(Some("application/json"), &body).unwrap();
            assert_eq!((f.location, f.class), ("json", Class::Sqli));
        }
        let be: Vec<u8> = doc.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(to_text(&be, Charset::Utf16Be), doc);
        let le32: Vec<u8> = doc.chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
        assert_eq!(to_text(&le32, Charset::AsciiCompatible), doc);
        // A declared UTF-16 text without a BOM that starts with a non-ASCII character.
        let s = "é<script>alert(1)</script>";
        assert_eq!(to_text(&utf16le(s, false), Charset::Utf16Le), s);
        assert!(found(Some("text/plain; charset=utf-16"), &utf16le(s, false)).is_some());
        // UTF-8 with a BOM.
        let bom = [b"\xef\xbb\xbf".as_slice(), doc.as_bytes()].concat();
        assert_eq!(found(Some("application/json"), &bom).unwrap().location, "json");
    }

    #[test]
    fn bodies_are_inspected_as_what_they_are_not_what_they_say() {
        let json = br#"  {"user":{"q":"1' OR '1'='1"}}"#;
        for ct in [
            None,
            Some("text/plain"),
            Some("application/octet-stream"),
            Some("image/png"),
        ] {
            assert_eq!(found(ct, json).unwrap().location, "json", "{ct:?}");
            assert_eq!(found(ct, b"a=1&q=1%27%20OR%20%271%27%3D%271").unwrap().location, "form");
            let xml = b"<?xml version=\"1.0\"?><r><q>1' OR '1'='1</q></r>";
            assert!(found(ct, xml).is_some(), "{ct:?}");
            assert!(found(ct, SQLI.as_bytes()).is_some(), "raw text, {ct:?}");
        }
        // Declared as a form, sent as JSON: walked as JSON too.
        let f = found(Some("application/x-www-form-urlencoded"), json).unwrap();
        assert_eq!(f.class, Class::Sqli);
        // Declared a form, but no form: raw text too (the pairs split the payload apart).
        assert_eq!(
            found(Some("application/x-www-form-urlencoded"), SQLI.as_bytes())
                .unwrap()
                .location,
            "body"
        );
        // Declared JSON, sent as a form.
        assert!(found(Some("application/json"), b"q=1%27%20OR%20%271%27%3D%271").is_some());
        // Benign bodies of each kind pass.
        for (ct, body) in [
            (Some("text/plain"), r#"{"name":"O'Brien","n":[1,2]}"#),
            (None, "name=O%27Brien&city=New+York"),
            (Some("application/xml"), "<a href=\"/x\">Rock and roll</a>"),
            (Some("text/plain"), "just a note: meet at 5, bring the O'Brien file"),
        ] {
            assert!(found(ct, body.as_bytes()).is_none(), "{ct:?} {body}");
        }
    }

    /// Property: over random documents (JSON nested at random with random keys, XML with text,
    /// CDATA, attributes and comments, forms, multipart), a payload placed in any value is found
    /// wherever it sits and however the body is labelled, and random bytes of the same pieces
    /// never panic.
    #[test]
    fn property_a_payload_anywhere_in_a_random_document_is_found() {
        use rand::{Rng, SeedableRng};
        const WORDS: &[&str] = &[
            "a",
            "O'Brien",
            "rock & roll",
            "é",
            "50% off",
            "x y",
            "\\n",
            "1",
            "select",
        ];
        const PAYLOAD: &str = "1' OR '1'='1";
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        let insp = insp();
        fn json(rng: &mut impl Rng, depth: u32, payload: &mut Option<&str>) -> String {
            let pick = |rng: &mut dyn rand::RngCore| WORDS[rng.gen_range(0..WORDS.len())].to_string();
            let leaf = |rng: &mut dyn rand::RngCore, payload: &mut Option<&str>| {
                if rng.gen_range(0..4) == 0 {
                    if let Some(p) = payload.take() {
                        return serde_json::to_string(p).unwrap();
                    }
                }
                serde_json::to_string(&pick(rng)).unwrap()
            };
            if depth == 0 || rng.gen_range(0..3) == 0 {
                return match rng.gen_range(0..4) {
                    0 => rng.gen_range(0..1000).to_string(),
                    1 => "null".into(),
                    _ => leaf(rng, payload),
                };
            }
            let n = rng.gen_range(0..4);
            if rng.gen() {
                let items: Vec<String> = (0..n).map(|_| json(rng, depth - 1, payload)).collect();
                format!("[{}]", items.join(","))
            } else {
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        let k = serde_json::to_string(&pick(rng)).unwrap();
                        format!("{k}:{}", json(rng, depth - 1, payload))
                    })
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        }
        for case in 0..3000 {
            // JSON: the payload goes in at some leaf, or is appended as the last one.
            let mut slot = Some(PAYLOAD);
            let depth = rng.gen_range(1..8);
            let doc = json(&mut rng, depth, &mut slot);
            let doc = if slot.is_some() {
                format!("[{doc},{}]", serde_json::to_string(PAYLOAD).unwrap())
            } else {
                doc
            };
            for ct in [Some("application/json"), Some("text/plain"), None] {
                let f = inspect_body(&insp, ct, doc.as_bytes(), &[], Limits::default());
                assert!(f.is_some(), "case {case} {ct:?}: {doc}");
            }
            // The same kind of document without it passes: the finding is the payload's.
            let clean = json(&mut rng, depth, &mut None);
            let f = inspect_body(
                &insp,
                Some("application/json"),
                clean.as_bytes(),
                &[],
                Limits::default(),
            );
            assert!(f.is_none(), "case {case}: {clean}: {f:?}");
            // XML: text, CDATA, an attribute, or split by a comment.
            let escaped = PAYLOAD.replace('\'', "&apos;");
            let inner = match rng.gen_range(0..4) {
                0 => format!("<v>{escaped}</v>"),
                1 => format!("<v><![CDATA[{PAYLOAD}]]></v>"),
                2 => format!("<v a=\"{escaped}\"/>"),
                _ => format!("<v>1' OR<!-- c --> '1'='1</v>"),
            };
            let noise: String = (0..rng.gen_range(0..4))
                .map(|i| {
                    format!(
                        "<n{i}>{}</n{i}>",
                        WORDS[i % WORDS.len()].replace('&', "&amp;").replace('\'', "&apos;")
                    )
                })
                .collect();
            let xml = format!("<?xml version=\"1.0\"?><r>{noise}{inner}{noise}</r>");
            assert!(
                inspect_body(&insp, Some("application/xml"), xml.as_bytes(), &[], Limits::default()).is_some(),
                "case {case}: {xml}"
            );
            // Random bytes of the same pieces: any verdict, never a panic.
            const BITS: &[&str] = &[
                "{",
                "}",
                "[",
                "]",
                "\"",
                ":",
                ",",
                "\\u0027",
                "<",
                ">",
                "<![CDATA[",
                "]]>",
                "<!--",
                "-->",
                "&",
                "=",
                "--b\r\n",
                "\r\n\r\n",
                "%",
                "é",
                "\u{0}",
            ];
            let junk: String = (0..rng.gen_range(0..40))
                .map(|_| BITS[rng.gen_range(0..BITS.len())])
                .collect();
            for ct in [
                "application/json",
                "application/xml",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=b",
                "text/plain",
            ] {
                let _ = inspect_body(
                    &insp,
                    Some(ct),
                    junk.as_bytes(),
                    &[],
                    Limits {
                        max_values: 5,
                        max_depth: 3,
                    },
                );
            }
        }
    }

    #[test]
    fn inspection_work_is_bounded_by_values_and_depth() {
        let limits = Limits {
            max_values: 100,
            max_depth: 8,
        };
        let run =
            |ct: &str, body: &str| inspect_body(&insp(), Some(ct), body.as_bytes(), &[], limits).map(|f| f.rule_id);
        // 100 values are inspected; the 101st is refused (it would have been inspected too).
        let json = |n: usize| format!("[{}]", vec!["\"o'k\""; n].join(","));
        assert_eq!(run("application/json", &json(100)), None);
        assert_eq!(
            run("application/json", &json(101)),
            Some(crate::inspect::TOO_MANY_VALUES)
        );
        let form = |n: usize| vec!["a=b"; n].join("&");
        assert_eq!(run("application/x-www-form-urlencoded", &form(100)), None);
        assert_eq!(
            run("application/x-www-form-urlencoded", &form(101)),
            Some(crate::inspect::TOO_MANY_VALUES)
        );
        let xml = |n: usize| format!("<r>{}</r>", "<v>x</v>".repeat(n));
        assert_eq!(run("application/xml", &xml(80)), None);
        assert_eq!(run("application/xml", &xml(101)), Some(crate::inspect::TOO_MANY_VALUES));
        // Nesting: 8 levels are walked, a 9th is refused, before serde_json's own limit (128)
        // would end the walk without a verdict.
        let nest = |n: usize| format!("{}\"x\"{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(run("application/json", &nest(8)), None);
        assert_eq!(run("application/json", &nest(9)), Some(crate::inspect::TOO_DEEP));
        let deep = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert_eq!(run("application/json", &deep(9)), Some(crate::inspect::TOO_DEEP));
        assert_eq!(
            inspect_body(
                &insp(),
                Some("application/json"),
                nest(200).as_bytes(),
                &[],
                Limits::default()
            )
            .map(|f| f.rule_id),
            Some(crate::inspect::TOO_DEEP)
        );
    }

    #[test]
    fn json_escapes_hide_nothing() {
        let escaped = r#"{"q":"\u0027 OR \u00271\u0027=\u00271"}"#;
        assert_eq!(found(Some("text/plain"), escaped.as_bytes()).unwrap().location, "json");
        // A doubled comma before the payload: serde_json stops there, lenient parsers read on;
        // the raw text is inspected with the escapes decoded.
        let lenient = r#"{"a":1,,"q":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#;
        let f = found(Some("application/json"), lenient.as_bytes()).unwrap();
        assert_eq!((f.location, f.class), ("body", Class::Xss));
    }

    #[test]
    fn xml_text_attributes_cdata_and_doctype() {
        let xml = |b: &str| found(Some("application/xml"), b.as_bytes());
        assert_eq!(xml("<r><q a=\"1\">1' OR '1'='1</q></r>").unwrap().location, "xml");
        assert!(xml("<r q='&lt;script&gt;alert(1)&lt;/script&gt;'/>").is_some());
        assert!(xml("<r><![CDATA[<script>alert(1)</script>]]></r>").is_some());
        assert!(xml("<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>").is_some());
        // Comments are not data; element names in declared XML are structure.
        assert!(xml("<r><!-- ' or 1=1 --><name>O'Brien</name></r>").is_none());
        // Unterminated: the tail is inspected as text.
        assert!(xml("<r><q>ok</q><a b='1' OR '1'='1").is_some());
        // Adjacent CDATA sections and text around a comment are one value to the parser.
        assert!(xml("<r><q><![CDATA[1' OR]]><![CDATA[ '1'='1]]></q></r>").is_some());
        assert!(xml("<r><q>1' OR<!-- x --> '1'='1</q></r>").is_some());
        // Values of different elements are not joined.
        assert!(xml("<r><q>1' OR</q><q> '1'='1</q></r>").is_none());
        // Element names that pick a class to build (XStream).
        assert!(xml("<map><java.lang.ProcessBuilder><command/></java.lang.ProcessBuilder></map>").is_some());
        assert!(xml("<feed><media.title>Rock</media.title></feed>").is_none());
        // The same markup sent as text/plain may be rendered as HTML: raw text too.
        assert!(found(Some("text/plain"), b"<script>alert(1)</script>").is_some());
        assert!(found(None, b"<svg onload=alert(1)>").is_some());
    }

    #[test]
    fn multipart_part_headers_lf_line_ends_and_boundaries() {
        let ct = "multipart/form-data; boundary=XyZ";
        let body = |disp: &str, content: &str, eol: &str| {
            format!("--XyZ{eol}Content-Disposition: form-data; {disp}{eol}Content-Type: text/plain{eol}{eol}{content}{eol}--XyZ--{eol}")
        };
        let mp = |ct: &str, b: &str| found(Some(ct), b.as_bytes());
        assert!(mp(ct, &body("name=\"a\"", "hello", "\r\n")).is_none());
        assert_eq!(mp(ct, &body("name=\"a\"", SQLI, "\r\n")).unwrap().location, "multipart");
        // LF-only line ends.
        assert_eq!(mp(ct, &body("name=\"a\"", SQLI, "\n")).unwrap().location, "multipart");
        // Part headers: filename, name (quoted, with an escaped quote and a semicolon), type.
        let f = mp(
            ct,
            &body("name=\"f\"; filename=\"<script>alert(1)</script>.png\"", "x", "\r\n"),
        )
        .unwrap();
        assert_eq!((f.location, f.class), ("multipart_header", Class::Xss));
        let f = mp(ct, &body("name=\"a\\\"; x' OR '1'='1\"", "x", "\r\n")).unwrap();
        assert_eq!((f.location, f.class), ("multipart_header", Class::Sqli));
        assert!(mp(
            ct,
            &body("filename*=UTF-8''%3Cscript%3Ealert(1)%3C%2Fscript%3E", "x", "\n")
        )
        .is_some());
        let typed = "--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Type: text/html\"><script>alert(1)</script>\r\n\r\nx\r\n--XyZ--\r\n";
        assert!(mp(ct, typed).is_some());
        // No boundary in the header (or a wrong one, or the type says JSON): the first line's.
        for ct in [
            "multipart/form-data",
            "multipart/form-data; boundary=other",
            "application/json",
        ] {
            assert_eq!(
                mp(ct, &body("name=\"a\"", SQLI, "\r\n")).unwrap().location,
                "multipart",
                "{ct}"
            );
        }
        // Two boundary parameters: both are tried.
        let two = "multipart/form-data; boundary=other; boundary=XyZ";
        assert!(mp(two, &format!("preamble\r\n{}", body("name=\"a\"", SQLI, "\r\n"))).is_some());
        // A part with no blank line is all content.
        assert!(mp(ct, &format!("--XyZ\r\n{SQLI}\r\n--XyZ--")).is_some());
        // An excluded part name skips its content, not its headers.
        let ex = ["a".to_string()];
        assert!(inspect_body(
            &insp(),
            Some(ct),
            body("name=\"a\"", SQLI, "\r\n").as_bytes(),
            &ex,
            Limits::default()
        )
        .is_none());
    }

    #[test]
    fn param_values_sees_every_occurrence() {
        assert_eq!(
            param_values("multipart/form-data; BOUNDARY=\"a;b\"", "boundary"),
            vec!["a;b"]
        );
        assert_eq!(
            param_values("multipart/form-data; x=\"boundary=fake\"; boundary=real", "boundary"),
            vec!["fake", "real"]
        );
        assert_eq!(param_values("a/b;boundary=x", "boundary"), vec!["x"]);
        assert!(param_values("a/b; myboundary=x", "boundary").is_empty());
    }

    /// Property (the `multipart` fuzz target's, 3,000 mutated bodies and `Content-Type`
    /// values): multipart inspection never panics, every boundary read from the value is a
    /// piece of it, and a well-formed body's SQL injection is found whatever the boundary.
    #[test]
    fn property_multipart_never_panics_and_finds_what_it_holds() {
        let insp = insp();
        let mut rng = crate::prop::rng(2046);
        let limits = Limits {
            max_values: 64,
            max_depth: 8,
        };
        for case in 0..3_000 {
            let boundary = format!("b{}", crate::prop::text(&mut rng, b"xyz-'()+_,./:=?", 12));
            let ct = format!("multipart/form-data; boundary=\"{boundary}\"");
            let name = crate::prop::text(&mut rng, b"ab\";=", 6).replace('"', "");
            let body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\nhello\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n1' OR '1'='1\r\n--{boundary}--\r\n"
            );
            assert!(
                inspect_body(&insp, Some(&ct), body.as_bytes(), &[], limits).is_some(),
                "case {case}: {ct} {body:?}"
            );
            let ct = crate::prop::mutate_str(&mut rng, &ct, b"\";= \\");
            for b in param_values(&ct, "boundary") {
                assert!(ct.contains(b), "case {case}: {b:?} in {ct:?}");
            }
            let body = crate::prop::mutate(&mut rng, body.as_bytes(), b"\r\n-\";=:");
            let _ = inspect_body(&insp, Some(&ct), &body, &[], limits);
        }
    }
}
