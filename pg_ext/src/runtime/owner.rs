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
use pgrx::FromDatum;

use crate::runtime::errors::{self, Error, Kind, Result};

thread_local! {
    static OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

fn extension_owner() -> Result<pg_sys::Oid> {
    if let Some(oid) = OWNER.get() {
        return Ok(oid);
    }
    let oid = read_one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'sealstore'",
        &[],
    )
    .ok()
    .flatten()
    .ok_or_else(|| {
        Error::new(
            Kind::NotInPrerequisiteState,
            "extension sealstore is not installed in this database",
        )
        .with_code("not_installed")
    })?;
    OWNER.set(Some(oid));
    Ok(oid)
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
pub fn as_owner<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    as_owner_with(&[], f)
}

/// As [`as_owner`], with more settings for the duration (planner settings of a fixed query).
pub fn as_owner_with<R>(settings: &[(&CStr, &CStr)], f: impl FnOnce() -> Result<R>) -> Result<R> {
    // Looked up under the safe search_path too.
    switched(settings, extension_owner, 0, f)
}

/// Runs `f` as `role` inside a security-restricted operation, with a safe search_path, as
/// PostgreSQL's own maintenance commands run the code of a table's owner (triggers, defaults,
/// policies, index expressions): that code gets the owner's rights, not the caller's, and can
/// neither change role nor leave state behind (temporary objects, SET ROLE).
pub fn as_restricted<R>(role: pg_sys::Oid, f: impl FnOnce() -> Result<R>) -> Result<R> {
    switched(
        &[],
        || Ok(role),
        pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        f,
    )
}

/// Pins search_path (and `settings`) at a new GUC nest level, switches the current user to
/// `role()` with the security-context `flags` added, runs `f`, and restores everything.
fn switched<R>(
    settings: &[(&CStr, &CStr)],
    role: impl FnOnce() -> Result<pg_sys::Oid>,
    flags: i32,
    f: impl FnOnce() -> Result<R>,
) -> Result<R> {
    let mut user = pg_sys::Oid::INVALID;
    let mut context = 0i32;
    // SAFETY: plain reads of the backend's current-user state and GUC nesting, and setting a
    // GUC at a new nest level, as fmgr_security_definer does.
    let restore = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        let guc_level = pg_sys::NewGUCNestLevel();
        let pinned = [(c"search_path", c"pg_catalog, pg_temp")];
        for (name, value) in pinned.iter().chain(settings) {
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
    let role = role()?;
    // SAFETY: as above.
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            role,
            context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32 | flags,
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

/// One row of a query run by [`latest_rows`]: its columns by position (from 1).
pub struct LatestRow {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl LatestRow {
    /// Column `n` (from 1), converted and copied out of SPI's memory; `None` for NULL.
    pub fn get<T: FromDatum>(&self, n: i32) -> Option<T> {
        let mut null = false;
        // SAFETY: `tuple` and `desc` are a row of the SPI result being read and its
        // descriptor, alive until the SPI connection ends; `T::from_datum` copies the value.
        unsafe {
            let datum = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut null);
            T::from_datum(datum, null)
        }
    }
}

/// The rows of one of the extension's own queries, run as the owner and read under the latest
/// committed state, not under the transaction's snapshot.
///
/// Keys, API key rows and JWT keys are read this way: in a REPEATABLE READ or SERIALIZABLE
/// transaction, the transaction's snapshot predates a shred, a revocation or a retirement that
/// committed after it began, and a key reloaded under it would come back to life. A key that
/// is gone in the latest state is gone for every transaction, whatever its isolation level.
pub fn latest_rows<T>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    mut read: impl FnMut(&LatestRow) -> T,
) -> Result<Vec<T>> {
    let sql = std::ffi::CString::new(sql).expect("a fixed query has no NUL byte");
    as_owner(|| {
        errors::spi(Spi::connect(|_client| {
            let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
            let mut values: Vec<pg_sys::Datum> = args
                .iter()
                .map(|a| {
                    a.datum()
                        .map_or(pg_sys::Datum::from(0usize), |d| d.sans_lifetime())
                })
                .collect();
            let nulls: Vec<std::ffi::c_char> = args
                .iter()
                .map(|a| if a.datum().is_some() { b' ' } else { b'n' } as std::ffi::c_char)
                .collect();
            // SAFETY: SPI is connected (Spi::connect) for the whole block; the plan, the
            // argument arrays and the result live until it disconnects. With a snapshot and
            // read_only, SPI runs the query under exactly that snapshot (GetLatestSnapshot's
            // static copy, which SPI copies when it pushes it).
            unsafe {
                let plan =
                    pg_sys::SPI_prepare(sql.as_ptr(), types.len() as i32, types.as_mut_ptr());
                if plan.is_null() {
                    Spi::check_status(pg_sys::SPI_result)?;
                }
                Spi::check_status(pg_sys::SPI_execute_snapshot(
                    plan,
                    values.as_mut_ptr(),
                    nulls.as_ptr(),
                    pg_sys::GetLatestSnapshot(),
                    std::ptr::null_mut(),
                    true,
                    false,
                    0,
                ))?;
                let table = pg_sys::SPI_tuptable;
                let count = usize::try_from(pg_sys::SPI_processed).unwrap_or(0);
                let mut out = Vec::with_capacity(count);
                for i in 0..count {
                    out.push(read(&LatestRow {
                        tuple: *(*table).vals.add(i),
                        desc: (*table).tupdesc,
                    }));
                }
                Ok(out)
            }
        }))
    })
}

/// The first row of one of the extension's own queries, run as the owner, read by `read`;
/// `None` when there is no row. An SPI failure is an internal error.
pub fn owner_row<T>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    read: impl FnOnce(&pgrx::spi::SpiTupleTable<'_>) -> Result<T, pgrx::spi::Error>,
) -> Result<Option<T>> {
    as_owner(|| {
        errors::spi(Spi::connect(|client| {
            let rows = client.select(sql, Some(1), args)?;
            if rows.is_empty() {
                return Ok(None);
            }
            read(&rows.first()).map(Some)
        }))
    })
}

/// Fails with 25006 where nothing may be written: on a hot standby and in a read-only
/// transaction. Every function that writes calls it first, before anything asks for a
/// transaction id (pgrx's read-write SPI path asks at once, which on a standby is an XX000).
pub fn require_writable() -> Result<()> {
    // SAFETY: plain reads of backend state.
    let (recovery, read_only) = unsafe { (pg_sys::RecoveryInProgress(), pg_sys::XactReadOnly) };
    if recovery {
        return Err(Error::new(Kind::ReadOnly, "cannot write on a hot standby")
            .with_hint("Send writes to the primary."));
    }
    if read_only {
        return Err(Error::new(
            Kind::ReadOnly,
            "cannot write in a read-only transaction",
        ));
    }
    Ok(())
}

/// One value of a read-only query (`None` without a row or for NULL), through SPI's read-only
/// path. pgrx's `Spi::get_one` takes the read-write path, which assigns the transaction an id:
/// on a hot standby that fails ("cannot assign TransactionIds during recovery"), and on a
/// primary it costs a read-only transaction a commit record.
pub fn read_one<T: FromDatum + pgrx::IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> std::result::Result<Option<T>, pgrx::spi::Error> {
    Spi::connect(|client| client.select(sql, Some(1), args)?.first().get_one())
}

/// How many rows one of the extension's own statements changed: a statement of the form
/// `WITH c AS (DELETE|UPDATE|INSERT ... RETURNING 1) SELECT count(*) FROM c`, run inside an
/// [`as_owner`] block.
pub fn changed_rows(sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Result<i64> {
    errors::spi(Spi::get_one_with_args::<i64>(sql, args)).map(|n| n.unwrap_or(0))
}
