//! The keystore file's format: where the master key comes from, the sealed check and key
//! records it holds, and the AES-256-GCM sealing of key material under the master key.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{KmsError, B64};
use crate::integrity::sig::SigAlg;

/// The 32-byte key that seals the keystore. Zeroized on drop, never printed.
pub struct MasterKey(pub(super) Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterSource {
    Passphrase(Zeroizing<String>),
    KeyFile(PathBuf),
}

impl MasterSource {
    /// Key file, passphrase file, or the passphrase environment variable, in that order.
    pub fn from_settings(
        key_file: Option<&Path>,
        passphrase_file: Option<&Path>,
        passphrase_env: &str,
    ) -> Result<MasterSource, KmsError> {
        if let Some(k) = key_file {
            return Ok(MasterSource::KeyFile(k.to_path_buf()));
        }
        if let Some(p) = passphrase_file {
            let text = Zeroizing::new(std::fs::read_to_string(p).map_err(|e| KmsError::Io(p.to_path_buf(), e))?);
            return Ok(MasterSource::Passphrase(Zeroizing::new(
                text.trim_end_matches(['\n', '\r']).to_string(),
            )));
        }
        match std::env::var(passphrase_env) {
            Ok(p) if !p.is_empty() => Ok(MasterSource::Passphrase(Zeroizing::new(p))),
            _ => Err(KmsError::NoMasterKey(passphrase_env.to_string())),
        }
    }

    pub(super) fn derive(&self, kdf: &Kdf) -> Result<MasterKey, KmsError> {
        let mut key = Zeroizing::new([0u8; 32]);
        match (self, kdf) {
            (MasterSource::Passphrase(p), Kdf::Pbkdf2Sha256 { iterations, salt }) => {
                let salt = B64.decode(salt).map_err(|_| KmsError::Invalid("bad salt".into()))?;
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(p.as_bytes(), &salt, *iterations, key.as_mut());
            }
            (MasterSource::KeyFile(path), Kdf::KeyFile) => {
                let raw = Zeroizing::new(std::fs::read(path).map_err(|e| KmsError::Io(path.clone(), e))?);
                // Exactly 32 bytes is a raw key, whatever its last byte (a random key ends in
                // a newline byte once in 256); only hex is read with a line end after it.
                let trimmed: &[u8] = raw.strip_suffix(b"\n").unwrap_or(&raw);
                let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
                if raw.len() == 32 {
                    key.copy_from_slice(&raw);
                } else if trimmed.len() == 64 && hex::decode_to_slice(trimmed, key.as_mut()).is_ok() {
                } else {
                    return Err(KmsError::Invalid(format!(
                        "key file {} must hold 32 bytes (raw, or 64 hex digits)",
                        path.display()
                    )));
                }
            }
            (MasterSource::Passphrase(_), Kdf::KeyFile) => {
                return Err(KmsError::Invalid(
                    "this keystore is sealed with a key file, not a passphrase".into(),
                ))
            }
            (MasterSource::KeyFile(_), Kdf::Pbkdf2Sha256 { .. }) => {
                return Err(KmsError::Invalid(
                    "this keystore is sealed with a passphrase, not a key file".into(),
                ))
            }
        }
        Ok(MasterKey(key))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub(super) enum Kdf {
    Pbkdf2Sha256 { iterations: u32, salt: String },
    KeyFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Signs (the newest active version is primary) and is published.
    Active,
    /// Published so earlier signatures still verify; never signs.
    Retired,
    /// Material erased; the record says the version existed.
    Destroyed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sealed {
    pub(super) nonce: String,
    pub(super) ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRecord {
    pub version: u32,
    pub state: KeyState,
    /// Unix seconds.
    pub created: u64,
    pub expires: Option<u64>,
    /// Base64 public key (signing keys), kept after destruction for the record.
    pub public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) sealed: Option<Sealed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<u64>,
}

/// The length of a public key of `alg`, as stored.
pub(super) fn public_key_len(alg: SigAlg) -> usize {
    match alg {
        SigAlg::EcdsaP256 => 65,
        SigAlg::MlDsa65 => 1952,
        SigAlg::Ed25519 => 32,
    }
}

/// The purpose of the keys that sign the anchor log's checkpoints (never responses).
pub const CHECKPOINT: &str = "checkpoint";

/// What a key is: a signing algorithm, or a secret for HMAC or encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlg {
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256,
    #[serde(rename = "ml-dsa-65")]
    MlDsa65,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl KeyAlg {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::EcdsaP256 => "ecdsa-p256-sha256",
            KeyAlg::MlDsa65 => "ml-dsa-65",
            KeyAlg::HmacSha256 => "hmac-sha256",
            KeyAlg::Aes256Gcm => "aes-256-gcm",
            KeyAlg::Ed25519 => "ed25519",
        }
    }
    pub fn parse(s: &str) -> Option<KeyAlg> {
        [
            KeyAlg::EcdsaP256,
            KeyAlg::MlDsa65,
            KeyAlg::HmacSha256,
            KeyAlg::Aes256Gcm,
            KeyAlg::Ed25519,
        ]
        .into_iter()
        .find(|a| a.name() == s)
    }
    pub fn sig(self) -> Option<SigAlg> {
        match self {
            KeyAlg::EcdsaP256 => Some(SigAlg::EcdsaP256),
            KeyAlg::MlDsa65 => Some(SigAlg::MlDsa65),
            KeyAlg::Ed25519 => Some(SigAlg::Ed25519),
            _ => None,
        }
    }
    /// The purpose a key of this algorithm serves.
    pub fn purpose(self) -> &'static str {
        match self {
            KeyAlg::EcdsaP256 | KeyAlg::MlDsa65 => "signing",
            KeyAlg::Ed25519 => CHECKPOINT,
            KeyAlg::HmacSha256 => "hmac",
            KeyAlg::Aes256Gcm => "encryption",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub name: String,
    pub service: String,
    pub purpose: String,
    pub alg: KeyAlg,
    pub versions: Vec<VersionRecord>,
}

impl KeyRecord {
    pub fn keyid(&self, version: u32) -> String {
        format!("{}-v{version}", self.name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) format: String,
    pub(super) version: u32,
    pub(super) kdf: Kdf,
    pub(super) check: Sealed,
    pub(super) keys: Vec<KeyRecord>,
    /// HMAC-SHA256 over the format, KDF and every record's metadata (names, algorithms,
    /// states, dates, public keys), under a key derived from the master key ([`metadata_mac`]):
    /// a state, an expiry or a public key edited in the file is found at open. Absent only in
    /// keystores written before it existed; their `check` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) mac: Option<String>,
}

/// The MAC of `file`'s metadata (everything but `check` and the MAC itself). The sealed
/// material is covered too, as stored; its AEAD tag authenticates it on its own as well.
pub(super) fn metadata_mac(master: &MasterKey, file: &File) -> Result<Vec<u8>, String> {
    use hmac::{Mac, SimpleHmac};
    type HmacSha256 = SimpleHmac<sha2::Sha256>;
    let key = {
        let mut m = <HmacSha256 as Mac>::new_from_slice(&master.0[..]).map_err(|e| e.to_string())?;
        m.update(b"quantumvault-keystore/v1 metadata mac");
        Zeroizing::new(m.finalize().into_bytes().to_vec())
    };
    let body = serde_json::to_vec(&(&file.format, file.version, &file.kdf, &file.keys)).map_err(|e| e.to_string())?;
    let mut m = <HmacSha256 as Mac>::new_from_slice(&key).map_err(|e| e.to_string())?;
    m.update(&body);
    Ok(m.finalize().into_bytes().to_vec())
}

pub(super) fn aad(name: &str, version: u32, alg: KeyAlg) -> Vec<u8> {
    format!("quantumvault-keystore/v1\0{name}\0{version}\0{}", alg.name()).into_bytes()
}

pub(super) fn seal(master: &MasterKey, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, KmsError> {
    let cipher = Aes256Gcm::new_from_slice(master.0.as_ref()).map_err(|_| KmsError::Invalid("master key".into()))?;
    let nonce: [u8; 12] = rand::random();
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| KmsError::Invalid("encryption failed".into()))?;
    Ok(Sealed {
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ct),
    })
}

pub(super) fn open(master: &MasterKey, sealed: &Sealed, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = Aes256Gcm::new_from_slice(master.0.as_ref()).ok()?;
    let nonce = B64.decode(&sealed.nonce).ok().filter(|n| n.len() == 12)?;
    let ct = B64.decode(&sealed.ciphertext).ok()?;
    cipher
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad })
        .ok()
        .map(Zeroizing::new)
}
