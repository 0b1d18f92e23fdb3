//! Signed responses: hold the body, digest, sign, write. Nothing else of the proxy is here.
//!
//! A header whose value depends on the whole body (Content-Digest, a signature) cannot be added
//! through Pingora's per-task response filters: the response header is written before any body
//! filter runs. Signing routes run the same proxy path as every route, and the gateway's copy
//! of pingora-proxy (`vendor/pingora-proxy`, one hook added) lets [`Gateway::hold_signed`] hold
//! the response's tasks until the body's last one, then add Content-Digest and the signatures
//! and release them. Above `max_hold`, past the held-bytes budget, or for streaming media types,
//! the response is passed through unsigned with `Integrity-Status: unsigned; reason=...` and
//! counted, never silently.
//!
//! Earlier builds ran a signing route as a Pingora subrequest and relayed its response (a
//! second session, its head written and parsed again, two channels, a task); before that, as a
//! hand-written fetch through Pingora's connector, whose copy of the proxy logic drifted. The
//! README's benchmarks compare the three.
//!
//! HEAD, 204 and 304 carry no content, so their signature covers no `content-digest`.
//! The digest is over the bytes sent: an upstream that compresses (Content-Encoding) is
//! hashed compressed; the gateway itself does not compress.

use base64::Engine;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::HttpTask;
use pingora::proxy::Session;

use super::{forward, Ctx, Gateway};
use crate::config::signing::SigningSpec;
use crate::integrity::digest;
use crate::integrity::httpsig::{self, Component, Message, SigningKeyRef};
use crate::kms::keystore::KeyRing;
use crate::telemetry::metrics;

/// `scheme://authority/path?query` as the client addressed it.
pub fn target_uri(req: &RequestHeader, tls: bool) -> String {
    let authority = forward::request_authority(req);
    let raw = String::from_utf8_lossy(req.raw_path());
    let path: std::borrow::Cow<'_, str> = if raw.starts_with('/') || raw == "*" {
        raw
    } else {
        req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").into()
    };
    let scheme = if tls { "https://" } else { "http://" };
    let mut out = String::with_capacity(scheme.len() + authority.len() + path.len());
    out.push_str(scheme);
    out.push_str(&authority);
    out.push_str(&path);
    out
}

/// Adds Content-Digest (when there is content) to `resp` and returns the components the
/// gateway's signatures cover (see [`httpsig`]).
fn covered_components(
    resp: &mut ResponseHeader,
    body: Option<&[u8]>,
    spec: &SigningSpec,
) -> Result<&'static [Component], &'static str> {
    if let Some(b) = body {
        let value = digest::header_value(spec.digest, &spec.digest.digest(b));
        resp.insert_header(CONTENT_DIGEST.clone(), value)
            .map_err(|_| "header")?;
    }
    let typed = resp.headers.contains_key(http::header::CONTENT_TYPE);
    Ok(covered_list(body.is_some(), typed))
}

static CONTENT_DIGEST: http::HeaderName = http::HeaderName::from_static("content-digest");

/// The four lists a response's signature may cover, made once: with or without
/// `content-digest` (content) and `content-type`.
fn covered_list(digest: bool, typed: bool) -> &'static [Component] {
    static LISTS: std::sync::OnceLock<[Vec<Component>; 4]> = std::sync::OnceLock::new();
    let lists = LISTS.get_or_init(|| {
        let make = |digest: bool, typed: bool| {
            let mut covered = vec![Component::new("@status")];
            if digest {
                covered.push(Component::new("content-digest"));
            }
            if typed {
                covered.push(Component::new("content-type"));
            }
            covered.push(Component::new("x-request-id"));
            covered.push(Component::req("@method"));
            covered.push(Component::req("@target-uri"));
            covered
        };
        [
            make(false, false),
            make(false, true),
            make(true, false),
            make(true, true),
        ]
    });
    &lists[usize::from(digest) * 2 + usize::from(typed)]
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
        let (inputs, sigs) = if spec.inline_ecdsa {
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
                    ("created", httpsig::Param::Int(crate::clock::unix_now() as i64)),
                    ("keyid", httpsig::Param::Str(keyid.clone())),
                    ("alg", httpsig::Param::Str(alg.name().into())),
                    ("nonce", httpsig::Param::Str(new_nonce())),
                    ("tag", httpsig::Param::Str(BATCH_TAG.into())),
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
        // The batch label's members appended to any inline ones, each field built in one string.
        let mut input = inputs.join(", ");
        let mut sig = sigs.join(", ");
        input.reserve(BATCH_LABEL.len() + 3 + params.len());
        sig.reserve(BATCH_LABEL.len() + 5 + value.len().div_ceil(3) * 4);
        for field in [&mut input, &mut sig] {
            if !field.is_empty() {
                field.push_str(", ");
            }
            field.push_str(BATCH_LABEL);
            field.push('=');
        }
        input.push_str(&params);
        sig.push(':');
        B64.encode_string(value, &mut sig);
        sig.push(':');
        resp.insert_header("Signature-Input", input).map_err(|_| "header")?;
        resp.insert_header("Signature", sig).map_err(|_| "header")?;
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

/// A signing route's response on its way out ([`Gateway::hold_signed`]).
#[derive(Default)]
pub(super) struct Hold {
    /// The response header, held until the body's last task.
    resp: Option<Box<ResponseHeader>>,
    /// The body so far, as it came (one chunk for most responses: no copy then).
    chunks: Vec<Bytes>,
    len: u64,
    /// Its share of the gateway-wide held-bytes budget ([`crate::held`]).
    share: crate::held::Held,
    /// Passing through unsigned (a streaming type, over `max_hold` or the budget), or released:
    /// what is left of the response goes out as it comes.
    passing: bool,
}

impl Hold {
    fn take_body(&mut self) -> Bytes {
        let body = match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().expect("one chunk"),
            _ => {
                let mut all = BytesMut::with_capacity(self.len as usize);
                for c in self.chunks.drain(..) {
                    all.extend_from_slice(&c);
                }
                all.freeze()
            }
        };
        self.len = 0;
        body
    }
}

impl Gateway {
    /// Pingora's `response_tasks_filter` for signing routes: the response header and body are
    /// held until the body's last task, then the header gets Content-Digest and the signatures
    /// and both go out. Everything else of the response (the upstream attempt, retries, the
    /// response edit, error answers) is the proxy path's own, as on any route. Above
    /// `max_hold`, past the gateway-wide held-bytes budget, or for streaming media types, the
    /// response passes through unsigned with `Integrity-Status: unsigned; reason=...`, counted,
    /// never silently. An upstream that fails mid-body leaves nothing on the wire, so the client
    /// gets a clean error answer instead of a cut response.
    pub(super) async fn hold_signed(&self, session: &mut Session, tasks: &mut Vec<HttpTask>, ctx: &mut Ctx) {
        let Some(route) = ctx.route.clone().filter(|r| r.spec.signing.enabled) else {
            return;
        };
        let spec = &route.spec.signing;
        let hold = ctx.hold.get_or_insert_with(Default::default);
        if hold.passing {
            return;
        }
        let method = session.req_header().method.clone();
        let mut out = Vec::with_capacity(tasks.len() + 1);
        let mut release = false;
        for task in tasks.drain(..) {
            if hold.passing {
                out.push(task);
                continue;
            }
            match task {
                HttpTask::Header(h, end) => {
                    let status = h.status.as_u16();
                    if (100..200).contains(&status) && status != 101 {
                        // 100 Continue, 103 Early Hints: interim, not the signed response; they
                        // go out at once, as on any route (a client waiting for 100 Continue
                        // before it sends its body would otherwise wait for its own timeout).
                        out.push(HttpTask::Header(h, end));
                        continue;
                    }
                    if status == 101 {
                        // The upstream request offers no protocol switch (see prepare_upstream).
                        out.push(HttpTask::Failed(
                            Error::explain(ErrorType::InvalidHTTPHeader, "protocol switch on a signing route")
                                .into_up(),
                        ));
                        hold.passing = true;
                        continue;
                    }
                    let media = crate::text::media_type_of(&h.headers);
                    if !no_content(&method, status) && spec.stream_types.iter().any(|t| *t == media) {
                        metrics::unsigned("stream");
                        out.push(HttpTask::Header(mark_unsigned(h, "stream"), end));
                        hold.passing = true;
                        continue;
                    }
                    hold.resp = Some(h);
                    release |= end;
                }
                HttpTask::Body(data, end) => {
                    if let Some(chunk) = data.filter(|c| !c.is_empty()) {
                        // Over the gateway-wide budget the response streams unsigned, as one over
                        // max_hold does: other requests hold the memory.
                        let budget_spent = !hold.share.take(chunk.len() as u64);
                        hold.len += chunk.len() as u64;
                        hold.chunks.push(chunk);
                        if hold.len > spec.max_hold || budget_spent {
                            if let Some(h) = hold.resp.take() {
                                let (label, status) = if budget_spent {
                                    ("busy", "busy")
                                } else {
                                    ("too_large", "too-large")
                                };
                                metrics::unsigned(label);
                                if budget_spent {
                                    metrics::held_budget_exhausted("signing");
                                }
                                out.push(HttpTask::Header(mark_unsigned(h, status), false));
                                out.push(HttpTask::Body(Some(hold.take_body()), end));
                                hold.share.release();
                                hold.passing = true;
                                continue;
                            }
                        }
                    }
                    release |= end;
                }
                HttpTask::Done => release = true,
                HttpTask::Failed(e) => {
                    // Nothing of a held response is on the wire: Pingora's error path answers.
                    *hold = Hold {
                        passing: true,
                        ..Default::default()
                    };
                    out.push(HttpTask::Failed(e));
                }
                // Trailers are not carried by a held response.
                HttpTask::Trailer(_) => {}
                HttpTask::UpgradedBody(..) => {
                    out.push(HttpTask::Failed(
                        Error::explain(ErrorType::InvalidHTTPHeader, "upgraded body on a signing route").into_up(),
                    ));
                    hold.passing = true;
                }
            }
        }
        if release && !hold.passing {
            if let Some(resp) = hold.resp.take() {
                hold.passing = true;
                let body = hold.take_body();
                hold.share.release();
                self.release_signed(session, ctx, resp, body, spec, &mut out).await;
            }
        }
        *tasks = out;
    }

    /// Signs a whole response and queues it as a header and one body task.
    async fn release_signed(
        &self,
        session: &Session,
        ctx: &Ctx,
        mut resp: Box<ResponseHeader>,
        body: Bytes,
        spec: &SigningSpec,
        out: &mut Vec<HttpTask>,
    ) {
        let request_id = &ctx.request_id;
        let method = &session.req_header().method;
        let status = resp.status.as_u16();
        let content = !no_content(method, status);
        if content {
            resp.remove_header(&http::header::TRANSFER_ENCODING);
            if resp
                .insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
                .is_err()
            {
                log::error!("request {request_id}: Content-Length not set");
            }
        }
        if let Err(reason) = self
            .sign(
                &mut resp,
                content.then_some(&body[..]),
                spec,
                session.req_header(),
                ctx.tls,
            )
            .await
        {
            log::error!("request {request_id}: response not signed ({reason})");
            metrics::unsigned("signing_failed");
            let _ = resp.insert_header("Integrity-Status", format!("unsigned; reason={reason}"));
        }
        let end = !content || body.is_empty();
        out.push(HttpTask::Header(resp, end));
        if !end {
            out.push(HttpTask::Body(Some(body), true));
        }
    }
}

/// A response passed through unsigned says so and why.
fn mark_unsigned(mut h: Box<ResponseHeader>, reason: &str) -> Box<ResponseHeader> {
    let _ = h.insert_header("Integrity-Status", format!("unsigned; reason={reason}"));
    h
}
