//! What a backend keeps and enforces while it serves the SQL surface: the tenant context, the
//! key caches and the master key, switching to the extension's owner, settings, errors, the
//! audit log and the hooks that refuse side channels.

pub mod audit;
pub mod context;
pub mod credentials;
pub mod errors;
pub mod explain_guard;
pub mod feed;
pub mod gucs;
pub mod keycache;
pub mod master_key;
pub mod owner;
pub mod replay;
pub mod shmem;
pub mod xact;
