//! The embedded KMS: an encrypted keystore file, key versions with states and expiry, rotation,
//! retirement and destruction, and the key ring the proxy signs with.
//!
//! Keystore: `data_dir/keystore.json`, mode 0600 (the gateway refuses to start if group or
//! others can read it), a versioned JSON format written atomically (temp file, fsync, rename).
//! Each key version's material is sealed with AES-256-GCM under the master key, with the key
//! name, version and algorithm as associated data, so records cannot be swapped or moved. A
//! sealed check record tells a wrong passphrase apart from a modified file. The master key comes
//! from a passphrase (PBKDF2-HMAC-SHA256, random stored salt, at least 600,000 iterations) or from
//! a 32-byte key file such as a systemd credential. On any error the store is left untouched:
//! it is never overwritten or regenerated.

pub mod keystore;
pub mod provider;

pub use keystore::{KeyState, Keystore, KmsError, MasterKey};
