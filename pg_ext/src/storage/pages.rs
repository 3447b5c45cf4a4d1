//! Reading heap pages from the shared buffers for the heap reader (`heap.rs`): each page
//! pinned through the buffer it was in when a backend last read it (`buffer_hints`), and the
//! memory a scan will read next requested ahead of time, when `sealstore_core::readahead`
//! says; the relation statistics those reads count.

use pgrx::pg_sys;
use sealstore_core::readahead::{self, Part, LINE};

use crate::storage::buffer_hints::RelationHints;

/// The most rows a heap page holds (htup_details.h, MaxHeapTuplesPerPage): the page less its
/// header, over a line pointer and the smallest (MAXALIGNed) row header.
pub const MAX_HEAP_TUPLES_PER_PAGE: usize = (pg_sys::BLCKSZ as usize
    - std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp))
    / (24 + std::mem::size_of::<pg_sys::ItemIdData>());

#[cfg(feature = "pg15")]
pub type Locator = pg_sys::RelFileNode;
#[cfg(not(feature = "pg15"))]
pub type Locator = pg_sys::RelFileLocator;

/// The relation's storage identity, and as numbers (tablespace, database, file number).
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn locator_of(rel: pg_sys::Relation) -> (Locator, [u32; 3]) {
    // SAFETY: per the contract.
    unsafe {
        #[cfg(feature = "pg15")]
        {
            let l = (*rel).rd_node;
            (
                l,
                [l.spcNode.to_u32(), l.dbNode.to_u32(), l.relNode.to_u32()],
            )
        }
        #[cfg(not(feature = "pg15"))]
        {
            let l = (*rel).rd_locator;
            (
                l,
                [l.spcOid.to_u32(), l.dbOid.to_u32(), l.relNumber.to_u32()],
            )
        }
    }
}

/// Reads the heap's pages for the scan, by way of the buffers they were in when a backend last
/// read them (`buffer_hints`).
///
/// Finding a page in the shared buffers is a lookup in the buffer mapping table: a chain of
/// dependent cache misses, under a partition lock, that nothing can start early. With two 3 KB
/// rows to a page it was a fifth of a search. A hinted buffer is tried first with
/// `ReadRecentBuffer`, which compares the buffer's tag under its header lock and pins it only
/// if it still holds the page; otherwise the page is read the ordinary way and the hint renewed.
/// A stale hint therefore costs one check, never a wrong page. And since the addresses of a
/// buffer's descriptor and page follow from its number, both can be requested from memory
/// pages ahead of their turn.
pub struct Pages {
    /// Where the rows of the page pinned ahead start, and their lengths.
    upcoming: Vec<(*const i8, usize)>,
    heap: pg_sys::Relation,
    locator: Locator,
    hints: Option<RelationHints>,
}

impl Pages {
    /// # Safety
    /// `heap` must be an open relation that stays open while the reader is used.
    pub unsafe fn open(heap: pg_sys::Relation) -> Pages {
        // SAFETY: per the contract.
        let (locator, identity) = unsafe { locator_of(heap) };
        // A temporary relation's pages are in this backend's local buffers, which the shared
        // hints do not describe.
        let temporary =
            unsafe { (*(*heap).rd_rel).relpersistence } == pg_sys::RELPERSISTENCE_TEMP as i8;
        Pages {
            upcoming: Vec::new(),
            heap,
            locator,
            hints: if temporary {
                None
            } else {
                RelationHints::of(identity)
            },
        }
    }

    /// The hinted buffer of `block`, as an index into the shared buffer arrays.
    fn hint(&self, block: pg_sys::BlockNumber) -> Option<usize> {
        self.hints?.get(block)
    }

    pub fn prefetch_descriptor(&self, block: pg_sys::BlockNumber) {
        if let Some(i) = self.hint(block) {
            // SAFETY: i < NBuffers indexes the descriptor array; a prefetch never faults.
            unsafe { prefetch(pg_sys::BufferDescriptors.add(i).cast::<i8>()) };
        }
    }

    pub fn prefetch_header(&self, block: pg_sys::BlockNumber) {
        if let Some(i) = self.hint(block) {
            // SAFETY: i < NBuffers; a prefetch never faults.
            unsafe { prefetch(page_of(i)) };
        }
    }

    /// Pins heap page `block` and asks for the first lines of its rows: those of `tids` (TIDs
    /// on that page), or with `None` every row on it.
    ///
    /// # Safety
    /// As for `pin`.
    pub unsafe fn pin_ahead(
        &mut self,
        block: pg_sys::BlockNumber,
        tids: Option<&[pg_sys::ItemPointerData]>,
    ) -> pg_sys::Buffer {
        // SAFETY: per the contract. The page is pinned, and a pin keeps the line pointers of
        // its rows in place (moving them needs a cleanup lock, which waits for the pin), so
        // reading them without the content lock is sound; they only aim prefetches. Without
        // the lock, the count of line pointers may be stale: it is capped to the page.
        unsafe {
            let buffer = self.pin(block);
            self.upcoming.clear();
            if buffer > 0 {
                let page = page_of((buffer - 1) as usize);
                let first = page
                    .add(std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp))
                    .cast::<pg_sys::ItemIdData>();
                let size = pg_sys::BLCKSZ as usize;
                let mut ask = |n: usize| {
                    let item = &*first.add(n);
                    let at = item.lp_off() as usize;
                    let len = item.lp_len() as usize;
                    if item.lp_flags() == pg_sys::LP_NORMAL && at + len <= size {
                        let row = page.add(at);
                        for line in readahead::lines(len, Part::Start) {
                            prefetch(row.add(line * LINE));
                        }
                        self.upcoming.push((row, len));
                    }
                };
                match tids {
                    Some(tids) => {
                        for tid in tids {
                            if let Some(n) = usize::from(tid.ip_posid).checked_sub(1) {
                                ask(n);
                            }
                        }
                    }
                    None => {
                        let lines = usize::from(pg_sys::PageGetMaxOffsetNumber(page.cast_mut()))
                            .min(MAX_HEAP_TUPLES_PER_PAGE);
                        (0..lines).for_each(ask);
                    }
                }
            }
            buffer
        }
    }

    /// Asks for `part` of the row scored next: `next`, the row after this one on the same
    /// page (its data and length), or else the first row of the page pinned ahead.
    pub fn prefetch_next_row(&self, next: Option<(*const i8, usize)>, part: Part) {
        if let Some((row, len)) = next.or_else(|| self.upcoming.first().copied()) {
            for line in readahead::lines(len, part) {
                prefetch(row.wrapping_add(line * LINE));
            }
        }
    }

    /// Pins heap page `block` and returns its buffer.
    ///
    /// # Safety
    /// `block` must lie within the heap (it came from its index).
    unsafe fn pin(&mut self, block: pg_sys::BlockNumber) -> pg_sys::Buffer {
        // SAFETY: per the contract and `open`'s; ReadRecentBuffer pins only a buffer whose tag
        // it found equal to this page's under the buffer header lock.
        unsafe {
            if let Some(i) = self.hint(block) {
                let buffer = (i + 1) as pg_sys::Buffer;
                if pg_sys::ReadRecentBuffer(
                    self.locator,
                    pg_sys::ForkNumber::MAIN_FORKNUM,
                    block,
                    buffer,
                ) {
                    count(self.heap, Count::BufferHit);
                    return buffer;
                }
            }
            let buffer = pg_sys::ReadBufferExtended(
                self.heap,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                block,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                std::ptr::null_mut(),
            );
            if buffer > 0 {
                if let Some(hints) = self.hints {
                    hints.set(block, buffer);
                }
            }
            buffer
        }
    }
}

/// The page of shared buffer `i` (0-based): BLCKSZ bytes at BufferBlocks + i * BLCKSZ
/// (bufmgr.h, BufferGetBlock).
///
/// # Safety
/// `i` must be below NBuffers.
unsafe fn page_of(i: usize) -> *const i8 {
    // SAFETY: per the contract, within the buffer pool's mapping.
    unsafe {
        pg_sys::BufferBlocks
            .cast::<i8>()
            .add(i * pg_sys::BLCKSZ as usize)
    }
}

/// Asks the CPU to bring the cache line at `p` closer.
fn prefetch(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// What `count` adds to a relation's statistics, as PostgreSQL's own paths do.
pub enum Count {
    /// A page found in the shared buffers (`ReadBufferExtended` counts it; `ReadRecentBuffer`
    /// counts it only in the statement's buffer usage).
    BufferHit,
    /// An index scan (`pgstat_count_index_scan`).
    IndexScan,
    /// Rows fetched through an index (`index_fetch_heap`, one per row).
    HeapFetches(i64),
}

/// Adds `what` to `rel`'s statistics for this backend.
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn count(rel: pg_sys::Relation, what: Count) {
    // SAFETY: pgstat_info is null or the relation's statistics entry for this backend.
    unsafe {
        let info = (*rel).pgstat_info;
        if info.is_null() {
            return;
        }
        #[cfg(feature = "pg15")]
        let counts = &mut (*info).t_counts;
        #[cfg(not(feature = "pg15"))]
        let counts = &mut (*info).counts;
        match what {
            #[cfg(feature = "pg15")]
            Count::BufferHit => {
                counts.t_blocks_fetched += 1;
                counts.t_blocks_hit += 1;
            }
            #[cfg(feature = "pg15")]
            Count::IndexScan => counts.t_numscans += 1,
            #[cfg(feature = "pg15")]
            Count::HeapFetches(n) => counts.t_tuples_fetched += n,
            #[cfg(not(feature = "pg15"))]
            Count::BufferHit => {
                counts.blocks_fetched += 1;
                counts.blocks_hit += 1;
            }
            #[cfg(not(feature = "pg15"))]
            Count::IndexScan => counts.numscans += 1,
            #[cfg(not(feature = "pg15"))]
            Count::HeapFetches(n) => counts.tuples_fetched += n,
        }
    }
}

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
        let (_, identity) = locator_of(rel);
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
