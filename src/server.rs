//! Assembles the Pingora server from a validated config: the proxy listeners, the admin port,
//! the health checker, metric upkeep and the reload triggers.

use std::path::Path;
use std::sync::Arc;

use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::background::AlertEvaluator;
use crate::background::{KeyMaintenance, MetricsUpkeep, UsageFlusher};
use crate::config::{load_all, ConfigErrors, GatewayConfig};
use crate::proxy::Gateway;
use crate::reload::{self, Runtime};
use crate::telemetry::alerts::AlertEngine;
use crate::telemetry::health::Health;
use crate::telemetry::webhook::WebhookSender;
use crate::telemetry::{access_log::AccessLog, metrics};
use crate::upstream::health::HealthChecker;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Runtime(#[from] crate::reload::ReloadError),
    #[error("{0}")]
    Other(String),
}

/// The server conf the gateway runs with. The benchmark baseline uses the same one.
pub fn server_conf(gateway: &GatewayConfig) -> ServerConf {
    let mut conf = ServerConf::default();
    conf.threads = gateway.worker_threads;
    // Measured on 2 cores, bare Pingora with mimalloc, wrk -t1 -c32: 29.2k req/s with work
    // stealing, 36.8k without (~25% faster for a proxy whose tasks are short).
    conf.work_stealing = false;
    // Timeouts stay on Pingora's "fast timeout" (its default). Tokio's timer wheel runs about
    // 1,200 fewer instructions a request, but a worker with a tokio timer pending parks in
    // `epoll_wait` with a timeout, arming a kernel timer each time: measured on this project's
    // virtual machines, the user time it saves came back as system time (31.3 against 31.6 µs
    // of CPU a request, the same throughput), so the simpler default stays.
    conf.grace_period_seconds = Some(gateway.grace_period.as_secs());
    conf.graceful_shutdown_timeout_seconds = Some(gateway.graceful_shutdown_timeout.as_secs());
    conf.pid_file = gateway.data_dir.join("quantumvault.pid").to_string_lossy().into_owned();
    conf.upgrade_sock = gateway.data_dir.join("upgrade.sock").to_string_lossy().into_owned();
    conf
}

/// Pingora's TLS connector loads the system's CAs (honouring `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`) when it is built, and panics if that fails: run the same loader first and
/// turn a failure into a plain start-up error. No CA at all is only a warning (plain-HTTP
/// upstreams work; TLS ones will fail verification and answer 502).
fn check_trust_store() -> Result<(), StartError> {
    let mut store = pingora::tls::RootCertStore::empty();
    match pingora::tls::load_platform_certs_incl_env_into_store(&mut store) {
        Ok(()) if store.is_empty() => {
            log::warn!("no trusted CA certificates found: TLS to upstreams and webhooks with verify on will fail");
            Ok(())
        }
        Ok(()) => Ok(()),
        Err(e) => Err(StartError::Other(format!(
            "cannot load the trusted CA certificates (check SSL_CERT_FILE and SSL_CERT_DIR): {}",
            e.root_cause()
        ))),
    }
}

/// Loads the config and serves until shutdown. `upgrade` takes the listening sockets over from a
/// running instance (Pingora graceful upgrade).
pub fn run(config_path: &Path, upgrade: bool) -> Result<(), StartError> {
    let (gateway, policy) = load_all(config_path)?;
    check_trust_store()?;
    std::fs::create_dir_all(&gateway.data_dir)
        .map_err(|e| StartError::Other(format!("cannot create data_dir {}: {e}", gateway.data_dir.display())))?;
    crate::telemetry::stats::init(gateway.monitoring.resolution, gateway.monitoring.enabled);
    let handle = metrics::install();
    metrics::started();
    let started = crate::clock::system_time();
    let admin_token = Arc::new(arc_swap::ArcSwap::from_pointee(gateway.admin_token.clone()));
    let runtime = Arc::new(Runtime::new(gateway.clone(), policy, admin_token.clone())?);
    if let Some(cluster) = &runtime.registries.cluster {
        // The key directory and the usage flushes run on the Redis client's own thread.
        cluster.start_background(runtime.keyring.clone(), runtime.registries.usage.clone());
    }
    // Alert state outlives reloads (the rules live in the policy).
    let alerts = Arc::new(AlertEngine::new(gateway.monitoring.alert_history));
    let access_log =
        AccessLog::start(&gateway.access_log).map_err(|e| StartError::Other(format!("cannot open access log: {e}")))?;

    let anchor = Arc::new(
        crate::integrity::anchor::AnchorLog::open(&gateway.data_dir, gateway.signing_batch.log_origin.as_deref())
            .map_err(|e| StartError::Other(e.to_string()))?,
    );
    crate::held::set_limit(gateway.held_bytes);
    let conf = server_conf(&gateway);
    let opt = Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut app = pingora::proxy::http_proxy(
        &server.configuration,
        Gateway::new(
            runtime.policy.clone(),
            runtime.keyring.clone(),
            access_log,
            Arc::new(crate::clock::SystemClock),
            Arc::new(crate::integrity::batcher::Batcher::new(
                gateway.signing_batch.clone(),
                runtime.keyring.clone(),
                anchor.clone(),
            )),
            anchor.clone(),
            gateway.downstream,
        ),
    );
    // HTTP/2 bounds: streams per connection, the header list, and idle connections (an h2
    // connection's streams are tasks of their own, so the HTTP/1 deadlines do not apply).
    let d = &gateway.downstream;
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_concurrent_streams(d.h2_max_streams);
    h2.max_header_list_size(d.h2_max_header_bytes);
    app.h2_options = Some(h2);
    let mut options = pingora::apps::HttpServerOptions::default();
    options.h2_idle_timeout = Some(d.keepalive);
    app.server_options = Some(options);
    let mut proxy = Service::new(
        "quantumvault proxy".to_string(),
        crate::connections::Guarded::new(app, d),
    );
    for l in &gateway.listeners {
        let addr = l.address.to_string();
        match &l.tls {
            None => proxy.add_tcp(&addr),
            Some(tls) => {
                let mut settings = pingora::listeners::tls::TlsSettings::intermediate(
                    &tls.cert.to_string_lossy(),
                    &tls.key.to_string_lossy(),
                )
                .map_err(|e| StartError::Other(format!("listener {addr}: cannot load TLS certificate or key: {e}")))?;
                settings.enable_h2();
                proxy.add_tls_with_settings(&addr, None, settings);
            }
        }
    }
    proxy.set_connection_filter(Arc::new(crate::filters::ip_filter::ConnectionGate {
        policy: runtime.policy.clone(),
    }));
    server.add_service(proxy);

    let mut admin = Service::new(
        "quantumvault admin".to_string(),
        AdminApp::new(
            &gateway,
            runtime.clone(),
            alerts.clone(),
            Health::new(alerts.clone(), runtime.clone(), started),
            admin_token,
            handle.clone(),
        ),
    );
    admin.add_tcp(&gateway.admin_address.to_string());
    admin.threads = Some(1);
    server.add_service(admin);
    server.add_service(background_service(
        "health checks",
        HealthChecker::new(runtime.policy.clone()),
    ));
    server.add_service(background_service("metrics upkeep", MetricsUpkeep(handle)));
    server.add_service(background_service(
        "anchor log checkpoints",
        crate::background::AnchorMaintenance {
            log: anchor.clone(),
            keyring: runtime.keyring.clone(),
            settings: gateway.signing_batch.clone(),
        },
    ));
    if gateway.monitoring.enabled {
        server.add_service(background_service(
            "alert evaluation",
            AlertEvaluator {
                runtime: runtime.clone(),
                alerts: alerts.clone(),
                interval: gateway.monitoring.evaluate_every,
            },
        ));
        if let Some(webhook) = &gateway.monitoring.webhook {
            let (sender, queue) =
                WebhookSender::new(webhook.clone(), format!("http://{}/alerts", gateway.admin_address));
            alerts.set_notifier(queue, webhook.resend_every);
            server.add_service(background_service("alert webhook", sender));
        }
    }
    if gateway.keys.keystore.exists() {
        server.add_service(background_service(
            "key maintenance",
            KeyMaintenance {
                runtime: runtime.clone(),
                interval: std::time::Duration::from_secs(300),
            },
        ));
    }
    server.add_service(background_service(
        "usage flush",
        UsageFlusher {
            runtime: runtime.clone(),
            interval: gateway.usage_flush_interval,
        },
    ));

    reload::spawn_sighup(runtime.clone())
        .map_err(|e| StartError::Other(format!("cannot install SIGHUP handler: {e}")))?;
    if gateway.watch {
        reload::spawn_watcher(runtime.clone())
            .map_err(|e| StartError::Other(format!("cannot watch config files: {e}")))?;
    }
    log::info!(
        "quantumvault {} serving on {} (admin {}), policy {} generation 1",
        env!("CARGO_PKG_VERSION"),
        gateway
            .listeners
            .iter()
            .map(|l| l.address.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        gateway.admin_address,
        runtime.policy.load().hash()
    );
    server.run_forever();
}
