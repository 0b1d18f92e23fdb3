//! Key lifecycle: create, unlock, rotate, retire and destroy keys, under an exclusive lock on
//! the store. The file format and sealing are in [`format`], what the proxy gets in [`ring`].
//! See the module documentation of [`crate::kms`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use zeroize::Zeroizing;

use super::provider::KeyProvider;

mod format;
mod ring;

use format::{aad, open, public_key_len, seal, File, Kdf};
pub use format::{KeyAlg, KeyRecord, KeyState, MasterKey, MasterSource, VersionRecord, CHECKPOINT};
pub use ring::{KeyRing, PrimarySigner, PublicKeyInfo};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const FORMAT: &str = "quantumvault-keystore";
/// The `check` of a keystore written before its metadata MAC existed.
const CHECK_PLAINTEXT: &[u8] = b"quantumvault keystore check v1";
/// The `check` of a keystore whose metadata carries a MAC ([`format::metadata_mac`]): a file
/// with this check and no valid MAC was edited, never merely old.
const CHECK_PLAINTEXT_MAC: &[u8] = b"quantumvault keystore check v2 (metadata mac)";
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
    #[error("keystore {0}: its key metadata (states, expiry dates, public keys) failed authentication: the file was modified outside QuantumVault or is corrupt")]
    MetadataTampered(PathBuf),
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
        let check = seal(&master, CHECK_PLAINTEXT_MAC, b"check")?;
        let file = File {
            format: FORMAT.into(),
            version: 1,
            kdf,
            check,
            keys: Vec::new(),
            mac: None,
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
        let mut file: File = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.format != FORMAT || file.version != 1 {
            return Err(corrupt(format!(
                "unsupported format {} version {}",
                file.format, file.version
            )));
        }
        let master = source.derive(&file.kdf)?;
        // The metadata MAC is checked after the records below, so a record whose own
        // authentication fails is named; anything else edited fails here.
        let metadata_ok = match open(&master, &file.check, b"check") {
            Some(p) if p.as_slice() == CHECK_PLAINTEXT_MAC => {
                use subtle::ConstantTimeEq;
                let want = format::metadata_mac(&master, &file).map_err(KmsError::Invalid)?;
                let got = file.mac.as_deref().and_then(|m| B64.decode(m).ok()).unwrap_or_default();
                bool::from(got.ct_eq(&want))
            }
            // Written before the MAC existed: it gets one (and the check that requires it) at
            // its next save.
            Some(p) if p.as_slice() == CHECK_PLAINTEXT => {
                file.check = seal(&master, CHECK_PLAINTEXT_MAC, b"check")?;
                true
            }
            _ => return Err(KmsError::WrongKey(path.to_path_buf())),
        };
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
        if !metadata_ok {
            return Err(KmsError::MetadataTampered(path.to_path_buf()));
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
        let mut file = self.file.clone();
        file.mac = Some(B64.encode(format::metadata_mac(&self.master, &file).map_err(KmsError::Invalid)?));
        let body = serde_json::to_vec_pretty(&file).map_err(|e| KmsError::Invalid(e.to_string()))?;
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

#[cfg(test)]
mod tests;
