//! `quantumvault demo`: the first run. Starts the demo upstream on a free loopback port, writes a
//! gateway.yaml and a policy into the demo folder, prints curl lines, then runs the gateway.

pub mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use upstream::EchoServer;

/// Why the demo's keystore or key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Writing the master key file.
    #[error(transparent)]
    KeyFile(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    #[error(transparent)]
    Keys(#[from] crate::keys_cli::KeysCliError),
    #[error(transparent)]
    ApiKey(#[from] crate::apikey::ApiKeyError),
}

pub struct DemoOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

pub fn write_config(
    dir: &Path,
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("policies"))?;
    std::fs::create_dir_all(dir.join("data"))?;
    let gateway = format!(
        "# Written by `quantumvault demo`; edit policies/demo.yaml while it runs to see hot reload.\n\
listeners:\n  - address: {listen}\nadmin:\n  address: {admin}\nworker_threads: 2\ndata_dir: data\n\
log:\n  access_log: stdout\nshutdown:\n  grace_period: 1s\n  graceful_shutdown_timeout: 1s\npolicies:\n  - policies\n\
keys:\n  key_file: master.key\n"
    );
    let policy = format!(
        "signing:\n  enabled: true\n  algorithm: hybrid\n  mode: batch\ninspection:\n  mode: block\nupstreams:\n  - name: echo\n    peers: [\"{upstream}\"]\n    connect_timeout: 1s\n    read_timeout: 5s\n    health_check:\n      path: /healthz\n      interval: 2s\n\
rate_limits:\n  - {{ name: demo-per-client, scope: client_ip, rate: 5, per: 1s, burst: 5 }}\n  - {{ name: standard-per-key, scope: api_key, rate: 100, per: 1m }}\n\
tiers:\n  - name: standard\n    rate_limits: [standard-per-key]\n    daily_quota: 10000\n\
routes:\n  - name: api\n    path_prefix: /api/\n    upstream: echo\n  - name: private\n    path_prefix: /private/\n    upstream: echo\n    case_insensitive: true\n    auth: {{ required: true, query_param: api_key }}\n  - name: limited\n    path_prefix: /limited/\n    upstream: echo\n    rate_limits: [demo-per-client]\n  - name: default\n    path_prefix: /\n    upstream: echo\n"
    );
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, gateway)?;
    std::fs::write(dir.join("policies/demo.yaml"), policy)?;
    Ok(path)
}

/// The demo's keystore, sealed with a random key file (a systemd credential in production).
pub fn ensure_keystore(dir: &Path, gateway_yaml: &Path) -> Result<(), DemoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let key_file = dir.join("master.key");
    if !key_file.exists() {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)?;
        std::io::Write::write_all(&mut f, hex::encode(rand::random::<[u8; 32]>()).as_bytes())?;
    }
    let g = crate::config::GatewayConfig::load(gateway_yaml)?;
    if !g.keys.keystore.exists() {
        crate::keys_cli::init(&g)?;
    }
    Ok(())
}

/// A fresh demo key, stored (as a hash) in `policies/keys.yaml`.
pub fn create_demo_key(dir: &Path) -> Result<String, DemoError> {
    let keys = dir.join("policies/keys.yaml");
    let _ = std::fs::remove_file(&keys);
    Ok(crate::apikey::create(&keys, "demo", "standard", None)?.key)
}

pub fn run(opts: DemoOptions) -> Result<(), crate::server::StartError> {
    let other = |e: std::io::Error| crate::server::StartError::Other(format!("demo: {e}"));
    let echo = EchoServer::start("demo", SocketAddr::from(([127, 0, 0, 1], 0))).map_err(other)?;
    let path = write_config(&opts.dir, opts.listen, opts.admin, echo.addr()).map_err(other)?;
    let demo = |e: DemoError| crate::server::StartError::Other(e.to_string());
    let key = create_demo_key(&opts.dir).map_err(demo)?;
    ensure_keystore(&opts.dir, &path).map_err(demo)?;
    let gw = format!("http://{}", opts.listen);
    let admin = format!("http://{}", opts.admin);
    println!(
        r#"
QuantumVault demo
  gateway   {gw}   (config {path})
  admin     {admin}
  upstream  http://{up}  (echoes what it receives)

Try:
  curl -i {gw}/api/hello?name=world              # proxied; see X-Forwarded-For, X-Request-Id
  curl -i {gw}/private/data                      # 401: an API key is required
  curl -i --path-as-is {gw}//%70RIVATE/./data     # 401 too: every spelling routes as /private/data
  curl -i {gw}/private%2fdata                    # 400: an escaped '/' is refused
  curl -i -H 'X-API-Key: {key}' {gw}/private/data   # 200; upstream sees X-Api-Key-Id, never the key
  for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}} ' {gw}/limited/; done; echo   # 5 per second: 200 x5, then 429
  curl -s {admin}/usage
  curl -i "{gw}/?q=1%27%20OR%20%271%27=%271"          # 403: SQL injection blocked (rule id and class, no echo)
  curl -s "{gw}/?q=rock+%26+roll+O%27Brien"            # an ordinary search passes
  curl -si {gw}/api/signed | grep -iE '^(content-digest|signature)'   # every response is signed (hybrid)
  curl -s {gw}/.well-known/http-message-signatures-directory     # the public keys (JWKS)
  quantumvault verify --url {gw}/api/hello --jwks {gw}/.well-known/http-message-signatures-directory
  # the response, its batch's inclusion in the anchor log, and (second run) the log's consistency:
  quantumvault verify --url {gw}/api/hello --jwks {gw}/.well-known/http-message-signatures-directory --log-keys {gw}/.well-known/http-batch-sig/v1/log/keys --save-checkpoint qv-first.checkpoint
  quantumvault verify --url {gw}/api/again --jwks {gw}/.well-known/http-message-signatures-directory --log-keys {gw}/.well-known/http-batch-sig/v1/log/keys --checkpoint qv-first.checkpoint
  curl -s {gw}/.well-known/http-batch-sig/v1/log/checkpoint    # the log's signed checkpoint (C2SP tlog-checkpoint)
  curl -i {gw}/api/slow?delay_ms=6000            # upstream read timeout -> 504 JSON
  curl -i -H 'X-Request-Id: my-trace-1' {gw}/api/  # your request id is kept

Admin port (operators):
  curl -s {admin}/health                         # healthy | degraded | unhealthy | critical, and why
  curl -s {admin}/stats                          # per route, 1/5/15 min: rate, errors, p50/p95/p99, upstream vs overhead
  curl -s {admin}/alerts                         # alert rules, pending/firing/resolved alerts, history
  curl -s -X POST {admin}/alerts/ID/ack -d '{{"by":"me"}}'   # acknowledge a firing alert
  curl -s {admin}/errors                         # the last 100 gateway-side errors
  curl -s {admin}/keys                           # signing key versions
  curl -s {admin}/metrics | grep quantumvault_requests_total
  curl -s -X POST {admin}/reload
  $EDITOR {policy}     # saved changes reload by themselves
"#,
        path = path.display(),
        up = echo.addr(),
        policy = opts.dir.join("policies/demo.yaml").display(),
    );
    // The echo server must outlive the gateway, which only returns by exiting the process.
    let result = crate::server::run(&path, false);
    drop(echo);
    result
}
