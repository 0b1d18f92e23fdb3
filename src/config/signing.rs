//! The `signing` block (policy-wide, and per route onto it): which responses are signed, with
//! which algorithms and digest. A route's block is merged onto the policy-wide one, so the
//! conversion is `merge` (base plus raw block) rather than a `TryFrom`.

use serde::Deserialize;

use super::de;
use super::error::FieldError;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `ecdsa-p256`, `ml-dsa-65` or `hybrid` (both, under two labels).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// `sha-256` (default), `sha-512`, `sha3-256` or `blake3`.
    #[serde(default)]
    pub digest: Option<String>,
    /// Responses are held (and signed) up to this size.
    #[serde(default, deserialize_with = "de::opt_byte_size")]
    pub max_hold: Option<u64>,
    /// Media types that stream (never held): passed unsigned with `Integrity-Status`.
    #[serde(default)]
    pub stream_types: Option<Vec<String>>,
    /// `inline` (one signature per response and algorithm) or `batch` (one per batch; see
    /// `docs/batch-signing.md`).
    #[serde(default)]
    pub mode: Option<String>,
    /// In batch mode, also an inline `ecdsa-p256-sha256` signature for clients that know only
    /// RFC 9421's registered algorithms.
    #[serde(default)]
    pub inline_ecdsa: Option<bool>,
    /// In batch mode, leave the root signatures out of each response; clients fetch them once
    /// per batch from `/.well-known/http-batch-sig/v1/batch/{id}` (`docs/batch-signing.md` §6.1).
    #[serde(default)]
    pub detached: Option<bool>,
}

/// Response signing of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningSpec {
    pub enabled: bool,
    pub algorithms: Vec<crate::integrity::sig::SigAlg>,
    pub digest: crate::integrity::digest::DigestAlg,
    pub max_hold: u64,
    pub stream_types: Vec<String>,
    /// `Some` in batch mode: the batch algorithm of `algorithms`.
    pub batch: Option<crate::integrity::batch::BatchAlg>,
    pub inline_ecdsa: bool,
    pub detached: bool,
}

impl Default for SigningSpec {
    fn default() -> Self {
        SigningSpec {
            enabled: false,
            algorithms: vec![
                crate::integrity::sig::SigAlg::EcdsaP256,
                crate::integrity::sig::SigAlg::MlDsa65,
            ],
            digest: crate::integrity::digest::DigestAlg::Sha256,
            max_hold: 8 << 20,
            stream_types: vec!["text/event-stream".into()],
            batch: None,
            inline_ecdsa: false,
            detached: false,
        }
    }
}

/// `raw` merged onto `base`; errors name the field below `signing`.
pub(super) fn merge(base: &SigningSpec, raw: &RawSigning) -> Result<SigningSpec, FieldError> {
    use crate::integrity::sig::SigAlg;
    let mut s = base.clone();
    if let Some(e) = raw.enabled {
        s.enabled = e;
    }
    if let Some(a) = &raw.algorithm {
        s.algorithms = match a.as_str() {
            "ecdsa-p256" => vec![SigAlg::EcdsaP256],
            "ml-dsa-65" => vec![SigAlg::MlDsa65],
            "hybrid" => vec![SigAlg::EcdsaP256, SigAlg::MlDsa65],
            other => {
                return Err((
                    "algorithm".into(),
                    format!("{other:?} is not one of ecdsa-p256, ml-dsa-65, hybrid"),
                ))
            }
        };
    }
    if let Some(d) = &raw.digest {
        s.digest = crate::integrity::digest::DigestAlg::parse(d).ok_or_else(|| {
            (
                "digest".to_string(),
                format!("{d:?} is not one of sha-256, sha-512, sha3-256, blake3"),
            )
        })?;
    }
    if let Some(m) = raw.max_hold {
        s.max_hold = m;
    }
    if let Some(t) = &raw.stream_types {
        s.stream_types = t.iter().map(|t| t.to_ascii_lowercase()).collect();
    }
    let batch = match raw.mode.as_deref() {
        None => s.batch.is_some(),
        Some("inline") => false,
        Some("batch") => true,
        Some(other) => return Err(("mode".into(), format!("{other:?} is not one of inline, batch"))),
    };
    // Invariant: every configurable algorithm set has a batch algorithm.
    s.batch = batch
        .then(|| crate::integrity::batch::BatchAlg::of(&s.algorithms))
        .flatten();
    if let Some(i) = raw.inline_ecdsa {
        s.inline_ecdsa = i;
    }
    if let Some(d) = raw.detached {
        s.detached = d;
    }
    if s.detached && s.batch.is_none() {
        return Err(("detached".into(), "needs mode: batch".into()));
    }
    if s.inline_ecdsa && s.batch.is_some() && !s.algorithms.contains(&crate::integrity::sig::SigAlg::EcdsaP256) {
        return Err((
            "inline_ecdsa".into(),
            "needs an algorithm with ECDSA (ecdsa-p256 or hybrid)".into(),
        ));
    }
    Ok(s)
}
