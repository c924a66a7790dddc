//! What `imreg analyze` computes (`--quantities`), the knobs of its solvers ([`SolverOptions`]), and the one
//! function that computes them at a given `θ` ([`measure`]) — for `analyze` and for the scheduled
//! quantities of `imreg run` (`[[track.schedule]]`) alike.
use crate::analyze::BatchEstimation;
use crate::config::LanczosStop;
use crate::data::STREAM_BATCHES;
use crate::density::{self, Density};
use crate::error::{CliError, Result};
use crate::layers::{self, Block};
use crate::model::Model;
use crate::spectrum::{
    batch_expectation, gradient_traces_on, hessian_extremes, lambda_k1_on, operator_trace, ExtremeOptions,
    Extremes, Reported, DENSE_MAX_P,
};
use imreg_objective::{Batch, Supervised};
use imreg_spectra::{batch_sharpness, Diagonal, GaussNewtonOperator, HessianOperator};

/// One quantity of `--quantities`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quantity {
    /// `λ_max(H)` alone (one top pair).
    LambdaMax,
    /// The `--top-k` largest Hessian eigenvalues.
    TopK,
    /// The `--bottom-k` smallest Hessian eigenvalues.
    BottomK,
    /// `Tr H`, exact or Hutch++.
    Trace,
    /// The SLQ spectral density of `H`.
    Density,
    /// `Tr K` and `λ_K¹` of the gradient covariance.
    KSpectrum,
    /// `Tr F` of the empirical Fisher.
    Fisher,
    /// Batch sharpness at `--batch-size` (both variants).
    BatchSharpness,
    /// `diag(H)`, exact or Hutchinson (written to `--out`).
    Diagonal,
    /// `diag(G)` of the Gauss–Newton matrix `G = (1/N) Σ_i J_iᵀ H_ℓ(f_i) J_i`, exact or Hutchinson
    /// (written to `--out`).
    GgnDiagonal,
    /// Per-layer (principal block) traces and top eigenvalues.
    Blocks,
    /// The eigenvectors of the computed extreme eigenvalues (written to `--out`).
    Eigenvectors,
}

impl Quantity {
    /// Whether it is one or a few numbers at each `θ` (a series along a run), not a vector of length `p`.
    pub fn is_scalar(self) -> bool {
        !matches!(
            self,
            Quantity::Diagonal | Quantity::GgnDiagonal | Quantity::Eigenvectors
        )
    }
}

/// The `--quantities` names, in the order of the table.
pub const QUANTITY_NAMES: [(&str, Quantity); 12] = [
    ("lambda_max", Quantity::LambdaMax),
    ("top-k", Quantity::TopK),
    ("bottom-k", Quantity::BottomK),
    ("trace", Quantity::Trace),
    ("density", Quantity::Density),
    ("k-spectrum", Quantity::KSpectrum),
    ("fisher", Quantity::Fisher),
    ("batch-sharpness", Quantity::BatchSharpness),
    ("diagonal", Quantity::Diagonal),
    ("ggn-diagonal", Quantity::GgnDiagonal),
    ("blocks", Quantity::Blocks),
    ("eigenvectors", Quantity::Eigenvectors),
];

/// A set of quantities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantities {
    list: Vec<Quantity>,
    /// Asked for as `all`: a quantity the model cannot give (`ggn-diagonal` of a network) is skipped
    /// instead of refused.
    all: bool,
}

impl Quantities {
    /// What `analyze` computed before `--quantities` existed (its default): top-k, bottom-k, trace,
    /// k-spectrum, fisher, and batch sharpness when a batch size is given.
    pub fn standard(batch_sharpness: bool) -> Self {
        let mut q = vec![
            Quantity::TopK,
            Quantity::BottomK,
            Quantity::Trace,
            Quantity::KSpectrum,
            Quantity::Fisher,
        ];
        if batch_sharpness {
            q.push(Quantity::BatchSharpness);
        }
        Quantities { list: q, all: false }
    }

    /// Parses the comma-separated names of `--quantities` (`all` for every one).
    pub fn parse(names: &[String]) -> Result<Self> {
        let mut q = Vec::new();
        let mut all = false;
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if name == "all" {
                all = true;
                q.extend(QUANTITY_NAMES.iter().map(|(_, q)| *q));
                continue;
            }
            let hit = QUANTITY_NAMES
                .iter()
                .find(|(n, _)| *n == name || n.replace('-', "_") == name);
            match hit {
                Some((_, x)) => q.push(*x),
                None => {
                    let known: Vec<&str> = QUANTITY_NAMES.iter().map(|(n, _)| *n).collect();
                    return Err(CliError::arg(
                        "--quantities",
                        format!("unknown quantity {name:?} (known: {}, all)", known.join(", ")),
                    ));
                }
            }
        }
        if q.is_empty() {
            return Err(CliError::arg("--quantities", "name at least one quantity"));
        }
        q.sort();
        q.dedup();
        Ok(Quantities { list: q, all })
    }

    /// Whether `q` is asked for.
    pub fn has(&self, q: Quantity) -> bool {
        self.list.contains(&q)
    }

    /// Whether the set was asked for as `all`.
    pub fn is_all(&self) -> bool {
        self.all
    }
}

/// The knobs of the solvers `analyze` runs; every one is a flag of the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct SolverOptions {
    /// `--dense-max-p`: form `H` densely (p HVPs) and diagonalize it exactly up to this many parameters
    /// (also per block for `blocks`); Lanczos above.
    pub dense_max_p: usize,
    /// `--lanczos-max-iter`: most Lanczos steps (capped at `p`).
    pub lanczos_max_iter: usize,
    /// `--lanczos-tol`: Lanczos stops once every wanted Ritz pair has residual bound
    /// `‖Hy − θy‖ ≤ tol · max|θ|`.
    pub lanczos_tol: f64,
    /// `--lanczos-stop`: what `lanczos_tol` bounds, the residual bound (default) or the eigenvalue bound
    /// `min(r, r²/δ̂)` with the gap `δ̂` estimated from the Ritz values (an estimate; it can stop on a lower
    /// eigenvalue when Ritz values are still far from the top one, see docs/pyhessian.md).
    pub lanczos_stop: LanczosStop,
    /// `--trace-matvecs`: Hutch++'s budget of Hessian-vector products (≥ 4).
    pub trace_matvecs: usize,
    /// `--slq-probes`: SLQ probe vectors `n_v`.
    pub slq_probes: usize,
    /// `--slq-steps`: Lanczos steps per SLQ probe `m` (capped at `p`).
    pub slq_steps: usize,
    /// `--density-points`: points of the density grid.
    pub density_points: usize,
    /// `--density-sigma`: Gaussian kernel width relative to the width of the quadrature nodes' range.
    pub density_sigma: f64,
    /// `--diagonal-probes`: Rademacher probes of the diagonal estimate (≥ 2).
    pub diagonal_probes: usize,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            dense_max_p: DENSE_MAX_P,
            lanczos_max_iter: 300,
            lanczos_tol: 1e-8,
            lanczos_stop: LanczosStop::Residual,
            trace_matvecs: imreg_spectra::TraceOptions::default().matvecs,
            slq_probes: 10,
            slq_steps: 80,
            density_points: 400,
            density_sigma: 0.01,
            diagonal_probes: 100,
        }
    }
}

/// Most Hessian-vector products one knob may ask for.
pub const MAX_KNOB: usize = 1 << 24;

/// A bad knob: its name (the key of `[[track.schedule]]`; `analyze`'s flag is `--` and the name with
/// dashes) and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub knob: &'static str,
    pub reason: String,
}

impl Fault {
    pub fn new(knob: &'static str, reason: impl Into<String>) -> Self {
        Fault {
            knob,
            reason: reason.into(),
        }
    }

    /// The error of `analyze`'s flag `--knob-name`.
    pub fn flag(self) -> CliError {
        CliError::arg(format!("--{}", self.knob.replace('_', "-")), self.reason)
    }
}

impl SolverOptions {
    /// Checks the knobs, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(Fault::flag)
    }

    /// Checks the knobs, naming the knob at fault.
    pub fn check(&self) -> std::result::Result<(), Fault> {
        let range = |knob: &'static str, v: usize, lo: usize| {
            if (lo..=MAX_KNOB).contains(&v) {
                Ok(())
            } else {
                Err(Fault::new(
                    knob,
                    format!("must lie in {lo}..={MAX_KNOB}, got {v}"),
                ))
            }
        };
        range("lanczos_max_iter", self.lanczos_max_iter, 1)?;
        range("trace_matvecs", self.trace_matvecs, 4)?;
        range("slq_probes", self.slq_probes, 1)?;
        range("slq_steps", self.slq_steps, 1)?;
        range("density_points", self.density_points, 2)?;
        range("diagonal_probes", self.diagonal_probes, 2)?;
        if !(self.lanczos_tol.is_finite() && self.lanczos_tol >= 0.0) {
            return Err(Fault::new(
                "lanczos_tol",
                format!("must be a finite number ≥ 0, got {}", self.lanczos_tol),
            ));
        }
        if !(self.density_sigma.is_finite() && self.density_sigma > 0.0) {
            return Err(Fault::new(
                "density_sigma",
                format!("must be a finite number > 0, got {}", self.density_sigma),
            ));
        }
        Ok(())
    }
}

/// What to measure and how: the quantities, their sizes and the solvers' knobs — `analyze`'s flags, the
/// keys of a `[[track.schedule]]` entry of `imreg run`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub quantities: Quantities,
    /// Eigenvalues of `top-k` and `bottom-k` (capped at `p`).
    pub top_k: usize,
    pub bottom_k: usize,
    /// `Tr H` (and the block traces, the diagonal) exact up to this many parameters, estimated above.
    pub exact_trace_max_p: usize,
    /// Batch size of `batch-sharpness`.
    pub batch_size: Option<usize>,
    /// Exact or Monte Carlo batch expectations.
    pub estimation: BatchEstimation,
    pub solver: SolverOptions,
    /// Seed of every random choice: Lanczos start vectors, Hutch++ and SLQ probes, Monte Carlo batches.
    pub seed: u64,
}

impl Plan {
    /// Checks the plan against `model` measured on `n` examples, naming the knob at fault.
    pub fn check(&self, model: &Model, n: usize) -> std::result::Result<(), Fault> {
        self.solver.check()?;
        self.estimation.check()?;
        let wants = |q| self.quantities.has(q);
        if let Some(b) = self.batch_size {
            if b == 0 || b > n {
                return Err(Fault::new("batch_size", format!("must lie in 1..={n}, got {b}")));
            }
        }
        if wants(Quantity::BatchSharpness) && self.batch_size.is_none() {
            return Err(Fault::new(
                "batch_size",
                "required for the quantity batch-sharpness",
            ));
        }
        if wants(Quantity::GgnDiagonal) && supervised(model).is_none() && !self.quantities.is_all() {
            return Err(Fault::new(
                "quantities",
                format!(
                    "ggn-diagonal needs a model with outputs and a standard loss (linear_regression, \
                     logistic_regression, mlp, deep_linear, scalar_net); {} has none",
                    model.objective().name()
                ),
            ));
        }
        Ok(())
    }
}

/// What [`measure`] computed: each quantity asked for, with its accuracy.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// `top-k`/`lambda_max` (descending) and `bottom-k` (ascending), with eigenvectors for `eigenvectors`.
    pub extremes: Option<Extremes>,
    pub hessian_trace: Option<Reported>,
    pub trace_k: Option<Reported>,
    pub lambda_k1: Option<Reported>,
    pub trace_f: Option<Reported>,
    /// `E_B[g_BᵀH_Bg_B/‖g_B‖²]` and `E_B[g_BᵀH_Bg_B]/E_B[‖g_B‖²]` from the same batches.
    pub batch_sharpness: Option<(Reported, Reported)>,
    pub density: Option<Density>,
    pub blocks: Option<Vec<Block>>,
    pub diagonal: Option<Diagonal>,
    pub ggn_diagonal: Option<Diagonal>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

/// The quantities of `plan` at `θ`, on the examples of `batch` (`Batch::Full`: `analyze`; a fixed subset:
/// `[[track.schedule]] subset`). The plan was checked ([`Plan::check`]).
pub fn measure(model: &Model, theta: &[f64], batch: Batch<'_>, plan: &Plan) -> Result<Measured> {
    let obj = model.objective();
    let wants = |q| plan.quantities.has(q);
    let seed = plan.seed;
    let h = HessianOperator::new(obj, theta, batch).map_err(|e| failed("Hessian", e))?;
    let k_top = if wants(Quantity::TopK) {
        plan.top_k
    } else {
        usize::from(wants(Quantity::LambdaMax) || wants(Quantity::Eigenvectors))
    };
    let k_bottom = if wants(Quantity::BottomK) {
        plan.bottom_k
    } else {
        0
    };
    let eig = ExtremeOptions {
        dense_max_p: plan.solver.dense_max_p,
        max_iter: plan.solver.lanczos_max_iter,
        tol: plan.solver.lanczos_tol,
        stop: plan.solver.lanczos_stop.into(),
        vectors: wants(Quantity::Eigenvectors),
    };
    let extremes = (k_top + k_bottom > 0)
        .then(|| hessian_extremes(obj, theta, batch, k_top, k_bottom, seed, &eig))
        .transpose()
        .map_err(|e| failed("Hessian eigenvalues", e))?;
    let hessian_trace = wants(Quantity::Trace)
        .then(|| operator_trace(&h, seed, plan.exact_trace_max_p, plan.solver.trace_matvecs))
        .transpose()
        .map_err(|e| failed("Hessian trace", e))?;
    let (trace_k, trace_f) = if wants(Quantity::KSpectrum) || wants(Quantity::Fisher) {
        let (k, f) = gradient_traces_on(obj, theta, batch).map_err(|e| failed("gradient covariance", e))?;
        (
            wants(Quantity::KSpectrum).then_some(k),
            wants(Quantity::Fisher).then_some(f),
        )
    } else {
        (None, None)
    };
    let lambda_k1 = wants(Quantity::KSpectrum)
        .then(|| lambda_k1_on(obj, theta, batch, seed))
        .transpose()
        .map_err(|e| failed("λ_K¹", e))?;
    let batch_sharpness = match plan.batch_size.filter(|_| wants(Quantity::BatchSharpness)) {
        Some(b) => {
            let est = plan.estimation;
            let mode = batch_expectation(
                seed ^ STREAM_BATCHES,
                est.max_exact,
                est.mc_batches,
                est.mc_rel_se,
            );
            let s = batch_sharpness(obj, theta, batch, b, &mode).map_err(|e| failed("batch sharpness", e))?;
            Some((
                Reported::estimate(s.mean_of_ratios, "batches"),
                Reported::estimate(s.ratio_of_means, "batches"),
            ))
        }
        None => None,
    };
    let density = wants(Quantity::Density)
        .then(|| density::density(&h, &plan.solver, seed))
        .transpose()
        .map_err(|e| failed("spectral density", e))?;
    let blocks = wants(Quantity::Blocks)
        .then(|| layers::blocks(&h, &model.layout(), &plan.solver, plan.exact_trace_max_p, seed))
        .transpose()
        .map_err(|e| failed("per-layer blocks", e))?;
    let diagonal = wants(Quantity::Diagonal)
        .then(|| layers::diagonal(&h, &plan.solver, plan.exact_trace_max_p, seed))
        .transpose()
        .map_err(|e| failed("Hessian diagonal", e))?;
    let ggn_diagonal = supervised(model)
        .filter(|_| wants(Quantity::GgnDiagonal))
        .map(|sup| {
            let g = GaussNewtonOperator::new(sup, theta, batch)?;
            layers::diagonal(&g, &plan.solver, plan.exact_trace_max_p, seed)
        })
        .transpose()
        .map_err(|e| failed("Gauss–Newton diagonal", e))?;
    Ok(Measured {
        extremes,
        hessian_trace,
        trace_k,
        lambda_k1,
        trace_f,
        batch_sharpness,
        density,
        blocks,
        diagonal,
        ggn_diagonal,
    })
}

/// The model as one with outputs `f(x_i; θ)` and a standard loss (what the Gauss–Newton matrix needs);
/// `None` for the quadratic and for networks.
fn supervised(model: &Model) -> Option<&dyn Supervised> {
    match model {
        Model::Linear(m, _) => Some(m),
        Model::Logistic(m, _) => Some(m),
        Model::Mlp(m, _) => Some(m),
        Model::DeepLinear(m) => Some(m),
        Model::Scalar(m) => Some(m),
        Model::Quadratic(_) | Model::Network(..) => None,
    }
}
