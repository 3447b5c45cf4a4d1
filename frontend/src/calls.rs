//! The v1 API's calls: for each route, the request body it accepts (strict JSON), the one
//! statement it runs with its bind parameters, and how the statement's rows become the response.
//! No business logic: the statement does the work and renders the answer's JSON itself.

use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_postgres::types::ToSql;

use crate::errors;
use crate::response::{self, Body};
use crate::routes::Route;

/// JSON Schema's `integer` includes numbers such as `4.0`: accepted when integral and in range.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let n = f64::deserialize(d)?;
    if n.fract() == 0.0 && n >= f64::from(i32::MIN) && n <= f64::from(i32::MAX) {
        Ok(n as i32)
    } else {
        Err(serde::de::Error::custom("expected an integer"))
    }
}

/// A request refused before the database: status, code, message.
pub struct Refusal(pub StatusCode, pub &'static str, pub &'static str);

impl Refusal {
    pub fn into_response(self, rid: &str) -> Response<Body> {
        response::error(self.0, self.1, self.2, rid)
    }
}

fn bad(message: &'static str) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// How deeply a body's arrays and objects may nest. Metadata and filters pass through to
/// PostgreSQL unparsed, and a body nested 100,000 levels deep would exhaust its stack.
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether the JSON text nests arrays and objects deeper than `limit` (brackets inside
/// strings do not count). Only the nesting is read; validity is the parser's business.
fn nested_deeper_than(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Strict JSON: unknown fields and wrong types are refused. The message never quotes the body.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    if body.is_empty() {
        return Err(bad("a JSON body is required"));
    }
    if nested_deeper_than(body, MAX_JSON_DEPTH) {
        return Err(bad(
            "the body nests arrays and objects more than 64 levels deep",
        ));
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
    // Only the canonical form (hyphenated, lower case): one spelling per id.
    sealstore_core::auth::parse_uuid(p)
        .map(uuid::Uuid::from_bytes)
        .ok_or_else(|| bad("the id must be a UUID"))
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
    /// Passed to PostgreSQL as written: jsonb keeps numbers exactly, serde_json's f64 would not.
    /// Anything but an object (null included) is the extension's 22023, a 400.
    #[serde(default = "empty_object")]
    metadata: Box<RawValue>,
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("valid JSON")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    vector: Vec<f32>,
    #[serde(default = "default_k", deserialize_with = "integral")]
    k: i32,
    #[serde(default)]
    filter: Option<Box<RawValue>>,
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
pub enum Answer {
    /// One row, one text column holding the JSON body.
    Json(StatusCode),
    /// 204 (the statement returns nothing useful).
    NoContent,
    /// One boolean: true is 204, false is 404 (delete_document).
    Deleted,
    /// One boolean, has_scope('admin'), for a credential that names no tenant: anything else
    /// is 403 (the caller renders the allowed case).
    AdminOnly,
    /// The key text create_api_key returns, shown this once, with its id.
    ApiKey { name: String, scopes: Vec<String> },
}

impl Answer {
    pub fn respond(self, rows: Vec<tokio_postgres::Row>, rid: &str) -> Response<Body> {
        let first = rows.first();
        match self {
            Self::Json(status) => match first.and_then(|r| r.try_get::<_, String>(1).ok()) {
                Some(text) => response::json_text(status, text),
                None => response::mapped(errors::NOT_FOUND, rid),
            },
            Self::NoContent => response::no_content(),
            Self::AdminOnly => {
                // The counters cover every tenant: a tenant's own admin credential may not
                // read them, only one that names no tenant.
                let global = first
                    .and_then(|r| r.try_get::<_, serde_json::Value>(0).ok())
                    .is_some_and(|identity| identity.get("tenant").is_some_and(|t| t.is_null()));
                match first.and_then(|r| r.try_get::<_, bool>(1).ok()) {
                    Some(true) if global => response::no_content(),
                    _ => response::mapped(errors::for_sqlstate("42501"), rid),
                }
            }
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

pub type Param = Box<dyn ToSql + Sync + Send>;

pub struct Prepared {
    pub read_only: bool,
    pub sql: &'static str,
    pub params: Vec<Param>,
    pub answer: Answer,
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

/// A route whose only input is the id in its path (no body).
fn by_id(
    sql: &'static str,
    param: &str,
    body: &[u8],
    read_only: bool,
    answer: Answer,
) -> Result<Prepared, Refusal> {
    no_body(body)?;
    Ok(Prepared {
        read_only,
        sql,
        params: vec![Box::new(uuid_param(param)?)],
        answer,
    })
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
pub fn prepare(route: Route, param: String, body: &[u8]) -> Result<Prepared, Refusal> {
    Ok(match route {
        Route::CreateCollection => {
            let b: NewCollection = parse(body)?;
            write(
                authed!(concat!(
                    "pg_catalog.json_build_object('id', sealstore.create_collection(",
                    after_auth!("$2::pg_catalog.text"),
                    ", $3::pg_catalog.int4, $4::pg_catalog.text, $5::pg_catalog.bool), 'name', $2::pg_catalog.text, 'dims', $3::pg_catalog.int4, ",
                    "'metric', $4::pg_catalog.text, 'encrypt_embeddings', $5::pg_catalog.bool)::pg_catalog.text FROM auth"
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
                    "pg_catalog.json_build_object('id', sealstore.put_document(",
                    after_auth!("$2::pg_catalog.text"),
                    ", $3::pg_catalog.text, $4::pg_catalog.float4[]::sealstore.vector, $5::pg_catalog.text::pg_catalog.jsonb))::pg_catalog.text FROM auth"
                )),
                vec![
                    Box::new(param),
                    Box::new(b.content),
                    Box::new(b.embedding),
                    Box::new(b.metadata.get().to_owned()),
                ],
                Answer::Json(StatusCode::CREATED),
            )
        }
        Route::Search => {
            let b: SearchRequest = parse(body)?;
            finite(&b.vector)?;
            read(
                authed!(concat!(
                    "(SELECT pg_catalog.json_build_object('results', COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(",
                    // JSON has no NaN: an undefined distance (cosine with a zero vector) is null.
                    "'id', s.id, 'distance', CASE WHEN s.distance OPERATOR(pg_catalog.=) 'NaN'::pg_catalog.float4 THEN NULL ELSE s.distance END, 'metadata', s.metadata) ",
                    "ORDER BY s.distance, s.id), '[]'::pg_catalog.json))::pg_catalog.text ",
                    "FROM sealstore.search(",
                    after_auth!("$2::pg_catalog.text"),
                    ", $3::pg_catalog.float4[]::sealstore.vector, $4::pg_catalog.int4, $5::pg_catalog.text::pg_catalog.jsonb) s) FROM auth"
                )),
                vec![
                    Box::new(param),
                    Box::new(b.vector),
                    Box::new(b.k),
                    Box::new(b.filter.map(|f| f.get().to_owned())),
                ],
                Answer::Json(StatusCode::OK),
            )
        }
        Route::GetDocument => by_id(
            authed!(concat!(
                "(SELECT pg_catalog.json_build_object('id', d.id, 'collection', d.collection, ",
                "'content', d.content, 'metadata', d.metadata)::pg_catalog.text ",
                "FROM sealstore.get_document(",
                after_auth!("$2::pg_catalog.uuid"),
                ") d) FROM auth"
            )),
            &param,
            body,
            true,
            Answer::Json(StatusCode::OK),
        )?,
        Route::DeleteDocument => by_id(
            authed!(concat!(
                "sealstore.delete_document(",
                after_auth!("$2::pg_catalog.uuid"),
                ") FROM auth"
            )),
            &param,
            body,
            false,
            Answer::Deleted,
        )?,
        Route::PutSecret => {
            let b: SecretValue = parse(body)?;
            write(
                authed!(concat!(
                    "sealstore.put_secret(",
                    after_auth!("$2::pg_catalog.text"),
                    ", $3::pg_catalog.text) FROM auth"
                )),
                vec![Box::new(param), Box::new(b.value)],
                Answer::NoContent,
            )
        }
        Route::GetSecret => {
            no_body(body)?;
            read(
                authed!(concat!(
                    "pg_catalog.json_build_object('name', $2::pg_catalog.text, 'value', sealstore.get_secret(",
                    after_auth!("$2::pg_catalog.text"),
                    "))::pg_catalog.text FROM auth"
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
                    after_auth!("$2::pg_catalog.text"),
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
                    "pg_catalog.json_build_object('id', sealstore.create_tenant(",
                    after_auth!("$2::pg_catalog.text"),
                    ", $3::pg_catalog.text), 'name', $2::pg_catalog.text, 'algorithm', $3::pg_catalog.text)::pg_catalog.text FROM auth"
                )),
                vec![Box::new(b.name), Box::new(b.algorithm)],
                Answer::Json(StatusCode::CREATED),
            )
        }
        Route::RotateKey => by_id(
            authed!(concat!(
                "pg_catalog.json_build_object('version', sealstore.rotate_tenant_key(",
                after_auth!("$2::pg_catalog.uuid"),
                "))::pg_catalog.text FROM auth"
            )),
            &param,
            body,
            false,
            Answer::Json(StatusCode::OK),
        )?,
        Route::ShredTenant => by_id(
            authed!(concat!(
                "sealstore.shred_tenant(",
                after_auth!("$2::pg_catalog.uuid"),
                ") FROM auth"
            )),
            &param,
            body,
            false,
            Answer::NoContent,
        )?,
        Route::CreateApiKey => {
            let b: NewApiKey = parse(body)?;
            let tenant = uuid_param(&param)?;
            write(
                authed!(concat!(
                    "sealstore.create_api_key(",
                    after_auth!("$2::pg_catalog.uuid"),
                    ", $3::pg_catalog.text, $4::pg_catalog.text[]) FROM auth"
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
        Route::RevokeApiKey => by_id(
            authed!(concat!(
                "sealstore.revoke_api_key(",
                after_auth!("$2::pg_catalog.uuid"),
                ") FROM auth"
            )),
            &param,
            body,
            false,
            Answer::NoContent,
        )?,
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
