//! `imreg analyze`: curvature and gradient statistics of given weights on given data.
use crate::config::{DataConfig, ModelConfig, SplitConfig};
use crate::data;
use crate::data::STREAM_BATCHES;
use crate::error::{CliError, Result};
use crate::model::Model;
use crate::spectrum::{
    batch_expectation, gradient_traces, hessian_extremes, hessian_trace, lambda_k1, Reported,
};
use imreg_objective::Batch;
use imreg_spectra::{batch_sharpness, DEFAULT_MAX_EXACT, EXACT_LIMIT, MONTE_CARLO_LIMIT};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How `analyze` computes an expectation over size-`b` batches: exactly over all `C(N, b)` batches when
/// there are at most `max_exact`, else Monte Carlo over at most `mc_batches` seeded batches, stopping once
/// the relative standard error is at most `mc_rel_se`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchEstimation {
    /// `--max-exact-batches` (default [`DEFAULT_MAX_EXACT`] = 10⁵, at most [`EXACT_LIMIT`]).
    pub max_exact: u64,
    /// `--mc-batches` (default 1000, in `2..=`[`MONTE_CARLO_LIMIT`]).
    pub mc_batches: usize,
    /// `--mc-rel-se` (default 0.005; `0` draws all `mc_batches`).
    pub mc_rel_se: f64,
}

impl Default for BatchEstimation {
    fn default() -> Self {
        let mc = imreg_spectra::MonteCarloOptions::default();
        BatchEstimation {
            max_exact: DEFAULT_MAX_EXACT,
            mc_batches: mc.max_batches,
            mc_rel_se: mc.rel_se_tol,
        }
    }
}

impl BatchEstimation {
    /// Checks the knobs, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        if self.max_exact > EXACT_LIMIT {
            return Err(CliError::arg(
                "--max-exact-batches",
                format!("at most {EXACT_LIMIT}, got {}", self.max_exact),
            ));
        }
        if !(2..=MONTE_CARLO_LIMIT).contains(&self.mc_batches) {
            return Err(CliError::arg(
                "--mc-batches",
                format!("must lie in 2..={MONTE_CARLO_LIMIT}, got {}", self.mc_batches),
            ));
        }
        if !(self.mc_rel_se.is_finite() && self.mc_rel_se >= 0.0) {
            return Err(CliError::arg(
                "--mc-rel-se",
                format!("must be a finite number ≥ 0, got {}", self.mc_rel_se),
            ));
        }
        Ok(())
    }
}

/// What to analyze.
#[derive(Clone, Debug)]
pub struct AnalyzeRequest {
    pub model: ModelConfig,
    pub params: PathBuf,
    pub data: Option<DataConfig>,
    /// Analyze the training part of this split (as `imreg run` trains on it).
    pub split: Option<SplitConfig>,
    pub top_k: usize,
    pub bottom_k: usize,
    /// `Tr H` is exact (all `p` unit vectors) up to this many parameters, Hutch++ above.
    pub exact_trace_max_p: usize,
    /// Batch size for batch sharpness (none: skipped).
    pub batch_size: Option<usize>,
    /// Exact or Monte Carlo batch expectations.
    pub estimation: BatchEstimation,
    /// Seed of every random choice of the estimators: Lanczos start vectors, Hutch++ probes, Monte Carlo
    /// batches.
    pub seed: u64,
    /// Seed of synthetic data, the split and the model's construction (with `--config`, the config's `seed`,
    /// so the data are those `imreg run` trained on).
    pub data_seed: u64,
}

/// The numbers `imreg analyze` prints.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Analysis {
    pub model: String,
    pub p: usize,
    pub n: usize,
    /// `C(θ)` on the full batch.
    pub loss: f64,
    /// `‖∇C(θ)‖`.
    pub grad_norm: f64,
    /// Largest Hessian eigenvalues, descending (`top[0]` = sharpness `λ_max`).
    pub hessian_top: Vec<f64>,
    /// Smallest Hessian eigenvalues, ascending.
    pub hessian_bottom: Vec<f64>,
    /// `"dense"` (exact) or `"lanczos"`.
    pub eigen_method: &'static str,
    /// The Lanczos run met its tolerance (always true for dense).
    pub eigen_converged: bool,
    /// `Tr ∇²C(θ)`: exact over `p` unit vectors, or Hutch++ with its standard error.
    pub hessian_trace: Reported,
    /// `Tr K`, the trace of the gradient covariance `K = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ` (exact).
    pub trace_k: Reported,
    /// `λ_K¹`, the top eigenvalue of `K` (dense, or Lanczos).
    pub lambda_k1: Reported,
    /// `Tr F`, the trace of the empirical Fisher `(1/N) Σ g_i g_iᵀ` (exact).
    pub trace_f: Reported,
    /// Batch sharpness `E_B[g_BᵀH_Bg_B/‖g_B‖²]` at the requested batch size, exact or Monte Carlo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_sharpness: Option<Reported>,
    /// Batch sharpness `E_B[g_BᵀH_Bg_B]/E_B[‖g_B‖²]` from the same batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_sharpness_inside: Option<Reported>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// The estimators' seed.
    pub seed: u64,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

/// Runs the analysis.
pub fn analyze(req: &AnalyzeRequest) -> Result<Analysis> {
    let args = Path::new("<args>");
    req.estimation.validate()?;
    if let Some(DataConfig::Npy { x, y, .. }) = &req.data {
        for (p, field) in [(x, "--data"), (y, "--targets")] {
            if !p.exists() {
                return Err(CliError::input(p, field, "file does not exist"));
            }
        }
    }
    let dataset = req
        .data
        .as_ref()
        .map(|d| data::build(d, req.data_seed, args))
        .transpose()?;
    let dataset = match (dataset, &req.split) {
        (Some(d), Some(s)) => Some(data::split(&d, s, req.data_seed, args)?.0),
        (d, _) => d,
    };
    let mut model = Model::build(&req.model, dataset.as_ref(), args, req.data_seed)?;
    let theta = model.load_theta(&req.params, "--params")?;
    let obj = model.objective();
    let n = obj.n_examples();
    if let Some(b) = req.batch_size {
        if b == 0 || b > n {
            return Err(CliError::arg(
                "--batch-size",
                format!("must lie in 1..={n}, got {b}"),
            ));
        }
    }
    let (loss, g) = model.loss_grad(&theta).map_err(|e| failed("gradient", e))?;
    let ext = hessian_extremes(obj, &theta, Batch::Full, req.top_k, req.bottom_k, req.seed)
        .map_err(|e| failed("Hessian eigenvalues", e))?;
    let hessian_trace = hessian_trace(obj, &theta, req.seed, req.exact_trace_max_p)
        .map_err(|e| failed("Hessian trace", e))?;
    let (trace_k, trace_f) = gradient_traces(obj, &theta).map_err(|e| failed("gradient covariance", e))?;
    let lambda_k1 = lambda_k1(obj, &theta, req.seed).map_err(|e| failed("λ_K¹", e))?;
    let batch_sharpness = match req.batch_size {
        Some(b) => {
            let est = req.estimation;
            let mode = batch_expectation(
                req.seed ^ STREAM_BATCHES,
                est.max_exact,
                est.mc_batches,
                est.mc_rel_se,
            );
            let s = batch_sharpness(obj, &theta, Batch::Full, b, &mode)
                .map_err(|e| failed("batch sharpness", e))?;
            Some((
                Reported::estimate(s.mean_of_ratios, "batches"),
                Reported::estimate(s.ratio_of_means, "batches"),
            ))
        }
        None => None,
    };
    Ok(Analysis {
        model: obj.name(),
        p: obj.dim(),
        n,
        loss,
        grad_norm: g.iter().map(|v| v * v).sum::<f64>().sqrt(),
        hessian_top: ext.top,
        hessian_bottom: ext.bottom,
        eigen_method: ext.method,
        eigen_converged: ext.converged,
        hessian_trace,
        trace_k,
        lambda_k1,
        trace_f,
        batch_sharpness: batch_sharpness.map(|s| s.0),
        batch_sharpness_inside: batch_sharpness.map(|s| s.1),
        batch_size: req.batch_size,
        seed: req.seed,
    })
}

/// The analysis as an aligned two-column table. Every number that is not exact says so: a Monte Carlo
/// estimate prints as `value ± SE (Monte Carlo, n batches)` (with `not converged` when its stop rule was not
/// met), an exact one as `value (exact, T batches)`.
pub fn table(a: &Analysis) -> String {
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.6e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let eigen = match (a.eigen_method, a.eigen_converged) {
        ("dense", _) => "dense (exact)",
        (_, true) => "Lanczos",
        (_, false) => "Lanczos (not converged)",
    };
    let mut rows = vec![
        ("model", a.model.clone()),
        ("p", a.p.to_string()),
        ("N", a.n.to_string()),
        ("loss C(θ)", format!("{:.10e}", a.loss)),
        ("‖∇C(θ)‖", format!("{:.6e}", a.grad_norm)),
        ("λ top (desc)", list(&a.hessian_top)),
        ("λ bottom (asc)", list(&a.hessian_bottom)),
        ("eigen method", eigen.to_string()),
        ("Tr H", a.hessian_trace.display()),
        ("Tr K", a.trace_k.display()),
        ("λ_K¹", a.lambda_k1.display()),
        ("Tr F", a.trace_f.display()),
    ];
    if let (Some(bs), Some(b)) = (a.batch_sharpness, a.batch_size) {
        rows.push(("batch size b", b.to_string()));
        rows.push(("batch sharpness", bs.display()));
    }
    if let Some(bs) = a.batch_sharpness_inside {
        rows.push(("batch sharpness (inside)", bs.display()));
    }
    rows.push(("seed", a.seed.to_string()));
    let w = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k}{} {v}\n", " ".repeat(w - k.chars().count())))
        .collect()
}

/// What `imreg analyze` prints: pretty JSON with `json`, else [`table`].
pub fn render(a: &Analysis, json: bool) -> Result<String> {
    if json {
        let mut s = serde_json::to_string_pretty(a).map_err(|e| CliError::Failed(e.to_string()))?;
        s.push('\n');
        Ok(s)
    } else {
        Ok(table(a))
    }
}
