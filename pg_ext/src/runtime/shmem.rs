//! Shared memory of the extension's own (besides pgrx's shared values): regions found or made
//! at server start, zeroed when made.

use std::ffi::CStr;

use pgrx::pg_sys;

/// The region `name` of `count` values of `T`, made (all zero) unless it exists.
///
/// # Safety
/// Called from the shmem startup hook only. All zero bytes must be a valid `T`.
pub unsafe fn zeroed_region<T>(name: &CStr, count: usize) -> *mut T {
    // SAFETY: the caller's guarantees.
    unsafe { made_region(name, count, |_| {}) }
}

/// The region `name` of `count` values of `T`, made (zeroed, then given to `init`) unless it
/// exists.
///
/// # Safety
/// Called from the shmem startup hook only; `init` must leave `count` valid values of `T`.
pub unsafe fn made_region<T>(name: &CStr, count: usize, init: impl FnOnce(*mut T)) -> *mut T {
    // SAFETY: the caller's guarantees; AddinShmemInitLock (MainLWLockArray[21], as pgrx's own
    // shared values take it) is held while the region is looked up, made and initialised, so
    // no other process sees it half made.
    unsafe {
        let lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let region =
            pg_sys::ShmemInitStruct(name.as_ptr(), count * size_of::<T>(), &mut found).cast::<T>();
        assert!(region.is_aligned(), "shared memory is not aligned");
        if !found {
            std::ptr::write_bytes(region, 0, count);
            init(region);
        }
        pg_sys::LWLockRelease(lock);
        region
    }
}
