//! Bare-crate reference for the encryption benchmark (`.ci/sealstore bench`): AEAD encryption
//! straight through the crates Sealstore runs, `chacha20poly1305` and, for AES-256-GCM, the
//! engine this CPU gets (`AesEngine::for_this_cpu`: AWS-LC or ring; op `bare_encrypt`, with its
//! name in `engine`), and Sealstore's envelope (`seal`/`open`, which adds the header, a random
//! nonce from the OS and one allocation). Both AES engines are measured by name too (ops
//! `aws-lc-rs_encrypt` and `ring_encrypt`), and `aes-gcm` 0.11 (op `rustcrypto_encrypt`), for
//! the record of why AES-256-GCM runs where it does.
//! Prints one JSON object per line: {"algorithm", "size", "op", "ns"} with ns the median of
//! 11 samples. A measurement harness only: run with `cargo bench -p sealstore-core`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use sealstore_core::crypto::{self, AesEngine, Algorithm, DataKey};

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];

/// Median nanoseconds per call of `f`, over 11 samples of about 100 ms each.
fn median_ns(mut f: impl FnMut()) -> f64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        if start.elapsed() > Duration::from_millis(20) {
            break;
        }
        iters *= 2;
    }
    iters *= 5;
    let mut samples: Vec<f64> = (0..11)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn report(alg: Algorithm, size: usize, op: &str, ns: f64) {
    println!(
        r#"{{"algorithm":"{}","size":{size},"op":"{op}","ns":{ns:.1}}}"#,
        alg.name()
    );
}

fn report_engine(size: usize, op: &str, engine: AesEngine, ns: f64) {
    println!(
        r#"{{"algorithm":"aes-256-gcm","size":{size},"op":"{op}","engine":"{}","ns":{ns:.1}}}"#,
        engine.name()
    );
}

fn main() {
    let key = [7u8; 32];
    let tenant = sealstore_core::ids::TenantId::from_bytes([1u8; 16]);
    for size in SIZES {
        let msg = vec![0xa5u8; size];
        let mut buf = msg.clone();

        let xchacha = XChaCha20Poly1305::new((&key).into());
        let nonce24 = [3u8; 24];
        report(
            Algorithm::XChaCha20Poly1305,
            size,
            "bare_encrypt",
            median_ns(|| {
                black_box(
                    xchacha
                        .encrypt_inout_detached((&nonce24).into(), b"", buf.as_mut_slice().into())
                        .unwrap(),
                );
            }),
        );
        let nonce12 = [3u8; 12];
        let ring_key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &key).unwrap(),
        );
        let ring_ns = median_ns(|| {
            let _tag = black_box(
                ring_key
                    .seal_in_place_separate_tag(
                        ring::aead::Nonce::assume_unique_for_key(nonce12),
                        ring::aead::Aad::empty(),
                        buf.as_mut_slice(),
                    )
                    .unwrap(),
            );
        });
        let aws_lc_key = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &key).unwrap(),
        );
        let aws_lc_ns = median_ns(|| {
            let _tag = black_box(
                aws_lc_key
                    .seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce12),
                        aws_lc_rs::aead::Aad::empty(),
                        buf.as_mut_slice(),
                    )
                    .unwrap(),
            );
        });
        report_engine(size, "ring_encrypt", AesEngine::Ring, ring_ns);
        report_engine(size, "aws-lc-rs_encrypt", AesEngine::AwsLc, aws_lc_ns);
        let engine = AesEngine::for_this_cpu();
        let ns = match engine {
            AesEngine::Ring => ring_ns,
            AesEngine::AwsLc => aws_lc_ns,
        };
        report_engine(size, "bare_encrypt", engine, ns);
        let aes = Aes256Gcm::new((&key).into());
        report(
            Algorithm::Aes256Gcm,
            size,
            "rustcrypto_encrypt",
            median_ns(|| {
                black_box(
                    aes.encrypt_inout_detached((&nonce12).into(), b"", buf.as_mut_slice().into())
                        .unwrap(),
                );
            }),
        );

        for alg in [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm] {
            let k = DataKey::from_bytes(alg, 1, &key);
            report(
                alg,
                size,
                "envelope_seal",
                median_ns(|| {
                    black_box(crypto::seal(&k, &tenant, b"c", &msg).unwrap());
                }),
            );
            let env = crypto::seal(&k, &tenant, b"c", &msg).unwrap();
            report(
                alg,
                size,
                "envelope_open",
                median_ns(|| {
                    black_box(crypto::open(&k, &tenant, b"c", &env).unwrap());
                }),
            );
        }
    }
}
