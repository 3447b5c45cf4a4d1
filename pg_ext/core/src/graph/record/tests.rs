//! The node records (`record.rs`): their plaintext layout, and sealing bound to a place.

use crate::crypto::{self, Algorithm, DataKey};
use crate::graph::record::{self, Element, ItemId, Kind, Place, RecordError};
use crate::graph::Params;
use crate::ids::TenantId;

#[test]
fn records_round_trip_and_malformed_ones_are_refused() {
    let p = Params::default();
    let e = Element {
        level: 2,
        heap: ItemId {
            block: 70_000,
            offset: 12,
        },
        vector: vec![1.5, -2.0, f32::MIN_POSITIVE],
    };
    let bytes = record::encode_element(&e).unwrap();
    assert_eq!(bytes.len(), record::element_len(3));
    assert_eq!(record::decode_element(&bytes).unwrap(), e);
    assert_eq!(
        record::decode_element(&bytes[..bytes.len() - 1]),
        Err(RecordError::Length)
    );
    assert_eq!(
        record::decode_element(&bytes[..4]),
        Err(RecordError::Length)
    );
    let mut wrong = bytes.to_vec();
    wrong[0] = 9;
    assert_eq!(record::decode_element(&wrong), Err(RecordError::Format));
    let mut high = bytes.to_vec();
    high[1] = 16;
    assert_eq!(
        record::decode_element(&high),
        Err(RecordError::Inconsistent)
    );

    let lists = vec![
        (1..=32)
            .map(|i| ItemId {
                block: i,
                offset: 1,
            })
            .collect::<Vec<_>>(),
        vec![ItemId {
            block: 9,
            offset: 3,
        }],
        vec![],
    ];
    let bytes = record::encode_neighbours(&p, &lists).unwrap();
    assert_eq!(bytes.len(), record::neighbours_len(&p, 2));
    assert_eq!(record::decode_neighbours(&p, &bytes).unwrap(), lists);
    // A count above the level's slots, a wrong length, too many levels.
    let mut over = bytes.to_vec();
    over[2..4].copy_from_slice(&33u16.to_le_bytes());
    assert_eq!(
        record::decode_neighbours(&p, &over),
        Err(RecordError::Inconsistent)
    );
    assert_eq!(
        record::decode_neighbours(&p, &bytes[..bytes.len() - 6]),
        Err(RecordError::Length)
    );
    let mut levels = bytes.to_vec();
    levels[1] = 17;
    assert_eq!(
        record::decode_neighbours(&p, &levels),
        Err(RecordError::Inconsistent)
    );
    let too_long = vec![(0..33)
        .map(|i| ItemId {
            block: i,
            offset: 1,
        })
        .collect::<Vec<_>>()];
    assert_eq!(
        record::encode_neighbours(&p, &too_long).err(),
        Some(RecordError::Inconsistent)
    );
}

fn key(algorithm: Algorithm, version: u32) -> DataKey {
    DataKey::from_bytes(algorithm, version, &crypto::random_bytes::<32>().unwrap())
}

#[test]
fn sealed_records_open_only_where_they_were_sealed() {
    for algorithm in [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm] {
        let k = key(algorithm, 3);
        let other_key = key(algorithm, 3);
        let tenant = TenantId::from_bytes([1; 16]);
        let index = crypto::random_bytes::<16>().unwrap();
        let place = Place {
            index: *index,
            at: ItemId {
                block: 4,
                offset: 2,
            },
            kind: Kind::Element,
        };
        let e = Element {
            level: 0,
            heap: ItemId {
                block: 1,
                offset: 1,
            },
            vector: vec![0.25; 8],
        };
        let plain = record::encode_element(&e).unwrap();
        let sealed = record::seal(&k, &tenant, &place, &plain).unwrap();
        assert_eq!(sealed.len(), record::sealed_len(&k, plain.len()));
        // No plaintext float survives in the sealed bytes.
        assert!(!sealed.windows(4).any(|w| w == 0.25f32.to_le_bytes()));
        let opens = |key: &DataKey, tenant: &TenantId, place: &Place, bytes: &[u8]| {
            record::open(|v| (v == 3).then_some(key), tenant, place, bytes)
        };
        assert_eq!(*opens(&k, &tenant, &place, &sealed).unwrap(), *plain);

        let moved = [
            Place {
                at: ItemId {
                    block: 5,
                    offset: 2,
                },
                ..place
            },
            Place {
                at: ItemId {
                    block: 4,
                    offset: 3,
                },
                ..place
            },
            Place {
                kind: Kind::Neighbours,
                ..place
            },
            Place {
                index: [0; 16],
                ..place
            },
        ];
        for p in &moved {
            assert!(opens(&k, &tenant, p, &sealed).is_err(), "opened at {p:?}");
        }
        assert!(opens(&k, &TenantId::from_bytes([2; 16]), &place, &sealed).is_err());
        assert!(opens(&other_key, &tenant, &place, &sealed).is_err());
        // A shredded key version: nothing to open with.
        assert!(record::open(|_| None, &tenant, &place, &sealed).is_err());
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x01;
            assert!(
                opens(&k, &tenant, &place, &flipped).is_err(),
                "bit flip at {i} opened"
            );
        }
        assert!(opens(&k, &tenant, &place, &sealed[..sealed.len() - 1]).is_err());
        assert!(opens(&k, &tenant, &place, &[]).is_err());
        // Two seals of one record differ (fresh nonces).
        assert_ne!(sealed, record::seal(&k, &tenant, &place, &plain).unwrap());
    }
}

#[test]
fn sealed_nodes_hide_vectors_and_lists_and_open_only_at_their_place() {
    let p = Params::default();
    for algorithm in [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm] {
        let k = key(algorithm, 2);
        let tenant = TenantId::from_bytes([7; 16]);
        let node = ItemId {
            block: 9,
            offset: 3,
        };
        let at = |kind| Place {
            index: [5; 16],
            at: node,
            kind,
        };
        let e = Element {
            level: 1,
            heap: ItemId {
                block: 77,
                offset: 4,
            },
            vector: vec![0.75, -1.5, 3.0625, 0.75],
        };
        let sealed = record::seal_element(&k, &tenant, &at(Kind::Element), &e).unwrap();
        assert_eq!(sealed.len(), record::sealed_element_len(algorithm, 4));
        for x in &e.vector {
            assert!(!sealed.windows(4).any(|w| w == x.to_le_bytes()));
        }
        // The head is readable without the key (VACUUM needs the heap row); the vector is not.
        assert_eq!(record::element_head(&sealed).unwrap(), (1, e.heap));
        assert!(record::element_parts(&sealed).is_err());
        assert_eq!(record::sealed_version(&sealed, Kind::Element).unwrap(), 2);
        let opens = |place: &Place, tenant: &TenantId, bytes: &[u8]| {
            let mut out = crypto::OpenedF32::default();
            record::open_element_into(|v| (v == 2).then_some(&k), tenant, place, bytes, &mut out)
                .map(|()| out.as_slice().to_vec())
        };
        assert_eq!(
            opens(&at(Kind::Element), &tenant, &sealed).unwrap(),
            e.vector
        );
        assert!(opens(&at(Kind::Neighbours), &tenant, &sealed).is_err());
        assert!(opens(&at(Kind::Element), &TenantId::from_bytes([8; 16]), &sealed).is_err());
        let elsewhere = Place {
            at: ItemId {
                block: 9,
                offset: 5,
            },
            ..at(Kind::Element)
        };
        assert!(opens(&elsewhere, &tenant, &sealed).is_err());
        // The readable head is bound too: another level or heap row does not open.
        for i in 1..8 {
            let mut changed = sealed.clone();
            changed[i] ^= 0x01;
            assert!(
                opens(&at(Kind::Element), &tenant, &changed).is_err(),
                "head byte {i} changed and opened"
            );
        }
        assert!(opens(&at(Kind::Element), &tenant, &sealed[..sealed.len() - 1]).is_err());
        let mut out = crypto::OpenedF32::default();
        assert!(record::open_element_into(
            |_| None,
            &tenant,
            &at(Kind::Element),
            &sealed,
            &mut out
        )
        .is_err());
        // A plaintext element is not taken for a sealed one.
        let plain = record::encode_element(&e).unwrap();
        assert!(opens(&at(Kind::Element), &tenant, &plain).is_err());

        let lists = vec![
            vec![ItemId {
                block: 0x0102_0304,
                offset: 0x0506,
            }],
            vec![],
        ];
        let sealed =
            record::seal_neighbours(&k, &tenant, &at(Kind::Neighbours), &p, &lists).unwrap();
        assert_eq!(
            sealed.len(),
            record::sealed_neighbours_len(algorithm, &p, 1)
        );
        assert!(!sealed.windows(4).any(|w| w == 0x0102_0304u32.to_le_bytes()));
        let open_lists = |place: &Place, bytes: &[u8]| {
            record::open_neighbours(|v| (v == 2).then_some(&k), &tenant, place, &p, bytes)
        };
        assert_eq!(open_lists(&at(Kind::Neighbours), &sealed).unwrap(), lists);
        assert!(open_lists(&at(Kind::Element), &sealed).is_err());
        assert!(open_lists(&elsewhere, &sealed).is_err());
        assert_eq!(
            record::sealed_version(&sealed, Kind::Neighbours).unwrap(),
            2
        );
    }
}
