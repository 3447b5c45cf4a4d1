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
use pgrx::prelude::*;
use sealstore_core::auth::Identity;
use sealstore_core::crypto::TenantId;

use crate::runtime::errors;
use crate::runtime::keycache;

thread_local! {
    static CONTEXT: RefCell<Option<Rc<Identity>>> = const { RefCell::new(None) };
    /// (subtransaction id that replaced the context, the context it replaced), innermost last.
    static SAVED: RefCell<Vec<(pg_sys::SubTransactionId, Option<Rc<Identity>>)>> =
        const { RefCell::new(Vec::new()) };
}

fn clear() {
    CONTEXT.replace(None);
    SAVED.with_borrow_mut(Vec::clear);
}

/// Registered once in `_PG_init`; inherited by every backend. Must never raise an error: it only
/// clears memory and, after a commit that changed keys, bumps the shared key epoch.
#[pg_guard]
unsafe extern "C-unwind" fn on_xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT => {
            clear();
            keycache::on_commit();
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            clear();
            keycache::on_abort();
        }
        // PREPARE TRANSACTION ends the transaction in this backend too.
        pg_sys::XactEvent::XACT_EVENT_PREPARE => clear(),
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact_event(
    event: pg_sys::SubXactEvent::Type,
    my: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => SAVED.with_borrow_mut(|saved| {
            // Subtransaction ids grow within a transaction, so everything this subtransaction
            // (or a child of it) replaced is at the end; the oldest of it is the state to restore.
            if let Some(pos) = saved.iter().position(|(id, _)| *id >= my) {
                let before = saved[pos].1.clone();
                saved.truncate(pos);
                CONTEXT.replace(before);
            }
        }),
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => SAVED.with_borrow_mut(|saved| {
            // Released: the parent now owns the change. Keep only the oldest saved state.
            if saved.last().is_some_and(|(id, _)| *id == my) {
                let (_, before) = saved.pop().expect("checked");
                if saved.last().is_none_or(|(id, _)| *id != parent) {
                    saved.push((parent, before));
                }
            }
        }),
        _ => {}
    }
}

pub fn init() {
    // SAFETY: registering static callbacks during library load.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact_event), std::ptr::null_mut());
    }
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
pub fn get() -> Option<Rc<Identity>> {
    // SAFETY: ActivePortal is the executing portal (or null); only its options are read.
    let in_holdable_cursor = unsafe {
        let portal = pg_sys::ActivePortal;
        !portal.is_null() && (*portal).cursorOptions & pg_sys::CURSOR_OPT_HOLD as i32 != 0
    };
    if in_holdable_cursor {
        errors::raise(
            errors::plain(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "a WITH HOLD cursor cannot use the tenant context",
            )
            .set_hint("Declare the cursor WITHOUT HOLD: the context ends with the transaction."),
        );
    }
    CONTEXT.with_borrow(Clone::clone)
}

/// The current tenant, or an ERROR: there is no default tenant (fail closed).
pub fn tenant() -> TenantId {
    get()
        .and_then(|c| c.tenant)
        .unwrap_or_else(|| errors::raise(errors::no_tenant_context()))
}

/// The current tenant, when the context grants one of `scopes`: 28000 without a tenant,
/// 42501 without the scope. What every function that uses the tenant's keys starts with.
pub fn tenant_with(scopes: &[&'static str]) -> TenantId {
    let identity = get().unwrap_or_else(|| errors::raise(errors::no_tenant_context()));
    let Some(tenant) = identity.tenant else {
        errors::raise(errors::no_tenant_context())
    };
    if !scopes.iter().any(|s| identity.has_scope(s)) {
        errors::raise(errors::missing_scope(&scopes.join(" or ")));
    }
    tenant
}

/// Raises 42501 unless the context grants `scope`; 28000 without a context.
pub fn require_scope(scope: &'static str) {
    let Some(identity) = get() else {
        errors::raise(errors::no_tenant_context())
    };
    if !identity.has_scope(scope) {
        errors::raise(errors::missing_scope(scope));
    }
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
pub fn require_admin() -> AdminReach {
    let db_admin = Spi::get_one::<bool>(
        "SELECT pg_catalog.pg_has_role(current_user, 'sealstore_admin', 'USAGE')",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if db_admin {
        return AdminReach::All;
    }
    match get() {
        Some(identity) if identity.has_scope("admin") => match identity.tenant {
            None => AdminReach::All,
            Some(t) => AdminReach::Tenant(t),
        },
        Some(_) => errors::raise(errors::missing_scope("admin")),
        None => errors::raise(errors::plain(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "administration needs the sealstore_admin role or a credential with scope admin",
        )),
    }
}

/// As [`require_admin`], for functions that act on the whole system (new tenants, JWT keys):
/// a tenant's own admin credential is not enough.
pub fn require_system_admin() {
    if require_admin() != AdminReach::All {
        errors::raise(errors::plain(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "this needs the sealstore_admin role or an admin credential that names no tenant",
        ));
    }
}

/// As [`require_admin`], for an action on `tenant`: a tenant's admin credential reaches only
/// its own tenant, and another tenant looks as if it did not exist (42704).
pub fn require_admin_of(tenant: &TenantId) {
    if !require_admin().covers(tenant) {
        errors::raise(errors::unknown_tenant());
    }
}

/// Who to name in an audit row besides the login role: the subject of the credential this
/// transaction authenticated with, if any.
pub fn audit_subject() -> Option<String> {
    CONTEXT.with_borrow(|c| c.as_ref().map(|i| i.subject.clone()))
}

/// Acts for `tenant` until the end of the current transaction, with scopes read and write.
/// Administrators only (granted to sealstore_admin); it checks that the tenant exists and has
/// not been shredded.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn act_as_tenant(tenant: pgrx::Uuid) {
    let id = *tenant.as_bytes();
    keycache::check_tenant_usable(&id);
    let subject = format!("admin:{}", crate::runtime::owner::session_user_name());
    set(Identity {
        tenant: Some(id),
        claims: serde_json::json!({"sub": subject, "tenant": tenant.to_string(), "scope": "read write"}),
        subject,
        scopes: vec!["read".into(), "write".into()],
    });
}

/// The tenant this transaction acts for; SQLSTATE 28000 when there is none.
#[pg_extern(stable, parallel_restricted)]
fn current_tenant() -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(tenant())
}

/// The subject of the credential this transaction authenticated with; NULL without a context.
#[pg_extern(stable, parallel_restricted)]
fn current_subject() -> Option<String> {
    get().map(|c| c.subject.clone())
}

/// The verified claims of this transaction's credential; NULL without a context.
#[pg_extern(stable, parallel_restricted)]
fn claims() -> Option<pgrx::JsonB> {
    get().map(|c| pgrx::JsonB(c.claims.clone()))
}

/// Whether this transaction's credential grants `scope`; false without a context.
#[pg_extern(stable, parallel_restricted, strict)]
fn has_scope(scope: &str) -> bool {
    get().is_some_and(|c| c.has_scope(scope))
}
