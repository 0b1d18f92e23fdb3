//! `Content-Type` parameters and charsets: how a body's bytes become the text the rules see.

use std::borrow::Cow;

use super::BodyError;

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
pub(super) fn ascii_compatible(name: &str) -> bool {
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
