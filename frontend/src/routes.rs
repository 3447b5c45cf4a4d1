//! Routing and the request pipeline of the v1 API: from method and path to a route, then
//! query-string, rate-limit and token checks, the body, and one call (`calls.rs`) of the SQL
//! surface.
//!
//! No business logic lives here: a handler checks the request's shape, picks the statement
//! and its bind parameters, and passes the database's answer on. Response bodies are rendered
//! as JSON by the statement itself and forwarded unparsed. The request id, security headers
//! and access log are added by `server.rs` around every handler.

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio_postgres::types::ToSql;

use crate::auth::Principal;
use crate::calls;
use crate::db::{self, Call, DbError};
use crate::errors;
use crate::response::{self, Body};
use crate::server::AppState;

/// Every route: method, path template, handler. The OpenAPI document is checked against this
/// table by a test, so the two cannot drift apart.
pub const ROUTES: &[(&str, &str, Route)] = &[
    ("GET", "/healthz", Route::Healthz),
    ("GET", "/readyz", Route::Readyz),
    ("GET", "/openapi.json", Route::OpenApi),
    ("GET", "/metrics", Route::Metrics),
    ("POST", "/v1/collections", Route::CreateCollection),
    (
        "POST",
        "/v1/collections/{name}/documents",
        Route::PutDocument,
    ),
    ("POST", "/v1/collections/{name}/search", Route::Search),
    ("GET", "/v1/documents/{id}", Route::GetDocument),
    ("DELETE", "/v1/documents/{id}", Route::DeleteDocument),
    ("PUT", "/v1/secrets/{name}", Route::PutSecret),
    ("GET", "/v1/secrets/{name}", Route::GetSecret),
    ("DELETE", "/v1/secrets/{name}", Route::DeleteSecret),
    ("POST", "/v1/tenants", Route::CreateTenant),
    ("POST", "/v1/tenants/{id}/rotate-key", Route::RotateKey),
    ("DELETE", "/v1/tenants/{id}", Route::ShredTenant),
    ("POST", "/v1/tenants/{id}/api-keys", Route::CreateApiKey),
    ("DELETE", "/v1/api-keys/{id}", Route::RevokeApiKey),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    OpenApi,
    Metrics,
    CreateCollection,
    PutDocument,
    Search,
    GetDocument,
    DeleteDocument,
    PutSecret,
    GetSecret,
    DeleteSecret,
    CreateTenant,
    RotateKey,
    ShredTenant,
    CreateApiKey,
    RevokeApiKey,
}

pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Route, its template (the log and metrics label) and the decoded path parameter.
    Found(Route, &'static str, Option<String>),
    MethodNotAllowed(&'static str),
    NotFound,
    /// A path parameter that is not valid percent-encoded UTF-8.
    BadPath,
}

/// Matches a path against the templates; `{x}` takes one non-empty segment.
pub fn resolve(method: &Method, path: &str) -> Resolved {
    let segments: Vec<&str> = path.split('/').collect();
    let mut template_matched = None;
    for (m, template, route) in ROUTES {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut param = None;
        let fits = parts.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                param = Some(*s);
                !s.is_empty()
            } else {
                p == s
            }
        });
        if !fits {
            continue;
        }
        let head_ok = method == Method::HEAD && *m == "GET";
        if method.as_str() != *m && !head_ok {
            template_matched = Some(*template);
            continue;
        }
        let param = match param {
            Some(raw) => match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Ok(p) => Some(p.into_owned()),
                Err(_) => return Resolved::BadPath,
            },
            None => None,
        };
        return Resolved::Found(*route, template, param);
    }
    template_matched.map_or(Resolved::NotFound, Resolved::MethodNotAllowed)
}

/// The methods a path template answers (the `Allow` header of a 405), GET implying HEAD.
pub fn allowed_methods(template: &str) -> String {
    let mut methods: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, t, _)| *t == template)
        .map(|(m, _, _)| *m)
        .collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.join(", ")
}

/// What the request carries besides the body.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub request_id: &'a str,
    pub peer: IpAddr,
}

pub async fn handle(ctx: &Ctx<'_>, req: Request<Incoming>, resolved: Resolved) -> Response<Body> {
    let rid = ctx.request_id;
    let (route, param) = match resolved {
        Resolved::Found(route, _, param) => (route, param),
        Resolved::MethodNotAllowed(template) => {
            let mut resp = response::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
                rid,
            );
            if let Ok(allow) = hyper::header::HeaderValue::from_str(&allowed_methods(template)) {
                resp.headers_mut().insert(header::ALLOW, allow);
            }
            return resp;
        }
        Resolved::NotFound => {
            return response::error(StatusCode::NOT_FOUND, "not_found", "no such route", rid)
        }
        Resolved::BadPath => {
            return response::error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "path parameter is not valid UTF-8",
                rid,
            )
        }
    };
    match route {
        Route::Healthz => response::json(StatusCode::OK, &json!({"status": "ok"})),
        Route::Readyz => readyz(ctx).await,
        Route::OpenApi => response::json_text(StatusCode::OK, OPENAPI.to_owned()),
        _ => api(ctx, req, route, param.unwrap_or_default()).await,
    }
}

async fn readyz(ctx: &Ctx<'_>) -> Response<Body> {
    let state = ctx.state;
    match db::check_ready(&state.pools.write, state.config.db_timeout).await {
        Ok(()) => response::json(StatusCode::OK, &json!({"status": "ready"})),
        Err(why) => {
            tracing::warn!(request_id = ctx.request_id, reason = %why, "not ready");
            let (code, message) = match why {
                db::NotReady::Database(_) => ("database_unavailable", "database unavailable"),
                db::NotReady::MasterKey { .. } => {
                    ("master_key_unavailable", "master key not loaded")
                }
            };
            response::unavailable(code, message, ctx.request_id)
        }
    }
}

/// Query parameters that would carry a credential: refused, so that tokens never end up in
/// access logs, proxies' logs or browser history.
const CREDENTIAL_PARAMS: &[&str] = &["access_token", "token", "api_key", "apikey", "key", "jwt"];

fn credential_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            CREDENTIAL_PARAMS.contains(&name.to_ascii_lowercase().as_str())
        })
    })
}

/// The bearer token, if the Authorization header holds exactly one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

fn unauthorized(rid: &str) -> Response<Body> {
    let mut resp = response::mapped(errors::UNAUTHORIZED, rid);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer"),
    );
    resp
}

/// A failed authentication: counted for throttling, audited, answered 401.
fn auth_failed(ctx: &Ctx<'_>, reason: &'static str) -> Response<Body> {
    let state = ctx.state;
    state
        .metrics
        .auth_failures
        .get_or_create(&crate::metrics::ReasonLabels { reason })
        .inc();
    state.audit.auth_failure(ctx.peer, reason);
    if state.limits.record_failure(ctx.peer) {
        tracing::warn!(request_id = ctx.request_id, peer = %ctx.peer, "client throttled after repeated authentication failures");
    }
    tracing::info!(request_id = ctx.request_id, reason, "authentication failed");
    unauthorized(ctx.request_id)
}

fn limited(ctx: &Ctx<'_>, limit: &'static str, secs: u64) -> Response<Body> {
    ctx.state
        .metrics
        .rate_limited
        .get_or_create(&crate::metrics::LimitLabels { limit })
        .inc();
    response::too_many(secs, ctx.request_id)
}

async fn api(ctx: &Ctx<'_>, req: Request<Incoming>, route: Route, param: String) -> Response<Body> {
    let state = ctx.state;
    let rid = ctx.request_id;
    if credential_in_query(req.uri().query()) {
        return response::error(
            StatusCode::BAD_REQUEST,
            "credential_in_query",
            "credentials belong in the Authorization header, never in the URL",
            rid,
        );
    }
    if let Err(secs) = state.limits.check_ip(ctx.peer) {
        return limited(ctx, "client", secs);
    }
    if let Err(secs) = state.limits.check_throttled(ctx.peer) {
        return limited(ctx, "auth_failures", secs);
    }
    let Some(token) = bearer(req.headers()).map(str::to_owned) else {
        return auth_failed(ctx, "missing_credential");
    };
    let principal = match state.verifier.check(&token, &state.pools.write).await {
        Ok(p) => p,
        Err(reason) => return auth_failed(ctx, reason),
    };
    if let Err(secs) = state.limits.check_principal(&principal) {
        return limited(ctx, "credential", secs);
    }
    let body = match read_body(ctx, req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let prepared = match calls::prepare(route, param, &body) {
        Ok(p) => p,
        Err(resp) => return resp.into_response(rid),
    };
    if state.health.is_down() {
        state.metrics.db_unavailable.inc();
        return response::mapped(errors::DATABASE_UNAVAILABLE, rid);
    }
    let params: Vec<&(dyn ToSql + Sync)> = prepared
        .params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let call = Call {
        read_only: prepared.read_only,
        sql: prepared.sql,
        params: &params,
    };
    match db::call(&state.pools, &token, call).await {
        Ok(answer) => {
            if !matches!(principal, Principal::Verified(_)) {
                if let Some(subject) = answer.identity.get("subject").and_then(|s| s.as_str()) {
                    state.verifier.accepted(&token, subject);
                }
            }
            let resp = prepared.answer.respond(answer.rows, rid);
            if route == Route::Metrics && resp.status() == StatusCode::NO_CONTENT {
                return metrics_text(state);
            }
            resp
        }
        Err(DbError::Busy) => {
            tracing::warn!(
                request_id = rid,
                "no database connection free within the wait"
            );
            state.metrics.db_busy.inc();
            response::mapped(errors::OVERLOADED, rid)
        }
        Err(DbError::Unavailable(why)) => {
            tracing::warn!(request_id = rid, error = %why, "database unavailable");
            state.metrics.db_unavailable.inc();
            state
                .health
                .mark_down(&state.pools.write, state.config.db_timeout);
            response::mapped(errors::DATABASE_UNAVAILABLE, rid)
        }
        Err(DbError::Sql {
            code,
            message,
            detail,
        }) => {
            if code.code() == "28P01" {
                let reason = crate::auth::reason_from_detail(detail.as_deref());
                state.verifier.rejected(&token, reason);
                return auth_failed(ctx, reason);
            }
            let mapped = errors::for_sqlstate(code.code());
            if mapped.status.is_server_error() {
                tracing::error!(
                    request_id = rid,
                    sqlstate = code.code(),
                    message,
                    "database error"
                );
            } else {
                tracing::info!(
                    request_id = rid,
                    sqlstate = code.code(),
                    message,
                    "request refused by the database"
                );
            }
            response::mapped(mapped, rid)
        }
    }
}

fn metrics_text(state: &AppState) -> Response<Body> {
    let mut resp = Response::new(http_body_util::Full::new(Bytes::from(
        state.metrics.render(&state.pools),
    )));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The body, within the configured limit (413 beyond it, before reading when the length is
/// announced), and only as JSON (415 otherwise). Empty when there is none.
async fn read_body(ctx: &Ctx<'_>, req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    let rid = ctx.request_id;
    let limit = ctx.state.config.max_body_bytes;
    let too_large = || {
        response::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
            rid,
        )
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|v| v == "application/json");
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(_) => {
            return Err(response::error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "could not read the request body",
                rid,
            ))
        }
    };
    if !bytes.is_empty() && !is_json {
        return Err(response::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request bodies must be application/json",
            rid,
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
