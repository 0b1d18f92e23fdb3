//! The `validation` block (policy-wide, and per route onto it): methods, body media types and
//! the size limits of a request. A route's block is merged onto the policy-wide one, so the
//! conversion is `merge` (base plus raw block) rather than a `TryFrom`.

use serde::Deserialize;

use super::de;
use super::error::FieldError;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_body: Option<u64>,
    #[serde(default)]
    pub max_headers: Option<usize>,
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_header_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_uri: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidationSpec {
    /// Allowed methods; `None` allows any.
    pub methods: Option<Vec<http::Method>>,
    /// Allowed media types (lower case, no parameters) of request bodies; `None` allows any.
    pub content_types: Option<Vec<String>>,
    pub max_body: u64,
    pub max_headers: usize,
    pub max_header_bytes: u64,
    pub max_uri: u64,
}

impl Default for ValidationSpec {
    fn default() -> Self {
        ValidationSpec {
            methods: None,
            content_types: None,
            max_body: 100 << 20,
            max_headers: 100,
            max_header_bytes: 64 << 10,
            max_uri: 8 << 10,
        }
    }
}

/// Methods of a list, upper-cased; errors name the entry.
pub(super) fn parse_methods(list: &[String]) -> Result<Vec<http::Method>, String> {
    list.iter()
        .map(|m| {
            let up = m.to_ascii_uppercase();
            http::Method::from_bytes(up.as_bytes()).map_err(|_| format!("{m:?} is not an HTTP method"))
        })
        .collect()
}

/// `raw` merged onto `base`; errors name the field below `validation`.
pub(super) fn merge(base: &ValidationSpec, raw: &RawValidation) -> Result<ValidationSpec, FieldError> {
    let mut v = base.clone();
    if let Some(m) = &raw.methods {
        v.methods = Some(parse_methods(m).map_err(|e| ("methods".to_string(), e))?);
    }
    if let Some(c) = &raw.content_types {
        let mut types = Vec::new();
        for t in c {
            let t = t.trim().to_ascii_lowercase();
            if t.split_once('/')
                .is_none_or(|(a, b)| a.is_empty() || b.is_empty() || t.contains(';'))
            {
                return Err((
                    "content_types".into(),
                    format!("{t:?} is not a media type like application/json"),
                ));
            }
            types.push(t);
        }
        v.content_types = Some(types);
    }
    if let Some(b) = raw.max_body {
        v.max_body = b;
    }
    if let Some(h) = raw.max_headers {
        if h == 0 {
            return Err(("max_headers".into(), "must be at least 1".into()));
        }
        v.max_headers = h;
    }
    if let Some(b) = raw.max_header_bytes {
        v.max_header_bytes = b;
    }
    if let Some(u) = raw.max_uri {
        v.max_uri = u;
    }
    Ok(v)
}
