//! Signed responses. A header whose value depends on the whole body (Content-Digest, a
//! signature) cannot be added on Pingora's normal proxy path: the response header is on the
//! wire before any body filter runs. So on a signing route the gateway fetches the response
//! itself in `request_filter` with Pingora's HTTP connector and connection pool (same peer
//! selection, retries, passive ejection and timeouts as the proxy path), holds the body up to
//! `max_hold`, hashes it, signs, and writes the response. Above the bound, or for streaming
//! media types, the response is passed through unsigned with `Integrity-Status: unsigned;
//! reason=...` and counted, never silently.
//!
//! HEAD, 204 and 304 carry no content, so their signature covers no `content-digest`.
//! The digest is over the bytes sent: an upstream that compresses (Content-Encoding) is
//! hashed compressed; the gateway itself does not compress.

use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;

use super::{forward, Ctx, Gateway};
use crate::clock::mono_ms;
use crate::config::policy::SigningSpec;
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

/// Adds Content-Digest (when there is content), Signature-Input and Signature to `resp`.
pub fn sign_response(
    resp: &mut ResponseHeader,
    body: Option<&[u8]>,
    spec: &SigningSpec,
    ring: &KeyRing,
    req: &RequestHeader,
    tls: bool,
) -> Result<(), &'static str> {
    let signers: Vec<_> = spec.algorithms.iter().filter_map(|a| ring.signer(*a)).collect();
    if signers.len() != spec.algorithms.len() {
        return Err("no-key");
    }
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
    let target = target_uri(req, tls);
    let nonce = hex::encode(rand::random::<[u8; 12]>());
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
            req_target_uri: &target,
            req_headers: &req.headers,
        };
        match httpsig::sign(&keys, &covered, &m, created, &nonce) {
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
    resp.insert_header("Signature-Input", inputs.join(", "))
        .map_err(|_| "header")?;
    resp.insert_header("Signature", sigs.join(", ")).map_err(|_| "header")?;
    Ok(())
}

fn no_content(method: &http::Method, status: u16) -> bool {
    *method == http::Method::HEAD || status == 204 || status == 304 || (100..200).contains(&status)
}

enum Failure {
    Gateway(GatewayError),
    /// The client went away or broke the request: nothing to answer.
    Downstream,
}

impl Gateway {
    /// Fetches, holds, signs and writes the response of a signing route.
    pub(super) async fn proxy_signed(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        match self.fetch_and_sign(session, ctx).await {
            Ok(()) => Ok(()),
            Err(Failure::Gateway(err)) => {
                session.set_keepalive(None);
                if session.response_written().is_some() {
                    ctx.error = Some(err);
                    return Error::e_explain(ErrorType::WriteError, "upstream failed after the response started");
                }
                if let Some(denial) = ctx.denial.take() {
                    // The body limit, found while streaming the request.
                    return self.send_denial(session, ctx, denial).await;
                }
                ctx.error = Some(err);
                ctx.record_error(err, "signed_route");
                self.write_gateway_response(session, ctx, err.status(), err.code(), err.message(), Vec::new())
                    .await
            }
            Err(Failure::Downstream) => Error::e_explain(ErrorType::ReadError, "client request failed"),
        }
    }

    async fn fetch_and_sign(&self, session: &mut Session, ctx: &mut Ctx) -> std::result::Result<(), Failure> {
        let Some(route) = ctx.route.clone() else {
            return Err(Failure::Gateway(GatewayError::Internal));
        };
        let pool = &route.pool;
        let mut up_req = session.req_header().clone();
        // The upstream speaks HTTP/1.1 with origin-form targets, whatever the client spoke.
        up_req.set_version(http::Version::HTTP_11);
        if let Some(pq) = up_req.uri.path_and_query().cloned() {
            if up_req.uri.authority().is_some() {
                if !up_req.headers.contains_key(http::header::HOST) {
                    let host = up_req
                        .uri
                        .authority()
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default();
                    up_req
                        .insert_header(http::header::HOST, host)
                        .map_err(|_| Failure::Gateway(GatewayError::BadRequest))?;
                }
                if let Ok(u) = pq.as_str().parse::<http::Uri>() {
                    up_req.set_uri(u);
                }
            }
        }
        self.prepare_upstream(session, &mut up_req, ctx)
            .map_err(|_| Failure::Gateway(GatewayError::BadRequest))?;
        // A body without a length (HTTP/2 DATA frames, or an HTTP/1.0 client) goes out chunked:
        // Pingora's HTTP/1 client frames a request with neither Content-Length nor
        // Transfer-Encoding as empty, and the body would be lost.
        if !session.is_body_empty()
            && !up_req.headers.contains_key(http::header::CONTENT_LENGTH)
            && !up_req.headers.contains_key(http::header::TRANSFER_ENCODING)
        {
            up_req
                .insert_header(http::header::TRANSFER_ENCODING, "chunked")
                .map_err(|_| Failure::Gateway(GatewayError::Internal))?;
        }
        // A held, signed response cannot be a protocol switch, so this hop does not offer one:
        // `Upgrade` and `Connection` are hop-by-hop (RFC 9110 7.6.1, 7.8) and an intermediary
        // that does not take the upgrade removes them; the upstream answers the plain request,
        // and that answer is signed. (The headers `Connection` named are already gone, as on
        // the proxy path.) Pingora's connector writes its own keep-alive `Connection`.
        up_req.remove_header(&http::header::UPGRADE);
        up_req.remove_header(&http::header::CONNECTION);

        let idempotent = up_req.method.is_idempotent();
        let (mut up, peer) = loop {
            let Some(idx) = pool.select(ctx.tried.as_slice(), mono_ms()) else {
                metrics::upstream_error(&pool.spec.name, "no_healthy_peer");
                return Err(Failure::Gateway(GatewayError::UpstreamUnavailable));
            };
            ctx.tried.push(idx);
            ctx.peer = Some(idx);
            ctx.upstream_begin();
            let peer = pool.http_peer(idx);
            match self.connector.get_http_session(&peer).await {
                Ok((s, _reused)) => {
                    pool.peers[idx].state.record_success();
                    break (s, peer);
                }
                Err(mut e) => {
                    e.as_up();
                    let (err, kind) = GatewayError::from_pingora(&e);
                    metrics::upstream_error(&pool.spec.name, kind);
                    pool.connect_failed(idx, mono_ms());
                    if !pool.may_retry(ctx.tried.count(), idempotent) {
                        return Err(Failure::Gateway(err));
                    }
                }
            }
        };
        let upstream_err = |mut e: Box<Error>| {
            // Errors of this connection are the upstream's, whatever the lower layer marked.
            e.as_up();
            let (err, kind) = GatewayError::from_pingora(&e);
            metrics::upstream_error(&pool.spec.name, kind);
            Failure::Gateway(if err == GatewayError::BadRequest {
                GatewayError::UpstreamUnavailable
            } else {
                err
            })
        };
        up.set_read_timeout(Some(pool.spec.read_timeout));
        up.set_write_timeout(Some(pool.spec.write_timeout));
        up.write_request_header(Box::new(up_req)).await.map_err(upstream_err)?;
        if !session.is_body_empty() {
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        let max = route.spec.validation.max_body;
                        if let Err(d) = crate::filters::validate::body_limit(&mut ctx.body_seen, chunk.len(), max) {
                            ctx.denial = Some(d);
                            return Err(Failure::Gateway(GatewayError::BadRequest));
                        }
                        let mut b = Some(chunk);
                        self.inspect_body_chunk(session, &mut b, false, ctx)
                            .map_err(|_| Failure::Gateway(GatewayError::BadRequest))?;
                        if let Some(b) = b {
                            up.write_request_body(b, false).await.map_err(upstream_err)?;
                        }
                    }
                    Ok(None) => {
                        let mut rest = None;
                        self.inspect_body_chunk(session, &mut rest, true, ctx)
                            .map_err(|_| Failure::Gateway(GatewayError::BadRequest))?;
                        if let Some(b) = rest {
                            up.write_request_body(b, false).await.map_err(upstream_err)?;
                        }
                        break;
                    }
                    Err(_) => return Err(Failure::Downstream),
                }
            }
        }
        up.finish_request_body().await.map_err(upstream_err)?;
        loop {
            up.read_response_header().await.map_err(upstream_err)?;
            let status = up.response_header().map(|r| r.status.as_u16()).unwrap_or(0);
            if !(100..200).contains(&status) || status == 101 {
                break;
            }
        }
        ctx.upstream_answered();
        let Some(mut resp) = up.response_header().cloned() else {
            return Err(Failure::Gateway(GatewayError::UpstreamUnavailable));
        };
        if resp.status.as_u16() == 101 {
            // Protocol upgrades cannot be held and signed; they belong on unsigned routes.
            return Err(Failure::Gateway(GatewayError::UpstreamUnavailable));
        }
        let status = resp.status.as_u16();
        let method = session.req_header().method.clone();
        let spec = &route.spec.signing;
        let media = crate::text::media_type_of(&resp.headers);

        let mut held = BytesMut::new();
        let mut unsigned_reason = None;
        if no_content(&method, status) {
            while up.read_response_body().await.map_err(upstream_err)?.is_some() {}
        } else if spec.stream_types.iter().any(|t| *t == media) {
            unsigned_reason = Some("stream");
        } else {
            while let Some(chunk) = up.read_response_body().await.map_err(upstream_err)? {
                if held.len() as u64 + chunk.len() as u64 > spec.max_hold {
                    held.extend_from_slice(&chunk);
                    unsigned_reason = Some("too-large");
                    break;
                }
                held.extend_from_slice(&chunk);
            }
        }

        ctx.finish_proxied_response(&mut resp)
            .map_err(|_| Failure::Gateway(GatewayError::Internal))?;

        if let Some(reason) = unsigned_reason {
            // Stream the rest unsigned, and say so.
            metrics::unsigned(if reason == "stream" { "stream" } else { "too_large" });
            resp.insert_header("Integrity-Status", format!("unsigned; reason={reason}"))
                .map_err(|_| Failure::Gateway(GatewayError::Internal))?;
            session
                .write_response_header(Box::new(resp), false)
                .await
                .map_err(|_| Failure::Downstream)?;
            if !held.is_empty() {
                session
                    .write_response_body(Some(held.freeze()), false)
                    .await
                    .map_err(|_| Failure::Downstream)?;
            }
            loop {
                match up.read_response_body().await {
                    Ok(Some(chunk)) => session
                        .write_response_body(Some(chunk), false)
                        .await
                        .map_err(|_| Failure::Downstream)?,
                    Ok(None) => break,
                    // Mid-stream upstream failure: close the stream rather than end it cleanly.
                    Err(e) => return Err(upstream_err(e)),
                }
            }
            session
                .write_response_body(None, true)
                .await
                .map_err(|_| Failure::Downstream)?;
            self.connector
                .release_http_session(up, &peer, peer.options.idle_timeout)
                .await;
            return Ok(());
        }

        // The whole response is here: release the upstream connection, then sign and send.
        if up.response_done() {
            self.connector
                .release_http_session(up, &peer, peer.options.idle_timeout)
                .await;
        }
        let body: Bytes = held.freeze();
        resp.remove_header(&http::header::TRANSFER_ENCODING);
        let content = !no_content(&method, status);
        if content {
            resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
                .map_err(|_| Failure::Gateway(GatewayError::Internal))?;
        }
        let ring = self.keyring.load();
        if let Err(reason) = sign_response(
            &mut resp,
            content.then_some(&body[..]),
            spec,
            &ring,
            session.req_header(),
            ctx.tls,
        ) {
            log::error!("request {}: response not signed ({reason})", ctx.request_id);
            metrics::unsigned("signing_failed");
            let _ = resp.insert_header("Integrity-Status", format!("unsigned; reason={reason}"));
        }
        let end = !content || body.is_empty();
        session
            .write_response_header(Box::new(resp), end)
            .await
            .map_err(|_| Failure::Downstream)?;
        if !end {
            session
                .write_response_body(Some(body), true)
                .await
                .map_err(|_| Failure::Downstream)?;
        }
        Ok(())
    }
}
