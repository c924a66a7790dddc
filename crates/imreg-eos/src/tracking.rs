//! A tracker that runs GD or SGD on any [`Objective`] and measures quantities along the trajectory every `k`
//! steps: the common engine of [`crate::edge_of_stability`], [`crate::stochastic_stability`] and
//! [`crate::break_even`].
//!
//! The update is plain `θ_{t+1} = θ_t − η ∇C_{B_t}(θ_t)` with `B_t` the full batch (GD) or a minibatch
//! ([`Sampling`]). A [`Probe`] measures at `θ_t` **before** the update of step `t`, for
//! `t = 0, k, 2k, …` and at the final iterate (Cohen et al.'s `eig_freq` protocol). Probes may keep state
//! between calls (the previous top Ritz vector, to warm-start the next Lanczos run).
//!
//! Divergence is a reported outcome, never a panic or an error: a non-finite or blown-up loss stops the run
//! with [`TrackStatus::Diverged`] carrying the step. All randomness (batch orders) is seeded, so a run is a
//! pure function of its inputs and bitwise reproducible at any thread count (the objectives reduce in a fixed
//! order).
//!
//! ```
//! use imreg_eos::tracking::{track, Sampling, TrackOptions, TrackStatus};
//! use imreg_objective::{Batch, Objective, Quadratic};
//! // C(θ) = ½ θᵀ diag(1, 3) θ: GD with η = 0.1 converges; measure the loss every 5 steps.
//! let q = Quadratic::diagonal(&[1.0, 3.0]);
//! let opts = TrackOptions { lr: 0.1, steps: 20, every: 5, ..Default::default() };
//! let tr = track(&q, &[1.0, 1.0], &opts, &mut |obj: &Quadratic, th: &[f64], _step: usize| {
//!     Ok(obj.loss(th, Batch::Full)?)
//! })
//! .unwrap();
//! assert_eq!(tr.status, TrackStatus::Completed);
//! assert_eq!(tr.records.iter().map(|r| r.step).collect::<Vec<_>>(), [0, 5, 10, 15, 20]);
//! ```
use crate::error::EosError;
use imreg_flow::FlowError;
use imreg_objective::{rng, Batch, Objective, ObjectiveError};
use imreg_spectra::{LanczosOptions, SpectraError};
use rand::seq::SliceRandom;
use thiserror::Error;

/// Errors of the trajectory trackers: bad options (naming the field) or a failure of a layer below.
/// Divergence of the run is **not** an error (see [`TrackStatus::Diverged`]).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TrackError {
    /// An invalid option.
    #[error("invalid {field} = {value}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// An error of the scalar-net layer (e.g. a non-positive step size).
    #[error(transparent)]
    Eos(#[from] EosError),
    /// The objective rejected a call.
    #[error("objective: {0}")]
    Objective(#[from] ObjectiveError),
    /// A spectral solver rejected a call.
    #[error("spectra: {0}")]
    Spectra(#[from] SpectraError),
    /// The gradient-flow integration failed (blow-up, step-size collapse, …).
    #[error("flow: {0}")]
    Flow(#[from] FlowError),
}

impl TrackError {
    pub(crate) fn invalid(field: &'static str, value: impl ToString, reason: &'static str) -> Self {
        TrackError::Invalid {
            field,
            value: value.to_string(),
            reason,
        }
    }
}

/// Result alias of the trackers.
pub type TrackResult<T> = std::result::Result<T, TrackError>;

/// Which examples each step averages over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// All `N` examples every step (GD).
    Full,
    /// Random reshuffling: each epoch `e` a fresh permutation of `0..N` from `rng::stream(seed, e)`, cut into
    /// `⌊N/b⌋` batches of `b` (the last `N mod b` examples of the permutation are dropped that epoch).
    Reshuffled { batch_size: usize, seed: u64 },
}

impl Sampling {
    /// The batch size (`N` for [`Sampling::Full`]).
    pub fn batch_size(&self, n: usize) -> usize {
        match *self {
            Sampling::Full => n,
            Sampling::Reshuffled { batch_size, .. } => batch_size,
        }
    }
}

/// Options of [`track`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrackOptions {
    /// Learning rate η > 0.
    pub lr: f64,
    /// Number of updates.
    pub steps: usize,
    /// Measure every this many steps (≥ 1), plus at the final iterate.
    pub every: usize,
    /// GD or SGD.
    pub sampling: Sampling,
    /// A loss (full batch for GD, the step's batch for SGD, full batch at measurements) above this, or
    /// non-finite, stops the run as [`TrackStatus::Diverged`].
    pub blowup_loss: f64,
}

impl Default for TrackOptions {
    fn default() -> Self {
        TrackOptions {
            lr: 0.01,
            steps: 1000,
            every: 10,
            sampling: Sampling::Full,
            blowup_loss: 1e8,
        }
    }
}

impl TrackOptions {
    /// Checks η, `every` and the sampling against a dataset of `n` examples.
    pub fn validate(&self, n: usize) -> TrackResult<()> {
        crate::error::check_step("lr", self.lr)?;
        if self.every == 0 {
            return Err(TrackError::invalid("every", 0, "must be ≥ 1"));
        }
        if self.blowup_loss.is_nan() || self.blowup_loss <= 0.0 {
            return Err(TrackError::invalid(
                "blowup_loss",
                self.blowup_loss,
                "must be > 0",
            ));
        }
        if let Sampling::Reshuffled { batch_size, .. } = self.sampling {
            if batch_size == 0 || batch_size > n {
                return Err(TrackError::invalid(
                    "sampling.batch_size",
                    batch_size,
                    "must lie in 1..=N",
                ));
            }
        }
        Ok(())
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrackStatus {
    /// All steps taken.
    Completed,
    /// The loss became non-finite or exceeded [`TrackOptions::blowup_loss`] at `step` (the loss evaluated at
    /// `θ_step`); the run stopped there.
    Diverged { step: usize, loss: f64 },
}

/// One measurement: the probe's output at `θ_step` (before the update of that step), with the full-batch
/// loss there.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<M> {
    pub step: usize,
    /// Full-batch loss `C(θ_step)`.
    pub loss: f64,
    pub value: M,
}

/// The result of [`track`].
#[derive(Clone, Debug, PartialEq)]
pub struct Track<M> {
    /// The learning rate.
    pub lr: f64,
    /// The measurements, by step.
    pub records: Vec<Record<M>>,
    /// For GD, the full-batch loss at every step `0..=last` (free with the gradient); for SGD, the loss of
    /// the batch used at each step.
    pub step_losses: Vec<f64>,
    /// How the run ended.
    pub status: TrackStatus,
    /// The last finite iterate.
    pub final_theta: Vec<f64>,
}

impl<M> Track<M> {
    /// `2/η`, the stability threshold of GD on a quadratic.
    pub fn threshold(&self) -> f64 {
        2.0 / self.lr
    }
    /// The steps of the records.
    pub fn steps(&self) -> Vec<usize> {
        self.records.iter().map(|r| r.step).collect()
    }
    /// A scalar series extracted from the records.
    pub fn series(&self, f: impl Fn(&M) -> f64) -> Vec<f64> {
        self.records.iter().map(|r| f(&r.value)).collect()
    }
    /// The step of divergence, if any.
    pub fn diverged_at(&self) -> Option<usize> {
        match self.status {
            TrackStatus::Diverged { step, .. } => Some(step),
            TrackStatus::Completed => None,
        }
    }
}

/// A measurement taken along a trajectory. Stateful (e.g. a warm start carried from one call to the next).
pub trait Probe<O: ?Sized> {
    type Output;
    /// Measures at `θ` (the iterate of `step`).
    fn measure(&mut self, obj: &O, theta: &[f64], step: usize) -> TrackResult<Self::Output>;
}

impl<O: ?Sized, T, F> Probe<O> for F
where
    F: FnMut(&O, &[f64], usize) -> TrackResult<T>,
{
    type Output = T;
    fn measure(&mut self, obj: &O, theta: &[f64], step: usize) -> TrackResult<T> {
        self(obj, theta, step)
    }
}

/// The batch schedule of a [`Sampling`], seeded.
struct Batches {
    n: usize,
    sampling: Sampling,
    epoch: u64,
    order: Vec<usize>,
    pos: usize,
}

impl Batches {
    fn new(n: usize, sampling: Sampling) -> Self {
        Batches {
            n,
            sampling,
            epoch: 0,
            order: Vec::new(),
            pos: usize::MAX,
        }
    }

    /// The example indices of the next step (`None` for the full batch).
    fn next(&mut self) -> Option<&[usize]> {
        let Sampling::Reshuffled { batch_size, seed } = self.sampling else {
            return None;
        };
        if self.pos == usize::MAX || self.pos + batch_size > self.n {
            self.order = (0..self.n).collect();
            self.order.shuffle(&mut rng::stream(seed, self.epoch));
            self.epoch += 1;
            self.pos = 0;
        }
        let b = &self.order[self.pos..self.pos + batch_size];
        self.pos += batch_size;
        Some(b)
    }
}

fn blown(loss: f64, limit: f64) -> bool {
    !loss.is_finite() || loss > limit
}

/// Runs GD/SGD from `θ₀` and measures with `probe` at steps `0, k, 2k, …` and at the final iterate.
///
/// Errors only on bad options or inputs (or a failing probe); divergence ends the run with
/// [`TrackStatus::Diverged`] and keeps the records taken so far.
pub fn track<O, P>(
    obj: &O,
    theta0: &[f64],
    opts: &TrackOptions,
    probe: &mut P,
) -> TrackResult<Track<P::Output>>
where
    O: Objective + ?Sized,
    P: Probe<O> + ?Sized,
{
    let n = obj.n_examples();
    opts.validate(n)?;
    imreg_objective::check_len("theta0", theta0, obj.dim())?;
    imreg_objective::check_finite("theta0", theta0)?;
    let full = matches!(opts.sampling, Sampling::Full);
    let mut theta = theta0.to_vec();
    let mut grad = vec![0.0; obj.dim()];
    let mut batches = Batches::new(n, opts.sampling);
    let mut records = Vec::new();
    let mut step_losses = Vec::with_capacity(opts.steps + 1);
    let mut status = TrackStatus::Completed;
    for step in 0..=opts.steps {
        let measure_now = step % opts.every == 0 || step == opts.steps;
        // GD: the gradient call gives the full loss at θ_step for free.
        let full_loss = if full {
            let l = obj.loss_grad(&theta, Batch::Full, &mut grad)?;
            step_losses.push(l);
            Some(l)
        } else if measure_now {
            Some(obj.loss(&theta, Batch::Full)?)
        } else {
            None
        };
        if let Some(l) = full_loss.filter(|&l| blown(l, opts.blowup_loss)) {
            status = TrackStatus::Diverged { step, loss: l };
            break;
        }
        if measure_now {
            let value = probe.measure(obj, &theta, step)?;
            records.push(Record {
                step,
                loss: full_loss.unwrap_or(f64::NAN),
                value,
            });
        }
        if step == opts.steps {
            break;
        }
        if !full {
            let l = match batches.next() {
                Some(ix) => obj.loss_grad(&theta, Batch::Indices(ix), &mut grad)?,
                None => obj.loss_grad(&theta, Batch::Full, &mut grad)?,
            };
            step_losses.push(l);
            if blown(l, opts.blowup_loss) {
                status = TrackStatus::Diverged { step, loss: l };
                break;
            }
        }
        let next: Vec<f64> = theta.iter().zip(&grad).map(|(t, g)| t - opts.lr * g).collect();
        if let Some(i) = next.iter().position(|x| !x.is_finite()) {
            status = TrackStatus::Diverged {
                step: step + 1,
                loss: next[i],
            };
            break;
        }
        theta = next;
    }
    Ok(Track {
        lr: opts.lr,
        records,
        step_losses,
        status,
        final_theta: theta,
    })
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
            warm: None,
        }
    }

    /// Measures `λ_max(H)` at `θ` and keeps the Ritz vector for the next call.
    pub fn sharpness<O: Objective + ?Sized>(&mut self, obj: &O, theta: &[f64]) -> TrackResult<TopEigen> {
        let mut lo = self.lanczos.clone();
        lo.ritz_vectors = true;
        if let Some(w) = self.warm.take() {
            lo.start = Some(w);
        }
        let batch = match &self.subset {
            Some(ix) => Batch::Indices(ix),
            None => Batch::Full,
        };
        let h = imreg_spectra::HessianOperator::new(obj, theta, batch)?;
        let r = imreg_spectra::lanczos(&h, &lo)?;
        let top = r.top.into_iter().next().ok_or_else(|| {
            TrackError::invalid("lanczos.k_top", 0, "the sharpness probe needs one top pair")
        })?;
        self.warm = top.vector;
        Ok(TopEigen {
            value: top.value,
            residual_bound: top.residual_bound,
            iterations: r.report.iterations,
            converged: r.report.converged,
        })
    }
}

impl<O: Objective + ?Sized> Probe<O> for SharpnessProbe {
    type Output = TopEigen;
    fn measure(&mut self, obj: &O, theta: &[f64], _step: usize) -> TrackResult<TopEigen> {
        self.sharpness(obj, theta)
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

/// Summary of a series relative to a target over the second half of the measured steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hover {
    /// The target (here `2/η`).
    pub target: f64,
    /// Records in the window.
    pub count: usize,
    /// Smallest, largest and mean of `value / target` over the window.
    pub min_ratio: f64,
    pub max_ratio: f64,
    pub mean_ratio: f64,
}

impl Hover {
    /// The series `values` (measured at `steps`) over `steps ≥ from`, relative to `target`.
    pub fn over(steps: &[usize], values: &[f64], from: usize, target: f64) -> Hover {
        let w: Vec<f64> = steps
            .iter()
            .zip(values)
            .filter(|(&s, _)| s >= from)
            .map(|(_, &v)| v / target)
            .collect();
        let count = w.len();
        let nan_or = |x: f64| if count == 0 { f64::NAN } else { x };
        Hover {
            target,
            count,
            min_ratio: nan_or(w.iter().cloned().fold(f64::INFINITY, f64::min)),
            max_ratio: nan_or(w.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
            mean_ratio: nan_or(w.iter().sum::<f64>() / count.max(1) as f64),
        }
    }

    /// Every value of the window lies within `target·(1 ± tol)` (false on an empty window).
    pub fn within(&self, tol: f64) -> bool {
        self.count > 0 && self.min_ratio >= 1.0 - tol && self.max_ratio <= 1.0 + tol
    }
}
