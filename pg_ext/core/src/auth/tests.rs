use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::crypto::{random_bytes, Algorithm, DataKey};
use crate::ids::TenantId;
use crate::MasterKey;

const TENANT: &str = "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs_secret() -> Vec<u8> {
    random_bytes::<32>().unwrap().to_vec()
}

fn hs_key(secret: &[u8]) -> VerificationKey {
    VerificationKey::new(JwtAlgorithm::Hs256, secret).unwrap()
}

fn sign_hs(secret: &[u8], claims: &Value) -> String {
    let mut h = Header::new(JwtAlg::HS256);
    h.kid = Some("k1".into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret)).unwrap()
}

struct Ed {
    private_der: Vec<u8>,
    public_pem: String,
}

fn ed_pair() -> Ed {
    let sk = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>().unwrap());
    Ed {
        private_der: sk.to_pkcs8_der().unwrap().as_bytes().to_vec(),
        public_pem: sk
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
    }
}

fn sign_ed(ed: &Ed, claims: &Value) -> String {
    let mut h = Header::new(JwtAlg::EdDSA);
    h.kid = Some("ed".into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(&ed.private_der)).unwrap()
}

fn good_claims() -> Value {
    json!({"sub": "alice", "tenant": TENANT, "scope": "read write", "exp": now() + 300})
}

fn segment(v: &Value) -> String {
    b64(v.to_string().as_bytes())
}

#[test]
fn valid_hs256_and_eddsa_tokens_give_the_identity() {
    let secret = hs_secret();
    let id = verify_jwt(
        &sign_hs(&secret, &good_claims()),
        &hs_key(&secret),
        &Policy::default(),
    )
    .unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.tenant, TenantId::parse(TENANT));
    assert_eq!(id.scopes, ["read", "write"]);
    assert!(id.has_scope("write") && !id.has_scope("admin"));
    assert_eq!(id.claims["sub"], "alice");

    let ed = ed_pair();
    let key = VerificationKey::new(JwtAlgorithm::EdDsa, ed.public_pem.as_bytes()).unwrap();
    let id = verify_jwt(&sign_ed(&ed, &good_claims()), &key, &Policy::default()).unwrap();
    assert_eq!(id.subject, "alice");
}

#[test]
fn classify_reads_the_kid_and_recognises_api_keys() {
    let secret = hs_secret();
    assert_eq!(
        classify(&sign_hs(&secret, &good_claims())).unwrap(),
        Credential::Jwt { kid: "k1".into() }
    );
    let (key, text) = ApiKey::generate().unwrap();
    assert!(text.starts_with("sst_") && text.len() == 4 + 32 + 1 + 64);
    assert_eq!(classify(&text).unwrap(), Credential::ApiKey(key));
    // Debug never shows the secret.
    let parsed = ApiKey::parse(&text).unwrap();
    assert!(!format!("{parsed:?}").contains(&text[37..]));
}

/// Each hostile or broken token, with the error it must produce.
#[test]
fn bad_tokens_are_rejected_for_the_right_reason() {
    let secret = hs_secret();
    let key = hs_key(&secret);
    let p = Policy::default();
    let t = now();
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = good_claims();
        f(c.as_object_mut().unwrap());
        sign_hs(&secret, &c)
    };
    let cases: Vec<(&str, String, AuthError)> = vec![
        (
            "expired",
            with(&|c| {
                c.insert("exp".into(), json!(t - 100));
            }),
            AuthError::Expired,
        ),
        (
            "nbf in the future",
            with(&|c| {
                c.insert("nbf".into(), json!(t + 100));
            }),
            AuthError::NotYetValid,
        ),
        (
            "missing exp",
            with(&|c| {
                c.remove("exp");
            }),
            AuthError::MissingClaim("exp"),
        ),
        (
            "string exp",
            with(&|c| {
                c.insert("exp".into(), json!((t + 300).to_string()));
            }),
            AuthError::BadClaim("exp"),
        ),
        (
            "string nbf",
            with(&|c| {
                c.insert("nbf".into(), json!((t - 10).to_string()));
            }),
            AuthError::BadClaim("nbf"),
        ),
        (
            "float exp",
            with(&|c| {
                c.insert("exp".into(), json!((t + 300) as f64 + 0.5));
            }),
            AuthError::BadClaim("exp"),
        ),
        (
            "negative exp",
            with(&|c| {
                c.insert("exp".into(), json!(-1));
            }),
            AuthError::BadClaim("exp"),
        ),
        (
            "tenant not a uuid",
            with(&|c| {
                c.insert("tenant".into(), json!("acme"));
            }),
            AuthError::BadClaim("tenant"),
        ),
        (
            "tenant a number",
            with(&|c| {
                c.insert("tenant".into(), json!(7));
            }),
            AuthError::BadClaim("tenant"),
        ),
        (
            "no tenant, no admin scope",
            with(&|c| {
                c.remove("tenant");
            }),
            AuthError::NoTenant,
        ),
        (
            "scope not a string",
            with(&|c| {
                c.insert("scope".into(), json!(["read"]));
            }),
            AuthError::BadClaim("scope"),
        ),
        (
            "no sub",
            with(&|c| {
                c.remove("sub");
            }),
            AuthError::MissingClaim("sub"),
        ),
        (
            "signed with another secret",
            sign_hs(&hs_secret(), &good_claims()),
            AuthError::BadSignature,
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(verify_jwt(&token, &key, &p), Err(want), "{name}");
    }

    // A flipped signature character.
    let good = sign_hs(&secret, &good_claims());
    let mut bad = good.clone().into_bytes();
    let last = bad.len() - 2;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verify_jwt(std::str::from_utf8(&bad).unwrap(), &key, &p),
        Err(AuthError::BadSignature)
    );
    // A changed payload under the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = good_claims();
    c["tenant"] = json!("00000000-0000-4000-8000-000000000000");
    let forged = format!("{}.{}.{}", parts[0], segment(&c), parts[2]);
    assert_eq!(verify_jwt(&forged, &key, &p), Err(AuthError::BadSignature));
}

#[test]
fn admin_tokens_need_no_tenant() {
    let secret = hs_secret();
    let token = sign_hs(
        &secret,
        &json!({"sub": "ops", "scope": "admin", "exp": now() + 60}),
    );
    let id = verify_jwt(&token, &hs_key(&secret), &Policy::default()).unwrap();
    assert_eq!(id.tenant, None);
    assert!(id.has_scope("admin"));
}

#[test]
fn leeway_is_honoured_and_capped_at_30_seconds() {
    let secret = hs_secret();
    let key = hs_key(&secret);
    let exp = |d: i64| {
        sign_hs(
            &secret,
            &json!({"sub": "a", "tenant": TENANT, "exp": now() + d}),
        )
    };
    let leeway = |s| Policy {
        leeway_secs: s,
        ..Policy::default()
    };
    assert!(verify_jwt(&exp(-10), &key, &leeway(20)).is_ok());
    assert_eq!(
        verify_jwt(&exp(-10), &key, &leeway(0)),
        Err(AuthError::Expired)
    );
    assert_eq!(
        verify_jwt(&exp(-60), &key, &leeway(3600)),
        Err(AuthError::Expired)
    );
}

#[test]
fn a_jti_is_read_checked_and_required_when_configured() {
    let secret = hs_secret();
    let key = hs_key(&secret);
    let with = |jti: Value| {
        let mut c = good_claims();
        c["jti"] = jti;
        sign_hs(&secret, &c)
    };
    let open = Policy::default();
    let strict = Policy {
        require_jti: true,
        ..Policy::default()
    };
    let id = verify_jwt(&with(json!("session-1")), &key, &strict).unwrap();
    assert_eq!(id.jti(), Some("session-1"));
    let plain = sign_hs(&secret, &good_claims());
    assert_eq!(verify_jwt(&plain, &key, &open).unwrap().jti(), None);
    assert_eq!(
        verify_jwt(&plain, &key, &strict),
        Err(AuthError::MissingClaim("jti"))
    );
    for bad in [
        json!(""),
        json!(7),
        json!(null),
        json!("x".repeat(MAX_JTI_LEN + 1)),
    ] {
        assert_eq!(
            verify_jwt(&with(bad.clone()), &key, &open),
            Err(AuthError::BadClaim("jti")),
            "{bad}"
        );
    }
    assert!(verify_jwt(&with(json!("x".repeat(MAX_JTI_LEN))), &key, &open).is_ok());
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let secret = hs_secret();
    let key = hs_key(&secret);
    let p = Policy {
        audience: Some("sealstore".into()),
        issuer: Some("https://idp.example".into()),
        leeway_secs: 0,
        ..Policy::default()
    };
    let token = |aud: Option<&str>, iss: Option<&str>| {
        let mut c = good_claims();
        if let Some(a) = aud {
            c["aud"] = json!(a);
        }
        if let Some(i) = iss {
            c["iss"] = json!(i);
        }
        sign_hs(&secret, &c)
    };
    assert!(verify_jwt(
        &token(Some("sealstore"), Some("https://idp.example")),
        &key,
        &p
    )
    .is_ok());
    assert_eq!(
        verify_jwt(&token(Some("other"), Some("https://idp.example")), &key, &p),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(
        verify_jwt(&token(None, Some("https://idp.example")), &key, &p),
        Err(AuthError::MissingClaim("aud"))
    );
    assert_eq!(
        verify_jwt(
            &token(Some("sealstore"), Some("https://evil.example")),
            &key,
            &p
        ),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        verify_jwt(&token(Some("sealstore"), None), &key, &p),
        Err(AuthError::MissingClaim("iss"))
    );
}

#[test]
fn algorithm_confusion_is_refused() {
    // HS256 "signed" with the EdDSA key's public PEM as the HMAC secret, presented under the
    // EdDSA key's kid: the key allows EdDSA only.
    let ed = ed_pair();
    let key = VerificationKey::new(JwtAlgorithm::EdDsa, ed.public_pem.as_bytes()).unwrap();
    let forged = sign_hs(ed.public_pem.as_bytes(), &good_claims());
    assert_eq!(
        verify_jwt(&forged, &key, &Policy::default()),
        Err(AuthError::AlgorithmNotAllowed)
    );
    // And the other way: an EdDSA token under an HS256 key.
    let secret = hs_secret();
    assert_eq!(
        verify_jwt(
            &sign_ed(&ed, &good_claims()),
            &hs_key(&secret),
            &Policy::default()
        ),
        Err(AuthError::AlgorithmNotAllowed)
    );
    // alg "none", unsigned.
    let none = format!(
        "{}.{}.",
        segment(&json!({"alg": "none", "kid": "k1"})),
        segment(&good_claims())
    );
    assert!(classify(&none).is_err());
    assert!(verify_jwt(&none, &hs_key(&secret), &Policy::default()).is_err());
}

#[test]
fn malformed_credentials_are_refused_before_any_key_lookup() {
    let secret = hs_secret();
    let good = sign_hs(&secret, &good_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        ("", AuthError::TooLarge),
        (&*"a".repeat(MAX_TOKEN_LEN + 1), AuthError::TooLarge),
        ("abc", AuthError::Malformed),
        (&*format!("{}.{}", parts[0], parts[1]), AuthError::Malformed),
        (&*format!("{good}.x"), AuthError::Malformed),
        (
            &*format!("!!!.{}.{}", parts[1], parts[2]),
            AuthError::Malformed,
        ),
        (
            &*format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
            AuthError::Malformed,
        ),
        (
            &*format!(
                "{}.{}.{}",
                segment(&json!({"alg": "HS256"})),
                parts[1],
                parts[2]
            ),
            AuthError::MissingKid,
        ),
        (
            &*format!(
                "{}.{}.{}",
                segment(&json!({"alg": "HS256", "kid": ""})),
                parts[1],
                parts[2]
            ),
            AuthError::UnknownKey,
        ),
        ("sst_", AuthError::Malformed),
        ("sst_abc_def", AuthError::Malformed),
    ];
    for (token, want) in cases {
        assert_eq!(classify(token).err(), Some(want), "{token:.40}");
    }
}

#[test]
fn api_keys_parse_strictly_and_verify_in_constant_time() {
    let dk = DataKey::from_bytes(Algorithm::XChaCha20Poly1305, 1, &random_bytes().unwrap());
    let other = DataKey::from_bytes(Algorithm::XChaCha20Poly1305, 1, &random_bytes().unwrap());
    let (key, text) = ApiKey::generate().unwrap();
    let tag = key.tag(&dk);
    let parsed = ApiKey::parse(&text).unwrap();
    assert!(parsed.matches(&dk, &tag));
    assert!(
        !parsed.matches(&other, &tag),
        "tag under another tenant's key"
    );
    assert!(!parsed.matches(&dk, &tag[..31]), "truncated tag");
    // Same id, different secret.
    let mut wrong = text.to_string();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    assert!(!ApiKey::parse(&wrong).unwrap().matches(&dk, &tag));
    // One spelling only.
    assert_eq!(
        ApiKey::parse(&text.to_uppercase().replacen("SST_", "sst_", 1)),
        Err(AuthError::Malformed)
    );
    assert_eq!(
        ApiKey::parse(&format!("{}0", &*text)),
        Err(AuthError::Malformed)
    );
    assert_eq!(
        ApiKey::parse(&text[..text.len() - 1]),
        Err(AuthError::Malformed)
    );
    let (a, _) = ApiKey::generate().unwrap();
    let (b, _) = ApiKey::generate().unwrap();
    assert_ne!(a.id, b.id);
}

#[test]
fn verification_keys_are_validated_when_added() {
    assert_eq!(
        VerificationKey::new(JwtAlgorithm::Hs256, &[7u8; 31]).err(),
        Some(KeyError::WeakSecret)
    );
    assert_eq!(
        JwtAlgorithm::from_name("none"),
        Err(KeyError::UnknownAlgorithm)
    );
    assert_eq!(
        JwtAlgorithm::from_name("hs256"),
        Err(KeyError::UnknownAlgorithm)
    );
    let ed = ed_pair();
    // A private key is refused, and so is a public key for the wrong algorithm.
    let sk = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>().unwrap());
    let private_pem = sk.to_pkcs8_pem(Default::default()).unwrap();
    assert_eq!(
        VerificationKey::new(JwtAlgorithm::EdDsa, private_pem.as_bytes()).err(),
        Some(KeyError::BadPublicKey)
    );
    assert_eq!(
        VerificationKey::new(JwtAlgorithm::Es256, ed.public_pem.as_bytes()).err(),
        Some(KeyError::BadPublicKey)
    );
    assert_eq!(
        VerificationKey::new(JwtAlgorithm::Rs256, ed.public_pem.as_bytes()).err(),
        Some(KeyError::BadPublicKey)
    );
    assert_eq!(
        VerificationKey::new(
            JwtAlgorithm::EdDsa,
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
        )
        .err(),
        Some(KeyError::BadPublicKey)
    );
    assert!(check_kid("main-2026").is_ok());
    assert!(
        check_kid("").is_err() && check_kid("a b").is_err() && check_kid(&"k".repeat(201)).is_err()
    );
    assert!(!format!("{:?}", hs_key(&hs_secret())).contains("secret"));
}

#[test]
fn sealed_secrets_are_bound_to_master_key_and_purpose() {
    let m1 = MasterKey::from_bytes(*random_bytes::<32>().unwrap());
    let m2 = MasterKey::from_bytes(*random_bytes::<32>().unwrap());
    let secret = hs_secret();
    let sealed = crypto::seal_secret(&m1, b"jwt:k1:HS256", &secret).unwrap();
    assert!(!sealed.windows(secret.len()).any(|w| w == secret));
    assert_eq!(
        &*crypto::open_secret(&m1, b"jwt:k1:HS256", &sealed).unwrap(),
        &secret
    );
    assert!(crypto::open_secret(&m2, b"jwt:k1:HS256", &sealed).is_err());
    assert!(crypto::open_secret(&m1, b"jwt:k2:HS256", &sealed).is_err());
    let mut tampered = sealed.clone();
    tampered[30] ^= 1;
    assert!(crypto::open_secret(&m1, b"jwt:k1:HS256", &tampered).is_err());
    assert!(crypto::open_secret(&m1, b"jwt:k1:HS256", &sealed[..20]).is_err());
}

#[test]
fn precheck_is_never_stricter_than_verification_and_agrees_on_claims() {
    let secret = hs_secret();
    let key = hs_key(&secret);
    let t = now();
    let mut tokens = vec![sign_hs(&secret, &good_claims())];
    // exp and nbf around the leeway edges, odd claim types, missing and extra claims.
    for d in [-40i64, -31, -30, -29, -5, -1, 0, 1, 5, 29, 30, 31, 40] {
        for field in ["exp", "nbf"] {
            let mut c = good_claims();
            c[field] = json!(t + d);
            tokens.push(sign_hs(&secret, &c));
        }
    }
    // For these the two must also give the same reason; for odd types only both must refuse.
    let same_reason = tokens.len();
    for (field, value) in [
        ("exp", json!("soon")),
        ("exp", json!(1.5)),
        ("exp", json!(-1)),
        ("exp", Value::Null),
        ("nbf", json!("x")),
        ("sub", json!(7)),
        ("sub", json!("")),
        ("tenant", json!("not-a-uuid")),
        ("tenant", Value::Null),
        ("scope", json!(["read"])),
    ] {
        let mut c = good_claims();
        c[field] = value;
        tokens.push(sign_hs(&secret, &c));
    }
    let mut no_sub = good_claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    tokens.push(sign_hs(&secret, &no_sub));
    // verify_jwt reads the clock itself: a comparison is only valid within one second.
    for attempt in 0.. {
        let before = now();
        let mut mismatches = Vec::new();
        for leeway in [0, 5, 30] {
            let p = Policy {
                leeway_secs: leeway,
                ..Policy::default()
            };
            for (i, token) in tokens.iter().enumerate() {
                let full = verify_jwt(token, &key, &p);
                let pre = precheck_unsigned(token, JwtAlgorithm::Hs256, &p, before as u64);
                let agree = match (&pre, &full) {
                    (Ok(a), Ok(b)) => a == b,
                    (Err(a), Err(b)) => i >= same_reason || a == b,
                    _ => false,
                };
                if !agree {
                    mismatches.push(format!("token {i}, leeway {leeway}: {pre:?} vs {full:?}"));
                }
            }
        }
        if now() == before || attempt == 5 {
            assert!(mismatches.is_empty(), "{mismatches:#?}");
            break;
        }
    }
}

#[test]
fn precheck_says_nothing_about_signatures_but_checks_the_algorithm() {
    let p = Policy::default();
    let t = now() as u64;
    // Signed with another secret: the precheck passes it (the database refuses it).
    let other = sign_hs(&hs_secret(), &good_claims());
    assert!(precheck_unsigned(&other, JwtAlgorithm::Hs256, &p, t).is_ok());
    assert_eq!(
        verify_jwt(&other, &hs_key(&hs_secret()), &p).unwrap_err(),
        AuthError::BadSignature
    );
    // An HS256 token for a key configured as EdDSA, and the reverse.
    assert_eq!(
        precheck_unsigned(&other, JwtAlgorithm::EdDsa, &p, t).unwrap_err(),
        AuthError::AlgorithmNotAllowed
    );
    let ed = sign_ed(&ed_pair(), &good_claims());
    assert_eq!(
        precheck_unsigned(&ed, JwtAlgorithm::Hs256, &p, t).unwrap_err(),
        AuthError::AlgorithmNotAllowed
    );
    for junk in ["", "a.b.c", "x", "..."] {
        assert!(precheck_unsigned(junk, JwtAlgorithm::Hs256, &p, t).is_err());
    }
}

#[test]
fn every_rejection_has_a_short_code() {
    let all = AuthError::all();
    // One code per kind of rejection (the claim variants share theirs).
    let codes: HashSet<&str> = all.iter().map(AuthError::code).collect();
    assert_eq!(codes.len(), 18);
    assert!(codes
        .iter()
        .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn unverified_exp_reads_the_claim_only() {
    let token = sign_hs(&hs_secret(), &good_claims());
    assert_eq!(unverified_exp(&token), good_claims()["exp"].as_u64());
    let mut no_exp = good_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(unverified_exp(&sign_hs(&hs_secret(), &no_exp)), None);
    assert_eq!(unverified_exp("not.a.jwt"), None);
}

#[test]
fn auth_failure_reports_are_strict() {
    let ok = json!([
        {"client": "127.0.0.1", "reason": "bad_signature", "count": 3},
        {"client": "::1", "reason": "malformed", "count": 1}
    ]);
    let parsed = parse_auth_failures(&ok).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].client.to_string(), "127.0.0.1");
    assert_eq!(parsed[1].count, 1);
    let one = |v: Value| json!([v]);
    for bad in [
        json!([]),
        json!({"client": "127.0.0.1", "reason": "x", "count": 1}),
        json!(null),
        one(json!({"client": "localhost", "reason": "x", "count": 1})),
        one(json!({"client": "127.0.0.1", "reason": "Bad Reason", "count": 1})),
        one(json!({"client": "127.0.0.1", "reason": "", "count": 1})),
        one(json!({"client": "127.0.0.1", "reason": "a".repeat(41), "count": 1})),
        one(json!({"client": "127.0.0.1", "reason": "x", "count": 0})),
        one(json!({"client": "127.0.0.1", "reason": "x", "count": 1_000_001})),
        one(json!({"client": "127.0.0.1", "reason": "x", "count": -1})),
        one(json!({"client": "127.0.0.1", "reason": "x", "count": 1, "token": "t"})),
        one(json!({"client": "127.0.0.1", "reason": "x"})),
        one(json!("127.0.0.1")),
        Value::Array(vec![
            json!({"client": "127.0.0.1", "reason": "x", "count": 1});
            1001
        ]),
    ] {
        assert!(parse_auth_failures(&bad).is_err(), "{bad}");
    }
}

#[test]
fn a_tenant_claim_is_only_accepted_in_its_canonical_spelling() {
    let secret = hs_secret();
    let upper =
        json!({"sub": "a", "tenant": TENANT.to_uppercase(), "scope": "read", "exp": now() + 300});
    let braced =
        json!({"sub": "a", "tenant": format!("{{{TENANT}}}"), "scope": "read", "exp": now() + 300});
    let simple =
        json!({"sub": "a", "tenant": TENANT.replace('-', ""), "scope": "read", "exp": now() + 300});
    for claims in [upper, braced, simple] {
        assert_eq!(
            verify_jwt(
                &sign_hs(&secret, &claims),
                &hs_key(&secret),
                &Policy::default()
            ),
            Err(AuthError::BadClaim("tenant")),
            "{claims}"
        );
    }
    assert!(TenantId::parse(TENANT).is_some());
}

#[test]
fn a_key_binding_limits_the_tenant_and_the_admin_scope_its_tokens_may_carry() {
    let secret = hs_secret();
    let identity = |claims: Value| {
        verify_jwt(
            &sign_hs(&secret, &claims),
            &hs_key(&secret),
            &Policy::default(),
        )
        .unwrap()
    };
    let tenant = TenantId::parse(TENANT).unwrap();
    let other = "0b1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f";
    let user = identity(good_claims());
    let other_user =
        identity(json!({"sub": "m", "tenant": other, "scope": "read", "exp": now() + 300}));
    let tenant_admin =
        identity(json!({"sub": "t", "tenant": TENANT, "scope": "admin", "exp": now() + 300}));
    let global_admin = identity(json!({"sub": "g", "scope": "admin", "exp": now() + 300}));

    let any = KeyBinding::default();
    assert_eq!(any.check(&user), Ok(()));
    assert_eq!(any.check(&other_user), Ok(()));
    assert_eq!(any.check(&tenant_admin), Err(AuthError::AdminNotAllowed));
    assert_eq!(any.check(&global_admin), Err(AuthError::AdminNotAllowed));

    let admin = KeyBinding {
        tenant: None,
        admin: true,
    };
    for id in [&user, &other_user, &tenant_admin, &global_admin] {
        assert_eq!(admin.check(id), Ok(()));
    }

    let one = KeyBinding {
        tenant: Some(tenant),
        admin: false,
    };
    assert_eq!(one.check(&user), Ok(()));
    assert_eq!(one.check(&other_user), Err(AuthError::TenantNotAllowed));
    assert_eq!(one.check(&global_admin), Err(AuthError::TenantNotAllowed));
    assert_eq!(one.check(&tenant_admin), Err(AuthError::AdminNotAllowed));

    let one_admin = KeyBinding {
        tenant: Some(tenant),
        admin: true,
    };
    assert_eq!(one_admin.check(&tenant_admin), Ok(()));
    // Never a global admin token from a tenant's key, even one that may issue admin tokens.
    assert_eq!(
        one_admin.check(&global_admin),
        Err(AuthError::TenantNotAllowed)
    );
    assert_eq!(
        one_admin.check(&other_user),
        Err(AuthError::TenantNotAllowed)
    );
}
