//! RFC 9530 `Content-Digest`: `sha-256` (default) and `sha-512` are registered; `sha3-256` and
//! `blake3` are this project's private extensions, accepted by `quantumvault verify`.

use base64::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlg {
    Sha256,
    Sha512,
    Sha3_256,
    Blake3,
}

impl DigestAlg {
    pub fn name(self) -> &'static str {
        match self {
            DigestAlg::Sha256 => "sha-256",
            DigestAlg::Sha512 => "sha-512",
            DigestAlg::Sha3_256 => "sha3-256",
            DigestAlg::Blake3 => "blake3",
        }
    }

    pub fn parse(name: &str) -> Option<DigestAlg> {
        Some(match name {
            "sha-256" => DigestAlg::Sha256,
            "sha-512" => DigestAlg::Sha512,
            "sha3-256" => DigestAlg::Sha3_256,
            "blake3" => DigestAlg::Blake3,
            _ => return None,
        })
    }

    pub fn hasher(self) -> Hasher {
        match self {
            DigestAlg::Sha256 => Hasher::Lc(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256)),
            DigestAlg::Sha512 => Hasher::Lc(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA512)),
            DigestAlg::Sha3_256 => Hasher::Sha3(<sha3::Sha3_256 as sha3::Digest>::new()),
            DigestAlg::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

/// Incremental hashing, so a body can be hashed chunk by chunk as it arrives.
pub enum Hasher {
    Lc(aws_lc_rs::digest::Context),
    Sha3(sha3::Sha3_256),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Lc(c) => c.update(data),
            Hasher::Sha3(h) => sha3::Digest::update(h, data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Lc(c) => c.finish().as_ref().to_vec(),
            Hasher::Sha3(h) => sha3::Digest::finalize(h).to_vec(),
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

/// `sha-256=:<base64>:`
pub fn header_value(alg: DigestAlg, digest: &[u8]) -> String {
    let mut out = String::with_capacity(alg.name().len() + 3 + digest.len().div_ceil(3) * 4);
    out.push_str(alg.name());
    out.push_str("=:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out.push(':');
    out
}

/// Checks a `Content-Digest` field against `body`: every member with an algorithm we know must
/// match, and at least one must be present. Returns the algorithms checked.
pub fn verify(field: &str, body: &[u8]) -> Result<Vec<&'static str>, String> {
    let dict = sfv::Parser::parse_dictionary(field.as_bytes())
        .map_err(|e| format!("Content-Digest is not a structured dictionary: {e}"))?;
    let mut checked = Vec::new();
    for (name, entry) in dict {
        let Some(alg) = DigestAlg::parse(&name) else { continue };
        let sfv::ListEntry::Item(item) = entry else {
            return Err(format!("Content-Digest member {name} is not a byte sequence"));
        };
        let sfv::BareItem::ByteSeq(expected) = item.bare_item else {
            return Err(format!("Content-Digest member {name} is not a byte sequence"));
        };
        if alg.digest(body) != expected {
            return Err(format!("Content-Digest {name} does not match the body"));
        }
        checked.push(alg.name());
    }
    if checked.is_empty() {
        return Err("Content-Digest has no algorithm this verifier knows".into());
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9530_examples() {
        // RFC 9530 section 2: {"hello": "world"} followed by a newline.
        let body = b"{\"hello\": \"world\"}\n";
        assert_eq!(
            header_value(DigestAlg::Sha256, &DigestAlg::Sha256.digest(body)),
            "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
        );
        assert!(verify(
            "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:",
            body
        )
        .is_ok());
        assert!(verify("sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:", b"other").is_err());
        for alg in [DigestAlg::Sha3_256, DigestAlg::Blake3] {
            let mut h = alg.hasher();
            h.update(b"{\"hello\": ");
            h.update(b"\"world\"}\n");
            assert_eq!(h.finish(), alg.digest(body));
            assert!(verify(&header_value(alg, &alg.digest(body)), body).is_ok());
        }
    }
}
