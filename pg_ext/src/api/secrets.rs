//! The encrypted secrets store of the current tenant (provider API keys, tokens).
//! Each value is encrypted with the tenant's data key and bound to the secret's name.
//! Reading needs the scope `read`, writing and deleting the scope `write`.

use pgrx::prelude::*;

use crate::api::encryption::{open_for_current, seal_for_current};
use crate::runtime::context;
use crate::runtime::errors;
use crate::runtime::owner::as_owner;

fn check_name(name: &str) {
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        errors::raise(errors::invalid_argument(
            "secret name must be 1 to 200 characters without control characters",
        ));
    }
}

fn secret_context(name: &str) -> String {
    format!("sealstore.secret:{name}")
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn put_secret(name: &str, value: &str) {
    check_name(name);
    context::require_scope("write");
    let tenant = pgrx::Uuid::from_bytes(context::tenant());
    let sealed = seal_for_current(value.as_bytes(), &secret_context(name));
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO sealstore.secrets (tenant_id, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            &[tenant.into(), name.into(), sealed.into()],
        )
    })
    .unwrap_or_else(|e| errors::raise(errors::internal(&e)));
}

#[pg_extern(stable, parallel_restricted, strict)]
fn get_secret(name: &str) -> String {
    check_name(name);
    context::require_scope("read");
    let tenant = pgrx::Uuid::from_bytes(context::tenant());
    let sealed = as_owner(|| {
        Spi::get_one_with_args::<Vec<u8>>(
            "SELECT value FROM sealstore.secrets WHERE tenant_id = $1 AND name = $2",
            &[tenant.into(), name.into()],
        )
    });
    let sealed = match sealed {
        Ok(Some(v)) => v,
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition) => {
            errors::raise(errors::not_found("secret does not exist"))
        }
        Err(e) => errors::raise(errors::internal(&e)),
    };
    String::from_utf8(open_for_current(&sealed, &secret_context(name))).unwrap_or_else(|_| {
        errors::raise(errors::plain(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            "secret is not valid UTF-8",
        ))
    })
}

#[pg_extern(volatile, parallel_unsafe, strict)]
fn delete_secret(name: &str) {
    check_name(name);
    context::require_scope("write");
    let tenant = pgrx::Uuid::from_bytes(context::tenant());
    let deleted = as_owner(|| {
        Spi::get_one_with_args::<i64>(
            "WITH d AS (DELETE FROM sealstore.secrets WHERE tenant_id = $1 AND name = $2 RETURNING 1) \
             SELECT count(*) FROM d",
            &[tenant.into(), name.into()],
        )
    })
    .unwrap_or_else(|e| errors::raise(errors::internal(&e)));
    if deleted != Some(1) {
        errors::raise(errors::not_found("secret does not exist"));
    }
}
