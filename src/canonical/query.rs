//! Query parameters that carry credentials. Backends read parameter names more loosely than a
//! byte compare: they percent-decode them (`api%5Fkey`), PHP turns `.`, space and `[` into `_`
//! and `name[]` into an array of `name`, and ASP.NET ignores case. So the key parameter is
//! removed before forwarding in every spelling a backend could read as it, and so is any
//! parameter whose value is one of the policy's keys, whatever its name.

/// Percent-decodes as backends read query strings: `+` as a space, and IIS's `%uXXXX` too
/// (the inspection normaliser's decoder: one decoder in the crate).
pub fn decode(raw: &[u8]) -> Vec<u8> {
    crate::inspect::normalize::percent_decode(raw, true)
}

/// A parameter name as the loosest common backend reads it: decoded, leading spaces dropped,
/// an array suffix `[...]` cut, `.`, space and a lone `[` as `_`, lower case.
pub fn loose_name(raw: &[u8]) -> Vec<u8> {
    let d = decode(raw);
    let start = d.iter().position(|&b| b != b' ').unwrap_or(d.len());
    let mut name = d[start..].to_vec();
    if let Some(open) = name.iter().position(|&b| b == b'[') {
        if name[open..].contains(&b']') {
            name.truncate(open);
        }
    }
    for b in name.iter_mut() {
        if matches!(*b, b'.' | b' ' | b'[') {
            *b = b'_';
        }
        b.make_ascii_lowercase();
    }
    name
}

/// The values of every parameter named exactly `name` (after decoding), split on `&`.
pub fn values(query: &[u8], name: &str) -> Vec<String> {
    query
        .split(|&b| b == b'&')
        .filter_map(|kv| {
            let (k, v) = split_kv(kv);
            (decode(k) == name.as_bytes()).then(|| String::from_utf8_lossy(&decode(v)).into_owned())
        })
        .collect()
}

fn split_kv(kv: &[u8]) -> (&[u8], &[u8]) {
    match kv.iter().position(|&b| b == b'=') {
        Some(i) => (&kv[..i], &kv[i + 1..]),
        None => (kv, &[]),
    }
}

/// The loose name of the query parameter that Symfony (`httpMethodParameterOverride`), Laravel
/// and Express's `method-override` read as a method override, like `X-HTTP-Method-Override`.
pub const METHOD_PARAM: &[u8] = b"_method";

/// The raw values of the query's `_method` parameters, in any spelling the backend may read
/// (split on `&` and `;`, as [`strip`] splits).
fn method_params(query: &[u8]) -> impl Iterator<Item = &[u8]> {
    query
        .split(|&b| b == b'&' || b == b';')
        .filter(|chunk| !chunk.is_empty())
        .map(split_kv)
        .filter(|(k, _)| loose_name(k) == METHOD_PARAM)
        .map(|(_, v)| v)
}

/// The method the query's `_method` parameters name, if any; different values, or one that is
/// not a method, are errors as for the headers.
pub fn method_override(query: &[u8]) -> Result<Option<http::Method>, crate::canonical::headers::HeaderError> {
    use crate::canonical::headers::HeaderError;
    let mut found: Option<http::Method> = None;
    for v in method_params(query) {
        let upper = decode(v).trim_ascii().to_ascii_uppercase();
        let m = http::Method::from_bytes(&upper).map_err(|_| HeaderError::BadOverride)?;
        match &found {
            Some(prev) if *prev != m => return Err(HeaderError::ConflictingOverride),
            _ => found = Some(m),
        }
    }
    Ok(found)
}

/// Whether the query has a `_method` parameter, in any spelling the backend may read.
pub fn has_method_param(query: &[u8]) -> bool {
    method_params(query).next().is_some()
}

/// `query` without the parameters `strip` picks (given the loose name and the decoded value);
/// `None` when nothing was removed. Splits on `&` and `;` (old Python and Rack split on both),
/// keeping the other separators as they were.
pub fn strip(query: &[u8], mut pick: impl FnMut(&[u8], &[u8]) -> bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(query.len());
    let mut changed = false;
    let mut start = 0;
    for end in (0..=query.len()).filter(|&i| i == query.len() || query[i] == b'&' || query[i] == b';') {
        let chunk = &query[start..end];
        let (k, v) = split_kv(chunk);
        if !chunk.is_empty() && pick(&loose_name(k), &decode(v)) {
            changed = true;
        } else {
            if !out.is_empty() {
                out.push(query[start - 1]);
            }
            out.extend_from_slice(chunk);
        }
        start = end + 1;
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_parameters() {
        assert_eq!(
            method_override(b"a=1&_method=delete").unwrap(),
            Some(http::Method::DELETE)
        );
        assert_eq!(method_override(b"%5Fmethod=PUT;x=1").unwrap(), Some(http::Method::PUT));
        assert_eq!(method_override(b"_METHOD=patch").unwrap(), Some(http::Method::PATCH));
        assert_eq!(method_override(b"method=delete&x_method=1").unwrap(), None);
        assert!(method_override(b"_method=delete&_method=put").is_err());
        assert!(method_override(b"_method=de%20lete").is_err());
        assert!(has_method_param(b"x=1&_method[]=y"));
        assert!(!has_method_param(b"x=1"));
    }

    #[test]
    fn loose_names() {
        assert_eq!(loose_name(b"api_key"), b"api_key");
        assert_eq!(loose_name(b"api.key"), b"api_key");
        assert_eq!(loose_name(b"api%5Fkey"), b"api_key");
        assert_eq!(loose_name(b"API_KEY[]"), b"api_key");
        assert_eq!(loose_name(b"api[key"), b"api_key");
        assert_eq!(loose_name(b"+api+key"), b"api_key");
    }

    #[test]
    fn strips_every_spelling() {
        let name = b"api_key".to_vec();
        let s = |q: &str| {
            strip(q.as_bytes(), |k, v| k == name || v.starts_with(b"qv_")).map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(s("a=1&api.key=x&b=2").as_deref(), Some("a=1&b=2"));
        assert_eq!(s("api_key=x").as_deref(), Some(""));
        assert_eq!(s("a=1;API_KEY[]=x;b=2").as_deref(), Some("a=1;b=2"));
        assert_eq!(s("token=qv_abc&a=1").as_deref(), Some("a=1"));
        assert_eq!(s("t=qv%5Fabc").as_deref(), Some(""));
        assert_eq!(s("a=1&b=2"), None);
        assert_eq!(s("a=1&&b"), None);
    }

    #[test]
    fn values_and_decoding() {
        assert_eq!(
            values(b"k=a%2Bb+c&k=d&kk=e", "k"),
            vec!["a+b c".to_string(), "d".to_string()]
        );
        assert_eq!(decode(b"%zz%4"), b"%zz%4");
        assert_eq!(loose_name(b"api%u005Fkey"), b"api_key");
    }
}
