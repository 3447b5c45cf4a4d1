//! The change feed's wake-up, in shared memory: a counter of committed transactions that wrote
//! events, and a condition variable that a gateway's listening backend sleeps on
//! (`sealstore.gateway_events_wait`). A committing writer bumps the counter and wakes the
//! sleepers from its commit callback: no lock is taken and nothing waits, unlike NOTIFY,
//! whose queue lock makes committing writers take turns. Key and credential changes wake the
//! sleepers too (the gateway then checks its subscribers' tokens again).

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::shmem::PgSharedMemoryInitialization;

use crate::runtime::shmem;

#[repr(C)]
struct Feed {
    wakeup: pg_sys::ConditionVariable,
    published: AtomicU64,
}

struct Shared {
    feed: AtomicPtr<Feed>,
}

static SHARED: Shared = Shared {
    feed: AtomicPtr::new(std::ptr::null_mut()),
};

impl PgSharedMemoryInitialization for Shared {
    type Value = bool;

    unsafe fn on_shmem_request(&'static self) {
        // SAFETY: called from the shmem request hook, as the trait requires.
        unsafe { pg_sys::RequestAddinShmemSpace(size_of::<Feed>()) };
    }

    unsafe fn on_shmem_startup(&'static self, _: bool) {
        // SAFETY: called from the shmem startup hook, in the postmaster; the condition
        // variable is initialised once, when the region is made.
        let feed = unsafe {
            shmem::made_region::<Feed>(c"sealstore change feed", 1, |f| {
                pg_sys::ConditionVariableInit(&raw mut (*f).wakeup)
            })
        };
        self.feed.store(feed, Ordering::Release);
    }
}

/// Reserves the shared state; only while preloading.
pub fn init_shmem() {
    pgrx::pg_shmem_init!(SHARED = false);
}

fn feed() -> Option<*mut Feed> {
    let p = SHARED.feed.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

thread_local! {
    /// This transaction wrote events: wake the feed if it commits.
    static WROTE: Cell<bool> = const { Cell::new(false) };
}

/// Notes that the current transaction wrote events.
pub fn note_written() {
    WROTE.set(true);
}

/// Wakes every sleeper (a committed change of keys or credentials). Never raises.
pub fn wake() {
    if let Some(f) = feed() {
        // SAFETY: the condition variable lives in shared memory as long as the server; a
        // broadcast takes its spinlock and sets latches, nothing that can fail.
        unsafe { pg_sys::ConditionVariableBroadcast(&raw mut (*f).wakeup) };
    }
}

/// From the commit callback: publishes this transaction's events. Never raises.
pub fn on_commit() {
    if WROTE.replace(false) {
        if let Some(f) = feed() {
            // SAFETY: shared memory that lives as long as the server.
            unsafe { (*f).published.fetch_add(1, Ordering::AcqRel) };
        }
        wake();
    }
}

/// From the abort callback. Never raises.
pub fn on_abort() {
    WROTE.set(false);
}

/// The number of committed transactions that wrote events since the server started.
pub fn published() -> u64 {
    // SAFETY: shared memory that lives as long as the server.
    feed().map_or(0, |f| unsafe { (*f).published.load(Ordering::Acquire) })
}

/// Sleeps until `changed()` holds or `timeout` has passed; woken by [`on_commit`] and
/// [`wake`]. Interruptible (a cancel or a statement timeout ends it with their error).
pub fn wait_until(timeout: Duration, changed: impl Fn() -> bool) {
    let Some(f) = feed() else {
        return;
    };
    let deadline = Instant::now() + timeout;
    // SAFETY: the condition variable lives in shared memory as long as the server. Preparing
    // to sleep before testing the condition means no wake-up in between is lost.
    unsafe {
        let cv = &raw mut (*f).wakeup;
        pg_sys::ConditionVariablePrepareToSleep(cv);
        loop {
            if changed() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = left.as_millis().clamp(1, i64::from(i32::MAX) as u128) as std::ffi::c_long;
            pg_sys::ConditionVariableTimedSleep(cv, ms, pg_sys::PG_WAIT_EXTENSION);
        }
        pg_sys::ConditionVariableCancelSleep();
    }
}
