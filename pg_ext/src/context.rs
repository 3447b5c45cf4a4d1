//! The tenant context: which tenant this transaction acts for.
//!
//! It lives in backend memory (never in a setting a client could SET) and is cleared when the
//! transaction ends, commit or abort, by a transaction callback registered once per process.
//! Until token verification lands (`sealstore.authenticate`), the only way to set it is
//! `sealstore.act_as_tenant(uuid)`, executable by `sealstore_admin` alone.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::crypto::TenantId;

use crate::errors;
use crate::keycache;

thread_local! {
    static TENANT: Cell<Option<TenantId>> = const { Cell::new(None) };
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
            TENANT.set(None);
            keycache::on_commit();
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            TENANT.set(None);
            keycache::on_abort();
        }
        _ => {}
    }
}

pub fn init() {
    // SAFETY: registering a static callback during library load.
    unsafe { pg_sys::RegisterXactCallback(Some(on_xact_event), std::ptr::null_mut()) };
}

pub fn set_tenant(tenant: TenantId) {
    TENANT.set(Some(tenant));
}

/// The current tenant, or an ERROR: there is no default tenant (fail closed).
pub fn tenant() -> TenantId {
    TENANT
        .get()
        .unwrap_or_else(|| errors::raise(errors::no_tenant_context()))
}

/// Acts for `tenant` until the end of the current transaction. Administrators only (granted to
/// sealstore_admin); it checks that the tenant exists and has not been shredded.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn act_as_tenant(tenant: pgrx::Uuid) {
    let id = *tenant.as_bytes();
    keycache::check_tenant_usable(&id);
    set_tenant(id);
}

/// The tenant this transaction acts for; SQLSTATE 28000 when there is none.
#[pg_extern(stable, parallel_restricted)]
fn current_tenant() -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(tenant())
}
