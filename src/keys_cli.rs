//! `quantumvault keys init | list | rotate | retire | destroy | export-public` and
//! `quantumvault verify`.

use std::path::Path;
use std::sync::Arc;

use crate::config::GatewayConfig;
use crate::integrity::{digest, httpsig, jwks};
use crate::kms::keystore::{KeyState, Keystore, KmsError, MasterSource};
use crate::kms::provider::SoftwareProvider;
use crate::log_cli::LogError;

/// Why a `keys` or `verify` command could not run. The texts are what the command prints after
/// `quantumvault keys: ` or `quantumvault verify: `.
#[derive(Debug, thiserror::Error)]
pub enum KeysCliError {
    #[error(transparent)]
    Keystore(#[from] KmsError),
    #[error("--alg is one of ecdsa-p256-sha256, ml-dsa-65, hmac-sha256, aes-256-gcm")]
    UnknownAlg,
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("bad header name {0}")]
    HeaderName(String),
    #[error("bad value for {0}")]
    HeaderValue(String),
    #[error("body_b64 is not base64")]
    BodyNotBase64,
    /// `Signature-Input` or `Signature`.
    #[error("the response has no {0}")]
    NoSignatureField(&'static str),
    #[error(transparent)]
    Signature(#[from] httpsig::HttpSigError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("fetching {url}: {source}")]
    Fetch { url: String, source: Box<ureq::Error> },
    /// Reading a response body.
    #[error(transparent)]
    Body(std::io::Error),
    /// A batch document whose body could not be read.
    #[error("{url}: {source}")]
    BatchBody { url: String, source: std::io::Error },
    #[error("{url}: {source}")]
    BatchJson { url: String, source: serde_json::Error },
    /// A batch document without the fields of one.
    #[error("{url}: {what}")]
    BatchDocument { url: String, what: &'static str },
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// A key directory that is not JSON (`{source}: ...`).
    #[error("{path}: {source}")]
    JwksJson { path: String, source: serde_json::Error },
    /// A key directory whose keys do not parse (the parser's text).
    #[error("{0}")]
    Jwks(String),
}

fn fetch_error(url: &str, e: ureq::Error) -> KeysCliError {
    KeysCliError::Fetch {
        url: url.to_string(),
        source: Box::new(e),
    }
}

fn master(g: &GatewayConfig) -> Result<MasterSource, KeysCliError> {
    MasterSource::from_settings(
        g.keys.key_file.as_deref(),
        g.keys.passphrase_file.as_deref(),
        &g.keys.passphrase_env,
    )
    .map_err(KeysCliError::from)
}

fn open(g: &GatewayConfig) -> Result<Keystore, KeysCliError> {
    Ok(Keystore::open(
        &g.keys.keystore,
        &master(g)?,
        Arc::new(SoftwareProvider),
    )?)
}

pub fn init(g: &GatewayConfig) -> Result<String, KeysCliError> {
    let ks = Keystore::init(
        &g.keys.keystore,
        &master(g)?,
        g.keys.pbkdf2_iterations,
        Arc::new(SoftwareProvider),
        g.keys.lifetime.map(|d| d.as_secs()),
    )?;
    Ok(format!(
        "created keystore {} with {} signing keys",
        ks.path().display(),
        ks.keys().len()
    ))
}

pub fn create(g: &GatewayConfig, service: &str, alg: &str) -> Result<String, KeysCliError> {
    let alg = crate::kms::keystore::KeyAlg::parse(alg).ok_or(KeysCliError::UnknownAlg)?;
    let name = open(g)?.create_key(service, alg, g.keys.lifetime.map(|d| d.as_secs()))?;
    Ok(format!("created {name} v1"))
}

pub fn list(g: &GatewayConfig) -> Result<String, KeysCliError> {
    let ks = open(g)?;
    let mut out = format!(
        "{:<28} {:<18} {:>7}  {:<9} {:<22} {:<22}\n",
        "key", "alg", "version", "state", "created", "expires"
    );
    let t = |s: u64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)).to_string()
    };
    for k in ks.keys() {
        let primary = k
            .versions
            .iter()
            .filter(|v| v.state == KeyState::Active)
            .map(|v| v.version)
            .max();
        for v in &k.versions {
            let state = match v.state {
                KeyState::Active if Some(v.version) == primary => "primary".to_string(),
                s => format!("{s:?}").to_lowercase(),
            };
            out.push_str(&format!(
                "{:<28} {:<18} {:>7}  {:<9} {:<22} {:<22}\n",
                k.name,
                k.alg.name(),
                v.version,
                state,
                t(v.created),
                v.expires.map(t).unwrap_or_else(|| "-".into())
            ));
        }
    }
    Ok(out)
}

pub fn rotate(g: &GatewayConfig, name: Option<&str>) -> Result<String, KeysCliError> {
    let mut ks = open(g)?;
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_string()],
        None => ks.keys().iter().map(|k| k.name.clone()).collect(),
    };
    let mut out = String::new();
    for n in names {
        let v = ks.rotate(&n, g.keys.lifetime.map(|d| d.as_secs()))?;
        out.push_str(&format!("{n}: version {v} is primary\n"));
    }
    out.push_str("reload the gateway (SIGHUP or POST /reload) to sign with the new versions");
    Ok(out)
}

pub fn retire(g: &GatewayConfig, name: &str, version: u32) -> Result<String, KeysCliError> {
    open(g)?.retire(name, version)?;
    Ok(format!("{name} v{version} retired: published, never signs"))
}

pub fn destroy(g: &GatewayConfig, name: &str, version: u32) -> Result<String, KeysCliError> {
    open(g)?.destroy(name, version)?;
    Ok(format!("{name} v{version} destroyed: material erased, record kept"))
}

pub fn export_public(g: &GatewayConfig) -> Result<String, KeysCliError> {
    let ring = open(g)?.key_ring()?;
    Ok(serde_json::to_string_pretty(&jwks::directory(&ring))?)
}

/// One exchange to verify: the request and the response as received.
#[derive(serde::Deserialize)]
pub struct Exchange {
    pub request: ExRequest,
    pub response: ExResponse,
}

#[derive(serde::Deserialize)]
pub struct ExRequest {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

#[derive(serde::Deserialize)]
pub struct ExResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body_b64: String,
}

fn header_map(pairs: &[(String, String)]) -> Result<http::HeaderMap, KeysCliError> {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| KeysCliError::HeaderName(k.clone()))?;
        let value = http::HeaderValue::from_str(v).map_err(|_| KeysCliError::HeaderValue(k.clone()))?;
        h.append(name, value);
    }
    Ok(h)
}

/// Checks the digest and every signature; returns the report lines and whether all passed.
/// With `log`, each verified batch signature's batch must also be on the anchor log
/// ([`crate::log_cli::check`]).
pub fn verify_exchange(
    ex: &Exchange,
    keys: &[(String, crate::integrity::sig::SigAlg, Vec<u8>)],
    log: Option<&crate::log_cli::LogCheck>,
) -> Result<(Vec<String>, bool), KeysCliError> {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(&ex.response.body_b64)
        .map_err(|_| KeysCliError::BodyNotBase64)?;
    let resp_headers = header_map(&ex.response.headers)?;
    let req_headers = header_map(&ex.request.headers)?;
    let mut lines = Vec::new();
    let mut ok = true;
    if let Some(cd) = resp_headers.get("content-digest").and_then(|v| v.to_str().ok()) {
        match digest::verify(cd, &body) {
            Ok(algs) => lines.push(format!("ok   content-digest {}", algs.join(", "))),
            Err(e) => {
                ok = false;
                lines.push(format!("FAIL content-digest: {e}"));
            }
        }
    }
    let input = resp_headers
        .get("signature-input")
        .and_then(|v| v.to_str().ok())
        .ok_or(KeysCliError::NoSignatureField("Signature-Input"))?;
    let signature = resp_headers
        .get("signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(KeysCliError::NoSignatureField("Signature"))?;
    let m = httpsig::Message {
        status: ex.response.status,
        headers: &resp_headers,
        req_method: &ex.request.method,
        req_target_uri: &ex.request.url,
        req_headers: &req_headers,
    };
    let lookup = |kid: &str| keys.iter().find(|(k, _, _)| k == kid).map(|(_, a, p)| (*a, p.clone()));
    // The batch verifier takes its fetch errors as text.
    let fetch = |id: &[u8; 16]| fetch_batch(&ex.request.url, id).map_err(|e| e.to_string());
    for (label, result) in httpsig::verify_with(&m, input, signature, &lookup, httpsig::Backend::AwsLc, &fetch)? {
        match result {
            Ok(v) => {
                lines.push(format!(
                    "ok   signature {label}: keyid={} alg={}{}",
                    v.keyid,
                    v.batch.map(|b| b.name()).unwrap_or(v.alg.name()),
                    v.tag.as_ref().map(|t| format!(" tag={t}")).unwrap_or_default()
                ));
                if let (Some(log), Some(tbs)) = (log, &v.tbs) {
                    let (more, good) = crate::log_cli::check(log, &ex.request.url, tbs)?;
                    lines.extend(more);
                    ok &= good;
                }
            }
            Err(e) => {
                ok = false;
                lines.push(format!("FAIL signature {label}: {e}"));
            }
        }
    }
    Ok((lines, ok))
}

/// The root signatures of detached batch `id`, from the batch document at the request URL's
/// origin (`docs/batch-signing.md` §6.1).
fn fetch_batch(request_url: &str, id: &[u8; 16]) -> Result<Vec<crate::integrity::batch::RootSig>, KeysCliError> {
    use base64::Engine;
    let url = format!(
        "{}{}{}",
        crate::log_cli::origin_of(request_url)?,
        crate::proxy::BATCH_PATH,
        hex::encode(id)
    );
    let text = ureq::get(&url)
        .timeout(std::time::Duration::from_secs(10))
        .call()
        .map_err(|e| fetch_error(&url, e))?
        .into_string()
        .map_err(|source| KeysCliError::BatchBody {
            url: url.clone(),
            source,
        })?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|source| KeysCliError::BatchJson {
        url: url.clone(),
        source,
    })?;
    let bad = |what| KeysCliError::BatchDocument { url: url.clone(), what };
    let list = doc["signatures"].as_array().ok_or_else(|| bad("no signatures"))?;
    list.iter()
        .map(|s| {
            let alg = s["code"]
                .as_u64()
                .and_then(|c| u8::try_from(c).ok())
                .and_then(crate::integrity::batch::alg_of_code)
                .ok_or_else(|| bad("unknown signature code"))?;
            let keyid = s["keyid"].as_str().ok_or_else(|| bad("no keyid"))?.to_string();
            let sig = base64::engine::general_purpose::STANDARD
                .decode(s["sig"].as_str().unwrap_or_default())
                .map_err(|_| bad("sig is not base64"))?;
            Ok(crate::integrity::batch::RootSig { alg, keyid, sig })
        })
        .collect()
}

/// Fetches `url` (plain HTTP) and builds the exchange.
pub fn fetch(method: &str, url: &str, headers: &[(String, String)]) -> Result<Exchange, KeysCliError> {
    use std::io::Read;
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(fetch_error(url, e)),
    };
    let status = resp.status();
    let mut rh = Vec::new();
    for name in resp.headers_names() {
        for v in resp.all(&name) {
            rh.push((name.clone(), v.to_string()));
        }
    }
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).map_err(KeysCliError::Body)?;
    use base64::Engine;
    // ureq sends Host itself; the signature's @target-uri is the URL as given.
    Ok(Exchange {
        request: ExRequest {
            method: method.to_string(),
            url: url.to_string(),
            headers: headers.to_vec(),
        },
        response: ExResponse {
            status,
            headers: rh,
            body_b64: base64::engine::general_purpose::STANDARD.encode(body),
        },
    })
}

pub fn load_jwks(source: &str) -> Result<Vec<(String, crate::integrity::sig::SigAlg, Vec<u8>)>, KeysCliError> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        ureq::get(source)
            .call()
            .map_err(|e| fetch_error(source, e))?
            .into_string()
            .map_err(KeysCliError::Body)?
    } else {
        std::fs::read_to_string(Path::new(source)).map_err(|e| KeysCliError::Read {
            path: source.to_string(),
            source: e,
        })?
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| KeysCliError::JwksJson {
        path: source.to_string(),
        source: e,
    })?;
    jwks::parse(&v).map_err(KeysCliError::Jwks)
}
