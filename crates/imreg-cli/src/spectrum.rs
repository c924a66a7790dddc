//! Curvature summaries through imreg-spectra: the extreme Hessian eigenvalues (dense for small `p`,
//! Lanczos otherwise), the Hessian trace, and the traces of the gradient covariance `K` and the empirical
//! Fisher `F`; each number that is not exact says how it was computed ([`Reported`]).
use crate::data::STREAM_SPECTRUM;
use imreg_objective::{Batch, Objective};
use imreg_spectra::{
    dense_eigen, exact_trace, gradient_covariance_top, hutch_plus_plus, lanczos, mini_bs, sharpness,
    BatchExpectation, CovarianceOptions, CovarianceRoute, DenseOptions, Estimate, Estimator,
    GradientOuterOperator, HessianOperator, LanczosOptions, LanczosReport, LinearOperator, MonteCarloOptions,
    RitzPair, StopRule, TraceOptions,
};
use serde::Serialize;

/// A reported number and how it was computed: exact (every term of a finite sum evaluated, or a dense
/// eigensolve), Monte Carlo (with its standard error and sample count), or Lanczos (an iterative eigensolve
/// to a residual tolerance).
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Reported {
    pub value: f64,
    /// `"exact"`, `"monte_carlo"` or `"lanczos"`.
    pub estimator: &'static str,
    /// The standard error of a Monte Carlo estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_error: Option<f64>,
    /// Terms evaluated (exact), samples drawn (Monte Carlo) or Lanczos steps, counted in `unit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<u64>,
    /// What `samples` counts: `"batches"`, `"probes"`, `"unit vectors"`, `"examples"`, `"steps"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// `false` when a Monte Carlo stop rule or a Lanczos tolerance was not met (the value is then the last
    /// estimate, with its standard error or residual).
    pub converged: bool,
    /// The Lanczos residual bound `‖Ay − θy‖`: an eigenvalue lies within it of `value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual_bound: Option<f64>,
}

impl Reported {
    /// An exact value, optionally a sum of `terms` terms counted in `unit`.
    pub fn exact(value: f64, terms: Option<(u64, &'static str)>) -> Self {
        Reported {
            value,
            estimator: "exact",
            std_error: None,
            samples: terms.map(|t| t.0),
            unit: terms.map(|t| t.1),
            converged: true,
            residual_bound: None,
        }
    }

    /// A library [`Estimate`], its terms or samples counted in `unit`.
    pub fn estimate(e: Estimate, unit: &'static str) -> Self {
        match e.estimator {
            Estimator::Exact { terms } => Reported::exact(e.value, Some((terms, unit))),
            Estimator::MonteCarlo { samples, .. } => Reported {
                value: e.value,
                estimator: "monte_carlo",
                std_error: Some(e.std_error),
                samples: Some(samples as u64),
                unit: Some(unit),
                converged: e.converged(),
                residual_bound: None,
            },
        }
    }

    /// The top Ritz value of a Lanczos run.
    pub fn lanczos(value: f64, report: &LanczosReport) -> Self {
        Reported {
            value,
            estimator: "lanczos",
            std_error: None,
            samples: Some(report.iterations as u64),
            unit: Some("steps"),
            converged: report.converged,
            residual_bound: None,
        }
    }

    /// A Lanczos Ritz value with its residual bound, or an exact (dense) eigenvalue.
    pub fn eigenvalue(e: &Extremes, value: f64, residual: Option<f64>) -> Self {
        match e.method {
            "dense" => Reported::exact(value, None),
            _ => Reported {
                value,
                estimator: "lanczos",
                std_error: None,
                samples: Some(e.iterations as u64),
                unit: Some("steps"),
                converged: e.converged,
                residual_bound: residual,
            },
        }
    }

    /// `1.234568e0 (exact, 8855 batches)`, `1.234568e0 ± 2.1e-3 (Monte Carlo, 1000 batches, not converged)`,
    /// `1.234568e0 (Lanczos, 40 steps)`.
    pub fn display(&self) -> String {
        let mut notes = vec![match self.estimator {
            "exact" => "exact".to_string(),
            "monte_carlo" => "Monte Carlo".to_string(),
            _ => "Lanczos".to_string(),
        }];
        if let (Some(n), Some(u)) = (self.samples, self.unit) {
            notes.push(format!("{n} {u}"));
        }
        if !self.converged {
            notes.push("not converged".into());
        }
        if let Some(r) = self.residual_bound {
            notes.push(format!("‖Hv − λv‖ ≤ {r:.1e}"));
        }
        let se = self.std_error.map_or(String::new(), |se| format!(" ± {se:.1e}"));
        format!("{:.6e}{se} ({})", self.value, notes.join(", "))
    }
}

/// Up to this many parameters the Hessian is formed densely (p HVPs) and diagonalized exactly.
pub const DENSE_MAX_P: usize = 400;

/// The `k` largest and smallest Hessian eigenvalues, with their accuracy.
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
    /// Lanczos steps (0 for dense).
    pub iterations: usize,
    /// Residual bounds `‖Hy − θy‖` of the top Ritz pairs (Lanczos; empty for dense, which is exact).
    pub top_residuals: Vec<f64>,
    /// Residual bounds of the bottom Ritz pairs.
    pub bottom_residuals: Vec<f64>,
    /// Unit eigenvectors of `top` then `bottom`, in parameter order (when asked for).
    #[serde(skip)]
    pub vectors: Vec<Vec<f64>>,
}

/// How [`hessian_extremes`] solves: dense up to `dense_max_p`, else Lanczos with these knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtremeOptions {
    pub dense_max_p: usize,
    pub max_iter: usize,
    pub tol: f64,
    /// The bound of the wanted Ritz pairs that `tol` applies to (the residual by default).
    pub stop: StopRule,
    /// Also return the eigenvectors.
    pub vectors: bool,
}

impl Default for ExtremeOptions {
    fn default() -> Self {
        ExtremeOptions {
            dense_max_p: DENSE_MAX_P,
            max_iter: 300,
            tol: 1e-8,
            stop: StopRule::Residual,
            vectors: false,
        }
    }
}

/// Extreme eigenvalues of `∇²C_B(θ)` (`k_top`/`k_bottom` are capped at `p`), solved as `opts` says
/// ([`ExtremeOptions::default`]: the defaults of `imreg analyze`).
pub fn hessian_extremes(
    obj: &dyn Objective,
    theta: &[f64],
    batch: Batch<'_>,
    k_top: usize,
    k_bottom: usize,
    seed: u64,
    opts: &ExtremeOptions,
) -> imreg_spectra::Result<Extremes> {
    let h = HessianOperator::new(obj, theta, batch)?;
    symmetric_extremes(&h, k_top, k_bottom, seed, opts)
}

/// Extreme eigenpairs of any symmetric operator: dense (exact) up to `opts.dense_max_p`, Lanczos above (its
/// start vector from `seed ^ STREAM_SPECTRUM`).
pub fn symmetric_extremes(
    op: &dyn LinearOperator,
    k_top: usize,
    k_bottom: usize,
    seed: u64,
    opts: &ExtremeOptions,
) -> imreg_spectra::Result<Extremes> {
    let p = op.dim();
    let (k_top, k_bottom) = (k_top.min(p), k_bottom.min(p));
    if p <= opts.dense_max_p {
        let e = dense_eigen(op, &DenseOptions::default())?;
        let vectors = if opts.vectors {
            let col = |j: usize| e.vectors.column(j).iter().copied().collect::<Vec<f64>>();
            (0..k_top)
                .map(|i| col(p - 1 - i))
                .chain((0..k_bottom).map(col))
                .collect()
        } else {
            Vec::new()
        };
        return Ok(Extremes {
            top: e.top(k_top),
            bottom: e.bottom(k_bottom),
            method: "dense",
            converged: true,
            iterations: 0,
            top_residuals: Vec::new(),
            bottom_residuals: Vec::new(),
            vectors,
        });
    }
    let lo = LanczosOptions {
        max_iter: p.min(opts.max_iter),
        k_top: k_top.max(1),
        k_bottom,
        tol: opts.tol,
        stop: opts.stop,
        seed: seed ^ STREAM_SPECTRUM,
        ritz_vectors: opts.vectors,
        ..LanczosOptions::default()
    };
    let r = lanczos(op, &lo)?;
    let top: Vec<&RitzPair> = r.top.iter().take(k_top).collect();
    let vectors = top
        .iter()
        .copied()
        .chain(&r.bottom)
        .filter_map(|t| t.vector.clone())
        .collect();
    Ok(Extremes {
        top: top.iter().map(|t| t.value).collect(),
        bottom: r.bottom.iter().map(|t| t.value).collect(),
        method: "lanczos",
        converged: r.report.converged,
        iterations: r.report.iterations,
        top_residuals: top.iter().map(|t| t.residual_bound).collect(),
        bottom_residuals: r.bottom.iter().map(|t| t.residual_bound).collect(),
        vectors,
    })
}

/// `λ_max(∇²C(θ))` on the full batch (dense for small `p`).
pub fn full_sharpness(obj: &dyn Objective, theta: &[f64], seed: u64) -> imreg_spectra::Result<f64> {
    if obj.dim() <= DENSE_MAX_P {
        return Ok(
            hessian_extremes(obj, theta, Batch::Full, 1, 0, seed, &ExtremeOptions::default())?
                .top
                .first()
                .copied()
                .unwrap_or(f64::NAN),
        );
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

/// `Tr ∇²C(θ)`: exact for `p ≤ exact_max_p` (`p` unit vectors), Hutch++ with its standard error otherwise
/// (probes from `seed`).
pub fn hessian_trace(
    obj: &dyn Objective,
    theta: &[f64],
    seed: u64,
    exact_max_p: usize,
) -> imreg_spectra::Result<Reported> {
    let h = HessianOperator::new(obj, theta, Batch::Full)?;
    operator_trace(&h, seed, exact_max_p, TraceOptions::default().matvecs)
}

/// `Tr A`: exact for `p ≤ exact_max_p` (`p` unit vectors), Hutch++ with `matvecs` products and its standard
/// error otherwise (probes from `seed`).
pub fn operator_trace(
    h: &dyn LinearOperator,
    seed: u64,
    exact_max_p: usize,
    matvecs: usize,
) -> imreg_spectra::Result<Reported> {
    let p = h.dim();
    if p <= exact_max_p {
        return Ok(Reported::exact(exact_trace(h)?, Some((p as u64, "unit vectors"))));
    }
    let t = hutch_plus_plus(h, &TraceOptions { seed, matvecs })?;
    Ok(Reported::estimate(t.to_estimate(), "probes"))
}

/// `Tr K` (gradient covariance, `1/N`) and `Tr F` (empirical Fisher), exact in one streamed pass each over
/// the `N` per-example gradients.
pub fn gradient_traces(obj: &dyn Objective, theta: &[f64]) -> imreg_spectra::Result<(Reported, Reported)> {
    gradient_traces_on(obj, theta, Batch::Full)
}

/// [`gradient_traces`] over the examples of `batch` (`K`, `F` with `1/|B|`).
pub fn gradient_traces_on(
    obj: &dyn Objective,
    theta: &[f64],
    batch: Batch<'_>,
) -> imreg_spectra::Result<(Reported, Reported)> {
    let k = GradientOuterOperator::covariance(obj, theta, batch, Default::default())?.trace()?;
    let f = GradientOuterOperator::empirical_fisher(obj, theta, batch, 256)?.trace()?;
    let n = Some((batch.len(obj.n_examples()) as u64, "examples"));
    Ok((Reported::exact(k, n), Reported::exact(f, n)))
}

/// `λ_K¹`, the top eigenvalue of the gradient covariance `K = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ` on the full
/// batch: dense `N × N` Gram matrix when `N < p`, dense `p × p` operator for small `p`, Lanczos otherwise.
pub fn lambda_k1(obj: &dyn Objective, theta: &[f64], seed: u64) -> imreg_spectra::Result<Reported> {
    lambda_k1_on(obj, theta, Batch::Full, seed)
}

/// [`lambda_k1`] of the covariance over the examples of `batch` (`1/|B|`), by the same routes with
/// `N = |B|`.
pub fn lambda_k1_on(
    obj: &dyn Objective,
    theta: &[f64],
    batch: Batch<'_>,
    seed: u64,
) -> imreg_spectra::Result<Reported> {
    let p = obj.dim();
    let n = batch.len(obj.n_examples());
    if p <= DENSE_MAX_P && n >= p {
        let k = GradientOuterOperator::covariance(obj, theta, batch, CovarianceOptions::default())?;
        return Ok(Reported::exact(
            dense_eigen(&k, &DenseOptions::default())?.max(),
            None,
        ));
    }
    let route = CovarianceRoute::Operator(LanczosOptions {
        max_iter: p.min(300),
        tol: 1e-8,
        seed: seed ^ STREAM_SPECTRUM,
        ritz_vectors: false,
        ..LanczosOptions::default()
    });
    let route = if n < p { CovarianceRoute::Auto } else { route };
    let top = gradient_covariance_top(obj, theta, batch, CovarianceOptions::default(), &route)?;
    Ok(match &top.report {
        Some(r) => Reported::lanczos(top.value, r),
        None => Reported::exact(top.value, None),
    })
}

/// Most batches `imreg run` enumerates exactly per evaluation (it evaluates at every recorded step, so its
/// threshold stays below [`imreg_spectra::DEFAULT_MAX_EXACT`], which `analyze` uses).
pub const RUN_MAX_EXACT: u64 = 2000;

/// Expectation over size-`b` batches: exact when `C(N, b) ≤ max_exact`, Monte Carlo otherwise with at most
/// `max_batches` batches drawn from `seed` and a stop once the relative standard error is below `rel_se`.
pub fn batch_expectation(seed: u64, max_exact: u64, max_batches: usize, rel_se: f64) -> BatchExpectation {
    BatchExpectation::Auto {
        max_exact,
        monte_carlo: MonteCarloOptions {
            seed,
            min_batches: max_batches.min(20),
            max_batches,
            rel_se_tol: rel_se,
            ..MonteCarloOptions::default()
        },
    }
}

/// MiniBS `E_B[λ_max(H_B)]` over size-`b` batches, exact or with its standard error.
pub fn mini_batch_sharpness(
    obj: &dyn Objective,
    theta: &[f64],
    b: usize,
    mode: &BatchExpectation,
    seed: u64,
) -> imreg_spectra::Result<Estimate> {
    let lo = LanczosOptions {
        max_iter: obj.dim().min(100),
        tol: 1e-8,
        seed: seed ^ STREAM_SPECTRUM,
        ritz_vectors: false,
        ..LanczosOptions::default()
    };
    Ok(mini_bs(obj, theta, Batch::Full, b, mode, &lo)?.estimate)
}
