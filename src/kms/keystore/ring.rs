//! What an unlocked keystore hands the proxy: the primary signers and the published public
//! keys, for responses and for the anchor log's checkpoints.

use std::sync::Arc;

use super::KeyState;
use crate::integrity::sig::{SigAlg, Signer};

#[derive(Clone)]
pub struct PrimarySigner {
    pub keyid: String,
    pub signer: Arc<dyn Signer>,
    pub created: u64,
    pub expires: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PublicKeyInfo {
    pub keyid: String,
    pub alg: SigAlg,
    pub public: Vec<u8>,
    pub state: KeyState,
    pub created: u64,
    pub expires: Option<u64>,
}

/// What the proxy signs with and publishes. Cheap to clone and swap.
#[derive(Clone, Default)]
pub struct KeyRing {
    /// The primary response-signing key per algorithm.
    pub signers: Vec<PrimarySigner>,
    /// Every response-signing key version not destroyed (the JWKS).
    pub published: Vec<PublicKeyInfo>,
    /// The primary checkpoint key per algorithm (Ed25519, ML-DSA-65).
    pub checkpoint: Vec<PrimarySigner>,
    /// Every checkpoint key version not destroyed (the log's verifier keys).
    pub checkpoint_published: Vec<PublicKeyInfo>,
}

impl KeyRing {
    /// Prefixes the response-signing key ids with `instance/` (cluster mode).
    pub fn name_instance(&mut self, instance: &str) {
        for s in &mut self.signers {
            s.keyid = format!("{instance}/{}", s.keyid);
        }
        for k in &mut self.published {
            k.keyid = format!("{instance}/{}", k.keyid);
        }
    }

    pub fn signer(&self, alg: SigAlg) -> Option<&PrimarySigner> {
        self.signers.iter().find(|s| s.signer.alg() == alg)
    }
}
