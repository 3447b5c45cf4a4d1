//! Unwrapped data keys, cached per backend, invalidated in every backend through a shared epoch.
//!
//! A transaction that changes keys (rotation, shredding) bumps a counter in shared memory when
//! it commits. Every lookup compares the backend's epoch with the shared one (one atomic load)
//! and drops its whole cache when they differ, so once shred_tenant() has committed no backend
//! can use a cached key of that tenant again. Dropped keys are zeroized by the cipher crates.
//! On a hot standby the change arrives through the WAL instead (`replay.rs`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};
use sealstore_core::crypto::{self, Algorithm, DataKey, TenantId};
use sealstore_core::replay::Settled;

use crate::runtime::errors::{self, Result};
use crate::runtime::owner::latest_rows;
use crate::runtime::{feed, master_key, replay};
use crate::storage::ids::Uuid as _;

static KEY_EPOCH: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"sealstore_key_epoch") };

/// Reserves the epoch in shared memory; only possible while preloading.
pub fn init_shmem() {
    pg_shmem_init!(KEY_EPOCH);
}

/// The keys of one tenant as of the moment they were loaded.
pub struct TenantKeys {
    pub active: u32,
    /// By version, the active one first: a tenant has few versions, and nearly every envelope
    /// (every row of a search) is under the active one, so a scan finds it at once, with no
    /// hashing per lookup.
    keys: Vec<(u32, DataKey)>,
}

impl TenantKeys {
    pub fn active_key(&self) -> Result<&DataKey> {
        self.key(self.active)
    }

    pub fn key(&self, version: u32) -> Result<&DataKey> {
        self.keys
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, key)| key)
            .ok_or_else(|| errors::missing_key_version(version))
    }

    /// The blind-index key is derived from version 1, so indexes survive key rotation.
    pub fn index_key(&self) -> Result<&DataKey> {
        self.key(1)
    }
}

#[derive(Default)]
struct Cache {
    generation: Generation,
    tenants: HashMap<TenantId, Rc<TenantKeys>>,
}

/// What every per-backend cache of key material (data keys, JWT keys, API keys) is tagged with:
/// the shared epoch; how many of this backend's own key-changing transactions aborted (what it
/// cached during those may never have been committed); and, on a hot standby while a replayed
/// key change's transaction may still be running, a number never given out before, so that
/// nothing loaded meanwhile is kept (`replay`).
pub type Generation = (u64, u64, u64);

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    /// This transaction changed keys: bump the shared epoch if it commits.
    static CHANGED: Cell<bool> = const { Cell::new(false) };
    static LOCAL_ABORTS: Cell<u64> = const { Cell::new(0) };
    static UNCACHED: Cell<u64> = const { Cell::new(0) };
}

/// The current generation; a cache tagged with another one must be dropped.
pub fn generation() -> Generation {
    // Settled first, then the epoch read: settling bumps it before it clears what has ended.
    let uncached = match replay::settle() {
        Settled::Quiet | Settled::Ended => 0,
        Settled::Running => {
            UNCACHED.set(UNCACHED.get() + 1);
            UNCACHED.get()
        }
    };
    (
        KEY_EPOCH.get().load(Ordering::Acquire),
        LOCAL_ABORTS.get(),
        uncached,
    )
}

/// The shared epoch: how many key or credential changes have committed since the server
/// started (what a gateway's change feed watches to check its subscribers' credentials again).
pub fn epoch() -> u64 {
    KEY_EPOCH.get().load(Ordering::Acquire)
}

/// Makes every backend drop its caches at its next lookup.
pub fn bump_epoch() {
    KEY_EPOCH.get().fetch_add(1, Ordering::AcqRel);
}

/// Why a tenant's keys cannot be used.
pub enum Unusable {
    Unknown,
    Shredded,
}

/// The tenant's keys, from the cache or loaded (and unwrapped) from `sealstore.tenant_keys`;
/// 42704 for an unknown or shredded tenant.
pub fn tenant_keys(tenant: &TenantId) -> Result<Rc<TenantKeys>> {
    try_tenant_keys(tenant)?.map_err(|why| match why {
        Unusable::Unknown => errors::unknown_tenant(),
        Unusable::Shredded => errors::shredded_tenant(),
    })
}

/// Like [`tenant_keys`], but an unknown or shredded tenant is a value of its own (the outer
/// error is a failure to load).
pub fn try_tenant_keys(tenant: &TenantId) -> Result<std::result::Result<Rc<TenantKeys>, Unusable>> {
    // The master key check comes first: without preloading there is no shared memory either.
    master_key::get()?;
    let generation = generation();
    let cached = CACHE.with_borrow_mut(|c| {
        if c.generation != generation {
            c.tenants.clear();
            c.generation = generation;
        }
        c.tenants.get(tenant).cloned()
    });
    if let Some(keys) = cached {
        return Ok(Ok(keys));
    }
    let keys = match load(tenant)? {
        Ok(keys) => Rc::new(keys),
        Err(why) => return Ok(Err(why)),
    };
    CACHE.with_borrow_mut(|c| {
        // Tagged with the generation read before loading: a change committed meanwhile bumps
        // the shared epoch past it and the next lookup reloads.
        if c.generation == generation {
            c.tenants.insert(*tenant, keys.clone());
        }
    });
    Ok(Ok(keys))
}

/// Fails unless the tenant exists, is not shredded and its keys unwrap.
pub fn check_tenant_usable(tenant: &TenantId) -> Result<()> {
    tenant_keys(tenant).map(drop)
}

/// Called by functions that change a tenant's keys, inside their transaction.
pub fn mark_changed(tenant: &TenantId) {
    CHANGED.set(true);
    CACHE.with_borrow_mut(|c| c.tenants.remove(tenant));
}

/// Called by functions that change JWT keys or API keys: every backend drops its caches once
/// this transaction commits. The caller drops its own entries itself.
pub fn mark_credentials_changed() {
    CHANGED.set(true);
}

/// From the transaction callback, before a commit: the record that carries the change to hot
/// standbys (an error here still aborts the transaction cleanly).
pub fn before_commit() {
    if CHANGED.get() {
        replay::log_change();
    }
}

/// From the transaction callback, before a PREPARE TRANSACTION: key changes are refused there
/// (0A000, the transaction aborts). Its COMMIT PREPARED would run elsewhere, where nothing
/// would tell the other backends to drop their caches.
pub fn before_prepare() {
    if CHANGED.get() {
        errors::raise(errors::not_supported(
            "a transaction that changes keys or credentials cannot be prepared (two-phase commit)",
        ));
    }
}

/// From the transaction callback: must not raise.
pub fn on_commit() {
    if CHANGED.replace(false) {
        bump_epoch();
        // A gateway's change feed checks its subscribers' credentials again.
        feed::wake();
    }
}

/// From the transaction callback: must not raise.
pub fn on_abort() {
    if CHANGED.replace(false) {
        LOCAL_ABORTS.set(LOCAL_ABORTS.get() + 1);
    }
}

/// Loads the tenant's row and wrapped keys as they are now committed, in one query (see
/// [`latest_rows`]: a transaction's older snapshot must not bring back shredded keys).
fn load(tenant: &TenantId) -> Result<std::result::Result<TenantKeys, Unusable>> {
    let id = tenant.uuid();
    let rows = latest_rows(
        "SELECT t.algorithm, t.active_version, t.shredded_at IS NOT NULL, \
                k.version, k.wrapped, k.master_fingerprint \
         FROM sealstore.tenants t LEFT JOIN sealstore.tenant_keys k ON k.tenant_id = t.id \
         WHERE t.id = $1",
        &[id.into()],
        |row| {
            (
                (row.get::<String>(1), row.get::<i32>(2), row.get::<bool>(3)),
                row.get::<i32>(4).map(|version| {
                    (
                        version,
                        row.get::<Vec<u8>>(5).unwrap_or_default(),
                        row.get::<String>(6).unwrap_or_default(),
                    )
                }),
            )
        },
    )?;
    let (algorithm, active, shredded) = rows.first().map_or((None, None, None), |r| r.0.clone());
    let wrapped: Vec<_> = rows.into_iter().filter_map(|(_, key)| key).collect();
    let Some(algorithm) = algorithm else {
        return Ok(Err(Unusable::Unknown));
    };
    if shredded == Some(true) {
        return Ok(Err(Unusable::Shredded));
    }
    let algorithm = Algorithm::from_name(&algorithm)?;
    let active = u32::try_from(active.unwrap_or(0)).unwrap_or(0);
    let mut keys = Vec::with_capacity(wrapped.len());
    for (version, blob, fingerprint) in wrapped {
        let version = u32::try_from(version).unwrap_or(0);
        let master = master_key::for_fingerprint(&fingerprint)?;
        let key = crypto::unwrap_key(master, tenant, version, algorithm, &blob)?;
        keys.push((version, key));
    }
    keys.sort_by_key(|(version, _)| (*version != active, std::cmp::Reverse(*version)));
    Ok(Ok(TenantKeys { active, keys }))
}
