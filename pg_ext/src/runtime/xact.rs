//! Transaction callbacks, registered once in `_PG_init` and inherited by every backend: the
//! end of a transaction clears the tenant context and publishes key changes; the end of a
//! savepoint restores or hands on the context.
//!
//! The commit and abort callbacks must never raise an error (an ERROR there takes the cluster
//! down): they only clear memory and bump an atomic counter. Before a commit, a transaction
//! that changed keys writes the WAL record that carries the change to standbys; before a
//! PREPARE it is refused.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::runtime::{context, feed, keycache};

#[pg_guard]
unsafe extern "C-unwind" fn on_xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT => keycache::before_commit(),
        pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => keycache::before_prepare(),
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT => {
            context::clear();
            keycache::on_commit();
            feed::on_commit();
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            context::clear();
            keycache::on_abort();
            feed::on_abort();
        }
        // PREPARE TRANSACTION ends the transaction in this backend too.
        pg_sys::XactEvent::XACT_EVENT_PREPARE => context::clear(),
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
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => context::subtransaction_aborted(my),
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
            context::subtransaction_committed(my, parent)
        }
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
