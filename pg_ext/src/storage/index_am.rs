//! What the two index access methods (`flat`, `hnsw`) share: an `IndexAmRoutine` for an index
//! scanned in order of a distance operator (`ORDER BY column <op> value`, four strategies, no
//! support functions, no uniqueness, no backward, bitmap or parallel scans), and the V1
//! calling convention record of their handlers.

use pgrx::pg_sys;
use pgrx::PgBox;

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
