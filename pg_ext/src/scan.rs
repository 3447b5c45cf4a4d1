//! The scan behind `search`: one collection's rows of one tenant, read through the
//! `documents_collection_id` index straight from the shared buffers and scored in Rust into a
//! bounded top-k.
//!
//! An SQL query (`ORDER BY distance, id LIMIT k` over an index scan) does the same work with an
//! executor node, a function-manager call and a datum check per row, and a sort that copies
//! every row it keeps; that overhead was most of a search's time. Here each row costs the index
//! step, a visibility check, deforming up to the embedding, and the distance itself, which
//! reads the vector where it lies in the buffer (the column's MAIN storage keeps it in the row).
//!
//! What it reads is exactly what the SQL query read: the index keys are the collection and the
//! tenant, so no row of another tenant is visited, scored or timed, and visibility is the
//! statement's snapshot. The tenant of each row is checked again against the key before it is
//! scored.

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::crypto::TenantId;
use sealstore_core::topk::{Offered, Rank, TopK};

use crate::errors;

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
pub fn damaged() -> ! {
    errors::raise(errors::plain(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        "a documents row is damaged",
    ))
}

fn missing_relation() -> ! {
    errors::raise(errors::plain(
        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
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
/// nearest in `ORDER BY distance, id` order. Errors raised by `score` stop the scan (the
/// transaction's abort releases the scan's buffer pins and locks).
pub fn top_k(
    tenant: &TenantId,
    collection: &[u8; 16],
    column: Column,
    filter: Option<pg_sys::Datum>,
    k: usize,
    mut score: impl FnMut(&Row<'_>) -> f64,
) -> Vec<Hit> {
    // SAFETY: FFI with the executor's building blocks, in the order execIndexscan.c uses them:
    // open the heap and the index under AccessShareLock, begin an index scan with the
    // statement's active snapshot and two equality keys, fetch each visible tuple into a slot,
    // deform it up to the columns read, and end the scan. Datums read from the slot point into
    // a pinned buffer (or into the per-row context) and are used only before the next fetch;
    // the metadata datum kept for a hit is copied into the caller's context first. The key
    // arrays outlive the scan.
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
            errors::raise(errors::plain(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "search needs an active snapshot",
            ));
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
        let scan = pg_sys::index_beginscan(heap, index, snapshot, 2, 0);
        pg_sys::index_rescan(scan, keys.as_mut_ptr(), 2, std::ptr::null_mut(), 0);
        let slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());

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
        let last = att_id
            .max(att_tenant)
            .max(att_value)
            .max(if filter.is_some() { att_metadata } else { 0 });
        let mut top: TopK<pg_sys::Datum> = TopK::new(k);

        while pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot) {
            pgrx::check_for_interrupts!();
            deform_to(slot, last);
            let value_of = |att: i16| -> Option<pg_sys::Datum> {
                let i = usize::try_from(att - 1).expect("attribute numbers are positive");
                if *(*slot).tts_isnull.add(i) {
                    None
                } else {
                    Some(*(*slot).tts_values.add(i))
                }
            };
            let (Some(id), Some(row_tenant)) = (value_of(att_id), value_of(att_tenant)) else {
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
                    continue;
                }
            }
            let row = Row {
                id,
                bytes: varlena_bytes(value, &mut copied),
            };
            let distance = score(&row);
            pg_sys::MemoryContextSwitchTo(old);
            let offered = top.offer(Rank { distance, id: *id }, || {
                // Only rows that enter the top-k pay for their metadata: a detoasted copy in
                // the caller's context, freed again if a nearer row pushes it out.
                deform_to(slot, att_metadata);
                let Some(metadata) = value_of(att_metadata) else {
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

        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::index_endscan(scan);
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(heap, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::MemoryContextDelete(per_row_cx);

        top.into_sorted()
            .into_iter()
            .map(|(rank, metadata)| Hit { rank, metadata })
            .collect()
    }
}

/// Deforms `slot` up to attribute `att` if it is not deformed that far yet.
///
/// # Safety
/// `slot` must hold a tuple of a relation with at least `att` attributes.
unsafe fn deform_to(slot: *mut pg_sys::TupleTableSlot, att: i16) {
    // SAFETY: per the contract; the same check slot_getsomeattrs (a C inline) makes.
    unsafe {
        if (*slot).tts_nvalid < att {
            pg_sys::slot_getsomeattrs_int(slot, i32::from(att));
        }
    }
}
