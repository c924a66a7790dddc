//! `imreg analyze`: curvature and gradient statistics of given weights on given data.
use crate::config::{DataConfig, ModelConfig, SplitConfig};
use crate::data;
use crate::error::{CliError, Result};
use crate::model::Model;
use crate::params::load_params;
use crate::spectrum::{gradient_traces, hessian_extremes, hessian_trace, lambda_k1};
use imreg_objective::Batch;
use imreg_spectra::{batch_sharpness, BatchExpectation};
use serde::Serialize;
use std::path::{Path, PathBuf};

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
    /// Batch size for batch sharpness (none: skipped).
    pub batch_size: Option<usize>,
    pub seed: u64,
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
    /// `"dense"` or `"lanczos"`.
    pub eigen_method: &'static str,
    /// `Tr ∇²C(θ)` and its standard error (0 when exact).
    pub hessian_trace: f64,
    pub hessian_trace_se: f64,
    /// `Tr K`, the trace of the gradient covariance `K = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ`.
    pub trace_k: f64,
    /// `λ_K¹`, the top eigenvalue of `K`.
    pub lambda_k1: f64,
    /// `Tr F`, the trace of the empirical Fisher `(1/N) Σ g_i g_iᵀ`.
    pub trace_f: f64,
    /// Batch sharpness `E_B[g_BᵀH_Bg_B/‖g_B‖²]` at the requested batch size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_sharpness: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

/// Runs the analysis.
pub fn analyze(req: &AnalyzeRequest) -> Result<Analysis> {
    let args = Path::new("<args>");
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
        .map(|d| data::build(d, req.seed, args))
        .transpose()?;
    let dataset = match (dataset, &req.split) {
        (Some(d), Some(s)) => Some(data::split(&d, s, req.seed, args)?.0),
        (d, _) => d,
    };
    let model = Model::build(&req.model, dataset.as_ref(), args, req.seed)?;
    let theta = load_params(&req.params, &model.layout(), "--params")?;
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
    let (tr, tr_se) = hessian_trace(obj, &theta, req.seed).map_err(|e| failed("Hessian trace", e))?;
    let (trace_k, trace_f) = gradient_traces(obj, &theta).map_err(|e| failed("gradient covariance", e))?;
    let lambda_k1 = lambda_k1(obj, &theta, req.seed).map_err(|e| failed("λ_K¹", e))?;
    let batch_sharpness = match req.batch_size {
        Some(b) => Some(
            batch_sharpness(obj, &theta, Batch::Full, b, &BatchExpectation::default())
                .map_err(|e| failed("batch sharpness", e))?
                .mean_of_ratios
                .value,
        ),
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
        hessian_trace: tr,
        hessian_trace_se: tr_se,
        trace_k,
        lambda_k1,
        trace_f,
        batch_sharpness,
        batch_size: req.batch_size,
    })
}

/// The analysis as an aligned two-column table.
pub fn table(a: &Analysis) -> String {
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.6e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = vec![
        ("model", a.model.clone()),
        ("p", a.p.to_string()),
        ("N", a.n.to_string()),
        ("loss C(θ)", format!("{:.10e}", a.loss)),
        ("‖∇C(θ)‖", format!("{:.6e}", a.grad_norm)),
        ("λ top (desc)", list(&a.hessian_top)),
        ("λ bottom (asc)", list(&a.hessian_bottom)),
        ("eigen method", a.eigen_method.to_string()),
        (
            "Tr H",
            format!("{:.6e} ± {:.1e}", a.hessian_trace, a.hessian_trace_se),
        ),
        ("Tr K", format!("{:.6e}", a.trace_k)),
        ("λ_K¹", format!("{:.6e}", a.lambda_k1)),
        ("Tr F", format!("{:.6e}", a.trace_f)),
    ];
    if let (Some(bs), Some(b)) = (a.batch_sharpness, a.batch_size) {
        rows.push(("batch sharpness", format!("{bs:.6e} (b = {b})")));
    }
    let w = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k}{} {v}\n", " ".repeat(w - k.chars().count())))
        .collect()
}
