//! Routing: from method and path to a handler. Handlers return a response; the request id,
//! security headers and access log are added by `server.rs` around every one of them.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::db;
use crate::response::{self, Body};
use crate::server::AppState;

pub async fn handle(state: &AppState, req: Request<Incoming>, request_id: &str) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => {
            response::json(StatusCode::OK, &json!({"status": "ok"}))
        }
        (&Method::GET | &Method::HEAD, "/readyz") => readyz(state, request_id).await,
        (_, "/healthz" | "/readyz") => response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
            request_id,
        ),
        _ => response::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route",
            request_id,
        ),
    }
}

async fn readyz(state: &AppState, request_id: &str) -> Response<Body> {
    match db::check_ready(&state.pool, state.config.db_timeout).await {
        Ok(()) => response::json(StatusCode::OK, &json!({"status": "ready"})),
        Err(why) => {
            tracing::warn!(request_id, reason = %why, "not ready");
            let (code, message) = match why {
                db::NotReady::Database(_) => ("database_unavailable", "database unavailable"),
                db::NotReady::MasterKey { .. } => {
                    ("master_key_unavailable", "master key not loaded")
                }
            };
            response::unavailable(code, message, request_id)
        }
    }
}
