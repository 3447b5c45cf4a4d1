use super::*;

use crate::test_rng::Rng;

fn lengths() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=70).collect();
    v.extend([
        127, 128, 129, 255, 256, 257, 383, 384, 767, 768, 769, 1023, 1536, 3072, 16_000,
    ]);
    v
}

/// The plain reference: f64 sums in order, and the sum of absolute terms that bounds the
/// rounding error of any f32 summation order.
fn reference(a: &[f32], b: &[f32]) -> [(f64, f64); 5] {
    let (mut dot, mut l2, mut l1, mut na, mut nb) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let mut dot_abs = 0f64;
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        dot_abs += (x * y).abs();
        l2 += (x - y) * (x - y);
        l1 += (x - y).abs();
        na += x * x;
        nb += y * y;
    }
    [(dot, dot_abs), (l2, l2), (l1, l1), (na, na), (nb, nb)]
}

fn assert_close(kernel: &str, what: &str, n: usize, got: f32, (want, magnitude): (f64, f64)) {
    // f32 summation of n terms: error below n * eps * Σ|terms| in the worst case; lanes and
    // FMA keep it far smaller. 1e-5 relative to the magnitude (plus a floor for tiny sums).
    let tolerance = 1e-5 * magnitude.max(1e-3) + f64::from(f32::EPSILON) * (n as f64).sqrt();
    let err = (f64::from(got) - want).abs();
    assert!(
        err <= tolerance,
        "{kernel} {what} n={n}: got {got}, want {want}, error {err} > {tolerance}"
    );
}

#[test]
fn every_available_kernel_matches_the_scalar_reference_on_many_lengths() {
    let kernels = available();
    assert_eq!(kernels[0].name, "portable");
    let mut rng = Rng(0x5ea1_5701e);
    for n in lengths() {
        for scale in [1.0f32, 1e-3, 1e3] {
            let a = rng.vector(n, scale);
            let b = rng.vector(n, scale);
            let [dot, l2, l1, na, nb] = reference(&a, &b);
            for k in &kernels {
                assert_close(k.name, "dot", n, (k.dot)(&a, &b), dot);
                assert_close(k.name, "l2", n, (k.l2_squared)(&a, &b), l2);
                assert_close(k.name, "l1", n, (k.l1)(&a, &b), l1);
                let (d, sa, sb) = (k.cosine_parts)(&a, &b);
                assert_close(k.name, "cos.dot", n, d, dot);
                assert_close(k.name, "cos.na", n, sa, na);
                assert_close(k.name, "cos.nb", n, sb, nb);
            }
        }
    }
}

#[test]
fn kernels_read_only_their_own_slice_and_handle_unaligned_starts() {
    // Sub-slices at every offset: loads must not depend on alignment or read past the end.
    let mut rng = Rng(7);
    let a = rng.vector(300, 1.0);
    let b = rng.vector(300, 1.0);
    for k in available() {
        for start in 0..17 {
            for end in [start, start + 1, start + 15, start + 16, start + 17, 300] {
                let (x, y) = (&a[start..end], &b[start..end]);
                let [dot, ..] = reference(x, y);
                assert_close(k.name, "dot", end - start, (k.dot)(x, y), dot);
            }
        }
    }
}

#[test]
fn the_fastest_available_kernel_is_selected() {
    let best = available().last().unwrap().name;
    assert_eq!(selected().name, best);
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert_ne!(best, "portable");
    }
}

#[test]
fn distances_follow_pgvector_definitions() {
    let a = [1.0f32, 2.0, 3.0];
    let b = [4.0f32, 5.0, 6.0];
    assert!((l2_distance(&a, &b) - 27f64.sqrt()).abs() < 1e-9);
    assert_eq!(inner_product(&a, &b), 32.0);
    assert_eq!(Metric::InnerProduct.distance(&a, &b), -32.0);
    assert_eq!(l1_distance(&a, &b), 9.0);
    let cos = 1.0 - 32.0 / (14f64 * 77.0).sqrt();
    assert!((cosine_distance(&a, &b) - cos).abs() < 1e-7);
    // Same direction is 0, opposite is 2, orthogonal is 1; a zero vector has no direction.
    assert_eq!(cosine_distance(&a, &a.map(|x| x * 3.0)), 0.0);
    assert!((cosine_distance(&a, &a.map(|x| -x)) - 2.0).abs() < 1e-12);
    assert_eq!(cosine_distance(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
    assert!(cosine_distance(&[0.0, 0.0], &[1.0, 1.0]).is_nan());
}

#[test]
fn results_are_deterministic_for_the_same_input() {
    let mut rng = Rng(99);
    let a = rng.vector(768, 1.0);
    let b = rng.vector(768, 1.0);
    for m in [Metric::L2, Metric::Cosine, Metric::InnerProduct, Metric::L1] {
        let first = m.distance(&a, &b).to_bits();
        let copy = (a.clone(), b.clone());
        assert_eq!(m.distance(&copy.0, &copy.1).to_bits(), first, "{m:?}");
        assert_eq!(Metric::from_name(m.name()), Some(m));
    }
    assert_eq!(Metric::from_name("hamming"), None);
}
