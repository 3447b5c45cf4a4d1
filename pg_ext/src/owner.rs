//! Running the extension's own queries as the extension's owner.
//!
//! Applications hold no privileges on `sealstore.*` tables; the functions read keys and write
//! secrets by switching the current user to the owner for the duration of one closure, the way
//! PostgreSQL's own maintenance commands do (`SECURITY_LOCAL_USERID_CHANGE`: no SET ROLE inside).
//! Unlike SECURITY DEFINER this costs nothing on the hot path: encrypt() and decrypt() switch
//! only on a key-cache miss.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;

thread_local! {
    static OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

fn extension_owner() -> pg_sys::Oid {
    if let Some(oid) = OWNER.get() {
        return oid;
    }
    let oid = Spi::get_one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'sealstore'",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        crate::errors::raise(crate::errors::plain(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "extension sealstore is not installed in this database",
        ))
    });
    OWNER.set(Some(oid));
    oid
}

struct Restore {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: restores the values read before the switch; also correct while unwinding
        // from an ERROR (transaction abort would restore them too).
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Runs `f` as the extension's owner.
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    let mut user = pg_sys::Oid::INVALID;
    let mut context = 0i32;
    // SAFETY: plain reads and writes of the backend's current-user state.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let _restore = Restore { user, context };
    f()
}
