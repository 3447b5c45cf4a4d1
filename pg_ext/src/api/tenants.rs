//! Tenant lifecycle and data keys. Administrators only: members of sealstore_admin, or a
//! transaction authenticated with scope `admin` (see `context::require_admin`).
//! Every change writes an audit row in the same transaction.

use pgrx::prelude::*;
use sealstore_core::crypto::{self, Algorithm, TenantId};

use crate::runtime::context;
use crate::runtime::errors::{self, spi};
use crate::runtime::keycache;
use crate::runtime::master_key;
use crate::runtime::owner::as_owner;

pub fn new_uuid() -> TenantId {
    let mut id =
        *crypto::random_bytes::<16>().unwrap_or_else(|e| errors::raise(errors::crypto(&e)));
    id[6] = (id[6] & 0x0f) | 0x40; // UUID version 4
    id[8] = (id[8] & 0x3f) | 0x80; // RFC 4122 variant
    id
}

fn audit(action: &str, tenant: pgrx::Uuid, detail: serde_json::Value) {
    crate::api::auth::audit(action, Some(tenant), detail);
}

/// Locks the tenant's row; returns (algorithm, active version, shredded).
fn lock_tenant(id: pgrx::Uuid) -> (Algorithm, i32, bool) {
    let row = Spi::get_three_with_args::<String, i32, bool>(
        "SELECT algorithm, active_version, shredded_at IS NOT NULL FROM sealstore.tenants \
         WHERE id = $1 FOR UPDATE",
        &[id.into()],
    );
    match row {
        Ok((Some(alg), Some(active), Some(shredded))) => (
            Algorithm::from_name(&alg).unwrap_or_else(|e| errors::raise(errors::crypto(&e))),
            active,
            shredded,
        ),
        Ok(_) | Err(pgrx::spi::Error::InvalidPosition) => errors::raise(errors::unknown_tenant()),
        Err(e) => errors::raise(errors::internal(&e)),
    }
}

fn store_new_key(tenant: &TenantId, version: u32, algorithm: Algorithm) {
    let master = master_key::get();
    let (_key, wrapped) = crypto::generate_key(master, tenant, version, algorithm)
        .unwrap_or_else(|e| errors::raise(errors::crypto(&e)));
    spi(Spi::run_with_args(
        "INSERT INTO sealstore.tenant_keys (tenant_id, version, wrapped, master_fingerprint) \
         VALUES ($1, $2, $3, $4)",
        &[
            pgrx::Uuid::from_bytes(*tenant).into(),
            (version as i32).into(),
            wrapped.into(),
            master.fingerprint().into(),
        ],
    ));
}

/// A server started with another master key than the one that wrapped the existing tenants'
/// keys must not start a second key hierarchy beside them: new tenants would be lost when the
/// right key comes back.
fn refuse_foreign_master_key() {
    let loaded = master_key::loaded_fingerprints();
    let foreign = match Spi::get_one_with_args::<String>(
        "SELECT master_fingerprint FROM sealstore.tenant_keys \
         WHERE master_fingerprint <> ALL($1) LIMIT 1",
        &[loaded.clone().into()],
    ) {
        Ok(found) => found,
        Err(pgrx::spi::Error::InvalidPosition) => None, // no such row
        Err(e) => errors::raise(errors::internal(&e)),
    };
    if let Some(foreign) = foreign {
        errors::raise(errors::foreign_master_key(&foreign, &loaded));
    }
}

/// Creates a tenant with a fresh data key (version 1) and returns its id.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn create_tenant(name: &str, algorithm: default!(&str, "'xchacha20-poly1305'")) -> pgrx::Uuid {
    context::require_system_admin();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        errors::raise(errors::invalid_argument(
            "tenant name must be 1 to 200 characters without control characters",
        ));
    }
    let algorithm =
        Algorithm::from_name(algorithm).unwrap_or_else(|e| errors::raise(errors::crypto(&e)));
    let tenant = new_uuid();
    let id = pgrx::Uuid::from_bytes(tenant);
    as_owner(|| {
        refuse_foreign_master_key();
        spi(Spi::run_with_args(
            "INSERT INTO sealstore.tenants (id, name, algorithm) VALUES ($1, $2, $3)",
            &[id.into(), name.into(), algorithm.name().into()],
        ));
        store_new_key(&tenant, 1, algorithm);
        audit(
            "create_tenant",
            id,
            serde_json::json!({"name": name, "algorithm": algorithm.name()}),
        );
    });
    id
}

/// Adds a new data key version and makes it the one new writes use; older versions keep
/// decrypting. Returns the new version.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn rotate_tenant_key(tenant: pgrx::Uuid) -> i32 {
    let id = *tenant.as_bytes();
    context::require_admin_of(&id);
    // The existing versions must unwrap under this server's master key: rotating under another
    // master key would silently mix two key hierarchies in one tenant.
    keycache::check_tenant_usable(&id);
    let version = as_owner(|| {
        let (algorithm, _active, shredded) = lock_tenant(tenant);
        if shredded {
            errors::raise(errors::shredded_tenant());
        }
        let next = spi(Spi::get_one_with_args::<i32>(
            "SELECT max(version) + 1 FROM sealstore.tenant_keys WHERE tenant_id = $1",
            &[tenant.into()],
        ))
        .unwrap_or(1);
        store_new_key(&id, next as u32, algorithm);
        spi(Spi::run_with_args(
            "UPDATE sealstore.tenants SET active_version = $2 WHERE id = $1",
            &[tenant.into(), next.into()],
        ));
        audit(
            "rotate_tenant_key",
            tenant,
            serde_json::json!({"version": next}),
        );
        next
    });
    keycache::mark_changed(&id);
    version
}

/// The tenant's key versions: which one is active, when each was made, and the fingerprint
/// of the master key that wraps it. Never the keys.
#[pg_extern(stable, parallel_unsafe, strict)]
fn key_versions(
    tenant: pgrx::Uuid,
) -> TableIterator<
    'static,
    (
        name!(version, i32),
        name!(active, bool),
        name!(created_at, pgrx::datum::TimestampWithTimeZone),
        name!(master_fingerprint, String),
    ),
> {
    context::require_admin_of(tenant.as_bytes());
    let rows = as_owner(|| {
        lock_tenant_shared(tenant);
        spi(Spi::connect(|client| {
            client
                .select(
                    "SELECT k.version, k.version = t.active_version, k.created_at, k.master_fingerprint \
                     FROM sealstore.tenant_keys k JOIN sealstore.tenants t ON t.id = k.tenant_id \
                     WHERE k.tenant_id = $1 ORDER BY k.version",
                    None,
                    &[tenant.into()],
                )?
                .map(|r| {
                    Ok((
                        r.get::<i32>(1)?.unwrap_or_default(),
                        r.get::<bool>(2)?.unwrap_or_default(),
                        r.get::<pgrx::datum::TimestampWithTimeZone>(3)?.expect("created_at is NOT NULL"),
                        r.get::<String>(4)?.unwrap_or_default(),
                    ))
                })
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        }))
    });
    TableIterator::new(rows)
}

fn lock_tenant_shared(tenant: pgrx::Uuid) {
    let exists = spi(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM sealstore.tenants WHERE id = $1)",
        &[tenant.into()],
    ));
    if exists != Some(true) {
        errors::raise(errors::unknown_tenant());
    }
}

/// Crypto-shredding: destroys every data key and secret of the tenant. Once this commits, no
/// backend can decrypt the tenant's data, including backends that had its keys cached.
/// Shredding a tenant twice does nothing the second time.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn shred_tenant(tenant: pgrx::Uuid) {
    let id = *tenant.as_bytes();
    context::require_admin_of(&id);
    as_owner(|| {
        let (_alg, _active, shredded) = lock_tenant(tenant);
        if shredded {
            return;
        }
        let keys = spi(Spi::get_one_with_args::<i64>(
            "WITH d AS (DELETE FROM sealstore.tenant_keys WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
            &[tenant.into()],
        ))
        .unwrap_or(0);
        let secrets = spi(Spi::get_one_with_args::<i64>(
            "WITH d AS (DELETE FROM sealstore.secrets WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
            &[tenant.into()],
        ))
        .unwrap_or(0);
        // Documents keep plaintext beside their ciphertext (metadata, and embeddings of
        // collections that do not encrypt them), which a shredded key would not cover.
        let documents = spi(Spi::get_one_with_args::<i64>(
            "WITH d AS (DELETE FROM sealstore.documents WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
            &[tenant.into()],
        ))
        .unwrap_or(0);
        spi(Spi::run_with_args(
            "DELETE FROM sealstore.collections WHERE tenant_id = $1",
            &[tenant.into()],
        ));
        spi(Spi::run_with_args(
            "UPDATE sealstore.tenants SET shredded_at = now() WHERE id = $1",
            &[tenant.into()],
        ));
        audit(
            "shred_tenant",
            tenant,
            serde_json::json!({"key_versions": keys, "secrets": secrets, "documents": documents}),
        );
    });
    keycache::mark_changed(&id);
}
