//! The `quantumvault` command: parse the command line and dispatch. Exit codes: 0 ok,
//! 64 config error (as `nginx -t`), 1 any other start-up failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quantumvault::server::StartError;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EX_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "quantumvault",
    version,
    about = "Security gateway for HTTP APIs, built on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with the given gateway.yaml.
    Run {
        #[arg(short, long, default_value = "gateway.yaml")]
        config: PathBuf,
        /// Take the listening sockets over from a running instance (graceful upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate gateway.yaml and every policy file it loads; print `ok` or every error.
    Check {
        #[arg(short, long, default_value = "gateway.yaml")]
        config: PathBuf,
    },
    /// Create, list and revoke API keys in a policy file.
    Apikey {
        #[command(subcommand)]
        action: ApikeyAction,
    },
    /// Manage the signing keys in the keystore.
    Keys {
        #[arg(short, long, default_value = "gateway.yaml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Verify a signed response: a live URL, or a saved exchange, against a JWKS.
    Verify {
        /// JWKS file or URL (e.g. http://host/.well-known/http-message-signatures-directory).
        #[arg(long)]
        jwks: String,
        /// Fetch this URL and verify the response.
        #[arg(long, conflicts_with = "exchange")]
        url: Option<String>,
        #[arg(long, default_value = "GET")]
        method: String,
        /// Request header to send with --url, as "Name: value" (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// A saved exchange (JSON: request method, url, headers; response status, headers, body_b64).
        #[arg(long)]
        exchange: Option<PathBuf>,
        /// Also check that each batch is on the anchor log, whose checkpoints this key signs
        /// (`name+id+key`, as served at /.well-known/http-batch-sig/v1/log/keys; repeatable,
        /// every key given must sign).
        #[arg(long = "log-key")]
        log_keys: Vec<String>,
        /// Like --log-key, every key listed in this file or URL (trust on first use for a URL).
        #[arg(long = "log-keys")]
        log_keys_from: Option<String>,
        /// Check this saved tlog-proof instead of fetching the batch's proof.
        #[arg(long)]
        proof: Option<PathBuf>,
        /// Save the batch's tlog-proof here (to keep with the response).
        #[arg(long)]
        save_proof: Option<PathBuf>,
        /// An older checkpoint of the log: check that the proof's checkpoint is consistent with it.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Save the proof's (verified) checkpoint here, for the next --checkpoint.
        #[arg(long)]
        save_checkpoint: Option<PathBuf>,
    },
    /// Run the gateway with a built-in demo upstream and print curl lines to try.
    Demo {
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create the keystore with the gateway's ECDSA P-256 and ML-DSA-65 signing keys.
    Init,
    /// Create a key for a service: signing, HMAC or encryption, by algorithm.
    Create {
        #[arg(long)]
        service: String,
        /// ecdsa-p256-sha256, ml-dsa-65, hmac-sha256 or aes-256-gcm.
        #[arg(long)]
        alg: String,
    },
    /// List keys and versions (public information only).
    List,
    /// Make a new version primary (all signing keys, or --name).
    Rotate {
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop a version from signing; it stays published so old signatures verify.
    Retire { name: String, version: u32 },
    /// Erase a version's material; the record that it existed stays.
    Destroy { name: String, version: u32 },
    /// Print the public keys as a JWKS.
    ExportPublic,
}

fn keys(config: &std::path::Path, action: KeysAction) -> ExitCode {
    use quantumvault::keys_cli as k;
    let gateway = match quantumvault::config::GatewayConfig::load(config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let result = match action {
        KeysAction::Init => k::init(&gateway),
        KeysAction::Create { service, alg } => k::create(&gateway, &service, &alg),
        KeysAction::List => k::list(&gateway),
        KeysAction::Rotate { name } => k::rotate(&gateway, name.as_deref()),
        KeysAction::Retire { name, version } => k::retire(&gateway, &name, version),
        KeysAction::Destroy { name, version } => k::destroy(&gateway, &name, version),
        KeysAction::ExportPublic => k::export_public(&gateway),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quantumvault keys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn verify(
    jwks: &str,
    url: Option<String>,
    method: &str,
    headers: &[String],
    exchange: Option<PathBuf>,
    log: Option<(Vec<String>, Option<String>)>,
    mut log_check: quantumvault::log_cli::LogCheck,
) -> ExitCode {
    use quantumvault::keys_cli as k;
    // The commands' errors are typed; here they only become the terminal's text.
    let run = || -> Result<bool, Box<dyn std::error::Error>> {
        let keys = k::load_jwks(jwks)?;
        if let Some((given, from)) = &log {
            for v in given {
                log_check.keys.push(quantumvault::integrity::tlog::NoteKey::parse(v)?);
            }
            if let Some(src) = from {
                log_check.keys.extend(quantumvault::log_cli::load_keys(src)?);
            }
            if log_check.keys.is_empty() {
                return Err("no anchor log keys given".into());
            }
        }
        let wants_log = log_check.proof.is_some()
            || log_check.save_proof.is_some()
            || log_check.older.is_some()
            || log_check.save_checkpoint.is_some();
        if log.is_none() && wants_log {
            return Err(
                "--proof, --save-proof, --checkpoint and --save-checkpoint need --log-key or --log-keys".into(),
            );
        }
        let log_check = log.is_some().then_some(&log_check);
        let ex = match (url, exchange) {
            (Some(u), _) => {
                let hs: Vec<(String, String)> = headers
                    .iter()
                    .map(|h| {
                        h.split_once(':')
                            .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                            .ok_or_else(|| format!("bad header {h:?}"))
                    })
                    .collect::<Result<_, _>>()?;
                k::fetch(method, &u, &hs)?
            }
            (None, Some(p)) => serde_json::from_slice(&std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
                .map_err(|e| format!("{}: {e}", p.display()))?,
            (None, None) => return Err("give --url or --exchange".into()),
        };
        let (lines, ok) = k::verify_exchange(&ex, &keys, log_check)?;
        for l in lines {
            println!("{l}");
        }
        Ok(ok)
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("quantumvault verify: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Subcommand)]
enum ApikeyAction {
    /// Generate a key, print it once, store only its SHA-256 in the policy file.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        tier: String,
        /// The policy file holding the keys (created if missing).
        #[arg(long)]
        policy: PathBuf,
        /// RFC 3339 expiry, e.g. 2027-01-31T00:00:00Z.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List the keys (ids, names, tiers, dates; never keys or hashes).
    List {
        #[arg(long)]
        policy: PathBuf,
    },
    /// Mark a key revoked (it is refused from the next reload on).
    Revoke {
        #[arg(long)]
        policy: PathBuf,
        id: String,
    },
}

fn apikey(action: ApikeyAction) -> ExitCode {
    use quantumvault::apikey;
    let result = match action {
        ApikeyAction::Create {
            name,
            tier,
            policy,
            expires,
        } => apikey::create(&policy, &name, &tier, expires.as_deref()).map(|c| {
            eprintln!(
                "created API key {} (tier {tier}); it is shown once, store it now:",
                c.id
            );
            println!("{}", c.key);
        }),
        ApikeyAction::List { policy } => apikey::list(&policy).map(|keys| {
            println!(
                "{:<12} {:<20} {:<10} {:<22} {:<22} status",
                "id", "name", "tier", "created", "expires"
            );
            for k in keys {
                let status = if k.revoked { "revoked" } else { "active" };
                println!(
                    "{:<12} {:<20} {:<10} {:<22} {:<22} {status}",
                    k.id,
                    k.name,
                    k.tier,
                    k.created,
                    k.expires.unwrap_or_else(|| "-".into())
                );
            }
        }),
        ApikeyAction::Revoke { policy, id } => apikey::revoke(&policy, &id).map(|()| eprintln!("revoked {id}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quantumvault apikey: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let result = match cli.command {
        Command::Check { config } => match quantumvault::config::load_all(&config) {
            Ok(_) => {
                println!("ok");
                return ExitCode::SUCCESS;
            }
            Err(errors) => Err(StartError::Config(errors)),
        },
        Command::Run { config, upgrade } => quantumvault::server::run(&config, upgrade),
        Command::Apikey { action } => return apikey(action),
        Command::Keys { config, action } => return keys(&config, action),
        Command::Verify {
            jwks,
            url,
            method,
            headers,
            exchange,
            log_keys,
            log_keys_from,
            proof,
            save_proof,
            checkpoint,
            save_checkpoint,
        } => {
            let log = (!log_keys.is_empty() || log_keys_from.is_some()).then_some((log_keys, log_keys_from));
            let check = quantumvault::log_cli::LogCheck {
                keys: Vec::new(),
                proof,
                save_proof,
                older: checkpoint,
                save_checkpoint,
            };
            return verify(&jwks, url, &method, &headers, exchange, log, check);
        }
        Command::Demo { dir, listen, admin } => {
            quantumvault::demo::run(quantumvault::demo::DemoOptions { dir, listen, admin })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(errors)) => {
            eprintln!("{errors}");
            ExitCode::from(EX_CONFIG)
        }
        Err(StartError::Runtime(quantumvault::reload::ReloadError::Config(errors))) => {
            eprintln!("{errors}");
            ExitCode::from(EX_CONFIG)
        }
        Err(StartError::Runtime(e)) => {
            eprintln!("quantumvault: {e}");
            ExitCode::FAILURE
        }
        Err(StartError::Other(msg)) => {
            eprintln!("quantumvault: {msg}");
            ExitCode::FAILURE
        }
    }
}
