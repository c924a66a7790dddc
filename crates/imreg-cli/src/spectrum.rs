//! Curvature summaries through imreg-spectra: the extreme Hessian eigenvalues (dense for small `p`,
//! Lanczos otherwise), the Hessian trace, and the traces of the gradient covariance `K` and the empirical
//! Fisher `F`.
use crate::data::STREAM_SPECTRUM;
use imreg_objective::{Batch, Objective};
use imreg_spectra::{
    batch_sharpness, dense_eigen, exact_trace, gradient_covariance_top, hutch_plus_plus, lanczos, mini_bs,
    sharpness, BatchExpectation, CovarianceOptions, CovarianceRoute, DenseOptions, GradientOuterOperator,
    HessianOperator, LanczosOptions, MonteCarloOptions, TraceOptions,
};
use serde::Serialize;

/// Up to this many parameters the Hessian is formed densely (p HVPs) and diagonalized exactly.
pub const DENSE_MAX_P: usize = 400;

/// The `k` largest and smallest Hessian eigenvalues.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Extremes {
    /// Descending.
    pub top: Vec<f64>,
    /// Ascending.
    pub bottom: Vec<f64>,
    /// `"dense"` or `"lanczos"`.
    pub method: &'static str,
    /// Lanczos converged (always true for dense).
    pub converged: bool,
}

/// Extreme eigenvalues of `∇²C_B(θ)`; `k_top`/`k_bottom` are capped at `p`.
pub fn hessian_extremes(
    obj: &dyn Objective,
    theta: &[f64],
    batch: Batch<'_>,
    k_top: usize,
    k_bottom: usize,
    seed: u64,
) -> imreg_spectra::Result<Extremes> {
    let p = obj.dim();
    let h = HessianOperator::new(obj, theta, batch)?;
    let (k_top, k_bottom) = (k_top.min(p), k_bottom.min(p));
    if p <= DENSE_MAX_P {
        let e = dense_eigen(&h, &DenseOptions::default())?;
        return Ok(Extremes {
            top: e.top(k_top),
            bottom: e.bottom(k_bottom),
            method: "dense",
            converged: true,
        });
    }
    let opts = LanczosOptions {
        max_iter: p.min(300),
        k_top: k_top.max(1),
        k_bottom,
        tol: 1e-8,
        seed: seed ^ STREAM_SPECTRUM,
        ritz_vectors: false,
        ..LanczosOptions::default()
    };
    let r = lanczos(&h, &opts)?;
    Ok(Extremes {
        top: r.top.iter().take(k_top).map(|t| t.value).collect(),
        bottom: r.bottom.iter().map(|t| t.value).collect(),
        method: "lanczos",
        converged: r.report.converged,
    })
}

/// `λ_max(∇²C(θ))` on the full batch (dense for small `p`).
pub fn full_sharpness(obj: &dyn Objective, theta: &[f64], seed: u64) -> imreg_spectra::Result<f64> {
    if obj.dim() <= DENSE_MAX_P {
        return Ok(hessian_extremes(obj, theta, Batch::Full, 1, 0, seed)?
            .top
            .first()
            .copied()
            .unwrap_or(f64::NAN));
    }
    let opts = LanczosOptions {
        max_iter: obj.dim().min(300),
        tol: 1e-8,
        seed,
        ritz_vectors: false,
        ..Default::default()
    };
    Ok(sharpness(obj, theta, Batch::Full, &opts)?.value)
}

/// `Tr ∇²C(θ)`: exact for small `p`, Hutch++ (with its standard error) otherwise. Returns `(trace, se)`.
pub fn hessian_trace(obj: &dyn Objective, theta: &[f64], seed: u64) -> imreg_spectra::Result<(f64, f64)> {
    let h = HessianOperator::new(obj, theta, Batch::Full)?;
    if obj.dim() <= DENSE_MAX_P {
        return Ok((exact_trace(&h)?, 0.0));
    }
    let t = hutch_plus_plus(
        &h,
        &TraceOptions {
            seed,
            ..TraceOptions::default()
        },
    )?;
    Ok((t.estimate, t.std_error))
}

/// `Tr K` (gradient covariance, `1/N`) and `Tr F` (empirical Fisher), exact in one streamed pass each.
pub fn gradient_traces(obj: &dyn Objective, theta: &[f64]) -> imreg_spectra::Result<(f64, f64)> {
    let k = GradientOuterOperator::covariance(obj, theta, Batch::Full, Default::default())?.trace()?;
    let f = GradientOuterOperator::empirical_fisher(obj, theta, Batch::Full, 256)?.trace()?;
    Ok((k, f))
}

/// `λ_K¹`, the top eigenvalue of the gradient covariance `K = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ` on the full
/// batch: dense `N × N` Gram matrix when `N < p`, dense `p × p` operator for small `p`, Lanczos otherwise.
pub fn lambda_k1(obj: &dyn Objective, theta: &[f64], seed: u64) -> imreg_spectra::Result<f64> {
    let p = obj.dim();
    if p <= DENSE_MAX_P && obj.n_examples() >= p {
        let k = GradientOuterOperator::covariance(obj, theta, Batch::Full, CovarianceOptions::default())?;
        return Ok(dense_eigen(&k, &DenseOptions::default())?.max());
    }
    let route = CovarianceRoute::Operator(LanczosOptions {
        max_iter: p.min(300),
        tol: 1e-8,
        seed: seed ^ STREAM_SPECTRUM,
        ritz_vectors: false,
        ..LanczosOptions::default()
    });
    let route = if obj.n_examples() < p {
        CovarianceRoute::Auto
    } else {
        route
    };
    Ok(gradient_covariance_top(obj, theta, Batch::Full, CovarianceOptions::default(), &route)?.value)
}

/// Expectation over size-`b` batches: exact when `C(N, b) ≤ 2000`, Monte Carlo with at most `max_batches`
/// seeded batches otherwise.
pub fn batch_expectation(seed: u64, max_batches: usize) -> BatchExpectation {
    BatchExpectation::Auto {
        max_exact: 2000,
        monte_carlo: MonteCarloOptions {
            seed,
            min_batches: max_batches.min(20),
            max_batches,
            ..MonteCarloOptions::default()
        },
    }
}

/// Batch sharpness in both variants, `(E_B[g_BᵀH_Bg_B/‖g_B‖²], E_B[g_BᵀH_Bg_B]/E_B[‖g_B‖²])`.
pub fn batch_sharpness_pair(
    obj: &dyn Objective,
    theta: &[f64],
    b: usize,
    mode: &BatchExpectation,
) -> imreg_spectra::Result<(f64, f64)> {
    let s = batch_sharpness(obj, theta, Batch::Full, b, mode)?;
    Ok((s.mean_of_ratios.value, s.ratio_of_means.value))
}

/// MiniBS `E_B[λ_max(H_B)]` over size-`b` batches.
pub fn mini_batch_sharpness(
    obj: &dyn Objective,
    theta: &[f64],
    b: usize,
    mode: &BatchExpectation,
    seed: u64,
) -> imreg_spectra::Result<f64> {
    let lo = LanczosOptions {
        max_iter: obj.dim().min(100),
        tol: 1e-8,
        seed: seed ^ STREAM_SPECTRUM,
        ritz_vectors: false,
        ..LanczosOptions::default()
    };
    Ok(mini_bs(obj, theta, Batch::Full, b, mode, &lo)?.estimate.value)
}
