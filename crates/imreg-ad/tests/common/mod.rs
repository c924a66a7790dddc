//! Helpers shared by the integration tests: seeded points and the order-2 `check_grads` of a program.
#![allow(dead_code)]
use imreg_ad::{check_grads, CheckGradsOptions, GradientMap, Graph, Program, Result, ScalarFn, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded point whose entries are bounded away from 0 (`0.1 ≤ |x_i| ≤ 0.8`, almost surely apart by more than
/// a difference step), so that central differences never straddle a kink of ReLU-like ops or a switch of a
/// max-pool's argmax.
pub fn random_point(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let m = 0.1 + 0.7 * rng.random::<f64>();
            if rng.random::<bool>() {
                m
            } else {
                -m
            }
        })
        .collect()
}

/// Seeded entries uniform in `[−scale, scale]`.
pub fn random_vec(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| scale * (rng.random::<f64>() * 2.0 - 1.0))
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `max_i |a_i − b_i| / max_i |b_i|`.
pub fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1e-300_f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0_f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// `check_grads` at order 2 on `f` (gradient vs differences, then the HVP vs differences of the gradient) and
/// on `∇f` (the HVP, then `T3` vs differences of the HVP, with the dot-product identities).
pub fn assert_passes_check_grads<P: Program + std::fmt::Debug>(case: &P, x: &[f64], seed: u64) {
    let opts = CheckGradsOptions {
        seed,
        ..Default::default()
    };
    let r = check_grads(&ScalarFn(case), x, &opts).unwrap();
    assert!(r.passed, "{case:?}: {r:?}");
    let r = check_grads(&GradientMap(case), x, &opts).unwrap();
    assert!(r.passed, "{case:?} (gradient map): {r:?}");
}

/// A non-polynomial head `Σ tanh(y ⊙ w)² + Σ y³/3` (`w` a fixed weight of `y`'s shape, or ones), so that the
/// second and third derivatives of the op producing `y` are exercised and no symmetry hides an error.
pub fn head<T: Tensor>(g: &mut Graph<T>, y: Var, w: Option<imreg_ad::Mat>) -> Result<Var> {
    let yw = match w {
        Some(w) => {
            let w = g.constant(w);
            g.mul(y, w)?
        }
        None => y,
    };
    let t = g.tanh(yw);
    let t2 = g.square(t);
    let y2 = g.square(y);
    let y3 = g.mul(y2, y)?;
    let y3 = g.scale(y3, 1.0 / 3.0);
    let s = g.add(t2, y3)?;
    Ok(g.sum(s))
}

/// `f` run inside a rayon pool of `threads` threads (the determinism tests compare 1 and 2).
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// The bit patterns of `a`, for bitwise comparisons that also tell `0.0` from `-0.0`.
pub fn bits(a: &[f64]) -> Vec<u64> {
    a.iter().map(|x| x.to_bits()).collect()
}
