//! Building responses: JSON bodies, the generic error body, and the headers every response
//! carries. Error bodies hold a stable code, a client-safe message and the request id; never
//! internals (those go to the log, under the same request id).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

pub type Body = Full<Bytes>;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
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

/// 503 with a Retry-After, for a dependency that is down.
pub fn unavailable(code: &str, message: &str, request_id: &str) -> Response<Body> {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, code, message, request_id);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

/// Headers on every response: no sniffing, no framing, nothing cached, no referrer, and a CSP
/// that allows nothing (the gateway serves JSON only).
pub fn finish(mut resp: Response<Body>, request_id: &str) -> Response<Body> {
    let h = resp.headers_mut();
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
