//! `sealstore.authenticate(token)`: verifies a JWT or an API key inside the database and sets
//! the transaction's context. Plus the administration of JWT keys and API keys.
//!
//! Verification keys and API key rows are cached per backend and tagged with the key cache's
//! generation, so add_jwt_key, retire_jwt_key and revoke_api_key reach every backend as soon as
//! they commit, without a restart (the same shared epoch that makes shredding immediate).

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::auth::{
    self, AuthError, Credential, JwtAlgorithm, KeyBinding, Policy, VerificationKey,
};
use sealstore_core::crypto::{self, TenantId};

use crate::runtime::context;
use crate::runtime::errors::{self, spi};
use crate::runtime::gucs;
use crate::runtime::keycache;
use crate::runtime::master_key;
use crate::runtime::owner::{as_owner, latest_rows};

/// Entries per cache before it is emptied: unknown kids and ids are cached too (as misses), and
/// a client sending random ones must not grow a backend's memory without bound.
const CACHE_LIMIT: usize = 4096;
/// API key use is recorded with this granularity (seconds): one write per key and hour at most.
const LAST_USE_GRANULARITY: i64 = 3600;

struct ApiKeyRow {
    tenant: TenantId,
    scopes: Vec<String>,
    tag: Vec<u8>,
    /// Unix time of the last recorded use, or of the last attempt to record one.
    last_use: Cell<i64>,
}

/// A JWT verification key and what its tokens may claim.
struct JwtKey {
    key: VerificationKey,
    binding: KeyBinding,
}

#[derive(Default)]
struct Cache {
    generation: keycache::Generation,
    jwt: HashMap<String, Option<Rc<JwtKey>>>,
    api: HashMap<[u8; 16], Option<Rc<ApiKeyRow>>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The cached entry for `key` in the map `map` picks, or what `load` returns (a miss is cached
/// too). The entry is tagged with the generation read before loading, so a change committed
/// meanwhile is not cached as current.
fn cached<K, Q, V>(
    map: fn(&mut Cache) -> &mut HashMap<K, Option<Rc<V>>>,
    key: &Q,
    load: impl FnOnce() -> Option<V>,
) -> Option<Rc<V>>
where
    K: Borrow<Q> + Eq + Hash,
    Q: ?Sized + Eq + Hash + ToOwned<Owned = K>,
{
    let generation = keycache::generation();
    let hit = CACHE.with_borrow_mut(|c| {
        if c.generation != generation || c.jwt.len() + c.api.len() > CACHE_LIMIT {
            c.jwt.clear();
            c.api.clear();
            c.generation = generation;
        }
        map(c).get(key).cloned()
    });
    if let Some(hit) = hit {
        return hit;
    }
    let value = load().map(Rc::new);
    CACHE.with_borrow_mut(|c| {
        if c.generation == generation {
            map(c).insert(key.to_owned(), value.clone());
        }
    });
    value
}

fn reject(e: AuthError) -> ! {
    errors::raise(errors::credential_rejected(&e))
}

/// What a sealed HS256 secret is bound to: its algorithm and kid.
pub fn secret_purpose(kid: &str, algorithm: JwtAlgorithm) -> Vec<u8> {
    format!("jwt:{}:{kid}", algorithm.name()).into_bytes()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn jwt_key(kid: &str) -> Option<Rc<JwtKey>> {
    cached(|c| &mut c.jwt, kid, || load_jwt_key(kid))
}

/// The active key `kid` as now committed (see `latest_rows`: a transaction's older snapshot
/// must not bring back a retired key).
fn load_jwt_key(kid: &str) -> Option<JwtKey> {
    let row = latest_rows(
        "SELECT algorithm, material, master_fingerprint, for_tenant, admin \
         FROM sealstore.jwt_keys WHERE kid = $1 AND retired_at IS NULL",
        &[kid.into()],
        |row| {
            (
                row.get::<String>(1).unwrap_or_default(),
                row.get::<Vec<u8>>(2).unwrap_or_default(),
                row.get::<String>(3),
                row.get::<pgrx::Uuid>(4).map(|t| *t.as_bytes()),
                row.get::<bool>(5).unwrap_or(false),
            )
        },
    )
    .pop();
    row.map(|(algorithm, material, fingerprint, tenant, admin)| {
        let algorithm = JwtAlgorithm::from_name(&algorithm)
            .unwrap_or_else(|e| errors::raise(errors::bad_key(&e)));
        let material = match fingerprint {
            Some(fp) => crypto::open_secret(
                master_key::for_fingerprint(&fp),
                &secret_purpose(kid, algorithm),
                &material,
            )
            .unwrap_or_else(|e| errors::raise(errors::crypto(&e))),
            None => zeroize::Zeroizing::new(material),
        };
        JwtKey {
            key: VerificationKey::new(algorithm, &material)
                .unwrap_or_else(|e| errors::raise(errors::bad_key(&e))),
            binding: KeyBinding { tenant, admin },
        }
    })
}

fn api_key_row(id: &[u8; 16]) -> Option<Rc<ApiKeyRow>> {
    cached(|c| &mut c.api, id, || load_api_key_row(id))
}

/// The API key `id` unless revoked, as now committed (see `load_jwt_key`).
fn load_api_key_row(id: &[u8; 16]) -> Option<ApiKeyRow> {
    let uuid = pgrx::Uuid::from_bytes(*id);
    latest_rows(
        "SELECT tenant_id, scopes, tag, \
                coalesce(extract(epoch FROM last_used_at)::bigint, 0) \
         FROM sealstore.api_keys WHERE id = $1 AND revoked_at IS NULL",
        &[uuid.into()],
        |row| ApiKeyRow {
            tenant: *row
                .get::<pgrx::Uuid>(1)
                .expect("tenant_id is NOT NULL")
                .as_bytes(),
            scopes: row
                .get::<Vec<Option<String>>>(2)
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect(),
            tag: row.get::<Vec<u8>>(3).unwrap_or_default(),
            last_use: Cell::new(row.get::<i64>(4).unwrap_or(0)),
        },
    )
    .pop()
}

/// Records that an API key was used, coarsely: at most once an hour per key (and per backend),
/// never blocking (SKIP LOCKED) and only where a write cannot fail the caller's transaction:
/// read-write, READ COMMITTED, not on a standby. Elsewhere the use simply goes unrecorded.
fn record_use(id: &[u8; 16], row: &ApiKeyRow) {
    let now = now_unix();
    if now - row.last_use.get() < LAST_USE_GRANULARITY {
        return;
    }
    row.last_use.set(now);
    // SAFETY: plain reads of backend globals.
    let writable = unsafe {
        !pg_sys::RecoveryInProgress()
            && !pg_sys::XactReadOnly
            && pg_sys::XactIsoLevel == pg_sys::XACT_READ_COMMITTED as i32
    };
    if !writable {
        return;
    }
    let uuid = pgrx::Uuid::from_bytes(*id);
    as_owner(|| {
        spi(Spi::run_with_args(
            "UPDATE sealstore.api_keys SET last_used_at = date_trunc('hour', now()) \
             WHERE id = (SELECT id FROM sealstore.api_keys WHERE id = $1 \
                           AND (last_used_at IS NULL OR last_used_at < date_trunc('hour', now())) \
                         FOR UPDATE SKIP LOCKED)",
            &[uuid.into()],
        ))
    });
}

fn policy() -> Policy {
    Policy {
        audience: gucs::string_value(&gucs::JWT_AUDIENCE).filter(|s| !s.is_empty()),
        issuer: gucs::string_value(&gucs::JWT_ISSUER).filter(|s| !s.is_empty()),
        leeway_secs: gucs::JWT_LEEWAY
            .get()
            .clamp(0, auth::MAX_LEEWAY_SECS as i32) as u64,
    }
}

/// Verifies `token` (a JWT, or an API key `sst_...`) and makes its tenant, subject, scopes and
/// claims the context of the current transaction. Every rejection is SQLSTATE 28P01, with the
/// reason in DETAIL and nothing of the token.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn authenticate(token: &str) -> pgrx::JsonB {
    let identity = match auth::classify(token).unwrap_or_else(|e| reject(e)) {
        Credential::Jwt { kid } => {
            let key = jwt_key(&kid).unwrap_or_else(|| reject(AuthError::UnknownKey));
            let identity =
                auth::verify_jwt(token, &key.key, &policy()).unwrap_or_else(|e| reject(e));
            key.binding.check(&identity).unwrap_or_else(|e| reject(e));
            if let Some(tenant) = &identity.tenant {
                if keycache::try_tenant_keys(tenant).is_err() {
                    reject(AuthError::UnknownTenant);
                }
            }
            identity
        }
        Credential::ApiKey(key) => {
            let row = api_key_row(&key.id).unwrap_or_else(|| reject(AuthError::BadApiKey));
            // A shredded tenant's API keys die with its data keys.
            let keys = keycache::try_tenant_keys(&row.tenant)
                .unwrap_or_else(|_| reject(AuthError::BadApiKey));
            if !key.matches(keys.index_key(), &row.tag) {
                reject(AuthError::BadApiKey);
            }
            record_use(&key.id, &row);
            auth::api_key_identity(&key.id, row.tenant, &row.scopes)
        }
    };
    let summary = serde_json::json!({
        "tenant": identity.tenant.map(|t| uuid_text(&t)),
        "subject": identity.subject,
        "scopes": identity.scopes,
    });
    context::set(identity);
    pgrx::JsonB(summary)
}

fn uuid_text(id: &[u8; 16]) -> String {
    pgrx::Uuid::from_bytes(*id).to_string()
}

/// Appends an audit row (as the owner, inside the caller's transaction). When the transaction
/// authenticated a credential, its subject is recorded beside the login role.
pub fn audit(action: &str, tenant: Option<pgrx::Uuid>, mut detail: serde_json::Value) {
    if let (Some(subject), Some(map)) = (context::audit_subject(), detail.as_object_mut()) {
        map.insert("subject".into(), subject.into());
    }
    spi(Spi::run_with_args(
        "INSERT INTO sealstore.audit_log (action, tenant_id, detail) VALUES ($1, $2, $3)",
        &[action.into(), tenant.into(), pgrx::JsonB(detail).into()],
    ));
}

/// Adds a JWT verification key: `key` is the HMAC secret (HS256, at least 32 bytes, stored
/// sealed under the master key) or a PEM public key (RS256, ES256, EdDSA). With `tenant`, the
/// key's tokens must name that tenant (one tenant's identity provider); only with `admin` may
/// they carry scope `admin`. Effective in every backend once committed. A kid is never reused,
/// even after retirement.
#[pg_extern(volatile, parallel_unsafe)]
fn add_jwt_key(
    kid: Option<&str>,
    algorithm: Option<&str>,
    key: Option<&str>,
    tenant: default!(Option<pgrx::Uuid>, "NULL"),
    admin: default!(Option<bool>, false),
) {
    let (Some(kid), Some(algorithm), Some(key), Some(admin)) = (kid, algorithm, key, admin) else {
        errors::raise(errors::plain(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "kid, algorithm, key and admin must not be NULL",
        ))
    };
    context::require_system_admin();
    auth::check_kid(kid).unwrap_or_else(|e| errors::raise(errors::bad_key(&e)));
    let alg =
        JwtAlgorithm::from_name(algorithm).unwrap_or_else(|e| errors::raise(errors::bad_key(&e)));
    VerificationKey::new(alg, key.as_bytes())
        .unwrap_or_else(|e| errors::raise(errors::bad_key(&e)));
    if let Some(t) = tenant {
        keycache::check_tenant_usable(t.as_bytes());
    }
    let (material, fingerprint) = if alg.is_hmac() {
        let master = master_key::get();
        let sealed = crypto::seal_secret(master, &secret_purpose(kid, alg), key.as_bytes())
            .unwrap_or_else(|e| errors::raise(errors::crypto(&e)));
        (sealed, Some(master.fingerprint()))
    } else {
        (key.as_bytes().to_vec(), None)
    };
    let added = as_owner(|| {
        let added = spi(Spi::get_one_with_args::<bool>(
            "WITH i AS (INSERT INTO sealstore.jwt_keys \
                          (kid, algorithm, material, master_fingerprint, for_tenant, admin) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO NOTHING RETURNING 1) \
             SELECT count(*) = 1 FROM i",
            &[
                kid.into(),
                alg.name().into(),
                material.into(),
                fingerprint.into(),
                tenant.into(),
                admin.into(),
            ],
        ));
        if added == Some(true) {
            audit(
                "add_jwt_key",
                tenant,
                serde_json::json!({"kid": kid, "algorithm": alg.name(), "admin": admin}),
            );
        }
        added
    });
    if added != Some(true) {
        errors::raise(errors::duplicate(
            "a JWT key with this kid exists or existed (kids are never reused)",
        ));
    }
    keycache::mark_credentials_changed();
    CACHE.with_borrow_mut(|c| c.jwt.remove(kid));
}

/// Stops accepting tokens signed with `kid`, in every backend once committed, and forgets the
/// key material.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn retire_jwt_key(kid: &str) {
    context::require_system_admin();
    let retired = as_owner(|| {
        let retired = spi(Spi::get_one_with_args::<bool>(
            "WITH u AS (UPDATE sealstore.jwt_keys SET retired_at = now(), material = NULL, \
             master_fingerprint = NULL WHERE kid = $1 AND retired_at IS NULL RETURNING 1) \
             SELECT count(*) = 1 FROM u",
            &[kid.into()],
        ));
        if retired == Some(true) {
            audit("retire_jwt_key", None, serde_json::json!({"kid": kid}));
        }
        retired
    });
    if retired != Some(true) {
        errors::raise(errors::undefined("no active JWT key has this kid"));
    }
    keycache::mark_credentials_changed();
    CACHE.with_borrow_mut(|c| c.jwt.remove(kid));
}

/// Creates an API key for `tenant` and returns it; it is shown this once and stored only as a
/// keyed hash. Scopes: read, write, admin.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn create_api_key(tenant: pgrx::Uuid, name: &str, scopes: Vec<Option<String>>) -> String {
    context::require_admin_of(tenant.as_bytes());
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        errors::raise(errors::invalid_argument(
            "API key name must be 1 to 200 characters without control characters",
        ));
    }
    let bad_scopes =
        || errors::invalid_argument("scopes must be a non-empty array of read, write and admin");
    let mut unique: Vec<String> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        match scope {
            Some(s) if auth::SCOPES.contains(&s.as_str()) => {
                if !unique.contains(&s) {
                    unique.push(s);
                }
            }
            _ => errors::raise(bad_scopes()),
        }
    }
    if unique.is_empty() {
        errors::raise(bad_scopes());
    }
    let scopes = unique;
    let keys = keycache::tenant_keys(tenant.as_bytes());
    let (key, text) =
        auth::ApiKey::generate().unwrap_or_else(|e| errors::raise(errors::crypto(&e)));
    let tag = key.tag(keys.index_key());
    let id = pgrx::Uuid::from_bytes(key.id);
    as_owner(|| {
        spi(Spi::run_with_args(
            "INSERT INTO sealstore.api_keys (id, tenant_id, name, scopes, tag) VALUES ($1, $2, $3, $4, $5)",
            &[id.into(), tenant.into(), name.into(), scopes.clone().into(), tag.to_vec().into()],
        ));
        audit(
            "create_api_key",
            Some(tenant),
            serde_json::json!({"api_key": id.to_string(), "name": name, "scopes": scopes}),
        );
    });
    text.to_string()
}

/// Revokes an API key: rejected by every backend as soon as this commits.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn revoke_api_key(id: pgrx::Uuid) {
    // A tenant's admin credential revokes its own tenant's keys only; others look absent.
    let only = match context::require_admin() {
        context::AdminReach::All => None,
        context::AdminReach::Tenant(t) => Some(pgrx::Uuid::from_bytes(t)),
    };
    let tenant = as_owner(|| {
        let tenant = spi(Spi::get_one_with_args::<pgrx::Uuid>(
            "WITH u AS (UPDATE sealstore.api_keys SET revoked_at = now() \
                        WHERE id = $1 AND revoked_at IS NULL \
                          AND ($2::uuid IS NULL OR tenant_id = $2) RETURNING tenant_id) \
             SELECT (SELECT tenant_id FROM u)",
            &[id.into(), only.into()],
        ));
        if let Some(t) = tenant {
            audit(
                "revoke_api_key",
                Some(t),
                serde_json::json!({"api_key": id.to_string()}),
            );
        }
        tenant
    });
    if tenant.is_none() {
        errors::raise(errors::undefined("no active API key has this id"));
    }
    keycache::mark_credentials_changed();
    CACHE.with_borrow_mut(|c| c.api.remove(id.as_bytes()));
}

/// What a gateway needs to pre-check tokens before it spends a transaction on them: the active
/// kids with their algorithms, the PEM of public keys (never an HMAC secret: HS256 signatures
/// are checked here, in `authenticate`), and the claim policy. Public information only, so the
/// application role may read it.
/// PARALLEL RESTRICTED: it reads as the owner, which switches the user and search_path.
#[pg_extern(stable, parallel_restricted)]
fn jwt_verification_config() -> pgrx::JsonB {
    let keys = as_owner(|| {
        spi(Spi::connect(|client| {
            client
                .select(
                    "SELECT kid, algorithm, \
                            CASE WHEN algorithm <> 'HS256' THEN convert_from(material, 'UTF8') END \
                     FROM sealstore.jwt_keys WHERE retired_at IS NULL ORDER BY kid",
                    None,
                    &[],
                )?
                .map(|r| {
                    Ok(serde_json::json!({
                        "kid": r.get::<String>(1)?,
                        "algorithm": r.get::<String>(2)?,
                        "public_key": r.get::<String>(3)?,
                    }))
                })
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        }))
    });
    let p = policy();
    pgrx::JsonB(serde_json::json!({
        "keys": keys,
        "audience": p.audience,
        "issuer": p.issuer,
        "leeway_secs": p.leeway_secs,
    }))
}

/// Appends a gateway's report of failed authentications to the audit log (the database cannot
/// record them itself: a rejected `authenticate` aborts its transaction). The report is an
/// array of `{client, reason, count}`; the row names the login role that sent it. Returns the
/// number of rows written.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn record_auth_failures(report: pgrx::JsonB) -> i32 {
    let failures = auth::parse_auth_failures(&report.0)
        .unwrap_or_else(|rule| errors::raise(errors::invalid_argument(rule)));
    as_owner(|| {
        for f in &failures {
            audit(
                "authentication_failed",
                None,
                serde_json::json!({
                    "client": f.client.to_string(),
                    "reason": f.reason,
                    "count": f.count,
                }),
            );
        }
    });
    failures.len() as i32
}
