//! Curvature summaries through imreg-spectra: the extreme Hessian eigenvalues (dense for small `p`,
//! Lanczos otherwise), the Hessian trace, and the traces of the gradient covariance `K` and the empirical
//! Fisher `F`.
use crate::data::STREAM_SPECTRUM;
use imreg_objective::{Batch, Objective};
use imreg_spectra::{
    dense_eigen, exact_trace, hutch_plus_plus, lanczos, sharpness, DenseOptions, GradientOuterOperator,
    HessianOperator, LanczosOptions, TraceOptions,
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
