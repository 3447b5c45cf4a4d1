//! The scan behind `search`: one collection's rows of one tenant, found through the
//! `documents_collection_id` index, read straight from the shared buffers by the heap reader
//! (`heap.rs`) and scored in Rust into a bounded top-k.
//!
//! An SQL query (`ORDER BY distance, id LIMIT k` over an index scan) does the same work with an
//! executor node, a function-manager call and a datum check per row, and a sort that copies
//! every row it keeps; that overhead was most of a search's time. Here the scan takes the
//! index's TIDs for the two keys in batches, then has the reader visit the heap page by page as
//! a bitmap heap scan does, each row deformed up to the embedding and scored where it lies in
//! the buffer (the column's MAIN storage keeps it in the row).
//!
//! What it reads is exactly what the SQL query read: the index keys are the collection and the
//! tenant, so no row of another tenant is visited, scored or timed, and visibility is the
//! statement's snapshot. The tenant of each row is checked again against the key before it is
//! scored.

use pgrx::pg_sys;
use rustc_hash::FxHashMap;
use sealstore_core::ids::{CollectionId, TenantId};
use sealstore_core::readahead;
use sealstore_core::topk::{Offered, Rank, TopK};

use crate::runtime::errors::{self, Error, Kind, OrRaise, Result};
use crate::storage::heap::{datum, tid_block, varlena_bytes, PageRef, Reader};
use crate::storage::hnsw::collections::Walk;
use crate::storage::pages;

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

/// XX001 for a `documents` row that breaks what the schema guarantees.
fn damaged() -> ! {
    crate::storage::heap::damaged("a documents row is damaged")
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

/// Which documents column a scan scores.
#[derive(Clone, Copy)]
pub enum Column {
    Embedding,
    SealedEmbedding,
}

/// How many TIDs the scan takes from the index at a time. The pgrx tests use small batches, so
/// that their thousand rows cross batch boundaries, also within a page.
const TID_BATCH: usize = if cfg!(feature = "pg_test") {
    300
} else {
    readahead::TID_BATCH
};

fn tid_key(tid: &pg_sys::ItemPointerData) -> (pg_sys::BlockNumber, u16) {
    (tid_block(tid), tid.ip_posid)
}

/// Where a scan's rows come from.
pub enum Rows {
    /// Every row of the collection, through `documents_collection_id`: an exact search.
    All,
    /// The collection's graph (`hnsw::collections::Walk`), nearest first: a first batch of
    /// `first_batch` rows, then more while fewer than `k` of them pass the filter and are
    /// visible (never short: the walk ends with every node of the graph). Rows come with their
    /// distances from the graph, so `score` is not called for them.
    Graph(Box<Walk>),
}

/// Scans the rows of `collection` that belong to `tenant` (all of them, or those a walk of
/// its graph offers), keeps those whose metadata contains `filter` (jsonb `@>`) when one is
/// given, scores each with `score`, and returns the `k` nearest in `ORDER BY distance, id`
/// order. An error `score` returns is raised at once and stops the scan (the transaction's
/// abort releases the scan's buffer pins and locks).
pub fn top_k(
    tenant: &TenantId,
    collection: &CollectionId,
    column: Column,
    rows: Rows,
    filter: Option<pg_sys::Datum>,
    k: usize,
    mut score: impl FnMut(&Row<'_>) -> Result<f64>,
) -> Result<Vec<Hit>> {
    let mut walk = match rows {
        Rows::All => None,
        Rows::Graph(w) => Some(w),
    };
    // SAFETY: FFI with the building blocks of an index scan: open the heap and the index under
    // AccessShareLock, collect the TIDs of an index scan with the statement's active snapshot
    // and two equality keys; the reader then visits them page by page. Each row is deformed
    // into `values`/`nulls`, whose datums point into its pinned page (or into the per-row
    // context) and are used only before the next row; the metadata datum kept for a hit is
    // copied into the caller's context first. The key arrays outlive the scan.
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
            pg_sys::Datum::from(collection.as_bytes().as_ptr()),
        );
        pg_sys::ScanKeyInit(
            &mut keys[1],
            2,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::RegProcedure::from(pg_sys::F_UUID_EQ),
            pg_sys::Datum::from(tenant.as_bytes().as_ptr()),
        );
        // A walk of the graph gives the TIDs instead: the collection index is not scanned.
        let scan = if walk.is_some() {
            std::ptr::null_mut()
        } else {
            #[cfg(not(feature = "pg18"))]
            let scan = pg_sys::index_beginscan(heap, index, snapshot, 2, 0);
            // PostgreSQL 18 counts an index's searches for EXPLAIN ANALYZE into an optional
            // instrumentation struct; this scan reports none.
            #[cfg(feature = "pg18")]
            let scan = pg_sys::index_beginscan(heap, index, snapshot, std::ptr::null_mut(), 2, 0);
            pg_sys::index_rescan(scan, keys.as_mut_ptr(), 2, std::ptr::null_mut(), 0);
            scan
        };

        let caller = pg_sys::CurrentMemoryContext;
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
            .max(att_collection)
            .max(att_value)
            .max(if filter.is_some() { att_metadata } else { 0 });
        let scan_desc = pg_sys::CreateTupleDescCopy((*heap).rd_att);
        (*scan_desc).natts = i32::from(last);
        let mut top: TopK<pg_sys::Datum> = TopK::new(k);

        // A batch of the index's TIDs at a time. They come in index order, which for equal keys
        // is heap order; a bitmap heap scan visits the heap the same way, and for the same
        // reason it is safe: a TID whose row is vacuumed away meanwhile can only be reused by a
        // row this snapshot does not see.
        let mut reader = Reader::open(heap, snapshot);
        let mut tids: Vec<pg_sys::ItemPointerData> = Vec::with_capacity(TID_BATCH);
        let mut index_done = false;
        let mut batch = walk.as_ref().map_or(TID_BATCH, |w| w.first_batch);
        // A walk's rows come with their distances (the graph's vectors are the rows').
        let mut walked: FxHashMap<(u32, u16), f64> = FxHashMap::default();
        while !index_done {
            tids.clear();
            if let Some(w) = walk.as_mut() {
                if top.len() >= k {
                    break;
                }
                index_done = !w.next_batch(batch, &mut tids, &mut walked);
                batch = (batch * 2).min(TID_BATCH);
            }
            while walk.is_none() && tids.len() < TID_BATCH {
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
            let list: Vec<PageRef> = readahead::runs(&tids, tid_block)
                .into_iter()
                .map(|run| PageRef {
                    block: tid_block(&tids[run.start]),
                    tids: Some(&tids[run]),
                })
                .collect();
            reader.read(&list, |tuple, block, root| {
                pg_sys::heap_deform_tuple(
                    tuple,
                    scan_desc,
                    values.as_mut_ptr(),
                    nulls.as_mut_ptr(),
                );
                let value_of = |att: i16| datum(&values, &nulls, att);
                let (Some(id), Some(row_tenant)) = (value_of(att_id), value_of(att_tenant)) else {
                    damaged()
                };
                let id = &*id.cast_mut_ptr::<[u8; 16]>();
                if &*row_tenant.cast_mut_ptr::<[u8; 16]>() != tenant.as_bytes() {
                    damaged();
                }
                if walk.is_some() {
                    let Some(row_collection) = value_of(att_collection) else {
                        damaged()
                    };
                    if &*row_collection.cast_mut_ptr::<[u8; 16]>() != collection.as_bytes() {
                        damaged();
                    }
                }
                // A row of the other kind of collection has no value in this column: the
                // CHECK constraint makes exactly one of the two columns non-null, and a
                // collection's rows are all of its kind, so this is damage too.
                let Some(value) = value_of(att_value) else {
                    damaged()
                };
                if let Some(filter) = filter {
                    let Some(metadata) = value_of(att_metadata) else {
                        damaged()
                    };
                    let contains = pgrx::direct_function_call::<bool>(
                        pg_sys::jsonb_contains,
                        &[Some(metadata), Some(filter)],
                    );
                    if contains != Some(true) {
                        return;
                    }
                }
                let row = Row {
                    id,
                    bytes: varlena_bytes(value),
                };
                let distance = match walked.get(&(block, root)) {
                    Some(&d) => d,
                    None => score(&row).or_raise(),
                };
                let offered = top.offer(Rank { distance, id: *id }, || {
                    // Only rows that enter the top-k pay for their metadata: a detoasted copy
                    // in the caller's context, freed again if a nearer row pushes it out.
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
            });
        }
        let fetched_through = walk.as_ref().map_or(index, |w| w.relation());
        pages::count(fetched_through, pages::Count::HeapFetches(reader.fetched));
        reader.close();

        pg_sys::FreeTupleDesc(scan_desc);
        if let Some(w) = walk {
            w.close();
        } else {
            pg_sys::index_endscan(scan);
        }
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(heap, pg_sys::NoLock as pg_sys::LOCKMODE);

        Ok(top
            .into_sorted()
            .into_iter()
            .map(|(rank, metadata)| Hit { rank, metadata })
            .collect())
    }
}
