use super::*;

fn dead_pool() -> Pool {
    // Nothing listens on port 1: a refresh fails at once.
    let pg: tokio_postgres::Config = "postgres://x:y@127.0.0.1:1/db".parse().unwrap();
    let mgr = deadpool_postgres::Manager::new(pg, tokio_postgres::NoTls);
    Pool::builder(mgr).max_size(1).build().unwrap()
}

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn unsigned(header: serde_json::Value, claims: serde_json::Value) -> String {
    format!("{}.{}.c2ln", b64(&header), b64(&claims))
}

fn verifier_with(config: serde_json::Value) -> Verifier {
    let v = Verifier::new();
    *v.keys.write().unwrap() = Arc::new(parse_config(&config, config.to_string()));
    v
}

#[tokio::test]
async fn local_checks_refuse_without_the_database() {
    let v = verifier_with(serde_json::json!({
        "keys": [{"kid": "hs", "algorithm": "HS256", "public_key": null}],
        "leeway_secs": 5
    }));
    let pool = dead_pool();
    let now = now_unix();
    let claims = serde_json::json!({"sub": "a", "tenant": "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f", "exp": now + 60});
    let good = unsigned(
        serde_json::json!({"alg": "HS256", "kid": "hs"}),
        claims.clone(),
    );
    assert_eq!(
        v.check(&good, &pool).await,
        Ok(Principal::Unverified(token_hash(&good)))
    );
    let cases = [
        ("", "too_large"),
        ("x", "malformed"),
        ("sst_nothex", "malformed"),
        (
            &unsigned(serde_json::json!({"alg": "HS256"}), claims.clone()),
            "missing_kid",
        ),
        (
            &unsigned(
                serde_json::json!({"alg": "HS256", "kid": "other"}),
                claims.clone(),
            ),
            "unknown_key",
        ),
        (
            &unsigned(
                serde_json::json!({"alg": "RS256", "kid": "hs"}),
                claims.clone(),
            ),
            "algorithm_not_allowed",
        ),
        (
            &unsigned(
                serde_json::json!({"alg": "HS256", "kid": "hs"}),
                serde_json::json!({"sub": "a", "tenant": "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f", "exp": now - 60}),
            ),
            "expired",
        ),
        (
            &unsigned(
                serde_json::json!({"alg": "HS256", "kid": "hs"}),
                serde_json::json!({"sub": "a", "exp": now + 60}),
            ),
            "no_tenant",
        ),
    ];
    for (token, reason) in cases {
        assert_eq!(v.check(token, &pool).await, Err(reason), "{reason}");
    }
}

#[tokio::test]
async fn database_verdicts_are_remembered_by_hash() {
    let v = verifier_with(serde_json::json!({"keys": []}));
    let pool = dead_pool();
    let key = "sst_0123456789abcdef0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert!(matches!(
        v.check(key, &pool).await,
        Ok(Principal::Unverified(_))
    ));
    v.rejected(key, "bad_api_key");
    assert_eq!(v.check(key, &pool).await, Err("bad_api_key"));
    v.accepted(key, "api-key:x");
    assert_eq!(
        v.check(key, &pool).await,
        Ok(Principal::Verified("api-key:x".into()))
    );
    // An accepted JWT stops being accepted at its exp (plus leeway), without the database.
    let old = unsigned(
        serde_json::json!({"alg": "HS256", "kid": "hs"}),
        serde_json::json!({"exp": now_unix() - 100}),
    );
    v.accepted(&old, "alice");
    assert_eq!(v.check(&old, &pool).await, Err("expired"));
}

#[test]
fn database_details_map_to_reason_codes() {
    use sealstore_core::error::Error;
    // What the extension writes in DETAIL for every refusal reads back as its code.
    for e in AuthError::all() {
        let detail = Error::from(e.clone()).detail_line();
        assert_eq!(reason_from_detail(Some(&detail)), e.code(), "{detail}");
    }
    assert_eq!(reason_from_detail(Some("bad_signature")), "bad_signature");
    // The English text alone is not read.
    assert_eq!(
        reason_from_detail(Some("JWT signature does not verify")),
        "rejected"
    );
    assert_eq!(reason_from_detail(Some("something_new: x")), "rejected");
    assert_eq!(reason_from_detail(None), "rejected");
}

#[test]
fn config_parsing_skips_what_it_cannot_use() {
    let set = parse_config(
        &serde_json::json!({
            "keys": [
                {"kid": "a", "algorithm": "HS256", "public_key": null},
                {"kid": "b", "algorithm": "XX999"},
                {"kid": "c", "algorithm": "EdDSA", "public_key": "not a pem"},
                {"algorithm": "HS256"}
            ],
            "audience": "", "issuer": "me", "leeway_secs": 999
        }),
        String::new(),
    );
    let mut kids: Vec<_> = set.keys.keys().cloned().collect();
    kids.sort();
    assert_eq!(kids, ["a", "c"]);
    assert!(set.keys["c"].public.is_none());
    assert_eq!(set.policy.audience, None);
    assert_eq!(set.policy.issuer.as_deref(), Some("me"));
    assert_eq!(set.policy.leeway_secs, auth::MAX_LEEWAY_SECS);
}
