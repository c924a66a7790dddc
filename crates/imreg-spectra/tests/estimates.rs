//! Exact expectations over batches against a brute-force reference; Monte Carlo standard errors that are
//! honest (the exact value within a few standard errors, across seeds); seeds that reach the Monte Carlo
//! batches and only them; the default exact threshold.
mod common;
use imreg_objective::{rng, Batch, LossKind, Objective};
use imreg_spectra::*;

/// The sizes-`b` subsets of `pool`, by bit masks (independent of the library's combination walk).
fn subsets(pool: &[usize], b: usize) -> Vec<Vec<usize>> {
    (0u32..1 << pool.len())
        .filter(|m| m.count_ones() as usize == b)
        .map(|m| {
            (0..pool.len())
                .filter(|i| m >> i & 1 == 1)
                .map(|i| pool[i])
                .collect()
        })
        .collect()
}

#[test]
fn exact_enumeration_matches_brute_force() {
    let (m, theta) = common::mlp(9, 3, 4, 2, LossKind::Mse { half: true }, 11);
    let pool = [1usize, 3, 4, 5, 7, 8];
    for b in 1..=pool.len() {
        // Brute force: dense H_B and g_B per batch, λ_max(H_B) by the dense eigensolver.
        let (mut ratios, mut ghg_sum, mut gg_sum, mut lmax) = (0.0, 0.0, 0.0, 0.0);
        let all = subsets(&pool, b);
        for ix in &all {
            let batch = Batch::Indices(ix);
            let h = dense_matrix(&HessianOperator::new(&m, &theta, batch).unwrap()).unwrap();
            let g = nalgebra::DVector::from_vec(m.grad(&theta, batch).unwrap());
            let (ghg, gg) = ((&h * &g).dot(&g), g.dot(&g));
            ratios += ghg / gg;
            ghg_sum += ghg;
            gg_sum += gg;
            lmax += symmetric_eigen(h, &DenseOptions::default()).unwrap().max();
        }
        let t = all.len() as f64;
        let bs = batch_sharpness(&m, &theta, Batch::Indices(&pool), b, &BatchExpectation::Exact).unwrap();
        let lo = LanczosOptions {
            tol: 1e-13,
            max_iter: 200,
            ..Default::default()
        };
        let mb = mini_bs(
            &m,
            &theta,
            Batch::Indices(&pool),
            b,
            &BatchExpectation::Exact,
            &lo,
        )
        .unwrap();
        let terms = binomial(pool.len(), b).unwrap();
        assert_eq!(terms, all.len() as u64);
        for (got, want) in [
            (bs.mean_of_ratios, ratios / t),
            (bs.ratio_of_means, ghg_sum / gg_sum),
            (mb.estimate, lmax / t),
        ] {
            // Sums of ≤ 20 rounded terms (Lanczos to 1e-13 relative for MiniBS).
            assert!(common::rel(got.value, want) < 1e-11, "b = {b}: {got:?} vs {want}");
            assert_eq!(got, Estimate::exact(got.value, terms));
        }
    }
}

/// Honest standard errors. For `R` independent seeds, each a Monte Carlo estimate over a fixed `n` batches
/// (no early stop, which would bias the SE low), `z_r = (estimate_r − exact)/SE_r` is close to a Student t
/// with `n − 1` degrees of freedom if the SE is honest (the ratio of means through the delta method, with a
/// bias O(1/n)). Two checks, each with a probability of a false alarm below 1 % under honesty:
/// - `mean z² ∈ [0.7, 1.4]`: `E z² ≈ 1.02` (t₉₉), `sd(z²) ≈ √2`, so the mean over `R = 300` has
///   `sd ≈ 0.08` and the band is about ±4 sd. An SE off by a factor 1.25 either way moves `mean z²` to 0.65
///   or 1.6, outside the band.
/// - at most 5 of the `R` draws with `|z| > 3`: `P(|t₉₉| > 3) ≈ 0.0034`, so the count is about
///   Binomial(300, 0.0034), mean 1.0, and `P(count ≥ 6) ≈ 0.0006`.
///
/// The seeds are fixed, so the outcome is deterministic; the bounds say why it is not tuned.
#[test]
fn monte_carlo_standard_errors_are_honest_across_seeds() {
    let (m, theta) = common::mlp(12, 3, 4, 2, LossKind::Mse { half: true }, 2);
    let b = 3;
    let exact = batch_sharpness(&m, &theta, Batch::Full, b, &BatchExpectation::Exact).unwrap();
    let (r_seeds, n) = (300u64, 100usize);
    let mut z = [Vec::new(), Vec::new()];
    for seed in 0..r_seeds {
        let mc = MonteCarloOptions {
            seed: 1000 + seed,
            min_batches: n,
            max_batches: n,
            rel_se_tol: 0.0,
            round: 20,
        };
        let est = batch_sharpness(&m, &theta, Batch::Full, b, &BatchExpectation::MonteCarlo(mc)).unwrap();
        for (k, (e, x)) in [
            (est.mean_of_ratios, exact.mean_of_ratios),
            (est.ratio_of_means, exact.ratio_of_means),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(
                e.estimator,
                Estimator::MonteCarlo {
                    samples: n,
                    converged: Some(false)
                }
            );
            assert!(e.std_error > 0.0 && e.std_error.is_finite());
            z[k].push((e.value - x.value) / e.std_error);
        }
    }
    for (name, z) in ["mean of ratios", "ratio of means"].iter().zip(&z) {
        let mean_sq = z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64;
        let beyond3 = z.iter().filter(|v| v.abs() > 3.0).count();
        assert!((0.7..=1.4).contains(&mean_sq), "{name}: mean z² = {mean_sq}");
        assert!(beyond3 <= 5, "{name}: {beyond3} of {r_seeds} beyond 3 SE");
    }
}

/// MiniBS: the same check, smaller (each batch is a Lanczos solve): `R = 200`, `n = 50` (t₄₉,
/// `E z² ≈ 1.04`, sd of the mean ≈ 0.1, band ±3 sd; count of `|z| > 3`: mean 0.8, `P(≥ 5) ≈ 0.001`).
#[test]
fn mini_bs_standard_error_is_honest_across_seeds() {
    let (m, theta) = common::mlp(10, 2, 3, 1, LossKind::Mse { half: true }, 4);
    let lo = LanczosOptions {
        tol: 1e-12,
        max_iter: 100,
        ritz_vectors: false,
        ..Default::default()
    };
    let exact = mini_bs(&m, &theta, Batch::Full, 2, &BatchExpectation::Exact, &lo).unwrap();
    let z: Vec<f64> = (0..200u64)
        .map(|seed| {
            let mc = MonteCarloOptions {
                seed: 7000 + seed,
                min_batches: 50,
                max_batches: 50,
                rel_se_tol: 0.0,
                round: 25,
            };
            let e = mini_bs(&m, &theta, Batch::Full, 2, &BatchExpectation::MonteCarlo(mc), &lo).unwrap();
            (e.estimate.value - exact.estimate.value) / e.estimate.std_error
        })
        .collect();
    let mean_sq = z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64;
    assert!((0.7..=1.4).contains(&mean_sq), "mean z² = {mean_sq}");
    assert!(z.iter().filter(|v| v.abs() > 3.0).count() <= 4);
}

#[test]
fn seed_moves_monte_carlo_only_and_reproduces_bitwise() {
    let (m, theta) = common::mlp(30, 3, 4, 2, LossKind::CrossEntropy, 3);
    let auto = |seed: u64, max_exact: u64| BatchExpectation::Auto {
        max_exact,
        monte_carlo: MonteCarloOptions {
            seed,
            max_batches: 200,
            ..Default::default()
        },
    };
    let bits = |s: &BatchSharpness| {
        [s.mean_of_ratios, s.ratio_of_means].map(|e| (e.value.to_bits(), e.std_error.to_bits()))
    };
    let run = |mode| batch_sharpness(&m, &theta, Batch::Full, 2, &mode).unwrap();
    // C(30, 2) = 435 batches: exact, whatever the seed.
    let (e1, e2) = (run(auto(1, 435)), run(auto(2, 435)));
    assert!(e1.mean_of_ratios.is_exact());
    assert_eq!(bits(&e1), bits(&e2));
    // Below the count: Monte Carlo; the seed changes the estimate, the same seed repeats it bitwise.
    let (a1, a2, b1) = (run(auto(1, 434)), run(auto(1, 434)), run(auto(2, 434)));
    assert!(!a1.mean_of_ratios.is_exact());
    assert_eq!(bits(&a1), bits(&a2));
    assert_ne!(a1.mean_of_ratios.value, b1.mean_of_ratios.value);
    assert_ne!(a1.ratio_of_means.value, b1.ratio_of_means.value);
}

#[test]
fn default_enumerates_up_to_the_exact_threshold() {
    assert_eq!(DEFAULT_MAX_EXACT, 100_000);
    assert!(matches!(
        BatchExpectation::default(),
        BatchExpectation::Auto {
            max_exact: DEFAULT_MAX_EXACT,
            ..
        }
    ));
    // C(23, 4) = 8855 batches (above the former threshold of 2000): exact by default.
    let lr = common::linreg(23, 2, 5);
    let theta = rng::normal_vec(&mut rng::stream(5, 7), lr.dim());
    let bs = batch_sharpness(&lr, &theta, Batch::Full, 4, &BatchExpectation::default()).unwrap();
    assert_eq!(bs.mean_of_ratios.estimator, Estimator::Exact { terms: 8855 });
    // C(100, 4) ≈ 3.9·10⁶: Monte Carlo with its standard error and sample count.
    let big = common::linreg(100, 2, 5);
    let bs = batch_sharpness(&big, &theta, Batch::Full, 4, &BatchExpectation::default()).unwrap();
    let e = bs.mean_of_ratios;
    assert!(!e.is_exact() && e.std_error > 0.0 && e.samples() >= 20 && e.samples() <= 1000);
    // A pool too large for u64 batches is Monte Carlo by default and a typed error when exact is forced.
    let huge = common::linreg(200, 1, 5);
    let th = rng::normal_vec(&mut rng::stream(5, 8), huge.dim());
    assert_eq!(binomial(200, 100), None);
    assert!(matches!(
        batch_sharpness(&huge, &th, Batch::Full, 100, &BatchExpectation::Exact),
        Err(SpectraError::TooMany { .. })
    ));
    let mc = batch_sharpness(&huge, &th, Batch::Full, 100, &BatchExpectation::default()).unwrap();
    assert!(!mc.mean_of_ratios.is_exact());
}

#[test]
fn monte_carlo_budgets_are_validated() {
    let lr = common::linreg(10, 2, 1);
    let theta = vec![0.1; lr.dim()];
    for mc in [
        MonteCarloOptions {
            max_batches: 1,
            min_batches: 1,
            ..Default::default()
        },
        MonteCarloOptions {
            max_batches: MONTE_CARLO_LIMIT + 1,
            ..Default::default()
        },
        MonteCarloOptions {
            rel_se_tol: f64::NAN,
            ..Default::default()
        },
        MonteCarloOptions {
            round: usize::MAX,
            min_batches: 50,
            max_batches: 40,
            ..Default::default()
        },
    ] {
        let r = batch_sharpness(&lr, &theta, Batch::Full, 2, &BatchExpectation::MonteCarlo(mc));
        assert!(matches!(r, Err(SpectraError::Invalid { .. })), "{mc:?}: {r:?}");
    }
    // A huge round is capped, not allocated.
    let mc = MonteCarloOptions {
        round: usize::MAX,
        max_batches: 30,
        ..Default::default()
    };
    let r = batch_sharpness(&lr, &theta, Batch::Full, 2, &BatchExpectation::MonteCarlo(mc)).unwrap();
    assert!(r.mean_of_ratios.samples() <= 30);
}

/// The sampled true Fisher trace: exact with `FisherSampling::Exact` (cross-entropy: a sum over the classes),
/// Monte Carlo with an honest stratified SE with `Sampled` (the `z`-check above: `R = 200` seeds of `S = 4`
/// labels on each of 12 examples, i.e. 48 draws per estimate, the variance estimated from 3 degrees of
/// freedom per example, which puts `E z²` somewhat above 1; `mean z² ∈ [0.7, 1.4]` is about ±3 sd of
/// the mean of 200 `z²`, at most 4 draws beyond `3 SE`: mean count ≈ 0.6–1, `P(≥ 5) < 0.5 %`).
#[test]
fn sampled_fisher_trace_standard_error_is_honest() {
    let (m, theta) = common::mlp(12, 3, 4, 3, LossKind::CrossEntropy, 6);
    let exact = FisherOperator::new(&m, &theta, Batch::Full, FisherSampling::Exact)
        .unwrap()
        .trace_estimate()
        .unwrap();
    assert_eq!(exact.estimator, Estimator::Exact { terms: 12 });
    let z: Vec<f64> = (0..200u64)
        .map(|seed| {
            let f = FisherOperator::new(
                &m,
                &theta,
                Batch::Full,
                FisherSampling::Sampled { samples: 4, seed },
            )
            .unwrap();
            let e = f.trace_estimate().unwrap();
            assert_eq!(
                e.estimator,
                Estimator::MonteCarlo {
                    samples: 48,
                    converged: None
                }
            );
            assert_eq!(e.value.to_bits(), f.trace().unwrap().to_bits());
            (e.value - exact.value) / e.std_error
        })
        .collect();
    let mean_sq = z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64;
    assert!((0.7..=1.4).contains(&mean_sq), "mean z² = {mean_sq}");
    assert!(z.iter().filter(|v| v.abs() > 3.0).count() <= 4);
}
