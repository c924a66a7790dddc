//! A tracker that runs GD or SGD on any [`Objective`] — through the one training loop of `imreg-sgd`
//! ([`imreg_sgd::train::train`]) with a single observer — and measures quantities along the trajectory every
//! `k` steps: the common front of [`crate::edge_of_stability`], [`crate::stochastic_stability`] and
//! [`crate::break_even`].
//!
//! The update is plain `θ_{t+1} = θ_t − η ∇C_{B_t}(θ_t)` with `B_t` the full batch (GD) or a minibatch
//! ([`TrackSampling`]). A [`Probe`] measures at `θ_t` **before** the update of step `t`, for
//! `t = 0, k, 2k, …` and at the final iterate (Cohen et al.'s `eig_freq` protocol). Probes may keep state
//! between calls (the previous top Ritz vector, to warm-start the next Lanczos run).
//!
//! Divergence is a reported outcome, never a panic or an error: a non-finite or blown-up loss stops the run
//! with [`TrackStatus::Diverged`] carrying the step. All randomness (batch orders) is seeded, so a run is a
//! pure function of its inputs and bitwise reproducible at any thread count (the objectives reduce in a fixed
//! order).
//!
//! ```
//! use imreg_eos::tracking::{track, TrackSampling, TrackOptions, TrackStatus};
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
use imreg_objective::Remainder;
use imreg_objective::{Batch, Objective, ObjectiveError};
use imreg_sgd::observe::{Cadence, Control, Scheduled, StepView};
use imreg_sgd::sampler::{EpochOrder, Sampler};
use imreg_sgd::train::{train, Divergence, Optimizer, RunOutcome, Seeds, TrainOptions};
use imreg_sgd::SgdError;
use imreg_spectra::SpectraError;
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
    /// The training loop rejected its inputs.
    #[error("training: {0}")]
    Train(#[from] SgdError),
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
pub enum TrackSampling {
    /// All `N` examples every step (GD).
    Full,
    /// Random reshuffling: each epoch `e` a fresh permutation of `0..N` from `rng::stream(seed, e)`, cut into
    /// `⌊N/b⌋` batches of `b` (the last `N mod b` examples of the permutation are dropped that epoch).
    Reshuffled { batch_size: usize, seed: u64 },
}

impl TrackSampling {
    /// The batch size (`N` for [`TrackSampling::Full`]).
    pub fn batch_size(&self, n: usize) -> usize {
        match *self {
            TrackSampling::Full => n,
            TrackSampling::Reshuffled { batch_size, .. } => batch_size,
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
    pub sampling: TrackSampling,
    /// A loss (full batch for GD, the step's batch for SGD, full batch at measurements) above this, or
    /// non-finite, stops the run as [`TrackStatus::Diverged`].
    pub divergence_loss: f64,
}

impl Default for TrackOptions {
    fn default() -> Self {
        TrackOptions {
            lr: 0.01,
            steps: 1000,
            every: 10,
            sampling: TrackSampling::Full,
            divergence_loss: 1e8,
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
        if self.divergence_loss.is_nan() || self.divergence_loss <= 0.0 {
            return Err(TrackError::invalid(
                "divergence_loss",
                self.divergence_loss,
                "must be > 0",
            ));
        }
        if let TrackSampling::Reshuffled { batch_size, .. } = self.sampling {
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
    /// The loss became non-finite or exceeded [`TrackOptions::divergence_loss`] at `step` (the loss evaluated at
    /// `θ_step`); the run stopped there.
    Diverged { step: usize, loss: f64 },
}

/// One measurement: the probe's output at `θ_step` (before the update of that step), with the full-batch
/// loss there.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackRecord<M> {
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
    pub records: Vec<TrackRecord<M>>,
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

/// Runs GD/SGD from `θ₀` on the training loop of `imreg-sgd` and measures with `probe` at steps
/// `0, k, 2k, …` and at the final iterate.
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
    let (sampler, seed) = match opts.sampling {
        TrackSampling::Full => (Sampler::Full, 0),
        // Epoch `e` shuffles `0..N` with `rng::stream(seed, e)`; the last `N mod b` examples are dropped.
        TrackSampling::Reshuffled { batch_size, seed } => (
            Sampler::RandomReshuffling {
                batch_size,
                remainder: Remainder::Drop,
                order: EpochOrder::StreamPerEpoch,
            },
            seed,
        ),
    };
    let full = matches!(opts.sampling, TrackSampling::Full);
    let topts = TrainOptions {
        lr: opts.lr,
        steps: opts.steps,
        seeds: Seeds::from_seed(seed),
        // The step's batch loss (checked after the measurement of that step); iterates only when non-finite.
        divergence: Divergence {
            loss: opts.divergence_loss,
            norm: f64::INFINITY,
        },
    };
    let mut records = Vec::new();
    let mut step_losses = Vec::with_capacity(opts.steps.saturating_add(1).min(1 << 20));
    let mut observe = |at: &StepView<'_, O>| -> TrackResult<Control> {
        let measure_now = at.last || at.step.is_multiple_of(opts.every);
        // GD: the step's gradient call gives the full loss at θ_t; at the final iterate it is computed the
        // same way.
        let full_loss = if full {
            let l = match at.loss {
                Some(l) => l,
                None => obj.loss_grad(at.theta, Batch::Full, &mut vec![0.0; obj.dim()])?,
            };
            step_losses.push(l);
            Some(l)
        } else if measure_now {
            Some(obj.loss(at.theta, Batch::Full)?)
        } else {
            None
        };
        if let Some(l) = full_loss.filter(|&l| !l.is_finite() || l > opts.divergence_loss) {
            return Ok(Control::Diverged(l));
        }
        if measure_now {
            let value = probe.measure(obj, at.theta, at.step)?;
            records.push(TrackRecord {
                step: at.step,
                loss: full_loss.unwrap_or(f64::NAN),
                value,
            });
        }
        if let (false, Some(l)) = (full, at.loss) {
            step_losses.push(l);
        }
        Ok(Control::Continue)
    };
    let end = train(
        obj,
        theta0,
        &Optimizer::sgd(sampler),
        &topts,
        &mut [Scheduled::new(Cadence::Every(1), &mut observe)],
    )?;
    let status = match end.outcome {
        RunOutcome::Diverged { step, blowup } => TrackStatus::Diverged {
            step,
            loss: blowup.value(),
        },
        RunOutcome::Completed | RunOutcome::Stopped { .. } => TrackStatus::Completed,
    };
    Ok(Track {
        lr: opts.lr,
        records,
        step_losses,
        status,
        final_theta: end.theta,
    })
}

pub use imreg_sgd::observe::{step_seed, SharpnessProbe, TopEigen};

impl<O: Objective + ?Sized> Probe<O> for SharpnessProbe {
    type Output = TopEigen;
    fn measure(&mut self, obj: &O, theta: &[f64], _step: usize) -> TrackResult<TopEigen> {
        Ok(self.sharpness(obj, theta)?)
    }
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
