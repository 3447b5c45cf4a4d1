use super::*;
use crate::crypto::Algorithm;

fn key(alg: Algorithm, version: u32) -> DataKey {
    DataKey::from_bytes(alg, version, &crypto::random_bytes::<32>().unwrap())
}

fn tenant() -> TenantId {
    TenantId::from_bytes(*crypto::random_bytes::<16>().unwrap())
}

#[test]
fn positions_order_by_transaction_then_id() {
    let p = |xid, id| Position { xid, id };
    assert!(p(1, 9) < p(2, 1));
    assert!(p(2, 1) < p(2, 2));
    let mut v = vec![p(3, 1), p(1, 5), p(2, 0), p(1, 2)];
    v.sort();
    assert_eq!(v, [p(1, 2), p(1, 5), p(2, 0), p(3, 1)]);
}

#[test]
fn an_event_id_opens_only_in_its_tenants_feed_under_its_key() {
    for alg in [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm] {
        let (k1, k2) = (key(alg, 1), key(alg, 2));
        let (t, other) = (tenant(), tenant());
        let pos = Position {
            xid: 7_000_000_001,
            id: 42,
        };
        let id = event_id(&k2, &t, pos).unwrap();
        assert!(id.len() <= MAX_EVENT_ID_LEN);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let by_version = |v: u32| match v {
            1 => Some(&k1),
            2 => Some(&k2),
            _ => None,
        };
        assert_eq!(position_of(&id, &t, by_version), Ok(pos));
        // Two ids of one position differ (fresh nonces): they say nothing about each other.
        assert_ne!(id, event_id(&k2, &t, pos).unwrap());
        // Another tenant, an unknown version, the wrong key.
        assert_eq!(position_of(&id, &other, by_version), Err(BadEventId));
        assert_eq!(position_of(&id, &t, |_| None), Err(BadEventId));
        assert_eq!(position_of(&id, &t, |_| Some(&k1)), Err(BadEventId));
        // Every bit flip of the sealed bytes, and every truncation.
        let sealed = URL_SAFE_NO_PAD.decode(&id).unwrap();
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut s = sealed.clone();
                s[i] ^= 1 << bit;
                let text = URL_SAFE_NO_PAD.encode(&s);
                assert_eq!(
                    position_of(&text, &t, by_version),
                    Err(BadEventId),
                    "byte {i} bit {bit}"
                );
            }
            let text = URL_SAFE_NO_PAD.encode(&sealed[..i]);
            assert_eq!(
                position_of(&text, &t, by_version),
                Err(BadEventId),
                "cut at {i}"
            );
        }
    }
}

#[test]
fn malformed_event_ids_are_refused() {
    let k = key(Algorithm::XChaCha20Poly1305, 1);
    let t = tenant();
    let long = "A".repeat(MAX_EVENT_ID_LEN + 1);
    for bad in ["", "not base64!", "AAAA", "12345", long.as_str(), "a\nb"] {
        assert_eq!(
            position_of(bad, &t, |_| Some(&k)),
            Err(BadEventId),
            "{bad:?}"
        );
    }
}
