//! The work of `rotate_column` (sql/procedures.sql), one committed batch at a time: re-encrypt
//! one tenant's values of an application table to the tenant's active key version.
//!
//! The table belongs to the application, and with it its triggers, column defaults, policies
//! and index expressions. They run as the table's owner inside a security-restricted
//! operation, as PostgreSQL's own maintenance commands run them, never with the rights of the
//! administrator who called the procedure; and under a tenant context without scopes, which
//! row-level security policies can read but which opens no value. Values are decrypted and
//! sealed again here, with the tenant's keys, not through SQL functions the table's code could
//! also call.

use pgrx::prelude::*;
use sealstore_core::auth::Identity;
use sealstore_core::crypto::TenantId;

use crate::api::encryption::reencrypt_with;
use crate::runtime::context;
use crate::runtime::errors::{edge, spi, Error, Result};
use crate::runtime::keycache;
use crate::runtime::owner::{self, as_restricted, changed_rows};
use crate::storage::ids::Uuid as _;

/// What one rotation works on: the table, its columns (quoted), and its owner.
struct Target {
    table: String,
    col: String,
    context_col: String,
    tenant_col: String,
    owner: pg_sys::Oid,
}

/// Checks that the caller may read and update the columns (42501; 42703 for a missing
/// column), and resolves the table's name and owner.
fn target(tbl: pg_sys::Oid, col: &str, context_col: &str, tenant_col: &str) -> Result<Target> {
    let may = spi(Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_column_privilege($1, $2, 'SELECT') \
            AND pg_catalog.has_column_privilege($1, $2, 'UPDATE') \
            AND pg_catalog.has_column_privilege($1, $3, 'SELECT') \
            AND pg_catalog.has_column_privilege($1, $4, 'SELECT')",
        &[
            tbl.into(),
            col.into(),
            context_col.into(),
            tenant_col.into(),
        ],
    ))?;
    if may != Some(true) {
        return Err(Error::forbidden(
            "rotate_column needs SELECT and UPDATE on the column and SELECT on its context and tenant columns",
        ));
    }
    let (table, owner) = spi(Spi::get_two_with_args::<String, pg_sys::Oid>(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relowner \
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
             ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
          WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[tbl.into()],
    ))?;
    Ok(Target {
        table: table.expect("a regclass names a table"),
        col: pgrx::spi::quote_identifier(col),
        context_col: pgrx::spi::quote_identifier(context_col),
        tenant_col: pgrx::spi::quote_identifier(tenant_col),
        owner: owner.expect("every table has an owner"),
    })
}

/// For the rest of the transaction: the tenant, for the table's policies, and no scope.
fn scopeless_context(tenant: &TenantId) {
    let subject = format!(
        "rotate_column:{}",
        crate::runtime::owner::session_user_name()
    );
    context::set(Identity {
        tenant: Some(*tenant),
        claims: serde_json::json!({"sub": subject}),
        subject,
        scopes: Vec::new(),
    });
}

/// The condition that selects the tenant's values not yet under key version `$2`.
fn pending(t: &Target) -> String {
    format!(
        "{table} WHERE {tenant_col} OPERATOR(pg_catalog.=) $1 AND {col} IS NOT NULL \
         AND sealstore.envelope_key_version({col}) OPERATOR(pg_catalog.<>) $2",
        table = t.table,
        tenant_col = t.tenant_col,
        col = t.col,
    )
}

/// How many of the tenant's values in the column are not yet under its active key version.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn rotate_column_pending(
    tbl: pg_sys::Oid,
    col: &str,
    context_col: &str,
    tenant: pgrx::Uuid,
    tenant_column: &str,
) -> i64 {
    edge(|| {
        owner::require_writable()?;
        let id = TenantId::from_uuid(&tenant);
        let active = keycache::tenant_keys(&id)?.active;
        let t = target(tbl, col, context_col, tenant_column)?;
        scopeless_context(&id);
        as_restricted(t.owner, || {
            Ok(spi(Spi::get_one_with_args::<i64>(
                &format!("SELECT pg_catalog.count(*) FROM {}", pending(&t)),
                &[tenant.into(), (active as i32).into()],
            ))?
            .unwrap_or(0))
        })
    })
}

/// Re-encrypts up to `batch_size` of the tenant's values in the column to its active key
/// version, locking them first; returns how many. The caller commits.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn rotate_column_batch(
    tbl: pg_sys::Oid,
    col: &str,
    context_col: &str,
    tenant: pgrx::Uuid,
    tenant_column: &str,
    batch_size: i32,
) -> i64 {
    edge(|| {
        owner::require_writable()?;
        let id = TenantId::from_uuid(&tenant);
        let keys = keycache::tenant_keys(&id)?;
        let t = target(tbl, col, context_col, tenant_column)?;
        scopeless_context(&id);
        as_restricted(t.owner, || {
            // FOR UPDATE: through SPI's read-write path.
            let rows = spi(Spi::connect_mut(|client| {
                client
                    .update(
                        &format!(
                            "SELECT ctid::pg_catalog.text, {col}, {ctx}::pg_catalog.text \
                             FROM {pending} LIMIT $3 FOR UPDATE",
                            col = t.col,
                            ctx = t.context_col,
                            pending = pending(&t),
                        ),
                        None,
                        &[
                            tenant.into(),
                            (keys.active as i32).into(),
                            batch_size.into(),
                        ],
                    )?
                    .map(|row| {
                        Ok((
                            row.get::<String>(1)?.unwrap_or_default(),
                            row.get::<Vec<u8>>(2)?.unwrap_or_default(),
                            row.get::<String>(3)?.unwrap_or_default(),
                        ))
                    })
                    .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
            }))?;
            let mut ctids = Vec::with_capacity(rows.len());
            let mut values = Vec::with_capacity(rows.len());
            for (ctid, sealed, context) in rows {
                values.push(reencrypt_with(&keys, &id, &sealed, context.as_bytes())?);
                ctids.push(ctid);
            }
            if ctids.is_empty() {
                return Ok(0);
            }
            changed_rows(
                &format!(
                    "WITH u AS (UPDATE {table} t SET {col} = v.value \
                       FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]::pg_catalog.tid[]), \
                                       pg_catalog.unnest($2::pg_catalog.bytea[])) AS v(row_id, value) \
                      WHERE t.ctid OPERATOR(pg_catalog.=) v.row_id RETURNING 1) \
                     SELECT pg_catalog.count(*) FROM u",
                    table = t.table,
                    col = t.col,
                ),
                &[ctids.into(), values.into()],
            )
        })
    })
}
