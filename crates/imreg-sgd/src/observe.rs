//! Observers of a training run ([`crate::train::train`]): what is measured along a trajectory, and when.
//!
//! An [`Observer`] is called with a [`StepView`] — the step `t`, the iterate `θ_t`, the objective, and,
//! before the update of step `t`, that step's minibatch `B_t` with `L_{B_t}(θ_t)` and `∇L_{B_t}(θ_t)`
//! already computed by the loop (the final iterate `θ_T` has no update after it, so no batch) — on the
//! steps its [`Cadence`] selects, and answers with a [`Control`]: go on, stop the run, or report it as
//! diverged. Writing one takes a few lines:
//!
//! ```
//! use imreg_sgd::observe::{Control, Observer, StepView};
//! use imreg_objective::Objective;
//!
//! /// Stops the run once the step's gradient norm falls below `tol`.
//! struct Converged { tol: f64 }
//!
//! impl<O: Objective + ?Sized> Observer<O> for Converged {
//!     fn observe(&mut self, at: &StepView<'_, O>) -> imreg_sgd::Result<Control> {
//!         let small = at.grad.is_some_and(|g| g.iter().map(|v| v * v).sum::<f64>().sqrt() < self.tol);
//!         Ok(if small { Control::Stop } else { Control::Continue })
//!     }
//! }
//! ```
//!
//! A closure `FnMut(&StepView<O>) -> Result<Control, E>` is an observer too. The observers of the
//! quantities we track live here: [`FullLoss`] (train or test loss), [`Accuracy`], [`GradNorm`],
//! [`MicroBatchGradNormProbe`], [`SharpnessProbe`] (`λ_max` by warm-started Lanczos),
//! [`ExtremeEigenProbe`] (top-k and bottom-k eigenvalues, optionally warm-started), [`BatchSharpnessProbe`]
//! (both variants) and [`MiniBsProbe`], [`GradientCovarianceProbe`] (`λ_K¹`), [`GradientTraces`] (`Tr K`,
//! `Tr F`), [`GradientFlowDistance`], [`Imbalance`], and [`Iterates`]; each keeps its records as
//! `(step, value)`.
use crate::error::{Result, SgdError};
use imreg_flow::Dop853Options;
use imreg_objective::{argmax_rows, Batch, Objective, Supervised};
use imreg_spectra::{
    dist, norm, BatchExpectation, BatchSharpness, CovarianceOptions, GradientCovariance, LanczosOptions,
    MiniBs, MonteCarloOptions,
};

/// What an observer tells the loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop the run at this iterate ([`crate::train::RunOutcome::Stopped`]).
    Stop,
    /// The run diverged here: a measured value (a loss, a norm) blew up
    /// ([`crate::train::RunOutcome::Diverged`] with [`crate::train::Blowup::Observed`]).
    Diverged(f64),
}

/// What an observer sees at step `t`.
pub struct StepView<'a, O: ?Sized> {
    /// The step `t` (0 for the initial iterate; `T` for the final one).
    pub step: usize,
    /// `θ_t`.
    pub theta: &'a [f64],
    /// The objective the run trains on.
    pub objective: &'a O,
    /// The learning rate `η`.
    pub lr: f64,
    /// `B_t`, the minibatch of step `t`'s update (`None` at the final iterate).
    pub batch: Option<Batch<'a>>,
    /// `L_{B_t}(θ_t)` (`None` at the final iterate).
    pub loss: Option<f64>,
    /// `∇L_{B_t}(θ_t)`, before penalties, clipping and noise (`None` at the final iterate).
    pub grad: Option<&'a [f64]>,
    /// Whether this is the final iterate `θ_T` of a completed run.
    pub last: bool,
}

/// A measurement along a trajectory; may keep state between calls (a warm start, a series).
pub trait Observer<O: ?Sized, E = SgdError> {
    /// Called on the steps of its schedule.
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E>;
}

impl<O: ?Sized, E, F> Observer<O, E> for F
where
    F: FnMut(&StepView<'_, O>) -> std::result::Result<Control, E>,
{
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        self(at)
    }
}

/// When an observer is called. Every schedule includes the initial iterate `t = 0` and the final iterate
/// `θ_T` of a completed run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cadence {
    /// `t = 0, k, 2k, …` (`Every(1)`: every step). `k ≥ 1`.
    Every(usize),
    /// `t = 0, 1` and then `s ← max(s + 1, ⌈r s⌉)`: about `log_r T` calls over `T` steps. `r > 1`.
    Geometric { ratio: f64 },
    /// At the end of each epoch of the sampler: `t = 0, m, 2m, …` with `m` its steps per epoch.
    EpochEnds,
    /// Only the initial and the final iterate.
    Ends,
}

impl Cadence {
    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            Cadence::Every(0) => Err(SgdError::invalid("cadence", "Every(k) needs k ≥ 1")),
            Cadence::Geometric { ratio } if !(ratio.is_finite() && ratio > 1.0) => Err(SgdError::invalid(
                "cadence",
                format!("Geometric needs a finite ratio > 1, got {ratio}"),
            )),
            _ => Ok(()),
        }
    }

    /// The first step of the schedule after `t` (`None`: only the final iterate remains).
    pub(crate) fn next_after(&self, t: usize, steps_per_epoch: usize) -> Option<usize> {
        match *self {
            Cadence::Every(k) => t.checked_add(k),
            Cadence::EpochEnds => t.checked_add(steps_per_epoch.max(1)),
            Cadence::Geometric { ratio } => {
                if t == 0 {
                    return Some(1);
                }
                let up = (ratio * t as f64).ceil();
                Some(if up >= usize::MAX as f64 {
                    usize::MAX
                } else {
                    (up as usize).max(t + 1)
                })
            }
            Cadence::Ends => None,
        }
    }
}

/// An observer with its schedule: one entry of the list [`crate::train::train`] calls.
pub struct Scheduled<'a, O: ?Sized, E = SgdError> {
    pub cadence: Cadence,
    pub observer: &'a mut dyn Observer<O, E>,
}

impl<'a, O: ?Sized, E> Scheduled<'a, O, E> {
    pub fn new(cadence: Cadence, observer: &'a mut dyn Observer<O, E>) -> Self {
        Scheduled { cadence, observer }
    }
}

/// A per-measurement seed derived from a base seed and the step (SplitMix64 finalizer), so that successive
/// Monte Carlo estimates along a trajectory use fresh, reproducible batches.
pub fn step_seed(base: u64, step: usize) -> u64 {
    let mut z = base ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The iterates `θ_t` themselves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Iterates {
    pub records: Vec<(usize, Vec<f64>)>,
}

impl<O: ?Sized, E> Observer<O, E> for Iterates {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        self.records.push((at.step, at.theta.to_vec()));
        Ok(Control::Continue)
    }
}

/// The full-batch loss `C(θ_t)` of an objective — the training objective (`of: None`) or another one on
/// the same parameters (a test set). With `divergence`, a loss above it (or non-finite) is
/// [`Control::Diverged`].
pub struct FullLoss<'a> {
    pub of: Option<&'a dyn Objective>,
    pub divergence: f64,
    pub records: Vec<(usize, f64)>,
}

impl<'a> FullLoss<'a> {
    /// The training loss, never a divergence.
    pub fn train() -> Self {
        FullLoss {
            of: None,
            divergence: f64::INFINITY,
            records: Vec::new(),
        }
    }
    /// The loss of `obj` (e.g. the test set).
    pub fn of(obj: &'a dyn Objective) -> Self {
        FullLoss {
            of: Some(obj),
            ..FullLoss::train()
        }
    }
}

/// `!(l ≤ limit)`: non-finite or above the limit.
pub(crate) fn blown(value: f64, limit: f64) -> bool {
    !value.is_finite() || value > limit
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for FullLoss<'_> {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let l = match self.of {
            Some(o) => o.loss(at.theta, Batch::Full),
            None => at.objective.loss(at.theta, Batch::Full),
        }
        .map_err(SgdError::from)?;
        self.records.push((at.step, l));
        Ok(if blown(l, self.divergence) {
            Control::Diverged(l)
        } else {
            Control::Continue
        })
    }
}

/// Classification accuracy of the arg-max output on a labelled model (the training set or a test set).
pub struct Accuracy<'a> {
    pub model: &'a dyn Supervised,
    pub labels: &'a [usize],
    pub records: Vec<(usize, f64)>,
}

impl<'a> Accuracy<'a> {
    pub fn new(model: &'a dyn Supervised, labels: &'a [usize]) -> Self {
        Accuracy {
            model,
            labels,
            records: Vec::new(),
        }
    }

    /// The fraction of examples whose arg-max output is the label.
    pub fn measure(model: &dyn Supervised, theta: &[f64], labels: &[usize]) -> Result<f64> {
        let f = model.outputs(theta, Batch::Full)?;
        let correct = argmax_rows(&f).iter().zip(labels).filter(|(p, y)| p == y).count();
        Ok(correct as f64 / labels.len() as f64)
    }
}

impl<O: ?Sized, E: From<SgdError>> Observer<O, E> for Accuracy<'_> {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        self.records
            .push((at.step, Accuracy::measure(self.model, at.theta, self.labels)?));
        Ok(Control::Continue)
    }
}

/// `‖∇L_{B_t}(θ_t)‖`, the norm of the step's minibatch gradient (full batch under GD); at the final
/// iterate the full-batch gradient.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GradNorm {
    pub records: Vec<(usize, f64)>,
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for GradNorm {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let n = match at.grad {
            Some(g) => norm(g),
            None => norm(&at.objective.grad(at.theta, Batch::Full).map_err(SgdError::from)?),
        };
        self.records.push((at.step, n));
        Ok(Control::Continue)
    }
}

/// `mean_j ‖∇L_{M_j}(θ_t)‖²` over the micro-batches `M_1 … M_k` (consecutive, `micro` examples each) of the
/// step's minibatch (the quantity GN penalizes); skipped at the final iterate and when `micro` does not
/// divide the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct MicroBatchGradNormProbe {
    pub micro: usize,
    pub records: Vec<(usize, f64)>,
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for MicroBatchGradNormProbe {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let Some(batch) = at.batch else {
            return Ok(Control::Continue);
        };
        let n = at.objective.n_examples();
        let rows: Vec<usize> = batch.iter(n).collect();
        if self.micro == 0 || !rows.len().is_multiple_of(self.micro) {
            return Ok(Control::Continue);
        }
        let mut g = vec![0.0; at.objective.dim()];
        let mut total = 0.0;
        for m in rows.chunks(self.micro) {
            at.objective
                .loss_grad(at.theta, Batch::Indices(m), &mut g)
                .map_err(SgdError::from)?;
            total += g.iter().map(|x| x * x).sum::<f64>();
        }
        self.records
            .push((at.step, total / (rows.len() / self.micro) as f64));
        Ok(Control::Continue)
    }
}

/// A top Ritz value with its Lanczos diagnostics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopEigen {
    /// The largest Ritz value.
    pub value: f64,
    /// Its residual bound `β_m|e_mᵀs|` (an eigenvalue lies within it).
    pub residual_bound: f64,
    /// Lanczos steps taken.
    pub iterations: usize,
    /// Whether the tolerance was met.
    pub converged: bool,
}

/// Sharpness `λ_max(H_B(θ))` by Lanczos, warm-started from the previous call's top Ritz vector (Cohen et
/// al. use ARPACK from scratch; a warm start along a slowly moving trajectory needs far fewer iterations).
#[derive(Clone, Debug)]
pub struct SharpnessProbe {
    /// Lanczos options (`start` is overwritten by the warm start after the first call).
    pub lanczos: LanczosOptions,
    /// Examples of the Hessian (`None`: the full batch).
    pub subset: Option<Vec<usize>>,
    /// The measurements, by step.
    pub records: Vec<(usize, TopEigen)>,
    warm: Option<Vec<f64>>,
}

impl SharpnessProbe {
    /// A probe on the full-batch Hessian with `iterations` Lanczos steps and relative tolerance `tol`.
    pub fn new(iterations: usize, tol: f64, seed: u64) -> Self {
        SharpnessProbe {
            lanczos: LanczosOptions {
                max_iter: iterations,
                tol,
                seed,
                ..Default::default()
            },
            subset: None,
            records: Vec::new(),
            warm: None,
        }
    }

    /// Measures `λ_max(H)` at `θ` and keeps the Ritz vector for the next call (not in `records`).
    pub fn sharpness<O: Objective + ?Sized>(&mut self, obj: &O, theta: &[f64]) -> Result<TopEigen> {
        let h = imreg_spectra::HessianOperator::new(obj, theta, examples(&self.subset))?;
        warm_top(&h, &self.lanczos, &mut self.warm)
    }
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for SharpnessProbe {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let s = self.sharpness(at.objective, at.theta)?;
        self.records.push((at.step, s));
        Ok(Control::Continue)
    }
}

/// A Ritz value with its residual bound `β_m|e_mᵀs|` (an eigenvalue of `H` lies within it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RitzValue {
    pub value: f64,
    pub residual_bound: f64,
}

/// One evaluation of [`ExtremeEigenProbe`]: the `k_top` largest and `k_bottom` smallest Ritz values of
/// `H_B(θ)` with the Lanczos run's diagnostics.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtremeEigen {
    /// `λ_1 ≥ λ_2 ≥ …`, descending.
    pub top: Vec<RitzValue>,
    /// `λ_p ≤ λ_{p−1} ≤ …`, ascending.
    pub bottom: Vec<RitzValue>,
    /// Lanczos steps taken (= Hessian-vector products).
    pub iterations: usize,
    /// Whether every wanted pair met `β_m|e_mᵀs_i| ≤ tol · max_i|θ_i|` (or the whole space was spanned).
    pub converged: bool,
    /// The largest relative residual bound `β_m|e_mᵀs_i| / max_i|θ_i|` among the wanted pairs.
    pub max_relative_residual: f64,
    /// Whether the run started from the previous evaluation's Ritz vectors.
    pub warm: bool,
}

/// The extreme eigenvalues `λ_1 ≥ … ≥ λ_{k_top}` and `λ_p ≤ … ≤ λ_{p−k_bottom+1}` of `H_B(θ)` by Lanczos
/// along a trajectory (`lanczos.k_top`, `lanczos.k_bottom`).
///
/// With `warm_start`, each evaluation after the first starts Lanczos from `v₁ ∝ Σ_i y_i`, the sum of the
/// previous evaluation's unit Ritz vectors `y_i` of the wanted pairs (top and bottom). Along a slowly
/// moving trajectory the wanted invariant subspace moves little, so `v₁` has small components outside it
/// and the residual bounds fall below `tol` in far fewer steps than from a random vector; the Krylov space
/// of `v₁` is that of a single vector, so this needs no block solver. The stopping rule, and so the
/// accuracy guarantee (a Hessian eigenvalue within each residual bound), is the same either way. Like any
/// Lanczos start, a warm start certifies eigenvalues near the reported values but cannot prove that no
/// larger one was missed: an eigenvalue that newly overtakes `λ_{k_top}` enters through the small
/// components the drift of `θ` puts on it. Without `warm_start` every evaluation starts from the seeded
/// Gaussian vector of `lanczos.seed` (the same one each time).
#[derive(Clone, Debug)]
pub struct ExtremeEigenProbe {
    /// Lanczos options (`start` and `ritz_vectors` are set per call).
    pub lanczos: LanczosOptions,
    /// Start each evaluation from the previous one's Ritz vectors.
    pub warm_start: bool,
    /// Examples of the Hessian (`None`: the full batch), fixed for the whole trajectory.
    pub subset: Option<Vec<usize>>,
    /// The measurements, by step.
    pub records: Vec<(usize, ExtremeEigen)>,
    warm: Option<Vec<f64>>,
}

impl ExtremeEigenProbe {
    /// A probe of the `k_top` largest and `k_bottom` smallest eigenvalues of the full-batch Hessian.
    pub fn new(lanczos: LanczosOptions, warm_start: bool) -> Self {
        ExtremeEigenProbe {
            lanczos,
            warm_start,
            subset: None,
            records: Vec::new(),
            warm: None,
        }
    }

    /// Measures the extreme eigenvalues at `θ`; with `warm_start`, keeps the start of the next call.
    pub fn measure<O: Objective + ?Sized>(&mut self, obj: &O, theta: &[f64]) -> Result<ExtremeEigen> {
        let warm = self.warm.is_some();
        let r = self.measure_ritz(obj, theta)?;
        let values = |pairs: &[imreg_spectra::RitzPair]| {
            pairs
                .iter()
                .map(|t| RitzValue {
                    value: t.value,
                    residual_bound: t.residual_bound,
                })
                .collect()
        };
        Ok(ExtremeEigen {
            top: values(&r.top),
            bottom: values(&r.bottom),
            iterations: r.report.iterations,
            converged: r.report.converged,
            max_relative_residual: r.report.max_relative_residual,
            warm,
        })
    }

    /// [`measure`](Self::measure) with the whole Lanczos result: each pair's residual and eigenvalue bounds
    /// and the run's report (its stopping rule, `lanczos.stop`).
    pub fn measure_ritz<O: Objective + ?Sized>(
        &mut self,
        obj: &O,
        theta: &[f64],
    ) -> Result<imreg_spectra::LanczosResult> {
        let mut lo = self.lanczos.clone();
        lo.ritz_vectors = self.warm_start;
        lo.start = self.warm.take();
        let h = imreg_spectra::HessianOperator::new(obj, theta, examples(&self.subset))?;
        let r = imreg_spectra::lanczos(&h, &lo)?;
        if self.warm_start {
            let mut start = vec![0.0; theta.len()];
            for y in r.top.iter().chain(&r.bottom).filter_map(|t| t.vector.as_deref()) {
                start.iter_mut().zip(y).for_each(|(s, v)| *s += v);
            }
            // A sum of orthonormal Ritz vectors is never zero; keep the seeded start if it were.
            self.warm = (start.iter().any(|v| *v != 0.0)).then_some(start);
        }
        Ok(r)
    }
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for ExtremeEigenProbe {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let e = self.measure(at.objective, at.theta)?;
        self.records.push((at.step, e));
        Ok(Control::Continue)
    }
}

/// Batch sharpness in both variants, `E_B[g_BᵀH_Bg_B/‖g_B‖²]` and `E_B[g_BᵀH_Bg_B]/E_B[‖g_B‖²]`, over
/// size-`batch_size` subsets of the training set, Monte Carlo with the seed re-derived at every step
/// ([`step_seed`] of `monte_carlo.seed`). Estimates, with their standard errors.
#[derive(Clone, Debug)]
pub struct BatchSharpnessProbe {
    pub batch_size: usize,
    pub monte_carlo: MonteCarloOptions,
    pub records: Vec<(usize, BatchSharpness)>,
}

impl BatchSharpnessProbe {
    pub fn new(batch_size: usize, monte_carlo: MonteCarloOptions) -> Self {
        BatchSharpnessProbe {
            batch_size,
            monte_carlo,
            records: Vec::new(),
        }
    }

    /// The measurement at `θ` of `step`.
    pub fn measure<O: Objective + ?Sized>(
        &self,
        obj: &O,
        theta: &[f64],
        step: usize,
    ) -> Result<BatchSharpness> {
        let mc = MonteCarloOptions {
            seed: step_seed(self.monte_carlo.seed, step),
            ..self.monte_carlo
        };
        Ok(imreg_spectra::batch_sharpness(
            obj,
            theta,
            Batch::Full,
            self.batch_size,
            &BatchExpectation::MonteCarlo(mc),
        )?)
    }
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for BatchSharpnessProbe {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let s = self.measure(at.objective, at.theta, at.step)?;
        self.records.push((at.step, s));
        Ok(Control::Continue)
    }
}

/// MiniBS `E_B[λ_max(H_B)]` over size-`batch_size` subsets, Monte Carlo (seed re-derived per step from
/// `monte_carlo.seed` by [`step_seed`]), Lanczos per batch with `lanczos`. An estimate.
#[derive(Clone, Debug)]
pub struct MiniBsProbe {
    pub batch_size: usize,
    pub monte_carlo: MonteCarloOptions,
    pub lanczos: LanczosOptions,
    pub records: Vec<(usize, MiniBs)>,
}

impl MiniBsProbe {
    /// The measurement at `θ` of `step`.
    pub fn measure<O: Objective + ?Sized>(&self, obj: &O, theta: &[f64], step: usize) -> Result<MiniBs> {
        let mc = MonteCarloOptions {
            seed: step_seed(self.monte_carlo.seed, step),
            ..self.monte_carlo
        };
        Ok(imreg_spectra::mini_bs(
            obj,
            theta,
            Batch::Full,
            self.batch_size,
            &BatchExpectation::MonteCarlo(mc),
            &self.lanczos,
        )?)
    }
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for MiniBsProbe {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let s = self.measure(at.objective, at.theta, at.step)?;
        self.records.push((at.step, s));
        Ok(Control::Continue)
    }
}

// ---- Gradient noise, distance to gradient flow, balancedness ---------------------------------------------

/// The examples a measurement runs on: `subset` or the full batch.
fn examples(subset: &Option<Vec<usize>>) -> Batch<'_> {
    match subset {
        Some(ix) => Batch::Indices(ix),
        None => Batch::Full,
    }
}

/// `λ_K¹`, the largest eigenvalue of the gradient covariance
/// `K = (1/N) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ`, `g_i = ∇ℓ_i(θ_t)`, `ḡ = (1/N) Σ_i g_i` (Jastrzebski et al. 2020),
/// by Lanczos on the matrix-free product
/// `K v = (1/N) Σ_i (g_i − ḡ)((g_i − ḡ)ᵀv) = (1/N) Σ_i g_i (g_iᵀv) − ḡ (ḡᵀv)`
/// ([`imreg_spectra::GradientCovariance`]: every product streams the per-example gradients in chunks, never
/// `N × p` in memory), warm-started from the previous call's top Ritz vector like [`SharpnessProbe`].
#[derive(Clone, Debug)]
pub struct GradientCovarianceProbe {
    /// Lanczos options (`start` is overwritten by the warm start after the first call).
    pub lanczos: LanczosOptions,
    /// `1/N` (the default, Jastrzebski et al.'s `K`) or `1/(N − 1)`, and the streaming chunk.
    pub covariance: CovarianceOptions,
    /// The examples `i` of `K` (`None`: the full training set).
    pub subset: Option<Vec<usize>>,
    /// `λ_K¹` with its Lanczos diagnostics, by step.
    pub records: Vec<(usize, TopEigen)>,
    warm: Option<Vec<f64>>,
}

impl GradientCovarianceProbe {
    /// `λ_K¹` over the full training set with `iterations` Lanczos steps and relative tolerance `tol`.
    pub fn new(iterations: usize, tol: f64, seed: u64) -> Self {
        GradientCovarianceProbe {
            lanczos: LanczosOptions {
                max_iter: iterations,
                tol,
                seed,
                ..Default::default()
            },
            covariance: CovarianceOptions::default(),
            subset: None,
            records: Vec::new(),
            warm: None,
        }
    }

    /// Measures `λ_K¹` at `θ` and keeps the Ritz vector for the next call (not in `records`).
    pub fn top<O: Objective + ?Sized>(&mut self, obj: &O, theta: &[f64]) -> Result<TopEigen> {
        let k = GradientCovariance::covariance(obj, theta, examples(&self.subset), self.covariance)?;
        warm_top(&k, &self.lanczos, &mut self.warm)
    }
}

/// The top Ritz pair of `op` by Lanczos with `lanczos`, started from `warm` when there is one; `warm` then
/// holds the new top Ritz vector.
fn warm_top(
    op: &dyn imreg_spectra::LinearOperator,
    lanczos: &LanczosOptions,
    warm: &mut Option<Vec<f64>>,
) -> Result<TopEigen> {
    let lo = LanczosOptions {
        ritz_vectors: true,
        start: warm.take().or_else(|| lanczos.start.clone()),
        ..lanczos.clone()
    };
    let r = imreg_spectra::lanczos(op, &lo)?;
    let top = r
        .top
        .into_iter()
        .next()
        .ok_or_else(|| SgdError::invalid("lanczos.k_top", "a top eigenvalue needs k_top ≥ 1"))?;
    *warm = top.vector;
    Ok(TopEigen {
        value: top.value,
        residual_bound: top.residual_bound,
        iterations: r.report.iterations,
        converged: r.report.converged,
    })
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for GradientCovarianceProbe {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let s = self.top(at.objective, at.theta)?;
        self.records.push((at.step, s));
        Ok(Control::Continue)
    }
}

/// The two gradient second-moment traces at one iterate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradientTrace {
    /// `Tr K = (1/N) Σ_i ‖g_i − ḡ‖²` (Smith et al.'s `Γ`).
    pub covariance: f64,
    /// `Tr F = (1/N) Σ_i ‖g_i‖²`, the trace of the empirical Fisher `F = (1/N) Σ_i g_i g_iᵀ`
    /// (`Tr F = Tr K + ‖ḡ‖²`).
    pub fisher: f64,
}

impl GradientTrace {
    /// Both traces, exact, in one streamed pass over the per-example gradients `g_i` of `batch` (after one
    /// gradient call for `ḡ`); `Tr K` from the centered `g_i − ḡ`, not as the difference `Tr F − ‖ḡ‖²`.
    pub fn measure<O: Objective + ?Sized>(
        obj: &O,
        theta: &[f64],
        batch: Batch<'_>,
        chunk: usize,
    ) -> Result<GradientTrace> {
        let mean = obj.grad(theta, batch)?;
        let n = batch.len(obj.n_examples());
        let (mut centered, mut raw) = (0.0, 0.0);
        obj.per_example_grads(theta, batch, chunk.max(1), &mut |_, rows| {
            for row in rows.rows() {
                for (g, m) in row.iter().zip(&mean) {
                    raw += g * g;
                    centered += (g - m) * (g - m);
                }
            }
            Ok(())
        })?;
        Ok(GradientTrace {
            covariance: centered / n as f64,
            fisher: raw / n as f64,
        })
    }
}

/// `Tr K` and `Tr F` ([`GradientTrace`]) along the run, exact (no Hutchinson probes), on the full training
/// set or `subset`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GradientTraces {
    /// The examples `i` (`None`: the full training set).
    pub subset: Option<Vec<usize>>,
    /// Rows per streamed chunk of per-example gradients (0 is read as 1).
    pub chunk: usize,
    pub records: Vec<(usize, GradientTrace)>,
}

impl GradientTraces {
    /// Over the full training set, streaming 256 per-example gradients at a time.
    pub fn new() -> Self {
        GradientTraces {
            chunk: 256,
            ..Default::default()
        }
    }
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for GradientTraces {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let tr = GradientTrace::measure(at.objective, at.theta, examples(&self.subset), self.chunk)?;
        self.records.push((at.step, tr));
        Ok(Control::Continue)
    }
}

/// One distance to the gradient flow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowDistance {
    /// `t = kη`.
    pub time: f64,
    /// `‖θ_k − θ_GF(kη)‖`.
    pub distance: f64,
    /// Accepted DOP853 steps since the previous record.
    pub accepted: usize,
    /// Rejected DOP853 steps since the previous record.
    pub rejected: usize,
}

/// `‖θ_k − θ_GF(kη)‖`: the distance of the iterate to the gradient flow `dθ/dt = −∇C(θ)` on the full batch
/// from the same start, `θ_GF(0) = θ_0`, integrated alongside the run by DOP853 (`imreg-flow`) from one
/// observed step to the next. The flow value carries the integrator's error, controlled per component to
/// `atol + rtol·|θ_GF|` per step (defaults `rtol = 1e-12`, `atol = 1e-14`); distances far above that are
/// the discretization (and noise) of the run. The first call must be at `t = 0`; `η` must not change.
#[derive(Clone, Debug)]
pub struct GradientFlowDistance {
    /// The integrator's tolerances and limits.
    pub integrator: Dop853Options,
    pub records: Vec<(usize, FlowDistance)>,
    /// `(k, η, θ_GF(kη))` at the previous call.
    flow: Option<(usize, f64, Vec<f64>)>,
}

impl Default for GradientFlowDistance {
    fn default() -> Self {
        GradientFlowDistance::new(Dop853Options::with_tol(1e-12, 1e-14))
    }
}

impl GradientFlowDistance {
    /// With the given integrator options.
    pub fn new(integrator: Dop853Options) -> Self {
        GradientFlowDistance {
            integrator,
            records: Vec::new(),
            flow: None,
        }
    }

    /// Advances the flow to `t = step·lr` and returns the distance of `theta` to it.
    pub fn measure<O: Objective + ?Sized>(
        &mut self,
        obj: &O,
        step: usize,
        lr: f64,
        theta: &[f64],
    ) -> Result<FlowDistance> {
        crate::error::check_len("theta", theta, obj.dim())?;
        let time = step as f64 * lr;
        let (y, accepted, rejected) = match self.flow.take() {
            None if step != 0 => {
                return Err(SgdError::invalid(
                    "gradient-flow distance",
                    format!("the flow starts at θ_0: the first call must be at step 0, got {step}"),
                ))
            }
            None => (theta.to_vec(), 0, 0),
            Some((_, lr0, _)) if lr0 != lr => {
                return Err(SgdError::invalid(
                    "gradient-flow distance",
                    format!("the learning rate changed from {lr0} to {lr}"),
                ))
            }
            Some((k, _, y)) if k == step => (y, 0, 0),
            Some((k, _, _)) if k > step => {
                return Err(SgdError::invalid(
                    "gradient-flow distance",
                    format!("steps must increase, got {step} after {k}"),
                ))
            }
            Some((k, _, y)) => {
                let (y, report) = imreg_flow::integrate(
                    |_, w, out| {
                        obj.loss_grad(w, Batch::Full, out)?;
                        out.iter_mut().for_each(|v| *v = -*v);
                        Ok(())
                    },
                    k as f64 * lr,
                    &y,
                    time,
                    &self.integrator,
                )?;
                (y, report.accepted, report.rejected)
            }
        };
        let distance = dist(theta, &y);
        self.flow = Some((step, lr, y));
        Ok(FlowDistance {
            time,
            distance,
            accepted,
            rejected,
        })
    }
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for GradientFlowDistance {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let d = self.measure(at.objective, at.step, at.lr, at.theta)?;
        self.records.push((at.step, d));
        Ok(Control::Continue)
    }
}

/// The parameters of one layer in `θ`: its weight `W_l` and, if any, its bias `b_l`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerParams {
    pub weight: std::ops::Range<usize>,
    pub bias: Option<std::ops::Range<usize>>,
}

/// The imbalance invariants of a layered network `f(x) = W_L σ(⋯ σ(W_1 x + b_1) ⋯) + b_L`, one per pair of
/// consecutive layers: `D_l = ‖W_{l+1}‖_F² − ‖W_l‖_F² − ‖b_l‖²`, `l = 1 … L − 1` (without biases,
/// `‖W_{l+1}‖_F² − ‖W_l‖_F²`). For a positively homogeneous `σ` (identity, ReLU) scaling the parameters into a
/// hidden unit by `α` and those out of it by `1/α` leaves `f` unchanged, hence `∇D_l · ∇C = 0` and every `D_l`
/// is conserved by gradient flow (Du, Hu & Lee 2018); GD moves it by `O(η²)` per step. The depth-2 scalar
/// net `f(x) = aᵀb x` is the two-layer case with `W_1 = b`, `W_2 = aᵀ`: `D_1 = ‖a‖² − ‖b‖²`.
#[derive(Clone, Debug, PartialEq)]
pub struct Imbalance {
    layers: Vec<LayerParams>,
    /// `(D_1, …, D_{L−1})`, by step.
    pub records: Vec<(usize, Vec<f64>)>,
}

impl Imbalance {
    /// From the layers' parameter ranges, first layer first; errors on fewer than two layers, an empty
    /// weight, or overlapping ranges.
    pub fn new(layers: Vec<LayerParams>) -> Result<Self> {
        if layers.len() < 2 {
            return Err(SgdError::invalid(
                "layers",
                "an imbalance needs at least two layers",
            ));
        }
        let mut ranges: Vec<&std::ops::Range<usize>> = layers
            .iter()
            .flat_map(|l| std::iter::once(&l.weight).chain(&l.bias))
            .collect();
        if let Some(r) = ranges.iter().find(|r| r.is_empty()) {
            return Err(SgdError::invalid(
                "layers",
                format!("empty parameter range {r:?}"),
            ));
        }
        ranges.sort_by_key(|r| r.start);
        if let Some(w) = ranges.windows(2).find(|w| w[0].end > w[1].start) {
            return Err(SgdError::invalid(
                "layers",
                format!("parameter ranges {:?} and {:?} overlap", w[0], w[1]),
            ));
        }
        Ok(Imbalance {
            layers,
            records: Vec::new(),
        })
    }

    /// A dense network with `widths = [d_in, h_1, …, d_out]` and PyTorch's `nn.Linear` layout (per layer the
    /// weight `[out, in]` row-major, then the bias if `bias`): [`imreg_objective::models::Mlp`] and
    /// [`imreg_objective::DeepLinear`].
    pub fn dense(widths: &[usize], bias: bool) -> Result<Self> {
        let mut off = 0;
        let mut layers = Vec::new();
        for w in widths.windows(2) {
            let (i, o) = (w[0], w[1]);
            let weight = off..off + o * i;
            off = weight.end;
            let b = bias.then(|| off..off + o);
            off += if bias { o } else { 0 };
            layers.push(LayerParams { weight, bias: b });
        }
        Imbalance::new(layers)
    }

    /// The depth-2 scalar net of width `k`, `θ = (a, b)` ([`imreg_objective::ScalarNet`]): `D_1 = ‖a‖² − ‖b‖²`.
    pub fn scalar_net(k: usize) -> Result<Self> {
        Imbalance::new(vec![
            LayerParams {
                weight: k..2 * k,
                bias: None,
            },
            LayerParams {
                weight: 0..k,
                bias: None,
            },
        ])
    }

    /// `(D_1, …, D_{L−1})` at `θ`; errors if `θ` is shorter than the layers.
    pub fn invariants(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let sq = |r: &std::ops::Range<usize>| -> Result<f64> {
            let v = theta.get(r.clone()).ok_or_else(|| {
                SgdError::invalid(
                    "theta",
                    format!("length {} does not hold parameters {r:?}", theta.len()),
                )
            })?;
            Ok(v.iter().map(|x| x * x).sum())
        };
        let mut d = Vec::with_capacity(self.layers.len() - 1);
        for pair in self.layers.windows(2) {
            let incoming = sq(&pair[0].weight)? + pair[0].bias.as_ref().map_or(Ok(0.0), sq)?;
            d.push(sq(&pair[1].weight)? - incoming);
        }
        Ok(d)
    }
}

impl<O: ?Sized, E: From<SgdError>> Observer<O, E> for Imbalance {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let d = self.invariants(at.theta)?;
        self.records.push((at.step, d));
        Ok(Control::Continue)
    }
}
