//! Credential verification: JSON Web Tokens (through `jsonwebtoken`) and Sealstore API keys.
//!
//! Pure logic: the extension looks keys up and keeps the resulting identity for one transaction.
//! Errors name the check that failed and never contain any part of the token or of a key.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm as JwtAlg, DecodingKey, Validation};
use serde_json::Value;

use crate::crypto::{self, CryptoError};
use crate::ids::{ApiKeyId, TenantId};

/// Longest credential accepted, in bytes; longer input is refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Upper bound for the clock-skew allowance on `exp` and `nbf`.
pub const MAX_LEEWAY_SECS: u64 = 30;
/// HMAC secrets shorter than this are refused (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_LEN: usize = 32;
/// API keys read `sst_<id: 32 hex>_<secret: 64 hex>`.
pub const API_KEY_PREFIX: &str = "sst_";
/// Longest `kid` accepted (header or `add_jwt_key`).
pub const MAX_KID_LEN: usize = 200;

/// The scopes Sealstore knows; tokens may carry others, which grant nothing.
pub const SCOPES: [&str; 3] = ["read", "write", "admin"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("credential is empty or longer than 8192 bytes")]
    TooLarge,
    #[error("credential is not a well-formed JWT or API key")]
    Malformed,
    #[error("JWT header has no kid")]
    MissingKid,
    #[error("JWT kid is unknown or retired")]
    UnknownKey,
    #[error("JWT algorithm is not the one configured for its key")]
    AlgorithmNotAllowed,
    #[error("JWT signature does not verify")]
    BadSignature,
    #[error("JWT has expired")]
    Expired,
    #[error("JWT is not valid yet (nbf)")]
    NotYetValid,
    #[error("JWT lacks the required claim {0}")]
    MissingClaim(&'static str),
    #[error("JWT claim {0} has the wrong type or format")]
    BadClaim(&'static str),
    #[error("JWT audience is not accepted")]
    WrongAudience,
    #[error("JWT issuer is not accepted")]
    WrongIssuer,
    #[error("credential names no tenant and has no admin scope")]
    NoTenant,
    #[error("credential's tenant does not exist or has been shredded")]
    UnknownTenant,
    #[error("API key is unknown, revoked or wrong")]
    BadApiKey,
    #[error("JWT names a tenant its key may not issue tokens for")]
    TenantNotAllowed,
    #[error("JWT grants scope admin, which its key may not issue")]
    AdminNotAllowed,
    #[error("JWT has been revoked")]
    Revoked,
}

/// The claim names the checks can report as missing or malformed.
const REPORTED_CLAIMS: [&str; 10] = [
    "exp", "nbf", "iat", "aud", "iss", "sub", "tenant", "scope", "jti", "?",
];

impl AuthError {
    /// Every rejection the checks can produce.
    pub fn all() -> Vec<AuthError> {
        let mut all = vec![
            Self::TooLarge,
            Self::Malformed,
            Self::MissingKid,
            Self::UnknownKey,
            Self::AlgorithmNotAllowed,
            Self::BadSignature,
            Self::Expired,
            Self::NotYetValid,
            Self::WrongAudience,
            Self::WrongIssuer,
            Self::NoTenant,
            Self::UnknownTenant,
            Self::BadApiKey,
            Self::TenantNotAllowed,
            Self::AdminNotAllowed,
            Self::Revoked,
        ];
        for claim in REPORTED_CLAIMS {
            all.extend([Self::MissingClaim(claim), Self::BadClaim(claim)]);
        }
        all
    }

    /// A short stable name for logs and audit rows (never anything of the credential).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::MissingKid => "missing_kid",
            Self::UnknownKey => "unknown_key",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingClaim(_) => "missing_claim",
            Self::BadClaim(_) => "bad_claim",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::NoTenant => "no_tenant",
            Self::UnknownTenant => "unknown_tenant",
            Self::BadApiKey => "bad_api_key",
            Self::TenantNotAllowed => "tenant_not_allowed",
            Self::AdminNotAllowed => "admin_not_allowed",
            Self::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("unknown JWT algorithm (expected HS256, RS256, ES256 or EdDSA)")]
    UnknownAlgorithm,
    #[error("HMAC secret must be at least 32 bytes")]
    WeakSecret,
    #[error("key is not a PEM public key for this algorithm")]
    BadPublicKey,
    #[error("kid must be 1 to 200 printable ASCII characters")]
    BadKid,
}

/// The algorithms a JWT key may be configured with; each key allows exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl JwtAlgorithm {
    pub fn from_name(name: &str) -> Result<Self, KeyError> {
        match name {
            "HS256" => Ok(Self::Hs256),
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            _ => Err(KeyError::UnknownAlgorithm),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Symmetric: the key is a secret, stored encrypted under the master key.
    pub fn is_hmac(self) -> bool {
        self == Self::Hs256
    }

    fn jwt(self) -> JwtAlg {
        match self {
            Self::Hs256 => JwtAlg::HS256,
            Self::Rs256 => JwtAlg::RS256,
            Self::Es256 => JwtAlg::ES256,
            Self::EdDsa => JwtAlg::EdDSA,
        }
    }
}

pub fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| (0x21..0x7f).contains(&b))
    {
        return Err(KeyError::BadKid);
    }
    Ok(())
}

/// A configured verification key: its one allowed algorithm and the parsed key.
pub struct VerificationKey {
    algorithm: JwtAlgorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerificationKey({}, <redacted>)", self.algorithm.name())
    }
}

impl VerificationKey {
    /// `material` is the HMAC secret for HS256 and a PEM public key otherwise.
    pub fn new(algorithm: JwtAlgorithm, material: &[u8]) -> Result<Self, KeyError> {
        let key = match algorithm {
            JwtAlgorithm::Hs256 => {
                if material.len() < MIN_HMAC_SECRET_LEN {
                    return Err(KeyError::WeakSecret);
                }
                Ok(DecodingKey::from_secret(material))
            }
            // Private keys and certificates are refused: only public keys belong here.
            _ if !is_public_key_pem(material) => return Err(KeyError::BadPublicKey),
            JwtAlgorithm::Rs256 => DecodingKey::from_rsa_pem(material),
            JwtAlgorithm::Es256 => DecodingKey::from_ec_pem(material),
            JwtAlgorithm::EdDsa => DecodingKey::from_ed_pem(material),
        }
        .map_err(|_| KeyError::BadPublicKey)?;
        let key = Self { algorithm, key };
        key.check_usable()?;
        Ok(key)
    }

    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// The PEM parsers accept some keys the verifier later rejects (an RSA key given for ES256,
    /// a P-384 key for ES256): verify a dummy token once so that add_jwt_key refuses them.
    fn check_usable(&self) -> Result<(), KeyError> {
        let dummy = format!(
            "{}.e30.AAAA",
            b64(format!(r#"{{"alg":"{}"}}"#, self.algorithm.name()).as_bytes())
        );
        let mut v = Validation::new(self.algorithm.jwt());
        v.required_spec_claims.clear();
        v.validate_exp = false;
        match jsonwebtoken::decode::<Value>(&dummy, &self.key, &v) {
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                Ok(())
            }
            _ => Err(KeyError::BadPublicKey),
        }
    }
}

fn is_public_key_pem(material: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(material) else {
        return false;
    };
    let text = text.trim();
    (text.starts_with("-----BEGIN PUBLIC KEY-----") && text.ends_with("-----END PUBLIC KEY-----"))
        || (text.starts_with("-----BEGIN RSA PUBLIC KEY-----")
            && text.ends_with("-----END RSA PUBLIC KEY-----"))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Server-wide claim checks (settings `sealstore.jwt_audience`, `jwt_issuer`, `jwt_leeway`).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub leeway_secs: u64,
    /// `sealstore.jwt_require_jti`: every JWT must carry a `jti`, so that it can be revoked.
    pub require_jti: bool,
}

/// Who a verified credential speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub tenant: Option<TenantId>,
    pub subject: String,
    pub scopes: Vec<String>,
    pub claims: Value,
}

impl Identity {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The JWT's id (`jti`), by which it can be revoked; none for an API key.
    pub fn jti(&self) -> Option<&str> {
        self.claims.get("jti").and_then(Value::as_str)
    }
}

/// The longest `jti` accepted, in bytes.
pub const MAX_JTI_LEN: usize = 256;

/// Whether `jti` is one a token may carry and a revocation may name: 1 to 256 bytes.
pub fn valid_jti(jti: &str) -> bool {
    !jti.is_empty() && jti.len() <= MAX_JTI_LEN
}

/// What a credential is, decided from its shape alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    ApiKey(ApiKey),
    /// A JWT and the `kid` of its header.
    Jwt {
        kid: String,
    },
}

pub fn classify(token: &str) -> Result<Credential, AuthError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::TooLarge);
    }
    if token.starts_with(API_KEY_PREFIX) {
        return ApiKey::parse(token).map(Credential::ApiKey);
    }
    if token.split('.').count() != 3 {
        return Err(AuthError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
    let kid = header.kid.ok_or(AuthError::MissingKid)?;
    check_kid(&kid).map_err(|_| AuthError::UnknownKey)?;
    Ok(Credential::Jwt { kid })
}

/// Verifies a JWT with the key its `kid` named, then reads Sealstore's claims from it.
pub fn verify_jwt(
    token: &str,
    key: &VerificationKey,
    policy: &Policy,
) -> Result<Identity, AuthError> {
    use jsonwebtoken::errors::ErrorKind as K;
    let mut v = Validation::new(key.algorithm.jwt());
    v.leeway = policy.leeway_secs.min(MAX_LEEWAY_SECS);
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    match &policy.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    if let Some(iss) = &policy.issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    v.set_required_spec_claims(&required);
    let data = jsonwebtoken::decode::<Value>(token, &key.key, &v).map_err(|e| match e.kind() {
        K::InvalidAlgorithm | K::InvalidAlgorithmName => AuthError::AlgorithmNotAllowed,
        K::InvalidSignature => AuthError::BadSignature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidAudience => AuthError::WrongAudience,
        K::InvalidIssuer => AuthError::WrongIssuer,
        K::MissingRequiredClaim(c) => {
            let c = match c.as_str() {
                "exp" => "exp",
                "aud" => "aud",
                "iss" => "iss",
                _ => "?",
            };
            // jsonwebtoken checks claims only after the signature, and reports a present but
            // unparsable claim (a string exp) as missing: tell the two apart for the caller.
            let present = jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token)
                .map(|claims| claims.get(c).is_some_and(|v| !v.is_null()))
                .unwrap_or(false);
            if present {
                AuthError::BadClaim(c)
            } else {
                AuthError::MissingClaim(c)
            }
        }
        K::InvalidClaimFormat(c) => AuthError::BadClaim(match c.as_str() {
            "exp" => "exp",
            "nbf" => "nbf",
            _ => "?",
        }),
        _ => AuthError::Malformed,
    })?;
    let identity = identity_from_claims(data.claims)?;
    if policy.require_jti && identity.jti().is_none() {
        return Err(AuthError::MissingClaim("jti"));
    }
    Ok(identity)
}

/// The `exp` of a JWT, read without verifying anything (for caching a verdict the database
/// gave, never for deciding one).
pub fn unverified_exp(token: &str) -> Option<u64> {
    jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// The checks a verifier without the key can make on a JWT whose key is `algorithm` (an HS256
/// secret stays in the database): the header's algorithm, `exp` and `nbf` with the policy's
/// leeway (as `jsonwebtoken` computes them), and Sealstore's own claims. Never stricter than
/// [`verify_jwt`]: every token this refuses, `verify_jwt` refuses too. It proves nothing about
/// the signature, audience or issuer; the caller must still have the token verified.
pub fn precheck_unsigned(
    token: &str,
    algorithm: JwtAlgorithm,
    policy: &Policy,
    now: u64,
) -> Result<Identity, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
    if header.alg != algorithm.jwt() {
        return Err(AuthError::AlgorithmNotAllowed);
    }
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token)
        .map_err(|_| AuthError::Malformed)?;
    let leeway = policy.leeway_secs.min(MAX_LEEWAY_SECS);
    match claims.get("exp") {
        None | Some(Value::Null) => return Err(AuthError::MissingClaim("exp")),
        Some(exp) => match exp.as_u64() {
            Some(exp) if exp < now.saturating_sub(leeway) => return Err(AuthError::Expired),
            Some(_) => {}
            None => return Err(AuthError::BadClaim("exp")),
        },
    }
    if let Some(nbf) = claims.get("nbf").filter(|v| !v.is_null()) {
        match nbf.as_u64() {
            Some(nbf) if nbf > now.saturating_add(leeway) => return Err(AuthError::NotYetValid),
            Some(_) => {}
            None => return Err(AuthError::BadClaim("nbf")),
        }
    }
    identity_from_claims(claims)
}

fn identity_from_claims(claims: Value) -> Result<Identity, AuthError> {
    let Value::Object(map) = &claims else {
        return Err(AuthError::Malformed);
    };
    // jsonwebtoken reads exp and nbf as unsigned integers; a float that happens to parse is
    // refused here too, so every accepted exp is an integer NumericDate.
    for claim in ["exp", "nbf", "iat"] {
        if let Some(value) = map.get(claim) {
            if !value.is_u64() {
                return Err(AuthError::BadClaim(claim));
            }
        }
    }
    let subject = match map.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        Some(_) => return Err(AuthError::BadClaim("sub")),
        None => return Err(AuthError::MissingClaim("sub")),
    };
    let scopes = match map.get("scope") {
        None => Vec::new(),
        Some(Value::String(s)) => parse_scopes(s),
        Some(_) => return Err(AuthError::BadClaim("scope")),
    };
    match map.get("jti") {
        None => {}
        Some(Value::String(s)) if valid_jti(s) => {}
        Some(_) => return Err(AuthError::BadClaim("jti")),
    }
    let tenant = match map.get("tenant") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(TenantId::parse(s).ok_or(AuthError::BadClaim("tenant"))?),
        Some(_) => return Err(AuthError::BadClaim("tenant")),
    };
    let identity = Identity {
        tenant,
        subject,
        scopes,
        claims,
    };
    if identity.tenant.is_none() && !identity.has_scope("admin") {
        return Err(AuthError::NoTenant);
    }
    Ok(identity)
}

/// What a JWT verification key may vouch for: a key of one tenant's identity provider issues
/// tokens for that tenant only, and only a key registered for it issues tokens with scope
/// `admin` (without a tenant, such a token administers every tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyBinding {
    /// The only tenant the key's tokens may name; `None`: any tenant.
    pub tenant: Option<TenantId>,
    /// Whether the key's tokens may carry scope `admin`.
    pub admin: bool,
}

impl KeyBinding {
    /// Refuses a verified identity that the key which signed it may not vouch for.
    pub fn check(&self, identity: &Identity) -> Result<(), AuthError> {
        if let Some(tenant) = self.tenant {
            if identity.tenant != Some(tenant) {
                return Err(AuthError::TenantNotAllowed);
            }
        }
        if identity.has_scope("admin") && !self.admin {
            return Err(AuthError::AdminNotAllowed);
        }
        Ok(())
    }
}

/// Space-separated, as OAuth's `scope`; duplicates dropped, order kept.
pub fn parse_scopes(s: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    s.split(' ')
        .filter(|x| !x.is_empty() && seen.insert(*x))
        .map(str::to_owned)
        .collect()
}

/// Only the canonical hyphenated form: tokens are compared as written by their issuer.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    // One spelling per id: hyphenated lower-case hex, as PostgreSQL prints a uuid.
    if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(s).ok().map(|u| *u.as_bytes())
}

/// A Sealstore API key: an id (stored in the clear, to find the key) and a 256-bit secret, of
/// which only a keyed hash is stored.
#[derive(PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    secret: [u8; 32],
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}, <redacted>)", self.id)
    }
}

impl Drop for ApiKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl ApiKey {
    pub fn generate() -> Result<(Self, zeroize::Zeroizing<String>), CryptoError> {
        let id = ApiKeyId::from_bytes(*crypto::random_bytes::<16>()?);
        let secret: [u8; 32] = *crypto::random_bytes::<32>()?;
        let text = zeroize::Zeroizing::new(format!(
            "{API_KEY_PREFIX}{}_{}",
            hex::encode(id.as_bytes()),
            hex::encode(secret)
        ));
        Ok((Self { id, secret }, text))
    }

    pub fn parse(token: &str) -> Result<Self, AuthError> {
        let rest = token
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(AuthError::Malformed)?;
        let (id, secret) = rest.split_once('_').ok_or(AuthError::Malformed)?;
        // Lower-case hex only: one spelling per key.
        let lower = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if id.len() != 32 || secret.len() != 64 || !lower(id) || !lower(secret) {
            return Err(AuthError::Malformed);
        }
        let mut id_bytes = [0u8; 16];
        hex::decode_to_slice(id, &mut id_bytes).map_err(|_| AuthError::Malformed)?;
        // The secret is decoded in place, into the value that wipes it when dropped.
        let mut out = Self {
            id: ApiKeyId::from_bytes(id_bytes),
            secret: [0; 32],
        };
        hex::decode_to_slice(secret, &mut out.secret).map_err(|_| AuthError::Malformed)?;
        Ok(out)
    }

    /// What is stored: HMAC-SHA256 of id and secret under the tenant's API-key hashing key.
    pub fn tag(&self, key: &crypto::DataKey) -> [u8; 32] {
        key.api_key_tag(self.id.as_bytes(), &self.secret)
    }

    /// Constant-time comparison with a stored tag.
    pub fn matches(&self, key: &crypto::DataKey, stored: &[u8]) -> bool {
        key.verify_api_key_tag(self.id.as_bytes(), &self.secret, stored)
    }
}

/// Authentication failures a gateway reports for the audit log: where from, why, how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub client: std::net::IpAddr,
    pub reason: String,
    pub count: u32,
}

/// Reports per call, and failures per report.
pub const MAX_AUTH_FAILURE_REPORTS: usize = 1000;
pub const MAX_AUTH_FAILURE_COUNT: u64 = 1_000_000;

/// Reads a gateway's report: an array of `{"client": ip, "reason": code, "count": n}`, nothing
/// else. The error names the rule broken, never the input.
pub fn parse_auth_failures(value: &Value) -> Result<Vec<AuthFailure>, &'static str> {
    const RULE: &str = "expected 1 to 1000 objects {client: IP address, reason: lower-case code \
                        of at most 40 characters, count: 1 to 1000000}, and no other keys";
    let items = value.as_array().ok_or(RULE)?;
    if items.is_empty() || items.len() > MAX_AUTH_FAILURE_REPORTS {
        return Err(RULE);
    }
    items
        .iter()
        .map(|item| {
            let map = item.as_object().ok_or(RULE)?;
            if map.len() != 3 {
                return Err(RULE);
            }
            let client = map
                .get("client")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or(RULE)?;
            let reason = map
                .get("reason")
                .and_then(Value::as_str)
                .filter(|r| {
                    (1..=40).contains(&r.len())
                        && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
                .ok_or(RULE)?
                .to_owned();
            let count = map
                .get("count")
                .and_then(Value::as_u64)
                .filter(|n| (1..=MAX_AUTH_FAILURE_COUNT).contains(n))
                .ok_or(RULE)? as u32;
            Ok(AuthFailure {
                client,
                reason,
                count,
            })
        })
        .collect()
}

/// The identity an API key stands for, from its stored row.
pub fn api_key_identity(id: &ApiKeyId, tenant: TenantId, scopes: &[String]) -> Identity {
    let id = id.to_string();
    let subject = format!("api-key:{id}");
    let claims = serde_json::json!({
        "sub": subject,
        "tenant": tenant.to_string(),
        "scope": scopes.join(" "),
        "api_key": id,
    });
    Identity {
        tenant: Some(tenant),
        subject,
        scopes: scopes.to_vec(),
        claims,
    }
}

#[cfg(test)]
mod tests;
