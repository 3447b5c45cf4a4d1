//! The tenant context: who this transaction acts for.
//!
//! It lives in backend memory (never in a setting a client could SET or RESET) and is set only
//! by `sealstore.authenticate(token)` after verifying the token, or by administrators through
//! `sealstore.act_as_tenant(uuid)`. It is cleared when the transaction ends, commit or abort,
//! by a transaction callback registered once per process, so a pooled connection never carries
//! it into the next client's transaction.
//!
//! Savepoints: a context set inside a subtransaction that is rolled back (ROLLBACK TO
//! SAVEPOINT, or a PL/pgSQL exception block) is undone, and the context from before the
//! savepoint is back, as with `SET LOCAL`. Released savepoints keep it.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::pg_sys;
use sealstore_core::auth::Identity;
use sealstore_core::crypto::TenantId;

use crate::runtime::errors::{self, Result};
use crate::runtime::owner;

thread_local! {
    static CONTEXT: RefCell<Option<Rc<Identity>>> = const { RefCell::new(None) };
    /// (subtransaction id that replaced the context, the context it replaced), innermost last.
    static SAVED: RefCell<Vec<(pg_sys::SubTransactionId, Option<Rc<Identity>>)>> =
        const { RefCell::new(Vec::new()) };
}

/// Forgets the context: the transaction ended (see `xact`).
pub fn clear() {
    CONTEXT.replace(None);
    SAVED.with_borrow_mut(Vec::clear);
}

/// A savepoint (subtransaction `my`) was rolled back: the context from before it is back.
pub fn subtransaction_aborted(my: pg_sys::SubTransactionId) {
    SAVED.with_borrow_mut(|saved| {
        // Subtransaction ids grow within a transaction, so everything this subtransaction (or
        // a child of it) replaced is at the end; the oldest of it is the state to restore.
        if let Some(pos) = saved.iter().position(|(id, _)| *id >= my) {
            let before = saved[pos].1.clone();
            saved.truncate(pos);
            CONTEXT.replace(before);
        }
    });
}

/// A savepoint was released: its parent now owns a change it made.
pub fn subtransaction_committed(my: pg_sys::SubTransactionId, parent: pg_sys::SubTransactionId) {
    SAVED.with_borrow_mut(|saved| {
        // Keep only the oldest saved state.
        if saved.last().is_some_and(|(id, _)| *id == my) {
            let (_, before) = saved.pop().expect("checked");
            if saved.last().is_none_or(|(id, _)| *id != parent) {
                saved.push((parent, before));
            }
        }
    });
}

/// Makes `identity` the context until the end of the current transaction (or of the current
/// subtransaction, if that is rolled back).
pub fn set(identity: Identity) {
    // SAFETY: a plain read of the current subtransaction id.
    let sub = unsafe { pg_sys::GetCurrentSubTransactionId() };
    // PostgreSQL's TopSubTransactionId: the transaction itself, outside any savepoint.
    let top: pg_sys::SubTransactionId = 1;
    let previous = CONTEXT.replace(Some(Rc::new(identity)));
    if sub != top {
        SAVED.with_borrow_mut(|saved| {
            if saved.last().is_none_or(|(id, _)| *id != sub) {
                saved.push((sub, previous));
            }
        });
    }
}

/// The context, for every reader (tenant, encryption, secrets, claims). Refused inside a WITH
/// HOLD cursor: its rows outlive the transaction and could be fetched by the next client of a
/// pooled connection, which would then read this transaction's tenant.
pub fn get() -> Result<Option<Rc<Identity>>> {
    // SAFETY: ActivePortal is the executing portal (or null); only its options are read.
    let in_holdable_cursor = unsafe {
        let portal = pg_sys::ActivePortal;
        !portal.is_null() && (*portal).cursorOptions & pg_sys::CURSOR_OPT_HOLD as i32 != 0
    };
    if in_holdable_cursor {
        return Err(
            errors::not_supported("a WITH HOLD cursor cannot use the tenant context").with_hint(
                "Declare the cursor WITHOUT HOLD: the context ends with the transaction.",
            ),
        );
    }
    Ok(CONTEXT.with_borrow(Clone::clone))
}

/// The current tenant, or 28000: there is no default tenant (fail closed).
pub fn tenant() -> Result<TenantId> {
    get()?
        .and_then(|c| c.tenant)
        .ok_or_else(errors::no_tenant_context)
}

/// The current tenant, when the context grants one of `scopes`: 28000 without a tenant,
/// 42501 without the scope. What every function that uses the tenant's keys starts with.
pub fn tenant_with(scopes: &[&'static str]) -> Result<TenantId> {
    let identity = get()?.ok_or_else(errors::no_tenant_context)?;
    let tenant = identity.tenant.ok_or_else(errors::no_tenant_context)?;
    if !scopes.iter().any(|s| identity.has_scope(s)) {
        return Err(errors::missing_scope(&scopes.join(" or ")));
    }
    Ok(tenant)
}

/// 42501 unless the context grants `scope`; 28000 without a context.
pub fn require_scope(scope: &'static str) -> Result<()> {
    let identity = get()?.ok_or_else(errors::no_tenant_context)?;
    if !identity.has_scope(scope) {
        return Err(errors::missing_scope(scope));
    }
    Ok(())
}

/// What an administrative function may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminReach {
    /// Members of sealstore_admin, and tokens with scope `admin` that name no tenant.
    All,
    /// A token with scope `admin` that names a tenant: that tenant only.
    Tenant(TenantId),
}

impl AdminReach {
    /// Whether this reach covers `tenant`.
    pub fn covers(self, tenant: &TenantId) -> bool {
        match self {
            Self::All => true,
            Self::Tenant(t) => t == *tenant,
        }
    }
}

/// Gate of the tenant and key administration functions, which both roles may EXECUTE: the
/// caller must be a member of sealstore_admin, or this transaction must have authenticated a
/// credential with scope `admin` (the gateway's path). 42501 otherwise.
pub fn require_admin() -> Result<AdminReach> {
    let db_admin = owner::read_one::<bool>(
        "SELECT pg_catalog.pg_has_role(current_user, 'sealstore_admin', 'USAGE')",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if db_admin {
        return Ok(AdminReach::All);
    }
    match get()? {
        Some(identity) if identity.has_scope("admin") => Ok(match identity.tenant {
            None => AdminReach::All,
            Some(t) => AdminReach::Tenant(t),
        }),
        Some(_) => Err(errors::missing_scope("admin")),
        None => Err(errors::not_admin()),
    }
}

/// As [`require_admin`], for functions that act on the whole system (new tenants, JWT keys):
/// a tenant's own admin credential is not enough.
pub fn require_system_admin() -> Result<()> {
    if require_admin()? != AdminReach::All {
        return Err(errors::not_system_admin());
    }
    Ok(())
}

/// As [`require_admin`], for an action on `tenant`: a tenant's admin credential reaches only
/// its own tenant, and another tenant looks as if it did not exist (42704).
pub fn require_admin_of(tenant: &TenantId) -> Result<()> {
    if !require_admin()?.covers(tenant) {
        return Err(errors::unknown_tenant());
    }
    Ok(())
}

/// Who to name in an audit row besides the login role: the subject of the credential this
/// transaction authenticated with, if any.
pub fn audit_subject() -> Option<String> {
    CONTEXT.with_borrow(|c| c.as_ref().map(|i| i.subject.clone()))
}
