//! Master key rotation: re-wrap every data key under the current master key, leaving data
//! untouched. During a rotation the server runs with the new key as `sealstore.master_key_*`
//! and the old one as `sealstore.previous_master_key_*`; `CALL sealstore.rewrap_tenant_keys()`
//! (sql/procedures.sql) calls the batch function below until nothing is left. Each row records
//! the fingerprint of the master key that wraps it, so an interrupted run simply continues.

use pgrx::prelude::*;
use sealstore_core::crypto::{self, Algorithm};

use crate::runtime::credentials::secret_purpose;
use crate::runtime::errors::{edge, spi, Error, Result};
use crate::runtime::master_key;
use crate::runtime::owner::{self, as_owner};
use crate::storage::ids::Uuid as _;
use sealstore_core::ids::TenantId;

/// Re-wraps up to `batch_size` data keys that are not yet under the current master key, in the
/// caller's transaction, and returns how many it re-wrapped (0: the rotation is complete).
#[pg_extern(volatile, parallel_unsafe, strict)]
fn rewrap_tenant_keys_batch(batch_size: i32) -> i32 {
    edge(|| rewrap_batch(batch_size))
}

fn rewrap_batch(batch_size: i32) -> Result<i32> {
    owner::require_writable()?;
    if !(1..=10_000).contains(&batch_size) {
        return Err(Error::invalid("batch_size must be from 1 to 10000"));
    }
    let current = master_key::get()?;
    let target = current.fingerprint();
    as_owner(|| {
        // Read-write SPI: the query locks the rows it re-wraps.
        let rows = spi(Spi::connect_mut(|client| {
            client
                .update(
                    "SELECT k.tenant_id, k.version, k.wrapped, k.master_fingerprint, t.algorithm \
                     FROM sealstore.tenant_keys k JOIN sealstore.tenants t ON t.id = k.tenant_id \
                     WHERE k.master_fingerprint <> $1 ORDER BY k.tenant_id, k.version \
                     LIMIT $2 FOR UPDATE OF k",
                    None,
                    &[target.as_str().into(), batch_size.into()],
                )?
                .map(|r| {
                    Ok((
                        r.get::<pgrx::Uuid>(1)?.expect("tenant_id is NOT NULL"),
                        r.get::<i32>(2)?.unwrap_or_default(),
                        r.get::<Vec<u8>>(3)?.unwrap_or_default(),
                        r.get::<String>(4)?.unwrap_or_default(),
                        r.get::<String>(5)?.unwrap_or_default(),
                    ))
                })
                .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
        }))?;
        for (tenant, version, wrapped, fingerprint, algorithm) in &rows {
            let algorithm = Algorithm::from_name(algorithm)?;
            let from = master_key::for_fingerprint(fingerprint)?;
            let rewrapped = crypto::rewrap_key(
                from,
                current,
                &TenantId::from_uuid(tenant),
                *version as u32,
                algorithm,
                wrapped,
            )?;
            spi(Spi::run_with_args(
                "UPDATE sealstore.tenant_keys SET wrapped = $3, master_fingerprint = $4 \
                 WHERE tenant_id = $1 AND version = $2",
                &[
                    (*tenant).into(),
                    (*version).into(),
                    rewrapped.into(),
                    target.as_str().into(),
                ],
            ))?;
        }
        let jwt = if (rows.len() as i32) < batch_size {
            rewrap_jwt_secrets(current, &target, batch_size - rows.len() as i32)?
        } else {
            0
        };
        if !rows.is_empty() || jwt > 0 {
            spi(Spi::run_with_args(
                "INSERT INTO sealstore.audit_log (action, detail) \
                 VALUES ('rewrap_tenant_keys', jsonb_build_object('keys', $1::int, \
                 'jwt_secrets', $3::int, 'master_fingerprint', $2::text))",
                &[
                    (rows.len() as i32).into(),
                    target.as_str().into(),
                    jwt.into(),
                ],
            ))?;
        }
        Ok(rows.len() as i32 + jwt)
    })
}

/// The HS256 secrets of JWT keys are sealed under the master key too: re-seal those still under
/// another one. Runs as the owner, inside the batch's transaction.
fn rewrap_jwt_secrets(
    current: &sealstore_core::MasterKey,
    target: &str,
    limit: i32,
) -> Result<i32> {
    let rows = spi(Spi::connect_mut(|client| {
        client
            .update(
                "SELECT kid, algorithm, material, master_fingerprint FROM sealstore.jwt_keys \
                 WHERE master_fingerprint <> $1 ORDER BY kid LIMIT $2 FOR UPDATE",
                None,
                &[target.into(), limit.into()],
            )?
            .map(|r| {
                Ok((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<Vec<u8>>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                ))
            })
            .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
    }))?;
    for (kid, algorithm, sealed, fingerprint) in &rows {
        let algorithm = sealstore_core::auth::JwtAlgorithm::from_name(algorithm)?;
        let purpose = secret_purpose(kid, algorithm);
        let from = master_key::for_fingerprint(fingerprint)?;
        let secret = crypto::open_secret(from, &purpose, sealed)?;
        let resealed = crypto::seal_secret(current, &purpose, &secret)?;
        spi(Spi::run_with_args(
            "UPDATE sealstore.jwt_keys SET material = $2, master_fingerprint = $3 WHERE kid = $1",
            &[kid.as_str().into(), resealed.into(), target.into()],
        ))?;
    }
    if !rows.is_empty() {
        crate::runtime::keycache::mark_credentials_changed();
    }
    Ok(rows.len() as i32)
}

/// How many data keys each master key wraps: during a rotation, the progress; after it, a
/// single row with `current` true.
#[pg_extern(stable, parallel_unsafe)]
fn master_key_usage() -> TableIterator<
    'static,
    (
        name!(master_fingerprint, String),
        name!(current, bool),
        name!(keys, i64),
    ),
> {
    edge(|| {
        let current = master_key::get()?.fingerprint();
        let rows = as_owner(|| {
            spi(Spi::connect(|client| {
                client
                    .select(
                        "SELECT master_fingerprint, master_fingerprint = $1, count(*) \
                     FROM (SELECT master_fingerprint FROM sealstore.tenant_keys \
                           UNION ALL SELECT master_fingerprint FROM sealstore.jwt_keys \
                           WHERE master_fingerprint IS NOT NULL) k \
                     GROUP BY 1 ORDER BY 2 DESC, 1",
                        None,
                        &[current.as_str().into()],
                    )?
                    .map(|r| {
                        Ok((
                            r.get::<String>(1)?.unwrap_or_default(),
                            r.get::<bool>(2)?.unwrap_or_default(),
                            r.get::<i64>(3)?.unwrap_or_default(),
                        ))
                    })
                    .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
            }))
        })?;
        Ok(TableIterator::new(rows))
    })
}
