//! `quantumvault apikey create | list | revoke`: manage API keys in a policy file.
//!
//! A new key is 32 random bytes, shown once as `qv_` + 64 hex digits; the policy file stores only
//! its SHA-256 with an id, name, tier, creation time and optional expiry. The file is rewritten
//! atomically and the running gateway picks the change up by hot reload. Because the file is
//! rewritten from its parsed form, comments in it are not kept: keep keys in a policy file of
//! their own (the command creates it if missing).

use std::path::Path;

use serde_yaml::{Mapping, Value};

use crate::config::access::RawApiKey;
use crate::filters::auth::{hash_key, KEY_PREFIX};

/// Why an `apikey` command failed; the texts are what it prints after `quantumvault apikey: `.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}: a policy file is a mapping at the top level")]
    NotAMapping(String),
    #[error("{path}: {source}")]
    Yaml { path: String, source: serde_yaml::Error },
    #[error("api_keys: {0}")]
    Keys(serde_yaml::Error),
    /// Writing the keys back as YAML.
    #[error(transparent)]
    Serialize(serde_yaml::Error),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("--expires {0:?} is not an RFC 3339 time")]
    Expires(String),
    #[error("no API key with id {id:?} in {path}")]
    NoSuchKey { id: String, path: String },
}

pub struct Created {
    pub id: String,
    pub key: String,
}

fn load(path: &Path) -> Result<Mapping, ApiKeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Mapping::new()),
        Ok(text) => match serde_yaml::from_str::<Value>(&text) {
            Ok(Value::Mapping(m)) => Ok(m),
            Ok(Value::Null) => Ok(Mapping::new()),
            Ok(_) => Err(ApiKeyError::NotAMapping(path.display().to_string())),
            Err(source) => Err(ApiKeyError::Yaml {
                path: path.display().to_string(),
                source,
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Mapping::new()),
        Err(source) => Err(ApiKeyError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn keys(doc: &Mapping) -> Result<Vec<RawApiKey>, ApiKeyError> {
    match doc.get("api_keys") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_yaml::from_value(v.clone()).map_err(ApiKeyError::Keys),
    }
}

fn save(path: &Path, mut doc: Mapping, list: &[RawApiKey]) -> Result<(), ApiKeyError> {
    doc.insert(
        "api_keys".into(),
        serde_yaml::to_value(list).map_err(ApiKeyError::Serialize)?,
    );
    let text = format!(
        "# API keys: managed by `quantumvault apikey`; only SHA-256 hashes of keys are stored.\n{}",
        serde_yaml::to_string(&doc).map_err(ApiKeyError::Serialize)?
    );
    crate::usage::write_atomic(path, text.as_bytes(), 0o640).map_err(|source| ApiKeyError::Write {
        path: path.display().to_string(),
        source,
    })
}

pub fn create(path: &Path, name: &str, tier: &str, expires: Option<&str>) -> Result<Created, ApiKeyError> {
    if let Some(e) = expires {
        humantime::parse_rfc3339_weak(e).map_err(|_| ApiKeyError::Expires(e.to_string()))?;
    }
    let doc = load(path)?;
    let mut list = keys(&doc)?;
    let secret: [u8; 32] = rand::random();
    let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
    let id = loop {
        let id = format!("k_{}", hex::encode(rand::random::<[u8; 4]>()));
        if !list.iter().any(|k| k.id == id) {
            break id;
        }
    };
    list.push(RawApiKey {
        id: id.clone(),
        name: name.to_string(),
        tier: tier.to_string(),
        sha256: hex::encode(hash_key(&key)),
        created: humantime::format_rfc3339_seconds(crate::clock::system_time()).to_string(),
        expires: expires.map(str::to_string),
        revoked: false,
    });
    save(path, doc, &list)?;
    Ok(Created { id, key })
}

pub fn list(path: &Path) -> Result<Vec<RawApiKey>, ApiKeyError> {
    keys(&load(path)?)
}

pub fn revoke(path: &Path, id: &str) -> Result<(), ApiKeyError> {
    let doc = load(path)?;
    let mut list = keys(&doc)?;
    let Some(k) = list.iter_mut().find(|k| k.id == id) else {
        return Err(ApiKeyError::NoSuchKey {
            id: id.to_string(),
            path: path.display().to_string(),
        });
    };
    k.revoked = true;
    save(path, doc, &list)
}
