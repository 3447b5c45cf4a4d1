//! The HTTP gateway's routes as SQL functions (`sealstore.route_*`): each authenticates its
//! token, makes one call of the SQL surface and returns the verified subject and the answer's
//! JSON, so that a gateway route is one call of one function in one implicit transaction, and
//! the gateway holds no SQL of its own. They are ordinary functions of the extension: any
//! client may call them (`SELECT * FROM sealstore.route_get_secret($1, 'db-password')`), and
//! like every function of the extension they name every object they use by schema, so no
//! caller's search_path reaches into them.
//!
//! A function returns one row: `subject` (whom the token speaks for, the gateway's rate-limit
//! key) and `body` (the response's JSON, or NULL for 204). An error is the SQL surface's own,
//! mapped to HTTP by the gateway.

use pgrx::prelude::*;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::api::{auth, documents, secrets, tenants};
use crate::runtime::context;
use crate::runtime::errors::{self, edge, Result};
use crate::storage::jsonb::Jsonb;
use crate::storage::vector::VectorArg;

/// One row: whom the token speaks for, and the response's JSON (NULL: no body). (pgrx reads a
/// function's SQL signature from its Rust one, so each function spells the type out.)
type Answer = TableIterator<'static, (name!(subject, String), name!(body, Option<String>))>;

/// Authenticates `token`, then runs `call` in its context; `call` returns the body.
fn answer(token: &str, call: impl FnOnce() -> Result<Option<Body>>) -> Answer {
    edge(|| {
        let identity = auth::authenticate_token(token)?;
        let body = call()?.map(|b| b.0);
        Ok(TableIterator::once((identity.subject, body)))
    })
}

/// A response body: JSON text.
struct Body(String);

/// Serializes an answer. Metadata goes in as `RawValue`, written as jsonb printed it: never
/// parsed into numbers that could round, nor printed again.
fn body(value: &impl Serialize) -> Body {
    Body(serde_json::to_string(value).expect("answers serialize"))
}

/// A jsonb value as it is, inside a JSON answer.
fn raw(value: Jsonb) -> Box<RawValue> {
    RawValue::from_string(value.to_text()).expect("jsonb prints valid JSON")
}

/// JSON has no NaN or infinity: an undefined distance (cosine with a zero vector) is null.
fn distance(d: f64) -> Option<f32> {
    Some(d as f32).filter(|d| d.is_finite())
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    id: String,
    collection: &'a str,
    content: &'a str,
    metadata: Box<RawValue>,
}

#[derive(Serialize)]
struct HitOut {
    id: String,
    distance: Option<f32>,
    metadata: Box<RawValue>,
}

#[derive(Serialize)]
struct SearchOut {
    results: Vec<HitOut>,
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_create_collection(
    token: &str,
    name: &str,
    dims: i32,
    metric: &str,
    encrypt_embeddings: bool,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        let id = documents::create_collection_for(name, dims, metric, encrypt_embeddings)?;
        Ok(Some(body(&json!({
            "id": id.to_string(), "name": name, "dims": dims, "metric": metric,
            "encrypt_embeddings": encrypt_embeddings,
        }))))
    })
}

/// `metadata` is JSON text, parsed by jsonb itself (numbers kept exactly as written).
#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_put_document(
    token: &str,
    collection: &str,
    content: &str,
    embedding: VectorArg<'_>,
    metadata: &str,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        let id = documents::put(collection, content, embedding.0, Jsonb::parse(metadata)?)?;
        Ok(Some(body(&json!({"id": id.to_string()}))))
    })
}

#[pg_extern(volatile, parallel_unsafe)]
fn route_search(
    token: Option<&str>,
    collection: Option<&str>,
    query: Option<VectorArg<'_>>,
    k: Option<i32>,
    filter: Option<&str>,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    let (Some(token), Some(collection), Some(query), Some(k)) = (token, collection, query, k)
    else {
        return edge(|| {
            Err(errors::null_argument(
                "token, collection, query and k must not be NULL",
            ))
        });
    };
    answer(token, || {
        let hits = documents::nearest(
            collection,
            query.0,
            k,
            filter.map(Jsonb::parse).transpose()?,
        )?;
        let results = hits
            .iter()
            .map(|hit| {
                // SAFETY: a detoasted jsonb copy the scan made in this call's memory context.
                let metadata = unsafe { Jsonb::from_jsonb_datum(hit.metadata) };
                HitOut {
                    id: pgrx::Uuid::from_bytes(hit.rank.id).to_string(),
                    distance: distance(hit.rank.distance),
                    metadata: raw(metadata),
                }
            })
            .collect();
        Ok(Some(body(&SearchOut { results })))
    })
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_get_document(
    token: &str,
    id: pgrx::Uuid,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        let d = documents::get(id)?;
        Ok(Some(body(&DocumentOut {
            id: id.to_string(),
            collection: &d.collection,
            content: &d.content,
            metadata: raw(d.metadata),
        })))
    })
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_delete_document(
    token: &str,
    id: pgrx::Uuid,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        if !documents::delete(id)? {
            return Err(errors::not_found("document does not exist"));
        }
        Ok(None)
    })
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_put_secret(
    token: &str,
    name: &str,
    value: &str,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || secrets::put(name, value).map(|()| None))
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_get_secret(
    token: &str,
    name: &str,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        let value = secrets::get(name)?;
        Ok(Some(body(&json!({"name": name, "value": value}))))
    })
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_delete_secret(
    token: &str,
    name: &str,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || secrets::delete(name).map(|()| None))
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_create_tenant(
    token: &str,
    name: &str,
    algorithm: &str,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        let id = tenants::create(name, algorithm)?;
        Ok(Some(body(
            &json!({"id": id.to_string(), "name": name, "algorithm": algorithm}),
        )))
    })
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_rotate_tenant_key(
    token: &str,
    tenant: pgrx::Uuid,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        let version = tenants::rotate_key(tenant)?;
        Ok(Some(body(&json!({ "version": version }))))
    })
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_shred_tenant(
    token: &str,
    tenant: pgrx::Uuid,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || tenants::shred(tenant).map(|()| None))
}

/// The key is shown this once, with its id.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_create_api_key(
    token: &str,
    tenant: pgrx::Uuid,
    name: &str,
    scopes: Vec<Option<String>>,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        let k = auth::create_api_key_for(tenant, name, scopes)?;
        Ok(Some(body(&json!({
            "id": k.id.to_string(), "key": k.key, "name": name, "scopes": k.scopes,
        }))))
    })
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_revoke_api_key(
    token: &str,
    id: pgrx::Uuid,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || auth::revoke_api_key_by_id(id).map(|()| None))
}

/// The credential revokes itself (a log-out): an API key as `revoke_api_key` would, a JWT by
/// its `jti` until its `exp` (22023 for a JWT without a jti). Any credential, whatever its
/// scopes, may revoke itself and nothing else.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_revoke_self(
    token: &str,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || auth::revoke_own(token).map(|()| None))
}

/// The gateway's own counters cover every tenant: only an admin credential that names no
/// tenant may read them (42501 otherwise). No body: the gateway renders them.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn route_metrics(
    token: &str,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    answer(token, || {
        let identity = context::get()?.ok_or_else(errors::no_tenant_context)?;
        if !identity.has_scope("admin") || identity.tenant.is_some() {
            return Err(errors::Error::forbidden(
                "the gateway's metrics need an admin credential that names no tenant",
            ));
        }
        Ok(None)
    })
}
