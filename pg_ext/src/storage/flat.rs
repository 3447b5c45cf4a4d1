//! `flat`: an exact index access method for `ORDER BY column <op> query LIMIT k` over a
//! `vector` column, for the four distance operators (`CREATE INDEX ... USING flat (column)`).
//!
//! Without it such a query is a sequential scan that calls the operator through the function
//! manager for every row and sorts what it keeps: the executor's overhead and the buffer
//! mapping lookup for every page were most of its time. A `flat` scan scores every visible row
//! of the table where it lies in the shared buffers, with the page reader of `search`
//! (`heap::visible_rows`), into a bounded top-k, and hands the rows back nearest first. The
//! results are exactly the sequential scan's: the same kernels give the same distances, in
//! PostgreSQL's float8 order, then the rows whose vector is NULL.
//!
//! The index stores nothing: the vectors it would hold are already in the table, in line (the
//! type's MAIN storage), and a copy would double what a scan reads without saving a page. So
//! it is never out of date, and inserts, updates and VACUUM cost nothing. It names rows by their
//! root TIDs, as any index does, so the executor fetches each returned row the usual way and
//! applies the query's other conditions.
//!
//! Since the access method does not see the LIMIT, a scan keeps the nearest `FIRST_BATCH` rows
//! first; a query that consumes them all (a filter that rejects most rows, or no LIMIT) gets the
//! next rows from another pass, each twice as large as the last. The planner's cost for the
//! index is one pass over the table, so it prefers a sequential scan and a sort when the whole
//! table is wanted in order.

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::distance::Metric;
use sealstore_core::topk::{Rank, TopK};

use crate::runtime::errors::{self, Error, Kind, OrRaise};
use crate::storage::heap;
use crate::storage::pages;
use crate::storage::vector;

/// Rows kept by a scan's first pass.
const FIRST_BATCH: usize = 1000;

/// The operator class's strategy numbers (sql/flat.sql).
fn metric_of(strategy: pg_sys::StrategyNumber) -> Metric {
    match strategy {
        1 => Metric::L2,
        2 => Metric::InnerProduct,
        3 => Metric::Cosine,
        4 => Metric::L1,
        _ => errors::raise(Error::new(
            Kind::Internal,
            "flat index scans order only by <->, <#>, <=> or <+>",
        )),
    }
}

/// The index AM handler: what `CREATE ACCESS METHOD flat` names.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn flat_handler(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    crate::storage::index_am::distance_ordered(false, false, |am| {
        am.ambuild = Some(build);
        am.ambuildempty = Some(build_empty);
        am.aminsert = Some(insert);
        am.ambulkdelete = Some(bulk_delete);
        am.amvacuumcleanup = Some(vacuum_cleanup);
        am.amcostestimate = Some(cost_estimate);
        am.amoptions = Some(options);
        am.amvalidate = Some(validate);
        am.ambeginscan = Some(begin_scan);
        am.amrescan = Some(rescan);
        am.amgettuple = Some(get_tuple);
        am.amendscan = Some(end_scan);
    })
}

/// The V1 calling convention record of `flat_handler`.
#[no_mangle]
pub extern "C" fn pg_finfo_flat_handler() -> &'static pg_sys::Pg_finfo_record {
    &crate::storage::index_am::FINFO_V1
}

fn unsupported(message: &'static str) -> ! {
    errors::raise(Error::new(Kind::FeatureNotSupported, message))
}

/// CREATE INDEX: checks the definition and counts the table's rows (the statistics that the
/// build reports become the table's row count); nothing is written.
#[pg_guard]
unsafe extern "C-unwind" fn build(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    // SAFETY: PostgreSQL passes an open heap, its new index and the index's description.
    unsafe {
        if (*info).ii_NumIndexAttrs != 1 {
            unsupported("a flat index has exactly one column");
        }
        if (*info).ii_IndexAttrNumbers[0] <= 0 {
            unsupported("a flat index is on a column, not an expression");
        }
        if !(*info).ii_Predicate.is_null() {
            unsupported("a flat index cannot be partial");
        }
        let mut rows = 0f64;
        let counted = pg_sys::table_index_build_scan(
            heap,
            index,
            info,
            true,
            false,
            Some(count_row),
            std::ptr::addr_of_mut!(rows).cast(),
            std::ptr::null_mut(),
        );
        let mut result = PgBox::<pg_sys::IndexBuildResult>::alloc0();
        result.heap_tuples = counted;
        result.index_tuples = rows;
        result.into_pg()
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn count_row(
    _index: pg_sys::Relation,
    _tid: pg_sys::ItemPointer,
    _values: *mut pg_sys::Datum,
    _isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the f64 that `build` passed.
    unsafe { *state.cast::<f64>() += 1.0 };
}

/// An unlogged table's empty index: nothing to write either.
#[pg_guard]
unsafe extern "C-unwind" fn build_empty(_index: pg_sys::Relation) {}

/// A new or updated row needs no index entry: a scan reads the table itself.
// The signature is PostgreSQL's (aminsert_function).
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn insert(
    _index: pg_sys::Relation,
    _values: *mut pg_sys::Datum,
    _isnull: *mut bool,
    _tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _unchanged: bool,
    _info: *mut pg_sys::IndexInfo,
) -> bool {
    false
}

/// VACUUM: no entries to remove. The index's row count is the table's.
#[pg_guard]
unsafe extern "C-unwind" fn bulk_delete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    _callback: pg_sys::IndexBulkDeleteCallback,
    _state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: as for `vacuum_cleanup`.
    unsafe { vacuum_cleanup(info, stats) }
}

#[pg_guard]
unsafe extern "C-unwind" fn vacuum_cleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: `info` is VACUUM's description of the index; `stats` is null or palloc'd.
    unsafe {
        let stats = crate::storage::index_am::stats_or_new(stats);
        (*stats).num_pages = 0;
        (*stats).estimated_count = (*info).estimated_count;
        (*stats).num_index_tuples = (*info).num_heap_tuples;
        stats
    }
}

/// The planner's cost: one pass over the table before the first row (read each page, compute
/// each distance), then only the fetch of each row returned. A path that does not order by
/// distance is not one this index offers.
// The signature is PostgreSQL's (amcostestimate_function).
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn cost_estimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: PostgreSQL passes the path being costed and the outputs to fill.
    unsafe {
        let mut costs: pg_sys::GenericCosts = std::mem::zeroed();
        pg_sys::genericcostestimate(root, path, loop_count, &mut costs);
        let rel = (*(*path).indexinfo).rel;
        let pass =
            (*rel).pages as f64 * pg_sys::seq_page_cost + (*rel).tuples * pg_sys::cpu_operator_cost;
        if (*path).indexorderbys.is_null() {
            // A scan without a distance to order by refuses (`query_of`). The planner makes
            // no such path today (the operator class has no search operators, and the index
            // no predicate and no index-only scans); should it, this cost ranks it last among
            // paths with as many disabled nodes.
            *startup = 2.0 * pg_sys::disable_cost + pass;
            *total = *startup;
        } else {
            *startup = pass;
            *total = pass + costs.indexTotalCost - costs.indexStartupCost;
        }
        *selectivity = 1.0;
        *correlation = 0.0;
        *pages = 0.0;
    }
}

/// The planner hook that came before ours, called first.
static mut NEXT_GET_RELATION_INFO: pg_sys::get_relation_info_hook_type = None;

/// Installs the planner hook below (from `_PG_init`).
pub fn init() {
    // SAFETY: library load runs single-threaded; the previous hook is kept and called.
    unsafe {
        NEXT_GET_RELATION_INFO = pg_sys::get_relation_info_hook;
        pg_sys::get_relation_info_hook = Some(get_relation_info);
    }
}

/// Hides a table's flat indexes (and its hnsw indexes without a key column) from the planner
/// for a query in which a row-level security
/// policy (or a security barrier view) filters that table. A flat scan's pass would score the
/// rows the policy hides before the executor drops them, so its time would follow other
/// tenants' data, and a vector of other dimensions in another tenant's row would fail the
/// query. Such a query gets the plan it would get without the index, whatever the planner's
/// settings (PostgreSQL 18 ranks paths by how many disabled nodes they hold before their cost,
/// so no cost could keep the index out). A scan that starts under a policy anyway refuses
/// (the check in `get_tuple`).
#[pg_guard]
unsafe extern "C-unwind" fn get_relation_info(
    root: *mut pg_sys::PlannerInfo,
    relation: pg_sys::Oid,
    inhparent: bool,
    rel: *mut pg_sys::RelOptInfo,
) {
    // SAFETY: the planner passes its state and the relation being planned; `indexlist` is a
    // list of IndexOptInfo that get_relation_info just built, and the RTE array covers
    // `rel->relid`.
    unsafe {
        if let Some(next) = NEXT_GET_RELATION_INFO {
            next(root, relation, inhparent, rel);
        }
        let list = (*rel).indexlist;
        if list.is_null() || (*root).simple_rte_array.is_null() {
            return;
        }
        if !filtered_by_policy(root, (*rel).relid) {
            return;
        }
        // An index is a flat one when the planner would cost it with this access method's
        // function; an hnsw index without a key column is one graph of every tenant's rows,
        // which a walk would read in the same way.
        let flat = cost_estimate as unsafe extern "C-unwind" fn(_, _, _, _, _, _, _, _) as usize;
        let hnsw = crate::storage::hnsw::COST_ESTIMATE as usize;
        let mut kept: *mut pg_sys::List = std::ptr::null_mut();
        for i in 0..usize::try_from((*list).length).unwrap_or(0) {
            let info = (*(*list).elements.add(i))
                .ptr_value
                .cast::<pg_sys::IndexOptInfo>();
            let am = (*info).amcostestimate.map(|f| f as usize);
            let shared_graph = am == Some(hnsw) && (*info).nkeycolumns == 1;
            if am != Some(flat) && !shared_graph {
                kept = pg_sys::lappend(kept, info.cast());
            }
        }
        (*rel).indexlist = kept;
    }
}

/// Whether a row-level security policy (or a security barrier view) filters the relation at
/// range table index `relid`. A partition or inheritance child carries no quals of its own
/// (the planner gives it its parent's), so the question goes to the top of its append
/// hierarchy.
///
/// # Safety
/// `root` is the planner state of the relation being planned.
pub(crate) unsafe fn filtered_by_policy(
    root: *mut pg_sys::PlannerInfo,
    mut relid: pg_sys::Index,
) -> bool {
    // SAFETY: the RTE and append-relation arrays cover every index of this query level.
    unsafe {
        loop {
            let entry = *(*root).simple_rte_array.add(relid as usize);
            if !entry.is_null() && !(*entry).securityQuals.is_null() {
                return true;
            }
            let parents = (*root).append_rel_array;
            if parents.is_null() {
                return false;
            }
            let info = *parents.add(relid as usize);
            if info.is_null() || (*info).parent_relid == relid {
                return false;
            }
            relid = (*info).parent_relid;
        }
    }
}

/// A flat index takes no storage parameters.
#[pg_guard]
unsafe extern "C-unwind" fn options(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    if validate && !reloptions.is_null() {
        errors::raise(Error::new(
            Kind::InvalidArgument,
            "a flat index takes no storage parameters",
        ));
    }
    std::ptr::null_mut()
}

/// The operator classes are the extension's own (sql/flat.sql).
#[pg_guard]
unsafe extern "C-unwind" fn validate(_opclass: pg_sys::Oid) -> bool {
    true
}

/// Where a scan is in the order of its rows.
#[derive(Clone, Copy)]
enum Phase {
    /// Rows with a vector, nearest first; after `Some(rank)`, only rows ranked after it.
    Vectors(Option<Rank>),
    /// Rows without a distance (a NULL vector, or every row for a NULL query), in TID order;
    /// after `Some(id)`, only rows after it.
    Nulls(Option<[u8; 16]>),
    Done,
}

impl Phase {
    fn next(self) -> Phase {
        match self {
            Phase::Vectors(_) => Phase::Nulls(None),
            Phase::Nulls(_) | Phase::Done => Phase::Done,
        }
    }
}

/// A scan's state, attached to its memory context (dropped with it, also after an error).
struct Scan {
    /// The query and its metric (None for a NULL query), once read.
    query: Option<Option<(Vec<f32>, Metric)>>,
    phase: Phase,
    /// The last pass's rows, nearest first, each with whether its distance is NULL.
    batch: Vec<(Rank, bool)>,
    /// How many of them have been returned.
    returned: usize,
    /// Whether the last pass found all the rows left in its phase.
    phase_complete: bool,
    /// How many rows the next pass keeps.
    size: usize,
}

impl Scan {
    fn new() -> Scan {
        Scan {
            query: None,
            phase: Phase::Vectors(None),
            batch: Vec::new(),
            returned: 0,
            phase_complete: false,
            size: FIRST_BATCH,
        }
    }
}

/// A row's rank key for a TID: the id's bytes order as the TID does.
fn tid_id(tid: &pg_sys::ItemPointerData) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..2].copy_from_slice(&tid.ip_blkid.bi_hi.to_be_bytes());
    id[2..4].copy_from_slice(&tid.ip_blkid.bi_lo.to_be_bytes());
    id[4..6].copy_from_slice(&tid.ip_posid.to_be_bytes());
    id
}

fn id_tid(id: &[u8; 16]) -> pg_sys::ItemPointerData {
    pg_sys::ItemPointerData {
        ip_blkid: pg_sys::BlockIdData {
            bi_hi: u16::from_be_bytes([id[0], id[1]]),
            bi_lo: u16::from_be_bytes([id[2], id[3]]),
        },
        ip_posid: u16::from_be_bytes([id[4], id[5]]),
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin_scan(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
) -> pg_sys::IndexScanDesc {
    // SAFETY: PostgreSQL calls this as the access method's ambeginscan.
    unsafe { crate::storage::index_am::begin_scan(index, nkeys, norderbys, Scan::new()) }
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(
    scan: pg_sys::IndexScanDesc,
    _keys: pg_sys::ScanKey,
    _nkeys: std::ffi::c_int,
    orderbys: pg_sys::ScanKey,
    norderbys: std::ffi::c_int,
) {
    // SAFETY: `scan` was made by `begin_scan`; `orderbys` holds `norderbys` keys, and the scan
    // has room for as many.
    unsafe {
        if norderbys > 0 && !orderbys.is_null() {
            std::ptr::copy(
                orderbys,
                (*scan).orderByData,
                usize::try_from(norderbys).unwrap_or(0),
            );
        }
        *(*scan).opaque.cast::<Scan>() = Scan::new();
    }
}

/// The query vector and metric of the scan's ORDER BY key, or None for a NULL query.
///
/// # Safety
/// `scan` must be a flat scan after `rescan`.
unsafe fn query_of(scan: pg_sys::IndexScanDesc) -> Option<(Vec<f32>, Metric)> {
    // SAFETY: per the contract; a non-null argument of a vector operator is a vector datum.
    unsafe {
        if (*scan).numberOfOrderBys != 1 {
            unsupported("a flat index scan orders by one distance");
        }
        let key = &*(*scan).orderByData;
        let metric = metric_of(key.sk_strategy);
        if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
            return None;
        }
        let query =
            vector::VectorArg::from_datum(key.sk_argument, false).expect("a non-null datum");
        Some((query.0.to_vec(), metric))
    }
}

/// One pass over the table: the next `state.size` rows of the current phase, in order.
///
/// # Safety
/// As for `query_of`.
unsafe fn pass(scan: pg_sys::IndexScanDesc, state: &mut Scan) {
    // SAFETY: per the contract; the heap is open for the scan, under its snapshot.
    unsafe {
        let heap = (*scan).heapRelation;
        let att = *(*(*(*scan).indexRelation).rd_index).indkey.values.as_ptr();
        let snapshot = (*scan).xs_snapshot;
        let query = state
            .query
            .as_ref()
            .and_then(|q| q.as_ref())
            .map(|(q, m)| (q.as_slice(), *m));
        let mut top: TopK<bool> = TopK::new(state.size);
        match (state.phase, query) {
            (Phase::Vectors(after), Some((query, metric))) => {
                let mut scratch = Vec::new();
                heap::visible_rows(heap, snapshot, att, |tid, value| {
                    let Some(value) = value else { return };
                    let stored = vector::stored(value, &mut scratch).or_raise();
                    vector::same_dims(stored, query).or_raise();
                    let rank = Rank {
                        distance: metric.distance(stored, query),
                        id: tid_id(&tid),
                    };
                    if after.is_none_or(|a| rank.cmp_sql(&a).is_gt()) {
                        top.offer(rank, || false);
                    }
                });
            }
            (Phase::Nulls(after), query) => {
                let every_row = query.is_none();
                heap::visible_rows(heap, snapshot, att, |tid, value| {
                    let id = tid_id(&tid);
                    if (every_row || value.is_none()) && after.is_none_or(|a| id > a) {
                        top.offer(Rank { distance: 0.0, id }, || true);
                    }
                });
            }
            (Phase::Vectors(_), None) | (Phase::Done, _) => {}
        }
        state.batch = top.into_sorted();
        state.returned = 0;
        state.phase_complete = state.batch.len() < state.size;
        state.size = state.size.saturating_mul(2);
    }
}

/// Whether row-level security filters the current user's reads of table `relid` or of any
/// table it inherits from: a partition is filtered by its root's policy, not its own.
pub(crate) fn under_policy(relid: pg_sys::Oid) -> bool {
    // SAFETY: a plain call with a valid relation id (the scan's heap).
    let own = unsafe { pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true) };
    own == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
        || crate::runtime::errors::spi(crate::runtime::owner::read_one::<bool>(
            // Under the caller's search_path: every name and operator is qualified.
            "WITH RECURSIVE up(rel) AS ( \
                 SELECT inhparent FROM pg_catalog.pg_inherits \
                  WHERE inhrelid OPERATOR(pg_catalog.=) $1 \
                 UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i \
                   JOIN up ON i.inhrelid OPERATOR(pg_catalog.=) up.rel) \
             SELECT coalesce(pg_catalog.bool_or(pg_catalog.row_security_active(rel)), false) \
               FROM up",
            &[relid.into()],
        ))
        .or_raise()
        .unwrap_or(false)
}

#[pg_guard]
unsafe extern "C-unwind" fn get_tuple(
    scan: pg_sys::IndexScanDesc,
    _direction: pg_sys::ScanDirection::Type,
) -> bool {
    // SAFETY: `scan` was made by `begin_scan` and reset by `rescan`; the executor allotted one
    // ORDER BY value and null flag.
    unsafe {
        let state = &mut *(*scan).opaque.cast::<Scan>();
        if state.query.is_none() {
            // The planner never sees this index when a policy filters the table (see
            // `get_relation_info`); a scan that gets here anyway refuses rather than score rows
            // the policy hides.
            if under_policy((*(*scan).heapRelation).rd_id) {
                errors::raise(Error::new(
                    Kind::Forbidden,
                    "a flat index cannot be scanned under a row-level security policy",
                ));
            }
            let query = query_of(scan);
            if query.is_none() {
                // Every distance is NULL: every row, in TID order.
                state.phase = Phase::Nulls(None);
            }
            state.query = Some(query);
            pages::count((*scan).indexRelation, pages::Count::IndexScan);
        }
        loop {
            if let Some(&(rank, null)) = state.batch.get(state.returned) {
                state.returned += 1;
                state.phase = match state.phase {
                    Phase::Vectors(_) => Phase::Vectors(Some(rank)),
                    Phase::Nulls(_) => Phase::Nulls(Some(rank.id)),
                    Phase::Done => Phase::Done,
                };
                (*scan).xs_heaptid = id_tid(&rank.id);
                (*scan).xs_recheck = false;
                (*scan).xs_recheckorderby = false;
                *(*scan).xs_orderbyvals = pg_sys::Datum::from(rank.distance.to_bits());
                *(*scan).xs_orderbynulls = null;
                return true;
            }
            if state.phase_complete {
                state.phase = state.phase.next();
                state.phase_complete = false;
                state.batch.clear();
                state.size = FIRST_BATCH;
            }
            if matches!(state.phase, Phase::Done) {
                return false;
            }
            pass(scan, state);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn end_scan(scan: pg_sys::IndexScanDesc) {
    // SAFETY: `scan` was made by `begin_scan`; its state is freed with its memory context.
    unsafe {
        let state = &mut *(*scan).opaque.cast::<Scan>();
        state.batch = Vec::new();
    }
}

pgrx::extension_sql_file!(
    "../../../sql/flat.sql",
    name = "flat",
    requires = ["vector_ops"],
);
