//! Building responses: JSON bodies, the generic error body, and the headers every response
//! carries. Error bodies hold a stable code, a client-safe message and the request id; never
//! internals (those go to the log, under the same request id).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

/// Every response's body: whole (JSON, metrics) or streamed (the change feed, `events`).
pub type Body = BoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `{"error": {"code", "message", "request_id"}}`.
pub fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<Body> {
    json(
        status,
        &json!({"error": {"code": code, "message": message, "request_id": request_id}}),
    )
}

/// A JSON body the database already rendered (passed through unparsed).
pub fn json_text(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn no_content() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// An error with a Retry-After of `secs` seconds (429, 503).
pub fn retry_after(
    status: StatusCode,
    code: &str,
    message: &str,
    secs: u64,
    request_id: &str,
) -> Response<Body> {
    let mut resp = error(status, code, message, request_id);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

/// 503 with a Retry-After, for a dependency that is down.
pub fn unavailable(code: &str, message: &str, request_id: &str) -> Response<Body> {
    retry_after(
        StatusCode::SERVICE_UNAVAILABLE,
        code,
        message,
        5,
        request_id,
    )
}

/// 429 with the seconds until the limit lets the client in again.
pub fn too_many(secs: u64, request_id: &str) -> Response<Body> {
    retry_after(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests, slow down",
        secs,
        request_id,
    )
}

/// The answer for a mapped database error.
pub fn mapped(m: crate::errors::Mapped, request_id: &str) -> Response<Body> {
    match m.retry_after {
        Some(secs) => retry_after(m.status, m.code, m.message, secs.into(), request_id),
        None => error(m.status, m.code, m.message, request_id),
    }
}

/// Headers on every response: no sniffing, no framing, nothing cached, no referrer, and a CSP
/// that allows nothing (the gateway serves JSON only).
/// With TLS, HSTS too (a year; browsers then refuse plain HTTP to this host).
pub fn finish(mut resp: Response<Body>, request_id: &str, tls: bool) -> Response<Body> {
    let h = resp.headers_mut();
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(REQUEST_ID_HEADER, v);
    }
    resp
}
