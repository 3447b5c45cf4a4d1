//! Reading heap pages from the shared buffers for the scans of `scan.rs`: each page pinned
//! through the buffer it was in when a backend last read it (`buffer_hints`), and the memory a
//! scan will read next requested ahead of time; the relation statistics those reads count.

use pgrx::pg_sys;

use crate::storage::buffer_hints::RelationHints;

/// The most rows a heap page holds (htup_details.h, MaxHeapTuplesPerPage): the page less its
/// header, over a line pointer and the smallest (MAXALIGNed) row header.
pub const MAX_HEAP_TUPLES_PER_PAGE: usize = (pg_sys::BLCKSZ as usize
    - std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp))
    / (24 + std::mem::size_of::<pg_sys::ItemIdData>());

/// How many pages ahead of the one being scored the scan asks for a hinted buffer's
/// descriptor and for its page's header (with the line pointers); the next page is pinned and
/// the first `ROW_LINES` cache lines of its rows requested. (Measured on the benchmark's data:
/// whole pages requested ahead did worse, as the requests queue behind one another.)
pub const DESCRIPTOR_AHEAD: usize = 16;
pub const HEADER_AHEAD: usize = 8;
const ROW_LINES: usize = 8;

/// The rest of a row's cache lines (past `ROW_LINES`) are asked for one row ahead, in two
/// halves split at this line: the first before the row ahead of it is scored, the second
/// after. Asked for all at once (40 lines of a 3 KB row), many did not arrive in time: a core
/// has room for fewer outstanding misses than that, and the row's own loads later waited on
/// memory (the profile's samples sat on the decryption's loads). Measured on these machines'
/// Zen 5 CPUs over the vector benchmark's data, 21 queries paired: plaintext search 28.9 ->
/// 25.1 ms, AES-256-GCM search 56.7 -> 45.9 ms (a split at line 20 did about as well, at 36
/// worse). A standalone test of the same access pattern, outside PostgreSQL: 0.53 µs a row
/// asked for at once, 0.37 µs in halves.
const SPLIT_LINE: usize = 28;

/// Which half of a row's remaining cache lines to ask for (see [`SPLIT_LINE`]).
#[derive(Clone, Copy)]
pub enum Half {
    /// Asked for before the row ahead of it is scored.
    First,
    /// Asked for after.
    Second,
}

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
                        for line in 0..ROW_LINES.min(len.div_ceil(64)) {
                            prefetch(row.add(line * 64));
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

    /// Asks for `half` of the rest of the row scored next: `next`, the row after this one on
    /// the same page (its data and length), or else the first row of the page pinned ahead.
    pub fn prefetch_next_row(&self, next: Option<(*const i8, usize)>, half: Half) {
        if let Some((row, len)) = next.or_else(|| self.upcoming.first().copied()) {
            prefetch_rest(row, len, half);
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

/// Asks for `half` of the cache lines of the `len`-byte row at `row` past the first
/// `ROW_LINES` (which `pin_ahead` asked for). Issued one row ahead, while a row is scored:
/// asked for a page ahead, the requests wait on one another and stall the scan.
fn prefetch_rest(row: *const i8, len: usize, half: Half) {
    let lines = len.div_ceil(64);
    let range = match half {
        Half::First => ROW_LINES..SPLIT_LINE.min(lines),
        Half::Second => SPLIT_LINE.max(ROW_LINES)..lines,
    };
    for line in range {
        prefetch(row.wrapping_add(line * 64));
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
