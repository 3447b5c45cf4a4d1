//! What the two index access methods (`flat`, `hnsw`) share: an `IndexAmRoutine` for an index
//! scanned in order of a distance operator (`ORDER BY column <op> value`, four strategies, no
//! support functions, no uniqueness, no backward, bitmap or parallel scans), the V1 calling
//! convention record of their handlers, a scan's set-up, and VACUUM's statistics.

use pgrx::pg_sys;
use pgrx::{PgBox, PgMemoryContexts};

/// The record every `pg_finfo_<handler>` returns.
pub static FINFO_V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };

/// The handler's result: the shared settings, then `callbacks` (and any setting an access
/// method changes) applied by the caller.
pub fn distance_ordered(
    multicolumn: bool,
    uses_maintenance_work_mem: bool,
    callbacks: impl FnOnce(&mut pg_sys::IndexAmRoutine),
) -> pg_sys::Datum {
    let mut am = unsafe {
        // SAFETY: a zeroed node of the right size, tagged as PostgreSQL's makeNode does.
        PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine)
    };
    am.amstrategies = 4;
    am.amsupport = 0;
    am.amoptsprocnum = 0;
    am.amcanorder = false;
    am.amcanorderbyop = true;
    am.amcanbackward = false;
    am.amcanunique = false;
    am.amcanmulticol = multicolumn;
    am.amoptionalkey = true;
    am.amsearcharray = false;
    am.amsearchnulls = false;
    am.amstorage = false;
    am.amclusterable = false;
    am.ampredlocks = false;
    am.amcanparallel = false;
    am.amcaninclude = false;
    am.amusemaintenanceworkmem = uses_maintenance_work_mem;
    am.amparallelvacuumoptions = 0;
    am.amkeytype = pg_sys::InvalidOid;
    callbacks(&mut am);
    am.into_pg().into()
}

/// `ambeginscan` for a distance-ordered scan whose state is `state`: room for the ORDER BY
/// values the access method reports (as gistbeginscan allots them), and the state attached to
/// the scan's memory context (dropped with it).
///
/// # Safety
/// `index` is an open index; PostgreSQL calls this as its `ambeginscan`.
pub unsafe fn begin_scan<S>(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
    state: S,
) -> pg_sys::IndexScanDesc {
    // SAFETY: the standard set-up of an index scan; the state lives as long as the memory
    // context the executor runs the scan in.
    unsafe {
        let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
        let n = usize::try_from(norderbys).unwrap_or(0).max(1);
        (*scan).xs_orderbyvals = pg_sys::palloc0(n * std::mem::size_of::<pg_sys::Datum>()).cast();
        (*scan).xs_orderbynulls = pg_sys::palloc0(n * std::mem::size_of::<bool>()).cast();
        let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
        (*scan).opaque = state.cast();
        scan
    }
}

/// VACUUM's statistics: those an earlier pass returned, or new zeroed ones.
pub fn stats_or_new(
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    if stats.is_null() {
        // SAFETY: a zeroed palloc of the struct, in VACUUM's memory context.
        unsafe { PgBox::<pg_sys::IndexBulkDeleteResult>::alloc0() }.into_pg()
    } else {
        stats
    }
}
