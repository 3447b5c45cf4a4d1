//! Tenant lifecycle and data keys. Administrators only: members of sealstore_admin, or a
//! transaction authenticated with scope `admin` (see `context::require_admin`).
//! Every change writes an audit row in the same transaction.

use pgrx::prelude::*;
use sealstore_core::crypto::{self, Algorithm, TenantId};
use sealstore_core::names::{check_name, NameOf};

use crate::runtime::audit;
use crate::runtime::context;
use crate::runtime::errors::{self, edge, spi, Result};
use crate::runtime::keycache;
use crate::runtime::master_key;
use crate::runtime::owner::{self, as_owner, changed_rows, read_one};
use crate::storage::ids::Uuid as _;

/// A random (version 4) UUID: tenant, collection and document ids.
pub fn new_uuid() -> Result<[u8; 16]> {
    let mut id = *crypto::random_bytes::<16>()?;
    id[6] = (id[6] & 0x0f) | 0x40; // UUID version 4
    id[8] = (id[8] & 0x3f) | 0x80; // RFC 4122 variant
    Ok(id)
}

fn audit(action: &str, tenant: pgrx::Uuid, detail: serde_json::Value) -> Result<()> {
    audit::audit(action, Some(tenant), detail)
}

/// Locks the tenant's row; returns (algorithm, active version, shredded).
fn lock_tenant(id: pgrx::Uuid) -> Result<(Algorithm, i32, bool)> {
    let row = Spi::get_three_with_args::<String, i32, bool>(
        "SELECT algorithm, active_version, shredded_at IS NOT NULL FROM sealstore.tenants \
         WHERE id = $1 FOR UPDATE",
        &[id.into()],
    );
    match row {
        Ok((Some(alg), Some(active), Some(shredded))) => {
            Ok((Algorithm::from_name(&alg)?, active, shredded))
        }
        Ok(_) | Err(pgrx::spi::Error::InvalidPosition) => Err(errors::unknown_tenant()),
        Err(e) => spi(Err(e)),
    }
}

fn store_new_key(tenant: &TenantId, version: u32, algorithm: Algorithm) -> Result<()> {
    let master = master_key::get()?;
    let (_key, wrapped) = crypto::generate_key(master, tenant, version, algorithm)?;
    spi(Spi::run_with_args(
        "INSERT INTO sealstore.tenant_keys (tenant_id, version, wrapped, master_fingerprint) \
         VALUES ($1, $2, $3, $4)",
        &[
            tenant.uuid().into(),
            (version as i32).into(),
            wrapped.into(),
            master.fingerprint().into(),
        ],
    ))
}

/// A server started with another master key than the one that wrapped the existing tenants'
/// keys must not start a second key hierarchy beside them: new tenants would be lost when the
/// right key comes back.
fn refuse_foreign_master_key() -> Result<()> {
    let loaded = master_key::loaded_fingerprints()?;
    let foreign = match Spi::get_one_with_args::<String>(
        "SELECT master_fingerprint FROM sealstore.tenant_keys \
         WHERE master_fingerprint <> ALL($1) LIMIT 1",
        &[loaded.clone().into()],
    ) {
        Ok(found) => found,
        Err(pgrx::spi::Error::InvalidPosition) => None, // no such row
        Err(e) => return spi(Err(e)),
    };
    match foreign {
        Some(foreign) => Err(errors::foreign_master_key(&foreign, &loaded)),
        None => Ok(()),
    }
}

/// Creates a tenant (see `create_tenant`).
pub fn create(name: &str, algorithm: &str) -> Result<pgrx::Uuid> {
    owner::require_writable()?;
    context::require_system_admin()?;
    check_name(NameOf::Tenant, name)?;
    let algorithm = Algorithm::from_name(algorithm)?;
    let tenant = TenantId::from_bytes(new_uuid()?);
    let id = tenant.uuid();
    as_owner(|| {
        refuse_foreign_master_key()?;
        spi(Spi::run_with_args(
            "INSERT INTO sealstore.tenants (id, name, algorithm) VALUES ($1, $2, $3)",
            &[id.into(), name.into(), algorithm.name().into()],
        ))?;
        store_new_key(&tenant, 1, algorithm)?;
        audit(
            "create_tenant",
            id,
            serde_json::json!({"name": name, "algorithm": algorithm.name()}),
        )
    })?;
    Ok(id)
}

/// Creates a tenant with a fresh data key (version 1) and returns its id.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn create_tenant(name: &str, algorithm: default!(&str, "'xchacha20-poly1305'")) -> pgrx::Uuid {
    edge(|| create(name, algorithm))
}

/// Adds a key version to `tenant` and makes it active (see `rotate_tenant_key`).
pub fn rotate_key(tenant: pgrx::Uuid) -> Result<i32> {
    owner::require_writable()?;
    let id = TenantId::from_uuid(&tenant);
    context::require_admin_of(&id)?;
    // The existing versions must unwrap under this server's master key: rotating under another
    // master key would silently mix two key hierarchies in one tenant.
    keycache::check_tenant_usable(&id)?;
    let version = as_owner(|| {
        let (algorithm, _active, shredded) = lock_tenant(tenant)?;
        if shredded {
            return Err(errors::shredded_tenant());
        }
        let next = spi(Spi::get_one_with_args::<i32>(
            "SELECT max(version) + 1 FROM sealstore.tenant_keys WHERE tenant_id = $1",
            &[tenant.into()],
        ))?
        .unwrap_or(1);
        store_new_key(&id, next as u32, algorithm)?;
        spi(Spi::run_with_args(
            "UPDATE sealstore.tenants SET active_version = $2 WHERE id = $1",
            &[tenant.into(), next.into()],
        ))?;
        audit(
            "rotate_tenant_key",
            tenant,
            serde_json::json!({"version": next}),
        )?;
        Ok(next)
    })?;
    keycache::mark_changed(&id);
    Ok(version)
}

/// Adds a new data key version and makes it the one new writes use; older versions keep
/// decrypting. Returns the new version.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn rotate_tenant_key(tenant: pgrx::Uuid) -> i32 {
    edge(|| rotate_key(tenant))
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
    edge(|| {
        context::require_admin_of(&TenantId::from_uuid(&tenant))?;
        let rows = as_owner(|| {
            let exists = spi(read_one::<bool>(
                "SELECT EXISTS (SELECT FROM sealstore.tenants WHERE id = $1)",
                &[tenant.into()],
            ))?;
            if exists != Some(true) {
                return Err(errors::unknown_tenant());
            }
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
                            r.get::<pgrx::datum::TimestampWithTimeZone>(3)?
                                .expect("created_at is NOT NULL"),
                            r.get::<String>(4)?.unwrap_or_default(),
                        ))
                    })
                    .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
            }))
        })?;
        Ok(TableIterator::new(rows))
    })
}

/// Crypto-shreds `tenant` (see `shred_tenant`).
pub fn shred(tenant: pgrx::Uuid) -> Result<()> {
    owner::require_writable()?;
    let id = TenantId::from_uuid(&tenant);
    context::require_admin_of(&id)?;
    as_owner(|| {
        let (_alg, _active, shredded) = lock_tenant(tenant)?;
        if shredded {
            return Ok(());
        }
        let delete = |table: &str| {
            changed_rows(
                &format!(
                    "WITH d AS (DELETE FROM sealstore.{table} WHERE tenant_id = $1 RETURNING 1) \
                     SELECT count(*) FROM d"
                ),
                &[tenant.into()],
            )
        };
        let keys = delete("tenant_keys")?;
        let secrets = delete("secrets")?;
        // Documents keep plaintext beside their ciphertext (metadata, and embeddings of
        // collections that do not encrypt them), which a shredded key would not cover.
        let documents = delete("documents")?;
        delete("collections")?;
        // Events hold metadata too.
        delete("events")?;
        spi(Spi::run_with_args(
            "UPDATE sealstore.tenants SET shredded_at = now() WHERE id = $1",
            &[tenant.into()],
        ))?;
        audit(
            "shred_tenant",
            tenant,
            serde_json::json!({"key_versions": keys, "secrets": secrets, "documents": documents}),
        )
    })?;
    keycache::mark_changed(&id);
    Ok(())
}

/// Crypto-shredding: destroys every data key and secret of the tenant. Once this commits, no
/// backend can decrypt the tenant's data, including backends that had its keys cached.
/// Shredding a tenant twice does nothing the second time.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn shred_tenant(tenant: pgrx::Uuid) {
    edge(|| shred(tenant))
}
