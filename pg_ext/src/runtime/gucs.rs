//! Every setting of the extension, in one place. The `sealstore.` prefix is reserved, so a typo
//! such as `sealstore.master_keyfile` is an error instead of a silently ignored placeholder.

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

/// Path of a file holding the master key as 64 hex digits, readable by the server's OS user
/// only. Read once at server start; superuser-only, hidden from non-superusers.
pub static MASTER_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// A shell command whose standard output is the master key (64 hex digits): the hook for a KMS
/// or secrets manager. Run once by the postmaster at start, 30 s timeout, stderr discarded.
pub static MASTER_KEY_COMMAND: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

/// During master key rotation only: the previous master key, so keys still wrapped under it
/// can be unwrapped until `CALL sealstore.rewrap_tenant_keys()` has re-wrapped them.
pub static PREVIOUS_MASTER_KEY_FILE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

/// Like `sealstore.master_key_command`, for the previous master key.
pub static PREVIOUS_MASTER_KEY_COMMAND: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

/// Required `aud` of every JWT, when set (empty: aud is not checked).
pub static JWT_AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Required `iss` of every JWT, when set (empty: iss is not checked).
pub static JWT_ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Clock-skew allowance for `exp` and `nbf`, in seconds (0 to 30).
pub static JWT_LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(5);

/// Whether every JWT must carry a `jti` (so that it can be revoked).
pub static JWT_REQUIRE_JTI: GucSetting<bool> = GucSetting::<bool>::new(false);

/// How long change events are kept for subscribers that resume (`Last-Event-ID`), in seconds.
pub static EVENT_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(86_400);

/// Graphs of an hnsw index with fewer nodes than this are searched exactly (every node of the
/// key, by distance) rather than walked. Measured in `bench hnsw` (the crossover table): at 128
/// dimensions the walk is already faster at about 1,000 rows, and the exact search costs at
/// most about twice the walk below that, for exact answers where a graph offers least.
pub static HNSW_EXACT_BELOW: GucSetting<i32> = GucSetting::<i32>::new(1_000);

/// How much memory (kB) a backend may keep hnsw graphs in between scans (each graph read whole,
/// and checked against its version before each scan), and, separately, the vectors of sealed
/// graphs it has opened (so that an insert scores them at the cost of a plaintext graph's).
/// Past the limit the opened vectors start over, and a graph that does not fit beside the kept
/// ones is walked on its pages.
pub static HNSW_GRAPH_MEMORY: GucSetting<i32> = GucSetting::<i32>::new(256 * 1024);

pub fn define() {
    GucRegistry::define_int_guc(
        c"sealstore.hnsw_graph_memory",
        c"Memory a backend may keep hnsw graphs in between scans, and the opened vectors of sealed graphs.",
        c"Graphs read whole and kept while no writer changes them; sealed ones opened in this backend only, dropped when any tenant's keys change.",
        &HNSW_GRAPH_MEMORY,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"sealstore.hnsw_exact_below",
        c"Searches an hnsw graph with fewer nodes than this exactly instead of walking it.",
        c"Per key value: a small tenant's rows are scored one by one, a large tenant's graph is walked.",
        &HNSW_EXACT_BELOW,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    // Superuser-only (SUSET): a client with the application role must not be able to relax
    // token checks for its own session.
    GucRegistry::define_string_guc(
        c"sealstore.jwt_audience",
        c"Audience (aud) every JWT must name; empty to not check aud.",
        c"Checked by sealstore.authenticate().",
        &JWT_AUDIENCE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"sealstore.jwt_issuer",
        c"Issuer (iss) every JWT must name; empty to not check iss.",
        c"Checked by sealstore.authenticate().",
        &JWT_ISSUER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sealstore.jwt_leeway",
        c"Seconds of clock skew allowed on JWT exp and nbf.",
        c"At most 30.",
        &JWT_LEEWAY,
        0,
        30,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"sealstore.jwt_require_jti",
        c"Whether every JWT must carry a jti claim.",
        c"A token with a jti can be revoked (sealstore.revoke_token); without this setting, tokens without one are accepted and cannot be.",
        &JWT_REQUIRE_JTI,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sealstore.event_retention",
        c"How long change events are kept for subscribers that resume.",
        c"Purged by the gateway's change feed; a resume from before what is kept gets an error event.",
        &EVENT_RETENTION,
        1,
        30 * 86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"sealstore.master_key_file",
        c"File holding the Sealstore master key (64 hex digits, mode 0600).",
        c"Read once at server start. The file must not be accessible by group or others.",
        &MASTER_KEY_FILE,
        GucContext::Postmaster,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"sealstore.master_key_command",
        c"Command that prints the Sealstore master key (64 hex digits).",
        c"Run once at server start with /bin/sh -c; its standard error is discarded.",
        &MASTER_KEY_COMMAND,
        GucContext::Postmaster,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"sealstore.previous_master_key_file",
        c"File holding the previous master key, while keys are re-wrapped after a rotation.",
        c"Same format and checks as sealstore.master_key_file. Remove it once rewrap_tenant_keys() is done.",
        &PREVIOUS_MASTER_KEY_FILE,
        GucContext::Postmaster,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"sealstore.previous_master_key_command",
        c"Command that prints the previous master key, while keys are re-wrapped after a rotation.",
        c"Same rules as sealstore.master_key_command.",
        &PREVIOUS_MASTER_KEY_COMMAND,
        GucContext::Postmaster,
        GucFlags::SUPERUSER_ONLY,
    );
    // SAFETY: called from _PG_init with a NUL-terminated static string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"sealstore".as_ptr()) };
}

/// The current value of a string setting, if set and valid UTF-8.
pub fn string_value(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().and_then(|v| v.into_string().ok())
}
