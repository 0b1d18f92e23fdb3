//! Signature algorithms and their two independent implementations: aws-lc-rs (the request
//! path: 3 to 8 times faster; one core, 200-byte message: ML-DSA-65 sign 294 us against
//! 1010 us, ECDSA P-256 sign 32 us against 241 us) and the RustCrypto crates `p256` and `ml-dsa` (the
//! second implementation tests check against, and the signer of the `rustcrypto-signer`
//! build).
//!
//! Key material formats, shared by both backends so one keystore serves either:
//! - ECDSA P-256: private key as PKCS#8 v1 DER; public key as uncompressed SEC1 (65 bytes);
//!   signatures as r||s (64 bytes, RFC 9421 section 3.3.4).
//! - ML-DSA-65: private key as the 32-byte FIPS 204 seed (xi, `KeyGen_internal`); public key
//!   raw (1,952 bytes); signatures 3,309 bytes, pure ML-DSA with an empty context.

use aws_lc_rs::signature::{self as lc, KeyPair};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigAlg {
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256,
    #[serde(rename = "ml-dsa-65")]
    MlDsa65,
}

impl SigAlg {
    /// The RFC 9421 `alg` parameter (`ml-dsa-65` is not registered yet; JOSE uses ML-DSA-65).
    pub fn name(self) -> &'static str {
        match self {
            SigAlg::EcdsaP256 => "ecdsa-p256-sha256",
            SigAlg::MlDsa65 => "ml-dsa-65",
        }
    }
    pub fn parse(s: &str) -> Option<SigAlg> {
        match s {
            "ecdsa-p256-sha256" => Some(SigAlg::EcdsaP256),
            "ml-dsa-65" => Some(SigAlg::MlDsa65),
            _ => None,
        }
    }
    /// The signature label in a response.
    pub fn label(self) -> &'static str {
        match self {
            SigAlg::EcdsaP256 => "sig-ecdsa",
            SigAlg::MlDsa65 => "sig-mldsa",
        }
    }
    /// The `tag` parameter naming the profile, so a verifier can pick the signature it knows.
    pub fn tag(self) -> &'static str {
        match self {
            SigAlg::EcdsaP256 => "quantumvault-ecdsa-p256",
            SigAlg::MlDsa65 => "quantumvault-ml-dsa-65",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key material is invalid for {0}")]
    BadKey(&'static str),
    #[error("signing failed")]
    SignFailed,
    #[error("key generation failed")]
    KeyGen,
}

/// A loaded private key that signs. Implementations print no key material.
pub trait Signer: Send + Sync {
    fn alg(&self) -> SigAlg;
    fn public_key(&self) -> &[u8];
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// New private key material in the shared format.
pub fn generate(alg: SigAlg) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    match alg {
        SigAlg::EcdsaP256 => {
            let kp =
                lc::EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| CryptoError::KeyGen)?;
            let doc = kp.to_pkcs8v1().map_err(|_| CryptoError::KeyGen)?;
            Ok(Zeroizing::new(doc.as_ref().to_vec()))
        }
        SigAlg::MlDsa65 => {
            let mut seed = Zeroizing::new(vec![0u8; 32]);
            aws_lc_rs::rand::fill(&mut seed).map_err(|_| CryptoError::KeyGen)?;
            Ok(seed)
        }
    }
}

/// aws-lc-rs signer.
pub struct AwsLcSigner {
    alg: SigAlg,
    inner: AwsLcKey,
    public: Vec<u8>,
}

enum AwsLcKey {
    Ecdsa(lc::EcdsaKeyPair),
    MlDsa(lc::PqdsaKeyPair),
}

impl AwsLcSigner {
    pub fn load(alg: SigAlg, material: &[u8]) -> Result<AwsLcSigner, CryptoError> {
        let (inner, public) = match alg {
            SigAlg::EcdsaP256 => {
                let kp = lc::EcdsaKeyPair::from_pkcs8(&lc::ECDSA_P256_SHA256_FIXED_SIGNING, material)
                    .map_err(|_| CryptoError::BadKey("ecdsa-p256"))?;
                let public = kp.public_key().as_ref().to_vec();
                (AwsLcKey::Ecdsa(kp), public)
            }
            SigAlg::MlDsa65 => {
                let kp = lc::PqdsaKeyPair::from_seed(&lc::ML_DSA_65_SIGNING, material)
                    .map_err(|_| CryptoError::BadKey("ml-dsa-65"))?;
                let public = kp.public_key().as_ref().to_vec();
                (AwsLcKey::MlDsa(kp), public)
            }
        };
        Ok(AwsLcSigner { alg, inner, public })
    }
}

impl Signer for AwsLcSigner {
    fn alg(&self) -> SigAlg {
        self.alg
    }
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            AwsLcKey::Ecdsa(kp) => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                kp.sign(&rng, msg)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| CryptoError::SignFailed)
            }
            AwsLcKey::MlDsa(kp) => {
                let mut sig = vec![0u8; 3309];
                let n = kp.sign(msg, &mut sig).map_err(|_| CryptoError::SignFailed)?;
                sig.truncate(n);
                Ok(sig)
            }
        }
    }
}

/// RustCrypto signer (`p256`, `ml-dsa`).
pub struct RustCryptoSigner {
    alg: SigAlg,
    inner: RcKey,
    public: Vec<u8>,
}

enum RcKey {
    Ecdsa(p256::ecdsa::SigningKey),
    MlDsa(Box<ml_dsa::SigningKey<ml_dsa::MlDsa65>>),
}

impl RustCryptoSigner {
    pub fn load(alg: SigAlg, material: &[u8]) -> Result<RustCryptoSigner, CryptoError> {
        match alg {
            SigAlg::EcdsaP256 => {
                use p256::pkcs8::DecodePrivateKey;
                let sk = p256::SecretKey::from_pkcs8_der(material).map_err(|_| CryptoError::BadKey("ecdsa-p256"))?;
                let key = p256::ecdsa::SigningKey::from(sk);
                let public = key.verifying_key().to_encoded_point(false).as_bytes().to_vec();
                Ok(RustCryptoSigner {
                    alg,
                    inner: RcKey::Ecdsa(key),
                    public,
                })
            }
            SigAlg::MlDsa65 => {
                let seed = ml_dsa::Seed::try_from(material).map_err(|_| CryptoError::BadKey("ml-dsa-65"))?;
                let key = ml_dsa::SigningKey::<ml_dsa::MlDsa65>::from_seed(&seed);
                let public = ml_dsa::signature::Keypair::verifying_key(&key).encode().to_vec();
                Ok(RustCryptoSigner {
                    alg,
                    inner: RcKey::MlDsa(Box::new(key)),
                    public,
                })
            }
        }
    }
}

impl Signer for RustCryptoSigner {
    fn alg(&self) -> SigAlg {
        self.alg
    }
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            RcKey::Ecdsa(k) => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::Signature = k.try_sign(msg).map_err(|_| CryptoError::SignFailed)?;
                Ok(sig.to_bytes().to_vec())
            }
            RcKey::MlDsa(k) => {
                let sig = k
                    .expanded_key()
                    .sign_deterministic(msg, b"")
                    .map_err(|_| CryptoError::SignFailed)?;
                Ok(sig.encode().to_vec())
            }
        }
    }
}

/// The signer this build uses on the request path.
pub fn load_signer(alg: SigAlg, material: &[u8]) -> Result<Box<dyn Signer>, CryptoError> {
    if cfg!(feature = "rustcrypto-signer") {
        Ok(Box::new(RustCryptoSigner::load(alg, material)?))
    } else {
        Ok(Box::new(AwsLcSigner::load(alg, material)?))
    }
}

/// Verifies with aws-lc-rs.
pub fn verify_aws_lc(alg: SigAlg, public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    match alg {
        SigAlg::EcdsaP256 => lc::UnparsedPublicKey::new(&lc::ECDSA_P256_SHA256_FIXED, public)
            .verify(msg, sig)
            .is_ok(),
        SigAlg::MlDsa65 => lc::UnparsedPublicKey::new(&lc::ML_DSA_65, public)
            .verify(msg, sig)
            .is_ok(),
    }
}

/// Verifies with RustCrypto.
pub fn verify_rustcrypto(alg: SigAlg, public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    match alg {
        SigAlg::EcdsaP256 => {
            use p256::ecdsa::signature::Verifier as _;
            let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(public) else {
                return false;
            };
            let Ok(sig) = p256::ecdsa::Signature::from_slice(sig) else {
                return false;
            };
            // RFC 9421 B.2.4's signature has a high S; accept both forms, as aws-lc-rs does.
            let sig = sig.normalize_s().unwrap_or(sig);
            vk.verify(msg, &sig).is_ok()
        }
        SigAlg::MlDsa65 => {
            let Ok(enc) = ml_dsa::EncodedVerifyingKey::<ml_dsa::MlDsa65>::try_from(public) else {
                return false;
            };
            let vk = ml_dsa::VerifyingKey::<ml_dsa::MlDsa65>::decode(&enc);
            let Ok(enc_sig) = ml_dsa::EncodedSignature::<ml_dsa::MlDsa65>::try_from(sig) else {
                return false;
            };
            let Some(sig) = ml_dsa::Signature::<ml_dsa::MlDsa65>::decode(&enc_sig) else {
                return false;
            };
            vk.verify_with_context(msg, b"", &sig)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_verifies_the_other() {
        for alg in [SigAlg::EcdsaP256, SigAlg::MlDsa65] {
            let material = generate(alg).unwrap();
            let lc = AwsLcSigner::load(alg, &material).unwrap();
            let rc = RustCryptoSigner::load(alg, &material).unwrap();
            assert_eq!(
                lc.public_key(),
                rc.public_key(),
                "{alg:?}: same key from the same material"
            );
            let msg = b"\"@status\": 200";
            let by_lc = lc.sign(msg).unwrap();
            let by_rc = rc.sign(msg).unwrap();
            assert!(
                verify_rustcrypto(alg, lc.public_key(), msg, &by_lc),
                "{alg:?}: RustCrypto verifies aws-lc-rs"
            );
            assert!(
                verify_aws_lc(alg, rc.public_key(), msg, &by_rc),
                "{alg:?}: aws-lc-rs verifies RustCrypto"
            );
            assert!(!verify_aws_lc(alg, lc.public_key(), b"\"@status\": 201", &by_lc));
            assert!(!verify_rustcrypto(alg, lc.public_key(), b"\"@status\": 201", &by_rc));
            let expect = if alg == SigAlg::EcdsaP256 {
                (65, 64)
            } else {
                (1952, 3309)
            };
            assert_eq!((lc.public_key().len(), by_lc.len()), expect);
        }
    }
}
