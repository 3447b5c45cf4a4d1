//! Token checks in the gateway, before a token costs a database transaction.
//!
//! The rules are the extension's own (`sealstore_core::auth`); the verification keys come from
//! the database (`sealstore.jwt_verification_config()`), refreshed every few seconds and at once
//! when a token names an unknown kid, so a key added with `add_jwt_key` works over HTTP within
//! seconds. Public-key JWTs are verified here in full; HS256 secrets and API key hashes never
//! leave the database, so for those the gateway checks shape, algorithm, `exp` and `nbf`, and
//! leaves the signature to `authenticate`. The database re-checks every token in every case.
//!
//! A short verdict cache, keyed by the SHA-256 of the token (never the token), remembers what
//! the database said: a token it refused is refused here for a few seconds without a round
//! trip, and a token it accepted gets its verified subject as the rate-limit key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use moka::sync::Cache;
use sealstore_core::auth::{self, AuthError, Credential, JwtAlgorithm, Policy, VerificationKey};
use sha2::{Digest, Sha256};

use crate::db;

/// How long a database verdict is remembered.
const VERDICT_TTL: Duration = Duration::from_secs(10);
const VERDICT_CAPACITY: u64 = 100_000;
/// On-demand refreshes (unknown kid) happen at most this often.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(200);

pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// One configured kid: its algorithm, and the key when it is public.
struct KeyEntry {
    algorithm: JwtAlgorithm,
    public: Option<VerificationKey>,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, KeyEntry>,
    policy: Policy,
    /// The configuration as read, to notice changes.
    raw: String,
}

#[derive(Clone)]
enum Verdict {
    Accepted {
        principal: Arc<str>,
        exp: Option<u64>,
    },
    Rejected(&'static str),
}

/// What the gateway knows of a token before the database sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Verified (by the database earlier, or here for a public-key JWT): the subject.
    Verified(Arc<str>),
    /// Not verified yet: the token's hash stands in as the rate-limit key.
    Unverified(TokenHash),
}

pub struct Verifier {
    keys: RwLock<Arc<KeySet>>,
    verdicts: Cache<TokenHash, Verdict>,
    last_refresh: Mutex<Option<Instant>>,
    /// One on-demand refresh at a time; the others wait for its result.
    refresh_turn: tokio::sync::Mutex<()>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self {
            keys: RwLock::new(Arc::new(KeySet::default())),
            verdicts: Cache::builder()
                .max_capacity(VERDICT_CAPACITY)
                .time_to_live(VERDICT_TTL)
                .build(),
            last_refresh: Mutex::new(None),
            refresh_turn: tokio::sync::Mutex::new(()),
        }
    }

    fn key_set(&self) -> Arc<KeySet> {
        self.keys.read().expect("key set lock").clone()
    }

    /// Reads the verification configuration from the database. A changed key set also drops
    /// remembered refusals (a token refused for an unknown kid may be good now).
    pub async fn refresh(&self, pool: &Pool) -> Result<(), crate::errors::DbError> {
        let rows = db::query_plain(pool, "SELECT sealstore.jwt_verification_config()", &[]).await;
        // Set when the answer is in: a refresh still running does not count as recent.
        *self.last_refresh.lock().expect("refresh lock") = Some(Instant::now());
        let rows = rows?;
        let config: serde_json::Value = rows.first().map(|r| r.get(0)).unwrap_or_default();
        let raw = config.to_string();
        // The initial (empty) set's text is "", which no configuration reads as.
        if self.key_set().raw == raw {
            return Ok(());
        }
        let set = parse_config(&config, raw);
        tracing::info!(keys = set.keys.len(), "JWT verification keys loaded");
        *self.keys.write().expect("key set lock") = Arc::new(set);
        self.verdicts
            .invalidate_entries_if(|_, v| matches!(v, Verdict::Rejected(_)))
            .ok();
        Ok(())
    }

    /// Makes sure a refresh completes after `asked`: waits for one in progress, or runs one,
    /// no sooner than `MIN_REFRESH_GAP` after the previous (single flight, so a flood of
    /// unknown kids costs the database at most five queries a second).
    async fn refresh_after(&self, asked: Instant, pool: &Pool) {
        let _turn = self.refresh_turn.lock().await;
        let last = *self.last_refresh.lock().expect("refresh lock");
        if last.is_some_and(|t| t >= asked) {
            return;
        }
        if let Some(wait) = last.and_then(|t| MIN_REFRESH_GAP.checked_sub(t.elapsed())) {
            tokio::time::sleep(wait).await;
        }
        if let Err(e) = self.refresh(pool).await {
            tracing::debug!(error = ?e, "key refresh failed");
        }
    }

    /// The checks the gateway can make itself. `Err` carries the reason code (for logs and
    /// the audit), never anything of the token.
    pub async fn check(&self, token: &str, pool: &Pool) -> Result<Principal, &'static str> {
        let hash = token_hash(token);
        match self.verdicts.get(&hash) {
            Some(Verdict::Rejected(reason)) => return Err(reason),
            Some(Verdict::Accepted { principal, exp }) => {
                let leeway = self.key_set().policy.leeway_secs;
                if exp.is_some_and(|exp| exp.saturating_add(leeway) < now_unix()) {
                    self.verdicts.invalidate(&hash);
                    return Err(AuthError::Expired.code());
                }
                return Ok(Principal::Verified(principal));
            }
            None => {}
        }
        match auth::classify(token).map_err(|e| e.code())? {
            Credential::ApiKey(_) => Ok(Principal::Unverified(hash)),
            Credential::Jwt { kid } => {
                let mut set = self.key_set();
                if !set.keys.contains_key(&kid) {
                    self.refresh_after(Instant::now(), pool).await;
                    set = self.key_set();
                }
                let entry = set.keys.get(&kid).ok_or(AuthError::UnknownKey.code())?;
                match &entry.public {
                    Some(key) => {
                        let identity =
                            auth::verify_jwt(token, key, &set.policy).map_err(|e| e.code())?;
                        Ok(Principal::Verified(identity.subject.into()))
                    }
                    None => {
                        auth::precheck_unsigned(token, entry.algorithm, &set.policy, now_unix())
                            .map_err(|e| e.code())?;
                        Ok(Principal::Unverified(hash))
                    }
                }
            }
        }
    }

    /// The database accepted the token: remember its subject (until its `exp`, if any).
    pub fn accepted(&self, token: &str, subject: &str) {
        let exp = jwt_exp(token);
        self.verdicts.insert(
            token_hash(token),
            Verdict::Accepted {
                principal: subject.into(),
                exp,
            },
        );
    }

    /// The database refused the token.
    pub fn rejected(&self, token: &str, reason: &'static str) {
        self.verdicts
            .insert(token_hash(token), Verdict::Rejected(reason));
    }
}

fn jwt_exp(token: &str) -> Option<u64> {
    if token.starts_with(auth::API_KEY_PREFIX) {
        return None;
    }
    auth::unverified_exp(token)
}

fn parse_config(config: &serde_json::Value, raw: String) -> KeySet {
    let mut keys = HashMap::new();
    for k in config
        .get("keys")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let (Some(kid), Some(alg)) = (
            k.get("kid").and_then(|v| v.as_str()),
            k.get("algorithm").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let Ok(algorithm) = JwtAlgorithm::from_name(alg) else {
            continue;
        };
        // A public key this side cannot parse (the database accepted it) leaves the verdict on
        // its tokens to the database: the kid is still known, its signatures unchecked here.
        let public = match k.get("public_key").and_then(|v| v.as_str()) {
            Some(pem) if !algorithm.is_hmac() => {
                VerificationKey::new(algorithm, pem.as_bytes()).ok()
            }
            _ => None,
        };
        keys.insert(kid.to_owned(), KeyEntry { algorithm, public });
    }
    let text = |name| {
        config
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    KeySet {
        keys,
        policy: Policy {
            audience: text("audience"),
            issuer: text("issuer"),
            leeway_secs: config
                .get("leeway_secs")
                .and_then(|v| v.as_u64())
                .unwrap_or(0)
                .min(auth::MAX_LEEWAY_SECS),
            require_jti: config
                .get("require_jti")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        },
        raw,
    }
}

/// The reason code for a refusal the database reported: the stable code its DETAIL starts
/// with (`sealstore_core::error`); "rejected" when it is not one of the known checks.
pub fn reason_from_detail(detail: Option<&str>) -> &'static str {
    let code = detail.map(sealstore_core::error::code_of);
    AuthError::all()
        .into_iter()
        .map(|e| e.code())
        .find(|known| Some(*known) == code)
        .unwrap_or("rejected")
}

#[cfg(test)]
mod tests;
