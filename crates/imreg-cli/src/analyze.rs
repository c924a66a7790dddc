//! `imreg analyze`: curvature and gradient statistics of given weights on given data.
use crate::config::{DataConfig, ModelConfig, SplitConfig};
use crate::data;
use crate::data::STREAM_BATCHES;
use crate::density::{self, Density};
use crate::error::{CliError, Result};
use crate::layers::{self, Block, DiagonalSummary};
use crate::model::Model;
use crate::quantities::{Quantities, Quantity, SolverOptions};
use crate::spectrum::{
    batch_expectation, gradient_traces, hessian_extremes, lambda_k1, operator_trace, ExtremeOptions, Reported,
};
use imreg_objective::{Batch, Supervised};
use imreg_spectra::{
    batch_sharpness, GaussNewtonOperator, HessianOperator, DEFAULT_MAX_EXACT, EXACT_LIMIT, MONTE_CARLO_LIMIT,
};
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
    /// What to compute (`None`: [`Quantities::standard`]).
    pub quantities: Option<Quantities>,
    /// The solvers' knobs.
    pub solver: SolverOptions,
    /// Folder for the files of `eigenvectors`, `diagonal` and `density` (claimed as an imreg folder).
    pub out: Option<PathBuf>,
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
    /// `"dense"` (exact), `"lanczos"`, or `"none"` (no eigenvalue asked for).
    pub eigen_method: &'static str,
    /// The Lanczos run met its tolerance (always true for dense).
    pub eigen_converged: bool,
    /// Lanczos steps (0 for dense).
    pub eigen_iterations: usize,
    /// Lanczos residual bounds `‖Hy − θy‖` of `hessian_top` (empty for dense: exact).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_residuals: Vec<f64>,
    /// Lanczos residual bounds of `hessian_bottom`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bottom_residuals: Vec<f64>,
    /// `Tr ∇²C(θ)`: exact over `p` unit vectors, or Hutch++ with its standard error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hessian_trace: Option<Reported>,
    /// `Tr K`, the trace of the gradient covariance `K = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ` (exact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_k: Option<Reported>,
    /// `λ_K¹`, the top eigenvalue of `K` (dense, or Lanczos).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda_k1: Option<Reported>,
    /// `Tr F`, the trace of the empirical Fisher `(1/N) Σ g_i g_iᵀ` (exact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_f: Option<Reported>,
    /// The SLQ spectral density of `∇²C(θ)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub density: Option<Density>,
    /// Per-layer traces and top eigenvalues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<Block>>,
    /// The Hessian diagonal's summary (its entries are in `diagonal.npy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagonal: Option<DiagonalSummary>,
    /// The Gauss–Newton diagonal's summary (its entries are in `ggn_diagonal.npy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ggn_diagonal: Option<DiagonalSummary>,
    /// Files written into `--out`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
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
    let quantities = req
        .quantities
        .clone()
        .unwrap_or_else(|| Quantities::standard(req.batch_size.is_some()));
    let wants = |q| quantities.has(q);
    req.solver.validate()?;
    if wants(Quantity::BatchSharpness) && req.batch_size.is_none() {
        return Err(CliError::arg(
            "--batch-size",
            "required for the quantity batch-sharpness",
        ));
    }
    if wants(Quantity::Eigenvectors) && req.out.is_none() {
        return Err(CliError::arg(
            "--out",
            "required for the quantity eigenvectors (a folder for eigenvectors.npy and its names)",
        ));
    }
    let ggn_model = supervised(&model).filter(|_| wants(Quantity::GgnDiagonal));
    if wants(Quantity::GgnDiagonal) && ggn_model.is_none() && !quantities.is_all() {
        return Err(CliError::arg(
            "--quantities",
            format!(
                "ggn-diagonal needs a model with outputs and a standard loss (linear_regression, \
                     logistic_regression, mlp, deep_linear, scalar_net); {} has none",
                req.model.kind()
            ),
        ));
    }
    let (loss, g) = model.loss_grad(&theta).map_err(|e| failed("gradient", e))?;
    let h = HessianOperator::new(obj, &theta, Batch::Full).map_err(|e| failed("Hessian", e))?;
    let k_top = if wants(Quantity::TopK) {
        req.top_k
    } else {
        usize::from(wants(Quantity::LambdaMax) || wants(Quantity::Eigenvectors))
    };
    let k_bottom = if wants(Quantity::BottomK) { req.bottom_k } else { 0 };
    let eig = ExtremeOptions {
        dense_max_p: req.solver.dense_max_p,
        max_iter: req.solver.lanczos_max_iter,
        tol: req.solver.lanczos_tol,
        vectors: wants(Quantity::Eigenvectors),
        ..ExtremeOptions::default()
    };
    let ext = if k_top + k_bottom > 0 {
        Some(
            hessian_extremes(obj, &theta, Batch::Full, k_top, k_bottom, req.seed, &eig)
                .map_err(|e| failed("Hessian eigenvalues", e))?,
        )
    } else {
        None
    };
    let hessian_trace = wants(Quantity::Trace)
        .then(|| operator_trace(&h, req.seed, req.exact_trace_max_p, req.solver.trace_matvecs))
        .transpose()
        .map_err(|e| failed("Hessian trace", e))?;
    let (trace_k, trace_f) = if wants(Quantity::KSpectrum) || wants(Quantity::Fisher) {
        let (k, f) = gradient_traces(obj, &theta).map_err(|e| failed("gradient covariance", e))?;
        (
            wants(Quantity::KSpectrum).then_some(k),
            wants(Quantity::Fisher).then_some(f),
        )
    } else {
        (None, None)
    };
    let lambda_k1 = wants(Quantity::KSpectrum)
        .then(|| lambda_k1(obj, &theta, req.seed))
        .transpose()
        .map_err(|e| failed("λ_K¹", e))?;
    let batch_sharpness = match req.batch_size.filter(|_| wants(Quantity::BatchSharpness)) {
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
    let density = wants(Quantity::Density)
        .then(|| density::density(&h, &req.solver, req.seed))
        .transpose()
        .map_err(|e| failed("spectral density", e))?;
    let layout = model.layout();
    let blocks = wants(Quantity::Blocks)
        .then(|| layers::blocks(&h, &layout, &req.solver, req.exact_trace_max_p, req.seed))
        .transpose()
        .map_err(|e| failed("per-layer blocks", e))?;
    let diagonal = wants(Quantity::Diagonal)
        .then(|| layers::diagonal(&h, &req.solver, req.exact_trace_max_p, req.seed))
        .transpose()
        .map_err(|e| failed("Hessian diagonal", e))?;
    let ggn_diagonal = ggn_model
        .map(|sup| {
            let g = GaussNewtonOperator::new(sup, &theta, Batch::Full)?;
            layers::diagonal(&g, &req.solver, req.exact_trace_max_p, req.seed)
        })
        .transpose()
        .map_err(|e| failed("Gauss–Newton diagonal", e))?;
    let mut files = Vec::new();
    if let Some(out) = &req.out {
        crate::output::claim(out, "analyze")?;
        if let (Some(e), true) = (&ext, wants(Quantity::Eigenvectors)) {
            files.extend(crate::eigenvectors::write(out, e, &layout)?);
        }
        for (d, stem) in [(&diagonal, "diagonal"), (&ggn_diagonal, "ggn_diagonal")] {
            if let Some(d) = d {
                files.push(write_npy(&out.join(format!("{stem}.npy")), &d.values)?);
                if !d.is_exact() {
                    files.push(write_npy(
                        &out.join(format!("{stem}_std_error.npy")),
                        &d.std_errors,
                    )?);
                }
            }
        }
        if let Some(d) = &density {
            files.extend(density::save_figure(d, out)?);
        }
    }
    let ext = ext.unwrap_or(crate::spectrum::Extremes {
        top: Vec::new(),
        bottom: Vec::new(),
        method: "none",
        converged: true,
        iterations: 0,
        top_residuals: Vec::new(),
        bottom_residuals: Vec::new(),
        vectors: Vec::new(),
    });
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
        eigen_iterations: ext.iterations,
        top_residuals: ext.top_residuals,
        bottom_residuals: ext.bottom_residuals,
        hessian_trace,
        trace_k,
        lambda_k1,
        trace_f,
        density,
        blocks,
        diagonal: diagonal.as_ref().map(DiagonalSummary::of),
        ggn_diagonal: ggn_diagonal.as_ref().map(DiagonalSummary::of),
        files,
        batch_sharpness: batch_sharpness.map(|s| s.0),
        batch_sharpness_inside: batch_sharpness.map(|s| s.1),
        batch_size: req.batch_size,
        seed: req.seed,
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

/// Writes `values` as a `.npy` vector atomically and returns its path.
fn write_npy(path: &Path, values: &[f64]) -> Result<PathBuf> {
    let bytes = imreg_objective::data::npy::npy_bytes(&[values.len()], values)
        .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?;
    imreg_plot::write_atomic(path, &bytes)?;
    Ok(path.to_path_buf())
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
        ("dense", _) => "dense (exact)".to_string(),
        (_, true) => format!("Lanczos ({} steps)", a.eigen_iterations),
        (_, false) => format!("Lanczos ({} steps, not converged)", a.eigen_iterations),
    };
    let bounds = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = vec![
        ("model".to_string(), a.model.clone()),
        ("p".into(), a.p.to_string()),
        ("N".into(), a.n.to_string()),
        ("loss C(θ)".into(), format!("{:.10e}", a.loss)),
        ("‖∇C(θ)‖".into(), format!("{:.6e}", a.grad_norm)),
    ];
    if a.eigen_method != "none" {
        rows.push(("λ top (desc)".into(), list(&a.hessian_top)));
        if !a.top_residuals.is_empty() {
            rows.push(("  ‖Hv − λv‖ ≤".into(), bounds(&a.top_residuals)));
        }
        if !a.hessian_bottom.is_empty() {
            rows.push(("λ bottom (asc)".into(), list(&a.hessian_bottom)));
        }
        if !a.bottom_residuals.is_empty() {
            rows.push(("  ‖Hv − λv‖ ≤ ".into(), bounds(&a.bottom_residuals)));
        }
        rows.push(("eigen method".into(), eigen));
    }
    for (name, r) in [
        ("Tr H", a.hessian_trace),
        ("Tr K", a.trace_k),
        ("λ_K¹", a.lambda_k1),
        ("Tr F", a.trace_f),
    ] {
        if let Some(r) = r {
            rows.push((name.into(), r.display()));
        }
    }
    if let Some(d) = &a.density {
        rows.push((
            "density (SLQ)".into(),
            format!(
                "{} probes × {} steps, σ = {:.2e}, {} nodes; Tr H ≈ {}",
                d.probes,
                d.steps,
                d.sigma,
                d.nodes.len(),
                d.trace.display()
            ),
        ));
    }
    for b in a.blocks.iter().flatten() {
        rows.push((
            format!("layer {} ({} params)", b.name, b.len),
            format!("Tr {}; λ_max {}", b.trace.display(), b.lambda_max.display()),
        ));
    }
    for (name, d) in [
        ("diag H", &a.diagonal),
        ("diag G (Gauss–Newton)", &a.ggn_diagonal),
    ] {
        if let Some(d) = d {
            let how = match d.probes {
                Some(m) => format!("Hutchinson, {m} probes, max SE {:.1e}", d.max_std_error),
                None => "exact".into(),
            };
            rows.push((
                name.into(),
                format!("Σ {:.6e}, min {:.6e}, max {:.6e} ({how})", d.sum, d.min, d.max),
            ));
        }
    }
    if let (Some(bs), Some(b)) = (a.batch_sharpness, a.batch_size) {
        rows.push(("batch size b".into(), b.to_string()));
        rows.push(("batch sharpness".into(), bs.display()));
    }
    if let Some(bs) = a.batch_sharpness_inside {
        rows.push(("batch sharpness (inside)".into(), bs.display()));
    }
    for f in &a.files {
        rows.push(("wrote".into(), f.display().to_string()));
    }
    rows.push(("seed".into(), a.seed.to_string()));
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
