//! The scan behind `search`: one collection's rows of one tenant, found through the
//! `documents_collection_id` index, read straight from the shared buffers and scored in Rust
//! into a bounded top-k.
//!
//! An SQL query (`ORDER BY distance, id LIMIT k` over an index scan) does the same work with an
//! executor node, a function-manager call and a datum check per row, and a sort that copies
//! every row it keeps; that overhead was most of a search's time. Here the scan first takes
//! the index's TIDs for the two keys, then visits the heap page by page as a bitmap heap scan
//! does: one share lock per page to find its visible rows, then each row deformed up to the
//! embedding and scored where it lies in the buffer (the column's MAIN storage keeps it in the
//! row). What is left is waiting for memory, and `pages::Pages` asks for it ahead of time.
//!
//! What it reads is exactly what the SQL query read: the index keys are the collection and the
//! tenant, so no row of another tenant is visited, scored or timed, and visibility is the
//! statement's snapshot. The tenant of each row is checked again against the key before it is
//! scored.

use pgrx::pg_sys;

use sealstore_core::crypto::TenantId;
use sealstore_core::topk::{Offered, Rank, TopK};

use crate::runtime::errors::{self, Error, Kind, OrRaise, Result};
use crate::storage::pages::{
    self, Half, Pages, DESCRIPTOR_AHEAD, HEADER_AHEAD, MAX_HEAP_TUPLES_PER_PAGE,
};

/// One row as the scorer sees it.
pub struct Row<'a> {
    pub id: &'a [u8; 16],
    /// The scored column's bytes after the varlena header (the embedding, or the sealed
    /// embedding): where they lie in the buffer or, for a value that is out of line,
    /// compressed or short-headed, a copy in the scan's per-row memory (a 4-byte-aligned one).
    pub bytes: &'a [u8],
}

/// The result of a scan: the nearest rows, nearest first, with their metadata datums
/// (detoasted copies in the caller's memory context).
pub struct Hit {
    pub rank: Rank,
    pub metadata: pg_sys::Datum,
}

/// XX001 for a `documents` row that breaks what the schema guarantees. Raised where it is
/// found, in the middle of a scan: the transaction's abort releases the scan's pins and locks.
pub fn damaged() -> ! {
    errors::raise(Error::damaged("a documents row is damaged"))
}

fn missing_relation() -> ! {
    errors::raise(Error::new(
        Kind::UndefinedTable,
        "sealstore.documents or its collection index is missing",
    ))
}

/// The attribute number of `name` in `relid`, or an error naming a damaged installation.
fn attnum(relid: pg_sys::Oid, name: &std::ffi::CStr) -> i16 {
    // SAFETY: a syscache lookup by a NUL-terminated name.
    let n = unsafe { pg_sys::get_attnum(relid, name.as_ptr()) };
    if n <= 0 {
        missing_relation();
    }
    n
}

/// The bytes of the varlena datum `d` after its header; copies into the current memory context
/// (the scan's per-row one) when the value is not a plain in-line 4-byte-header value.
///
/// # Safety
/// `d` must be a non-null varlena datum that stays valid while the result is used.
unsafe fn varlena_bytes<'a>(d: pg_sys::Datum, copied: &mut bool) -> &'a [u8] {
    let mut ptr = d.cast_mut_ptr::<pg_sys::varlena>();
    // SAFETY: per the contract, `ptr` is a varlena; pg_detoast_datum returns a 4-byte-header,
    // in-line, uncompressed copy (palloc'd, so 8-byte aligned) of anything else.
    unsafe {
        if !pgrx::varlena::varatt_is_4b_u(ptr) {
            ptr = pg_sys::pg_detoast_datum(ptr);
            *copied = true;
        }
        let len = pgrx::varlena::varsize_4b(ptr) - pg_sys::VARHDRSZ;
        std::slice::from_raw_parts(pgrx::varlena::vardata_4b(ptr).cast::<u8>(), len)
    }
}

/// Which documents column a scan scores.
#[derive(Clone, Copy)]
pub enum Column {
    Embedding,
    SealedEmbedding,
}

/// Scans the rows of `collection` that belong to `tenant`, keeps those whose metadata contains
/// `filter` (jsonb `@>`) when one is given, scores each with `score`, and returns the `k`
/// nearest in `ORDER BY distance, id` order. An error `score` returns is raised at once and
/// stops the scan (the transaction's abort releases the scan's buffer pins and locks).
pub fn top_k(
    tenant: &TenantId,
    collection: &[u8; 16],
    column: Column,
    filter: Option<pg_sys::Datum>,
    k: usize,
    mut score: impl FnMut(&Row<'_>) -> Result<f64>,
) -> Result<Vec<Hit>> {
    // SAFETY: FFI with the building blocks of an index scan and a bitmap heap scan
    // (nodeBitmapHeapscan.c): open the heap and the index under AccessShareLock, collect the
    // TIDs of an index scan with the statement's active snapshot and two equality keys, then
    // per heap page: pin it, find its visible tuples with heap_hot_search_buffer under a share
    // lock, and deform each into `values`/`nulls`. Those datums point into the page, pinned
    // until its rows are scored (or into the per-row context), and are used only before the
    // next row; the metadata datum kept for a hit is copied into the caller's context first.
    // The key arrays outlive the scan.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"sealstore".as_ptr(), true);
        let heap_oid = pg_sys::get_relname_relid(c"documents".as_ptr(), nsp);
        let index_oid = pg_sys::get_relname_relid(c"documents_collection_id".as_ptr(), nsp);
        if nsp == pg_sys::InvalidOid
            || heap_oid == pg_sys::InvalidOid
            || index_oid == pg_sys::InvalidOid
        {
            missing_relation();
        }
        let att_id = attnum(heap_oid, c"id");
        let att_tenant = attnum(heap_oid, c"tenant_id");
        let att_collection = attnum(heap_oid, c"collection_id");
        let att_value = attnum(
            heap_oid,
            match column {
                Column::Embedding => c"embedding",
                Column::SealedEmbedding => c"sealed_embedding",
            },
        );
        let att_metadata = attnum(heap_oid, c"metadata");
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let heap = pg_sys::table_open(heap_oid, lock);
        let index = pg_sys::index_open(index_oid, lock);

        // The index must be on (collection_id, tenant_id): its keys are what keeps the scan to
        // the tenant's rows.
        let ind = (*index).rd_index;
        let keys_ok = (*ind).indnkeyatts >= 2
            && *(*ind).indkey.values.as_ptr() == att_collection
            && *(*ind).indkey.values.as_ptr().add(1) == att_tenant;
        if !keys_ok {
            missing_relation();
        }

        let snapshot = pg_sys::GetActiveSnapshot();
        if snapshot.is_null() {
            return Err(Error::internal("search needs an active snapshot"));
        }
        let mut keys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut keys[0],
            1,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::RegProcedure::from(pg_sys::F_UUID_EQ),
            pg_sys::Datum::from(collection.as_ptr()),
        );
        pg_sys::ScanKeyInit(
            &mut keys[1],
            2,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::RegProcedure::from(pg_sys::F_UUID_EQ),
            pg_sys::Datum::from(tenant.as_ptr()),
        );
        #[cfg(not(feature = "pg18"))]
        let scan = pg_sys::index_beginscan(heap, index, snapshot, 2, 0);
        // PostgreSQL 18 counts an index's searches for EXPLAIN ANALYZE into an optional
        // instrumentation struct; this scan reports none.
        #[cfg(feature = "pg18")]
        let scan = pg_sys::index_beginscan(heap, index, snapshot, std::ptr::null_mut(), 2, 0);
        pg_sys::index_rescan(scan, keys.as_mut_ptr(), 2, std::ptr::null_mut(), 0);

        // Per-row allocations (detoasted values, the filter's work) go to a child of the
        // caller's context, reset after each row that used it. It is deleted at the end; if an
        // error stops the scan, the abort frees it with its parent (deleting it while unwinding
        // could free the memory the error is being reported from).
        let caller = pg_sys::CurrentMemoryContext;
        let per_row_cx = pg_sys::AllocSetContextCreateInternal(
            caller,
            c"sealstore search row".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        );
        // Each visible row is deformed into these, pointing into its pinned page.
        let natts = usize::try_from((*(*heap).rd_att).natts).unwrap_or(0);
        if [att_id, att_tenant, att_value, att_metadata]
            .iter()
            .any(|&a| a as usize > natts)
        {
            missing_relation();
        }
        let mut values = vec![pg_sys::Datum::from(0usize); natts];
        let mut nulls = vec![true; natts];
        let (mut all_values, mut all_nulls) = (values.clone(), nulls.clone());
        // Rows are deformed only as far as the scan reads: the metadata lies after the 3 KB
        // embedding, on cache lines a row that does not make the top-k never needs. (A copy of
        // the descriptor with fewer attributes; heap_deform_tuple stops at the smaller count.)
        let last = att_id
            .max(att_tenant)
            .max(att_value)
            .max(if filter.is_some() { att_metadata } else { 0 });
        let scan_desc = pg_sys::CreateTupleDescCopy((*heap).rd_att);
        (*scan_desc).natts = i32::from(last);
        let mut top: TopK<pg_sys::Datum> = TopK::new(k);

        // First a batch of the index's TIDs for the two keys (a batch bounds the scan's memory
        // whatever the collection's size). They come in index order, which for equal keys is
        // heap order; a bitmap heap scan visits the heap the same way, and for the same reason
        // it is safe: a TID whose row is vacuumed away meanwhile can only be reused by a row
        // this snapshot does not see.
        let mut pages = Pages::open(heap);
        let mut tids: Vec<pg_sys::ItemPointerData> = Vec::with_capacity(TID_BATCH);
        let mut visible: Vec<pg_sys::HeapTupleData> = Vec::new();
        let mut fetched = 0i64;
        let mut index_done = false;
        while !index_done {
            tids.clear();
            while tids.len() < TID_BATCH {
                let tid =
                    pg_sys::index_getnext_tid(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tid.is_null() {
                    index_done = true;
                    break;
                }
                tids.push(*tid);
                if tids.len().is_multiple_of(4096) {
                    pgrx::check_for_interrupts!();
                }
            }
            if !tids.is_sorted_by_key(tid_key) {
                tids.sort_unstable_by_key(tid_key);
            }

            // Then the heap, one page at a time: the visible rows of a page are found under one
            // share lock, then scored with the page pinned. Pages further on are requested from
            // memory meanwhile (see `Pages`), so that their cache misses overlap this page's work.
            let runs: Vec<&[pg_sys::ItemPointerData]> =
                tids.chunk_by(|a, b| tid_block(a) == tid_block(b)).collect();
            let mut next = runs
                .first()
                .map(|page| pages.pin_ahead(tid_block(&page[0]), Some(page)));
            for (i, page) in runs.iter().enumerate() {
                let buf = next.take().expect("each page is pinned one turn ahead");
                if let Some(ahead) = runs.get(i + DESCRIPTOR_AHEAD) {
                    pages.prefetch_descriptor(tid_block(&ahead[0]));
                }
                if let Some(ahead) = runs.get(i + HEADER_AHEAD) {
                    pages.prefetch_header(tid_block(&ahead[0]));
                }
                next = runs
                    .get(i + 1)
                    .map(|page| pages.pin_ahead(tid_block(&page[0]), Some(page)));
                visible.clear();
                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
                for tid in *page {
                    let mut tid = *tid;
                    let mut tuple: pg_sys::HeapTupleData = std::mem::zeroed();
                    if pg_sys::heap_hot_search_buffer(
                        &mut tid,
                        heap,
                        buf,
                        snapshot,
                        &mut tuple,
                        std::ptr::null_mut(),
                        true,
                    ) {
                        visible.push(tuple);
                    }
                }
                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32);
                fetched += visible.len() as i64;
                pgrx::check_for_interrupts!();
                for j in 0..visible.len() {
                    // The rest of the row scored after this one: half while this one is
                    // scored, half after (see `pages::SPLIT_LINE`).
                    let after = visible
                        .get(j + 1)
                        .map(|t| (t.t_data.cast::<i8>().cast_const(), t.t_len as usize));
                    pages.prefetch_next_row(after, Half::First);
                    let tuple = &mut visible[j];
                    pg_sys::heap_deform_tuple(
                        tuple,
                        scan_desc,
                        values.as_mut_ptr(),
                        nulls.as_mut_ptr(),
                    );
                    let value_of = |att: i16| datum(&values, &nulls, att);
                    let (Some(id), Some(row_tenant)) = (value_of(att_id), value_of(att_tenant))
                    else {
                        damaged()
                    };
                    let id = &*id.cast_mut_ptr::<[u8; 16]>();
                    if &*row_tenant.cast_mut_ptr::<[u8; 16]>() != tenant {
                        damaged();
                    }
                    // A row of the other kind of collection has no value in this column: the CHECK
                    // constraint makes exactly one of the two columns non-null, and a collection's
                    // rows are all of its kind, so this is damage too.
                    let Some(value) = value_of(att_value) else {
                        damaged()
                    };

                    let old = pg_sys::MemoryContextSwitchTo(per_row_cx);
                    let mut copied = false;
                    if let Some(filter) = filter {
                        let Some(metadata) = value_of(att_metadata) else {
                            damaged()
                        };
                        copied = true;
                        let contains = pgrx::direct_function_call::<bool>(
                            pg_sys::jsonb_contains,
                            &[Some(metadata), Some(filter)],
                        );
                        if contains != Some(true) {
                            pg_sys::MemoryContextSwitchTo(old);
                            pg_sys::MemoryContextReset(per_row_cx);
                            pages.prefetch_next_row(after, Half::Second);
                            continue;
                        }
                    }
                    let row = Row {
                        id,
                        bytes: varlena_bytes(value, &mut copied),
                    };
                    let distance = score(&row).or_raise();
                    pages.prefetch_next_row(after, Half::Second);
                    pg_sys::MemoryContextSwitchTo(old);
                    let offered = top.offer(Rank { distance, id: *id }, || {
                        // Only rows that enter the top-k pay for their metadata: a detoasted copy in
                        // the caller's context, freed again if a nearer row pushes it out.
                        pg_sys::heap_deform_tuple(
                            tuple,
                            (*heap).rd_att,
                            all_values.as_mut_ptr(),
                            all_nulls.as_mut_ptr(),
                        );
                        let Some(metadata) = datum(&all_values, &all_nulls, att_metadata) else {
                            damaged()
                        };
                        let previous = pg_sys::MemoryContextSwitchTo(caller);
                        let copy = pg_sys::pg_detoast_datum_copy(metadata.cast_mut_ptr());
                        pg_sys::MemoryContextSwitchTo(previous);
                        pg_sys::Datum::from(copy)
                    });
                    if let Offered::Replaced(evicted) = offered {
                        pg_sys::pfree(evicted.cast_mut_ptr());
                    }
                    if copied {
                        pg_sys::MemoryContextReset(per_row_cx);
                    }
                }
                pg_sys::ReleaseBuffer(buf);
            }
        }
        pages::count(index, pages::Count::HeapFetches(fetched));

        pg_sys::FreeTupleDesc(scan_desc);
        pg_sys::index_endscan(scan);
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(heap, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::MemoryContextDelete(per_row_cx);

        Ok(top
            .into_sorted()
            .into_iter()
            .map(|(rank, metadata)| Hit { rank, metadata })
            .collect())
    }
}

/// Visits every row of `heap` that `snapshot` sees, in block order, for the `flat` index:
/// `visit` gets the row's root TID (the one an index entry for it names: a heap-only row's
/// chain starts elsewhere on its page) and the bytes of attribute `att` after the varlena
/// header, or None for a null. Pages are read as `top_k` reads them (`Pages`); each is locked
/// once to find its visible rows, whose values are then visited with the page only pinned.
/// Under serializable isolation the whole relation is predicate-locked, as a sequential scan
/// locks it, and each row read is checked for conflicts.
///
/// # Safety
/// `heap` must be an open heap relation with at least `att` attributes, and `snapshot` an MVCC
/// snapshot that stays registered while this runs. `visit` may raise an error.
pub unsafe fn visible_rows(
    heap: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    att: i16,
    mut visit: impl FnMut(pg_sys::ItemPointerData, Option<&[u8]>),
) {
    // SAFETY: per the contract; the building blocks of heapgetpage (heapam.c). Each tuple's
    // datums point into its pinned page and are used before the page is released; values
    // that are not in line are copied into the per-row context, reset after each such row.
    unsafe {
        predicate::PredicateLockRelation(heap, snapshot);
        let blocks =
            pg_sys::RelationGetNumberOfBlocksInFork(heap, pg_sys::ForkNumber::MAIN_FORKNUM);
        let last = usize::try_from(att).expect("attribute numbers are positive");
        let desc = pg_sys::CreateTupleDescCopy((*heap).rd_att);
        (*desc).natts = i32::from(att);
        let mut values = vec![pg_sys::Datum::from(0usize); last];
        let mut nulls = vec![true; last];
        let per_row_cx = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"sealstore flat row".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        );
        let mut pages = Pages::open(heap);
        let mut visible: Vec<(pg_sys::HeapTupleData, pg_sys::OffsetNumber)> = Vec::new();
        let mut roots = [0 as pg_sys::OffsetNumber; MAX_HEAP_TUPLES_PER_PAGE];
        let mut next = (blocks > 0).then(|| pages.pin_ahead(0, None));
        for block in 0..blocks {
            let buf = next.take().expect("each page is pinned one turn ahead");
            let ahead = |n: usize| block.checked_add(n as u32).filter(|&b| b < blocks);
            if let Some(b) = ahead(DESCRIPTOR_AHEAD) {
                pages.prefetch_descriptor(b);
            }
            if let Some(b) = ahead(HEADER_AHEAD) {
                pages.prefetch_header(b);
            }
            next = ahead(1).map(|b| pages.pin_ahead(b, None));

            visible.clear();
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
            let page = pg_sys::BufferGetPage(buf);
            let lines = pg_sys::PageGetMaxOffsetNumber(page);
            let mut roots_known = false;
            for off in 1..=lines {
                let item = pg_sys::PageGetItemId(page, off);
                if (*item).lp_flags() != pg_sys::LP_NORMAL {
                    continue;
                }
                let mut tuple: pg_sys::HeapTupleData = std::mem::zeroed();
                tuple.t_data = pg_sys::PageGetItem(page, item).cast();
                tuple.t_len = (*item).lp_len();
                tuple.t_tableOid = (*heap).rd_id;
                tuple.t_self = tid(block, off);
                let seen = pg_sys::HeapTupleSatisfiesVisibility(&mut tuple, snapshot, buf);
                pg_sys::HeapCheckForSerializableConflictOut(seen, heap, &mut tuple, buf, snapshot);
                if !seen {
                    continue;
                }
                let root = if (*tuple.t_data).t_infomask2 & pg_sys::HEAP_ONLY_TUPLE as u16 != 0 {
                    if !roots_known {
                        pg_sys::heap_get_root_tuples(page, roots.as_mut_ptr());
                        roots_known = true;
                    }
                    roots[usize::from(off) - 1]
                } else {
                    off
                };
                // A visible heap-only row is always reached from its chain's root; if none was
                // found the page is damaged.
                if root == 0 {
                    damaged();
                }
                visible.push((tuple, root));
            }
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32);
            pgrx::check_for_interrupts!();

            for j in 0..visible.len() {
                // As in `top_k`: the next row's rest, half before this one is visited, half after.
                let after = visible
                    .get(j + 1)
                    .map(|(t, _)| (t.t_data.cast::<i8>().cast_const(), t.t_len as usize));
                pages.prefetch_next_row(after, Half::First);
                let (tuple, root) = &mut visible[j];
                pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
                let old = pg_sys::MemoryContextSwitchTo(per_row_cx);
                let mut copied = false;
                let bytes = datum(&values, &nulls, att).map(|d| varlena_bytes(d, &mut copied));
                visit(tid(block, *root), bytes);
                pages.prefetch_next_row(after, Half::Second);
                pg_sys::MemoryContextSwitchTo(old);
                if copied {
                    pg_sys::MemoryContextReset(per_row_cx);
                }
            }
            pg_sys::ReleaseBuffer(buf);
        }
        pg_sys::FreeTupleDesc(desc);
        pg_sys::MemoryContextDelete(per_row_cx);
    }
}

/// The TID of row `offset` of page `block`.
fn tid(block: pg_sys::BlockNumber, offset: pg_sys::OffsetNumber) -> pg_sys::ItemPointerData {
    pg_sys::ItemPointerData {
        ip_blkid: pg_sys::BlockIdData {
            bi_hi: (block >> 16) as u16,
            bi_lo: (block & 0xffff) as u16,
        },
        ip_posid: offset,
    }
}

/// Predicate locking (predicate.h), which the bindings leave out.
mod predicate {
    use pgrx::pg_sys;

    extern "C-unwind" {
        #[link_name = "PredicateLockRelation"]
        fn predicate_lock_relation(relation: pg_sys::Relation, snapshot: pg_sys::Snapshot);
    }

    /// Takes a relation-level SIREAD lock for a serializable transaction (a no-op otherwise).
    ///
    /// # Safety
    /// `relation` must be open and `snapshot` valid.
    #[allow(non_snake_case)]
    pub unsafe fn PredicateLockRelation(relation: pg_sys::Relation, snapshot: pg_sys::Snapshot) {
        // SAFETY: per the contract; an error it raises is caught at the boundary and re-raised
        // as a Rust panic, as for the bindings' own functions.
        unsafe {
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| {
                predicate_lock_relation(relation, snapshot)
            })
        }
    }
}

/// Attribute `att`'s datum from deformed arrays, or None for a null.
fn datum(values: &[pg_sys::Datum], nulls: &[bool], att: i16) -> Option<pg_sys::Datum> {
    let i = usize::try_from(att - 1).expect("attribute numbers are positive");
    (!nulls[i]).then(|| values[i])
}

fn tid_block(tid: &pg_sys::ItemPointerData) -> pg_sys::BlockNumber {
    (u32::from(tid.ip_blkid.bi_hi) << 16) | u32::from(tid.ip_blkid.bi_lo)
}

fn tid_key(tid: &pg_sys::ItemPointerData) -> (pg_sys::BlockNumber, u16) {
    (tid_block(tid), tid.ip_posid)
}

/// How many TIDs the scan takes from the index at a time (6 bytes each). The pgrx tests use
/// small batches, so that their thousand rows cross batch boundaries, also within a page.
const TID_BATCH: usize = if cfg!(feature = "pg_test") {
    300
} else {
    1 << 16
};

/// The shared hints of `documents`, and its size in pages, for tests.
///
/// # Safety
/// Must run in a transaction, with the extension installed.
#[cfg(any(test, feature = "pg_test"))]
unsafe fn documents_hints() -> (crate::storage::buffer_hints::RelationHints, u32) {
    // SAFETY: per the contract; the relation is opened and closed around the reads.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"sealstore".as_ptr(), false);
        let oid = pg_sys::get_relname_relid(c"documents".as_ptr(), nsp);
        let rel = pg_sys::table_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let (_, identity) = pages::locator_of(rel);
        let blocks = pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let hints = crate::storage::buffer_hints::RelationHints::of(identity)
            .expect("the library is preloaded in tests");
        (hints, blocks)
    }
}

/// For tests: the hinted buffers of the pages of `documents` (0: none).
#[cfg(any(test, feature = "pg_test"))]
pub fn hinted_buffers() -> Vec<pg_sys::Buffer> {
    // SAFETY: tests run in a transaction with the extension installed.
    let (hints, blocks) = unsafe { documents_hints() };
    hints.raw(blocks)
}

/// For tests: makes the hint of every page of `documents` wrong: each names another valid
/// buffer (or, with `out_of_range`, a number no buffer has), as if the pages had been evicted
/// and their buffers reused.
#[cfg(any(test, feature = "pg_test"))]
pub fn scramble_hints(out_of_range: bool) {
    // SAFETY: tests run in a transaction with the extension installed; NBuffers is set once at
    // start-up.
    let ((hints, blocks), shared) = unsafe { (documents_hints(), pg_sys::NBuffers) };
    for (block, b) in (0..blocks).zip(hints.raw(blocks)) {
        hints.set(
            block,
            if out_of_range {
                shared + 1 + b
            } else {
                b % shared + 1
            },
        );
    }
}
