//! The public key directory: a JWKS of every active and retired signing key version. EC P-256
//! keys as `kty: EC` JWKs; ML-DSA-65 keys as `kty: AKP` (RFC 9964), the raw key in `pub`.

use base64::Engine;
use serde_json::{json, Value};

use super::sig::SigAlg;
use crate::kms::keystore::{KeyRing, KeyState};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn jwk(keyid: &str, alg: SigAlg, public: &[u8]) -> Value {
    match alg {
        SigAlg::EcdsaP256 => json!({
            "kty": "EC", "crv": "P-256",
            "x": B64URL.encode(&public[1..33]), "y": B64URL.encode(&public[33..65]),
            "kid": keyid, "alg": "ES256", "use": "sig",
        }),
        SigAlg::MlDsa65 => {
            json!({"kty": "AKP", "alg": "ML-DSA-65", "pub": B64URL.encode(public), "kid": keyid, "use": "sig"})
        }
        SigAlg::Ed25519 => {
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64URL.encode(public), "kid": keyid, "alg": "EdDSA", "use": "sig"})
        }
    }
}

pub fn directory(ring: &KeyRing) -> Value {
    let keys: Vec<Value> = ring
        .published
        .iter()
        .map(|k| {
            let mut j = jwk(&k.keyid, k.alg, &k.public);
            if k.state == KeyState::Retired {
                // Not a JWK member registries know; verifiers ignore unknown members.
                j["qv_state"] = json!("retired");
            }
            j
        })
        .collect();
    json!({ "keys": keys })
}

/// Keys of a JWKS: kid -> (algorithm, public key bytes). Unknown key types are skipped.
pub fn parse(jwks: &Value) -> Result<Vec<(String, SigAlg, Vec<u8>)>, String> {
    let keys = jwks["keys"].as_array().ok_or("a JWKS has a `keys` array")?;
    let mut out = Vec::new();
    for k in keys {
        let kid = k["kid"].as_str().unwrap_or("").to_string();
        let dec = |f: &str| {
            B64URL
                .decode(k[f].as_str().unwrap_or(""))
                .map_err(|_| format!("key {kid}: bad {f}"))
        };
        match (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()) {
            (Some("EC"), Some("P-256"), _) => {
                let (x, y) = (dec("x")?, dec("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(format!("key {kid}: bad EC coordinates"));
                }
                let mut p = vec![4u8];
                p.extend_from_slice(&x);
                p.extend_from_slice(&y);
                out.push((kid, SigAlg::EcdsaP256, p));
            }
            (Some("AKP"), _, Some("ML-DSA-65")) => out.push((kid.clone(), SigAlg::MlDsa65, dec("pub")?)),
            (Some("OKP"), Some("Ed25519"), _) => out.push((kid.clone(), SigAlg::Ed25519, dec("x")?)),
            _ => {}
        }
    }
    Ok(out)
}
