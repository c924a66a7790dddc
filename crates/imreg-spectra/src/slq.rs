//! Stochastic Lanczos quadrature (SLQ): the spectral density `μ = (1/p) Σ_i δ(λ_i)` of a symmetric operator,
//! estimated from a few probe vectors (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019).
//!
//! For a unit probe `v`, `m` Lanczos steps from `v` give `T_m = S diag(θ) Sᵀ`; the Gauss quadrature rule
//! with nodes `θ_j` and weights `τ_j = s_{1j}²` integrates polynomials of degree `≤ 2m − 1` exactly against
//! the spectral measure of `v`: `Σ_j τ_j θ_j^k = vᵀ A^k v`. Averaging over probes with `E vvᵀ = I/p` gives
//! `μ` in expectation: `∫λ dμ = tr(A)/p`, `∫λ² dμ = ‖A‖²_F/p`.
use crate::dense::DenseOptions;
use crate::error::{check_finite, Result, SpectraError};
use crate::estimate::{mean_se, Estimate, Estimator};
use crate::lanczos::{lanczos, LanczosOptions};
use crate::operator::LinearOperator;
use crate::trace::rademacher;
use imreg_objective::rng;

/// How SLQ draws its probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// Rademacher `z/√p` (the usual choice: `‖v‖ = 1` exactly).
    Rademacher,
    /// Gaussian, normalized.
    Gaussian,
    /// The unit vectors `e_0, …, e_{probes−1}`: with `probes = p` the averaged moments are exact.
    Basis,
}

/// Options of [`slq`].
#[derive(Clone, Debug)]
pub struct SlqOptions {
    /// Number of probes `n_v`.
    pub probes: usize,
    /// Lanczos steps per probe `m` (fewer if the probe's Krylov space is invariant earlier).
    pub steps: usize,
    /// Probe distribution.
    pub kind: ProbeKind,
    /// Seed (probe `k` from stream `(seed, k)`).
    pub seed: u64,
}

impl Default for SlqOptions {
    fn default() -> Self {
        SlqOptions {
            probes: 10,
            steps: 80,
            kind: ProbeKind::Rademacher,
            seed: 0,
        }
    }
}

/// The quadrature rule of one probe.
#[derive(Clone, Debug)]
pub struct SlqProbe {
    /// Nodes `θ_j` (Ritz values), ascending.
    pub nodes: Vec<f64>,
    /// Weights `τ_j = s_{1j}²`, summing to 1.
    pub weights: Vec<f64>,
    /// Lanczos steps taken.
    pub steps: usize,
}

impl SlqProbe {
    /// `Σ_j τ_j θ_j^k` (= `vᵀA^k v` for `k ≤ 2m − 1`).
    pub fn moment(&self, k: i32) -> f64 {
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(t, w)| w * t.powi(k))
            .sum()
    }
}

/// An SLQ spectral density: one quadrature rule per probe.
#[derive(Clone, Debug)]
pub struct SpectralDensity {
    /// Dimension `p` of the operator.
    pub dim: usize,
    /// The per-probe rules.
    pub probes: Vec<SlqProbe>,
    /// The probe distribution used.
    pub kind: ProbeKind,
    /// Lanczos steps requested per probe ([`SlqOptions::steps`]).
    pub steps: usize,
}

impl SpectralDensity {
    /// `∫ λ^k dμ ≈ (1/n_v) Σ_v Σ_j τ_{vj} θ_{vj}^k` (estimates `tr(A^k)/p`).
    pub fn moment(&self, k: i32) -> f64 {
        self.probes.iter().map(|r| r.moment(k)).sum::<f64>() / self.probes.len() as f64
    }

    /// `∫ λ^k dμ` as an estimate of `tr(A^k)/p`: the mean of the per-probe moments `Σ_j τ_j θ_j^k` with its
    /// standard error over the probes (Monte Carlo, a fixed probe count). Exact when the probes are all `p`
    /// unit vectors ([`ProbeKind::Basis`]) and every probe's rule integrates degree `k` exactly (`2m − 1 ≥ k`,
    /// or its Krylov space was invariant). The standard error covers the probe randomness only, not the
    /// quadrature error of a rule with `2m − 1 < k`. Errors for fewer than `p` basis probes (a partial sum,
    /// not a random sample: no standard error exists).
    pub fn moment_estimate(&self, k: i32) -> Result<Estimate> {
        let per_probe = self.probes.iter().map(|r| r.moment(k));
        if self.kind == ProbeKind::Basis {
            if self.probes.len() < self.dim {
                return Err(SpectraError::invalid(
                    "moment_estimate",
                    format!(
                        "{} basis probes of p = {}: a partial sum has no standard error",
                        self.probes.len(),
                        self.dim
                    ),
                ));
            }
            let quadrature_exact = self.probes.iter().all(|r| {
                // 2m − 1 ≥ k, or an invariant Krylov space (stopped early, or the whole space)
                2 * r.steps as i64 > i64::from(k) || r.steps < self.steps || r.steps == self.dim
            });
            if quadrature_exact {
                return Ok(Estimate::exact(self.moment(k), self.dim as u64));
            }
        }
        let (value, std_error) = mean_se(per_probe);
        Ok(Estimate {
            value,
            std_error,
            estimator: Estimator::MonteCarlo {
                samples: self.probes.len(),
                converged: None,
            },
        })
    }

    /// All nodes and weights pooled (weights divided by `n_v`, so they sum to 1).
    pub fn nodes_weights(&self) -> (Vec<f64>, Vec<f64>) {
        let nv = self.probes.len() as f64;
        let nodes = self.probes.iter().flat_map(|r| r.nodes.iter().copied()).collect();
        let weights = self
            .probes
            .iter()
            .flat_map(|r| r.weights.iter().map(move |w| w / nv))
            .collect();
        (nodes, weights)
    }

    /// The density smoothed with a Gaussian kernel of width `sigma`, evaluated on `grid`:
    /// `ρ(t) = Σ_j w_j φ_σ(t − θ_j)` (integrates to 1).
    pub fn smoothed(&self, grid: &[f64], sigma: f64) -> Result<Vec<f64>> {
        if sigma.is_nan() || sigma <= 0.0 || !sigma.is_finite() {
            return Err(SpectraError::invalid(
                "sigma",
                format!("kernel width must be > 0, got {sigma}"),
            ));
        }
        check_finite("density grid", grid)?;
        let (nodes, weights) = self.nodes_weights();
        let c = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
        Ok(grid
            .iter()
            .map(|&t| {
                nodes
                    .iter()
                    .zip(&weights)
                    .map(|(x, w)| w * c * (-0.5 * ((t - x) / sigma).powi(2)).exp())
                    .sum()
            })
            .collect())
    }
}

/// The unit probe `k` of the given kind.
pub fn probe(kind: ProbeKind, p: usize, seed: u64, k: usize) -> Vec<f64> {
    let mut v = match kind {
        ProbeKind::Rademacher => rademacher(p, seed, k as u64),
        ProbeKind::Gaussian => rng::normal_vec(&mut rng::stream(seed, k as u64), p),
        ProbeKind::Basis => {
            let mut e = vec![0.0; p];
            e[k] = 1.0;
            e
        }
    };
    let n = crate::vector::norm(&v);
    crate::vector::scale(1.0 / n, &mut v);
    v
}

/// Stochastic Lanczos quadrature (see the module docs).
pub fn slq<A: LinearOperator + ?Sized>(op: &A, opts: &SlqOptions) -> Result<SpectralDensity> {
    let p = op.dim();
    if opts.probes == 0 || opts.steps == 0 {
        return Err(SpectraError::invalid("probes and steps", "both must be ≥ 1"));
    }
    if opts.kind == ProbeKind::Basis && opts.probes > p {
        return Err(SpectraError::TooMany {
            what: "basis probes".into(),
            k: opts.probes,
            p,
        });
    }
    let mut probes = Vec::with_capacity(opts.probes);
    for k in 0..opts.probes {
        let lo = LanczosOptions {
            max_iter: opts.steps,
            k_top: 1,
            k_bottom: 0,
            tol: 0.0,
            stop: crate::lanczos::StopRule::Residual,
            start: Some(probe(opts.kind, p, opts.seed, k)),
            seed: opts.seed,
            check_every: usize::MAX,
            ritz_vectors: false,
            true_residuals: false,
            restart_on_breakdown: false,
            breakdown_tol: 1e-12,
            dense: DenseOptions::default(),
        };
        let r = lanczos(op, &lo)?;
        let weights = r.first_components.iter().map(|s| s * s).collect();
        probes.push(SlqProbe {
            nodes: r.ritz_values,
            weights,
            steps: r.report.iterations,
        });
    }
    Ok(SpectralDensity {
        dim: p,
        probes,
        kind: opts.kind,
        steps: opts.steps,
    })
}
