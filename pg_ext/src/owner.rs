//! Running the extension's own queries as the extension's owner.
//!
//! Applications hold no privileges on `sealstore.*` tables; the functions read keys and write
//! secrets by switching the current user to the owner for the duration of one closure, the way
//! PostgreSQL's own maintenance commands do (`SECURITY_LOCAL_USERID_CHANGE`: no SET ROLE inside).
//! Unlike SECURITY DEFINER this costs nothing on the hot path: encrypt() and decrypt() switch
//! only on a key-cache miss.
//!
//! Like a SECURITY DEFINER function with `SET search_path`, it pins `search_path` to
//! `pg_catalog, pg_temp` for the duration: otherwise a caller could put a schema of its own in
//! front of pg_catalog, and the owner (a superuser) would run the caller's `=` operator.

use std::cell::Cell;
use std::ffi::CStr;

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
    guc_level: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: restores the values saved before the switch. While unwinding from an ERROR
        // the transaction (or subtransaction) abort pops the GUC level and restores the user
        // itself, so only the user id, a plain assignment, is restored here then.
        unsafe {
            if !std::thread::panicking() {
                pg_sys::AtEOXact_GUC(true, self.guc_level);
            }
            pg_sys::SetUserIdAndSecContext(self.user, self.context);
        }
    }
}

/// Runs `f` as the extension's owner, with a safe search_path.
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    as_owner_with(&[], f)
}

/// As [`as_owner`], with more settings for the duration (planner settings of a fixed query).
pub fn as_owner_with<R>(settings: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    let mut user = pg_sys::Oid::INVALID;
    let mut context = 0i32;
    // SAFETY: plain reads of the backend's current-user state and GUC nesting, and setting a
    // GUC at a new nest level, as fmgr_security_definer does.
    let restore = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        let guc_level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        for (name, value) in settings {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        Restore {
            user,
            context,
            guc_level,
        }
    };
    // Looked up under the safe search_path too.
    let owner = extension_owner();
    // SAFETY: as above.
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            owner,
            context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let result = f();
    drop(restore);
    result
}

/// The session user's name (the login role), for audit subjects.
pub fn session_user_name() -> String {
    // SAFETY: the session user exists for the whole session; the name is copied at once.
    unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// The first row of one of the extension's own queries, run as the owner, read by `read`;
/// `None` when there is no row. An SPI failure is an internal ERROR.
pub fn owner_row<T>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    read: impl FnOnce(&pgrx::spi::SpiTupleTable<'_>) -> Result<T, pgrx::spi::Error>,
) -> Option<T> {
    as_owner(|| {
        crate::errors::spi(Spi::connect(|client| {
            let rows = client.select(sql, Some(1), args)?;
            if rows.is_empty() {
                return Ok(None);
            }
            read(&rows.first()).map(Some)
        }))
    })
}
