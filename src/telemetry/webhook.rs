//! Alert delivery: the Alertmanager-compatible webhook (`monitoring.webhook` in gateway.yaml).
//!
//! The alert engine ([`super::alerts`]) queues [`Notification`] batches; [`WebhookSender`], a
//! background service on its own task, turns each into Alertmanager's JSON
//! ([`alertmanager_body`]) and `POST`s it over Pingora's connector, with retries and backoff.
//! A slow or failing receiver never holds up evaluation or requests.

use std::sync::Mutex;
use std::time::Duration;

use super::alerts::{AlertState, Notification};

/// Alertmanager's JSON for a batch of alerts (`POST /api/v2/alerts` takes a list of these).
/// A firing alert carries `endsAt` three resend periods ahead, as Prometheus does, so
/// Alertmanager keeps it active between resends and resolves it by itself if the gateway goes
/// silent; a resolved one carries the time it resolved.
pub fn alertmanager_body(n: &Notification, generator_url: &str) -> serde_json::Value {
    let alerts = &n.alerts;
    let ts = |ms: u64| humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string();
    let list: Vec<_> = alerts
        .iter()
        .map(|a| {
            let mut labels = a.labels.clone();
            labels.insert("alertname".into(), a.rule.clone());
            labels.insert("severity".into(), a.severity.as_str().into());
            let mut annotations = serde_json::json!({
                "description": a.description,
                "value": format!("{}", a.value),
                "summary": format!("{} {} {} (value {})", a.metric, a.comparison, a.threshold, a.value),
                "alert_id": a.id,
                "state": match a.state {
                    AlertState::Firing => "firing",
                    AlertState::Pending => "pending",
                    AlertState::Resolved => "resolved",
                },
            });
            if let Some(ack) = &a.acknowledged {
                annotations["acknowledged_by"] = ack.by.clone().into();
            }
            let mut v = serde_json::json!({
                "labels": labels,
                "annotations": annotations,
                "startsAt": ts(a.fired_at.unwrap_or(a.active_since)),
                "generatorURL": generator_url,
            });
            let end = a
                .resolved_at
                .unwrap_or_else(|| n.sent_at + 3 * n.resend_every_ms.max(1000));
            v["endsAt"] = ts(end).into();
            v
        })
        .collect();
    serde_json::Value::Array(list)
}

/// Delivers alert batches to the Alertmanager-compatible webhook: one attempt plus `retries`,
/// each bounded by `timeout`, with backoff from 1 s. It runs on its own task and queue
/// (bounded, 64 batches), so a slow receiver never holds up evaluation or requests.
pub struct WebhookSender {
    pub config: crate::config::monitoring::WebhookConfig,
    pub generator_url: String,
    connector: std::sync::Arc<pingora::connectors::http::Connector>,
    pub queue: Mutex<Option<tokio::sync::mpsc::Receiver<Notification>>>,
}

impl WebhookSender {
    /// The sender and the engine's end of its queue.
    pub fn new(
        config: crate::config::monitoring::WebhookConfig,
        generator_url: String,
    ) -> (WebhookSender, tokio::sync::mpsc::Sender<Notification>) {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        (
            WebhookSender {
                config,
                generator_url,
                connector: std::sync::Arc::new(pingora::connectors::http::Connector::new(None)),
                queue: Mutex::new(Some(rx)),
            },
            tx,
        )
    }
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for WebhookSender {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let Some(mut rx) = self.queue.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        loop {
            let batch = tokio::select! {
                _ = shutdown.changed() => return,
                b = rx.recv() => match b { Some(b) => b, None => return },
            };
            let body = bytes::Bytes::from(alertmanager_body(&batch, &self.generator_url).to_string());
            let mut attempt = 0;
            loop {
                let sent = tokio::time::timeout(
                    self.config.timeout,
                    post(&self.connector, &self.config.url, body.clone()),
                )
                .await
                .unwrap_or(Err(PostError::TimedOut));
                match sent {
                    Ok(()) => {
                        metrics::counter!("quantumvault_alert_notifications_total", "result" => "ok").increment(1);
                        break;
                    }
                    Err(e) => log::warn!("alert webhook attempt {} failed: {e}", attempt + 1),
                }
                if attempt >= self.config.retries {
                    metrics::counter!("quantumvault_alert_notifications_total", "result" => "error").increment(1);
                    log::error!("alert webhook gave up after {} attempts", attempt + 1);
                    break;
                }
                let backoff = Duration::from_secs(1 << attempt.min(5));
                attempt += 1;
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

/// One delivery: `POST` the batch over Pingora's connector (HTTP or HTTPS; the certificate is
/// checked against the system's CAs, or `SSL_CERT_FILE`), success on any 2xx.
async fn post(
    connector: &pingora::connectors::http::Connector,
    url: &str,
    body: bytes::Bytes,
) -> Result<(), PostError> {
    let uri: http::Uri = url.parse().map_err(|_| PostError::BadUrl)?;
    let tls = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or(PostError::NoHost)?.to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bare_host = host.trim_matches(['[', ']']).to_string();
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare_host.as_str(), port))
        .await
        .map_err(|e| PostError::Resolve(host.clone(), e))?
        .collect();
    // Every address of the name in turn (`localhost` may list ::1 before 127.0.0.1).
    let mut session = None;
    let mut last_error = PostError::NoAddress(host.clone());
    for addr in addrs {
        let peer = pingora::upstreams::peer::HttpPeer::new(addr, tls, bare_host.clone());
        match connector.get_http_session(&peer).await {
            Ok((s, _)) => {
                session = Some(s);
                break;
            }
            Err(e) => last_error = PostError::Connect(addr, e.etype().as_str()),
        }
    }
    let mut session = session.ok_or(last_error)?;
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(&host).to_string();
    let mut req = pingora::http::RequestHeader::build("POST", target.as_bytes(), None).map_err(PostError::Request)?;
    for (name, value) in [
        ("Host", authority),
        ("Content-Type", "application/json".to_string()),
        ("Content-Length", body.len().to_string()),
        ("User-Agent", format!("quantumvault/{}", env!("CARGO_PKG_VERSION"))),
    ] {
        req.insert_header(name, value).map_err(PostError::Request)?;
    }
    let io = |e: Box<pingora::Error>| PostError::Exchange(e.etype().as_str());
    session.write_request_header(Box::new(req)).await.map_err(io)?;
    session.write_request_body(body, true).await.map_err(io)?;
    session.finish_request_body().await.map_err(io)?;
    // Skip interim 1xx answers to the final one.
    let status = loop {
        session.read_response_header().await.map_err(io)?;
        let status = session.response_header().map(|r| r.status.as_u16()).unwrap_or(0);
        if !(100..200).contains(&status) || status == 101 {
            break status;
        }
    };
    if (200..300).contains(&status) {
        // Accepted: what the body says (or how slowly) no longer matters.
        Ok(())
    } else {
        Err(PostError::Status(status))
    }
}

/// Why one webhook delivery failed: logged with the attempt's number.
#[derive(Debug, thiserror::Error)]
enum PostError {
    #[error("bad URL")]
    BadUrl,
    #[error("URL without a host")]
    NoHost,
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("connect {0}: {1}")]
    Connect(std::net::SocketAddr, &'static str),
    /// Building the request failed (Pingora's error text, as before).
    #[error("{0}")]
    Request(Box<pingora::Error>),
    #[error("{0}")]
    Exchange(&'static str),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("timed out")]
    TimedOut,
}
