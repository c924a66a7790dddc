//! The Hessian's spectral density `μ = (1/p) Σ_i δ(λ_i)` by stochastic Lanczos quadrature (SLQ), as
//! `analyze` reports it: the pooled Gauss nodes and weights, the density smoothed with a Gaussian kernel on a
//! grid, and `Tr H ≈ p ∫λ dμ` with its standard error over the probes. With `steps ≥ p` each probe's
//! quadrature is its exact spectral measure, so the smoothed density equals
//! `(1/n_v) Σ_v Σ_i (vᵀu_i)² φ_σ(t − λ_i)` for the same probes `v` (see `tests/curvature_references.rs`).
use crate::quantities::SolverOptions;
use crate::spectrum::Reported;
use imreg_spectra::{slq, LinearOperator, ProbeKind, SlqOptions};
use serde::Serialize;

/// The SLQ density of `analyze`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Density {
    /// Rademacher probes `n_v` (probe `k` from stream `(seed, k)`, see [`imreg_spectra::slq::probe`]).
    pub probes: usize,
    /// Lanczos steps per probe `m` (capped at `p`).
    pub steps: usize,
    /// The probes' seed.
    pub seed: u64,
    /// Kernel width `σ` (absolute).
    pub sigma: f64,
    /// Pooled quadrature nodes `θ_j` and weights `w_j` (summing to 1).
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
    /// The grid `t` and `ρ(t) = Σ_j w_j φ_σ(t − θ_j)`.
    pub grid: Vec<f64>,
    pub density: Vec<f64>,
    /// `p ∫λ dμ`, the Hutchinson trace estimate of the same probes, with its standard error.
    pub trace: Reported,
}

/// SLQ on `op` with the knobs of `opts`; the grid spans the nodes' range widened by `4σ` on each side, with
/// `σ = density_sigma · (θ_max − θ_min)` (or `density_sigma · max(|θ|, 1)` when all nodes coincide).
pub fn density(op: &dyn LinearOperator, opts: &SolverOptions, seed: u64) -> imreg_spectra::Result<Density> {
    let p = op.dim();
    let steps = opts.slq_steps.min(p);
    let d = slq(
        op,
        &SlqOptions {
            probes: opts.slq_probes,
            steps,
            kind: ProbeKind::Rademacher,
            seed,
        },
    )?;
    let (nodes, weights) = d.nodes_weights();
    let lo = nodes.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = nodes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    let sigma = opts.density_sigma * width;
    let (a, b) = (lo - 4.0 * sigma, hi + 4.0 * sigma);
    let n = opts.density_points;
    let grid: Vec<f64> = (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect();
    let density = d.smoothed(&grid, sigma)?;
    let m1 = d.moment_estimate(1)?;
    let scaled = imreg_spectra::Estimate {
        value: m1.value * p as f64,
        std_error: m1.std_error * p as f64,
        ..m1
    };
    Ok(Density {
        probes: opts.slq_probes,
        steps,
        seed,
        sigma,
        nodes,
        weights,
        grid,
        density,
        trace: Reported::estimate(scaled, "probes"),
    })
}

/// The density as a figure with its series (`density.svg`, `.png`, `.csv` in `dir`).
pub fn save_figure(d: &Density, dir: &std::path::Path) -> crate::error::Result<Vec<std::path::PathBuf>> {
    let fig = imreg_plot::Figure::new(format!(
        "Hessian spectral density (SLQ, {} probes × {} steps, σ = {:.2e})",
        d.probes, d.steps, d.sigma
    ))
    .x_label("eigenvalue λ")
    .y_label("density ρ(λ)")
    .series(imreg_plot::Series::line(
        "SLQ density",
        d.grid.clone(),
        d.density.clone(),
    ));
    Ok(fig.save(dir, "density")?)
}
