//! Planning a call: each route's path parameter and strict JSON body become the arguments of
//! its route function, after the token. Nothing here decides anything the database decides;
//! it refuses what can never be a valid call (400) before it costs a transaction.

use bytes::BufMut;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::errors::Failure;

/// One argument of a route function, with the type it is sent as. The type matters only for
/// unnamed statements (`SEALSTORE_DB_TRANSACTION_POOLING`, see `db`), which name their
/// parameters' types up front; a prepared statement learns them from the server.
pub struct Param {
    value: Box<dyn ToSql + Sync + Send>,
    ty: Type,
}

impl Param {
    fn new(value: impl ToSql + Sync + Send + 'static, ty: Type) -> Param {
        Param {
            value: Box::new(value),
            ty,
        }
    }

    pub fn value(&self) -> &(dyn ToSql + Sync) {
        self.value.as_ref()
    }

    pub fn ty(&self) -> &Type {
        &self.ty
    }
}

impl From<String> for Param {
    fn from(v: String) -> Param {
        Param::new(v, Type::TEXT)
    }
}

impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Param {
        Param::new(v, Type::TEXT)
    }
}

impl From<i32> for Param {
    fn from(v: i32) -> Param {
        Param::new(v, Type::INT4)
    }
}

impl From<bool> for Param {
    fn from(v: bool) -> Param {
        Param::new(v, Type::BOOL)
    }
}

impl From<uuid::Uuid> for Param {
    fn from(v: uuid::Uuid) -> Param {
        Param::new(v, Type::UUID)
    }
}

impl From<Vec<String>> for Param {
    fn from(v: Vec<String>) -> Param {
        Param::new(v, Type::TEXT_ARRAY)
    }
}

/// The type `vector` as a parameter type: its OID differs from database to database, so the
/// OID is left unspecified (0), which has the server infer it from the function's signature.
pub fn vector_type() -> Type {
    Type::new(
        "vector".into(),
        0,
        tokio_postgres::types::Kind::Simple,
        "sealstore".into(),
    )
}

/// What a route's plan makes of its path parameter (empty without one) and body.
pub type Plan = fn(&str, &[u8]) -> Result<Vec<Param>, Failure>;

/// How deeply a body's arrays and objects may nest. Metadata and filters pass through to
/// PostgreSQL unparsed, and a body nested 100,000 levels deep would exhaust its stack.
pub const MAX_JSON_DEPTH: usize = 64;

/// A vector argument, sent in pgvector's binary form (the type's receive function checks it).
#[derive(Debug)]
pub struct VectorParam(Vec<f32>);

impl ToSql for VectorParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(&sealstore_core::vector::to_binary(&self.0));
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }

    to_sql_checked!();
}

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
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    if body.is_empty() {
        return Err(Failure::bad_request("a JSON body is required"));
    }
    if nested_deeper_than(body, MAX_JSON_DEPTH) {
        return Err(Failure::bad_request(
            "the body nests arrays and objects more than 64 levels deep",
        ));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            Failure::bad_request("the body does not match the request schema (see /openapi.json)")
        }
        _ => Failure::bad_request("the body is not valid JSON"),
    })
}

fn no_body(body: &[u8]) -> Result<(), Failure> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(Failure::bad_request("this route takes no request body"))
    }
}

fn uuid_param(p: &str) -> Result<uuid::Uuid, Failure> {
    // Only the canonical form (hyphenated, lower case): one spelling per id.
    sealstore_core::auth::parse_uuid(p)
        .map(uuid::Uuid::from_bytes)
        .ok_or_else(|| Failure::bad_request("the id must be a UUID"))
}

/// Embedding values must be finite f32 (JSON numbers beyond f32 range would become infinite),
/// and no more than the type holds.
fn vector(v: Vec<f32>) -> Result<Param, Failure> {
    if v.len() > sealstore_core::vector::MAX_DIMS {
        return Err(Failure::bad_request(
            "vectors have at most 16000 dimensions",
        ));
    }
    if !v.iter().all(|x| x.is_finite()) {
        return Err(Failure::bad_request(
            "vector values must be finite 32-bit floats",
        ));
    }
    Ok(Param::new(VectorParam(v), vector_type()))
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

/// Routes without a parameter or a body.
pub fn nothing(_: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    no_body(body)?;
    Ok(Vec::new())
}

/// Routes whose only input is the id in their path.
pub fn id(param: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    no_body(body)?;
    Ok(vec![uuid_param(param)?.into()])
}

/// Routes whose only input is the name in their path.
pub fn name(param: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    no_body(body)?;
    Ok(vec![param.to_owned().into()])
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

pub fn create_collection(_: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    let b: NewCollection = parse(body)?;
    Ok(vec![
        b.name.into(),
        b.dims.into(),
        b.metric.into(),
        b.encrypt_embeddings.into(),
    ])
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

pub fn put_document(collection: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    let b: NewDocument = parse(body)?;
    Ok(vec![
        collection.to_owned().into(),
        b.content.into(),
        vector(b.embedding)?,
        b.metadata.get().to_owned().into(),
    ])
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

pub fn search(collection: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    let b: SearchRequest = parse(body)?;
    Ok(vec![
        collection.to_owned().into(),
        vector(b.vector)?,
        b.k.into(),
        b.filter.map(|f| f.get().to_owned()).into(),
    ])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretValue {
    value: String,
}

pub fn put_secret(name: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    let b: SecretValue = parse(body)?;
    Ok(vec![name.to_owned().into(), b.value.into()])
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

pub fn create_tenant(_: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    let b: NewTenant = parse(body)?;
    Ok(vec![b.name.into(), b.algorithm.into()])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    name: String,
    scopes: Vec<String>,
}

pub fn create_api_key(tenant: &str, body: &[u8]) -> Result<Vec<Param>, Failure> {
    let tenant = uuid_param(tenant)?;
    let b: NewApiKey = parse(body)?;
    Ok(vec![tenant.into(), b.name.into(), b.scopes.into()])
}

#[cfg(test)]
mod tests;
