//! The sharpness family (Cohen et al. 2021; Andreyev & Beneventano 2024/25; Lee & Jang 2023; Jastrzebski
//! et al. 2020/21), with `g_B = ∇C_B`, `H_B = ∇²C_B`, `H = ∇²C` over a pool of `N` examples and `B` a
//! uniformly random size-`b` subset of the pool (without replacement within a batch):
//!
//! | quantity | formula | function |
//! |---|---|---|
//! | sharpness | `λ_max(H)` | [`sharpness()`] |
//! | step sharpness | `g_BᵀH_Bg_B / ‖g_B‖²` on one batch | [`step_sharpness`] |
//! | batch sharpness (mean of ratios, EoSS Def. 3, default of the official code) | `E_B[g_BᵀH_Bg_B / ‖g_B‖²]` | [`batch_sharpness`] |
//! | batch sharpness (ratio of means, EoSS App. F / first code) | `E_B[g_BᵀH_Bg_B] / E_B[‖g_B‖²]` | [`batch_sharpness`] |
//! | MiniBS (EoSS v1) | `E_B[λ_max(H_B)]` | [`mini_bs`] |
//! | GNI (Lee & Jang) | `E_B[g_BᵀHg_B] / ‖∇C‖²` | [`gni_ias`] |
//! | IAS (Lee & Jang) | `E_B[g_BᵀHg_B] / E_B[‖g_B‖²]` | [`gni_ias`] |
//! | `λ_K¹`, `Tr K` (= Smith's `Γ`), `Tr F` | | [`gradient_covariance_top`], [`trace_gradient_covariance`], [`fisher_trace`] |
//!
//! Exact identities (`docs/theory/stochastic-stability.md` §Exact facts): `MiniBS ≥ λ_max(H)` (Jensen:
//! `λ_max` is convex and `E_B H_B = H`), with equality at `b = N`; mean-of-ratios batch sharpness `≤ MiniBS`
//! (each ratio is a Rayleigh quotient of
//! `H_B`); the ratio-of-means variant has no such bound. For linear regression and `b = 1`, both MiniBS and
//! the mean-of-ratios batch sharpness equal `tr(H)`.
//!
//! Every expectation over `B` is computed either **exactly**, over all `C(N, b)` subsets, or by **Monte
//! Carlo** over seeded batches (batch `k` from stream `(seed, k)`) with a stop on the relative standard
//! error; the [`Estimator`] in the result says which. Batches are evaluated rayon-parallel in fixed rounds
//! and reduced in batch order, so results are bitwise identical at any thread count.
use crate::error::{Result, SpectraError};
use crate::estimate::{mean_se as sample_mean_se, Estimate, Estimator};
use crate::lanczos::{lanczos, LanczosOptions, LanczosReport};
use crate::operators::{
    check_theta_batch, CovarianceOptions, FisherOperator, FisherSampling, GradientOuterOperator,
    GramCovariance, HessianOperator,
};
use crate::vector::dot;
use imreg_objective::{rng, Batch, Objective, Supervised};
use rayon::prelude::*;

/// Exact enumeration refuses more batches than this.
pub const EXACT_LIMIT: u64 = 10_000_000;

/// Default of [`BatchExpectation::Auto`]: enumerate exactly when `C(N, b)` is at most this many batches.
/// Enumeration costs one evaluation per batch, like a Monte Carlo sample, and has no error; at `10⁵` it
/// costs at most 100 times the default Monte Carlo budget ([`MonteCarloOptions::default`]: ≤ 1000 batches)
/// and a few seconds on the problem sizes `imreg analyze` sees (docs/spectra.md).
pub const DEFAULT_MAX_EXACT: u64 = 100_000;

/// Monte Carlo refuses a budget above this many batches (the per-batch statistics are kept in memory).
pub const MONTE_CARLO_LIMIT: usize = 10_000_000;

/// Options of Monte Carlo over batches.
#[derive(Clone, Copy, Debug)]
pub struct MonteCarloOptions {
    /// Seed; batch `k` is drawn from stream `(seed, k)`.
    pub seed: u64,
    /// Never stop before this many batches.
    pub min_batches: usize,
    /// Never use more (stop unconverged).
    pub max_batches: usize,
    /// Stop once the relative standard error `SE/|estimate|` is below this (EoSS code: 0.005).
    pub rel_se_tol: f64,
    /// Batches per parallel round (the stop rule is checked between rounds).
    pub round: usize,
}

impl Default for MonteCarloOptions {
    fn default() -> Self {
        MonteCarloOptions {
            seed: 0,
            min_batches: 20,
            max_batches: 1000,
            rel_se_tol: 0.005,
            round: 20,
        }
    }
}

/// How an expectation over batches is computed.
#[derive(Clone, Copy, Debug)]
pub enum BatchExpectation {
    /// Over all `C(N, b)` size-`b` subsets of the pool, equally weighted (errors above [`EXACT_LIMIT`]).
    Exact,
    /// Monte Carlo over seeded uniformly random size-`b` subsets.
    MonteCarlo(MonteCarloOptions),
    /// Exact if `C(N, b) ≤ max_exact`, Monte Carlo otherwise (default: [`DEFAULT_MAX_EXACT`]).
    Auto {
        max_exact: u64,
        monte_carlo: MonteCarloOptions,
    },
}

impl Default for BatchExpectation {
    fn default() -> Self {
        BatchExpectation::Auto {
            max_exact: DEFAULT_MAX_EXACT,
            monte_carlo: MonteCarloOptions::default(),
        }
    }
}

/// `C(n, k)` by the multiplicative formula `C(n, i+1) = C(n, i)·(n − i)/(i + 1)` in checked arithmetic;
/// `None` if it exceeds `u64::MAX` (or an intermediate product would overflow `u128`).
pub fn binomial(n: usize, k: usize) -> Option<u64> {
    if k > n {
        return Some(0);
    }
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        // C(n, i)·(n − i) is divisible by i + 1, so the division is exact.
        c = c.checked_mul((n - i) as u128)? / (i + 1) as u128;
        if c > u64::MAX as u128 {
            return None;
        }
    }
    Some(c as u64)
}

/// Advances `c` (strictly increasing positions in `0..n`) to the next combination in lexicographic order;
/// `false` after the last one.
fn next_combination(c: &mut [usize], n: usize) -> bool {
    let k = c.len();
    let mut i = k;
    while i > 0 {
        i -= 1;
        if c[i] < n - k + i {
            c[i] += 1;
            for j in i + 1..k {
                c[j] = c[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

/// The per-batch statistics of an expectation, in batch order, and how they were drawn.
struct Samples {
    rows: Vec<Vec<f64>>,
    exact: bool,
    converged: bool,
}

type Eval<'a> = dyn Fn(&[usize]) -> Result<Vec<f64>> + Sync + 'a;
type Summary<'a> = dyn Fn(&[Vec<f64>]) -> (f64, f64) + 'a;

fn evaluate_round(batches: &[Vec<usize>], eval: &Eval<'_>) -> Result<Vec<Vec<f64>>> {
    let out: Vec<Result<Vec<f64>>> = batches.par_iter().map(|b| eval(b)).collect();
    out.into_iter().collect()
}

impl MonteCarloOptions {
    fn validate(&self) -> Result<()> {
        if self.max_batches < 2
            || self.max_batches > MONTE_CARLO_LIMIT
            || self.min_batches > self.max_batches
            || self.rel_se_tol.is_nan()
            || self.rel_se_tol < 0.0
        {
            return Err(SpectraError::invalid(
                "MonteCarloOptions",
                format!(
                    "need 2 ≤ min_batches ≤ max_batches ≤ {MONTE_CARLO_LIMIT} and rel_se_tol ≥ 0, got {self:?}"
                ),
            ));
        }
        Ok(())
    }
}

/// Validates the batch size against the pool and runs the expectation engine. `eval` receives dataset
/// indices; `summary` maps the rows so far to `(estimate, std_error)` for the Monte Carlo stop rule.
fn sample_batches(
    pool: Batch<'_>,
    n_data: usize,
    b: usize,
    mode: &BatchExpectation,
    eval: &Eval<'_>,
    summary: &Summary<'_>,
) -> Result<Samples> {
    pool.validate(n_data)?;
    let n = pool.len(n_data);
    if b == 0 {
        return Err(SpectraError::invalid("batch size b", "must be ≥ 1"));
    }
    if b > n {
        return Err(SpectraError::BatchTooLarge { b, n });
    }
    // `None`: more than u64::MAX batches, far beyond any exact threshold.
    let count = binomial(n, b);
    let exact = match mode {
        BatchExpectation::Exact => true,
        BatchExpectation::MonteCarlo(_) => false,
        BatchExpectation::Auto { max_exact, .. } => count.is_some_and(|c| c <= *max_exact),
    };
    let to_data = |pos: &[usize]| -> Vec<usize> { pos.iter().map(|&k| pool.index(k)).collect() };
    const ROUND: usize = 512;
    if exact {
        let count = match count {
            Some(c) if c <= EXACT_LIMIT => c,
            _ => {
                return Err(SpectraError::TooMany {
                    what: format!("batches C({n}, {b}) for exact enumeration"),
                    k: count.map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX)),
                    p: EXACT_LIMIT as usize,
                })
            }
        };
        let mut rows = Vec::with_capacity(count as usize);
        let mut c: Vec<usize> = (0..b).collect();
        let mut more = true;
        while more {
            let mut round = Vec::with_capacity(ROUND);
            while more && round.len() < ROUND {
                round.push(to_data(&c));
                more = next_combination(&mut c, n);
            }
            rows.extend(evaluate_round(&round, eval)?);
        }
        return Ok(Samples {
            rows,
            exact: true,
            converged: true,
        });
    }
    let mc = match mode {
        BatchExpectation::MonteCarlo(mc) | BatchExpectation::Auto { monte_carlo: mc, .. } => *mc,
        BatchExpectation::Exact => unreachable!("handled above"),
    };
    mc.validate()?;
    let round = mc.round.clamp(1, ROUND);
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(mc.max_batches.min(ROUND));
    let mut converged = false;
    while rows.len() < mc.max_batches {
        let start = rows.len();
        let end = (start + round).min(mc.max_batches);
        let batches: Vec<Vec<usize>> = (start..end)
            .map(|k| {
                let mut pos = rand::seq::index::sample(&mut rng::stream(mc.seed, k as u64), n, b).into_vec();
                pos.sort_unstable();
                to_data(&pos)
            })
            .collect();
        rows.extend(evaluate_round(&batches, eval)?);
        if rows.len() >= mc.min_batches.max(2) {
            let (v, se) = summary(&rows);
            if se / v.abs() <= mc.rel_se_tol {
                converged = true;
                break;
            }
        }
    }
    Ok(Samples {
        rows,
        exact: false,
        converged,
    })
}

impl Samples {
    fn estimate(&self, (value, se): (f64, f64)) -> Estimate {
        if self.exact {
            Estimate::exact(value, self.rows.len() as u64)
        } else {
            Estimate {
                value,
                std_error: se,
                estimator: Estimator::MonteCarlo {
                    samples: self.rows.len(),
                    converged: Some(self.converged),
                },
            }
        }
    }
}

/// Mean and standard error of column `j`.
fn mean_se(rows: &[Vec<f64>], j: usize) -> (f64, f64) {
    sample_mean_se(rows.iter().map(|r| r[j]))
}

/// `Σ a / Σ b` over columns `a`, `b` with its delta-method standard error
/// `SE = sqrt(Σ(a_i − R b_i)²/((n−1) n)) / mean(b)`.
fn ratio_se(rows: &[Vec<f64>], a: usize, b: usize) -> (f64, f64) {
    let n = rows.len() as f64;
    let sa: f64 = rows.iter().map(|r| r[a]).sum();
    let sb: f64 = rows.iter().map(|r| r[b]).sum();
    let ratio = sa / sb;
    if rows.len() < 2 {
        return (ratio, f64::INFINITY);
    }
    let var = rows.iter().map(|r| (r[a] - ratio * r[b]).powi(2)).sum::<f64>() / (n - 1.0);
    (ratio, (var / n).sqrt() / (sb / n))
}

/// `λ_max(H_B)` with its Lanczos report.
#[derive(Clone, Debug)]
pub struct Sharpness {
    /// The largest Ritz value.
    pub value: f64,
    /// Its unit Ritz vector (warm start for the next call along a trajectory).
    pub vector: Option<Vec<f64>>,
    /// The Lanczos report (converged or not, residual).
    pub report: LanczosReport,
}

/// The sharpness `λ_max(H_B(θ))` by Lanczos (`opts.k_top` is forced to 1, `k_bottom` to 0).
///
/// ```
/// use imreg_objective::{Batch, Objective};
/// # use imreg_spectra::{sharpness, LanczosOptions};
/// # fn demo(obj: &dyn Objective, theta: &[f64]) -> imreg_spectra::Result<f64> {
/// let s = sharpness(obj, theta, Batch::Full, &LanczosOptions::default())?;
/// assert!(s.report.converged);
/// # Ok(s.value) }
/// ```
pub fn sharpness<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    batch: Batch<'_>,
    opts: &LanczosOptions,
) -> Result<Sharpness> {
    let h = HessianOperator::new(obj, theta, batch)?;
    let r = lanczos(
        &h,
        &LanczosOptions {
            k_top: 1,
            k_bottom: 0,
            ..opts.clone()
        },
    )?;
    let top = r.top.into_iter().next();
    Ok(Sharpness {
        value: top.as_ref().map_or(f64::NAN, |t| t.value),
        vector: top.and_then(|t| t.vector),
        report: r.report,
    })
}

/// `g_BᵀH_Bg_B` and `‖g_B‖²` on one batch (one gradient and one HVP).
fn curvature_along_gradient<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    batch: Batch<'_>,
) -> Result<(f64, f64)> {
    let g = obj.grad(theta, batch)?;
    let gg = dot(&g, &g);
    if gg == 0.0 {
        return Err(SpectraError::ZeroVector {
            what: format!("batch gradient g_B (batch {batch:?})"),
        });
    }
    let hg = obj.hvp_vec(theta, batch, &g)?;
    Ok((dot(&g, &hg), gg))
}

/// Step sharpness `g_BᵀH_Bg_B / ‖g_B‖²` on one batch (errors if `g_B = 0`).
pub fn step_sharpness<O: Objective + ?Sized>(obj: &O, theta: &[f64], batch: Batch<'_>) -> Result<f64> {
    check_theta_batch(obj, theta, batch)?;
    let (ghg, gg) = curvature_along_gradient(obj, theta, batch)?;
    Ok(ghg / gg)
}

/// Both published variants of batch sharpness, from the same batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchSharpness {
    /// `E_B[g_BᵀH_Bg_B / ‖g_B‖²]` (expectation outside; EoSS Def. 3, `--batch-sharpness`).
    pub mean_of_ratios: Estimate,
    /// `E_B[g_BᵀH_Bg_B] / E_B[‖g_B‖²]` (expectation inside; EoSS App. F, `--batch-sharpness-exp-inside`),
    /// standard error by the delta method.
    pub ratio_of_means: Estimate,
}

/// Batch sharpness in both variants over size-`b` batches of `pool`. Monte Carlo stops when both relative
/// standard errors are below the tolerance. Errors if some batch gradient is zero (the ratio is undefined).
pub fn batch_sharpness<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    pool: Batch<'_>,
    b: usize,
    mode: &BatchExpectation,
) -> Result<BatchSharpness> {
    check_theta_batch(obj, theta, pool)?;
    let eval = |ix: &[usize]| -> Result<Vec<f64>> {
        let (ghg, gg) = curvature_along_gradient(obj, theta, Batch::Indices(ix))?;
        Ok(vec![ghg / gg, ghg, gg])
    };
    let summary = |rows: &[Vec<f64>]| {
        let (m, sm) = mean_se(rows, 0);
        let (r, sr) = ratio_se(rows, 1, 2);
        // the worse of the two relative errors, expressed relative to the mean of ratios
        let rel = (sm / m.abs()).max(sr / r.abs());
        (m, rel * m.abs())
    };
    let s = sample_batches(pool, obj.n_examples(), b, mode, &eval, &summary)?;
    Ok(BatchSharpness {
        mean_of_ratios: s.estimate(mean_se(&s.rows, 0)),
        ratio_of_means: s.estimate(ratio_se(&s.rows, 1, 2)),
    })
}

/// MiniBS `E_B[λ_max(H_B)]` with the Lanczos outcome of the per-batch solves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiniBs {
    /// The expectation.
    pub estimate: Estimate,
    /// Batches whose Lanczos solve did not converge (their value is still the best Ritz value).
    pub unconverged_batches: usize,
    /// Largest relative residual bound over the per-batch solves.
    pub max_relative_residual: f64,
    /// `max_B λ_max(H_B)` over the batches evaluated (the EoSS code logs it too).
    pub max_over_batches: f64,
}

/// MiniBS `E_B[λ_max(H_B)]` over size-`b` batches of `pool`, each `λ_max(H_B)` by Lanczos with `lanczos`.
pub fn mini_bs<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    pool: Batch<'_>,
    b: usize,
    mode: &BatchExpectation,
    lanczos_opts: &LanczosOptions,
) -> Result<MiniBs> {
    check_theta_batch(obj, theta, pool)?;
    let lo = LanczosOptions {
        ritz_vectors: false,
        true_residuals: false,
        ..lanczos_opts.clone()
    };
    let eval = |ix: &[usize]| -> Result<Vec<f64>> {
        let s = sharpness(obj, theta, Batch::Indices(ix), &lo)?;
        Ok(vec![
            s.value,
            if s.report.converged { 0.0 } else { 1.0 },
            s.report.max_relative_residual,
        ])
    };
    let summary = |rows: &[Vec<f64>]| mean_se(rows, 0);
    let s = sample_batches(pool, obj.n_examples(), b, mode, &eval, &summary)?;
    Ok(MiniBs {
        estimate: s.estimate(mean_se(&s.rows, 0)),
        unconverged_batches: s.rows.iter().filter(|r| r[1] > 0.0).count(),
        max_relative_residual: s.rows.iter().map(|r| r[2]).fold(0.0, f64::max),
        max_over_batches: s.rows.iter().map(|r| r[0]).fold(f64::NEG_INFINITY, f64::max),
    })
}

/// GNI and IAS from the same batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GniIas {
    /// `GNI = E_B[g_BᵀHg_B] / ‖∇C‖²` (`H`, `∇C` over the whole pool).
    pub gni: Estimate,
    /// `IAS = E_B[g_BᵀHg_B] / E_B[‖g_B‖²]`.
    pub ias: Estimate,
}

/// GNI and IAS (Lee & Jang 2023) over size-`b` batches of `pool`; `H` and `∇C` are those of the pool.
/// Errors if the pool gradient is zero.
pub fn gni_ias<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    pool: Batch<'_>,
    b: usize,
    mode: &BatchExpectation,
) -> Result<GniIas> {
    check_theta_batch(obj, theta, pool)?;
    let g = obj.grad(theta, pool)?;
    let gg_full = dot(&g, &g);
    if gg_full == 0.0 {
        return Err(SpectraError::ZeroVector {
            what: "pool gradient ∇C (GNI denominator)".into(),
        });
    }
    let eval = |ix: &[usize]| -> Result<Vec<f64>> {
        let gb = obj.grad(theta, Batch::Indices(ix))?;
        let hgb = obj.hvp_vec(theta, pool, &gb)?;
        Ok(vec![dot(&gb, &hgb), dot(&gb, &gb)])
    };
    let summary = |rows: &[Vec<f64>]| {
        let (m, sm) = mean_se(rows, 0);
        let (r, sr) = ratio_se(rows, 0, 1);
        let rel = (sm / m.abs()).max(sr / r.abs());
        (m, rel * m.abs())
    };
    let s = sample_batches(pool, obj.n_examples(), b, mode, &eval, &summary)?;
    let (m, sm) = mean_se(&s.rows, 0);
    Ok(GniIas {
        gni: s.estimate((m / gg_full, sm / gg_full)),
        ias: s.estimate(ratio_se(&s.rows, 0, 1)),
    })
}

/// How to compute the top eigenvalue of the gradient covariance.
#[derive(Clone, Debug)]
pub enum CovarianceRoute {
    /// Lanczos on the streamed operator (memory `O(chunk · p)`, `N` per-example gradients per application).
    Operator(LanczosOptions),
    /// Dense eigensolve of the `N × N` Gram matrix (memory `N p`).
    Gram,
    /// Gram if `N < p` and `N p ≤ 5·10⁷`, else the operator with default Lanczos options.
    Auto,
}

/// `λ_K¹` and the route that computed it.
#[derive(Clone, Debug)]
pub struct CovarianceTop {
    /// `λ_K¹`.
    pub value: f64,
    /// `true` if the Gram route was used.
    pub gram: bool,
    /// The Lanczos report (operator route).
    pub report: Option<LanczosReport>,
}

/// `λ_K¹`, the largest eigenvalue of the gradient covariance `K` of the batch.
pub fn gradient_covariance_top<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    batch: Batch<'_>,
    cov: CovarianceOptions,
    route: &CovarianceRoute,
) -> Result<CovarianceTop> {
    let n = check_theta_batch(obj, theta, batch)?;
    let p = obj.dim();
    let use_gram = match route {
        CovarianceRoute::Gram => true,
        CovarianceRoute::Operator(_) => false,
        CovarianceRoute::Auto => n < p && (n as u64) * (p as u64) <= 50_000_000,
    };
    if use_gram {
        let g = GramCovariance::new(obj, theta, batch, cov)?;
        return Ok(CovarianceTop {
            value: g.top_eigenvalue()?,
            gram: true,
            report: None,
        });
    }
    let lo = match route {
        CovarianceRoute::Operator(lo) => lo.clone(),
        _ => LanczosOptions::default(),
    };
    let k = GradientOuterOperator::covariance(obj, theta, batch, cov)?;
    let r = lanczos(
        &k,
        &LanczosOptions {
            k_top: 1,
            k_bottom: 0,
            ritz_vectors: false,
            ..lo
        },
    )?;
    Ok(CovarianceTop {
        value: r.max(),
        gram: false,
        report: Some(r.report),
    })
}

pub use crate::operators::trace_gradient_covariance;

/// `Tr F`, the trace of the true Fisher of the batch (see [`FisherOperator::trace`]).
pub fn fisher_trace<O: Supervised + ?Sized>(
    obj: &O,
    theta: &[f64],
    batch: Batch<'_>,
    sampling: FisherSampling,
) -> Result<f64> {
    FisherOperator::new(obj, theta, batch, sampling)?.trace()
}

/// `Tr F_emp = (1/N) Σ_i ‖g_i‖²`, the trace of the empirical Fisher of the batch.
pub fn empirical_fisher_trace<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    batch: Batch<'_>,
) -> Result<f64> {
    GradientOuterOperator::empirical_fisher(obj, theta, batch, 256)?.trace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_enumerate_binomial_many_in_order() {
        for n in 1..8 {
            for k in 1..=n {
                let mut c: Vec<usize> = (0..k).collect();
                let mut count = 1;
                let mut prev = c.clone();
                while next_combination(&mut c, n) {
                    assert!(c > prev && c.windows(2).all(|w| w[0] < w[1]) && c[k - 1] < n);
                    prev = c.clone();
                    count += 1;
                }
                assert_eq!(Some(count), binomial(n, k));
            }
        }
        assert_eq!(binomial(50, 25), Some(126_410_606_437_752));
        assert_eq!(binomial(3, 4), Some(0));
        // C(68, 34) > u64::MAX > C(67, 33); huge n never overflows.
        assert_eq!(binomial(67, 33), Some(14_226_520_737_620_288_370));
        assert_eq!(binomial(68, 34), None);
        assert_eq!(binomial(usize::MAX, 1), Some(usize::MAX as u64));
        assert_eq!(binomial(usize::MAX, 2), None);
        assert_eq!(binomial(usize::MAX, usize::MAX - 1), Some(usize::MAX as u64));
    }

    #[test]
    fn ratio_standard_error_matches_mean_when_denominator_constant() {
        let rows: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64, 2.0]).collect();
        let (r, se) = ratio_se(&rows, 0, 1);
        let (m, sm) = mean_se(&rows, 0);
        assert!((r - m / 2.0).abs() < 1e-15 && (se - sm / 2.0).abs() < 1e-15);
    }
}
