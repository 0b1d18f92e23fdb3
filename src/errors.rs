//! Responses the gateway writes itself: a small JSON body with a stable `error` code and the
//! request id, never anything internal (no peer addresses, no Rust error text).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use serde::Serialize;

/// Stable error codes clients and dashboards can rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    NoRoute,
    UpstreamUnavailable,
    UpstreamTimeout,
    BadRequest,
    Internal,
}

impl GatewayError {
    pub fn code(self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no_route",
            GatewayError::UpstreamUnavailable => "upstream_unavailable",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::BadRequest => "bad_request",
            GatewayError::Internal => "internal_error",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            GatewayError::NoRoute => 404,
            GatewayError::UpstreamUnavailable => 502,
            GatewayError::UpstreamTimeout => 504,
            GatewayError::BadRequest => 400,
            GatewayError::Internal => 500,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no route matches this host and path",
            GatewayError::UpstreamUnavailable => "the upstream service is unavailable",
            GatewayError::UpstreamTimeout => "the upstream service did not answer in time",
            GatewayError::BadRequest => "the request is malformed",
            GatewayError::Internal => "internal error",
        }
    }

    /// Classifies a Pingora error: which answer the client gets, and the metric kind.
    pub fn from_pingora(e: &Error) -> (GatewayError, &'static str) {
        use pingora::ErrorSource;
        match e.etype() {
            ErrorType::ConnectTimedout => (GatewayError::UpstreamTimeout, "connect_timeout"),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout if e.esource() == &ErrorSource::Upstream => {
                (GatewayError::UpstreamTimeout, "read_timeout")
            }
            ErrorType::ConnectRefused => (GatewayError::UpstreamUnavailable, "connect_refused"),
            ErrorType::Custom(NO_PEER) => (GatewayError::UpstreamUnavailable, "no_healthy_peer"),
            ErrorType::HTTPStatus(400) => (GatewayError::BadRequest, "downstream"),
            _ => match e.esource() {
                ErrorSource::Upstream => {
                    let kind = match e.etype() {
                        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => "tls",
                        ErrorType::ConnectionClosed
                        | ErrorType::ConnectError
                        | ErrorType::ConnectNoRoute
                        | ErrorType::SocketError
                        | ErrorType::BindError => "connect_error",
                        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => "protocol",
                        _ => "other",
                    };
                    (GatewayError::UpstreamUnavailable, kind)
                }
                ErrorSource::Downstream => (GatewayError::BadRequest, "downstream"),
                _ => (GatewayError::Internal, "internal"),
            },
        }
    }
}

/// The `Custom` error type for "no peer of the pool is available".
pub const NO_PEER: &str = "no_healthy_peer";

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// The JSON body and headers of a gateway response.
pub fn json_response(status: u16, code: &str, message: &str, request_id: &str) -> Result<(ResponseHeader, Bytes)> {
    let body = serde_json::to_vec(&Body {
        error: code,
        message,
        request_id,
    })
    .or_err(ErrorType::InternalError, "serialising error body")?;
    // No case map: the gateway's own names go out in canonical case like every other header.
    let mut header = ResponseHeader::build_no_case(status, Some(4))?;
    header.insert_header("Content-Type", "application/json")?;
    header.insert_header("Content-Length", body.len().to_string())?;
    header.insert_header("Cache-Control", "no-store")?;
    header.insert_header("X-Request-Id", request_id)?;
    Ok((header, Bytes::from(body)))
}
