//! Which shared buffer held a heap page when a backend last read it, shared by every backend:
//! a table of 2^20 buffer numbers (4 MB of shared memory), reserved while the library is
//! preloaded. `search` pins its pages through these hints (see `pages::Pages`).
//!
//! A hint is only ever a guess. `ReadRecentBuffer` compares the buffer's tag (relation, fork,
//! block) under its header lock before it pins anything, so a stale, overwritten or torn hint
//! costs one check and an ordinary lookup, never a wrong page. That is also why the table needs
//! no lock and no owner: a relation's blocks take consecutive slots from a start its storage
//! identity hashes to, and two relations (another database's `documents`, or the same table
//! after a rewrite into a new file) that land on the same slots only overwrite each other's
//! guesses. A heap of more than 2^20 pages (8 GB) wraps around onto its own first slots.

use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::shmem::PgSharedMemoryInitialization;

use crate::runtime::shmem;

/// Slots in the table: one buffer number (0: none) each.
const SLOTS: usize = 1 << 20;

/// The table in shared memory; null until the shared memory is set up (and for good when the
/// library was not preloaded).
pub struct Table {
    slots: AtomicPtr<AtomicI32>,
}

static TABLE: Table = Table {
    slots: AtomicPtr::new(std::ptr::null_mut()),
};

/// Reserves the table in shared memory; only possible while preloading.
pub fn init_shmem() {
    pgrx::pg_shmem_init!(TABLE = false);
}

impl PgSharedMemoryInitialization for Table {
    type Value = bool;

    unsafe fn on_shmem_request(&'static self) {
        // SAFETY: called from the shmem request hook, as the trait requires.
        unsafe { pg_sys::RequestAddinShmemSpace(SLOTS * size_of::<AtomicI32>()) };
    }

    unsafe fn on_shmem_startup(&'static self, _: bool) {
        // SAFETY: called from the shmem startup hook, as the trait requires. An all-zero
        // AtomicI32 array is a valid one: every slot "no hint".
        let slots =
            unsafe { shmem::zeroed_region::<AtomicI32>(c"sealstore search buffer hints", SLOTS) };
        self.slots.store(slots, Ordering::Release);
    }
}

/// The hints of one relation's main fork, keyed by its storage identity (tablespace,
/// database, file number).
#[derive(Clone, Copy)]
pub struct RelationHints {
    slots: *const AtomicI32,
    start: usize,
}

impl RelationHints {
    /// None when the table does not exist (the library was not preloaded).
    pub fn of(identity: [u32; 3]) -> Option<RelationHints> {
        let slots = TABLE.slots.load(Ordering::Acquire);
        if slots.is_null() {
            return None;
        }
        let mixed = identity.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
        });
        Some(RelationHints {
            slots,
            start: (mixed >> 32) as usize % SLOTS,
        })
    }

    fn slot(&self, block: pg_sys::BlockNumber) -> &AtomicI32 {
        let i = (self.start + block as usize) % SLOTS;
        // SAFETY: i < SLOTS, and the table lives as long as the server.
        unsafe { &*self.slots.add(i) }
    }

    /// The hinted buffer of `block`, as an index into the shared buffer arrays (0-based), if
    /// the slot holds a buffer number at all.
    pub fn get(&self, block: pg_sys::BlockNumber) -> Option<usize> {
        let buffer = self.slot(block).load(Ordering::Relaxed);
        // SAFETY: NBuffers is set once at start-up.
        let shared = unsafe { pg_sys::NBuffers };
        (buffer > 0 && buffer <= shared).then(|| (buffer - 1) as usize)
    }

    /// Notes that `block` is in shared buffer `buffer` (1-based, as bufmgr numbers them).
    pub fn set(&self, block: pg_sys::BlockNumber, buffer: pg_sys::Buffer) {
        self.slot(block).store(buffer, Ordering::Relaxed);
    }

    /// For tests: the raw slots of blocks `0..blocks`.
    #[cfg(any(test, feature = "pg_test"))]
    pub fn raw(&self, blocks: u32) -> Vec<pg_sys::Buffer> {
        (0..blocks)
            .map(|b| self.slot(b).load(Ordering::Relaxed))
            .collect()
    }
}
