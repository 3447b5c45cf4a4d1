//! What the fuzz targets (`tests/fuzz`, cargo-fuzz) check on arbitrary input: no parser panics,
//! and the properties below hold. Inputs the fuzzer found are kept in
//! `tests/fuzz/regressions/<target>/` and replayed through these functions by `cargo test`.
//! Keys are made at run time, once per process.

use std::sync::OnceLock;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::auth::{self, JwtAlgorithm, Policy, VerificationKey};
use crate::crypto::{self, Algorithm, DataKey, TenantId};
use crate::master_key::MasterKey;
use crate::vector;

const TENANT: TenantId = TenantId::from_bytes([7; 16]);

struct Keys {
    data: [DataKey; 2],
    master: MasterKey,
    hmac_secret: [u8; 32],
    hs256: VerificationKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let data = [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm]
            .map(|a| DataKey::from_bytes(a, 1, &crypto::random_bytes::<32>().expect("random")));
        let hmac_secret = *crypto::random_bytes::<32>().expect("random");
        Keys {
            data,
            master: MasterKey::from_bytes(*crypto::random_bytes::<32>().expect("random")),
            hmac_secret,
            hs256: VerificationKey::new(JwtAlgorithm::Hs256, &hmac_secret).expect("HS256 key"),
        }
    })
}

/// The envelope parsers: header, open (bytes and f32), key unwrap and secret open never panic
/// on any input; any input seals and opens back to itself; a one-byte change of a sealed value
/// is refused.
pub fn envelope(data: &[u8]) {
    let k = keys();
    let (context, body) = match data.split_first() {
        Some((&n, rest)) => rest.split_at(usize::from(n % 16).min(rest.len())),
        None => (&[][..], data),
    };
    let _ = crypto::parse_header(body);
    for key in &k.data {
        assert!(
            crypto::open(key, &TENANT, context, body).is_err(),
            "forged envelope opened"
        );
        let mut out = crypto::OpenedF32::default();
        let _ = crypto::open_f32_into(key, &TENANT, context, body, &mut out);
        let sealed = crypto::seal(key, &TENANT, context, body).expect("seal");
        let opened = crypto::open(key, &TENANT, context, &sealed).expect("own envelope opens");
        assert_eq!(&opened[..], body);
        let mut tampered = sealed.clone();
        let at = body.len().wrapping_mul(31) % tampered.len();
        tampered[at] ^= 1 << (body.len() % 8);
        assert!(
            crypto::open(key, &TENANT, context, &tampered).is_err(),
            "tampered envelope opened"
        );
        assert!(
            crypto::open(key, &TenantId::from_bytes([8; 16]), context, &sealed).is_err(),
            "other tenant opened it"
        );
    }
    for algorithm in [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm] {
        assert!(crypto::unwrap_key(&k.master, &TENANT, 1, algorithm, body).is_err());
    }
    assert!(crypto::open_secret(&k.master, context, body).is_err());
}

/// The vector text parser: never panics; what it accepts is a valid vector whose printed form
/// parses back to the same bits and prints the same again; the binary form round-trips too.
pub fn vector_text(data: &[u8]) {
    let _ = vector::from_binary(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(values) = vector::parse(text) else {
        return;
    };
    vector::check(&values).expect("parse returned an invalid vector");
    let printed = vector::format(&values);
    let again = vector::parse(&printed).expect("the printed form parses");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&values),
        bits(&again),
        "text round trip changed a value"
    );
    assert_eq!(vector::format(&again), printed);
    let binary = vector::from_binary(&vector::to_binary(&values)).expect("binary round trip");
    assert_eq!(bits(&values), bits(&binary));
}

/// Token parsing: classification, API keys, JWT headers and claims never panic, and the
/// gateway's unsigned precheck never refuses a token that full verification accepts. Input
/// holding a newline is read as `header JSON \n claims JSON` and signed with the run's HS256
/// key, so the claim checks behind the signature are fuzzed too.
pub fn token(data: &[u8]) {
    let k = keys();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let signed;
    let token = match text.split_once('\n') {
        Some((header, claims)) => {
            signed = sign(header, claims);
            &signed
        }
        None => text,
    };
    let _ = auth::classify(token);
    let _ = auth::ApiKey::parse(token);
    let _ = auth::unverified_exp(token);
    let _ = auth::parse_scopes(token);
    let _ = auth::parse_uuid(token);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    for policy in [
        Policy {
            audience: None,
            issuer: None,
            leeway_secs: 0,
            require_jti: false,
        },
        Policy {
            audience: Some("sealstore".into()),
            issuer: Some("issuer".into()),
            leeway_secs: 60,
            require_jti: true,
        },
    ] {
        let full = auth::verify_jwt(token, &k.hs256, &policy);
        let pre = auth::precheck_unsigned(token, JwtAlgorithm::Hs256, &policy, now);
        if let Ok(identity) = &full {
            assert!(
                pre.is_ok(),
                "precheck refused a valid token: {:?}",
                pre.err()
            );
            assert_eq!(pre.as_ref().ok(), Some(identity));
        }
    }
    if let Ok(value) = serde_json::from_str(text) {
        let _ = auth::parse_auth_failures(&value);
    }
}

/// A JWT of exactly these header and claims JSON texts, signed with the run's HS256 key.
fn sign(header: &str, claims: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys().hmac_secret).expect("key");
    mac.update(unsigned.as_bytes());
    format!("{unsigned}.{}", b64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Every input kept under tests/fuzz/regressions/<target>/ still passes its target.
    #[test]
    fn fuzz_regressions_replay() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/regressions");
        let mut replayed = 0;
        for (target, check) in [
            ("envelope", envelope as fn(&[u8])),
            ("vector_text", vector_text),
            ("token", token),
        ] {
            let dir = root.join(target);
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
            for entry in entries {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "md") {
                    continue;
                }
                check(&std::fs::read(&path).expect("readable"));
                replayed += 1;
            }
        }
        assert!(
            replayed >= 3,
            "the regression inputs are missing ({replayed})"
        );
    }

    #[test]
    fn the_properties_hold_on_hand_made_inputs() {
        envelope(b"");
        envelope(b"\x05ctx\x01\x01\x00\x00\x00\x01");
        vector_text(b"[1,2.5,-3e-7]");
        vector_text(b"[1e39]");
        token(b"{\"alg\":\"HS256\",\"kid\":\"k\"}\n{\"exp\":18446744073709551615}");
        token(b"sst_00_11");
    }

    #[test]
    fn signed_inputs_reach_the_claim_checks() {
        // The newline form yields tokens that full verification accepts, so the precheck
        // property is exercised, not vacuous.
        let header = r#"{"alg":"HS256","kid":"k"}"#;
        let claims =
            r#"{"sub":"s","exp":99999999999,"tenant":"00000000-0000-4000-8000-000000000001"}"#;
        let policy = Policy {
            audience: None,
            issuer: None,
            leeway_secs: 0,
            require_jti: false,
        };
        let identity = auth::verify_jwt(&sign(header, claims), &keys().hs256, &policy);
        assert!(identity.is_ok(), "{:?}", identity.err());
        token(format!("{header}\n{claims}").as_bytes());
    }
}
