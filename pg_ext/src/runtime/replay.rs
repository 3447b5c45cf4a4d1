//! Key changes carried to hot standbys through the WAL (the state and its rules:
//! `sealstore_core::replay`).
//!
//! A custom WAL resource manager, `sealstore` (id [`RMGR_ID`]), with one record: "this
//! transaction changed keys", written just before a key-changing transaction commits.
//! Replaying it, the standby's startup process notes the transaction and bumps the key epoch;
//! its backends then neither use nor keep cached keys and credentials until the transaction's
//! end has been replayed as well. At the start of replay every transaction that may be running
//! is noted: their records may lie before the starting point.
//!
//! A server that replays WAL holding such records must load the library at start
//! (`shared_preload_libraries`), as Sealstore requires anyway: PostgreSQL refuses to replay a
//! record of a resource manager it does not know.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::shmem::PgSharedMemoryInitialization;
use sealstore_core::replay::{Pending, Settled};

use crate::runtime::{keycache, shmem};

/// Sealstore's custom resource manager id (PostgreSQL keeps 128 to 255 for extensions; 128 is
/// for experiments). Once WAL holds records under it, it can never change.
pub const RMGR_ID: u8 = 147;

/// The record's only kind: a transaction changed keys. Its data is the top-level transaction id.
const XLOG_KEYS_CHANGED: u8 = 0x00;

/// The rmgr is registered (the library was preloaded): only then may records be written.
static REGISTERED: AtomicBool = AtomicBool::new(false);

struct Shared {
    pending: AtomicPtr<Pending>,
}

static SHARED: Shared = Shared {
    pending: AtomicPtr::new(std::ptr::null_mut()),
};

impl PgSharedMemoryInitialization for Shared {
    type Value = bool;

    unsafe fn on_shmem_request(&'static self) {
        // SAFETY: called from the shmem request hook, as the trait requires.
        unsafe { pg_sys::RequestAddinShmemSpace(size_of::<Pending>()) };
    }

    unsafe fn on_shmem_startup(&'static self, _: bool) {
        // SAFETY: called from the shmem startup hook, in the postmaster (every later process
        // inherits the pointer). All zero is an empty `Pending`.
        let p = unsafe { shmem::zeroed_region::<Pending>(c"sealstore replayed key changes", 1) };
        self.pending.store(p, Ordering::Release);
    }
}

fn pending() -> Option<&'static Pending> {
    // SAFETY: set once in the postmaster to shared memory that lives as long as the server.
    unsafe { SHARED.pending.load(Ordering::Acquire).as_ref() }
}

static mut RMGR: pg_sys::RmgrData = pg_sys::RmgrData {
    rm_name: c"sealstore".as_ptr(),
    rm_redo: Some(redo),
    rm_desc: Some(desc),
    rm_identify: Some(identify),
    rm_startup: Some(startup),
    rm_cleanup: None,
    rm_mask: None,
    rm_decode: None,
};

/// Registers the resource manager and reserves the shared state; only while preloading.
pub fn init() {
    pgrx::pg_shmem_init!(SHARED = false);
    // SAFETY: called from _PG_init while shared_preload_libraries is processed, as
    // RegisterCustomRmgr requires; RMGR is a static that PostgreSQL keeps a pointer to.
    unsafe { pg_sys::RegisterCustomRmgr(RMGR_ID, &raw mut RMGR) };
    REGISTERED.store(true, Ordering::Release);
}

/// The transaction id a record of `record` names.
///
/// # Safety
/// `record` is the reader state of a record of this resource manager being replayed or
/// described.
unsafe fn named_xid(record: *mut pg_sys::XLogReaderState) -> Option<u32> {
    // SAFETY: the caller's guarantee; the data is copied out unaligned.
    unsafe {
        let decoded = (*record).record;
        if (*decoded).main_data_len as usize != size_of::<u32>() {
            return None;
        }
        Some(std::ptr::read_unaligned((*decoded).main_data.cast::<u32>()))
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn redo(record: *mut pg_sys::XLogReaderState) {
    // SAFETY: PostgreSQL calls this with a record of this resource manager.
    let info = unsafe { (*(*record).record).header.xl_info } & !(pg_sys::XLR_INFO_MASK as u8);
    // SAFETY: as above.
    match (info, unsafe { named_xid(record) }) {
        (XLOG_KEYS_CHANGED, Some(xid)) => {
            // Noted before the epoch moves: a backend that sees the new epoch also sees that
            // the transaction may still be running, and does not cache what it loads.
            if let Some(p) = pending() {
                p.note(xid);
            }
            keycache::bump_epoch();
        }
        _ => pgrx::error!("sealstore: unknown WAL record (info {info:#x})"),
    }
}

/// At the start of replay (a standby's, or crash recovery's): transactions that were running at
/// the checkpoint replay starts from may have written their record before it.
#[pg_guard]
unsafe extern "C-unwind" fn startup() {
    // SAFETY: reads the next transaction id under XidGenLock, in the startup process, whose
    // shared memory is set up.
    let next = unsafe { pg_sys::ReadNextFullTransactionId() }.value as u32;
    // 3 is PostgreSQL's FirstNormalTransactionId.
    let newest = next.wrapping_sub(1);
    if newest >= 3 {
        if let Some(p) = pending() {
            p.note_all_through(newest);
        }
    }
    keycache::bump_epoch();
}

#[pg_guard]
unsafe extern "C-unwind" fn desc(buf: pg_sys::StringInfo, record: *mut pg_sys::XLogReaderState) {
    // SAFETY: PostgreSQL calls this with a record of this resource manager and a buffer.
    if let Some(xid) = unsafe { named_xid(record) } {
        let text = std::ffi::CString::new(format!("xid {xid}")).expect("no NUL");
        // SAFETY: appends a C string to the buffer PostgreSQL gave.
        unsafe { pg_sys::appendStringInfoString(buf, text.as_ptr()) };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn identify(info: u8) -> *const std::ffi::c_char {
    match info & !(pg_sys::XLR_INFO_MASK as u8) {
        XLOG_KEYS_CHANGED => c"KEYS_CHANGED".as_ptr(),
        _ => std::ptr::null(),
    }
}

/// Writes the record for the current transaction, which changed keys and is about to commit or
/// be prepared. Nothing when the library was not preloaded or the transaction wrote nothing.
pub fn log_change() {
    if !REGISTERED.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: a plain read of the transaction's id; the record's data is a local that lives
    // until XLogInsert has copied it.
    unsafe {
        let xid: u32 = pg_sys::GetTopTransactionIdIfAny().into_inner();
        if xid == 0 {
            return;
        }
        pg_sys::XLogBeginInsert();
        pg_sys::XLogRegisterData((&raw const xid) as _, size_of::<u32>() as _);
        pg_sys::XLogInsert(RMGR_ID, XLOG_KEYS_CHANGED);
    }
}

/// What this backend may do with its caches now (see `sealstore_core::replay`): two atomic
/// loads when nothing is pending, as on every primary once recovery is over.
pub fn settle() -> Settled {
    let Some(p) = pending() else {
        return Settled::Quiet;
    };
    p.settle(
        // SAFETY (both): PostgreSQL's own checks, valid inside a transaction, which every
        // caller is in; on a standby they read the replayed state of the primary's transactions.
        |xid| unsafe { !pg_sys::TransactionIdIsInProgress(xid.into()) },
        |xid| unsafe {
            let snapshot = pg_sys::GetLatestSnapshot();
            pg_sys::TransactionIdPrecedes(xid.into(), (*snapshot).xmin)
        },
        keycache::bump_epoch,
    )
}
