//! Signed responses: hold the body, digest, sign, write. Nothing else of the proxy is here.
//!
//! A header whose value depends on the whole body (Content-Digest, a signature) cannot be added
//! on Pingora's normal proxy path: the response header is on the wire before any body filter
//! runs. So a signing route runs the normal proxy path as a Pingora *subrequest*: the request's
//! [`Ctx`] moves into the subrequest, which runs every phase after `request_filter` exactly as an
//! unsigned route does (peer choice, retries including the reused-connection rule, passive
//! ejection, timeouts, the body limit and body inspection, the upstream request edit, the
//! response edit, error answers). Its response comes back here as Pingora `HttpTask`s; this
//! module holds the body up to `max_hold`, hashes it, signs and writes the response, and the
//! context moves back for the access log. Above the bound, or for streaming media types, the
//! response is passed through unsigned with `Integrity-Status: unsigned; reason=...` and
//! counted, never silently.
//!
//! Why a subrequest and not a fetch with Pingora's connector: the connector path had to restate
//! peer selection, retries, framing and header cleanup, and its copy drifted (a stale pooled
//! connection was retried on the proxy path only). The subrequest costs a task, two channels and
//! a re-read of the request head; the README's benchmark shows what that costs per request.
//!
//! HEAD, 204 and 304 carry no content, so their signature covers no `content-digest`.
//! The digest is over the bytes sent: an upstream that compresses (Content-Encoding) is
//! hashed compressed; the gateway itself does not compress.

use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::HttpTask;
use pingora::proxy::subrequest::{BodyMode, Ctx as SubrequestCtx};
use pingora::proxy::Session;

use super::{forward, Ctx, Gateway};
use crate::config::signing::SigningSpec;
use crate::errors::GatewayError;
use crate::integrity::digest;
use crate::integrity::httpsig::{self, Component, Message, SigningKeyRef};
use crate::kms::keystore::KeyRing;
use crate::telemetry::metrics;

/// `scheme://authority/path?query` as the client addressed it.
pub fn target_uri(req: &RequestHeader, tls: bool) -> String {
    let authority = forward::request_authority(req);
    let raw = String::from_utf8_lossy(req.raw_path());
    let path = if raw.starts_with('/') || raw == "*" {
        raw.into_owned()
    } else {
        req.uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into())
    };
    format!("{}://{authority}{path}", if tls { "https" } else { "http" })
}

/// Adds Content-Digest (when there is content) to `resp` and returns the components the
/// gateway's signatures cover (see [`httpsig`]).
fn covered_components(
    resp: &mut ResponseHeader,
    body: Option<&[u8]>,
    spec: &SigningSpec,
) -> Result<Vec<Component>, &'static str> {
    let mut covered = vec![Component::new("@status")];
    if let Some(b) = body {
        let value = digest::header_value(spec.digest, &spec.digest.digest(b));
        resp.insert_header("Content-Digest", value).map_err(|_| "header")?;
        covered.push(Component::new("content-digest"));
    }
    if resp.headers.contains_key(http::header::CONTENT_TYPE) {
        covered.push(Component::new("content-type"));
    }
    covered.push(Component::new("x-request-id"));
    covered.push(Component::req("@method"));
    covered.push(Component::req("@target-uri"));
    Ok(covered)
}

fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// Inline signatures, one label per algorithm of `algs`: the `Signature-Input` and `Signature`
/// members.
fn sign_inline(
    resp: &ResponseHeader,
    covered: &[Component],
    algs: &[crate::integrity::sig::SigAlg],
    ring: &KeyRing,
    req: &RequestHeader,
    target: &str,
) -> Result<(Vec<String>, Vec<String>), &'static str> {
    let signers: Vec<_> = algs.iter().filter_map(|a| ring.signer(*a)).collect();
    if signers.len() != algs.len() {
        return Err("no-key");
    }
    let nonce = new_nonce();
    let created = crate::clock::unix_now();
    let mut inputs = Vec::new();
    let mut sigs = Vec::new();
    for s in signers {
        let started = crate::clock::instant();
        let keys = [SigningKeyRef {
            keyid: &s.keyid,
            signer: s.signer.as_ref(),
        }];
        let m = Message {
            status: resp.status.as_u16(),
            headers: &resp.headers,
            req_method: req.method.as_str(),
            req_target_uri: target,
            req_headers: &req.headers,
        };
        match httpsig::sign(&keys, covered, &m, created, &nonce) {
            Ok((i, sg)) => {
                metrics::signed(s.signer.alg().name(), started);
                inputs.push(i);
                sigs.push(sg);
            }
            Err(_) => {
                metrics::signing_failed(s.signer.alg().name());
                return Err("signing-failed");
            }
        }
    }
    Ok((inputs, sigs))
}

/// Adds Content-Digest (when there is content), Signature-Input and Signature to `resp`,
/// signing inline (for tests and tools; the proxy signs through [`Gateway::sign`]).
pub fn sign_response(
    resp: &mut ResponseHeader,
    body: Option<&[u8]>,
    spec: &SigningSpec,
    ring: &KeyRing,
    req: &RequestHeader,
    tls: bool,
) -> Result<(), &'static str> {
    let covered = covered_components(resp, body, spec)?;
    let target = target_uri(req, tls);
    let (inputs, sigs) = sign_inline(resp, &covered, &spec.algorithms, ring, req, &target)?;
    resp.insert_header("Signature-Input", inputs.join(", "))
        .map_err(|_| "header")?;
    resp.insert_header("Signature", sigs.join(", ")).map_err(|_| "header")?;
    Ok(())
}

impl Gateway {
    /// Signs `resp` as `spec` says: inline, or in batch mode through the batch signer (waiting
    /// for its batch), with an inline ECDSA label beside the batch label if configured.
    pub(super) async fn sign(
        &self,
        resp: &mut ResponseHeader,
        body: Option<&[u8]>,
        spec: &SigningSpec,
        req: &RequestHeader,
        tls: bool,
    ) -> Result<(), &'static str> {
        let Some(alg) = spec.batch else {
            let ring = self.keyring.load();
            return sign_response(resp, body, spec, &ring, req, tls);
        };
        let covered = covered_components(resp, body, spec)?;
        let target = target_uri(req, tls);
        let (mut inputs, mut sigs) = if spec.inline_ecdsa {
            let ring = self.keyring.load();
            sign_inline(
                resp,
                &covered,
                &[crate::integrity::sig::SigAlg::EcdsaP256],
                &ring,
                req,
                &target,
            )?
        } else {
            (Vec::new(), Vec::new())
        };
        // A key rotation between the base and the batch: the base names the new key next time.
        let mut tries = 0;
        let (params, salt, proof) = loop {
            tries += 1;
            let keyid = {
                let ring = self.keyring.load();
                let first = alg.algorithms()[0];
                ring.signer(first).ok_or("no-key")?.keyid.clone()
            };
            let params = httpsig::params_value(
                &covered,
                &[
                    ("created".into(), httpsig::Param::Int(crate::clock::unix_now() as i64)),
                    ("keyid".into(), httpsig::Param::Str(keyid.clone())),
                    ("alg".into(), httpsig::Param::Str(alg.name().into())),
                    ("nonce".into(), httpsig::Param::Str(new_nonce())),
                    ("tag".into(), httpsig::Param::Str(BATCH_TAG.into())),
                ],
            );
            let base = {
                let m = Message {
                    status: resp.status.as_u16(),
                    headers: &resp.headers,
                    req_method: req.method.as_str(),
                    req_target_uri: &target,
                    req_headers: &req.headers,
                };
                httpsig::signature_base(&covered, &params, &m).map_err(|_| "signature-base")?
            };
            let salt: [u8; 16] = rand::random();
            let leaf = crate::integrity::merkle::leaf(&salt, base.as_bytes());
            match self.batcher.sign(alg, leaf, &keyid).await {
                Ok(proof) => break (params, salt, proof),
                Err(crate::integrity::batcher::BatchSignError::KeyChanged) if tries < 3 => continue,
                Err(crate::integrity::batcher::BatchSignError::NoKey(_)) => return Err("no-key"),
                Err(crate::integrity::batcher::BatchSignError::AnchorFailed) => return Err("anchor-failed"),
                Err(_) => return Err("signing-failed"),
            }
        };
        let value = crate::integrity::batch::encode(&proof.batch, proof.index, &salt, &proof.path, spec.detached);
        inputs.push(format!("{BATCH_LABEL}={params}"));
        sigs.push(format!("{BATCH_LABEL}=:{}:", B64.encode(value)));
        resp.insert_header("Signature-Input", inputs.join(", "))
            .map_err(|_| "header")?;
        resp.insert_header("Signature", sigs.join(", ")).map_err(|_| "header")?;
        Ok(())
    }
}

/// The label and `tag` of batch signatures.
pub const BATCH_LABEL: &str = "sig-batch";
pub const BATCH_TAG: &str = "quantumvault-batch";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn no_content(method: &http::Method, status: u16) -> bool {
    *method == http::Method::HEAD || status == 204 || status == 304 || (100..200).contains(&status)
}

/// What a signing route's request hands its subrequest, and gets back when the subrequest ends.
#[derive(Default)]
pub(super) struct Handoff {
    /// The request's context: moved in by the parent, taken by the subrequest's first phase,
    /// put back by its last (`logging`).
    ctx: Option<Ctx>,
    /// The request head as the gateway's request phase left it (headers removed, framing for
    /// HTTP/2): Pingora builds the subrequest from the client's raw head, so the subrequest
    /// swaps this in before any phase reads it.
    header: Option<RequestHeader>,
}

pub(super) type Slot = Arc<Mutex<Handoff>>;

/// In a subrequest's first phase: takes over the parent's context and request head. Returns
/// false for ordinary requests.
pub(super) fn adopt_parent(session: &mut Session, ctx: &mut Ctx) -> bool {
    let Some(slot) = session
        .subrequest_ctx
        .as_ref()
        .and_then(|s| s.user_ctx())
        .and_then(|u| u.downcast_ref::<Slot>())
        .cloned()
    else {
        return false;
    };
    let (parent, header) = {
        let mut h = slot.lock().unwrap_or_else(|e| e.into_inner());
        (h.ctx.take(), h.header.take())
    };
    if let Some(parent) = parent {
        // The subrequest's own fresh context is dropped here (with its in-flight count).
        *ctx = parent;
    }
    if let Some(header) = header {
        *session.req_header_mut() = header;
    }
    ctx.subrequest = Some(slot);
    true
}

/// In a subrequest's last phase: gives the context back to the parent.
pub(super) fn return_to_parent(ctx: &mut Ctx) -> bool {
    let Some(slot) = ctx.subrequest.take() else {
        return false;
    };
    let placeholder = ctx.placeholder();
    let state = std::mem::replace(ctx, placeholder);
    slot.lock().unwrap_or_else(|e| e.into_inner()).ctx = Some(state);
    true
}

/// How the subrequest's response came back.
enum Fetched {
    /// Whole and held: sign it and write it.
    Held(Box<ResponseHeader>, Bytes),
    /// Passed through unsigned, already written.
    Streamed,
    /// No complete response (the upstream failed after its header, or the subrequest never
    /// answered).
    Incomplete { streamed: bool },
    /// The client went away or broke its request body.
    ClientGone,
}

impl Gateway {
    /// Runs a signing route's request through the proxy path as a subrequest, then signs and
    /// writes its response. The context is back in `ctx` when this returns.
    pub(super) async fn proxy_signed(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<()> {
        let Some(route) = ctx.route.clone() else {
            return Error::e_explain(ErrorType::InternalError, "signing without a route");
        };
        // What the parent still needs while the context is lent out.
        let tls = ctx.tls;
        let request_id = ctx.request_id.clone();
        let slot: Slot = Arc::default();
        let prepared = {
            if session.subrequest_spawner.is_none() {
                return Error::e_explain(ErrorType::InternalError, "subrequests not enabled");
            }
            let mut header = session.req_header().clone();
            // An HTTP/2 body without a length: the subrequest reads a body only when the head
            // frames one, so it is framed as chunked (as it goes upstream anyway).
            let unframed = header.version == http::Version::HTTP_2
                && !session.is_body_empty()
                && !header.headers.contains_key(http::header::CONTENT_LENGTH);
            if unframed {
                header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
            }
            // Pingora parses the subrequest from the parent's head as HTTP/1 text; an HTTP/2
            // head is written out as HTTP/1.1 with a Host for that parse only. The subrequest
            // then works on `header` (still HTTP/2, so Pingora converts it as on the proxy path).
            let wire = (header.version == http::Version::HTTP_2).then(|| {
                let mut w = header.clone();
                w.set_version(http::Version::HTTP_11);
                if !w.headers.contains_key(http::header::HOST) {
                    if let Some(a) = w.uri.authority().map(|a| a.as_str().to_string()) {
                        let _ = w.insert_header(http::header::HOST, a);
                    }
                }
                w
            });
            {
                let mut h = slot.lock().unwrap_or_else(|e| e.into_inner());
                let placeholder = ctx.placeholder();
                h.ctx = Some(std::mem::replace(&mut **ctx, placeholder));
                h.header = Some(header);
            }
            let sub_ctx = SubrequestCtx::builder()
                .body_mode(BodyMode::ExpectBody)
                .user_ctx(Box::new(slot.clone()))
                .build();
            let original = wire.map(|w| std::mem::replace(session.req_header_mut(), w));
            let spawner = session.subrequest_spawner.as_ref().expect("checked above");
            let made = spawner.create_subrequest(&session.downstream_session, sub_ctx);
            if let Some(original) = original {
                *session.req_header_mut() = original;
            }
            made
        };
        let (sub, handle) = prepared;
        let join = tokio::spawn(sub.run());
        let fetched = self
            .relay(session, handle, &route.spec.signing, request_id.as_str())
            .await;
        // The handle is gone: a subrequest still waiting on the client or on us ends now.
        let _ = join.await;
        let state = slot.lock().unwrap_or_else(|e| e.into_inner()).ctx.take();
        match state {
            Some(state) => **ctx = state,
            None => log::error!("request {request_id}: the signing subrequest lost the request context"),
        }
        match fetched {
            Fetched::Held(resp, body) => {
                self.write_signed(session, ctx, resp, body, &route.spec.signing, tls)
                    .await
            }
            Fetched::Streamed => Ok(()),
            Fetched::ClientGone => Error::e_explain(ErrorType::ReadError, "client request failed"),
            Fetched::Incomplete { streamed: true } => {
                session.set_keepalive(None);
                Error::e_explain(ErrorType::WriteError, "upstream failed after the response started")
            }
            Fetched::Incomplete { streamed: false } => {
                // Held, so nothing is on the wire yet: a clean error instead of a cut response.
                session.set_keepalive(None);
                let err = match ctx.error {
                    Some(e) if e != GatewayError::BadRequest => e,
                    _ => GatewayError::UpstreamUnavailable,
                };
                ctx.error = Some(err);
                super::drain_h2_body(session).await;
                self.write_gateway_response(session, ctx, err.status(), err.code(), err.message(), Vec::new())
                    .await
            }
        }
    }

    /// Feeds the client's body to the subrequest when it asks, and collects its response:
    /// held, or streamed through unsigned (a streaming type, or over `max_hold`).
    async fn relay(
        &self,
        session: &mut Session,
        handle: pingora::protocols::http::subrequest::server::SubrequestHandle,
        spec: &SigningSpec,
        request_id: &str,
    ) -> Fetched {
        let pingora::protocols::http::subrequest::server::SubrequestHandle {
            tx,
            mut rx,
            subreq_wants_body: mut wants,
            subreq_proxy_error: mut proxy_error,
        } = handle;
        let method = session.req_header().method.clone();
        let mut wants_body = false;
        let mut wants_closed = false;
        let mut client_done = session.is_body_done();
        let mut pending: Option<HttpTask> = None;
        let mut resp: Option<Box<ResponseHeader>> = None;
        let mut held = BytesMut::new();
        // Its share of the gateway-wide held-bytes budget (crate::held), given back on return.
        let mut share = crate::held::Held::default();
        let mut streaming = false;
        let mut ended = false;
        let mut failed = false;
        loop {
            tokio::select! {
                task = rx.recv() => {
                    let Some(task) = task else { break };
                    match task {
                        HttpTask::Header(h, end) => {
                            let status = h.status.as_u16();
                            if (100..200).contains(&status) && status != 101 {
                                continue; // 100 Continue, 103: not passed on by a held response
                            }
                            if status == 101 {
                                // A protocol switch cannot be held and signed (the upstream
                                // request offers none); treat it as a broken answer.
                                failed = true;
                                continue;
                            }
                            ended |= end;
                            let media = crate::text::media_type_of(&h.headers);
                            let stream = !no_content(&method, status)
                                && spec.stream_types.iter().any(|t| *t == media);
                            resp = Some(h);
                            if stream {
                                metrics::unsigned("stream");
                                if !self.start_stream(session, &mut resp, &mut held, "stream", ended).await {
                                    return Fetched::ClientGone;
                                }
                                streaming = true;
                            }
                        }
                        HttpTask::Body(data, end) => {
                            ended |= end;
                            let Some(chunk) = data else { continue };
                            if streaming {
                                if session.write_response_body(Some(chunk), false).await.is_err() {
                                    return Fetched::ClientGone;
                                }
                                continue;
                            }
                            // Over the gateway-wide budget the response streams unsigned, as one
                            // over max_hold does: other requests hold the memory.
                            let budget_spent = !share.take(chunk.len() as u64);
                            held.extend_from_slice(&chunk);
                            if (held.len() as u64 > spec.max_hold || budget_spent) && resp.is_some() {
                                let (label, status) = if budget_spent { ("busy", "busy") } else { ("too_large", "too-large") };
                                metrics::unsigned(label);
                                if budget_spent {
                                    crate::telemetry::metrics::held_budget_exhausted("signing");
                                }
                                if !self.start_stream(session, &mut resp, &mut held, status, false).await {
                                    return Fetched::ClientGone;
                                }
                                share.release();
                                streaming = true;
                            }
                        }
                        HttpTask::Done => ended = true,
                        HttpTask::Failed(_) => failed = true,
                        // Trailers are not carried by a held response; upgraded bytes cannot occur.
                        HttpTask::Trailer(_) => {}
                        HttpTask::UpgradedBody(..) => failed = true,
                    }
                }
                r = &mut wants, if !wants_body && !wants_closed => {
                    if r.is_ok() { wants_body = true } else { wants_closed = true }
                }
                permit = tx.reserve(), if pending.is_some() => {
                    match permit {
                        Ok(p) => p.send(pending.take().expect("checked")),
                        // The subrequest stopped reading (it answered already).
                        Err(_) => { pending = None; client_done = true; }
                    }
                }
                chunk = session.read_request_body(), if wants_body && pending.is_none() && !client_done => {
                    match chunk {
                        Ok(Some(b)) => {
                            client_done = session.is_body_done();
                            pending = Some(HttpTask::Body(Some(b), client_done));
                        }
                        Ok(None) => {
                            client_done = true;
                            pending = Some(HttpTask::Body(None, true));
                        }
                        Err(e) => {
                            log::debug!("request {request_id}: client body failed: {e}");
                            return Fetched::ClientGone;
                        }
                    }
                }
            }
        }
        // The subrequest ended. Pingora marks the end of a response body with `Done`; a response
        // without one (HEAD, 204, 304) is complete when the subrequest ended without an error.
        if !ended && resp.is_some() && proxy_error.try_recv().is_err() {
            ended = true;
        }
        match resp {
            _ if streaming && (failed || !ended) => Fetched::Incomplete { streamed: true },
            _ if streaming => match session.write_response_body(None, true).await {
                Ok(()) => Fetched::Streamed,
                Err(_) => Fetched::ClientGone,
            },
            Some(r) if ended && !failed => Fetched::Held(r, held.freeze()),
            _ => Fetched::Incomplete { streamed: false },
        }
    }

    /// Switches a held response to streaming: its header (marked unsigned) and what is held go
    /// out now. False if the client is gone.
    async fn start_stream(
        &self,
        session: &mut Session,
        resp: &mut Option<Box<ResponseHeader>>,
        held: &mut BytesMut,
        reason: &str,
        end: bool,
    ) -> bool {
        let Some(mut r) = resp.take() else { return false };
        if r.insert_header("Integrity-Status", format!("unsigned; reason={reason}"))
            .is_err()
        {
            return false;
        }
        if session.write_response_header(r, end).await.is_err() {
            return false;
        }
        if !held.is_empty() {
            let chunk = held.split().freeze();
            if session.write_response_body(Some(chunk), false).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Signs a whole response and writes it.
    async fn write_signed(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        mut resp: Box<ResponseHeader>,
        body: Bytes,
        spec: &SigningSpec,
        tls: bool,
    ) -> Result<()> {
        let method = session.req_header().method.clone();
        let status = resp.status.as_u16();
        let content = !no_content(&method, status);
        if content {
            resp.remove_header(&http::header::TRANSFER_ENCODING);
            resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        }
        if let Err(reason) = self
            .sign(&mut resp, content.then_some(&body[..]), spec, session.req_header(), tls)
            .await
        {
            log::error!("request {}: response not signed ({reason})", ctx.request_id);
            metrics::unsigned("signing_failed");
            let _ = resp.insert_header("Integrity-Status", format!("unsigned; reason={reason}"));
        }
        if status >= 400 {
            session.set_keepalive(None);
            super::drain_h2_body(session).await;
        }
        let end = !content || body.is_empty();
        session.write_response_header(resp, end).await?;
        if !end {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}
