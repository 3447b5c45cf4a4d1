//! Distance kernels with run-time SIMD dispatch.
//!
//! Each kernel exists three times: a portable version (eight independent lanes, which the
//! compiler keeps in SSE registers), AVX2 with FMA, and AVX-512F. The best one the CPU supports
//! is chosen once per process; `tests.rs` checks every variant the CPU can run against a plain
//! f64 reference. Sums are kept in f32 lanes and combined at the end, as pgvector does, and the
//! final arithmetic is in f64.
//!
//! All variants of one process give bit-identical results for the same inputs, so a search
//! over decrypted embeddings returns exactly the distances of the same search over plaintext.

use std::sync::LazyLock;

/// (Σ a·b, Σ a², Σ b²)
pub type CosineParts = (f32, f32, f32);

/// The per-element sums a distance needs, for one pair of equally long slices.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub name: &'static str,
    /// Σ a·b
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// Σ (a−b)²
    pub l2_squared: fn(&[f32], &[f32]) -> f32,
    /// Σ |a−b|
    pub l1: fn(&[f32], &[f32]) -> f32,
    /// (Σ a·b, Σ a², Σ b²) in one pass
    pub cosine_parts: fn(&[f32], &[f32]) -> CosineParts,
}

pub const PORTABLE: Kernels = Kernels {
    name: "portable",
    dot: portable::dot,
    l2_squared: portable::l2_squared,
    l1: portable::l1,
    cosine_parts: portable::cosine_parts,
};

/// The kernel sets this CPU can run, best last.
pub fn available() -> Vec<Kernels> {
    let mut out = vec![PORTABLE];
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(k) = x86::avx2() {
            out.push(k);
        }
        if let Some(k) = x86::avx512() {
            out.push(k);
        }
    }
    out
}

static SELECTED: LazyLock<Kernels> =
    LazyLock::new(|| *available().last().expect("portable is always available"));

/// The kernel set in use in this process.
pub fn selected() -> &'static Kernels {
    &SELECTED
}

/// Which metric a distance computes; the names are those of `create_collection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Euclidean distance, `<->`.
    L2,
    /// 1 − cosine similarity, `<=>`.
    Cosine,
    /// Negative inner product, `<#>` (smaller is more similar, as with the other metrics).
    InnerProduct,
    /// Manhattan distance, `<+>`.
    L1,
}

impl Metric {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "l2" => Some(Self::L2),
            "cosine" => Some(Self::Cosine),
            "inner_product" => Some(Self::InnerProduct),
            "l1" => Some(Self::L1),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::L2 => "l2",
            Self::Cosine => "cosine",
            Self::InnerProduct => "inner_product",
            Self::L1 => "l1",
        }
    }

    /// The distance this metric orders by. The slices must be equally long.
    pub fn distance(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Self::L2 => l2_distance(a, b),
            Self::Cosine => cosine_distance(a, b),
            Self::InnerProduct => -inner_product(a, b),
            Self::L1 => l1_distance(a, b),
        }
    }
}

pub fn l2_distance(a: &[f32], b: &[f32]) -> f64 {
    f64::from((selected().l2_squared)(a, b)).sqrt()
}

pub fn inner_product(a: &[f32], b: &[f32]) -> f64 {
    f64::from((selected().dot)(a, b))
}

pub fn l1_distance(a: &[f32], b: &[f32]) -> f64 {
    f64::from((selected().l1)(a, b))
}

/// 1 − cos(a, b), clamped to [0, 2]; NaN when either vector is zero (as in pgvector).
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let (dot, na, nb) = (selected().cosine_parts)(a, b);
    cosine_from_parts(dot, na, nb)
}

pub fn cosine_from_parts(dot: f32, na: f32, nb: f32) -> f64 {
    let similarity = f64::from(dot) / (f64::from(na) * f64::from(nb)).sqrt();
    if similarity.is_nan() {
        return f64::NAN;
    }
    1.0 - similarity.clamp(-1.0, 1.0)
}

mod portable {
    const LANES: usize = 8;

    fn lanes<F: Fn(f32, f32) -> f32>(a: &[f32], b: &[f32], f: F) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; LANES];
        let mut ca = a.chunks_exact(LANES);
        let mut cb = b.chunks_exact(LANES);
        for (x, y) in (&mut ca).zip(&mut cb) {
            for l in 0..LANES {
                acc[l] += f(x[l], y[l]);
            }
        }
        let mut sum = acc.iter().sum::<f32>();
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            sum += f(*x, *y);
        }
        sum
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        lanes(a, b, |x, y| x * y)
    }

    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        lanes(a, b, |x, y| (x - y) * (x - y))
    }

    pub fn l1(a: &[f32], b: &[f32]) -> f32 {
        lanes(a, b, |x, y| (x - y).abs())
    }

    pub fn cosine_parts(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        (dot(a, b), dot(a, a), dot(b, b))
    }
}

/// The only `unsafe` in this crate: SIMD intrinsics behind `#[target_feature]`, reached only
/// through the function pointers `avx2()`/`avx512()` hand out after checking the CPU.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::Kernels;
    use std::arch::x86_64::*;

    pub fn avx2() -> Option<Kernels> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Kernels {
            name: "avx2+fma",
            // SAFETY (all four): the features these functions enable were detected above.
            dot: |a, b| unsafe { avx2::dot(a, b) },
            l2_squared: |a, b| unsafe { avx2::l2_squared(a, b) },
            l1: |a, b| unsafe { avx2::l1(a, b) },
            cosine_parts: |a, b| unsafe { avx2::cosine_parts(a, b) },
        })
    }

    pub fn avx512() -> Option<Kernels> {
        is_x86_feature_detected!("avx512f").then_some(Kernels {
            name: "avx512f",
            // SAFETY (all four): the feature these functions enable was detected above.
            dot: |a, b| unsafe { avx512::dot(a, b) },
            l2_squared: |a, b| unsafe { avx512::l2_squared(a, b) },
            l1: |a, b| unsafe { avx512::l1(a, b) },
            cosine_parts: |a, b| unsafe { avx512::cosine_parts(a, b) },
        })
    }

    mod avx2 {
        use super::*;

        #[target_feature(enable = "avx2,fma")]
        fn hsum(v: __m256) -> f32 {
            let lo = _mm256_castps256_ps128(v);
            let hi = _mm256_extractf128_ps::<1>(v);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }

        /// Two 8-lane accumulators over 16 elements per step, then 8, then a scalar tail.
        /// `step(acc, x, y)` folds one register of each input into `acc`.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fold(
            a: &[f32],
            b: &[f32],
            step: impl Fn(__m256, __m256, __m256) -> __m256,
            tail: impl Fn(f32, f32, f32) -> f32,
        ) -> f32 {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut i = 0;
            // SAFETY: every load reads 8 floats starting at i with i + 8 <= n (16 for the pair).
            unsafe {
                while i + 16 <= n {
                    acc0 = step(acc0, _mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                    acc1 = step(
                        acc1,
                        _mm256_loadu_ps(pa.add(i + 8)),
                        _mm256_loadu_ps(pb.add(i + 8)),
                    );
                    i += 16;
                }
                if i + 8 <= n {
                    acc0 = step(acc0, _mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                    i += 8;
                }
            }
            let mut sum = hsum(_mm256_add_ps(acc0, acc1));
            for j in i..n {
                sum = tail(sum, a[j], b[j]);
            }
            sum
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: same features as this function.
            unsafe {
                fold(
                    a,
                    b,
                    |acc, x, y| _mm256_fmadd_ps(x, y, acc),
                    |s, x, y| x.mul_add(y, s),
                )
            }
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: same features as this function.
            unsafe {
                fold(
                    a,
                    b,
                    |acc, x, y| {
                        let d = _mm256_sub_ps(x, y);
                        _mm256_fmadd_ps(d, d, acc)
                    },
                    |s, x, y| (x - y).mul_add(x - y, s),
                )
            }
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn l1(a: &[f32], b: &[f32]) -> f32 {
            let sign = _mm256_set1_ps(-0.0);
            // SAFETY: same features as this function.
            unsafe {
                fold(
                    a,
                    b,
                    |acc, x, y| _mm256_add_ps(acc, _mm256_andnot_ps(sign, _mm256_sub_ps(x, y))),
                    |s, x, y| s + (x - y).abs(),
                )
            }
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn cosine_parts(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            // Two accumulators per sum, so consecutive FMAs do not wait on each other.
            let [mut d0, mut d1, mut a0, mut a1, mut b0, mut b1] = [_mm256_setzero_ps(); 6];
            let mut i = 0;
            // SAFETY: every load reads 8 floats starting at i with i + 8 <= n (16 for the pair).
            unsafe {
                while i + 16 <= n {
                    let (x0, y0) = (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                    let (x1, y1) = (
                        _mm256_loadu_ps(pa.add(i + 8)),
                        _mm256_loadu_ps(pb.add(i + 8)),
                    );
                    d0 = _mm256_fmadd_ps(x0, y0, d0);
                    a0 = _mm256_fmadd_ps(x0, x0, a0);
                    b0 = _mm256_fmadd_ps(y0, y0, b0);
                    d1 = _mm256_fmadd_ps(x1, y1, d1);
                    a1 = _mm256_fmadd_ps(x1, x1, a1);
                    b1 = _mm256_fmadd_ps(y1, y1, b1);
                    i += 16;
                }
                if i + 8 <= n {
                    let (x0, y0) = (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                    d0 = _mm256_fmadd_ps(x0, y0, d0);
                    a0 = _mm256_fmadd_ps(x0, x0, a0);
                    b0 = _mm256_fmadd_ps(y0, y0, b0);
                    i += 8;
                }
            }
            let mut d = hsum(_mm256_add_ps(d0, d1));
            let mut sa = hsum(_mm256_add_ps(a0, a1));
            let mut sb = hsum(_mm256_add_ps(b0, b1));
            for j in i..n {
                d = a[j].mul_add(b[j], d);
                sa = a[j].mul_add(a[j], sa);
                sb = b[j].mul_add(b[j], sb);
            }
            (d, sa, sb)
        }
    }

    mod avx512 {
        use super::*;

        /// One 16-lane accumulator per pair of inputs; the tail is a masked load, so there is
        /// no scalar loop.
        #[target_feature(enable = "avx512f")]
        unsafe fn fold(
            a: &[f32],
            b: &[f32],
            step: impl Fn(__m512, __m512, __m512) -> __m512,
        ) -> f32 {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc0 = _mm512_setzero_ps();
            let mut acc1 = _mm512_setzero_ps();
            let mut i = 0;
            // SAFETY: full loads stay below n; the masked load reads only the n - i remaining
            // lanes (masked-off lanes are not accessed).
            unsafe {
                while i + 32 <= n {
                    acc0 = step(acc0, _mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                    acc1 = step(
                        acc1,
                        _mm512_loadu_ps(pa.add(i + 16)),
                        _mm512_loadu_ps(pb.add(i + 16)),
                    );
                    i += 32;
                }
                while i + 16 <= n {
                    acc0 = step(acc0, _mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                    i += 16;
                }
                if i < n {
                    let mask: __mmask16 = (1u16 << (n - i)) - 1;
                    acc1 = step(
                        acc1,
                        _mm512_maskz_loadu_ps(mask, pa.add(i)),
                        _mm512_maskz_loadu_ps(mask, pb.add(i)),
                    );
                }
            }
            _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
        }

        #[target_feature(enable = "avx512f")]
        pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: same feature as this function.
            unsafe { fold(a, b, |acc, x, y| _mm512_fmadd_ps(x, y, acc)) }
        }

        #[target_feature(enable = "avx512f")]
        pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: same feature as this function.
            unsafe {
                fold(a, b, |acc, x, y| {
                    let d = _mm512_sub_ps(x, y);
                    _mm512_fmadd_ps(d, d, acc)
                })
            }
        }

        #[target_feature(enable = "avx512f")]
        pub unsafe fn l1(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: same feature as this function.
            unsafe {
                fold(a, b, |acc, x, y| {
                    _mm512_add_ps(acc, _mm512_abs_ps(_mm512_sub_ps(x, y)))
                })
            }
        }

        #[target_feature(enable = "avx512f")]
        pub unsafe fn cosine_parts(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut dot = _mm512_setzero_ps();
            let mut na = _mm512_setzero_ps();
            let mut nb = _mm512_setzero_ps();
            let mut i = 0;
            // SAFETY: as in `fold`.
            unsafe {
                while i < n {
                    let (x, y) = if i + 16 <= n {
                        (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)))
                    } else {
                        let mask: __mmask16 = (1u16 << (n - i)) - 1;
                        (
                            _mm512_maskz_loadu_ps(mask, pa.add(i)),
                            _mm512_maskz_loadu_ps(mask, pb.add(i)),
                        )
                    };
                    dot = _mm512_fmadd_ps(x, y, dot);
                    na = _mm512_fmadd_ps(x, x, na);
                    nb = _mm512_fmadd_ps(y, y, nb);
                    i += 16;
                }
            }
            (
                _mm512_reduce_add_ps(dot),
                _mm512_reduce_add_ps(na),
                _mm512_reduce_add_ps(nb),
            )
        }
    }
}

#[cfg(test)]
mod tests;
