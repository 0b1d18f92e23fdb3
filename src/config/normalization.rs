//! The policy's `normalization` block: how the canonical request is made (see
//! [`crate::canonical`]). Raw serde type and validated type side by side; every field has a
//! safe default, so the block is optional.
//!
//! ```yaml
//! normalization:
//!   path:
//!     escaped_slashes: reject    # reject | decode | keep
//!     backslashes: reject        # reject | slash
//!     path_parameters: reject    # reject | strip
//!     repeated_slashes: merge    # merge | reject
//!     dot_segments: resolve      # resolve | reject
//!     double_encoding: reject    # reject | allow
//!   case_insensitive: false      # every route; a route can set it too
//!   headers:
//!     underscores: drop_lookalikes   # drop_lookalikes | drop | reject | allow
//!     untrusted_remove: [forwarded, x-real-ip, ...]   # replaces the default list
//!     method_override: remove    # remove | check
//! ```

use serde::Deserialize;

use super::error::FieldError;
use crate::canonical::headers::{MethodOverride, Underscores};
use crate::canonical::path::{Backslashes, DotSegments, EscapedSlashes, PathOptions, PathParameters, RepeatedSlashes};
use crate::canonical::NormalizationSpec;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawNormalization {
    #[serde(default)]
    pub path: Option<RawPathNormalization>,
    #[serde(default)]
    pub case_insensitive: Option<bool>,
    #[serde(default)]
    pub headers: Option<RawHeaderNormalization>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPathNormalization {
    #[serde(default)]
    pub escaped_slashes: Option<RawEscapedSlashes>,
    #[serde(default)]
    pub backslashes: Option<RawBackslashes>,
    #[serde(default)]
    pub path_parameters: Option<RawPathParameters>,
    #[serde(default)]
    pub repeated_slashes: Option<RawRepeatedSlashes>,
    #[serde(default)]
    pub dot_segments: Option<RawDotSegments>,
    #[serde(default)]
    pub double_encoding: Option<RawDoubleEncoding>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderNormalization {
    #[serde(default)]
    pub underscores: Option<RawUnderscores>,
    #[serde(default)]
    pub untrusted_remove: Option<Vec<String>>,
    #[serde(default)]
    pub method_override: Option<RawMethodOverride>,
}

macro_rules! raw_enum {
    ($raw:ident => $validated:ident { $($v:ident),* }) => {
        #[derive(Debug, Deserialize, Clone, Copy)]
        #[serde(rename_all = "snake_case")]
        pub enum $raw { $($v),* }
        impl From<$raw> for $validated {
            fn from(r: $raw) -> $validated {
                match r { $($raw::$v => $validated::$v),* }
            }
        }
    };
}

raw_enum!(RawEscapedSlashes => EscapedSlashes { Reject, Decode, Keep });
raw_enum!(RawBackslashes => Backslashes { Reject, Slash });
raw_enum!(RawPathParameters => PathParameters { Reject, Strip });
raw_enum!(RawRepeatedSlashes => RepeatedSlashes { Merge, Reject });
raw_enum!(RawDotSegments => DotSegments { Resolve, Reject });
raw_enum!(RawUnderscores => Underscores { DropLookalikes, Drop, Reject, Allow });
raw_enum!(RawMethodOverride => MethodOverride { Remove, Check });

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawDoubleEncoding {
    Reject,
    Allow,
}

impl TryFrom<&RawNormalization> for NormalizationSpec {
    type Error = FieldError;

    fn try_from(raw: &RawNormalization) -> Result<NormalizationSpec, FieldError> {
        let mut spec = NormalizationSpec::default();
        if let Some(p) = &raw.path {
            let d = PathOptions::default();
            spec.path = PathOptions {
                escaped_slashes: p.escaped_slashes.map_or(d.escaped_slashes, Into::into),
                backslashes: p.backslashes.map_or(d.backslashes, Into::into),
                path_parameters: p.path_parameters.map_or(d.path_parameters, Into::into),
                repeated_slashes: p.repeated_slashes.map_or(d.repeated_slashes, Into::into),
                dot_segments: p.dot_segments.map_or(d.dot_segments, Into::into),
                reject_double_encoding: p
                    .double_encoding
                    .map_or(d.reject_double_encoding, |e| matches!(e, RawDoubleEncoding::Reject)),
                reject_case_fold_lookalikes: false,
            };
        }
        spec.case_insensitive = raw.case_insensitive.unwrap_or(false);
        if let Some(h) = &raw.headers {
            if let Some(u) = h.underscores {
                spec.headers.underscores = u.into();
            }
            if let Some(m) = h.method_override {
                spec.headers.method_override = m.into();
            }
            if let Some(list) = &h.untrusted_remove {
                let mut names = Vec::with_capacity(list.len());
                for (i, n) in list.iter().enumerate() {
                    let name = http::HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                        (
                            format!("headers.untrusted_remove[{i}]"),
                            format!("{n:?} is not a header name"),
                        )
                    })?;
                    if matches!(
                        name.as_str(),
                        "host" | "content-length" | "transfer-encoding" | "x-forwarded-for"
                    ) {
                        return Err((
                            format!("headers.untrusted_remove[{i}]"),
                            format!("{n:?} cannot be removed (framing, routing or the gateway's own forwarding)"),
                        ));
                    }
                    names.push(name);
                }
                spec.headers.untrusted_remove = names;
            }
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe_and_fields_convert() {
        let raw: RawNormalization = serde_yaml::from_str(
            "path: {escaped_slashes: decode, path_parameters: strip, double_encoding: allow}\nheaders: {underscores: reject, untrusted_remove: [x-real-ip]}\n",
        )
        .unwrap();
        let spec = NormalizationSpec::try_from(&raw).unwrap();
        assert_eq!(spec.path.escaped_slashes, EscapedSlashes::Decode);
        assert_eq!(spec.path.path_parameters, PathParameters::Strip);
        assert_eq!(spec.path.backslashes, Backslashes::Reject);
        assert!(!spec.path.reject_double_encoding);
        assert_eq!(spec.headers.underscores, Underscores::Reject);
        assert_eq!(spec.headers.untrusted_remove.len(), 1);
        let bad: RawNormalization = serde_yaml::from_str("headers: {untrusted_remove: [host]}").unwrap();
        assert!(NormalizationSpec::try_from(&bad).is_err());
        assert!(serde_yaml::from_str::<RawNormalization>("path: {escaped_slashes: maybe}").is_err());
    }
}
