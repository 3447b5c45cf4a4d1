//! Routing and the v1 API: from method and path to one parameterized call of the SQL surface.
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
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio_postgres::types::ToSql;

use crate::auth::Principal;
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

/// JSON Schema's `integer` includes numbers such as `4.0`: accepted when integral and in range.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let n = f64::deserialize(d)?;
    if n.fract() == 0.0 && n >= f64::from(i32::MIN) && n <= f64::from(i32::MAX) {
        Ok(n as i32)
    } else {
        Err(serde::de::Error::custom("expected an integer"))
    }
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
    let prepared = match prepare(route, param, &body) {
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

/// A request refused before the database: status, code, message.
pub struct Refusal(StatusCode, &'static str, &'static str);

impl Refusal {
    fn into_response(self, rid: &str) -> Response<Body> {
        response::error(self.0, self.1, self.2, rid)
    }
}

fn bad(message: &'static str) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// Strict JSON: unknown fields and wrong types are refused. The message never quotes the body.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    if body.is_empty() {
        return Err(bad("a JSON body is required"));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            bad("the body does not match the request schema (see /openapi.json)")
        }
        _ => bad("the body is not valid JSON"),
    })
}

fn no_body(body: &[u8]) -> Result<(), Refusal> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(bad("this route takes no request body"))
    }
}

fn uuid_param(p: &str) -> Result<uuid::Uuid, Refusal> {
    // Only the canonical hyphenated form: one spelling per id.
    if p.len() != 36 {
        return Err(bad("the id must be a UUID"));
    }
    uuid::Uuid::try_parse(p).map_err(|_| bad("the id must be a UUID"))
}

/// Embedding values must be finite f32 (JSON numbers beyond f32 range would become infinite).
fn finite(v: &[f32]) -> Result<(), Refusal> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(bad("vector values must be finite 32-bit floats"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCollection {
    name: String,
    #[serde(deserialize_with = "integral")]
    dims: i32,
    #[serde(default = "default_metric")]
    metric: String,
    #[serde(default)]
    encrypt_embeddings: bool,
}

fn default_metric() -> String {
    "cosine".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDocument {
    content: String,
    embedding: Vec<f32>,
    #[serde(default = "empty_object")]
    metadata: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    json!({})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    vector: Vec<f32>,
    #[serde(default = "default_k", deserialize_with = "integral")]
    k: i32,
    #[serde(default)]
    filter: Option<serde_json::Value>,
}

fn default_k() -> i32 {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretValue {
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
    #[serde(default = "default_algorithm")]
    algorithm: String,
}

fn default_algorithm() -> String {
    "xchacha20-poly1305".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    name: String,
    scopes: Vec<String>,
}

/// How the statement's rows become the response.
enum Answer {
    /// One row, one text column holding the JSON body.
    Json(StatusCode),
    /// 204 (the statement returns nothing useful).
    NoContent,
    /// One boolean: true is 204, false is 404 (delete_document).
    Deleted,
    /// One boolean, has_scope('admin'): false is 403 (the caller renders the true case).
    AdminOnly,
    /// The key text create_api_key returns, shown this once, with its id.
    ApiKey { name: String, scopes: Vec<String> },
}

impl Answer {
    fn respond(self, rows: Vec<tokio_postgres::Row>, rid: &str) -> Response<Body> {
        let first = rows.first();
        match self {
            Self::Json(status) => match first.and_then(|r| r.try_get::<_, String>(1).ok()) {
                Some(text) => response::json_text(status, text),
                None => response::mapped(errors::NOT_FOUND, rid),
            },
            Self::NoContent => response::no_content(),
            Self::AdminOnly => match first.and_then(|r| r.try_get::<_, bool>(1).ok()) {
                Some(true) => response::no_content(),
                _ => response::mapped(errors::for_sqlstate("42501"), rid),
            },
            Self::Deleted => match first.and_then(|r| r.try_get::<_, bool>(1).ok()) {
                Some(true) => response::no_content(),
                _ => response::mapped(errors::NOT_FOUND, rid),
            },
            Self::ApiKey { name, scopes } => {
                let key: Option<String> = first.and_then(|r| r.try_get(1).ok());
                let id = key
                    .as_deref()
                    .and_then(|k| sealstore_core::auth::ApiKey::parse(k).ok())
                    .map(|k| uuid::Uuid::from_bytes(k.id).to_string());
                match (key, id) {
                    (Some(key), Some(id)) => response::json(
                        StatusCode::CREATED,
                        &json!({"id": id, "key": key, "name": name, "scopes": scopes}),
                    ),
                    _ => response::mapped(errors::for_sqlstate("XX000"), rid),
                }
            }
        }
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

struct Prepared {
    read_only: bool,
    sql: &'static str,
    params: Vec<Param>,
    answer: Answer,
}

fn write(sql: &'static str, params: Vec<Param>, answer: Answer) -> Prepared {
    Prepared {
        read_only: false,
        sql,
        params,
        answer,
    }
}

fn read(sql: &'static str, params: Vec<Param>, answer: Answer) -> Prepared {
    Prepared {
        read_only: true,
        sql,
        params,
        answer,
    }
}

/// Every route's statement starts by authenticating `$1` (the token) in a materialized CTE,
/// and makes the call's first argument depend on its result: PostgreSQL cannot run the call
/// before `authenticate` has set the context, and the whole request is one statement, one
/// implicit transaction, one round trip. Column 0 is the identity, column 1 the answer.
macro_rules! authed {
    ($($call:tt)*) => {
        concat!(
            "WITH auth AS MATERIALIZED (SELECT sealstore.authenticate($1) AS identity) ",
            "SELECT auth.identity, ",
            $($call)*
        )
    };
}

/// The first argument of each call, only once the credential is verified.
macro_rules! after_auth {
    ($param:tt) => {
        concat!("CASE WHEN auth.identity IS NOT NULL THEN ", $param, " END")
    };
}

/// The one statement of each route, with its bind parameters (from `$2`; `$1` is the token).
fn prepare(route: Route, param: String, body: &[u8]) -> Result<Prepared, Refusal> {
    Ok(match route {
        Route::CreateCollection => {
            let b: NewCollection = parse(body)?;
            write(
                authed!(concat!(
                    "json_build_object('id', sealstore.create_collection(",
                    after_auth!("$2::text"),
                    ", $3::int, $4::text, $5::bool), 'name', $2::text, 'dims', $3::int, ",
                    "'metric', $4::text, 'encrypt_embeddings', $5::bool)::text FROM auth"
                )),
                vec![
                    Box::new(b.name),
                    Box::new(b.dims),
                    Box::new(b.metric),
                    Box::new(b.encrypt_embeddings),
                ],
                Answer::Json(StatusCode::CREATED),
            )
        }
        Route::PutDocument => {
            let b: NewDocument = parse(body)?;
            finite(&b.embedding)?;
            write(
                authed!(concat!(
                    "json_build_object('id', sealstore.put_document(",
                    after_auth!("$2::text"),
                    ", $3::text, $4::real[]::sealstore.vector, $5::jsonb))::text FROM auth"
                )),
                vec![
                    Box::new(param),
                    Box::new(b.content),
                    Box::new(b.embedding),
                    Box::new(b.metadata),
                ],
                Answer::Json(StatusCode::CREATED),
            )
        }
        Route::Search => {
            let b: SearchRequest = parse(body)?;
            finite(&b.vector)?;
            read(
                authed!(concat!(
                    "(SELECT json_build_object('results', coalesce(json_agg(json_build_object(",
                    // JSON has no NaN: an undefined distance (cosine with a zero vector) is null.
                    "'id', s.id, 'distance', nullif(s.distance, 'NaN'), 'metadata', s.metadata) ",
                    "ORDER BY s.distance, s.id), '[]'::json))::text ",
                    "FROM sealstore.search(",
                    after_auth!("$2::text"),
                    ", $3::real[]::sealstore.vector, $4::int, $5::jsonb) s) FROM auth"
                )),
                vec![
                    Box::new(param),
                    Box::new(b.vector),
                    Box::new(b.k),
                    Box::new(b.filter),
                ],
                Answer::Json(StatusCode::OK),
            )
        }
        Route::GetDocument => {
            no_body(body)?;
            read(
                authed!(concat!(
                    "(SELECT json_build_object('id', d.id, 'collection', d.collection, ",
                    "'content', d.content, 'metadata', d.metadata)::text ",
                    "FROM sealstore.get_document(",
                    after_auth!("$2::uuid"),
                    ") d) FROM auth"
                )),
                vec![Box::new(uuid_param(&param)?)],
                Answer::Json(StatusCode::OK),
            )
        }
        Route::DeleteDocument => {
            no_body(body)?;
            write(
                authed!(concat!(
                    "sealstore.delete_document(",
                    after_auth!("$2::uuid"),
                    ") FROM auth"
                )),
                vec![Box::new(uuid_param(&param)?)],
                Answer::Deleted,
            )
        }
        Route::PutSecret => {
            let b: SecretValue = parse(body)?;
            write(
                authed!(concat!(
                    "sealstore.put_secret(",
                    after_auth!("$2::text"),
                    ", $3::text) FROM auth"
                )),
                vec![Box::new(param), Box::new(b.value)],
                Answer::NoContent,
            )
        }
        Route::GetSecret => {
            no_body(body)?;
            read(
                authed!(concat!(
                    "json_build_object('name', $2::text, 'value', sealstore.get_secret(",
                    after_auth!("$2::text"),
                    "))::text FROM auth"
                )),
                vec![Box::new(param)],
                Answer::Json(StatusCode::OK),
            )
        }
        Route::DeleteSecret => {
            no_body(body)?;
            write(
                authed!(concat!(
                    "sealstore.delete_secret(",
                    after_auth!("$2::text"),
                    ") FROM auth"
                )),
                vec![Box::new(param)],
                Answer::NoContent,
            )
        }
        Route::CreateTenant => {
            let b: NewTenant = parse(body)?;
            write(
                authed!(concat!(
                    "json_build_object('id', sealstore.create_tenant(",
                    after_auth!("$2::text"),
                    ", $3::text), 'name', $2::text, 'algorithm', $3::text)::text FROM auth"
                )),
                vec![Box::new(b.name), Box::new(b.algorithm)],
                Answer::Json(StatusCode::CREATED),
            )
        }
        Route::RotateKey => {
            no_body(body)?;
            write(
                authed!(concat!(
                    "json_build_object('version', sealstore.rotate_tenant_key(",
                    after_auth!("$2::uuid"),
                    "))::text FROM auth"
                )),
                vec![Box::new(uuid_param(&param)?)],
                Answer::Json(StatusCode::OK),
            )
        }
        Route::ShredTenant => {
            no_body(body)?;
            write(
                authed!(concat!(
                    "sealstore.shred_tenant(",
                    after_auth!("$2::uuid"),
                    ") FROM auth"
                )),
                vec![Box::new(uuid_param(&param)?)],
                Answer::NoContent,
            )
        }
        Route::CreateApiKey => {
            let b: NewApiKey = parse(body)?;
            let tenant = uuid_param(&param)?;
            write(
                authed!(concat!(
                    "sealstore.create_api_key(",
                    after_auth!("$2::uuid"),
                    ", $3::text, $4::text[]) FROM auth"
                )),
                vec![
                    Box::new(tenant),
                    Box::new(b.name.clone()),
                    Box::new(b.scopes.clone()),
                ],
                Answer::ApiKey {
                    name: b.name,
                    scopes: b.scopes,
                },
            )
        }
        Route::RevokeApiKey => {
            no_body(body)?;
            write(
                authed!(concat!(
                    "sealstore.revoke_api_key(",
                    after_auth!("$2::uuid"),
                    ") FROM auth"
                )),
                vec![Box::new(uuid_param(&param)?)],
                Answer::NoContent,
            )
        }
        Route::Metrics => read(
            authed!(concat!(
                "sealstore.has_scope(",
                after_auth!("'admin'"),
                ") FROM auth"
            )),
            Vec::new(),
            Answer::AdminOnly,
        ),
        // Served without the database, before this is reached.
        Route::Healthz | Route::Readyz | Route::OpenApi => {
            return Err(Refusal(StatusCode::NOT_FOUND, "not_found", "no such route"))
        }
    })
}

#[cfg(test)]
mod tests;
