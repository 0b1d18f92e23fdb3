//! What every proxy listener serves itself under `/.well-known/`: the key directory (JWKS),
//! the anchor log's signed batches, and the log itself (checkpoint, tiles, proofs, keys).

use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::{headers, Ctx, Gateway, BATCH_PATH, LOG_PATH};
use crate::errors::Denial;
use crate::filters::security_headers;
use crate::integrity::anchor::ProofAnswer;
use crate::integrity::tlog;

impl Gateway {
    /// The JWKS of every active and retired signing key (in cluster mode, of every live
    /// instance), cacheable for five minutes (one in cluster mode).
    pub(super) async fn serve_key_directory(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let ring = self.keyring.load();
        let mut directory = crate::integrity::jwks::directory(&ring);
        let cluster = self.policy.load().cluster.clone();
        if let Some(c) = &cluster {
            // Cluster mode: every live instance's keys, so any instance's response verifies.
            directory = c.fleet.directory(directory);
        }
        let body = serde_json::to_vec_pretty(&directory).or_err(ErrorType::InternalError, "jwks")?;
        let doc = Document {
            content_type: "application/http-message-signatures-directory+json",
            // A fleet's directory changes as instances come and go.
            cache_control: if cluster.is_some() {
                "public, max-age=60"
            } else {
                "public, max-age=300"
            },
            signed: true,
        };
        self.write_document(session, ctx, body, doc).await
    }

    /// A logged batch as JSON: its TBS and root signatures (what a detached verifier needs),
    /// its log index and its inclusion proof in the log's current tree. 404 for an unknown id.
    pub(super) async fn serve_batch(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let id = ctx.canonical.path[BATCH_PATH.len()..].to_string();
        let entry = batch_id(&id).and_then(|b| self.anchor.entry(&b));
        let Some(e) = entry else {
            let d = Denial::new(404, "no_batch", "no batch with this id in the anchor log");
            return Box::pin(self.send_denial(session, ctx, d)).await;
        };
        let (size, root, path) = self.anchor.inclusion(e.index).unwrap_or_default();
        let body = serde_json::json!({
            "batch_id": id,
            "log_index": e.index,
            "tbs": b64.encode(&e.tbs),
            "signatures": e.sigs.iter().map(|s| serde_json::json!({
                "code": crate::integrity::batch::code(s.alg),
                "alg": s.alg.name(),
                "keyid": s.keyid,
                "sig": b64.encode(&s.sig),
            })).collect::<Vec<_>>(),
            "log": {"size": size, "root": b64.encode(root), "inclusion": path.iter().map(|h| b64.encode(h)).collect::<Vec<_>>()},
        });
        let body = serde_json::to_vec_pretty(&body).or_err(ErrorType::InternalError, "batch")?;
        let doc = Document {
            content_type: "application/json",
            // A batch never changes; the log's inclusion part grows, so only briefly cacheable.
            cache_control: "public, max-age=60",
            signed: false,
        };
        self.write_document(session, ctx, body, doc).await
    }

    /// The anchor log under [`LOG_PATH`] (§11.2): `checkpoint`, `tile/...`, `proof/{id}`, `keys`.
    pub(super) async fn serve_log(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let rest = ctx.canonical.path[LOG_PATH.len()..].to_string();
        const TEXT: &str = "text/plain; charset=utf-8";
        const BINARY: &str = "application/octet-stream";
        const IMMUTABLE: &str = "public, max-age=31536000, immutable";
        let answer: std::result::Result<(Vec<u8>, Document), Denial> = match rest.as_str() {
            "checkpoint" => match self.anchor.checkpoint() {
                Some(cp) => Ok((cp.note.clone().into_bytes(), Document::new(TEXT, "no-cache, max-age=1"))),
                None => Err(
                    Denial::new(404, "no_checkpoint", "the anchor log has no signed checkpoint yet")
                        .header(http::header::RETRY_AFTER, "1"),
                ),
            },
            "keys" => {
                let ring = self.keyring.load();
                let origin = self.anchor.origin().to_string();
                let lines: String = ring
                    .checkpoint_published
                    .iter()
                    .map(|k| {
                        let key = tlog::NoteKey {
                            name: origin.clone(),
                            alg: k.alg,
                            public: k.public.clone(),
                        };
                        format!("{}\n", key.vkey())
                    })
                    .collect();
                Ok((lines.into_bytes(), Document::new(TEXT, "public, max-age=300")))
            }
            r if r.starts_with("proof/") => {
                let id = hex::decode(&r["proof/".len()..])
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b).ok());
                match id.map(|id| self.anchor.proof(&id)) {
                    Some(ProofAnswer::Proof(text)) => {
                        crate::telemetry::metrics::log_proof("served");
                        Ok((text.into_bytes(), Document::new(TEXT, "public, max-age=60")))
                    }
                    Some(ProofAnswer::NotYet) => {
                        crate::telemetry::metrics::log_proof("not_yet");
                        Err(Denial::new(
                            404,
                            "not_checkpointed",
                            "the batch is newer than the latest checkpoint; retry",
                        )
                        .header(http::header::RETRY_AFTER, "1"))
                    }
                    _ => {
                        crate::telemetry::metrics::log_proof("unknown");
                        Err(Denial::new(404, "no_batch", "no batch with this id in the anchor log"))
                    }
                }
            }
            r => match r.strip_prefix("tile/").and_then(tlog::parse_tile_path) {
                Some((Some(level), n, w)) => self
                    .anchor
                    .tile(level, n, w)
                    .map(|b| (b, Document::new(BINARY, IMMUTABLE))),
                Some((None, n, w)) => self.anchor.entries(n, w).map(|b| (b, Document::new(BINARY, IMMUTABLE))),
                None => None,
            }
            .ok_or_else(|| Denial::new(404, "no_such_tile", "no such tile in the anchor log")),
        };
        match answer {
            Ok((body, doc)) => self.write_document(session, ctx, body, doc).await,
            Err(d) => Box::pin(self.send_denial(session, ctx, d)).await,
        }
    }

    /// A 200 with `body`: its type and caching, `X-Request-Id`, the unrouted security headers,
    /// and signatures when `doc.signed` and the policy signs.
    async fn write_document(&self, session: &mut Session, ctx: &mut Ctx, body: Vec<u8>, doc: Document) -> Result<()> {
        let mut header = ResponseHeader::build_no_case(200, Some(5))?;
        header.insert_header("Content-Type", doc.content_type)?;
        header.insert_header("Cache-Control", doc.cache_control)?;
        header.insert_header("Content-Length", body.len().to_string())?;
        header.insert_header("X-Request-Id", ctx.request_id.header())?;
        let spec = &ctx.policy.unrouted_headers;
        headers::edit_response(&mut header, spec.max_added(), |h| {
            security_headers::apply(h, spec, ctx.tls, security_headers::Removed::NONE)
        });
        if doc.signed {
            self.sign_if_configured(session, ctx, &mut header, &body).await;
        }
        self.write_whole(session, header, bytes::Bytes::from(body)).await
    }
}

/// A batch id as written in a well-known path (32 hex digits).
fn batch_id(hex_id: &str) -> Option<[u8; 16]> {
    hex::decode(hex_id).ok().and_then(|b| <[u8; 16]>::try_from(b).ok())
}

/// How a well-known document goes out.
struct Document {
    content_type: &'static str,
    cache_control: &'static str,
    signed: bool,
}

impl Document {
    /// An unsigned document (the log's parts carry their own proofs).
    fn new(content_type: &'static str, cache_control: &'static str) -> Document {
        Document {
            content_type,
            cache_control,
            signed: false,
        }
    }
}
