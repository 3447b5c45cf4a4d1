//! The tenant context's SQL functions: who this transaction acts for (`runtime::context`).

use pgrx::prelude::*;
use sealstore_core::auth::Identity;

use crate::runtime::context::{get, set, tenant};
use crate::runtime::errors::edge;
use crate::runtime::keycache;
use crate::storage::ids::Uuid as _;
use sealstore_core::ids::TenantId;

/// Acts for `tenant` until the end of the current transaction, with scopes read and write.
/// Administrators only (granted to sealstore_admin); it checks that the tenant exists and has
/// not been shredded.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn act_as_tenant(tenant: pgrx::Uuid) {
    edge(|| {
        let id = TenantId::from_uuid(&tenant);
        keycache::check_tenant_usable(&id)?;
        let subject = format!("admin:{}", crate::runtime::owner::session_user_name());
        set(Identity {
            tenant: Some(id),
            claims: serde_json::json!({"sub": subject, "tenant": tenant.to_string(), "scope": "read write"}),
            subject,
            scopes: vec!["read".into(), "write".into()],
        });
        Ok(())
    })
}

/// The tenant this transaction acts for; SQLSTATE 28000 when there is none.
#[pg_extern(stable, parallel_restricted)]
fn current_tenant() -> pgrx::Uuid {
    edge(|| tenant().map(|t| t.uuid()))
}

/// The subject of the credential this transaction authenticated with; NULL without a context.
#[pg_extern(stable, parallel_restricted)]
fn current_subject() -> Option<String> {
    edge(|| Ok(get()?.map(|c| c.subject.clone())))
}

/// The verified claims of this transaction's credential; NULL without a context.
#[pg_extern(stable, parallel_restricted)]
fn claims() -> Option<pgrx::JsonB> {
    edge(|| Ok(get()?.map(|c| pgrx::JsonB(c.claims.clone()))))
}

/// Whether this transaction's credential grants `scope`; false without a context.
#[pg_extern(stable, parallel_restricted, strict)]
fn has_scope(scope: &str) -> bool {
    edge(|| Ok(get()?.is_some_and(|c| c.has_scope(scope))))
}

// Tenant isolation's SQL: its policies call current_tenant(), and it isolates the documents
// tables too.
pgrx::extension_sql_file!(
    "../../../sql/isolation.sql",
    name = "isolation",
    requires = [current_tenant, "documents_schema"],
);
