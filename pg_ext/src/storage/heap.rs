//! The heap reader that search's collection scan (`collection_scan.rs`) and the `flat` index's
//! pass (`visible_rows`) share: it reads a list of heap pages in order, finds each page's
//! visible rows under one share lock, and hands them on one at a time with the page pinned,
//! while it asks for what comes next ahead of its turn (`sealstore_core::readahead`: the next
//! page pinned, descriptors and headers further on, the next row's lines in halves around the
//! current one) through `pages::Pages`.
//!
//! Visibility is PostgreSQL's own: for a list of TIDs (from an index) each is followed along
//! its HOT chain with `heap_hot_search_buffer`, as a bitmap heap scan does; for a whole page
//! every line pointer is checked against the snapshot, as a sequential scan does.

use pgrx::pg_sys;
use sealstore_core::error::Error;
use sealstore_core::readahead::{self, Part};

use crate::runtime::errors;
use crate::storage::pages::{Pages, MAX_HEAP_TUPLES_PER_PAGE};

/// A page to read, and which of its rows: the TIDs given (from an index, sorted, all on this
/// page), or with `None` every row the snapshot sees.
pub struct PageRef<'a> {
    pub block: pg_sys::BlockNumber,
    pub tids: Option<&'a [pg_sys::ItemPointerData]>,
}

/// A visible row: the tuple (pointing into its pinned page) and the offset of its HOT chain's
/// root, the one an index entry for it names.
pub struct Visible {
    pub tuple: pg_sys::HeapTupleData,
    pub root: pg_sys::OffsetNumber,
}

/// XX001 for a row that breaks what its table's schema guarantees. Raised where it is found,
/// in the middle of a scan: the transaction's abort releases the scan's pins and locks.
pub fn damaged(message: &'static str) -> ! {
    errors::raise(Error::damaged(message))
}

pub struct Reader {
    heap: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    pages: Pages,
    visible: Vec<Visible>,
    roots: [pg_sys::OffsetNumber; MAX_HEAP_TUPLES_PER_PAGE],
    per_row_cx: pg_sys::MemoryContext,
    /// Rows found visible so far.
    pub fetched: i64,
}

impl Reader {
    /// A reader of `heap` under `snapshot`. Per-row allocations (detoasted values, a filter's
    /// work) go to a child of the current memory context, reset after each row; it is deleted
    /// by [`Reader::close`], or, if an error stops the scan, freed with its parent by the
    /// abort (deleting it while unwinding could free the memory the error is reported from).
    ///
    /// # Safety
    /// `heap` must be an open heap relation and `snapshot` an MVCC snapshot, both valid while
    /// the reader is used.
    pub unsafe fn open(heap: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> Reader {
        // SAFETY: per the contract.
        unsafe {
            Reader {
                heap,
                snapshot,
                pages: Pages::open(heap),
                visible: Vec::new(),
                roots: [0; MAX_HEAP_TUPLES_PER_PAGE],
                per_row_cx: pg_sys::AllocSetContextCreateInternal(
                    pg_sys::CurrentMemoryContext,
                    c"sealstore heap row".as_ptr(),
                    0,
                    8 * 1024,
                    8 * 1024 * 1024,
                ),
                fetched: 0,
            }
        }
    }

    /// Reads `list` in order and calls `row` for each visible row, with its page pinned and in
    /// the per-row memory context. `row` gets the tuple and its TID's block and root offset.
    ///
    /// # Safety
    /// Every block in `list` lies within the heap (it came from its index or its size).
    pub unsafe fn read(
        &mut self,
        list: &[PageRef<'_>],
        mut row: impl FnMut(&mut pg_sys::HeapTupleData, pg_sys::BlockNumber, pg_sys::OffsetNumber),
    ) {
        // SAFETY: per the contract and `open`'s. Each page is pinned (one turn ahead) until its
        // rows are handed on; its visible rows are found under a share lock, and their data
        // stays in place while the page is pinned (moving it needs a cleanup lock).
        unsafe {
            let n = list.len();
            let mut next =
                readahead::first_pin(n).map(|i| self.pages.pin_ahead(list[i].block, list[i].tids));
            for (i, page) in list.iter().enumerate() {
                let buf = next.take().expect("each page is pinned one turn ahead");
                let step = readahead::step(i, n);
                if let Some(p) = step.descriptor {
                    self.pages.prefetch_descriptor(list[p].block);
                }
                if let Some(p) = step.header {
                    self.pages.prefetch_header(list[p].block);
                }
                next = step
                    .pin
                    .map(|p| self.pages.pin_ahead(list[p].block, list[p].tids));

                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
                match page.tids {
                    Some(tids) => self.find_listed(buf, tids),
                    None => self.find_all(buf, page.block),
                }
                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32);
                self.fetched += self.visible.len() as i64;
                pgrx::check_for_interrupts!();

                for j in 0..self.visible.len() {
                    // The rest of the row handed on after this one: half while this one is
                    // handled, half after.
                    let after = self.visible.get(j + 1).map(|v| {
                        (
                            v.tuple.t_data.cast::<i8>().cast_const(),
                            v.tuple.t_len as usize,
                        )
                    });
                    self.pages.prefetch_next_row(after, Part::First);
                    let old = pg_sys::MemoryContextSwitchTo(self.per_row_cx);
                    let visible = &mut self.visible[j];
                    row(&mut visible.tuple, page.block, visible.root);
                    pg_sys::MemoryContextSwitchTo(old);
                    pg_sys::MemoryContextReset(self.per_row_cx);
                    self.pages.prefetch_next_row(after, Part::Second);
                }
                pg_sys::ReleaseBuffer(buf);
            }
        }
    }

    /// The visible rows of `tids` (their HOT chains followed), on the locked page `buf`.
    unsafe fn find_listed(&mut self, buf: pg_sys::Buffer, tids: &[pg_sys::ItemPointerData]) {
        self.visible.clear();
        for tid in tids {
            let mut found = *tid;
            // SAFETY: the page is locked; the tuple points into it.
            unsafe {
                let mut tuple: pg_sys::HeapTupleData = std::mem::zeroed();
                if pg_sys::heap_hot_search_buffer(
                    &mut found,
                    self.heap,
                    buf,
                    self.snapshot,
                    &mut tuple,
                    std::ptr::null_mut(),
                    true,
                ) {
                    self.visible.push(Visible {
                        tuple,
                        root: tid.ip_posid,
                    });
                }
            }
        }
    }

    /// Every row of the locked page `buf` (block `block`) the snapshot sees, each with the
    /// root of its HOT chain. Under serializable isolation each is checked for conflicts.
    unsafe fn find_all(&mut self, buf: pg_sys::Buffer, block: pg_sys::BlockNumber) {
        self.visible.clear();
        // SAFETY: the page is locked; tuples point into it; the line pointer count is the
        // page's own.
        unsafe {
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
                tuple.t_tableOid = (*self.heap).rd_id;
                tuple.t_self = tid(block, off);
                let seen = pg_sys::HeapTupleSatisfiesVisibility(&mut tuple, self.snapshot, buf);
                pg_sys::HeapCheckForSerializableConflictOut(
                    seen,
                    self.heap,
                    &mut tuple,
                    buf,
                    self.snapshot,
                );
                if !seen {
                    continue;
                }
                let root = if (*tuple.t_data).t_infomask2 & pg_sys::HEAP_ONLY_TUPLE as u16 != 0 {
                    if !roots_known {
                        pg_sys::heap_get_root_tuples(page, self.roots.as_mut_ptr());
                        roots_known = true;
                    }
                    self.roots[usize::from(off) - 1]
                } else {
                    off
                };
                // A visible heap-only row is always reached from its chain's root; if none was
                // found the page is damaged.
                if root == 0 {
                    damaged("a heap-only row has no root on its page");
                }
                self.visible.push(Visible { tuple, root });
            }
        }
    }

    /// Frees the per-row memory.
    pub fn close(self) {
        // SAFETY: the context was made by `open` and is used no more.
        unsafe { pg_sys::MemoryContextDelete(self.per_row_cx) }
    }
}

/// The bytes of the varlena datum `d` after its header; copies into the current memory context
/// (the reader's per-row one) when the value is not a plain in-line 4-byte-header value.
///
/// # Safety
/// `d` must be a non-null varlena datum that stays valid while the result is used.
pub unsafe fn varlena_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    let mut ptr = d.cast_mut_ptr::<pg_sys::varlena>();
    // SAFETY: per the contract, `ptr` is a varlena; pg_detoast_datum returns a 4-byte-header,
    // in-line, uncompressed copy (palloc'd, so 8-byte aligned) of anything else.
    unsafe {
        if !pgrx::varlena::varatt_is_4b_u(ptr) {
            ptr = pg_sys::pg_detoast_datum(ptr);
        }
        let len = pgrx::varlena::varsize_4b(ptr) - pg_sys::VARHDRSZ;
        std::slice::from_raw_parts(pgrx::varlena::vardata_4b(ptr).cast::<u8>(), len)
    }
}

/// Attribute `att`'s datum from deformed arrays, or None for a null.
pub fn datum(values: &[pg_sys::Datum], nulls: &[bool], att: i16) -> Option<pg_sys::Datum> {
    let i = usize::try_from(att - 1).expect("attribute numbers are positive");
    (!nulls[i]).then(|| values[i])
}

/// The TID of row `offset` of page `block`.
pub fn tid(block: pg_sys::BlockNumber, offset: pg_sys::OffsetNumber) -> pg_sys::ItemPointerData {
    pg_sys::ItemPointerData {
        ip_blkid: pg_sys::BlockIdData {
            bi_hi: (block >> 16) as u16,
            bi_lo: (block & 0xffff) as u16,
        },
        ip_posid: offset,
    }
}

pub fn tid_block(tid: &pg_sys::ItemPointerData) -> pg_sys::BlockNumber {
    (u32::from(tid.ip_blkid.bi_hi) << 16) | u32::from(tid.ip_blkid.bi_lo)
}

/// Visits every row of `heap` that `snapshot` sees, in block order, for the `flat` index:
/// `visit` gets the row's root TID (the one an index entry for it names: a heap-only row's
/// chain starts elsewhere on its page) and the bytes of attribute `att` after the varlena
/// header, or None for a null. Under serializable isolation the whole relation is
/// predicate-locked, as a sequential scan locks it, and each row read is checked for
/// conflicts.
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
    // SAFETY: per the contract. Each tuple is deformed (up to `att`) into arrays whose datums
    // point into its pinned page, used before the reader moves on.
    unsafe {
        predicate::PredicateLockRelation(heap, snapshot);
        let blocks =
            pg_sys::RelationGetNumberOfBlocksInFork(heap, pg_sys::ForkNumber::MAIN_FORKNUM);
        let last = usize::try_from(att).expect("attribute numbers are positive");
        let desc = pg_sys::CreateTupleDescCopy((*heap).rd_att);
        (*desc).natts = i32::from(att);
        let mut values = vec![pg_sys::Datum::from(0usize); last];
        let mut nulls = vec![true; last];
        let list: Vec<PageRef> = (0..blocks)
            .map(|block| PageRef { block, tids: None })
            .collect();
        let mut reader = Reader::open(heap, snapshot);
        reader.read(&list, |tuple, block, root| {
            pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            let bytes = datum(&values, &nulls, att).map(|d| varlena_bytes(d));
            visit(tid(block, root), bytes);
        });
        reader.close();
        pg_sys::FreeTupleDesc(desc);
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
