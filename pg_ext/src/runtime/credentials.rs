//! Verifying credentials inside the database: JWTs against the keys added with `add_jwt_key`,
//! API keys against their stored hashes; and the per-backend caches of both.
//!
//! Verification keys and API key rows are cached per backend and tagged with the key cache's
//! generation, so add_jwt_key, retire_jwt_key and revoke_api_key reach every backend as soon as
//! they commit, without a restart (the same shared epoch that makes shredding immediate). They
//! are loaded under the latest committed state (`owner::latest_rows`). So are the revoked JWT
//! ids, as one set per generation: `revoke_token` bumps it, and checking a token's `jti` is a
//! hash lookup.

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::auth::{
    self, AuthError, Credential, Identity, JwtAlgorithm, KeyBinding, Policy, VerificationKey,
};
use sealstore_core::crypto;
use sealstore_core::ids::{ApiKeyId, TenantId};

use crate::runtime::errors::{self, Result};
use crate::runtime::owner::{self, as_owner, latest_rows};
use crate::runtime::{gucs, keycache, master_key};
use crate::storage::ids::Uuid;

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
    api: HashMap<ApiKeyId, Option<Rc<ApiKeyRow>>>,
    revoked: Option<Rc<HashSet<String>>>,
}

impl Cache {
    /// Empties the cache if `generation` is newer than its entries (or it holds too many).
    fn renew(&mut self, generation: keycache::Generation) {
        if self.generation != generation || self.jwt.len() + self.api.len() > CACHE_LIMIT {
            self.jwt.clear();
            self.api.clear();
            self.revoked = None;
            self.generation = generation;
        }
    }
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
    load: impl FnOnce() -> Result<Option<V>>,
) -> Result<Option<Rc<V>>>
where
    K: Borrow<Q> + Eq + Hash,
    Q: ?Sized + Eq + Hash + ToOwned<Owned = K>,
{
    let generation = keycache::generation();
    let hit = CACHE.with_borrow_mut(|c| {
        c.renew(generation);
        map(c).get(key).cloned()
    });
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let value = load()?.map(Rc::new);
    CACHE.with_borrow_mut(|c| {
        if c.generation == generation {
            map(c).insert(key.to_owned(), value.clone());
        }
    });
    Ok(value)
}

/// Drops this backend's cached copy of JWT key `kid` (the caller changed it).
pub fn forget_jwt_key(kid: &str) {
    CACHE.with_borrow_mut(|c| c.jwt.remove(kid));
}

/// Drops this backend's revoked JWT ids (the caller revoked one).
pub fn forget_revocations() {
    CACHE.with_borrow_mut(|c| c.revoked = None);
}

/// How long a revocation outlives its token's expiry: the most clock-skew leeway a token is
/// given past its `exp`, and a margin.
pub const REVOCATION_MARGIN_SECS: u64 = auth::MAX_LEEWAY_SECS + 30;

/// The ids of revoked JWTs that could still be accepted, as now committed: loaded once per
/// generation (see `cached`).
fn revoked() -> Result<Rc<HashSet<String>>> {
    let generation = keycache::generation();
    let hit = CACHE.with_borrow_mut(|c| {
        c.renew(generation);
        c.revoked.clone()
    });
    if let Some(set) = hit {
        return Ok(set);
    }
    let set: HashSet<String> = latest_rows(
        "SELECT jti FROM sealstore.revoked_tokens \
         WHERE expires_at > now() - make_interval(secs => $1)",
        &[(REVOCATION_MARGIN_SECS as f64).into()],
        |row| row.get::<String>(1),
    )?
    .into_iter()
    .flatten()
    .collect();
    let set = Rc::new(set);
    CACHE.with_borrow_mut(|c| {
        if c.generation == generation {
            c.revoked = Some(set.clone());
        }
    });
    Ok(set)
}

/// Drops this backend's cached copy of API key `id` (the caller changed it).
pub fn forget_api_key(id: &ApiKeyId) {
    CACHE.with_borrow_mut(|c| c.api.remove(id));
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

fn jwt_key(kid: &str) -> Result<Option<Rc<JwtKey>>> {
    cached(|c| &mut c.jwt, kid, || load_jwt_key(kid))
}

/// The active key `kid` as now committed (a transaction's older snapshot must not bring back
/// a retired key).
fn load_jwt_key(kid: &str) -> Result<Option<JwtKey>> {
    let row = latest_rows(
        "SELECT algorithm, material, master_fingerprint, for_tenant, admin \
         FROM sealstore.jwt_keys WHERE kid = $1 AND retired_at IS NULL",
        &[kid.into()],
        |row| {
            (
                row.get::<String>(1).unwrap_or_default(),
                row.get::<Vec<u8>>(2).unwrap_or_default(),
                row.get::<String>(3),
                row.get::<pgrx::Uuid>(4).map(|t| TenantId::from_uuid(&t)),
                row.get::<bool>(5).unwrap_or(false),
            )
        },
    )?
    .pop();
    let Some((algorithm, material, fingerprint, tenant, admin)) = row else {
        return Ok(None);
    };
    let algorithm = JwtAlgorithm::from_name(&algorithm)?;
    let material = match fingerprint {
        Some(fp) => crypto::open_secret(
            master_key::for_fingerprint(&fp)?,
            &secret_purpose(kid, algorithm),
            &material,
        )?,
        None => zeroize::Zeroizing::new(material),
    };
    Ok(Some(JwtKey {
        key: VerificationKey::new(algorithm, &material)?,
        binding: KeyBinding { tenant, admin },
    }))
}

fn api_key_row(id: &ApiKeyId) -> Result<Option<Rc<ApiKeyRow>>> {
    cached(|c| &mut c.api, id, || load_api_key_row(id))
}

/// The API key `id` unless revoked, as now committed (see `load_jwt_key`).
fn load_api_key_row(id: &ApiKeyId) -> Result<Option<ApiKeyRow>> {
    let uuid = id.uuid();
    Ok(latest_rows(
        "SELECT tenant_id, scopes, tag, \
                coalesce(extract(epoch FROM last_used_at)::bigint, 0) \
         FROM sealstore.api_keys WHERE id = $1 AND revoked_at IS NULL",
        &[uuid.into()],
        |row| ApiKeyRow {
            tenant: TenantId::from_uuid(&row.get::<pgrx::Uuid>(1).expect("tenant_id is NOT NULL")),
            scopes: row
                .get::<Vec<Option<String>>>(2)
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect(),
            tag: row.get::<Vec<u8>>(3).unwrap_or_default(),
            last_use: Cell::new(row.get::<i64>(4).unwrap_or(0)),
        },
    )?
    .pop())
}

/// Records that an API key was used, coarsely: at most once an hour per key (and per backend),
/// never blocking (SKIP LOCKED) and only where a write cannot fail the caller's transaction:
/// read-write, READ COMMITTED, not on a standby. Elsewhere the use simply goes unrecorded.
fn record_use(id: &ApiKeyId, row: &ApiKeyRow) -> Result<()> {
    let now = now_unix();
    if now - row.last_use.get() < LAST_USE_GRANULARITY {
        return Ok(());
    }
    // SAFETY: a plain read of a backend global.
    let read_committed = unsafe { pg_sys::XactIsoLevel == pg_sys::XACT_READ_COMMITTED as i32 };
    if !read_committed || owner::require_writable().is_err() {
        // Not noted as recorded: the backend's next writable use records it.
        return Ok(());
    }
    row.last_use.set(now);
    let uuid = id.uuid();
    as_owner(|| {
        errors::spi(Spi::run_with_args(
            "UPDATE sealstore.api_keys SET last_used_at = date_trunc('hour', now()) \
             WHERE id = (SELECT id FROM sealstore.api_keys WHERE id = $1 \
                           AND (last_used_at IS NULL OR last_used_at < date_trunc('hour', now())) \
                         FOR UPDATE SKIP LOCKED)",
            &[uuid.into()],
        ))
    })
}

/// The claim checks the settings ask for (`sealstore.jwt_*`).
pub fn policy() -> Policy {
    Policy {
        audience: gucs::string_value(&gucs::JWT_AUDIENCE).filter(|s| !s.is_empty()),
        issuer: gucs::string_value(&gucs::JWT_ISSUER).filter(|s| !s.is_empty()),
        leeway_secs: gucs::JWT_LEEWAY
            .get()
            .clamp(0, auth::MAX_LEEWAY_SECS as i32) as u64,
        require_jti: gucs::JWT_REQUIRE_JTI.get(),
    }
}

/// Verifies `token` (a JWT, or an API key `sst_...`) and returns who it speaks for. Every
/// refusal is an [`AuthError`] (28P01 with the failed check as its code), never anything of
/// the token; other errors (a master key missing) are what they are.
pub fn verify(token: &str) -> Result<Identity> {
    match auth::classify(token)? {
        Credential::Jwt { kid } => {
            let key = jwt_key(&kid)?.ok_or(AuthError::UnknownKey)?;
            let identity = auth::verify_jwt(token, &key.key, &policy())?;
            key.binding.check(&identity)?;
            if let Some(jti) = identity.jti() {
                if revoked()?.contains(jti) {
                    return Err(AuthError::Revoked.into());
                }
            }
            if let Some(tenant) = &identity.tenant {
                if keycache::try_tenant_keys(tenant)?.is_err() {
                    return Err(AuthError::UnknownTenant.into());
                }
            }
            Ok(identity)
        }
        Credential::ApiKey(key) => {
            let row = api_key_row(&key.id)?.ok_or(AuthError::BadApiKey)?;
            // A shredded tenant's API keys die with its data keys.
            let keys = keycache::try_tenant_keys(&row.tenant)?.map_err(|_| AuthError::BadApiKey)?;
            if !key.matches(keys.index_key()?, &row.tag) {
                return Err(AuthError::BadApiKey.into());
            }
            record_use(&key.id, &row)?;
            Ok(auth::api_key_identity(&key.id, row.tenant, &row.scopes))
        }
    }
}
