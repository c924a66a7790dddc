//! Branch-free elementwise functions that the compiler can vectorize (libm's `tanh` is an opaque call of
//! ~80 instructions and was the largest elementwise cost of an MLP's HVP). Accuracy: a few ulp, checked
//! against libm on a dense grid in the tests.

use std::mem::MaybeUninit;

const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// `1.5·2⁵²`: adding it rounds a double of magnitude < 2⁵¹ to the nearest integer, which then sits in the
/// low mantissa bits (the classic branch-free rounding; Rust never reassociates float arithmetic).
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// `e^z − 1` for `−80 ≤ z ≤ 0`, to a few ulp relative: Cody–Waite reduction `z = k ln2 + r`, `|r| ≤ ln2/2`,
/// `expm1(r) = r·p(r)` with `p` the Taylor polynomial `Σ_{i≤12} rⁱ/(i+1)!` (truncation ≤ 4e-18 relative),
/// evaluated by Estrin's scheme (depth 4 instead of Horner's 12, so the core is not waiting on latency), and
/// `e^z − 1 = 2^k expm1(r) + (2^k − 1)`, where `2^k − 1` and the scaling are exact (for `k = 0` the result
/// is the polynomial itself, so there is no cancellation as `z → 0`). Products are fused (`mul_add`, one
/// rounding, the same bits on every code path: hardware FMA or libm's `fma`).
#[inline(always)]
fn expm1_nonpositive(z: f64) -> f64 {
    const A: [f64; 13] = [
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let big = z * std::f64::consts::LOG2_E + ROUND_MAGIC;
    let k = big - ROUND_MAGIC;
    let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, z));
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let b = |i: usize| A[i + 1].mul_add(r, A[i]);
    let c0 = b(2).mul_add(r2, b(0));
    let c1 = b(6).mul_add(r2, b(4));
    let c2 = b(10).mul_add(r2, b(8));
    let d0 = c1.mul_add(r4, c0);
    let d1 = A[12].mul_add(r4, c2);
    let em1 = r * d1.mul_add(r8, d0);
    // 2^k for k ∈ [−116, 0]: the low 12 bits of `big` hold k mod 4096, so (bits + 1023) << 52 is the biased
    // exponent of 2^k (integer lane operations only, so this vectorizes).
    let two_k = f64::from_bits(big.to_bits().wrapping_add(1023) << 52);
    two_k.mul_add(em1, two_k - 1.0)
}

/// `tanh x` to a few ulp: with `m = e^{−2|x|} − 1` (from `expm1_nonpositive`, accurate as `x → 0`),
/// `tanh|x| = −m/(2 + m)`; `|x|` is capped at 40, where `tanh` is 1 to far below an ulp. One division and
/// no branches, so the loop over an array vectorizes.
#[inline(always)]
pub fn tanh(x: f64) -> f64 {
    let a = x.abs().min(40.0);
    let m = expm1_nonpositive(-2.0 * a);
    let t = -m / (2.0 + m);
    if x.is_nan() {
        x
    } else {
        t.copysign(x)
    }
}

/// The index of the first NaN or infinity in `x`. Blocks are screened by sums of `v·0` (0 for finite `v`,
/// NaN otherwise) in 8 independent lanes, which vectorize, unlike a search that stops at its first hit; only
/// a block that fails is searched.
pub fn first_non_finite(x: &[f64]) -> Option<usize> {
    const BLOCK: usize = 256;
    const LANES: usize = 8;
    x.chunks(BLOCK).enumerate().find_map(|(b, xs)| {
        let screen = vectorized(
            #[inline(always)]
            || {
                let mut lanes = [0.0; LANES];
                let body = xs.chunks_exact(LANES);
                let tail = body.remainder().iter().fold(0.0, |s, &v| s + v * 0.0);
                body.for_each(|c| lanes.iter_mut().zip(c).for_each(|(s, &v)| *s += v * 0.0));
                lanes.iter().sum::<f64>() + tail
            },
        );
        if screen == 0.0 {
            None
        } else {
            xs.iter().position(|v| !v.is_finite()).map(|i| b * BLOCK + i)
        }
    })
}

/// `tanh` of every entry, into a new vector (written once, never zero-filled first), `vectorized`: bitwise
/// the same results as [`tanh`] on every path.
pub fn tanh_vec(xs: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(xs.len());
    tanh_into(xs, &mut out.spare_capacity_mut()[..xs.len()]);
    // SAFETY: `tanh_into` wrote all `xs.len()` entries.
    unsafe { out.set_len(xs.len()) };
    out
}

/// Writes `tanh` of the first `min(xs.len(), out.len())` entries.
fn tanh_into(xs: &[f64], out: &mut [MaybeUninit<f64>]) {
    vectorized(
        #[inline(always)]
        || {
            for (o, &x) in out.iter_mut().zip(xs) {
                o.write(tanh(x));
            }
        },
    )
}

/// Runs `f` compiled for AVX-512 or AVX2 (each with FMA) when the CPU has them, chosen at run time, so that
/// the loops inside vectorize 8 or 4 wide on any recent x86-64 while the crate itself is built for the
/// baseline (2 wide). Every path performs the same IEEE operations — Rust never contracts `a*b + c` on its
/// own, and `mul_add` is the correctly rounded fused operation everywhere (a software `fma` on CPUs without
/// it, slow but equal) — so results are bitwise identical on every path. `f` should be `#[inline(always)]`
/// (closures are inlined into the feature-enabled copy, which is what compiles them for it).
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
            return unsafe { with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The outer product `d aᵀ` written row-major into `dst` (`dst[k·|a| + j] = d[k] a[j]`, for the first
/// `min(|d|, |dst|/|a|)` rows): a dense layer's weight gradient for one example, `vectorized` (the
/// per-example gradients of an MLP are these stores).
pub fn outer_into(d: &[f64], a: &[f64], dst: &mut [f64]) {
    if a.is_empty() {
        return;
    }
    vectorized(
        #[inline(always)]
        || {
            for (row, &dk) in dst.chunks_exact_mut(a.len()).zip(d) {
                row.iter_mut().zip(a).for_each(|(w, &aj)| *w = dk * aj);
            }
        },
    )
}

/// `dst += d aᵀ` for a row-major `d.len() × a.len()` block `dst` (the accumulating [`outer_into`]).
pub fn outer_add_into(d: &[f64], a: &[f64], dst: &mut [f64]) {
    if a.is_empty() {
        return;
    }
    vectorized(
        #[inline(always)]
        || {
            for (row, &dk) in dst.chunks_exact_mut(a.len()).zip(d) {
                row.iter_mut().zip(a).for_each(|(w, &aj)| *w += dk * aj);
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        (a - b).abs() / (f64::EPSILON * b.abs().max(f64::MIN_POSITIVE))
    }

    #[test]
    fn outer_into_writes_the_row_major_outer_product() {
        let d = [1.5, -2.0, 0.25];
        let a: Vec<f64> = (0..11).map(|j| (j as f64 * 0.7).sin()).collect();
        let mut dst = vec![f64::NAN; 3 * 11 + 2];
        outer_into(&d, &a, &mut dst);
        for k in 0..3 {
            for j in 0..11 {
                assert_eq!(dst[k * 11 + j].to_bits(), (d[k] * a[j]).to_bits());
            }
        }
        assert!(dst[33].is_nan() && dst[34].is_nan());
        outer_into(&d, &[], &mut dst);
    }

    #[test]
    fn first_non_finite_finds_the_first_nan_or_infinity_in_any_block() {
        let mut x: Vec<f64> = (0..1000).map(|i| (i as f64 - 500.0) * 1e300).collect();
        assert_eq!(first_non_finite(&x), None);
        assert_eq!(first_non_finite(&[]), None);
        for (i, bad) in [
            (0, f64::NAN),
            (255, f64::INFINITY),
            (256, f64::NEG_INFINITY),
            (999, f64::NAN),
        ] {
            let keep = x[i];
            x[i] = bad;
            x[(i + 300) % 1000] = f64::NAN;
            assert_eq!(first_non_finite(&x), Some(i.min((i + 300) % 1000)), "{i}");
            x[i] = keep;
            x[(i + 300) % 1000] = 0.0;
        }
    }

    #[test]
    fn tanh_is_within_a_few_ulp_of_libm() {
        let mut worst = 0.0f64;
        for i in 0..2_000_001 {
            let x = -25.0 + 50.0 * i as f64 / 2_000_000.0;
            worst = worst.max(ulps(tanh(x), x.tanh()));
        }
        for e in -300..2 {
            for m in [1.0, 1.7, 3.3, 7.9] {
                let x = m * 10f64.powi(e);
                worst = worst
                    .max(ulps(tanh(x), x.tanh()))
                    .max(ulps(tanh(-x), (-x).tanh()));
            }
        }
        assert!(worst <= 4.0, "worst error {worst} ulp");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(1e3), 1.0);
        assert_eq!(tanh(-1e300), -1.0);
        assert!(tanh(f64::NAN).is_nan());
    }

    #[test]
    fn vectorized_paths_equal_the_scalar_function_bitwise() {
        let xs: Vec<f64> = (0..10_001).map(|i| -12.0 + 24.0 * i as f64 / 10_000.0).collect();
        let out = tanh_vec(&xs);
        assert_eq!(out.len(), xs.len());
        for (x, o) in xs.iter().zip(&out) {
            assert_eq!(o.to_bits(), tanh(*x).to_bits(), "x = {x}");
        }
    }

    #[test]
    fn expm1_is_accurate() {
        let mut worst = 0.0f64;
        for i in 0..200_001 {
            let z = -80.0 * i as f64 / 200_000.0;
            worst = worst.max(ulps(expm1_nonpositive(z), z.exp_m1()));
        }
        for e in -300..0 {
            let z = -(10f64.powi(e));
            worst = worst.max(ulps(expm1_nonpositive(z), z.exp_m1()));
        }
        assert!(worst <= 4.0, "worst error {worst} ulp");
    }
}
