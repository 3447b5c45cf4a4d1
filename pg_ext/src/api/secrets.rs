//! The encrypted secrets store of the current tenant (provider API keys, tokens).
//! Each value is encrypted with the tenant's data key and bound to the secret's name.
//! Reading needs the scope `read`, writing and deleting the scope `write`.

use pgrx::prelude::*;
use sealstore_core::names::{check_name, NameOf};

use crate::api::encryption::{open_for_current, seal_for_current, utf8};
use crate::runtime::context;
use crate::runtime::errors::{self, edge, Result};
use crate::runtime::owner::{self, as_owner, changed_rows};
use crate::storage::ids::Uuid as _;

fn secret_context(name: &str) -> String {
    format!("sealstore.secret:{name}")
}

/// Stores (or replaces) the current tenant's secret `name`.
pub fn put(name: &str, value: &str) -> Result<()> {
    owner::require_writable()?;
    check_name(NameOf::Secret, name)?;
    context::require_scope("write")?;
    let tenant = context::tenant()?.uuid();
    let sealed = seal_for_current(value.as_bytes(), &secret_context(name))?;
    as_owner(|| {
        errors::spi(Spi::run_with_args(
            "INSERT INTO sealstore.secrets (tenant_id, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            &[tenant.into(), name.into(), sealed.into()],
        ))
    })
}

/// The current tenant's secret `name`, decrypted; P0002 when there is none.
pub fn get(name: &str) -> Result<String> {
    check_name(NameOf::Secret, name)?;
    context::require_scope("read")?;
    let tenant = context::tenant()?.uuid();
    let sealed = as_owner(|| {
        errors::spi(Spi::connect(|client| {
            let rows = client.select(
                "SELECT value FROM sealstore.secrets WHERE tenant_id = $1 AND name = $2",
                Some(1),
                &[tenant.into(), name.into()],
            )?;
            if rows.is_empty() {
                return Ok(None);
            }
            rows.first().get::<Vec<u8>>(1)
        }))
    })?
    .ok_or_else(|| errors::not_found("secret does not exist"))?;
    utf8(
        open_for_current(&sealed, &secret_context(name))?,
        "secret is not valid UTF-8",
    )
}

/// Deletes the current tenant's secret `name`; P0002 when there is none.
pub fn delete(name: &str) -> Result<()> {
    owner::require_writable()?;
    check_name(NameOf::Secret, name)?;
    context::require_scope("write")?;
    let tenant = context::tenant()?.uuid();
    let deleted = as_owner(|| {
        changed_rows(
            "WITH d AS (DELETE FROM sealstore.secrets WHERE tenant_id = $1 AND name = $2 RETURNING 1) \
             SELECT count(*) FROM d",
            &[tenant.into(), name.into()],
        )
    })?;
    if deleted != 1 {
        return Err(errors::not_found("secret does not exist"));
    }
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn put_secret(name: &str, value: &str) {
    edge(|| put(name, value))
}

#[pg_extern(stable, parallel_restricted, strict)]
fn get_secret(name: &str) -> String {
    edge(|| get(name))
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn delete_secret(name: &str) {
    edge(|| delete(name))
}
