//! The hnsw index's pages, every change WAL-logged through generic WAL records.
//!
//! ```text
//! block 0      metapage: dimensions, options, metric, whether keyed, the index's random id,
//!              the first and last directory page
//! directory    one entry per key value (per graph): the key, the first and last of its node
//!              pages, its node count, its entry point
//! node pages   one key's nodes only, chained from its directory entry; each node is two
//!              items on one page, its element record then its neighbour record
//!              (sealstore_core::graph::record)
//! ```
//!
//! A node is named by its element record's place (block, line). A deleted node keeps its items
//! with the element's line pointer marked dead: scans skip it, VACUUM has relinked its
//! neighbours, and the space comes back with REINDEX.
//!
//! Locks: readers take a share lock on one page at a time. A writer of a key's graph holds
//! that key's heavyweight lock ([`Index::lock_key`]) for the whole insert or repair, and an
//! exclusive lock on each page while it changes it; adding a key to the directory takes the
//! directory's heavyweight lock too.

use pgrx::pg_sys;
use sealstore_core::graph::record::ItemId;
use zeroize::Zeroizing;

use crate::runtime::errors::{self, Error, Kind};

pub const PAGE_ID: u16 = 0xFF95;
pub const KIND_META: u16 = 1;
pub const KIND_DIRECTORY: u16 = 2;
pub const KIND_NODES: u16 = 3;
const MAGIC: u32 = 0x5EA1_4E57;
const VERSION: u32 = 2;

/// Heavyweight lock tags (LockPage block numbers beyond any real page): the directory's, and
/// one of 2^20 per key value (two keys that share one merely wait for each other).
const DIRECTORY_LOCK: u32 = 0xFFFF_FFFE;
const KEY_LOCKS: u32 = 0xFFE0_0000;

thread_local! {
    /// Where this backend found each key's directory entry, by index OID and key.
    static PLACES: std::cell::RefCell<rustc_hash::FxHashMap<(pg_sys::Oid, [u8; 16]), ItemId>> =
        std::cell::RefCell::new(rustc_hash::FxHashMap::default());
}

/// Every page's special space.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Opaque {
    pub next: pg_sys::BlockNumber,
    pub kind: u16,
    pub page_id: u16,
}

/// The metapage's contents.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    magic: u32,
    version: u32,
    /// 0 until the first vector is indexed.
    pub dims: u32,
    pub m: u32,
    pub ef_construction: u32,
    /// The operator class's strategy number (1 l2, 2 inner product, 3 cosine, 4 l1).
    pub strategy: u32,
    pub keyed: u32,
    /// 1 for an index of collections (sql/hnsw.sql, `documents_graph`): each graph's distance
    /// and dimensions are its collection's, kept in its directory entry.
    pub per_collection: u32,
    pub index_id: [u8; 16],
    pub directory_head: pg_sys::BlockNumber,
    pub directory_tail: pg_sys::BlockNumber,
}

/// One graph's directory entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub key: [u8; 16],
    pub head: pg_sys::BlockNumber,
    pub tail: pg_sys::BlockNumber,
    /// Live nodes.
    pub nodes: u64,
    pub entry_block: pg_sys::BlockNumber,
    pub entry_offset: u16,
    pub entry_level: u8,
    pub has_entry: u8,
    /// For an index of collections (`Meta::per_collection`): the collection's tenant, its
    /// dimensions and distance (an operator class strategy), and whether the graph is sealed
    /// with the tenant's data key. Zero otherwise.
    pub tenant: [u8; 16],
    pub dims: u32,
    pub strategy: u8,
    pub sealed: u8,
    /// Bumped by every change of the graph (each `Index::update_entry`): what a backend that
    /// keeps the graph in memory checks before a scan.
    pub version: u64,
}

impl DirEntry {
    pub fn entry(&self) -> Option<(ItemId, usize)> {
        (self.has_entry != 0).then_some((
            ItemId {
                block: self.entry_block,
                offset: self.entry_offset,
            },
            usize::from(self.entry_level),
        ))
    }

    pub fn set_entry(&mut self, entry: Option<(ItemId, usize)>) {
        match entry {
            Some((at, level)) => {
                self.entry_block = at.block;
                self.entry_offset = at.offset;
                self.entry_level = level as u8;
                self.has_entry = 1;
            }
            None => {
                self.has_entry = 0;
                self.entry_block = 0;
                self.entry_offset = 0;
                self.entry_level = 0;
            }
        }
    }
}

const OPAQUE_SIZE: usize = std::mem::size_of::<Opaque>();

/// The bytes a page offers its items (line pointers included).
pub fn usable_bytes() -> usize {
    pg_sys::BLCKSZ as usize
        - std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp)
        - OPAQUE_SIZE.div_ceil(8) * 8
}

pub fn damaged(what: &str) -> ! {
    errors::raise(Error::new(
        Kind::Internal,
        format!("hnsw index is damaged: {what}; REINDEX it"),
    ))
}

/// One page registered with a generic WAL record.
pub struct Xlog {
    state: *mut pg_sys::GenericXLogState,
}

impl Xlog {
    /// # Safety
    /// `rel` is an open index.
    pub unsafe fn start(rel: pg_sys::Relation) -> Xlog {
        // SAFETY: per the contract.
        Xlog {
            state: unsafe { pg_sys::GenericXLogStart(rel) },
        }
    }

    /// The copy of `buf`'s page to change (the buffer is locked exclusively by the caller);
    /// `whole` logs the page whole (a new page).
    ///
    /// # Safety
    /// `buf` is pinned and exclusively locked until `finish`.
    pub unsafe fn page(&mut self, buf: pg_sys::Buffer, whole: bool) -> pg_sys::Page {
        let flags = if whole {
            pg_sys::GENERIC_XLOG_FULL_IMAGE as i32
        } else {
            0
        };
        // SAFETY: per the contract.
        unsafe { pg_sys::GenericXLogRegisterBuffer(self.state, buf, flags) }
    }

    pub fn finish(mut self) {
        // SAFETY: the state was started and not finished.
        unsafe { pg_sys::GenericXLogFinish(self.state) };
        self.state = std::ptr::null_mut();
    }
}

impl Drop for Xlog {
    fn drop(&mut self) {
        if !self.state.is_null() {
            // SAFETY: an unfinished record (an error unwound past it): nothing was applied.
            unsafe { pg_sys::GenericXLogAbort(self.state) };
        }
    }
}

/// # Safety
/// `page` is a page of this index.
pub unsafe fn opaque(page: pg_sys::Page) -> *mut Opaque {
    // SAFETY: per the contract: every page of the index has this special space.
    unsafe { pg_sys::PageGetSpecialPointer(page).cast() }
}

/// # Safety
/// `page` is a page in memory (a new buffer's copy under a generic WAL record).
pub unsafe fn init_page(page: pg_sys::Page, kind: u16) {
    // SAFETY: per the contract.
    unsafe {
        pg_sys::PageInit(page, pg_sys::BLCKSZ as usize, OPAQUE_SIZE);
        *opaque(page) = Opaque {
            next: pg_sys::InvalidBlockNumber,
            kind,
            page_id: PAGE_ID,
        };
    }
}

/// A metapage's contents for an empty index, as `meta_of` sets them.
pub fn new_meta(meta_of: impl FnOnce(&mut Meta)) -> Meta {
    let mut meta = Meta {
        magic: MAGIC,
        version: VERSION,
        dims: 0,
        m: 0,
        ef_construction: 0,
        strategy: 0,
        keyed: 0,
        per_collection: 0,
        index_id: [0; 16],
        directory_head: pg_sys::InvalidBlockNumber,
        directory_tail: pg_sys::InvalidBlockNumber,
    };
    meta_of(&mut meta);
    meta
}

/// # Safety
/// `page` is a new metapage (initialised, registered).
pub unsafe fn write_meta(page: pg_sys::Page, meta: Meta) {
    // SAFETY: per the contract; the contents follow the page header.
    unsafe {
        std::ptr::write_unaligned(pg_sys::PageGetContents(page).cast::<Meta>(), meta);
        (*page.cast::<pg_sys::PageHeaderData>()).pd_lower += std::mem::size_of::<Meta>() as u16;
    }
}

/// The index relation.
#[derive(Clone, Copy)]
pub struct Index {
    pub rel: pg_sys::Relation,
}

impl Index {
    /// # Safety
    /// `rel` is an open hnsw index, open for as long as this is used.
    pub unsafe fn new(rel: pg_sys::Relation) -> Index {
        Index { rel }
    }

    /// Reads `block` pinned and locked (`exclusive` or share).
    pub fn read(&self, block: pg_sys::BlockNumber, exclusive: bool) -> pg_sys::Buffer {
        // SAFETY: the relation is open; a block out of range is PostgreSQL's error.
        unsafe {
            let buf = pg_sys::ReadBufferExtended(
                self.rel,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                block,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                std::ptr::null_mut(),
            );
            let mode = if exclusive {
                pg_sys::BUFFER_LOCK_EXCLUSIVE
            } else {
                pg_sys::BUFFER_LOCK_SHARE
            };
            pg_sys::LockBuffer(buf, mode as i32);
            let page = pg_sys::BufferGetPage(buf);
            if !pg_sys::PageIsNew(page) && (*opaque(page)).page_id != PAGE_ID {
                damaged("a page of another kind");
            }
            buf
        }
    }

    /// A new page at the end of the index, pinned and exclusively locked (to be initialised
    /// under a generic WAL record).
    pub fn extend(&self) -> pg_sys::Buffer {
        // SAFETY: the relation is open; the extension lock serialises extenders.
        unsafe {
            pg_sys::LockRelationForExtension(self.rel, pg_sys::ExclusiveLock as i32);
            let buf = pg_sys::ReadBufferExtended(
                self.rel,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                pg_sys::InvalidBlockNumber,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                std::ptr::null_mut(),
            );
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            pg_sys::UnlockRelationForExtension(self.rel, pg_sys::ExclusiveLock as i32);
            buf
        }
    }

    pub fn blocks(&self) -> pg_sys::BlockNumber {
        // SAFETY: the relation is open.
        unsafe {
            pg_sys::RelationGetNumberOfBlocksInFork(self.rel, pg_sys::ForkNumber::MAIN_FORKNUM)
        }
    }

    /// Writes the metapage of an empty index (block 0).
    pub fn create_meta(&self, meta_of: impl FnOnce(&mut Meta)) {
        let buf = self.extend();
        // SAFETY: the new buffer is exclusively locked; the page is initialised under the record.
        unsafe {
            if pg_sys::BufferGetBlockNumber(buf) != 0 {
                damaged("the metapage is not the first block");
            }
            let mut x = Xlog::start(self.rel);
            let page = x.page(buf, true);
            init_page(page, KIND_META);
            write_meta(page, new_meta(meta_of));
            x.finish();
            pg_sys::UnlockReleaseBuffer(buf);
        }
    }

    pub fn meta(&self) -> Meta {
        let buf = self.read(0, false);
        // SAFETY: block 0 is the metapage, locked.
        unsafe {
            let page = pg_sys::BufferGetPage(buf);
            if (*opaque(page)).kind != KIND_META {
                damaged("block 0 is not its metapage");
            }
            let meta = std::ptr::read_unaligned(pg_sys::PageGetContents(page).cast::<Meta>());
            pg_sys::UnlockReleaseBuffer(buf);
            if meta.magic != MAGIC || meta.version != VERSION {
                damaged("an unknown metapage");
            }
            meta
        }
    }

    /// Changes the metapage.
    pub fn update_meta(&self, change: impl FnOnce(&mut Meta)) {
        let buf = self.read(0, true);
        // SAFETY: block 0 is the metapage, exclusively locked.
        unsafe {
            let mut x = Xlog::start(self.rel);
            let page = x.page(buf, false);
            let at = pg_sys::PageGetContents(page).cast::<Meta>();
            let mut meta = std::ptr::read_unaligned(at);
            change(&mut meta);
            std::ptr::write_unaligned(at, meta);
            x.finish();
            pg_sys::UnlockReleaseBuffer(buf);
        }
    }

    /// Takes (or, `release`, releases) the heavyweight lock on one key's graph.
    pub fn lock_key(&self, key: &[u8; 16], release: bool) {
        let hash = key.iter().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        });
        let tag = KEY_LOCKS + (hash & 0x000F_FFFF);
        // SAFETY: a lock tag on the open index; released before the operation returns or at
        // transaction end after an error.
        unsafe {
            if release {
                pg_sys::UnlockPage(self.rel, tag, pg_sys::ExclusiveLock as i32);
            } else {
                pg_sys::LockPage(self.rel, tag, pg_sys::ExclusiveLock as i32);
            }
        }
    }

    /// Every directory entry, with its place.
    pub fn entries(&self) -> Vec<(ItemId, DirEntry)> {
        let mut out = Vec::new();
        let mut block = self.meta().directory_head;
        while block != pg_sys::InvalidBlockNumber {
            let buf = self.read(block, false);
            // SAFETY: a directory page, locked; its items are DirEntry records.
            unsafe {
                let page = pg_sys::BufferGetPage(buf);
                if (*opaque(page)).kind != KIND_DIRECTORY {
                    damaged("a directory page of another kind");
                }
                for off in 1..=pg_sys::PageGetMaxOffsetNumber(page) {
                    let item = pg_sys::PageGetItemId(page, off);
                    if (*item).lp_len() as usize != std::mem::size_of::<DirEntry>() {
                        damaged("a directory entry of the wrong length");
                    }
                    let e = std::ptr::read_unaligned(pg_sys::PageGetItem(page, item).cast());
                    out.push((ItemId { block, offset: off }, e));
                }
                block = (*opaque(page)).next;
                pg_sys::UnlockReleaseBuffer(buf);
            }
        }
        out
    }

    /// The directory entry of `key`. Entries never move once added, so a backend remembers
    /// where it found each key and looks there first (checked: a directory page, the line, the
    /// key), instead of reading the whole directory of an index with many keys every time.
    pub fn find(&self, key: &[u8; 16]) -> Option<(ItemId, DirEntry)> {
        // SAFETY: the relation is open.
        let rel = unsafe { (*self.rel).rd_id };
        if let Some(at) = PLACES.with_borrow(|p| p.get(&(rel, *key)).copied()) {
            if let Some(e) = self.entry_if(at, key) {
                return Some((at, e));
            }
        }
        let found = self.entries().into_iter().find(|(_, e)| &e.key == key);
        if let Some((at, _)) = found {
            PLACES.with_borrow_mut(|p| p.insert((rel, *key), at));
        }
        found
    }

    /// The directory entry at `at` if it is there and is `key`'s (a remembered place can be
    /// stale after a REINDEX or a TRUNCATE).
    fn entry_if(&self, at: ItemId, key: &[u8; 16]) -> Option<DirEntry> {
        if at.block == 0 || at.block >= self.blocks() {
            return None;
        }
        let buf = self.read(at.block, false);
        // SAFETY: the page is locked; the item is read only if the page is a directory page
        // and the line holds an entry.
        unsafe {
            let page = pg_sys::BufferGetPage(buf);
            let mut found = None;
            if !pg_sys::PageIsNew(page)
                && (*opaque(page)).kind == KIND_DIRECTORY
                && at.offset >= 1
                && at.offset <= pg_sys::PageGetMaxOffsetNumber(page)
            {
                let item = pg_sys::PageGetItemId(page, at.offset);
                if (*item).lp_len() as usize == std::mem::size_of::<DirEntry>() {
                    let e: DirEntry =
                        std::ptr::read_unaligned(pg_sys::PageGetItem(page, item).cast());
                    if &e.key == key {
                        found = Some(e);
                    }
                }
            }
            pg_sys::UnlockReleaseBuffer(buf);
            found
        }
    }

    /// The directory entry of `key`, added (empty) if there is none. The caller holds the
    /// key's lock.
    /// `init` fills in a new entry's description (`DirEntry::tenant` and what follows).
    pub fn find_or_add(
        &self,
        key: &[u8; 16],
        init: impl FnOnce(&mut DirEntry),
    ) -> (ItemId, DirEntry) {
        if let Some(found) = self.find(key) {
            return found;
        }
        // SAFETY: lock tags on the open index.
        unsafe { pg_sys::LockPage(self.rel, DIRECTORY_LOCK, pg_sys::ExclusiveLock as i32) };
        let added = self.find(key).unwrap_or_else(|| self.add(key, init));
        // SAFETY: as above.
        unsafe { pg_sys::UnlockPage(self.rel, DIRECTORY_LOCK, pg_sys::ExclusiveLock as i32) };
        added
    }

    fn add(&self, key: &[u8; 16], init: impl FnOnce(&mut DirEntry)) -> (ItemId, DirEntry) {
        let mut entry = DirEntry {
            key: *key,
            head: pg_sys::InvalidBlockNumber,
            tail: pg_sys::InvalidBlockNumber,
            nodes: 0,
            entry_block: 0,
            entry_offset: 0,
            entry_level: 0,
            has_entry: 0,
            tenant: [0; 16],
            dims: 0,
            strategy: 0,
            sealed: 0,
            version: 0,
        };
        init(&mut entry);
        let size = std::mem::size_of::<DirEntry>();
        let tail = self.meta().directory_tail;
        // SAFETY: pages locked exclusively while registered; items are DirEntry records.
        unsafe {
            if tail != pg_sys::InvalidBlockNumber {
                let buf = self.read(tail, true);
                if pg_sys::PageGetFreeSpace(pg_sys::BufferGetPage(buf)) >= size {
                    let mut x = Xlog::start(self.rel);
                    let page = x.page(buf, false);
                    let off = add_item(page, std::ptr::from_ref(&entry).cast(), size);
                    x.finish();
                    pg_sys::UnlockReleaseBuffer(buf);
                    return (
                        ItemId {
                            block: tail,
                            offset: off,
                        },
                        entry,
                    );
                }
                pg_sys::UnlockReleaseBuffer(buf);
            }
            let bytes = std::slice::from_raw_parts(std::ptr::from_ref(&entry).cast::<u8>(), size);
            let items = |_| vec![Zeroizing::new(bytes.to_vec())];
            let (block, off) = self.chain_page(KIND_DIRECTORY, tail, items, 0, |page, block| {
                let m = pg_sys::PageGetContents(page).cast::<Meta>();
                let mut mv = std::ptr::read_unaligned(m);
                extend_chain(&mut mv.directory_head, &mut mv.directory_tail, block);
                std::ptr::write_unaligned(m, mv);
            });
            (ItemId { block, offset: off }, entry)
        }
    }

    /// A new page of `kind` after `tail`, the last page of a chain (none for an empty chain),
    /// holding the items `items` makes for its block; `ends` records it as the chain's end in the page of block `holder` (the
    /// metapage or a directory page), all in one generic WAL record. Returns the new block and
    /// its first item's line.
    ///
    /// # Safety
    /// `holder` holds the chain's ends; `ends` changes that page only.
    unsafe fn chain_page(
        &self,
        kind: u16,
        tail: pg_sys::BlockNumber,
        items: impl FnOnce(pg_sys::BlockNumber) -> Vec<Zeroizing<Vec<u8>>>,
        holder: pg_sys::BlockNumber,
        ends: impl FnOnce(pg_sys::Page, pg_sys::BlockNumber),
    ) -> (pg_sys::BlockNumber, u16) {
        // SAFETY: per the contract; every buffer is exclusively locked while it is registered
        // (the new one first: no other backend knows it yet).
        unsafe {
            let new = self.extend();
            let block = pg_sys::BufferGetBlockNumber(new);
            let old = (tail != pg_sys::InvalidBlockNumber).then(|| self.read(tail, true));
            let held = self.read(holder, true);
            let mut x = Xlog::start(self.rel);
            let page = x.page(new, true);
            init_page(page, kind);
            let first = items(block)
                .iter()
                .map(|item| add_item(page, item.as_ptr(), item.len()))
                .min()
                .unwrap_or(pg_sys::InvalidOffsetNumber);
            if let Some(old) = old {
                (*opaque(x.page(old, false))).next = block;
            }
            ends(x.page(held, false), block);
            x.finish();
            pg_sys::UnlockReleaseBuffer(held);
            if let Some(old) = old {
                pg_sys::UnlockReleaseBuffer(old);
            }
            pg_sys::UnlockReleaseBuffer(new);
            (block, first)
        }
    }

    /// The directory entry at `at`.
    pub fn entry_at(&self, at: ItemId) -> DirEntry {
        let buf = self.read(at.block, false);
        // SAFETY: the directory page is locked; the item is a DirEntry.
        unsafe {
            let page = pg_sys::BufferGetPage(buf);
            let p = item_ptr(page, at.offset, std::mem::size_of::<DirEntry>()).cast::<DirEntry>();
            let e = std::ptr::read_unaligned(p);
            pg_sys::UnlockReleaseBuffer(buf);
            e
        }
    }

    /// Changes the directory entry at `at`.
    pub fn update_entry(&self, at: ItemId, change: impl FnOnce(&mut DirEntry)) -> DirEntry {
        let buf = self.read(at.block, true);
        // SAFETY: the directory page is exclusively locked; the item is a DirEntry.
        unsafe {
            let mut x = Xlog::start(self.rel);
            let page = x.page(buf, false);
            let p = item_ptr(page, at.offset, std::mem::size_of::<DirEntry>()).cast::<DirEntry>();
            let mut e = std::ptr::read_unaligned(p);
            change(&mut e);
            e.version += 1;
            std::ptr::write_unaligned(p, e);
            x.finish();
            pg_sys::UnlockReleaseBuffer(buf);
            e
        }
    }

    /// Appends a node to the graph of the directory entry at `dir`, on its last page or a new
    /// one: its two records, of the lengths `lengths`, as `records` makes them for the node's
    /// place (a sealed record is bound to it). Returns the node's place.
    pub fn append_node(
        &self,
        dir: ItemId,
        lengths: (usize, usize),
        records: impl FnOnce(ItemId) -> (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>),
    ) -> ItemId {
        let needed = item_space(lengths.0) + item_space(lengths.1);
        if needed > usable_bytes() {
            errors::raise(Error::new(
                Kind::InvalidArgument,
                "vector too large for an hnsw index page: use fewer dimensions",
            ));
        }
        let entry = self.entry_at(dir);
        // SAFETY: pages exclusively locked while registered.
        unsafe {
            if entry.tail != pg_sys::InvalidBlockNumber {
                let buf = self.read(entry.tail, true);
                let page = pg_sys::BufferGetPage(buf);
                if pg_sys::PageGetExactFreeSpace(page) >= needed {
                    let node = ItemId {
                        block: entry.tail,
                        offset: pg_sys::PageGetMaxOffsetNumber(page) + 1,
                    };
                    let (element, neighbours) = records(node);
                    let mut x = Xlog::start(self.rel);
                    let page = x.page(buf, false);
                    let at = add_item(page, element.as_ptr(), element.len());
                    add_item(page, neighbours.as_ptr(), neighbours.len());
                    if at != node.offset {
                        damaged("a node added elsewhere than planned");
                    }
                    x.finish();
                    pg_sys::UnlockReleaseBuffer(buf);
                    return ItemId {
                        block: entry.tail,
                        offset: at,
                    };
                }
                pg_sys::UnlockReleaseBuffer(buf);
            }
            let (block, at) = self.chain_page(
                KIND_NODES,
                entry.tail,
                |block| {
                    let (element, neighbours) = records(ItemId { block, offset: 1 });
                    vec![element, neighbours]
                },
                dir.block,
                |page, block| {
                    let p = item_ptr(page, dir.offset, std::mem::size_of::<DirEntry>())
                        .cast::<DirEntry>();
                    let mut e = std::ptr::read_unaligned(p);
                    extend_chain(&mut e.head, &mut e.tail, block);
                    std::ptr::write_unaligned(p, e);
                },
            );
            ItemId { block, offset: at }
        }
    }

    /// Calls `f` with the item at `at` and whether its line pointer is live, under a share lock.
    pub fn with_item<R>(&self, at: ItemId, f: impl FnOnce(&[u8], bool) -> R) -> R {
        let buf = self.read(at.block, false);
        // SAFETY: the page is locked; the slice lives within it while `f` runs.
        unsafe {
            let page = pg_sys::BufferGetPage(buf);
            if at.offset == 0 || at.offset > pg_sys::PageGetMaxOffsetNumber(page) {
                damaged("a link to a line that does not exist");
            }
            let item = pg_sys::PageGetItemId(page, at.offset);
            let live = (*item).lp_flags() == pg_sys::LP_NORMAL;
            let bytes = std::slice::from_raw_parts(
                pg_sys::PageGetItem(page, item).cast::<u8>(),
                (*item).lp_len() as usize,
            );
            let r = f(bytes, live);
            pg_sys::UnlockReleaseBuffer(buf);
            r
        }
    }

    /// Replaces the item at `at` with `bytes` of the same length.
    pub fn overwrite(&self, at: ItemId, bytes: &[u8]) {
        let buf = self.read(at.block, true);
        // SAFETY: the page is exclusively locked and registered; the item is as long.
        unsafe {
            let mut x = Xlog::start(self.rel);
            let page = x.page(buf, false);
            let p = item_ptr(page, at.offset, bytes.len());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            x.finish();
            pg_sys::UnlockReleaseBuffer(buf);
        }
    }

    /// Marks the nodes at `ats` (all on one page) deleted.
    pub fn mark_dead(&self, block: pg_sys::BlockNumber, offsets: &[u16]) {
        let buf = self.read(block, true);
        // SAFETY: the page is exclusively locked and registered.
        unsafe {
            let mut x = Xlog::start(self.rel);
            let page = x.page(buf, false);
            for &off in offsets {
                let item = pg_sys::PageGetItemId(page, off);
                (*item).set_lp_flags(pg_sys::LP_DEAD);
            }
            x.finish();
            pg_sys::UnlockReleaseBuffer(buf);
        }
    }

    /// The live nodes of the graph whose first page is `head`, and the dead ones, in page order.
    pub fn nodes(&self, head: pg_sys::BlockNumber) -> (Vec<ItemId>, Vec<ItemId>) {
        let (mut live, mut dead) = (Vec::new(), Vec::new());
        let mut block = head;
        while block != pg_sys::InvalidBlockNumber {
            let buf = self.read(block, false);
            // SAFETY: a node page, locked; elements lie on odd lines.
            unsafe {
                let page = pg_sys::BufferGetPage(buf);
                if (*opaque(page)).kind != KIND_NODES {
                    damaged("a node page of another kind");
                }
                let max = pg_sys::PageGetMaxOffsetNumber(page);
                let mut off = 1;
                while off < max {
                    let item = pg_sys::PageGetItemId(page, off);
                    let at = ItemId { block, offset: off };
                    if (*item).lp_flags() == pg_sys::LP_NORMAL {
                        live.push(at);
                    } else {
                        dead.push(at);
                    }
                    off += 2;
                }
                block = (*opaque(page)).next;
                pg_sys::UnlockReleaseBuffer(buf);
            }
            pgrx::check_for_interrupts!();
        }
        (live, dead)
    }
}

/// Makes `block` the end of the chain `head`..`tail` (and its start if it was empty).
fn extend_chain(
    head: &mut pg_sys::BlockNumber,
    tail: &mut pg_sys::BlockNumber,
    block: pg_sys::BlockNumber,
) {
    if *head == pg_sys::InvalidBlockNumber {
        *head = block;
    }
    *tail = block;
}

/// The space an item of `len` bytes takes on a page, line pointer included.
pub fn item_space(len: usize) -> usize {
    sealstore_core::graph::memory::item_cost(len)
}

/// # Safety
/// `page` is a registered or locked page with room for the item.
pub unsafe fn add_item(page: pg_sys::Page, data: *const u8, len: usize) -> u16 {
    // SAFETY: per the contract.
    let off = unsafe {
        pg_sys::PageAddItemExtended(
            page,
            data.cast_mut().cast(),
            len,
            pg_sys::InvalidOffsetNumber,
            0,
        )
    };
    if off == pg_sys::InvalidOffsetNumber {
        damaged("an item did not fit its page");
    }
    off
}

/// The data of the item at `offset`, checked to be `len` bytes long.
///
/// # Safety
/// `page` is a locked or registered page of this index.
unsafe fn item_ptr(page: pg_sys::Page, offset: u16, len: usize) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe {
        if offset == 0 || offset > pg_sys::PageGetMaxOffsetNumber(page) {
            damaged("a line that does not exist");
        }
        let item = pg_sys::PageGetItemId(page, offset);
        if (*item).lp_len() as usize != len {
            damaged("an item of the wrong length");
        }
        pg_sys::PageGetItem(page, item).cast()
    }
}
