//! The answers the gateway writes itself instead of proxying: a filter's [`Denial`] and a
//! failure of the proxy path ([`crate::errors::GatewayError`], turned into a [`Denial`]). One
//! writer ([`Gateway::write_answer`]) gives each the JSON body, its extra headers, the route's
//! security headers and, where the route or policy signs, Content-Digest and signatures.

use pingora::prelude::*;
use pingora::proxy::Session;

use super::{headers, Ctx, Gateway};
use crate::errors::{Denial, GatewayError, Reason};
use crate::filters::security_headers;

impl Gateway {
    /// Writes a filter's denial and keeps it on the context for the metrics and the access log.
    pub(super) async fn send_denial(&self, session: &mut Session, ctx: &mut Ctx, denial: Denial) -> Result<()> {
        if denial.reason == Reason::Gateway(GatewayError::NoRoute) {
            ctx.error = Some(GatewayError::NoRoute);
        }
        drain_h2_body(session).await;
        let result = self.write_answer(session, ctx, &denial).await;
        ctx.denial = Some(denial);
        result
    }

    /// Every response the gateway makes itself goes through here: JSON body, the answer's own
    /// headers (Retry-After, Allow, WWW-Authenticate, rate-limit fields), security headers,
    /// and (on signing routes, or for unrouted requests when the policy signs by default)
    /// Content-Digest and signatures.
    pub(super) async fn write_answer(&self, session: &mut Session, ctx: &mut Ctx, answer: &Denial) -> Result<()> {
        let (mut header, body) = answer.response(ctx.request_id.as_str())?;
        let spec = ctx.security_headers();
        headers::edit_response(&mut header, answer.headers.len() + spec.max_added(), |h| {
            for (name, value) in &answer.headers {
                h.insert(name.clone(), value.clone());
            }
            security_headers::apply(h, spec, ctx.tls, security_headers::Removed::NONE)
        });
        self.sign_if_configured(session, ctx, &mut header, &body).await;
        self.write_whole(session, header, body).await
    }

    pub(super) async fn sign_if_configured(
        &self,
        session: &Session,
        ctx: &Ctx,
        header: &mut ResponseHeader,
        body: &[u8],
    ) {
        let spec = ctx
            .route
            .as_ref()
            .map(|r| &r.spec.signing)
            .unwrap_or(&ctx.policy.config.access.signing);
        if !spec.enabled {
            return;
        }
        if let Err(reason) = self.sign(header, Some(body), spec, session.req_header(), ctx.tls).await {
            crate::telemetry::metrics::unsigned("signing_failed");
            let _ = header.insert_header("Integrity-Status", format!("unsigned; reason={reason}"));
        }
    }

    pub(super) async fn write_whole(
        &self,
        session: &mut Session,
        header: ResponseHeader,
        body: bytes::Bytes,
    ) -> Result<()> {
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(header), head_only || body.is_empty())
            .await?;
        if !head_only && !body.is_empty() {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}

/// Before an HTTP/2 request is refused, reads (and drops) the rest of its body, up to 256 KiB
/// or one second: a refusal sent while the client is still sending makes Pingora reset the
/// stream, and clients (curl among them) then report a stream error instead of the answer.
/// Past the bound the refusal goes out anyway.
async fn drain_h2_body(session: &mut Session) {
    if session.req_header().version != http::Version::HTTP_2 || session.is_body_done() {
        return;
    }
    let drain = async {
        let mut read = 0usize;
        while read < 256 * 1024 {
            match session.read_request_body().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}
