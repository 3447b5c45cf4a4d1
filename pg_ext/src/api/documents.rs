//! Collections and documents of the current tenant, and similarity search over them.
//!
//! Content is always encrypted with the tenant's data key, bound to the document's id. An
//! embedding is stored as a `vector`, or, in a collection created with `encrypt_embeddings`,
//! only as an envelope bound to the document's id. Search is exact: `storage::heap` reads the
//! collection's rows through the `collection_id` index (never the other tenants' rows), the
//! distance is computed per row (decrypting in this backend with the cached key when the
//! embeddings are encrypted), and a bounded top-k keeps the k nearest.

use pgrx::prelude::*;
use sealstore_core::crypto::{self, TenantId};
use sealstore_core::distance::Metric;
use sealstore_core::ids::{CollectionId, DocumentId};
use sealstore_core::names::{check_name, NameOf};
use sealstore_core::vector as core_vector;

use crate::api::encryption::utf8;
use crate::api::tenants::new_uuid;
use crate::runtime::context;
use crate::runtime::errors::{self, edge, spi, Error, Result};
use crate::runtime::owner::{self, as_owner, changed_rows, owner_row};
use crate::runtime::{feed, keycache};
use crate::storage::collection_scan::{self, Column, Hit, Rows};
use crate::storage::hnsw::collections::Walk;
use crate::storage::ids::Uuid as _;
use crate::storage::jsonb::Jsonb;
use crate::storage::vector::{Vector, VectorArg};

/// The largest k a search accepts.
const MAX_K: i32 = 1000;

const CONTENT_CONTEXT: &[u8] = b"sealstore/document-content:";
const EMBEDDING_CONTEXT: &[u8] = b"sealstore/document-embedding:";

/// What a document's envelope is bound to besides its tenant: the column's label and the
/// document's id, so an envelope moved to another row or column fails to open.
fn bound_context(label: &[u8], id: &DocumentId) -> Vec<u8> {
    let mut out = Vec::with_capacity(label.len() + 16);
    out.extend_from_slice(label);
    out.extend_from_slice(id.as_bytes());
    out
}

/// What the sealed embedding of document `id` is bound to (also where the hnsw index opens it).
pub(crate) fn embedding_context(id: &[u8; 16]) -> Vec<u8> {
    bound_context(EMBEDDING_CONTEXT, &DocumentId::from_bytes(*id))
}

fn require_object(value: &Jsonb, what: &'static str) -> Result<()> {
    if !value.is_object() {
        return Err(Error::invalid(what));
    }
    Ok(())
}

struct Collection {
    id: CollectionId,
    dims: usize,
    metric: Metric,
    encrypted: bool,
}

/// The current tenant's collection `name`, or 42704.
fn collection(tenant: &TenantId, name: &str) -> Result<Collection> {
    check_name(NameOf::Collection, name)?;
    let row = owner_row(
        "SELECT id, dims, metric, encrypt_embeddings FROM sealstore.collections \
         WHERE tenant_id = $1 AND name = $2",
        &[tenant.uuid().into(), name.into()],
        |row| {
            Ok((
                row.get::<pgrx::Uuid>(1)?,
                row.get::<i32>(2)?,
                row.get::<String>(3)?,
                row.get::<bool>(4)?,
            ))
        },
    )?;
    match row {
        Some((Some(id), Some(dims), Some(metric), Some(encrypted))) => Ok(Collection {
            id: CollectionId::from_uuid(&id),
            dims: usize::try_from(dims).unwrap_or(0),
            metric: Metric::from_name(&metric)
                .ok_or_else(|| Error::damaged("a collection row names an unknown metric"))?,
            encrypted,
        }),
        _ => Err(errors::undefined("collection does not exist")),
    }
}

/// Creates a collection (see `create_collection`).
pub fn create_collection_for(
    name: &str,
    dims: i32,
    metric: &str,
    encrypt_embeddings: bool,
) -> Result<pgrx::Uuid> {
    owner::require_writable()?;
    check_name(NameOf::Collection, name)?;
    context::require_scope("write")?;
    let tenant = context::tenant()?;
    keycache::tenant_keys(&tenant)?;
    if Metric::from_name(metric).is_none() {
        return Err(Error::invalid(
            "metric must be one of cosine, l2, inner_product, l1",
        ));
    }
    if usize::try_from(dims).map_or(true, |d| core_vector::check_dims(d).is_err()) {
        return Err(Error::invalid("dims must be from 1 to 16000"));
    }
    let id = pgrx::Uuid::from_bytes(new_uuid()?);
    let inserted = as_owner(|| {
        changed_rows(
            "WITH i AS (INSERT INTO sealstore.collections \
               (id, tenant_id, name, dims, metric, encrypt_embeddings) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, name) DO NOTHING \
               RETURNING tenant_id, name), \
             e AS (INSERT INTO sealstore.events (tenant_id, kind, collection) \
               SELECT tenant_id, 'collection.created', name FROM i RETURNING 1) \
             SELECT count(*) FROM e",
            &[
                id.into(),
                tenant.uuid().into(),
                name.into(),
                dims.into(),
                metric.into(),
                encrypt_embeddings.into(),
            ],
        )
    })?;
    if inserted != 1 {
        return Err(errors::duplicate("a collection of this name exists"));
    }
    feed::note_written();
    Ok(id)
}

/// Creates a collection of the current tenant for embeddings of `dims` dimensions, searched by
/// `metric` (cosine, l2, inner_product or l1). With `encrypt_embeddings`, embeddings are stored
/// only encrypted. Returns the collection's id.
#[pg_extern(volatile, parallel_unsafe, strict, requires = ["documents_schema"])]
fn create_collection(
    name: &str,
    dims: i32,
    metric: default!(&str, "'cosine'"),
    encrypt_embeddings: default!(bool, false),
) -> pgrx::Uuid {
    edge(|| create_collection_for(name, dims, metric, encrypt_embeddings))
}

/// Deletes collection `name` with its documents (see `drop_collection`).
pub fn drop_collection_named(name: &str) -> Result<bool> {
    owner::require_writable()?;
    check_name(NameOf::Collection, name)?;
    context::require_scope("write")?;
    let tenant = context::tenant()?;
    let dropped = as_owner(|| {
        changed_rows(
            "WITH d AS (DELETE FROM sealstore.collections WHERE tenant_id = $1 AND name = $2 \
               RETURNING tenant_id, name), \
             e AS (INSERT INTO sealstore.events (tenant_id, kind, collection) \
               SELECT tenant_id, 'collection.dropped', name FROM d RETURNING 1) \
             SELECT count(*) FROM e",
            &[tenant.uuid().into(), name.into()],
        )
    })?;
    if dropped == 1 {
        feed::note_written();
    }
    Ok(dropped == 1)
}

/// Deletes the current tenant's collection `name` and all its documents; false if there was
/// none.
#[pg_extern(volatile, parallel_unsafe, strict, requires = ["documents_schema"])]
fn drop_collection(name: &str) -> bool {
    edge(|| drop_collection_named(name))
}

/// Stores a document (see `put_document`).
pub fn put(
    collection: &str,
    content: &str,
    embedding: &[f32],
    metadata: Jsonb,
) -> Result<pgrx::Uuid> {
    owner::require_writable()?;
    context::require_scope("write")?;
    let tenant = context::tenant()?;
    let coll = self::collection(&tenant, collection)?;
    core_vector::check_expected(Some(coll.dims), embedding.len())?;
    require_object(&metadata, "metadata must be a JSON object")?;
    let keys = keycache::tenant_keys(&tenant)?;
    let key = keys.active_key()?;
    let id = DocumentId::from_bytes(new_uuid()?);
    let sealed_content = crypto::seal(
        key,
        &tenant,
        &bound_context(CONTENT_CONTEXT, &id),
        content.as_bytes(),
    )?;
    let (plain, sealed) = if coll.encrypted {
        let plaintext = crypto::f32_plaintext(embedding);
        let sealed = crypto::seal(
            key,
            &tenant,
            &bound_context(EMBEDDING_CONTEXT, &id),
            &plaintext,
        )?;
        (None, Some(sealed))
    } else {
        (Some(Vector(embedding.to_vec())), None)
    };
    let id = id.uuid();
    as_owner(|| {
        spi(Spi::run_with_args(
            "WITH d AS (INSERT INTO sealstore.documents \
               (id, tenant_id, collection_id, content, embedding, sealed_embedding, metadata) \
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, tenant_id, metadata) \
             INSERT INTO sealstore.events (tenant_id, kind, collection, document_id, metadata) \
             SELECT tenant_id, 'document.created', $8, id, metadata FROM d",
            &[
                id.into(),
                tenant.uuid().into(),
                coll.id.uuid().into(),
                sealed_content.into(),
                plain.into(),
                sealed.into(),
                metadata.into(),
                collection.into(),
            ],
        ))
    })?;
    feed::note_written();
    Ok(id)
}

/// Stores a document in the current tenant's collection; returns its id. The content is
/// encrypted; so is the embedding when the collection says so.
#[pg_extern(volatile, parallel_unsafe, strict, requires = ["documents_schema"])]
fn put_document(
    collection: &str,
    content: &str,
    embedding: VectorArg<'_>,
    metadata: default!(Jsonb, "'{}'"),
) -> pgrx::Uuid {
    edge(|| put(collection, content, embedding.0, metadata))
}

/// A document of the current tenant, decrypted.
pub struct Document {
    pub collection: String,
    pub content: String,
    pub metadata: Jsonb,
}

/// The current tenant's document `id` (see `get_document`).
pub fn get(id: pgrx::Uuid) -> Result<Document> {
    context::require_scope("read")?;
    let tenant = context::tenant()?;
    let row = owner_row(
        "SELECT c.name, d.content, d.metadata FROM sealstore.documents d \
         JOIN sealstore.collections c ON c.id = d.collection_id \
         WHERE d.id = $1 AND d.tenant_id = $2",
        &[id.into(), tenant.uuid().into()],
        |row| {
            Ok((
                row.get::<String>(1)?,
                row.get::<Vec<u8>>(2)?,
                row.get::<Jsonb>(3)?,
            ))
        },
    )?;
    let Some((Some(collection), Some(sealed), Some(metadata))) = row else {
        return Err(errors::not_found("document does not exist"));
    };
    let header = crypto::parse_header(&sealed)?;
    let keys = keycache::tenant_keys(&tenant)?;
    let content = crypto::open(
        keys.key(header.key_version)?,
        &tenant,
        &bound_context(CONTENT_CONTEXT, &DocumentId::from_uuid(&id)),
        &sealed,
    )?;
    Ok(Document {
        collection,
        content: utf8(content.to_vec(), "document content is not valid UTF-8")?,
        metadata,
    })
}

/// The current tenant's document `id`: (id, collection, content, metadata). A document of
/// another tenant is reported exactly like a missing one (P0002).
#[pg_extern(stable, parallel_restricted, strict, requires = ["documents_schema"])]
fn get_document(
    id: pgrx::Uuid,
) -> TableIterator<
    'static,
    (
        name!(id, pgrx::Uuid),
        name!(collection, String),
        name!(content, String),
        name!(metadata, Jsonb),
    ),
> {
    edge(|| {
        let d = get(id)?;
        Ok(TableIterator::once((
            id,
            d.collection,
            d.content,
            d.metadata,
        )))
    })
}

/// Deletes the current tenant's document `id` (see `delete_document`).
pub fn delete(id: pgrx::Uuid) -> Result<bool> {
    owner::require_writable()?;
    context::require_scope("write")?;
    let tenant = context::tenant()?;
    let deleted = as_owner(|| {
        changed_rows(
            "WITH d AS (DELETE FROM sealstore.documents WHERE id = $1 AND tenant_id = $2 \
               RETURNING id, tenant_id, collection_id, metadata), \
             e AS (INSERT INTO sealstore.events (tenant_id, kind, collection, document_id, metadata) \
               SELECT d.tenant_id, 'document.deleted', c.name, d.id, d.metadata \
               FROM d JOIN sealstore.collections c ON c.id = d.collection_id RETURNING 1) \
             SELECT count(*) FROM e",
            &[id.into(), tenant.uuid().into()],
        )
    })?;
    if deleted == 1 {
        feed::note_written();
    }
    Ok(deleted == 1)
}

/// Deletes the current tenant's document `id`; false when there is no such document (of this
/// tenant).
#[pg_extern(volatile, parallel_unsafe, strict, requires = ["documents_schema"])]
fn delete_document(id: pgrx::Uuid) -> bool {
    edge(|| delete(id))
}

/// The `k` nearest documents of collection `collection` (see `search`): ids, distances and
/// metadata, nearest first.
pub fn nearest(collection: &str, query: &[f32], k: i32, filter: Option<Jsonb>) -> Result<Vec<Hit>> {
    context::require_scope("read")?;
    let tenant = context::tenant()?;
    // Also where no key opens anything (plaintext embeddings): a shredded tenant's documents
    // are gone, also for a transaction whose snapshot still shows them.
    let keys = keycache::tenant_keys(&tenant)?;
    let coll = self::collection(&tenant, collection)?;
    core_vector::check_expected(Some(coll.dims), query.len())?;
    if !(1..=MAX_K).contains(&k) {
        return Err(Error::invalid("k must be from 1 to 1000"));
    }
    let filter = match filter {
        Some(f) => {
            require_object(&f, "filter must be a JSON object")?;
            f.into_datum()
        }
        None => None,
    };
    let metric = coll.metric;
    let k = usize::try_from(k).expect("k is from 1 to 1000");
    // A collection whose graph has grown past `sealstore.hnsw_exact_below` nodes is walked
    // (the walk gives its rows' distances); every row of a smaller one is scored.
    let scan = |rows: Rows| -> Result<Vec<Hit>> {
        if coll.encrypted {
            // Each row's id is written into the context's tail before its envelope is opened.
            let mut context = bound_context(EMBEDDING_CONTEXT, &DocumentId::from_bytes([0; 16]));
            // The decrypted embedding of the row being scored: each row's plaintext overwrites
            // the last, and the buffer is wiped when it is dropped, also when an error unwinds.
            let mut plain = crypto::OpenedF32::default();
            collection_scan::top_k(
                &tenant,
                &coll.id,
                Column::SealedEmbedding,
                rows,
                filter,
                k,
                |row| {
                    let sealed = row.bytes;
                    let header = crypto::parse_header(sealed)?;
                    context[EMBEDDING_CONTEXT.len()..].copy_from_slice(row.id);
                    crypto::open_f32_into(
                        keys.key(header.key_version)?,
                        &tenant,
                        &context,
                        sealed,
                        &mut plain,
                    )?;
                    let plain = plain.as_slice();
                    crate::storage::vector::same_dims(plain, query)?;
                    Ok(metric.distance(plain, query))
                },
            )
        } else {
            let mut scratch = Vec::new();
            collection_scan::top_k(
                &tenant,
                &coll.id,
                Column::Embedding,
                rows,
                filter,
                k,
                |row| {
                    let stored = crate::storage::vector::stored(row.bytes, &mut scratch)?;
                    crate::storage::vector::same_dims(stored, query)?;
                    Ok(metric.distance(stored, query))
                },
            )
        }
    };
    let Some(walk) = Walk::open(&tenant, &coll.id, coll.encrypted, query, k) else {
        return scan(Rows::All);
    };
    let hits = scan(Rows::Graph(Box::new(walk)))?;
    // A zero vector has no cosine distance and is not in the graph: a walk that found fewer
    // than k rows may have passed one by, and the exact search has it (last, with NaN).
    if hits.len() < k && metric == Metric::Cosine {
        return scan(Rows::All);
    }
    Ok(hits)
}

/// The `k` documents of the current tenant's collection nearest to `query` by the collection's
/// metric, nearest first (ties by id), optionally only those whose metadata contains `filter`
/// (jsonb `@>`). Exact: every document of the collection that passes the filter is scored, by
/// a scan of the collection's rows and nothing else (see `storage::heap`). With encrypted
/// embeddings each row is decrypted in this backend with the cached key; a tampered, swapped
/// or foreign envelope fails authentication (XX001) and stops the search.
#[pg_extern(stable, parallel_restricted, requires = ["documents_schema"])]
fn search(
    collection: Option<&str>,
    query: Option<VectorArg<'_>>,
    k: default!(Option<i32>, 10),
    filter: default!(Option<Jsonb>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(id, pgrx::Uuid),
        name!(distance, f32),
        name!(metadata, Jsonb),
    ),
> {
    edge(|| {
        let (Some(collection), Some(query), Some(k)) = (collection, query, k) else {
            return Err(errors::null_argument(
                "collection, query and k must not be NULL",
            ));
        };
        let hits = nearest(collection, query.0, k, filter)?;
        Ok(TableIterator::new(hits.into_iter().map(|hit| {
            // SAFETY: the datum is a detoasted jsonb copy made by the scan in this call's
            // memory context.
            let metadata = unsafe { Jsonb::from_jsonb_datum(hit.metadata) };
            (
                pgrx::Uuid::from_bytes(hit.rank.id),
                hit.rank.distance as f32,
                metadata,
            )
        })))
    })
}

pgrx::extension_sql_file!(
    "../../../sql/documents.sql",
    name = "documents_schema",
    requires = ["vector_ops"],
);
