//! What the edge-of-stability studies ([`edge_of_stability`](mod@crate::edge_of_stability),
//! [`crate::stochastic_stability`], [`break_even`](mod@crate::break_even)) measure along a run of the one
//! training loop of `imreg-sgd` ([`imreg_sgd::train::train`]), beyond the observers of [`imreg_sgd::observe`]:
//! the loss curve with its divergence threshold ([`LossCurve`]), where a series sits relative to the
//! stability threshold `2/η` ([`Hover`]), the reshuffling convention of the studies
//! ([`epoch_stream_reshuffling`]) and their error type.
//!
//! A study is a run of [`imreg_sgd::train::train`] with observers on a schedule: the [`LossCurve`] first (so
//! a blown-up loss ends the run before anything is measured at that iterate), then the measurements — e.g.
//! [`SharpnessProbe`] (`λ_max` by Lanczos warm-started from the previous top Ritz vector) every `k` steps,
//! Cohen et al.'s `eig_freq` protocol: at `θ_t` before the update of step `t`, for `t = 0, k, 2k, …` and at
//! the final iterate. Divergence is a reported [`RunOutcome`] with its step, never an error or a panic. All
//! randomness (batch orders, Lanczos starts, Monte Carlo batches) is seeded, so a run is a pure function of
//! its inputs and bitwise reproducible at any thread count.
//!
//! ```
//! use imreg_eos::tracking::{Hover, LossCurve, RunOutcome, SharpnessProbe, TrackResult};
//! use imreg_objective::Quadratic;
//! use imreg_sgd::observe::{Cadence, Scheduled};
//! use imreg_sgd::train::{train, Optimizer, TrainOptions};
//! // C(θ) = ½ θᵀ diag(1, 30) θ: GD at η = 0.05 has λ_max = 30 < 2/η = 40 and converges. The loss at every
//! // step, the sharpness every 5.
//! let q = Quadratic::diagonal(&[1.0, 30.0]);
//! let mut loss = LossCurve::new(1e8);
//! let mut sharpness = SharpnessProbe::new(10, 1e-12, 0);
//! let opts = TrainOptions { lr: 0.05, steps: 20, ..Default::default() };
//! let run: TrackResult<_> = train(&q, &[1.0, 1.0], &Optimizer::gd(), &opts, &mut [
//!     Scheduled::new(Cadence::Every(1), &mut loss),
//!     Scheduled::new(Cadence::Every(5), &mut sharpness),
//! ]);
//! assert_eq!(run.unwrap().outcome, RunOutcome::Completed);
//! assert_eq!(loss.records.len(), 21); // t = 0, 1, …, 20
//! let (steps, lambda): (Vec<usize>, Vec<f64>) = sharpness.records.iter().map(|(t, s)| (*t, s.value)).unzip();
//! assert_eq!(steps, [0, 5, 10, 15, 20]);
//! // λ_max/(2/η) = 30/40 over the second half of the run.
//! let hover = Hover::over(&steps, &lambda, 10, 2.0 / 0.05);
//! assert!((hover.mean_ratio - 0.75).abs() < 1e-12 && !hover.within(0.1));
//! ```
use imreg_flow::FlowError;
use imreg_objective::{Batch, Objective, ObjectiveError, Remainder};
use imreg_sgd::observe::{Control, Observer, StepView};
use imreg_sgd::sampler::{EpochOrder, Sampler};
use imreg_sgd::train::{Divergence, Seeds, TrainOptions};
use imreg_sgd::SgdError;
use imreg_spectra::SpectraError;
use thiserror::Error;

pub use imreg_sgd::observe::{step_seed, SharpnessProbe, TopEigen};
pub use imreg_sgd::train::RunOutcome;

/// Errors of the edge-of-stability studies: bad options (naming the field) or a failure of a layer below.
/// Divergence of the run is **not** an error (see [`RunOutcome::Diverged`]).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TrackError {
    /// An invalid option.
    #[error("invalid {field} = {value}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The objective rejected a call.
    #[error("objective: {0}")]
    Objective(#[from] ObjectiveError),
    /// A spectral solver rejected a call.
    #[error("spectra: {0}")]
    Spectra(#[from] SpectraError),
    /// The gradient-flow integration failed (blow-up, step-size collapse, …).
    #[error("flow: {0}")]
    Flow(#[from] FlowError),
    /// The training loop rejected its inputs (η, the schedule, the batch size, `θ₀`) or an observer failed.
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

/// Result alias of the studies.
pub type TrackResult<T> = std::result::Result<T, TrackError>;

/// Random reshuffling as the edge-of-stability studies draw it: epoch `e` shuffles `0..N` with its own
/// stream `rng::stream(seed, e)` (the run's sampler seed, [`Seeds::from_seed`]) and cuts it into `⌊N/b⌋`
/// batches of `b`; the last `N mod b` examples of the permutation are dropped that epoch.
pub fn epoch_stream_reshuffling(batch_size: usize) -> Sampler {
    Sampler::RandomReshuffling {
        batch_size,
        remainder: Remainder::Drop,
        order: EpochOrder::StreamPerEpoch,
    }
}

/// The loop's options for a study: `T` steps at `η`, batches from `Seeds::from_seed(seed)`, and a batch loss
/// `L_{B_t}(θ_t)` above `divergence_loss` (or non-finite) ends the run as diverged.
pub(crate) fn train_options(lr: f64, steps: usize, seed: u64, divergence_loss: f64) -> TrainOptions {
    TrainOptions {
        lr,
        steps,
        seeds: Seeds::from_seed(seed),
        divergence: Divergence {
            loss: divergence_loss,
            norm: f64::INFINITY,
        },
    }
}

/// The full-batch loss `C(θ_t) = (1/N) Σ_i ℓ_i(θ_t)` on the observed steps, with a divergence threshold: a
/// loss above `divergence`, or non-finite, answers [`Control::Diverged`] (so, listed first, it ends the run
/// before the later observers measure at that iterate).
///
/// Under GD (`B_t` the full batch) the loop's `L_{B_t}(θ_t)` is `C(θ_t)` and is taken as is; otherwise (a
/// minibatch step, or the final iterate) `C(θ_t)` is one full-batch `loss_grad` evaluation — the same
/// computation as the GD steps', so a GD curve is one computation from `t = 0` to `T`.
#[derive(Clone, Debug, PartialEq)]
pub struct LossCurve {
    /// The loss above which the run counts as diverged.
    pub divergence: f64,
    /// `(t, C(θ_t))`, the blown-up value included.
    pub records: Vec<(usize, f64)>,
}

impl LossCurve {
    /// An empty curve with the given divergence threshold.
    pub fn new(divergence: f64) -> Self {
        LossCurve {
            divergence,
            records: Vec::new(),
        }
    }

    /// The losses, in step order.
    pub fn values(&self) -> Vec<f64> {
        self.records.iter().map(|r| r.1).collect()
    }
}

impl<O: Objective + ?Sized, E: From<SgdError>> Observer<O, E> for LossCurve {
    fn observe(&mut self, at: &StepView<'_, O>) -> std::result::Result<Control, E> {
        let loss = match (at.batch, at.loss) {
            (Some(Batch::Full), Some(l)) => l,
            _ => at.objective.loss(at.theta, Batch::Full).map_err(SgdError::from)?,
        };
        self.records.push((at.step, loss));
        Ok(if !loss.is_finite() || loss > self.divergence {
            Control::Diverged(loss)
        } else {
            Control::Continue
        })
    }
}

/// The warm-started `λ_max` probe of the studies ([`SharpnessProbe`]): `lanczos_iters ≥ 1` Lanczos steps per
/// measurement, relative residual tolerance `lanczos_tol`, starting vector from `seed`.
pub fn sharpness_probe(lanczos_iters: usize, lanczos_tol: f64, seed: u64) -> TrackResult<SharpnessProbe> {
    if lanczos_iters == 0 {
        return Err(TrackError::invalid("lanczos_iters", 0, "must be ≥ 1"));
    }
    Ok(SharpnessProbe::new(lanczos_iters, lanczos_tol, seed))
}

/// Where a measured series `v_t` (a sharpness, a batch sharpness) sits relative to a target `τ` — here the
/// stability threshold `2/η` of GD on a quadratic — over a window of the run, `t ≥ t₀` (the studies take the
/// second half): the smallest, largest and mean of `v_t / τ` over the `count` measurements there.
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
