//! What `imreg analyze` computes (`--quantities`) and the knobs of its solvers ([`SolverOptions`]).
use crate::error::{CliError, Result};
use crate::spectrum::DENSE_MAX_P;

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

impl SolverOptions {
    /// Checks the knobs, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        let range = |flag: &str, v: usize, lo: usize| {
            if (lo..=MAX_KNOB).contains(&v) {
                Ok(())
            } else {
                Err(CliError::arg(
                    flag,
                    format!("must lie in {lo}..={MAX_KNOB}, got {v}"),
                ))
            }
        };
        range("--lanczos-max-iter", self.lanczos_max_iter, 1)?;
        range("--trace-matvecs", self.trace_matvecs, 4)?;
        range("--slq-probes", self.slq_probes, 1)?;
        range("--slq-steps", self.slq_steps, 1)?;
        range("--density-points", self.density_points, 2)?;
        range("--diagonal-probes", self.diagonal_probes, 2)?;
        if !(self.lanczos_tol.is_finite() && self.lanczos_tol >= 0.0) {
            return Err(CliError::arg(
                "--lanczos-tol",
                format!("must be a finite number ≥ 0, got {}", self.lanczos_tol),
            ));
        }
        if !(self.density_sigma.is_finite() && self.density_sigma > 0.0) {
            return Err(CliError::arg(
                "--density-sigma",
                format!("must be a finite number > 0, got {}", self.density_sigma),
            ));
        }
        Ok(())
    }
}
