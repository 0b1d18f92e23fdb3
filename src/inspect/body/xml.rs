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
