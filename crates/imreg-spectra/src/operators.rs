//! Curvature operators of an [`Objective`] on any batch `B`:
//!
//! - the Hessian `H_B = ∇²C_B` ([`HessianOperator`], via exact HVPs);
//! - the gradient covariance `K = (1/N) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ` (Jastrzebski et al. 2020; `Tr K` is Smith
//!   et al.'s `Γ`), with the `N` vs `N − 1` convention explicit ([`Normalization`]), as a streamed operator
//!   ([`GradientCovariance`]) and through the `N × N` Gram matrix ([`GramCovariance`]) when `N < p`;
//! - the empirical Fisher `F_emp = (1/N) Σ_i g_i g_iᵀ` ([`GradientOuterOperator::empirical_fisher`]);
//! - the true Fisher `F = (1/N) Σ_i E_{ŷ∼p_θ(·|x_i)} ∇ℓ(x_i, ŷ)∇ℓ(x_i, ŷ)ᵀ` with labels sampled from the
//!   model's predictive distribution (seeded), or its exact expectation ([`FisherOperator`]);
//! - the Gauss–Newton matrix `G = (1/N) Σ_i J_iᵀ H_ℓ(f_i) J_i` for MSE and cross-entropy
//!   ([`GaussNewtonOperator`]).
//!
//! `N` is the number of examples of the batch. Per-example gradients are streamed in chunks (never `N × p`
//! in memory), except by the Gram route, which stores them by design.
use crate::dense::{symmetric_eigen, DenseEigen, DenseOptions};
use crate::error::{check_dim, check_finite, Result, SpectraError};
use crate::estimate::{mean_se, Estimate, Estimator};
use crate::operator::LinearOperator;
use crate::vector::{axpy, dot};
use imreg_objective::{rng, Batch, HessianAt, LossKind, Objective, Supervised, Targets};
use ndarray::{Array2, ArrayView1};
use rand::Rng;

/// Validates `θ` against the objective and the batch against its data; returns the batch size `N`.
pub(crate) fn check_theta_batch<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    batch: Batch<'_>,
) -> Result<usize> {
    check_dim("theta", obj.dim(), theta.len())?;
    check_finite("theta", theta)?;
    batch.validate(obj.n_examples())?;
    Ok(batch.len(obj.n_examples()))
}

/// `H_B(θ)` as an operator: `v ↦ ∇²C_B(θ) v` by the objective's exact HVP, prepared once at `θ`
/// ([`Objective::hessian_at`]: for networks the primal forward pass runs once, not once per product).
pub struct HessianOperator<'a, O: ?Sized> {
    obj: &'a O,
    at: Box<dyn HessianAt + 'a>,
}

impl<'a, O: Objective + ?Sized> HessianOperator<'a, O> {
    /// The Hessian of `C_B` at `θ`; validates `θ` and the batch.
    pub fn new(obj: &'a O, theta: &'a [f64], batch: Batch<'a>) -> Result<Self> {
        check_theta_batch(obj, theta, batch)?;
        Ok(HessianOperator {
            obj,
            at: obj.hessian_at(theta, batch)?,
        })
    }
}

impl<O: Objective + ?Sized> LinearOperator for HessianOperator<'_, O> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        Ok(self.at.hvp(x, y)?)
    }
}

/// The denominator convention of a covariance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Normalization {
    /// `1/N`: the population covariance of the `N` per-example gradients (Jastrzebski et al.'s `K`, Smith
    /// et al.'s `Γ = Tr K`).
    #[default]
    N,
    /// `1/(N − 1)`: the unbiased sample covariance.
    NMinusOne,
}

impl Normalization {
    /// The denominator for `n` examples; errors for `n − 1 = 0`.
    pub fn denominator(self, n: usize) -> Result<f64> {
        match self {
            Normalization::N => Ok(n as f64),
            Normalization::NMinusOne if n >= 2 => Ok((n - 1) as f64),
            Normalization::NMinusOne => Err(SpectraError::invalid(
                "normalization",
                "N − 1 = 0: a covariance needs at least 2 examples",
            )),
        }
    }
}

/// Options of the gradient-covariance operators and traces.
#[derive(Clone, Copy, Debug)]
pub struct CovarianceOptions {
    /// `1/N` or `1/(N − 1)`.
    pub normalization: Normalization,
    /// Rows per streamed chunk of per-example gradients.
    pub chunk: usize,
}

impl Default for CovarianceOptions {
    fn default() -> Self {
        CovarianceOptions {
            normalization: Normalization::N,
            chunk: 256,
        }
    }
}

/// `v ↦ (1/c) Σ_{i∈B} (g_i − m)((g_i − m)ᵀ v)` over streamed per-example gradients: the gradient
/// covariance (`m = ḡ`, `c = N` or `N − 1`) or the empirical Fisher (`m = 0`, `c = N`). Each application
/// recomputes the per-example gradients chunk by chunk (memory `chunk × p`).
pub struct GradientOuterOperator<'a, O: ?Sized> {
    obj: &'a O,
    theta: &'a [f64],
    batch: Batch<'a>,
    center: Option<Vec<f64>>,
    denom: f64,
    chunk: usize,
}

/// The gradient covariance `K` as a streamed operator.
pub type GradientCovariance<'a, O> = GradientOuterOperator<'a, O>;

impl<'a, O: Objective + ?Sized> GradientOuterOperator<'a, O> {
    /// `K = (1/c) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ` on the batch, `ḡ = ∇C_B(θ)`.
    pub fn covariance(
        obj: &'a O,
        theta: &'a [f64],
        batch: Batch<'a>,
        opts: CovarianceOptions,
    ) -> Result<Self> {
        let n = check_theta_batch(obj, theta, batch)?;
        let denom = opts.normalization.denominator(n)?;
        let mean = obj.grad(theta, batch)?;
        Ok(GradientOuterOperator {
            obj,
            theta,
            batch,
            center: Some(mean),
            denom,
            chunk: opts.chunk.max(1),
        })
    }

    /// The empirical Fisher `F_emp = (1/N) Σ_i g_i g_iᵀ` on the batch (uncentered, true labels).
    pub fn empirical_fisher(obj: &'a O, theta: &'a [f64], batch: Batch<'a>, chunk: usize) -> Result<Self> {
        let n = check_theta_batch(obj, theta, batch)?;
        Ok(GradientOuterOperator {
            obj,
            theta,
            batch,
            center: None,
            denom: n as f64,
            chunk: chunk.max(1),
        })
    }

    /// The exact trace `(1/c) Σ_i ‖g_i − m‖²` in one streamed pass (`Tr K = Γ`, or `Tr F_emp`).
    pub fn trace(&self) -> Result<f64> {
        let mut s = 0.0;
        let mut d = vec![0.0; self.obj.dim()];
        self.stream(&mut |row| {
            self.centered(row, &mut d);
            s += dot(&d, &d);
        })?;
        Ok(s / self.denom)
    }

    /// The mean gradient subtracted (`None` for the empirical Fisher).
    pub fn center(&self) -> Option<&[f64]> {
        self.center.as_deref()
    }

    fn centered(&self, row: ArrayView1<'_, f64>, out: &mut [f64]) {
        out.iter_mut().zip(row.iter()).for_each(|(o, g)| *o = *g);
        if let Some(m) = &self.center {
            axpy(-1.0, m, out);
        }
    }

    fn stream(&self, f: &mut dyn FnMut(ArrayView1<'_, f64>)) -> Result<()> {
        self.obj
            .per_example_grads(self.theta, self.batch, self.chunk, &mut |_, rows| {
                for row in rows.rows() {
                    f(row);
                }
                Ok(())
            })?;
        Ok(())
    }
}

impl<O: Objective + ?Sized> LinearOperator for GradientOuterOperator<'_, O> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        y.iter_mut().for_each(|v| *v = 0.0);
        let mut d = vec![0.0; x.len()];
        self.stream(&mut |row| {
            self.centered(row, &mut d);
            let c = dot(&d, x);
            axpy(c, &d, y);
        })?;
        y.iter_mut().for_each(|v| *v /= self.denom);
        Ok(())
    }
}

/// `Tr K = (1/c) Σ_i ‖g_i − ḡ‖²` (Smith et al.'s `Γ` for `c = N`), exact, in one streamed pass.
pub fn trace_gradient_covariance<O: Objective + ?Sized>(
    obj: &O,
    theta: &[f64],
    batch: Batch<'_>,
    opts: CovarianceOptions,
) -> Result<f64> {
    GradientOuterOperator::covariance(obj, theta, batch, opts)?.trace()
}

/// The gradient covariance through its `N × N` Gram matrix `G = (1/c) Δ Δᵀ`, `Δ` the `N × p` matrix of
/// centered per-example gradients: `K = (1/c) Δᵀ Δ` and `G` share their non-zero eigenvalues, so `λ_K¹`
/// and `Tr K = tr G` come from an `N × N` eigenproblem. Stores `Δ` (`N × p` doubles): choose it when
/// `N < p` and `N p` fits in memory.
pub struct GramCovariance {
    deltas: Array2<f64>,
    gram: nalgebra::DMatrix<f64>,
    denom: f64,
}

impl GramCovariance {
    /// Collects the centered per-example gradients of the batch and forms the Gram matrix.
    pub fn new<O: Objective + ?Sized>(
        obj: &O,
        theta: &[f64],
        batch: Batch<'_>,
        opts: CovarianceOptions,
    ) -> Result<Self> {
        let n = check_theta_batch(obj, theta, batch)?;
        let denom = opts.normalization.denominator(n)?;
        let p = obj.dim();
        let mean = obj.grad(theta, batch)?;
        let mut deltas = Array2::<f64>::zeros((n, p));
        obj.per_example_grads(theta, batch, opts.chunk.max(1), &mut |start, rows| {
            let end = start + rows.nrows();
            if end > n {
                return Err(imreg_objective::ObjectiveError::invalid(
                    "per_example_grads",
                    "too many rows",
                ));
            }
            deltas.slice_mut(ndarray::s![start..end, ..]).assign(&rows);
            Ok(())
        })?;
        for mut row in deltas.rows_mut() {
            row.iter_mut().zip(&mean).for_each(|(d, m)| *d -= m);
        }
        let g = deltas.dot(&deltas.t()) / denom;
        let gram = nalgebra::DMatrix::from_fn(n, n, |i, j| 0.5 * (g[(i, j)] + g[(j, i)]));
        Ok(GramCovariance { deltas, gram, denom })
    }

    /// The `N × N` Gram matrix `(1/c) Δ Δᵀ`.
    pub fn gram(&self) -> &nalgebra::DMatrix<f64> {
        &self.gram
    }

    /// `Tr K = tr G`.
    pub fn trace(&self) -> f64 {
        self.gram.trace()
    }

    /// The eigenvalues of `G` (= the non-zero eigenvalues of `K`, padded with zeros), ascending.
    pub fn eigen(&self, opts: &DenseOptions) -> Result<DenseEigen> {
        symmetric_eigen(self.gram.clone(), opts)
    }

    /// `λ_K¹`, the largest eigenvalue of `K`.
    pub fn top_eigenvalue(&self) -> Result<f64> {
        Ok(self.eigen(&DenseOptions::default())?.max())
    }

    /// The unit eigenvector of `K` in parameter space for the Gram eigenvector `u`: `Δᵀu/‖Δᵀu‖`
    /// (errors if `Δᵀu = 0`, i.e. a zero eigenvalue).
    pub fn parameter_vector(&self, u: &[f64]) -> Result<Vec<f64>> {
        check_dim("Gram eigenvector u", self.deltas.nrows(), u.len())?;
        let v = self.deltas.t().dot(&ArrayView1::from(u));
        let n = v.dot(&v).sqrt();
        if n == 0.0 {
            return Err(SpectraError::ZeroVector {
                what: "Δᵀu (eigenvalue 0 of K)".into(),
            });
        }
        Ok(v.iter().map(|x| x / n).collect())
    }

    /// The denominator `c` used.
    pub fn denominator(&self) -> f64 {
        self.denom
    }
}

/// `v ↦ (1/N) Jᵀ M J v` with a per-example `C × C` output-space matrix `M_i`: the common form of the
/// Gauss–Newton matrix (`M_i = H_ℓ(f_i)`) and the Fisher (`M_i = E_ŷ r rᵀ`, `r = ∇_f ℓ(f_i, ŷ)`).
struct OutputSpace<'a, O: ?Sized> {
    obj: &'a O,
    theta: &'a [f64],
    batch: Batch<'a>,
    /// `N` matrices `M_i`, row-major `C × C`.
    m: Vec<Vec<f64>>,
    c: usize,
}

impl<O: Supervised + ?Sized> OutputSpace<'_, O> {
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        let jv = self.obj.output_jvp(self.theta, self.batch, x)?;
        let n = jv.nrows();
        if jv.ncols() != self.c || n != self.m.len() {
            return Err(SpectraError::Dimension {
                what: "output_jvp columns".into(),
                expected: self.c,
                got: jv.ncols(),
            });
        }
        let mut u = Array2::<f64>::zeros((n, self.c));
        for i in 0..n {
            let mi = &self.m[i];
            for a in 0..self.c {
                u[(i, a)] = (0..self.c).map(|b| mi[a * self.c + b] * jv[(i, b)]).sum();
            }
        }
        self.obj.output_vjp(self.theta, self.batch, u.view(), y)?;
        y.iter_mut().for_each(|v| *v /= n as f64);
        Ok(())
    }
}

/// Softmax of a logit row, stable.
fn softmax(f: &[f64]) -> Vec<f64> {
    let mx = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = f.iter().map(|z| (z - mx).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// The loss Hessian in output space, `H_ℓ(f)`: `2c I` for `ℓ = c‖f − y‖²`, `diag(p) − ppᵀ` for
/// cross-entropy with `p = softmax(f)` (independent of the target in both cases).
pub fn output_loss_hessian(kind: LossKind, f: &[f64]) -> Vec<f64> {
    let c = f.len();
    let mut h = vec![0.0; c * c];
    match kind {
        LossKind::Mse { half } => {
            let s = if half { 1.0 } else { 2.0 };
            (0..c).for_each(|a| h[a * c + a] = s);
        }
        LossKind::CrossEntropy => {
            let p = softmax(f);
            for a in 0..c {
                for b in 0..c {
                    h[a * c + b] = if a == b { p[a] } else { 0.0 } - p[a] * p[b];
                }
            }
        }
    }
    h
}

fn output_rows<O: Supervised + ?Sized>(
    obj: &O,
    theta: &[f64],
    batch: Batch<'_>,
) -> Result<(Array2<f64>, usize)> {
    let n = check_theta_batch(obj, theta, batch)?;
    let f = obj.outputs(theta, batch)?;
    let c = obj.n_outputs();
    if f.nrows() != n || f.ncols() != c {
        return Err(SpectraError::Dimension {
            what: "model outputs (columns)".into(),
            expected: c,
            got: f.ncols(),
        });
    }
    check_finite("model outputs", f.as_slice().unwrap_or(&[]))?;
    Ok((f, c))
}

/// The Gauss–Newton matrix `G = (1/N) Σ_i J_iᵀ H_ℓ(f_i) J_i` (MSE: `H_ℓ = 2c I`; cross-entropy:
/// `diag(p) − ppᵀ`). PSD; equals the Hessian for models linear in `θ`; equals the true Fisher's expectation.
pub struct GaussNewtonOperator<'a, O: ?Sized> {
    inner: OutputSpace<'a, O>,
}

impl<'a, O: Supervised + ?Sized> GaussNewtonOperator<'a, O> {
    /// The Gauss–Newton matrix of the batch at `θ`.
    pub fn new(obj: &'a O, theta: &'a [f64], batch: Batch<'a>) -> Result<Self> {
        let (f, c) = output_rows(obj, theta, batch)?;
        let kind = obj.loss_kind();
        let m = f
            .rows()
            .into_iter()
            .map(|r| output_loss_hessian(kind, &r.to_vec()))
            .collect();
        Ok(GaussNewtonOperator {
            inner: OutputSpace {
                obj,
                theta,
                batch,
                m,
                c,
            },
        })
    }
}

impl<O: Supervised + ?Sized> LinearOperator for GaussNewtonOperator<'_, O> {
    fn dim(&self) -> usize {
        self.inner.obj.dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.inner.apply(x, y)
    }
}

/// How the true Fisher treats the labels `ŷ ∼ p_θ(·|x_i)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FisherSampling {
    /// `samples` labels per example drawn from the model (seeded, stream `(seed, i)` for example `i` of the
    /// batch): the Monte Carlo Fisher of Jastrzebski et al. (2021).
    Sampled { samples: usize, seed: u64 },
    /// The exact expectation over the predictive distribution (a sum over classes for cross-entropy, the
    /// closed form `2c I` for the Gaussian of MSE): equal to the Gauss–Newton matrix.
    Exact,
}

/// The true Fisher `F = (1/N) Σ_i E_{ŷ} g(x_i, ŷ) g(x_i, ŷ)ᵀ`, `g = ∇_θ ℓ(f(x_i; θ), ŷ)`, with `ŷ` from the
/// model's predictive distribution: `softmax(f_i)` for cross-entropy; `N(f_i, I/(2c))` for `ℓ = c‖f − y‖²`
/// (the Gaussian whose negative log-likelihood is the loss). Applied as `(1/N) Jᵀ M J` with
/// `M_i = (1/S) Σ_s r_is r_isᵀ`, `r = ∇_f ℓ(f_i, ŷ_is)`.
pub struct FisherOperator<'a, O: ?Sized> {
    inner: OutputSpace<'a, O>,
    /// The sampled targets per example (labels as `f64` for cross-entropy, value rows for MSE).
    targets: Vec<Vec<Vec<f64>>>,
}

impl<'a, O: Supervised + ?Sized> FisherOperator<'a, O> {
    /// The true Fisher of the batch at `θ`.
    pub fn new(obj: &'a O, theta: &'a [f64], batch: Batch<'a>, sampling: FisherSampling) -> Result<Self> {
        let (f, c) = output_rows(obj, theta, batch)?;
        let kind = obj.loss_kind();
        let mut m = Vec::with_capacity(f.nrows());
        let mut targets = Vec::with_capacity(f.nrows());
        for (i, row) in f.rows().into_iter().enumerate() {
            let fi = row.to_vec();
            match sampling {
                FisherSampling::Exact => {
                    m.push(output_loss_hessian(kind, &fi));
                    targets.push(Vec::new());
                }
                FisherSampling::Sampled { samples, seed } => {
                    if samples == 0 {
                        return Err(SpectraError::invalid(
                            "FisherSampling::Sampled.samples",
                            "must be ≥ 1",
                        ));
                    }
                    let mut r = rng::stream(seed, i as u64);
                    let mut mi = vec![0.0; c * c];
                    let mut ti = Vec::with_capacity(samples);
                    for _ in 0..samples {
                        let (t, res) = sample_target(kind, &fi, &mut r);
                        for a in 0..c {
                            for b in 0..c {
                                mi[a * c + b] += res[a] * res[b] / samples as f64;
                            }
                        }
                        ti.push(t);
                    }
                    m.push(mi);
                    targets.push(ti);
                }
            }
        }
        Ok(FisherOperator {
            inner: OutputSpace {
                obj,
                theta,
                batch,
                m,
                c,
            },
            targets,
        })
    }

    /// `Tr F` from per-example gradients ([`Supervised::loss_grad_with_targets`] on single-example
    /// batches), independently of the `J`-based [`LinearOperator::apply`]: with
    /// [`FisherSampling::Sampled`], `(1/(N S)) Σ_{i,s} ‖g(x_i, ŷ_is)‖²` over the stored samples; with
    /// [`FisherSampling::Exact`] and cross-entropy, `(1/N) Σ_i Σ_y p_θ(y|x_i) ‖g(x_i, y)‖²` (a sum over the
    /// classes). The exact MSE Fisher trace needs `J` and is an error here (use
    /// [`crate::hutch_plus_plus`] or [`crate::exact_trace`] on the operator).
    pub fn trace(&self) -> Result<f64> {
        Ok(self.trace_estimate()?.value)
    }

    /// [`trace`](Self::trace) as an [`Estimate`]: exact over the `N` examples with
    /// [`FisherSampling::Exact`]; with [`FisherSampling::Sampled`] Monte Carlo over the `N·S` sampled labels,
    /// with the stratified standard error `SE = √(Σ_i s_i²/S) / N`, `s_i²` the sample variance of
    /// `‖g(x_i, ŷ_is)‖²` over the `S` labels of example `i` (`SE = ∞` for `S = 1`: no variance estimate).
    pub fn trace_estimate(&self) -> Result<Estimate> {
        let obj = self.inner.obj;
        let n = self.inner.m.len();
        let kind = obj.loss_kind();
        let f = obj.outputs(self.inner.theta, self.inner.batch)?;
        let mut g = vec![0.0; obj.dim()];
        let (mut total, mut variance, mut sampled) = (0.0, 0.0, 0usize);
        for k in 0..n {
            let i = [self.inner.batch.index(k)];
            let one = Batch::Indices(&i);
            let mut grad_sq = |t: &[f64]| -> Result<f64> {
                match kind {
                    LossKind::CrossEntropy => {
                        let lab = [t[0] as usize];
                        obj.loss_grad_with_targets(self.inner.theta, one, Targets::Labels(&lab), &mut g)?
                    }
                    LossKind::Mse { .. } => {
                        let v = Array2::from_shape_vec((1, t.len()), t.to_vec())
                            .map_err(|e| SpectraError::invalid("targets", e.to_string()))?;
                        obj.loss_grad_with_targets(self.inner.theta, one, Targets::Values(v.view()), &mut g)?
                    }
                };
                Ok(dot(&g, &g))
            };
            if self.targets[k].is_empty() {
                match kind {
                    LossKind::CrossEntropy => {
                        let p = softmax(&f.row(k).to_vec());
                        for (y, py) in p.iter().enumerate() {
                            total += py * grad_sq(&[y as f64])?;
                        }
                    }
                    LossKind::Mse { .. } => {
                        return Err(SpectraError::invalid(
                            "FisherOperator::trace",
                            "the exact MSE Fisher trace needs J (use hutch_plus_plus on the operator)",
                        ))
                    }
                }
            } else {
                let s = self.targets[k].len() as f64;
                let mut values = Vec::with_capacity(self.targets[k].len());
                for t in &self.targets[k] {
                    let v = grad_sq(t)?;
                    total += v / s;
                    values.push(v);
                }
                // SE² of the example's mean over its S labels
                variance += mean_se(values.iter().copied()).1.powi(2);
                sampled += values.len();
            }
        }
        let value = total / n as f64;
        Ok(if sampled == 0 {
            Estimate::exact(value, n as u64)
        } else {
            Estimate {
                value,
                std_error: variance.sqrt() / n as f64,
                estimator: Estimator::MonteCarlo {
                    samples: sampled,
                    converged: None,
                },
            }
        })
    }
}

/// Draws `ŷ ∼ p_θ(·|f)` and returns it (label as `f64` or value row) with `r = ∇_f ℓ(f, ŷ)`.
fn sample_target(kind: LossKind, f: &[f64], r: &mut rng::ChaCha8Rng) -> (Vec<f64>, Vec<f64>) {
    match kind {
        LossKind::CrossEntropy => {
            let p = softmax(f);
            let u: f64 = r.random();
            let mut acc = 0.0;
            let mut y = p.len() - 1;
            for (k, pk) in p.iter().enumerate() {
                acc += pk;
                if u < acc {
                    y = k;
                    break;
                }
            }
            let mut res = p;
            res[y] -= 1.0;
            (vec![y as f64], res)
        }
        LossKind::Mse { half } => {
            // ℓ = c‖f − y‖², c = ½ or 1: the likelihood is N(f, I/(2c)), and r = 2c (f − ŷ).
            let c: f64 = if half { 0.5 } else { 1.0 };
            let xi = rng::normal_vec(r, f.len());
            let sd = (1.0 / (2.0 * c)).sqrt();
            let y: Vec<f64> = f.iter().zip(&xi).map(|(fi, x)| fi + sd * x).collect();
            let res = f.iter().zip(&y).map(|(fi, yi)| 2.0 * c * (fi - yi)).collect();
            (y, res)
        }
    }
}

impl<O: Supervised + ?Sized> LinearOperator for FisherOperator<'_, O> {
    fn dim(&self) -> usize {
        self.inner.obj.dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.inner.apply(x, y)
    }
}
