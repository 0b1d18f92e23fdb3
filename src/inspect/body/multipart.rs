//! Multipart bodies: every part's header values and content, whatever boundary the header
//! names or the first line uses, with CRLF or bare LF line ends.

use crate::inspect::{Finding, Scan};

pub(super) enum Parts {
    Found(Finding),
    /// Parts were found and nothing in them fired.
    Clean,
    /// No part: the boundary is not this body's.
    None,
}

/// What follows each `delim` that starts a line, up to the next one. A delimiter is only a
/// delimiter at the start of a line (RFC 2046 section 5.1.1: CRLF, then `--boundary`); inside
/// a line it is content, as every parser reads it (`hello--XB<svg onload=...>` is one value).
fn delimited<'a>(text: &'a str, delim: &str) -> Vec<&'a str> {
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(delim) {
        let at = from + i;
        if at == 0 || text.as_bytes()[at - 1] == b'\n' {
            starts.push(at);
        }
        from = at + delim.len();
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &at)| &text[at + delim.len()..starts.get(n + 1).copied().unwrap_or(text.len())])
        .collect()
}

/// Splits `text` at `--boundary` lines (CRLF or LF) and inspects each part's header values and
/// content. A part without a blank line after its headers is inspected whole as content.
pub(super) fn multipart(insp: &Scan<'_>, text: &str, boundary: &str, exclude: &[String]) -> Parts {
    let delim = format!("--{boundary}");
    // The preamble before the first delimiter is ignored by parsers (and by RFC 2046).
    let mut any = false;
    for piece in delimited(text, &delim) {
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
pub(super) fn split_head(piece: &str) -> (&str, &str) {
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
pub(super) fn header_params(value: &str) -> Vec<(String, String)> {
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
