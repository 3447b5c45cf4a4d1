//! The Sealstore extension: glue between PostgreSQL and `sealstore-core`.
//!
//! Everything here converts datums, reads settings, keeps per-process state and maps core errors
//! to SQLSTATEs (see `errors.rs`); the logic itself lives in the pure crate.

use pgrx::prelude::*;

mod api;
mod runtime;
mod storage;

::pgrx::pg_module_magic!(name, version);

/// Called when the library is loaded: in the postmaster when it is in
/// `shared_preload_libraries` (the supported set-up), otherwise in the first backend that uses it.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    runtime::gucs::define();
    runtime::master_key::init();
    runtime::xact::init();
    storage::flat::init();
    storage::hnsw::init();
    runtime::explain_guard::init();
    // SAFETY: a plain read of a PostgreSQL global during library load.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        runtime::keycache::init_shmem();
        runtime::replay::init();
        runtime::feed::init_shmem();
        storage::buffer_hints::init_shmem();
    }
}

/// The version of the loaded Sealstore library.
#[pg_extern(stable, parallel_safe)]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Identifies the master key without revealing it (32 hex digits, HKDF-SHA256 of the key with a
/// fixed label). Fails with a documented SQLSTATE when no key could be loaded at server start.
#[pg_extern(stable, parallel_safe)]
fn master_key_fingerprint() -> String {
    runtime::errors::edge(|| Ok(runtime::master_key::get()?.fingerprint()))
}

// The extension's tables come first; its procedures anywhere after; tenant isolation once the
// context functions exist (api/context.rs); roles and privileges last (nothing for PUBLIC).
pgrx::extension_sql_file!("../../sql/schema.sql", bootstrap);
pgrx::extension_sql_file!("../../sql/procedures.sql", name = "procedures");
pgrx::extension_sql_file!("../../sql/privileges.sql", finalize);

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    /// The test cluster gets a fresh random master key at every start from a key command, so no
    /// key is ever written to the repository; the key file path is covered by the SQL regression
    /// and end-to-end tiers, which start their own clusters.
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'sealstore'",
            "sealstore.master_key_command = 'od -An -tx1 -N32 /dev/urandom | tr -d \" \\n\"'",
        ]
    }
}
