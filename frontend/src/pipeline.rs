//! A request's way through the gateway, in one direction, PostgREST's shape: admission
//! (credentials never in the URL, rate limits), authentication (the gateway's own checks of
//! the token), planning (body and path to the route function's arguments), the query (one
//! call, one implicit transaction), and the response. Any stage may end the request with a
//! [`Failure`], answered in one place (`fail`). The request id, security headers and access log
//! are added around all of this by `server.rs`.

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::auth::Principal;
use crate::db;
use crate::errors::{self, DbError, Failure};
use crate::events;
use crate::metrics::ReplicaLabels;
use crate::plan::Param;
use crate::response::{self, Body};
use crate::router::{self, Call, Resolved, RouteSpec, Target};
use crate::state::AppState;

/// What the request carries besides its body.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub request_id: &'a str,
    pub peer: IpAddr,
}

/// Serves a resolved request.
pub async fn handle(ctx: &Ctx<'_>, req: Request<Incoming>, resolved: Resolved) -> Response<Body> {
    let rid = ctx.request_id;
    let (spec, param) = match resolved {
        Resolved::Found(spec, param) => (spec, param),
        Resolved::MethodNotAllowed(template) => {
            let mut resp = response::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
                rid,
            );
            if let Ok(allow) = header::HeaderValue::from_str(&router::allowed_methods(template)) {
                resp.headers_mut().insert(header::ALLOW, allow);
            }
            return resp;
        }
        Resolved::NotFound => {
            return response::error(StatusCode::NOT_FOUND, "not_found", "no such route", rid)
        }
        Resolved::BadPath => {
            return fail(
                ctx,
                Failure::bad_request("path parameter is not valid UTF-8"),
                None,
            )
        }
    };
    match &spec.target {
        Target::Health => response::json(StatusCode::OK, &json!({"status": "ok"})),
        Target::Ready => readyz(ctx).await,
        Target::OpenApi => response::json_text(StatusCode::OK, router::OPENAPI.to_owned()),
        Target::Metrics(call) | Target::Call(call) | Target::Events(call) => {
            let param = param.unwrap_or_default();
            match api(ctx, req, spec, call, &param).await {
                Ok(resp) => resp,
                Err((failure, token)) => fail(ctx, failure, token.as_deref()),
            }
        }
    }
}

async fn readyz(ctx: &Ctx<'_>) -> Response<Body> {
    let state = ctx.state;
    match db::check_ready(&state.pools.write, state.config.db_timeout).await {
        Ok(()) if state.config.replicas.is_empty() => {
            response::json(StatusCode::OK, &json!({"status": "ready"}))
        }
        Ok(()) => {
            let replicas: Vec<_> = state
                .pools
                .replicas
                .states()
                .iter()
                .map(|r| json!({"name": r.name, "usable": r.usable, "lag_bytes": r.lag_bytes}))
                .collect();
            response::json(
                StatusCode::OK,
                &json!({"status": "ready", "replicas": replicas}),
            )
        }
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

/// The stages of an API request. A failure carries the token when there was one, so that a
/// refusal by the database can be remembered for it.
async fn api(
    ctx: &Ctx<'_>,
    req: Request<Incoming>,
    spec: &RouteSpec,
    call: &Call,
    param: &str,
) -> Result<Response<Body>, (Failure, Option<String>)> {
    let state = ctx.state;
    // Admission.
    if credential_in_query(req.uri().query()) {
        return Err((
            Failure::refused(
                StatusCode::BAD_REQUEST,
                "credential_in_query",
                "credentials belong in the Authorization header, never in the URL",
            ),
            None,
        ));
    }
    let limited = |limit, secs| (Failure::Limited { limit, secs }, None);
    state
        .limits
        .check_ip(ctx.peer)
        .map_err(|secs| limited("client", secs))?;
    state
        .limits
        .check_throttled(ctx.peer)
        .map_err(|secs| limited("auth_failures", secs))?;
    // Authentication, as far as the gateway can tell.
    let token = bearer(req.headers())
        .map(str::to_owned)
        .ok_or((Failure::Unauthorized("missing_credential"), None))?;
    let principal = state
        .verifier
        .check(&token, &state.pools.write)
        .await
        .map_err(|reason| (Failure::Unauthorized(reason), None))?;
    state
        .limits
        .check_principal(&principal)
        .map_err(|secs| limited("credential", secs))?;
    let with_token = |failure: Failure| (failure, Some(token.clone()));
    // Planning.
    let resume = match spec.target {
        Target::Events(_) => Some(events::last_event_id(req.headers()).map_err(with_token)?),
        _ => None,
    };
    let body = read_body(ctx, req).await.map_err(with_token)?;
    let mut params = (call.plan)(param, &body).map_err(with_token)?;
    if let Some(resume) = resume {
        params.push(Param::from(resume));
    }
    // Reads that a replica can serve go on while the primary is down.
    if state.health.is_down() && !(call.read_only && state.pools.replicas.any_usable()) {
        // Failing fast: the probe loop (db::Health) brings the database back.
        state.metrics.db_unavailable.inc();
        return Err(with_token(Failure::Refused(errors::DATABASE_UNAVAILABLE)));
    }
    // The query.
    let (answer, served) = db::call(
        &state.pools,
        call.read_only,
        call.statement(params.len()),
        &token,
        &params,
    )
    .await
    .map_err(|e| with_token(e.into()))?;
    if let (Some(i), Target::Call(_)) = (served, &spec.target) {
        state
            .metrics
            .replica_reads
            .get_or_create(&ReplicaLabels { replica: i + 1 })
            .inc();
    }
    // The response.
    if !matches!(principal, Principal::Verified(_)) {
        state.verifier.accepted(&token, &answer.subject);
    }
    Ok(match (&spec.target, answer.body) {
        (Target::Metrics(_), _) => metrics_text(state),
        (Target::Events(_), Some(body)) => {
            events::response(state, token.clone(), &body).map_err(with_token)?
        }
        (_, Some(body)) => response::json_text(call.success, body),
        (_, None) => response::no_content(),
    })
}

/// Answers a failure, and counts, audits and logs it as its kind asks.
fn fail(ctx: &Ctx<'_>, failure: Failure, token: Option<&str>) -> Response<Body> {
    let state = ctx.state;
    let rid = ctx.request_id;
    match &failure {
        Failure::Refused(_) => {}
        Failure::Limited { limit, secs } => {
            state
                .metrics
                .rate_limited
                .get_or_create(&crate::metrics::LimitLabels { limit })
                .inc();
            return response::too_many(*secs, rid);
        }
        Failure::Unauthorized(reason) => return unauthorized(ctx, reason),
        Failure::Db(DbError::Busy) => {
            tracing::warn!(
                request_id = rid,
                "no database connection free within the wait"
            );
            state.metrics.db_busy.inc();
        }
        Failure::Db(DbError::Unavailable(why)) => {
            tracing::warn!(request_id = rid, error = %why, "database unavailable");
            state.metrics.db_unavailable.inc();
            state
                .health
                .mark_down(&state.pools.write, state.config.db_timeout);
        }
        Failure::Db(DbError::Sql {
            code,
            message,
            detail,
        }) => {
            if code.code() == "28P01" {
                let reason = crate::auth::reason_from_detail(detail.as_deref());
                if let Some(token) = token {
                    state.verifier.rejected(token, reason);
                }
                return unauthorized(ctx, reason);
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
        }
    }
    response::mapped(failure.mapped(), rid)
}

/// A failed authentication: counted for throttling, audited, answered 401.
fn unauthorized(ctx: &Ctx<'_>, reason: &'static str) -> Response<Body> {
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
    let mut resp = response::mapped(errors::UNAUTHORIZED, ctx.request_id);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

fn metrics_text(state: &AppState) -> Response<Body> {
    let mut resp = Response::new(response::full(state.metrics.render(&state.pools)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The body, within the configured limit (413 beyond it, before reading when the length is
/// announced), and only as JSON (415 otherwise). Empty when there is none.
async fn read_body(ctx: &Ctx<'_>, req: Request<Incoming>) -> Result<Bytes, Failure> {
    let limit = ctx.state.config.max_body_bytes;
    let too_large = || {
        Failure::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
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
        Err(_) => return Err(Failure::bad_request("could not read the request body")),
    };
    if !bytes.is_empty() && !is_json {
        return Err(Failure::refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request bodies must be application/json",
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
