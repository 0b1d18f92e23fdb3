//! XML bodies: text, CDATA, attribute values and the DOCTYPE's internal subset.

use crate::inspect::{Finding, Scan};

/// XML values: character data, attribute values, dotted element names and the DOCTYPE
/// (entity declarations reach a file or URL from there). Text and CDATA sections up to the next
/// element tag are one value, as a parser's text content is (`<![CDATA[' OR]]><![CDATA[ 1=1]]>`
/// reaches the application whole); comments and processing instructions are not data and do not
/// split it. An element named like a class (`<java.lang.ProcessBuilder>`) is how XStream and
/// similar binders pick the type they build, so such names are checked too. `Ok(true)` when the
/// document was read to its end without an unterminated construct.
pub(super) fn xml(insp: &Scan<'_>, text: &str) -> Result<bool, Finding> {
    let check = |v: &str| {
        let v = v.trim();
        match insp.check(v, false, "xml") {
            Some(f) => Err(f),
            None => Ok(()),
        }
    };
    // The internal subset's general entities (`<!ENTITY s "sel">`): parsers expand them into
    // text and attribute values (`&u;on &s;ect` is `union select` to the application), so each
    // value is also checked with them expanded.
    let mut entities: Vec<(String, String)> = Vec::new();
    let check_expanded = |v: &str, entities: &[(String, String)]| match expand(v, entities) {
        Some(e) => check(&e),
        None => Ok(()),
    };
    // Character data since the last element tag, and the element it sits in: an element named
    // like an include parameter (`<template>http://.../x.php</template>`) is paired with it.
    let mut data = String::new();
    let mut element_name = "";
    let flush = |data: &mut String, element: &str, entities: &[(String, String)]| {
        let r = check(data)
            .and_then(|()| check_expanded(data, entities))
            .and_then(|()| match insp.check_include(element, data.trim(), false, "xml") {
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
            flush(&mut data, element_name, &entities)?;
            return Ok(false);
        };
        let whole = &tag[..end + close.len()];
        if cdata {
            data.push_str(&tag[9..end]);
        } else if element {
            flush(&mut data, element_name, &entities)?;
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
                check_expanded(v, &entities)?;
            }
        } else if tag.starts_with("<!") && !tag.starts_with("<!--") {
            flush(&mut data, element_name, &entities)?;
            check(&tag[..end])?;
            internal_entities(&tag[..end], &mut entities);
        }
        rest = &tag[end + close.len()..];
    }
    data.push_str(rest);
    flush(&mut data, element_name, &entities)?;
    Ok(true)
}

/// At most this many internal entities are kept, each at most this long, and an expanded value
/// at most this long: expansion goes three levels deep and stops at the bound, so a
/// billion-laughs document costs no more than the bound allows.
const MAX_ENTITIES: usize = 64;
const MAX_ENTITY_LEN: usize = 1024;
const MAX_EXPANDED: usize = 64 * 1024;

/// The general entities with a literal value declared in a DOCTYPE's internal subset
/// (`<!ENTITY name "value">`); parameter entities (`%`) and external ones (SYSTEM, PUBLIC,
/// themselves findings) are not kept.
fn internal_entities(doctype: &str, out: &mut Vec<(String, String)>) {
    let mut rest = doctype;
    while let Some(at) = rest.find("<!ENTITY") {
        rest = &rest[at + 8..];
        let decl = rest.trim_start();
        if decl.starts_with('%') {
            continue;
        }
        let name_end = decl.find(|c: char| c.is_whitespace()).unwrap_or(decl.len());
        let (name, after) = decl.split_at(name_end);
        let after = after.trim_start();
        let Some(q) = after.chars().next().filter(|q| *q == '"' || *q == '\'') else {
            continue;
        };
        let Some(end) = after[1..].find(q) else { break };
        let value = &after[1..1 + end];
        if out.len() < MAX_ENTITIES && !name.is_empty() && value.len() <= MAX_ENTITY_LEN {
            out.push((name.to_string(), value.to_string()));
        }
    }
}

/// `text` with the `&name;` references of `entities` replaced by their values, entities inside
/// values too, at most three levels deep (`<!ENTITY b "&a;ect">`), bounded by [`MAX_EXPANDED`].
fn expand(text: &str, entities: &[(String, String)]) -> Option<String> {
    let mut out = expand_once(text, entities)?;
    for _ in 0..2 {
        match expand_once(&out, entities) {
            Some(deeper) => out = deeper,
            None => break,
        }
    }
    Some(out)
}

fn expand_once(text: &str, entities: &[(String, String)]) -> Option<String> {
    if entities.is_empty() || !text.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let hit = after.find(';').and_then(|semi| {
            let name = &after[..semi];
            entities.iter().find(|(n, _)| n == name).map(|(_, v)| (semi, v))
        });
        match hit {
            Some((semi, v)) if out.len() + v.len() <= MAX_EXPANDED => {
                out.push_str(v);
                changed = true;
                rest = &after[semi + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// The quoted values inside one tag (`<a href="x" title='y'>`).
pub(super) fn attribute_values(tag: &str) -> impl Iterator<Item = &str> {
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
