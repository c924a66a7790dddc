//! Curvature per layer: the principal blocks `H_bb` of the Hessian over one module's parameters (a PyTorch
//! module: the tensors `<module>.weight`, `<module>.bias`, … that share a name prefix), with each block's
//! trace (exact up to `--exact-trace-max-p`, Hutch++ above) and top eigenvalue (dense up to `--dense-max-p`,
//! Lanczos above), and the Hessian diagonal (exact from the unit vectors, or Hutchinson's estimate with a
//! standard error per entry). `Σ_b Tr H_bb = Tr H`.
use crate::model::ParamTensor;
use crate::quantities::SolverOptions;
use crate::spectrum::{operator_trace, symmetric_extremes, ExtremeOptions, Reported};
use imreg_spectra::{exact_diagonal, hutchinson_diagonal, Diagonal, LinearOperator, PrincipalBlock};
use serde::Serialize;
use std::ops::Range;

/// One layer's block of the Hessian.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Block {
    /// The module name (`0`, `layer1.0.conv1`, …).
    pub name: String,
    /// Its tensors, in parameter order.
    pub tensors: Vec<String>,
    /// Its range `[offset, offset + len)` in `θ`.
    pub offset: usize,
    pub len: usize,
    /// `Tr H_bb`.
    pub trace: Reported,
    /// `λ_max(H_bb)`.
    pub lambda_max: Reported,
}

/// The modules of a parameter layout: consecutive tensors sharing the prefix before the last `.`.
pub fn modules(layout: &[ParamTensor]) -> Vec<(String, Vec<String>, Range<usize>)> {
    let mut out: Vec<(String, Vec<String>, Range<usize>)> = Vec::new();
    let mut offset = 0;
    for t in layout {
        let module = t.name.rsplit_once('.').map_or(t.name.as_str(), |(m, _)| m);
        let end = offset + t.numel();
        match out.last_mut() {
            Some((m, tensors, r)) if m == module => {
                tensors.push(t.name.clone());
                r.end = end;
            }
            _ => out.push((module.to_string(), vec![t.name.clone()], offset..end)),
        }
        offset = end;
    }
    out
}

/// The per-layer blocks of `h`.
pub fn blocks(
    h: &dyn LinearOperator,
    layout: &[ParamTensor],
    opts: &SolverOptions,
    exact_trace_max_p: usize,
    seed: u64,
) -> imreg_spectra::Result<Vec<Block>> {
    let eig = ExtremeOptions {
        dense_max_p: opts.dense_max_p,
        max_iter: opts.lanczos_max_iter,
        tol: opts.lanczos_tol,
        vectors: false,
        ..ExtremeOptions::default()
    };
    modules(layout)
        .into_iter()
        .map(|(name, tensors, range)| {
            let b = PrincipalBlock::new(h, range.clone())?;
            let trace = operator_trace(&b, seed, exact_trace_max_p, opts.trace_matvecs)?;
            let e = symmetric_extremes(&b, 1, 0, seed, &eig)?;
            let lambda_max = Reported::eigenvalue(&e, e.top[0], e.top_residuals.first().copied());
            Ok(Block {
                name,
                tensors,
                offset: range.start,
                len: range.len(),
                trace,
                lambda_max,
            })
        })
        .collect()
}

/// `diag(h)`: exact for `p ≤ exact_max_p`, else Hutchinson's estimate from `--diagonal-probes` probes.
pub fn diagonal(
    h: &dyn LinearOperator,
    opts: &SolverOptions,
    exact_max_p: usize,
    seed: u64,
) -> imreg_spectra::Result<Diagonal> {
    if h.dim() <= exact_max_p {
        exact_diagonal(h)
    } else {
        hutchinson_diagonal(h, opts.diagonal_probes, seed)
    }
}

/// What `analyze` reports of the diagonal (the entries go to `diagonal.npy`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DiagonalSummary {
    /// `"exact"` or `"monte_carlo"`.
    pub estimator: &'static str,
    /// Rademacher probes (Monte Carlo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<usize>,
    /// `Σ_i d_i`, `max_i d_i`, `min_i d_i`.
    pub sum: f64,
    pub max: f64,
    pub min: f64,
    /// The largest standard error of an entry (0 when exact).
    pub max_std_error: f64,
}

impl DiagonalSummary {
    pub fn of(d: &Diagonal) -> Self {
        DiagonalSummary {
            estimator: if d.is_exact() { "exact" } else { "monte_carlo" },
            probes: d.probes,
            sum: d.values.iter().sum(),
            max: d.values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            min: d.values.iter().copied().fold(f64::INFINITY, f64::min),
            max_std_error: d.std_errors.iter().copied().fold(0.0, f64::max),
        }
    }
}
