//! The keystore file and key lifecycle. See the module documentation of [`crate::kms`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::provider::KeyProvider;
use crate::integrity::sig::{SigAlg, Signer};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const FORMAT: &str = "quantumvault-keystore";
const CHECK_PLAINTEXT: &[u8] = b"quantumvault keystore check v1";
pub const MIN_ITERATIONS: u32 = 600_000;

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("no keystore at {0}; create one with `quantumvault keys init`")]
    Missing(PathBuf),
    #[error("keystore {0} already exists; it is never overwritten")]
    Exists(PathBuf),
    #[error("keystore {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("the passphrase or key file does not unlock keystore {0}")]
    WrongKey(PathBuf),
    #[error("keystore {path}: record {name} v{version} failed authentication: the file was modified or corrupted")]
    Tampered { path: PathBuf, name: String, version: u32 },
    #[error("keystore {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("keystore {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("no master key: set {0} (passphrase), or keys.passphrase_file / keys.key_file in gateway.yaml")]
    NoMasterKey(String),
    #[error("{0}")]
    Invalid(String),
    #[error("key operation failed: {0}")]
    Crypto(#[from] crate::integrity::sig::CryptoError),
}

/// The 32-byte key that seals the keystore. Zeroized on drop, never printed.
pub struct MasterKey(Zeroizing<[u8; 32]>);

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

    fn derive(&self, kdf: &Kdf) -> Result<MasterKey, KmsError> {
        let mut key = Zeroizing::new([0u8; 32]);
        match (self, kdf) {
            (MasterSource::Passphrase(p), Kdf::Pbkdf2Sha256 { iterations, salt }) => {
                let salt = B64.decode(salt).map_err(|_| KmsError::Invalid("bad salt".into()))?;
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(p.as_bytes(), &salt, *iterations, key.as_mut());
            }
            (MasterSource::KeyFile(path), Kdf::KeyFile) => {
                let raw = Zeroizing::new(std::fs::read(path).map_err(|e| KmsError::Io(path.clone(), e))?);
                let trimmed: &[u8] = raw.strip_suffix(b"\n").unwrap_or(&raw);
                if trimmed.len() == 32 {
                    key.copy_from_slice(trimmed);
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
enum Kdf {
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
struct Sealed {
    nonce: String,
    ciphertext: String,
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
    sealed: Option<Sealed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<u64>,
}

/// The length of a public key of `alg`, as stored.
fn public_key_len(alg: SigAlg) -> usize {
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
struct File {
    format: String,
    version: u32,
    kdf: Kdf,
    check: Sealed,
    keys: Vec<KeyRecord>,
}

/// An unlocked keystore.
pub struct Keystore {
    path: PathBuf,
    master: MasterKey,
    file: File,
    provider: Arc<dyn KeyProvider>,
    /// An exclusive lock on `{path}.lock`, held while this is open: the CLI, a running gateway
    /// and the new process of a graceful upgrade read, change and write the store in turn, so
    /// none overwrites another's rotation or undoes a destroy.
    _lock: Option<std::fs::File>,
}

/// Waits for, and takes, the exclusive lock of the keystore at `path`. On a directory nobody
/// may write (a read-only mount), nobody can change the store either, and there is no lock.
fn lock(path: &Path) -> Result<Option<std::fs::File>, KmsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock_path = lock_path(path);
    let f = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
    {
        Ok(f) => f,
        Err(e)
            if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
                || e.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            log::debug!(
                "keystore lock {}: {e}; the store is read-only here",
                lock_path.display()
            );
            return Ok(None);
        }
        Err(e) => return Err(KmsError::Io(lock_path, e)),
    };
    f.lock().map_err(|e| KmsError::Io(lock_path, e))?;
    Ok(Some(f))
}

/// `keystore.json.lock` beside `keystore.json`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("keys", &self.file.keys.len())
            .finish()
    }
}

fn aad(name: &str, version: u32, alg: KeyAlg) -> Vec<u8> {
    format!("quantumvault-keystore/v1\0{name}\0{version}\0{}", alg.name()).into_bytes()
}

fn seal(master: &MasterKey, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, KmsError> {
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

fn open(master: &MasterKey, sealed: &Sealed, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = Aes256Gcm::new_from_slice(master.0.as_ref()).ok()?;
    let nonce = B64.decode(&sealed.nonce).ok().filter(|n| n.len() == 12)?;
    let ct = B64.decode(&sealed.ciphertext).ok()?;
    cipher
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad })
        .ok()
        .map(Zeroizing::new)
}

impl Keystore {
    /// Creates a new keystore with the gateway's signing keys (ECDSA P-256 and ML-DSA-65).
    /// Refuses to touch an existing file.
    pub fn init(
        path: &Path,
        source: &MasterSource,
        iterations: u32,
        provider: Arc<dyn KeyProvider>,
        lifetime: Option<u64>,
    ) -> Result<Keystore, KmsError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| KmsError::Io(dir.to_path_buf(), e))?;
        }
        if path.exists() {
            return Err(KmsError::Exists(path.to_path_buf()));
        }
        let held = lock(path)?;
        if path.exists() {
            return Err(KmsError::Exists(path.to_path_buf()));
        }
        let kdf = match source {
            MasterSource::Passphrase(_) => {
                let salt: [u8; 16] = rand::random();
                Kdf::Pbkdf2Sha256 {
                    iterations: iterations.max(MIN_ITERATIONS),
                    salt: B64.encode(salt),
                }
            }
            MasterSource::KeyFile(_) => Kdf::KeyFile,
        };
        let master = source.derive(&kdf)?;
        let check = seal(&master, CHECK_PLAINTEXT, b"check")?;
        let file = File {
            format: FORMAT.into(),
            version: 1,
            kdf,
            check,
            keys: Vec::new(),
        };
        let mut ks = Keystore {
            path: path.to_path_buf(),
            master,
            file,
            provider,
            _lock: held,
        };
        for (alg, short) in [(KeyAlg::EcdsaP256, "ecdsa"), (KeyAlg::MlDsa65, "mldsa")] {
            ks.file.keys.push(KeyRecord {
                name: format!("gateway-signing-{short}"),
                service: "gateway".into(),
                purpose: "signing".into(),
                alg,
                versions: Vec::new(),
            });
            let name = format!("gateway-signing-{short}");
            ks.add_version(&name, lifetime)?;
        }
        ks.add_checkpoint_keys(lifetime)?;
        ks.save()?;
        Ok(ks)
    }

    /// Adds the anchor log's checkpoint keys (Ed25519 and ML-DSA-65, purpose `checkpoint`)
    /// that this keystore lacks, unsaved; their names. Keystores made before the anchor log
    /// had checkpoints get them on the gateway's next start.
    pub fn add_checkpoint_keys(&mut self, lifetime: Option<u64>) -> Result<Vec<String>, KmsError> {
        let mut added = Vec::new();
        for (alg, short) in [(KeyAlg::Ed25519, "ed25519"), (KeyAlg::MlDsa65, "mldsa")] {
            let name = format!("anchor-{CHECKPOINT}-{short}");
            if self.file.keys.iter().any(|k| k.name == name) {
                continue;
            }
            self.file.keys.push(KeyRecord {
                name: name.clone(),
                service: "anchor".into(),
                purpose: CHECKPOINT.into(),
                alg,
                versions: Vec::new(),
            });
            self.add_version(&name, lifetime)?;
            added.push(name);
        }
        Ok(added)
    }

    /// Opens and unlocks; every failure is its own clear error and leaves the file as it is.
    pub fn open(path: &Path, source: &MasterSource, provider: Arc<dyn KeyProvider>) -> Result<Keystore, KmsError> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => KmsError::Missing(path.to_path_buf()),
            _ => KmsError::Io(path.to_path_buf(), e),
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KmsError::Permissions {
                path: path.display().to_string(),
                mode,
            });
        }
        let held = lock(path)?;
        let bytes = std::fs::read(path).map_err(|e| KmsError::Io(path.to_path_buf(), e))?;
        let corrupt = |reason: String| KmsError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file: File = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.format != FORMAT || file.version != 1 {
            return Err(corrupt(format!(
                "unsupported format {} version {}",
                file.format, file.version
            )));
        }
        let master = source.derive(&file.kdf)?;
        match open(&master, &file.check, b"check") {
            Some(p) if p.as_slice() == CHECK_PLAINTEXT => {}
            _ => return Err(KmsError::WrongKey(path.to_path_buf())),
        }
        let ks = Keystore {
            path: path.to_path_buf(),
            master,
            file,
            provider,
            _lock: held,
        };
        // Authenticate every record now, so tampering is found at start-up, not mid-traffic:
        // the sealed material by its AEAD tag, a signing key's stored public key against the
        // one its material gives (the key directory and the log publish the stored one), and
        // the public key of a destroyed version by its length.
        for k in &ks.file.keys {
            for v in &k.versions {
                let public = match &v.public_key {
                    Some(p) => Some(
                        B64.decode(p)
                            .map_err(|_| corrupt(format!("{} v{}: the public key is not base64", k.name, v.version)))?,
                    ),
                    None => None,
                };
                let Some(alg) = k.alg.sig() else {
                    if v.sealed.is_some() {
                        ks.material(k, v)?;
                    }
                    continue;
                };
                match (&v.sealed, public) {
                    (Some(_), Some(public)) => {
                        let material = ks.material(k, v)?;
                        if ks.provider.public_key(alg, &material)? != public {
                            return Err(KmsError::Tampered {
                                path: path.to_path_buf(),
                                name: k.name.clone(),
                                version: v.version,
                            });
                        }
                    }
                    (None, Some(public)) if public.len() != public_key_len(alg) => {
                        return Err(corrupt(format!(
                            "{} v{}: the public key has the wrong length for {}",
                            k.name,
                            v.version,
                            alg.name()
                        )));
                    }
                    (Some(_), None) => {
                        return Err(corrupt(format!(
                            "{} v{}: a signing key without its public key",
                            k.name, v.version
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(ks)
    }

    fn material(&self, k: &KeyRecord, v: &VersionRecord) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let sealed = v
            .sealed
            .as_ref()
            .ok_or_else(|| KmsError::Invalid(format!("{} v{} has no material", k.name, v.version)))?;
        open(&self.master, sealed, &aad(&k.name, v.version, k.alg)).ok_or_else(|| KmsError::Tampered {
            path: self.path.clone(),
            name: k.name.clone(),
            version: v.version,
        })
    }

    fn add_version(&mut self, name: &str, lifetime: Option<u64>) -> Result<u32, KmsError> {
        let idx = self
            .file
            .keys
            .iter()
            .position(|k| k.name == name)
            .ok_or_else(|| KmsError::Invalid(format!("no key named {name}")))?;
        let alg = self.file.keys[idx].alg;
        let version = self.file.keys[idx]
            .versions
            .iter()
            .map(|v| v.version)
            .max()
            .unwrap_or(0)
            + 1;
        let (material, public) = match alg.sig() {
            Some(sig) => {
                let m = self.provider.generate(sig)?;
                let p = self.provider.public_key(sig, &m)?;
                (m, Some(p))
            }
            None => {
                let mut secret = Zeroizing::new(vec![0u8; 32]);
                aws_lc_rs::rand::fill(&mut secret).map_err(|_| KmsError::Invalid("random generator failed".into()))?;
                (secret, None)
            }
        };
        let sealed = seal(&self.master, &material, &aad(name, version, alg))?;
        let now = crate::clock::unix_now();
        self.file.keys[idx].versions.push(VersionRecord {
            version,
            state: KeyState::Active,
            created: now,
            expires: lifetime.map(|l| now + l),
            public_key: public.map(|p| B64.encode(p)),
            sealed: Some(sealed),
            destroyed_at: None,
        });
        Ok(version)
    }

    pub fn save(&self) -> Result<(), KmsError> {
        let body = serde_json::to_vec_pretty(&self.file).map_err(|e| KmsError::Invalid(e.to_string()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| KmsError::Io(dir.to_path_buf(), e))?;
        }
        crate::usage::write_atomic(&self.path, &body, 0o600).map_err(|e| KmsError::Io(self.path.clone(), e))
    }

    pub fn keys(&self) -> &[KeyRecord] {
        &self.file.keys
    }

    /// A new key for `service` and the purpose its algorithm serves (signing, hmac, encryption),
    /// named `{service}-{purpose}-{alg}`, with version 1.
    pub fn create_key(&mut self, service: &str, alg: KeyAlg, lifetime: Option<u64>) -> Result<String, KmsError> {
        if service.is_empty()
            || !service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(KmsError::Invalid(
                "service names use letters, digits, '-' and '_'".into(),
            ));
        }
        let short = match alg {
            KeyAlg::EcdsaP256 => "ecdsa",
            KeyAlg::MlDsa65 => "mldsa",
            KeyAlg::HmacSha256 => "sha256",
            KeyAlg::Aes256Gcm => "aes256gcm",
            KeyAlg::Ed25519 => "ed25519",
        };
        let name = format!("{service}-{}-{short}", alg.purpose());
        if self.file.keys.iter().any(|k| k.name == name) {
            return Err(KmsError::Invalid(format!("key {name} exists; rotate it instead")));
        }
        self.file.keys.push(KeyRecord {
            name: name.clone(),
            service: service.into(),
            purpose: alg.purpose().into(),
            alg,
            versions: Vec::new(),
        });
        self.add_version(&name, lifetime)?;
        self.save()?;
        Ok(name)
    }

    /// The primary secret of an HMAC or encryption key (zeroized on drop).
    pub fn secret(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let k = self
            .file
            .keys
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| KmsError::Invalid(format!("no key named {name}")))?;
        if k.alg.sig().is_some() {
            return Err(KmsError::Invalid(format!(
                "{name} is a signing key; its material never leaves the provider"
            )));
        }
        let now = crate::clock::unix_now();
        let v = k
            .versions
            .iter()
            .filter(|v| v.state == KeyState::Active && v.expires.is_none_or(|e| e > now))
            .max_by_key(|v| v.version)
            .ok_or_else(|| KmsError::Invalid(format!("{name} has no active version")))?;
        self.material(k, v)
    }

    /// A new primary version; earlier versions stay published.
    pub fn rotate(&mut self, name: &str, lifetime: Option<u64>) -> Result<u32, KmsError> {
        let v = self.add_version(name, lifetime)?;
        self.save()?;
        Ok(v)
    }

    pub fn retire(&mut self, name: &str, version: u32) -> Result<(), KmsError> {
        let v = self.version_mut(name, version)?;
        if v.state == KeyState::Destroyed {
            return Err(KmsError::Invalid(format!("{name} v{version} is destroyed")));
        }
        v.state = KeyState::Retired;
        self.save()
    }

    /// Erases the material (from the file and, zeroized, from memory); keeps the record.
    pub fn destroy(&mut self, name: &str, version: u32) -> Result<(), KmsError> {
        let k = self
            .file
            .keys
            .iter()
            .find(|k| k.name == name)
            .cloned()
            .ok_or_else(|| KmsError::Invalid(format!("no key named {name}")))?;
        let rec = k
            .versions
            .iter()
            .find(|v| v.version == version)
            .ok_or_else(|| KmsError::Invalid(format!("{name} has no version {version}")))?;
        if rec.sealed.is_some() {
            let material = self.material(&k, rec)?;
            self.provider.destroy(material)?;
        }
        let v = self.version_mut(name, version)?;
        v.state = KeyState::Destroyed;
        v.sealed = None;
        v.destroyed_at = Some(crate::clock::unix_now());
        self.save()
    }

    fn version_mut(&mut self, name: &str, version: u32) -> Result<&mut VersionRecord, KmsError> {
        self.file
            .keys
            .iter_mut()
            .find(|k| k.name == name)
            .ok_or_else(|| KmsError::Invalid(format!("no key named {name}")))?
            .versions
            .iter_mut()
            .find(|v| v.version == version)
            .ok_or_else(|| KmsError::Invalid(format!("{name} has no version {version}")))
    }

    /// Rotates signing keys whose primary is older than `rotate_after` or expired.
    pub fn auto_rotate(&mut self, rotate_after: Option<u64>, lifetime: Option<u64>) -> Result<Vec<String>, KmsError> {
        let now = crate::clock::unix_now();
        let mut rotated = Vec::new();
        let names: Vec<String> = self.file.keys.iter().map(|k| k.name.clone()).collect();
        for name in names {
            let Some(k) = self.file.keys.iter().find(|k| k.name == name) else {
                continue;
            };
            let primary = k
                .versions
                .iter()
                .filter(|v| v.state == KeyState::Active)
                .max_by_key(|v| v.version);
            let due = match primary {
                None => true,
                Some(p) => {
                    p.expires.is_some_and(|e| e <= now)
                        || rotate_after.is_some_and(|r| now.saturating_sub(p.created) >= r)
                }
            };
            if due {
                self.add_version(&name, lifetime)?;
                rotated.push(name);
            }
        }
        if !rotated.is_empty() {
            self.save()?;
        }
        Ok(rotated)
    }

    /// The key ring for the proxy: the primary signer per algorithm and every published key.
    pub fn key_ring(&self) -> Result<KeyRing, KmsError> {
        let now = crate::clock::unix_now();
        let mut ring = KeyRing::default();
        for k in &self.file.keys {
            let Some(sig_alg) = k.alg.sig() else { continue };
            let checkpoint = k.purpose == CHECKPOINT;
            for v in &k.versions {
                if v.state == KeyState::Destroyed {
                    continue;
                }
                if let Some(pk) = v.public_key.as_ref().and_then(|p| B64.decode(p).ok()) {
                    let list = if checkpoint {
                        &mut ring.checkpoint_published
                    } else {
                        &mut ring.published
                    };
                    list.push(PublicKeyInfo {
                        keyid: k.keyid(v.version),
                        alg: sig_alg,
                        public: pk,
                        state: v.state,
                        created: v.created,
                        expires: v.expires,
                    });
                }
            }
            let primary = k
                .versions
                .iter()
                .filter(|v| v.state == KeyState::Active && v.expires.is_none_or(|e| e > now))
                .max_by_key(|v| v.version);
            if let Some(v) = primary {
                let material = self.material(k, v)?;
                let signer = self.provider.signer(sig_alg, &material)?;
                let list = if checkpoint {
                    &mut ring.checkpoint
                } else {
                    &mut ring.signers
                };
                list.push(PrimarySigner {
                    keyid: k.keyid(v.version),
                    signer,
                    created: v.created,
                    expires: v.expires,
                });
            }
        }
        Ok(ring)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

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
    pub fn signer(&self, alg: SigAlg) -> Option<&PrimarySigner> {
        self.signers.iter().find(|s| s.signer.alg() == alg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::provider::SoftwareProvider;

    fn pass(p: &str) -> MasterSource {
        MasterSource::Passphrase(Zeroizing::new(p.into()))
    }

    #[test]
    fn lifecycle_and_every_failure_has_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
        let mut ks = Keystore::init(&path, &pass("correct horse"), MIN_ITERATIONS, prov.clone(), None).unwrap();
        assert!(matches!(
            Keystore::init(&path, &pass("x"), MIN_ITERATIONS, prov.clone(), None),
            Err(KmsError::Exists(_))
        ));
        let ring1 = ks.key_ring().unwrap();
        assert_eq!(ring1.signers.len(), 2);
        let v2 = ks.rotate("gateway-signing-ecdsa", None).unwrap();
        assert_eq!(v2, 2);
        let ring2 = ks.key_ring().unwrap();
        assert_eq!(
            ring2.signer(SigAlg::EcdsaP256).unwrap().keyid,
            "gateway-signing-ecdsa-v2"
        );
        assert_eq!(ring2.published.len(), 3, "v1 still published after rotation");
        ks.retire("gateway-signing-ecdsa", 1).unwrap();
        ks.destroy("gateway-signing-ecdsa", 1).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("destroyed_at"));
        assert_eq!(ks.key_ring().unwrap().published.len(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        // Reopen: right passphrase works; wrong one, a flipped byte and loose permissions fail.
        drop(ks);
        assert!(Keystore::open(&path, &pass("correct horse"), prov.clone()).is_ok());
        assert!(matches!(
            Keystore::open(&path, &pass("wrong"), prov.clone()),
            Err(KmsError::WrongKey(_))
        ));
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ct = file["keys"][1]["versions"][0]["sealed"]["ciphertext"]
            .as_str()
            .unwrap()
            .to_string();
        let mut raw = B64.decode(&ct).unwrap();
        raw[5] ^= 1;
        file["keys"][1]["versions"][0]["sealed"]["ciphertext"] = B64.encode(raw).into();
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Keystore::open(&path, &pass("correct horse"), prov.clone()).unwrap_err();
        assert!(
            matches!(err, KmsError::Tampered { ref name, version: 1, .. } if name == "gateway-signing-mldsa"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Keystore::open(&path, &pass("correct horse"), prov.clone()),
            Err(KmsError::Permissions { .. })
        ));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains(&file["kdf"]["salt"].as_str().unwrap().to_string()),
            "never rewritten on error"
        );
    }

    #[test]
    fn key_file_master_and_swapped_records() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, hex::encode([7u8; 32])).unwrap();
        let path = dir.path().join("ks.json");
        let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
        Keystore::init(&path, &MasterSource::KeyFile(key_file.clone()), 0, prov.clone(), None).unwrap();
        // Moving one key's sealed material to another record fails authentication (AAD).
        let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let a = file["keys"][0]["versions"][0]["sealed"].clone();
        file["keys"][1]["versions"][0]["sealed"] = a;
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        let err = Keystore::open(&path, &MasterSource::KeyFile(key_file), prov).unwrap_err();
        assert!(matches!(err, KmsError::Tampered { .. }), "{err}");
    }

    #[test]
    fn an_open_keystore_holds_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, hex::encode([7u8; 32])).unwrap();
        let path = dir.path().join("ks.json");
        let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
        let ks = Keystore::init(&path, &MasterSource::KeyFile(key_file.clone()), 0, prov.clone(), None).unwrap();
        let probe = std::fs::File::open(lock_path(&path)).unwrap();
        assert!(probe.try_lock().is_err(), "held while the store made by init is open");
        drop(ks);
        probe.try_lock().unwrap();
        probe.unlock().unwrap();
        let ks = Keystore::open(&path, &MasterSource::KeyFile(key_file.clone()), prov.clone()).unwrap();
        assert!(probe.try_lock().is_err(), "held while an opened store is open");
        // A second opener (the CLI while the gateway rotates) waits for the first.
        let (tx, rx) = std::sync::mpsc::channel();
        let (p2, k2, prov2) = (path.clone(), key_file.clone(), prov.clone());
        let t = std::thread::spawn(move || {
            let mut other = Keystore::open(&p2, &MasterSource::KeyFile(k2), prov2).unwrap();
            other.rotate("gateway-signing-ecdsa", None).unwrap();
            tx.send(()).unwrap();
        });
        let mut ks = ks;
        ks.rotate("gateway-signing-ecdsa", None).unwrap();
        assert!(rx.try_recv().is_err(), "the second opener has not run yet");
        drop(ks);
        t.join().unwrap();
        // Both rotations are in the store: v2 by the first, v3 by the second (without the lock
        // the second would have read the store before v2 and written v2 again).
        let ks = Keystore::open(&path, &MasterSource::KeyFile(key_file), prov).unwrap();
        let ecdsa = ks.keys().iter().find(|k| k.name == "gateway-signing-ecdsa").unwrap();
        assert_eq!(ecdsa.versions.len(), 3);
    }

    #[test]
    fn a_stored_public_key_must_match_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, hex::encode([7u8; 32])).unwrap();
        let path = dir.path().join("ks.json");
        let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
        let mut ks = Keystore::init(&path, &MasterSource::KeyFile(key_file.clone()), 0, prov.clone(), None).unwrap();
        ks.rotate("gateway-signing-ecdsa", None).unwrap();
        ks.destroy("gateway-signing-ecdsa", 1).unwrap();
        drop(ks);
        let good = std::fs::read(&path).unwrap();
        let open = || Keystore::open(&path, &MasterSource::KeyFile(key_file.clone()), prov.clone());
        assert!(open().is_ok());
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut file: serde_json::Value = serde_json::from_slice(&good).unwrap();
            f(&mut file);
            std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        };
        // Another key's public key on a live version: published keys would not verify, or
        // worse, would be an attacker's. Refused at load.
        edit(&|f| f["keys"][0]["versions"][1]["public_key"] = f["keys"][1]["versions"][0]["public_key"].clone());
        assert!(matches!(open().unwrap_err(), KmsError::Tampered { version: 2, .. }));
        // A short key on a destroyed version: an error at load, never a panic in the JWKS.
        edit(&|f| f["keys"][0]["versions"][0]["public_key"] = serde_json::json!("BAAA"));
        assert!(open()
            .unwrap_err()
            .to_string()
            .contains("wrong length for ecdsa-p256-sha256"));
        edit(&|f| f["keys"][0]["versions"][1]["public_key"] = serde_json::json!("not base64!"));
        assert!(matches!(open().unwrap_err(), KmsError::Corrupt { .. }));
    }

    #[test]
    fn hmac_and_encryption_keys_per_service() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.json");
        let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
        let mut ks = Keystore::init(&path, &pass("p"), MIN_ITERATIONS, prov.clone(), None).unwrap();
        let h = ks.create_key("billing", KeyAlg::HmacSha256, None).unwrap();
        let e = ks.create_key("billing", KeyAlg::Aes256Gcm, None).unwrap();
        assert_eq!(
            (h.as_str(), e.as_str()),
            ("billing-hmac-sha256", "billing-encryption-aes256gcm")
        );
        let s1 = ks.secret(&h).unwrap();
        assert_eq!(s1.len(), 32);
        ks.rotate(&h, None).unwrap();
        assert_ne!(ks.secret(&h).unwrap(), s1, "rotation makes a new primary secret");
        assert!(
            ks.secret("gateway-signing-ecdsa").is_err(),
            "signing material never leaves"
        );
        assert_eq!(ks.key_ring().unwrap().published.len(), 2, "secrets are never published");
        drop(ks);
        let again = Keystore::open(&path, &pass("p"), prov).unwrap();
        assert_eq!(again.secret(&e).unwrap().len(), 32);
    }
}
