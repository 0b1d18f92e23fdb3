//! The Pingora `ProxyHttp` implementation: phase wiring only. Each phase hands its work to the
//! module that owns it (routing in [`crate::policy`], peers in [`crate::upstream`], forwarding
//! headers in [`forward`], the answers the gateway writes itself in [`answer`], telemetry in [`crate::telemetry`]).

mod answer;
pub mod forward;
pub mod headers;
pub mod signed;
mod wellknown;

use std::net::IpAddr;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::HeaderValue;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use crate::canonical::CanonicalRequest;
use crate::clock::{mono_ms, Clock};
use crate::errors::{Denial, FailureKind, GatewayError, NO_PEER};
use crate::filters::phases::{self, FilterState, RequestInfo};
use crate::filters::{client_ip, security_headers};
use crate::kms::keystore::KeyRing;
use crate::policy::{Policy, Route};
use crate::telemetry::access_log::{AccessEntry, AccessLog};

/// What the upstream learns of the caller's key and of a finding in `detect` mode.

/// Where the public key directory is served on the proxy listeners.
pub const KEY_DIRECTORY_PATH: &str = "/.well-known/http-message-signatures-directory";
/// `{BATCH_PATH}{batch id in hex}`: a signed batch from the anchor log, with its inclusion in
/// the log's tree.
pub const BATCH_PATH: &str = "/.well-known/http-batch-sig/v1/batch/";
/// The anchor log as C2SP tlog-tiles, with proofs and keys (`docs/batch-signing.md` §11.2).
pub const LOG_PATH: &str = "/.well-known/http-batch-sig/v1/log/";

pub struct Gateway {
    policy: Arc<ArcSwap<Policy>>,
    keyring: Arc<ArcSwap<KeyRing>>,
    access_log: AccessLog,
    in_flight: metrics::Gauge,
    /// Read once per request (in `new_ctx`): [`crate::clock::SystemClock`] in the server. The
    /// end of a request (latency, access-log time) is read from the system clock.
    clock: Arc<dyn Clock>,
    /// Signs the batches of routes in batch mode ([`crate::integrity::batcher`]).
    batcher: Arc<crate::integrity::batcher::Batcher>,
    /// Every signed batch, served at [`BATCH_PATH`] ([`crate::integrity::anchor`]).
    anchor: Arc<crate::integrity::anchor::AnchorLog>,
    /// Client timeouts, set on every downstream session before its body is read.
    downstream: crate::config::gateway::DownstreamTimeouts,
}

impl Gateway {
    pub fn new(
        policy: Arc<ArcSwap<Policy>>,
        keyring: Arc<ArcSwap<KeyRing>>,
        access_log: AccessLog,
        clock: Arc<dyn Clock>,
        batcher: Arc<crate::integrity::batcher::Batcher>,
        anchor: Arc<crate::integrity::anchor::AnchorLog>,
        downstream: crate::config::gateway::DownstreamTimeouts,
    ) -> Gateway {
        Gateway {
            policy,
            keyring,
            access_log,
            in_flight: crate::telemetry::metrics::in_flight(),
            clock,
            batcher,
            anchor,
            downstream,
        }
    }
}

/// Decrements the in-flight gauge however the request ends.
pub struct InFlight(metrics::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Per-request state.
pub struct Ctx {
    /// The policy snapshot this request sees from start to end.
    policy: Arc<Policy>,
    route: Option<Arc<Route>>,
    /// The request's canonical form ([`crate::canonical`]); default until request_filter.
    canonical: CanonicalRequest,
    request_id: forward::RequestId,
    /// The clock read once as the request starts: its latency and every filter's decision.
    started: crate::clock::Now,
    client_ip: Option<IpAddr>,
    /// The socket peer: the hop appended to X-Forwarded-For.
    peer_ip: Option<IpAddr>,
    /// Pool indices already tried by this request (retries go elsewhere).
    tried: crate::upstream::Tried,
    peer: Option<usize>,
    error: Option<GatewayError>,
    /// Set when a filter refused the request.
    denial: Option<Denial>,
    filters: FilterState,
    tls: bool,
    /// Upstream attempts so far (peer choices; a retry to the same peer counts too).
    attempts: u32,
    /// What the body filters keep between chunks ([`phases::BodyState`]).
    body: phases::BodyState,
    /// When the first upstream peer was chosen, and how long after that its response header
    /// arrived: the upstream's share of the request, apart from gateway overhead.
    upstream_started: Option<Instant>,
    upstream_took: Option<std::time::Duration>,
    /// A signing route's response while it is held to be signed ([`signed`]).
    hold: Option<signed::Hold>,
    /// The HTTP/1 connection's head and body deadlines ([`crate::connections`]).
    conn: Option<Arc<crate::connections::Watch>>,
    _in_flight: Option<InFlight>,
}

impl Ctx {
    fn new(policy: Arc<Policy>, in_flight: Option<InFlight>, started: crate::clock::Now) -> Ctx {
        Ctx {
            policy,
            route: None,
            canonical: CanonicalRequest::default(),
            request_id: forward::RequestId::none(),
            started,
            client_ip: None,
            peer_ip: None,
            tried: Default::default(),
            peer: None,
            error: None,
            denial: None,
            filters: FilterState::default(),
            tls: false,
            attempts: 0,
            body: Default::default(),
            upstream_started: None,
            upstream_took: None,
            hold: None,
            conn: None,
            _in_flight: in_flight,
        }
    }

    /// A new upstream attempt. On a retry Pingora replays the body it buffered through the
    /// body phase again, from the start: the body count and the inspection hold start over
    /// too, or a retried body would count twice against `max_body` and a body held when the
    /// first attempt failed would be forwarded with its first part twice.
    fn begin_attempt(&mut self) {
        self.attempts += 1;
        if self.attempts > 1 {
            self.body = Default::default();
            // A failed attempt's response was never written: the retry's is held afresh.
            self.hold = None;
        }
    }

    /// A peer is about to be tried (the first try starts the upstream clock).
    fn upstream_begin(&mut self) {
        self.upstream_started.get_or_insert_with(crate::clock::instant);
    }

    /// The upstream's response header arrived.
    fn upstream_answered(&mut self) {
        self.upstream_took = self.upstream_started.map(|t| t.elapsed());
    }

    /// The security headers of the request's route, or the policy's for unrouted requests.
    fn security_headers(&self) -> &security_headers::CompiledHeaders {
        match self.route.as_ref() {
            Some(r) => &r.security_headers,
            None => &self.policy.unrouted_headers,
        }
    }

    /// What every proxied response gets on its way out: hop-by-hop headers removed, X-Request-Id,
    /// the security headers (after removing those that advertise the upstream) and the
    /// rate-limit fields.
    fn finish_proxied_response(&self, resp: &mut ResponseHeader) -> Result<()> {
        let spec = self.security_headers();
        let mut edit = phases::ResponseInfo {
            filters: &self.filters,
            headers: spec,
            tls: self.tls,
            removed: security_headers::Removed::NONE,
        };
        let room = 1 + phases::response_adds(&edit);
        headers::edit_response(resp, room, |h| {
            forward::strip_hop_by_hop(h, |name| edit.removed.note(spec, name));
            h.insert(forward::X_REQUEST_ID, self.request_id.header());
            phases::response(&edit, h)
        })
    }

    /// The path the access log and error log show: canonical, never the query (which may
    /// carry a key); for a request refused before it had one, the raw path up to `?`.
    fn log_path<'a>(&'a self, req: &'a RequestHeader) -> std::borrow::Cow<'a, str> {
        if !self.canonical.path.is_empty() {
            return self.canonical.path.as_str().into();
        }
        let raw = req.raw_path();
        let end = raw.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end])
    }

    fn peer_label(&self) -> Option<&str> {
        let route = self.route.as_ref()?;
        self.peer.map(|i| route.pool.peers[i].state.label.as_str())
    }

    /// Adds this request's gateway-side error to `/errors`.
    fn record_error(&self, err: GatewayError, kind: FailureKind) {
        crate::telemetry::errors::record(crate::telemetry::errors::ErrorRecord {
            time_ms: crate::clock::unix_ms(),
            route: self
                .route
                .as_ref()
                .map(|r| r.spec.name.clone())
                .unwrap_or_else(|| "none".into()),
            request_id: self.request_id.to_string(),
            class: err.code(),
            kind: kind.as_str(),
            upstream: self.peer_label().map(str::to_string),
            status: err.status(),
        });
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    /// Boxed: Pingora keeps the context inside its per-request future, which it moves a few
    /// times per request, so a pointer there is cheaper than the whole context.
    type CTX = Box<Ctx>;

    fn new_ctx(&self) -> Box<Ctx> {
        self.in_flight.increment(1.0);
        Box::new(Ctx::new(
            self.policy.load_full(),
            Some(InFlight(self.in_flight.clone())),
            self.clock.now(),
        ))
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<()> {
        // Before the body is read and the response written. The first request's head was
        // read under Pingora's own per-read timeout (60 s); later ones under the keep-alive one.
        let d = &self.downstream;
        session.set_read_timeout(Some(d.read));
        session.set_write_timeout(Some(d.write));
        // Only where keep-alive is on: Pingora switches it off for a request that must close
        // (Content-Length with Transfer-Encoding, `Connection: close`), and validation
        // reads that state.
        if session.as_downstream().get_keepalive().is_some() {
            session.set_keepalive(Some(d.keepalive.as_secs()));
        }
        ctx.conn = crate::connections::begin_request(!session.is_body_empty());
        Ok(())
    }

    /// What Pingora's own error log prints of a failed request: the method, the canonical path
    /// and the host, never the query (Pingora's default prints the raw target with it, which
    /// may carry an API key).
    fn request_summary(&self, session: &Session, ctx: &Box<Ctx>) -> String {
        let req = session.req_header();
        format!(
            "{} {}, Host: {}",
            req.method,
            ctx.log_path(req),
            if ctx.canonical.host.is_empty() {
                "-"
            } else {
                ctx.canonical.host.as_str()
            }
        )
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        ctx.request_id = forward::request_id(session.req_header());
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let policy = ctx.policy.clone();
        let access = &policy.config.access;
        let norm = &policy.config.normalization;
        // One canonical request, before anything decides on the request.
        let trusted_peer = access.trusted_proxies.contains(peer);
        let canonical = CanonicalRequest::of(session.req_header(), norm).and_then(|mut c| {
            let owned = [&access.auth_header, &access.client_ip_header];
            let cleaned = crate::canonical::headers::sanitize(
                &session.req_header().headers,
                &norm.headers,
                trusted_peer,
                &owned,
            )?;
            c.method_override = cleaned.method_override;
            // `_method` in the query is an override too (Symfony, Laravel, Express's
            // method-override): removed where the headers are, else checked like them.
            if let Some(q) = c.query.as_deref() {
                use crate::canonical::headers::{HeaderError, MethodOverride};
                if !trusted_peer && norm.headers.method_override == MethodOverride::Remove {
                    c.strip_method_param = crate::canonical::query::has_method_param(q);
                } else if let Some(m) = crate::canonical::query::method_override(q)? {
                    match &c.method_override {
                        Some(prev) if *prev != m => return Err(HeaderError::ConflictingOverride.into()),
                        _ => c.method_override = Some(m),
                    }
                }
            }
            let headers = &session.req_header().headers;
            c.removed_headers = cleaned
                .remove
                .iter()
                .flat_map(|n| {
                    headers.get_all(n).iter().map(move |v| {
                        (
                            n.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                })
                .collect();
            Ok((c, cleaned.remove))
        });
        let remove = match canonical {
            Ok((c, remove)) => {
                ctx.canonical = c;
                remove
            }
            Err(e) => {
                ctx.client_ip = Some(peer);
                ctx.peer_ip = Some(peer);
                let denial = Denial::new(400, "bad_request", "")
                    .with_message(e.to_string())
                    .check(e.reason());
                Box::pin(self.send_denial(session, ctx, denial)).await?;
                return Ok(true);
            }
        };
        for name in &remove {
            session.req_header_mut().remove_header(name);
        }
        let body_follows = !session.is_body_empty();
        let req = session.req_header();
        let ip = client_ip::of_request(peer, &req.headers, &access.client_ip_header, &access.trusted_proxies);
        ctx.client_ip = Some(ip);
        ctx.peer_ip = Some(peer);
        ctx.route = ctx.policy.route(&ctx.canonical.host, &ctx.canonical.path).cloned();
        let info = RequestInfo {
            req,
            canonical: &ctx.canonical,
            client_ip: ip,
            route: ctx.route.as_ref(),
            policy: &ctx.policy,
            now: ctx.started,
            keepalive_off: session.as_downstream().get_keepalive().is_none() && !session.is_process_shutting_down(),
            body_follows,
        };
        // The gateway's own documents: public, but not to addresses the policy keeps out (its
        // global lists, and the lists of the route the path falls under).
        let path = ctx.canonical.path.as_str();
        if (req.method == http::Method::GET || req.method == http::Method::HEAD)
            && (path == KEY_DIRECTORY_PATH || path.starts_with(BATCH_PATH) || path.starts_with(LOG_PATH))
        {
            use crate::filters::request::RequestFilter;
            if let Err(denial) = crate::filters::ip_filter::IpFilter.check(&info, &mut ctx.filters) {
                Box::pin(self.send_denial(session, ctx, denial)).await?;
            } else if path == KEY_DIRECTORY_PATH {
                Box::pin(self.serve_key_directory(session, ctx)).await?;
            } else if path.starts_with(BATCH_PATH) {
                Box::pin(self.serve_batch(session, ctx)).await?;
            } else {
                Box::pin(self.serve_log(session, ctx)).await?;
            }
            return Ok(true);
        }
        match phases::request(&info, &mut ctx.filters).await {
            Ok(()) => Ok(false),
            Err(denial) => {
                Box::pin(self.send_denial(session, ctx, denial)).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let Some(w) = &ctx.conn {
            w.body(body.as_ref().map_or(0, |b| b.len()), end);
        }
        if let Some(route) = ctx.route.as_ref() {
            let found = &mut ctx.filters;
            if let Err(denial) = phases::body(route, session.req_header(), &mut ctx.body, found, body, end) {
                let status = denial.status;
                ctx.denial = Some(denial);
                return Error::e_explain(ErrorType::HTTPStatus(status), "request body refused");
            }
        }
        // A held chunk leaves nothing to send yet; `None` would tell Pingora the body ended.
        if !end && body.is_none() {
            *body = Some(bytes::Bytes::new());
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Box<Ctx>) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route.clone() else {
            return Error::e_explain(ErrorType::InternalError, "upstream_peer without a route");
        };
        let pool = &route.pool;
        let Some(idx) = pool.choose(&mut ctx.tried, mono_ms()) else {
            return Error::e_explain(ErrorType::Custom(NO_PEER), format!("upstream {}", pool.spec.name));
        };
        ctx.peer = Some(idx);
        ctx.upstream_begin();
        ctx.begin_attempt();
        Ok(Box::new(pool.http_peer(idx)))
    }

    /// Pingora's default decision (idempotent requests whose body it still holds are retried
    /// when the connection was a reused one), plus: after a reused connection failed (closed by
    /// the upstream or by a load balancer or NAT while it sat in the pool), the retry prefers
    /// another peer and may fall back to the same one, whose connection rather than itself may
    /// have failed; a one-peer pool would otherwise have no peer left and answer 502.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Box<Ctx>,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        if client_reused && e.retry() {
            ctx.tried.allow_last_again();
        }
        e
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<Ctx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let Some(route) = ctx.route.as_ref() else { return e };
        let pool = &route.pool;
        let (_, kind) = GatewayError::from_pingora(&e);
        crate::telemetry::metrics::upstream_error(&pool.spec.name, kind.as_str());
        if let Some(idx) = ctx.peer {
            pool.connect_failed(idx, mono_ms());
        }
        e.set_retry(pool.may_retry(ctx.tried.count(), session.req_header().method.is_idempotent()));
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let (Some(route), Some(idx)) = (ctx.route.as_ref(), ctx.peer) {
            route.pool.peers[idx].state.record_success();
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        self.prepare_upstream(session, req, ctx)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        ctx.upstream_answered();
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // Refused, the client gets a 502 and the upstream connection is not reused.
            if let Err(why) = forward::check_protocol_switch(&session.req_header().headers, &resp.headers) {
                log::warn!(
                    "request {}: the upstream answered 101 but {why}; refused",
                    ctx.request_id
                );
                return Err(Error::explain(ErrorType::InvalidHTTPHeader, why).into_up());
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        ctx.finish_proxied_response(resp)
    }

    /// Signing routes hold the response here until its body is whole, then sign it
    /// ([`signed`]); other routes pass straight through.
    async fn response_tasks_filter(
        &self,
        session: &mut Session,
        tasks: &mut Vec<pingora::protocols::http::HttpTask>,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if ctx.route.as_ref().is_some_and(|r| r.spec.signing.enabled) {
            Box::pin(self.hold_signed(session, tasks, ctx)).await;
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Box<Ctx>) -> FailToProxy {
        if let Some(denial) = ctx.denial.clone() {
            // A filter refused the request mid-stream (the body limit).
            session.set_keepalive(None);
            let code = if session.response_written().is_none()
                && Box::pin(self.send_denial(session, ctx, denial.clone())).await.is_ok()
            {
                denial.status
            } else {
                0
            };
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        let (err, kind) = GatewayError::from_pingora(e);
        // Connect-phase failures were already counted, once per attempt, in fail_to_connect.
        let connect_phase = matches!(
            e.etype(),
            ErrorType::ConnectTimedout
                | ErrorType::ConnectRefused
                | ErrorType::ConnectError
                | ErrorType::ConnectNoRoute
                | ErrorType::TLSHandshakeFailure
                | ErrorType::TLSHandshakeTimedout
        );
        if let Some(route) = ctx.route.as_ref() {
            if !connect_phase && err != GatewayError::BadRequest {
                crate::telemetry::metrics::upstream_error(&route.pool.spec.name, kind.as_str());
            }
        }
        ctx.error = Some(err);
        if err != GatewayError::BadRequest {
            ctx.record_error(err, kind);
        }
        if ctx.request_id.is_empty() {
            ctx.request_id = forward::new_request_id();
        }
        // Once the response header is out, the only honest signal left is to close the stream.
        let already_sent = session.response_written().is_some();
        let downstream_dead = matches!(e.esource(), pingora::ErrorSource::Downstream)
            && matches!(
                e.etype(),
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
            );
        let code = if already_sent || downstream_dead {
            0
        } else {
            // The connection is not reused after a proxy failure; say so in the response.
            session.set_keepalive(None);
            match Box::pin(self.write_answer(session, ctx, &Denial::from(err))).await {
                Ok(()) => err.status(),
                Err(_) => 0,
            }
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<Ctx>) {
        if let Some(w) = ctx.conn.take() {
            w.end_request();
        }
        if let Some(e) = e.filter(|e| matches!(e.esource(), pingora::ErrorSource::Downstream)) {
            match e.etype() {
                pingora::ErrorType::ReadTimedout => crate::telemetry::metrics::downstream_timeout("read"),
                pingora::ErrorType::WriteTimedout => crate::telemetry::metrics::downstream_timeout("write"),
                _ => {}
            }
        }
        let status = session.response_written().map(|r| r.status.as_u16()).unwrap_or(0);
        let end = crate::clock::instant();
        let elapsed = end.saturating_duration_since(ctx.started.instant);
        let req = session.req_header();
        let metrics = match ctx.route.as_ref() {
            Some(r) => &r.metrics,
            None => &ctx.policy.unrouted,
        };
        metrics.record(&req.method, status, end, elapsed, ctx.upstream_took);
        let route_name = ctx.route.as_ref().map(|r| r.spec.name.as_str()).unwrap_or("none");
        let reason = ctx.denial.as_ref().map(|d| d.reason.label());
        if let Some(reason) = &reason {
            metrics.record_denial(end, reason);
        }
        if let Some(key) = &ctx.filters.key {
            key.usage.record(
                route_name,
                ctx.denial.is_some(),
                session.body_bytes_read() as u64,
                session.body_bytes_sent() as u64,
                crate::clock::unix_now(),
            );
        }
        if self.access_log.enabled() {
            let outcome = match (&reason, ctx.error, e) {
                (Some(reason), _, _) => &**reason,
                (None, Some(err), _) => err.code(),
                (None, None, Some(_)) => "aborted",
                (None, None, None) => "ok",
            };
            let route = route_name;
            self.access_log.log(&AccessEntry {
                time: crate::clock::system_time(),
                request_id: ctx.request_id.as_str(),
                client: ctx.client_ip,
                method: req.method.as_str(),
                route,
                path: &ctx.log_path(req),
                status,
                bytes_in: session.body_bytes_read(),
                bytes_out: session.body_bytes_sent(),
                duration_us: ((elapsed.as_nanos() + 500) / 1000) as u64,
                upstream: ctx.peer_label(),
                outcome,
                key_id: ctx.filters.key.as_ref().map(|k| k.spec.id.as_str()),
                inspection: ctx.filters.finding.as_ref().map(|f| f.rule_id),
            });
        }
    }
}

impl Gateway {
    /// The upstream request: hop-by-hop headers and the caller's credentials out, forwarding
    /// headers and the key's id and tier in. Shared by the proxy path and signing routes.
    fn prepare_upstream(&self, session: &Session, req: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
        let policy = &ctx.policy;
        let query = ctx.canonical.query.as_deref();
        let stripped = query.and_then(|q| {
            crate::filters::auth::strip_query_key(policy, ctx.route.as_deref(), q, ctx.canonical.strip_method_param)
        });
        if ctx.canonical.rewritten || stripped.is_some() {
            let query = match &stripped {
                Some(q) => (!q.is_empty()).then_some(q.as_slice()),
                None => query,
            };
            req.set_raw_path(&ctx.canonical.target(query))?;
        }
        let host_header = match ctx.canonical.host_header.as_deref() {
            Some(h) if ctx.route.as_ref().is_none_or(|r| r.spec.upstream_host.is_none()) => {
                Some(HeaderValue::from_str(h).or_err(ErrorType::InvalidHTTPHeader, "Host")?)
            }
            _ => None,
        };
        let forwarded = forward::Forwarded {
            client_ip: ctx.peer_ip,
            proto: if ctx.tls { "https" } else { "http" },
            host: forward::forwarded_host(session.req_header()),
            request_id: &ctx.request_id,
            upstream_host: ctx.route.as_ref().and_then(|r| r.spec.upstream_host.as_deref()),
        };
        let signs = ctx.route.as_ref().is_some_and(|r| r.spec.signing.enabled);
        let auth_header = &ctx.policy.config.access.auth_header;
        // An HTTP/1.0 request may come without any host; the upstream request is HTTP/1.1,
        // which must carry one (RFC 9112 section 3.2): the peer's address, as nginx sends its
        // upstream's name.
        let peer_addr = ctx
            .route
            .as_ref()
            .zip(ctx.peer)
            .and_then(|(r, i)| r.pool.peers.get(i))
            .map(|p| p.addr);
        headers::edit_request(req, forward::Forwarded::HEADERS + phases::UPSTREAM_ADDS, |h| {
            let mut present = phases::Present::default();
            forward::strip_hop_by_hop(h, |name| present.note(name, auth_header));
            if let Some(host) = host_header {
                h.insert(http::header::HOST, host);
            }
            let edit = phases::UpstreamInfo {
                policy,
                filters: &ctx.filters,
                present,
            };
            phases::upstream(&edit, h)?;
            if signs {
                // A held, signed response cannot be a protocol switch, so this hop offers none:
                // `Upgrade` and `Connection` are hop-by-hop (RFC 9110 7.6.1, 7.8); the headers
                // `Connection` named are already gone. Pingora writes its own keep-alive.
                h.remove(http::header::UPGRADE);
                h.remove(http::header::CONNECTION);
            }
            forward::apply_forwarding(h, &forwarded)?;
            if !h.contains_key(http::header::HOST) {
                if let Some(addr) = peer_addr {
                    let value =
                        HeaderValue::from_str(&addr.to_string()).or_err(ErrorType::InvalidHTTPHeader, "Host")?;
                    h.insert(http::header::HOST, value);
                }
            }
            Ok(())
        })?
    }
}
