//! `sealstore.authenticate(token)` and the administration of JWT keys and API keys. The
//! verification itself and its caches are `runtime::credentials`.

use pgrx::prelude::*;
use sealstore_core::auth::{self, Identity, JwtAlgorithm, VerificationKey};
use sealstore_core::crypto;
use sealstore_core::names::{check_name, NameOf};

use crate::runtime::audit::audit;
use crate::runtime::context::{self, AdminReach};
use crate::runtime::credentials::{self, secret_purpose};
use crate::runtime::errors::{self, edge, Error, Result};
use crate::runtime::owner::{self, as_owner, changed_rows};
use crate::runtime::{keycache, master_key};
use crate::storage::ids::Uuid as _;
use sealstore_core::ids::{ApiKeyId, TenantId};

/// What `authenticate` returns: the verified tenant, subject and scopes.
pub fn summary(identity: &Identity) -> serde_json::Value {
    serde_json::json!({
        "tenant": identity.tenant.map(|t| t.to_string()),
        "subject": identity.subject,
        "scopes": identity.scopes,
    })
}

/// Verifies `token` and makes it the context of the current transaction (what the SQL function
/// and the gateway's route functions start with).
pub fn authenticate_token(token: &str) -> Result<Identity> {
    let identity = credentials::verify(token)?;
    context::set(identity.clone());
    Ok(identity)
}

/// Verifies `token` (a JWT, or an API key `sst_...`) and makes its tenant, subject, scopes and
/// claims the context of the current transaction. Every rejection is SQLSTATE 28P01, with the
/// failed check's code in DETAIL and nothing of the token.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn authenticate(token: &str) -> pgrx::JsonB {
    edge(|| authenticate_token(token).map(|identity| pgrx::JsonB(summary(&identity))))
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
    edge(|| {
        owner::require_writable()?;
        let (Some(kid), Some(algorithm), Some(key), Some(admin)) = (kid, algorithm, key, admin)
        else {
            return Err(errors::null_argument(
                "kid, algorithm, key and admin must not be NULL",
            ));
        };
        context::require_system_admin()?;
        auth::check_kid(kid)?;
        let alg = JwtAlgorithm::from_name(algorithm)?;
        VerificationKey::new(alg, key.as_bytes())?;
        if let Some(t) = tenant {
            keycache::check_tenant_usable(&TenantId::from_uuid(&t))?;
        }
        let (material, fingerprint) = if alg.is_hmac() {
            let master = master_key::get()?;
            let sealed = crypto::seal_secret(master, &secret_purpose(kid, alg), key.as_bytes())?;
            (sealed, Some(master.fingerprint()))
        } else {
            (key.as_bytes().to_vec(), None)
        };
        as_owner(|| {
            let added = changed_rows(
                "WITH i AS (INSERT INTO sealstore.jwt_keys \
                              (kid, algorithm, material, master_fingerprint, for_tenant, admin) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO NOTHING RETURNING 1) \
                 SELECT count(*) FROM i",
                &[
                    kid.into(),
                    alg.name().into(),
                    material.into(),
                    fingerprint.into(),
                    tenant.into(),
                    admin.into(),
                ],
            )?;
            if added != 1 {
                return Err(errors::duplicate(
                    "a JWT key with this kid exists or existed (kids are never reused)",
                ));
            }
            audit(
                "add_jwt_key",
                tenant,
                serde_json::json!({"kid": kid, "algorithm": alg.name(), "admin": admin}),
            )
        })?;
        keycache::mark_credentials_changed();
        credentials::forget_jwt_key(kid);
        Ok(())
    })
}

/// Stops accepting tokens signed with `kid`, in every backend once committed, and forgets the
/// key material.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn retire_jwt_key(kid: &str) {
    edge(|| {
        owner::require_writable()?;
        context::require_system_admin()?;
        as_owner(|| {
            let retired = changed_rows(
                "WITH u AS (UPDATE sealstore.jwt_keys SET retired_at = now(), material = NULL, \
                 master_fingerprint = NULL WHERE kid = $1 AND retired_at IS NULL RETURNING 1) \
                 SELECT count(*) FROM u",
                &[kid.into()],
            )?;
            if retired != 1 {
                return Err(errors::undefined("no active JWT key has this kid"));
            }
            audit("retire_jwt_key", None, serde_json::json!({"kid": kid}))
        })?;
        keycache::mark_credentials_changed();
        credentials::forget_jwt_key(kid);
        Ok(())
    })
}

/// Revokes the JWT whose `jti` is given: refused by every backend (and, once replayed, every
/// hot standby) as soon as this commits, until `expires_at` (the token's `exp`) has passed.
/// System administrators only: a jti names no tenant.
pub fn revoke_jti(jti: &str, expires_at: pgrx::datum::TimestampWithTimeZone) -> Result<()> {
    owner::require_writable()?;
    context::require_system_admin()?;
    if !auth::valid_jti(jti) {
        return Err(Error::new(
            sealstore_core::error::Kind::InvalidArgument,
            "jti must be 1 to 256 bytes",
        ));
    }
    record_revocation(jti, expires_at, None, false)
}

/// Notes `jti` as revoked until `expires_at` and purges revocations past their expiry.
/// `tenant` and `own` go to the audit row.
fn record_revocation(
    jti: &str,
    expires_at: pgrx::datum::TimestampWithTimeZone,
    tenant: Option<pgrx::Uuid>,
    own: bool,
) -> Result<()> {
    let margin = credentials::REVOCATION_MARGIN_SECS as f64;
    as_owner(|| {
        errors::spi(Spi::run_with_args(
            "DELETE FROM sealstore.revoked_tokens WHERE expires_at < now() - make_interval(secs => $1)",
            &[margin.into()],
        ))?;
        errors::spi(Spi::run_with_args(
            "INSERT INTO sealstore.revoked_tokens (jti, expires_at) VALUES ($1, $2) \
             ON CONFLICT (jti) DO UPDATE \
             SET expires_at = greatest(revoked_tokens.expires_at, EXCLUDED.expires_at)",
            &[jti.into(), expires_at.into()],
        ))?;
        audit(
            "revoke_token",
            tenant,
            serde_json::json!({ "jti": jti, "own": own }),
        )
    })?;
    keycache::mark_credentials_changed();
    credentials::forget_revocations();
    Ok(())
}

/// Revokes the credential `token` (already authenticated into this transaction's context):
/// an API key is revoked like `revoke_api_key`; a JWT by its `jti` until its `exp`. A JWT
/// without a jti cannot be revoked (22023): it ends at its `exp`. A log-out, open to every
/// credential for itself alone.
pub fn revoke_own(token: &str) -> Result<()> {
    owner::require_writable()?;
    // Which credential this is comes from the token itself, never from its claims (a JWT may
    // carry any claim, "api_key" too).
    match auth::classify(token)? {
        auth::Credential::ApiKey(key) => revoke_api_key_row(key.id.uuid(), None),
        auth::Credential::Jwt { .. } => {
            let identity = context::get()?.ok_or_else(errors::no_tenant_context)?;
            let Some(jti) = identity.jti() else {
                return Err(Error::invalid(
                    "this token carries no jti and cannot be revoked before it expires",
                ));
            };
            // Verified: every accepted token has an integer exp.
            let exp = identity
                .claims
                .get("exp")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| Error::invalid("this token carries no exp"))?;
            let tenant = identity.tenant.as_ref().map(|t| t.uuid());
            record_revocation(jti, pgrx::datum::to_timestamp(exp as f64), tenant, true)
        }
    }
}

/// Revokes a JWT by its `jti` until `expires_at` (see `revoke_jti`).
#[pg_extern(volatile, parallel_unsafe, strict)]
fn revoke_token(jti: &str, expires_at: pgrx::datum::TimestampWithTimeZone) {
    edge(|| revoke_jti(jti, expires_at))
}

/// A new API key: its id and its text, shown once.
pub struct NewApiKey {
    pub id: pgrx::Uuid,
    pub key: String,
    pub scopes: Vec<String>,
}

/// Creates an API key for `tenant` (see `create_api_key`).
pub fn create_api_key_for(
    tenant: pgrx::Uuid,
    name: &str,
    scopes: Vec<Option<String>>,
) -> Result<NewApiKey> {
    owner::require_writable()?;
    context::require_admin_of(&TenantId::from_uuid(&tenant))?;
    check_name(NameOf::ApiKey, name)?;
    let bad_scopes = || Error::invalid("scopes must be a non-empty array of read, write and admin");
    let mut unique: Vec<String> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        match scope {
            Some(s) if auth::SCOPES.contains(&s.as_str()) => {
                if !unique.contains(&s) {
                    unique.push(s);
                }
            }
            _ => return Err(bad_scopes()),
        }
    }
    if unique.is_empty() {
        return Err(bad_scopes());
    }
    let keys = keycache::tenant_keys(&TenantId::from_uuid(&tenant))?;
    let (key, text) = auth::ApiKey::generate()?;
    let tag = key.tag(keys.index_key()?);
    let id = key.id.uuid();
    as_owner(|| {
        errors::spi(Spi::run_with_args(
            "INSERT INTO sealstore.api_keys (id, tenant_id, name, scopes, tag) VALUES ($1, $2, $3, $4, $5)",
            &[id.into(), tenant.into(), name.into(), unique.clone().into(), tag.to_vec().into()],
        ))?;
        audit(
            "create_api_key",
            Some(tenant),
            serde_json::json!({"api_key": id.to_string(), "name": name, "scopes": unique}),
        )
    })?;
    // A backend that looked the new id up before this commits (a client too quick, or a hot
    // standby before replay) holds a cached miss for it: every backend drops its caches.
    keycache::mark_credentials_changed();
    Ok(NewApiKey {
        id,
        key: text.to_string(),
        scopes: unique,
    })
}

/// Creates an API key for `tenant` and returns it; it is shown this once and stored only as a
/// keyed hash. Scopes: read, write, admin.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn create_api_key(tenant: pgrx::Uuid, name: &str, scopes: Vec<Option<String>>) -> String {
    edge(|| create_api_key_for(tenant, name, scopes).map(|k| k.key))
}

/// Revokes API key `id` (see `revoke_api_key`).
pub fn revoke_api_key_by_id(id: pgrx::Uuid) -> Result<()> {
    owner::require_writable()?;
    // A tenant's admin credential revokes its own tenant's keys only; others look absent.
    let only = match context::require_admin()? {
        AdminReach::All => None,
        AdminReach::Tenant(t) => Some(t.uuid()),
    };
    revoke_api_key_row(id, only)
}

/// Revokes API key `id` if it is active (and of tenant `only`, when given).
fn revoke_api_key_row(id: pgrx::Uuid, only: Option<pgrx::Uuid>) -> Result<()> {
    as_owner(|| {
        let tenant = errors::spi(Spi::get_one_with_args::<pgrx::Uuid>(
            "WITH u AS (UPDATE sealstore.api_keys SET revoked_at = now() \
                        WHERE id = $1 AND revoked_at IS NULL \
                          AND ($2::uuid IS NULL OR tenant_id = $2) RETURNING tenant_id) \
             SELECT (SELECT tenant_id FROM u)",
            &[id.into(), only.into()],
        ))?;
        let Some(t) = tenant else {
            return Err(errors::undefined("no active API key has this id"));
        };
        audit(
            "revoke_api_key",
            Some(t),
            serde_json::json!({"api_key": id.to_string()}),
        )
    })?;
    keycache::mark_credentials_changed();
    credentials::forget_api_key(&ApiKeyId::from_uuid(&id));
    Ok(())
}

/// Revokes an API key: rejected by every backend as soon as this commits.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn revoke_api_key(id: pgrx::Uuid) {
    edge(|| revoke_api_key_by_id(id))
}

/// What a gateway needs to pre-check tokens before it spends a transaction on them: the active
/// kids with their algorithms, the PEM of public keys (never an HMAC secret: HS256 signatures
/// are checked here, in `authenticate`), and the claim policy. Public information only, so the
/// application role may read it.
/// PARALLEL RESTRICTED: it reads as the owner, which switches the user and search_path.
#[pg_extern(stable, parallel_restricted)]
fn jwt_verification_config() -> pgrx::JsonB {
    edge(|| {
        let keys = as_owner(|| {
            errors::spi(Spi::connect(|client| {
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
                    .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
            }))
        })?;
        let p = credentials::policy();
        Ok(pgrx::JsonB(serde_json::json!({
            "keys": keys,
            "audience": p.audience,
            "issuer": p.issuer,
            "leeway_secs": p.leeway_secs,
            "require_jti": p.require_jti,
        })))
    })
}

/// Appends a gateway's report of failed authentications to the audit log (the database cannot
/// record them itself: a rejected `authenticate` aborts its transaction). The report is an
/// array of `{client, reason, count}`; the row names the login role that sent it. Returns the
/// number of rows written.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn record_auth_failures(report: pgrx::JsonB) -> i32 {
    edge(|| {
        owner::require_writable()?;
        let failures = auth::parse_auth_failures(&report.0).map_err(Error::invalid)?;
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
                )?;
            }
            Ok(())
        })?;
        Ok(failures.len() as i32)
    })
}
