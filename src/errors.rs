//! What a client sees when the gateway answers itself, in one vocabulary: a [`Denial`] (status,
//! a stable `error` code, a safe message, the [`Reason`] that metrics and the access log name,
//! and extra headers), written as a small JSON body with the request id and nothing internal
//! (no peer addresses, no Rust error text). Failures of the proxy path are [`GatewayError`]s,
//! classified from Pingora's errors ([`GatewayError::from_pingora`]) and turned into a
//! [`Denial`] with `From`; the proxy writes both through one function.

use std::borrow::Cow;

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

/// What went wrong on the way to the upstream: the `kind` label of
/// `quantumvault_upstream_errors_total` and the `kind` of a `/errors` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    ConnectTimeout,
    ReadTimeout,
    ConnectRefused,
    NoHealthyPeer,
    Downstream,
    Tls,
    ConnectError,
    Protocol,
    Other,
    Internal,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::ReadTimeout => "read_timeout",
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::NoHealthyPeer => "no_healthy_peer",
            FailureKind::Downstream => "downstream",
            FailureKind::Tls => "tls",
            FailureKind::ConnectError => "connect_error",
            FailureKind::Protocol => "protocol",
            FailureKind::Other => "other",
            FailureKind::Internal => "internal",
        }
    }
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
    pub fn from_pingora(e: &Error) -> (GatewayError, FailureKind) {
        use pingora::ErrorSource;
        match e.etype() {
            ErrorType::ConnectTimedout => (GatewayError::UpstreamTimeout, FailureKind::ConnectTimeout),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout if e.esource() == &ErrorSource::Upstream => {
                (GatewayError::UpstreamTimeout, FailureKind::ReadTimeout)
            }
            ErrorType::ConnectRefused => (GatewayError::UpstreamUnavailable, FailureKind::ConnectRefused),
            ErrorType::Custom(NO_PEER) => (GatewayError::UpstreamUnavailable, FailureKind::NoHealthyPeer),
            ErrorType::HTTPStatus(400) => (GatewayError::BadRequest, FailureKind::Downstream),
            _ => match e.esource() {
                ErrorSource::Upstream => {
                    let kind = match e.etype() {
                        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => {
                            FailureKind::Tls
                        }
                        ErrorType::ConnectionClosed
                        | ErrorType::ConnectError
                        | ErrorType::ConnectNoRoute
                        | ErrorType::SocketError
                        | ErrorType::BindError => FailureKind::ConnectError,
                        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => FailureKind::Protocol,
                        _ => FailureKind::Other,
                    };
                    (GatewayError::UpstreamUnavailable, kind)
                }
                ErrorSource::Downstream => (GatewayError::BadRequest, FailureKind::Downstream),
                _ => (GatewayError::Internal, FailureKind::Internal),
            },
        }
    }
}

/// The `Custom` error type for "no peer of the pool is available".
pub const NO_PEER: &str = "no_healthy_peer";

/// Which check refused a request: the `reason` label of `quantumvault_requests_denied_total`,
/// the denial counts of `/stats` and the access log's outcome. The label is the variant's
/// ([`Reason::label`]); nothing decides on its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A check with one fixed name (`ip_deny`, `uri_too_long`, `revoked_api_key`, ...).
    Check(&'static str),
    /// A rate-limit rule, by name: `rate_limit:{rule}`.
    RateLimit(String),
    /// An inspection rule in `block` mode, by id: `inspection:{id}`.
    Inspection(u32),
    /// A failure of the proxy path: its stable code.
    Gateway(GatewayError),
}

impl Reason {
    pub fn label(&self) -> Cow<'static, str> {
        match self {
            Reason::Check(name) => Cow::Borrowed(name),
            Reason::RateLimit(rule) => Cow::Owned(format!("rate_limit:{rule}")),
            Reason::Inspection(id) => Cow::Owned(format!("inspection:{id}")),
            Reason::Gateway(e) => Cow::Borrowed(e.code()),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// An answer the gateway writes itself instead of proxying: a filter's refusal or a failure
/// of the proxy path ([`GatewayError`], by `From`).
#[derive(Debug, Clone)]
pub struct Denial {
    pub status: u16,
    /// Stable code in the JSON body.
    pub code: &'static str,
    pub message: Cow<'static, str>,
    /// Which filter and rule decided: the `reason` label and the access log's outcome.
    pub reason: Reason,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Denial {
    /// A refusal whose reason is its code.
    pub fn new(status: u16, code: &'static str, message: &'static str) -> Denial {
        Denial {
            status,
            code,
            message: message.into(),
            reason: Reason::Check(code),
            headers: Vec::new(),
        }
    }
    pub fn reason(mut self, reason: Reason) -> Denial {
        self.reason = reason;
        self
    }
    /// The reason is a fixed check name.
    pub fn check(self, name: &'static str) -> Denial {
        self.reason(Reason::Check(name))
    }
    pub fn with_message(mut self, message: String) -> Denial {
        self.message = message.into();
        self
    }
    /// Adds a header to the denial. Invariant: callers pass visible ASCII (numbers, method
    /// lists, a fixed challenge), so the value is valid; one that is not is left out.
    pub fn header(mut self, name: http::HeaderName, value: impl Into<String>) -> Denial {
        match http::HeaderValue::try_from(value.into()) {
            Ok(value) => self.headers.push((name, value)),
            Err(_) => debug_assert!(false, "denial header {name} is not a valid value"),
        }
        self
    }

    /// The JSON body and headers of this answer (its extra headers are the caller's to add).
    pub fn response(&self, request_id: &str) -> Result<(ResponseHeader, Bytes)> {
        json_response(self.status, self.code, &self.message, request_id)
    }
}

impl From<GatewayError> for Denial {
    fn from(e: GatewayError) -> Denial {
        Denial {
            status: e.status(),
            code: e.code(),
            message: e.message().into(),
            reason: Reason::Gateway(e),
            headers: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// The JSON body and headers of a gateway response.
fn json_response(status: u16, code: &str, message: &str, request_id: &str) -> Result<(ResponseHeader, Bytes)> {
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
