//! Where private keys live and sign. The software provider keeps key material encrypted in the
//! keystore file and in memory only while loaded; an HSM provider (PKCS#11 through `cryptoki`)
//! would implement the same trait and store a key handle as its "material", so the proxy and
//! the keystore do not change.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::integrity::sig::{self, CryptoError, SigAlg, Signer};

pub trait KeyProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// New key material (for an HSM: an opaque handle to a key it generated).
    fn generate(&self, alg: SigAlg) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
    fn public_key(&self, alg: SigAlg, material: &[u8]) -> Result<Vec<u8>, CryptoError>;
    fn signer(&self, alg: SigAlg, material: &[u8]) -> Result<Arc<dyn Signer>, CryptoError>;
    /// Erases the key (for software keys the caller's buffer is zeroized on drop; an HSM
    /// destroys the object).
    fn destroy(&self, material: Zeroizing<Vec<u8>>) -> Result<(), CryptoError>;
}

pub struct SoftwareProvider;

impl KeyProvider for SoftwareProvider {
    fn name(&self) -> &'static str {
        if cfg!(feature = "rustcrypto-signer") {
            "software (RustCrypto)"
        } else {
            "software (aws-lc-rs)"
        }
    }
    fn generate(&self, alg: SigAlg) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        sig::generate(alg)
    }
    fn public_key(&self, alg: SigAlg, material: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(sig::load_signer(alg, material)?.public_key().to_vec())
    }
    fn signer(&self, alg: SigAlg, material: &[u8]) -> Result<Arc<dyn Signer>, CryptoError> {
        Ok(Arc::from(sig::load_signer(alg, material)?))
    }
    fn destroy(&self, material: Zeroizing<Vec<u8>>) -> Result<(), CryptoError> {
        drop(material);
        Ok(())
    }
}
