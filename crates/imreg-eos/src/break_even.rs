//! Break-even tracking (Jastrzębski et al., ICLR 2020, the break-even point of SGD) along GD/SGD
//! trajectories.
//!
//! With per-example gradients `g_i`, their mean `ḡ`, the gradient covariance `K = (1/M) Σ_i (g_i − ḡ)(g_i −
//! ḡ)ᵀ` and the training-loss Hessian `H`, every `k` steps (before the update):
//!
//! - `λ_H¹ = λ_max(H)` (full batch, Lanczos warm-started);
//! - `λ_K¹ = λ_max(K)` and `Tr K` (= Smith et al.'s `Γ`), from the `M × M` Gram matrix of the centred
//!   per-example gradients of a **fixed seeded subset of `M` training examples** (an implementation choice:
//!   the paper's protocol for `λ_K¹` was not available, `docs/theory/edge-of-stability.md` §Break-even; the
//!   Gram route gives the exact top eigenvalue of the subset's `K`);
//! - `Tr F`, the trace of the true Fisher on the same subset, Monte Carlo over labels sampled from the
//!   model's predictive distribution (for the ½-MSE, `ŷ ~ N(f, I)`; Jastrzębski et al. 2021's estimator).
//!
//! Conjecture 1 (variance reduction, from the authors' talk): the maxima of `λ_H¹` and `λ_K¹` along the SGD
//! trajectory are smaller for a larger learning rate or a smaller batch. It is a conjecture:
//! [`conjecture_one`] reports which of its pairwise comparisons held in a given set of runs, it asserts
//! nothing.
use crate::tracking::{sharpness_probe, step_seed, train_options, LossCurve, TrackError, TrackResult};
use imreg_objective::{rng, Batch, Supervised};
use imreg_sgd::observe::{Cadence, Control, Scheduled, StepView};
use imreg_sgd::sampler::Sampler;
use imreg_sgd::train::{train, Optimizer, RunOutcome};
use imreg_spectra::{
    fisher_trace, gradient_covariance_top, trace_gradient_covariance, CovarianceOptions, CovarianceRoute,
    FisherSampling,
};
use rand::seq::SliceRandom;
use rayon::prelude::*;

/// Options of [`break_even`].
#[derive(Clone, Debug, PartialEq)]
pub struct BreakEvenOptions {
    /// Step size η.
    pub lr: f64,
    /// Which examples each step uses: [`Sampler::Full`] (GD) or a minibatch sampler (SGD; the studies use
    /// [`crate::tracking::epoch_stream_reshuffling`]).
    pub sampler: Sampler,
    /// Seed of the batches ([`imreg_sgd::train::Seeds::from_seed`]; unused by GD).
    pub sampler_seed: u64,
    /// Steps.
    pub steps: usize,
    /// Measure every this many steps.
    pub every: usize,
    /// Lanczos steps per `λ_H¹` (warm-started) and relative tolerance.
    pub lanczos_iters: usize,
    pub lanczos_tol: f64,
    /// Size `M` of the fixed subset on which `K` and `F` are measured (capped at `N`).
    pub subset: usize,
    /// Sampled labels per example for `Tr F` (0: `Tr F` not measured).
    pub fisher_samples: usize,
    /// Seed of the subset, the Lanczos start and the Fisher labels.
    pub seed: u64,
    /// Loss above which the run counts as diverged.
    pub divergence_loss: f64,
}

impl Default for BreakEvenOptions {
    fn default() -> Self {
        BreakEvenOptions {
            lr: 0.1,
            sampler: Sampler::Full,
            sampler_seed: 0,
            steps: 1000,
            every: 50,
            lanczos_iters: 20,
            lanczos_tol: 1e-8,
            subset: 256,
            fisher_samples: 1,
            seed: 0,
            divergence_loss: 1e6,
        }
    }
}

/// The break-even quantities at one point of a trajectory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakEvenPoint {
    /// `λ_H¹ = λ_max(H)`.
    pub lambda_h: f64,
    /// `λ_K¹ = λ_max(K)` (subset).
    pub lambda_k: f64,
    /// `Tr K` (subset).
    pub trace_k: f64,
    /// `Tr F`, true Fisher (subset, sampled labels; NaN if not measured).
    pub trace_f: f64,
}

impl BreakEvenPoint {
    /// Componentwise maximum (NaN-ignoring).
    fn max(self, o: BreakEvenPoint) -> BreakEvenPoint {
        BreakEvenPoint {
            lambda_h: self.lambda_h.max(o.lambda_h),
            lambda_k: self.lambda_k.max(o.lambda_k),
            trace_k: self.trace_k.max(o.trace_k),
            trace_f: self.trace_f.max(o.trace_f),
        }
    }
}

/// One break-even run.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakEvenRun {
    pub lr: f64,
    /// Batch size `b` (`N` for GD, the largest batch of a fixed partition).
    pub batch_size: usize,
    /// Measurement steps.
    pub steps: Vec<usize>,
    /// Full-batch loss at the measurement steps.
    pub loss: Vec<f64>,
    pub points: Vec<BreakEvenPoint>,
    /// Completed, or diverged at a step (a batch loss or a measured full-batch loss above
    /// [`BreakEvenOptions::divergence_loss`]).
    pub outcome: RunOutcome,
    /// The maxima over the run (each quantity separately).
    pub maxima: BreakEvenPoint,
}

/// Runs GD/SGD from `θ₀` and tracks `λ_H¹`, `λ_K¹`, `Tr K`, `Tr F` every `opts.every` steps.
pub fn break_even<O: Supervised + ?Sized>(
    obj: &O,
    theta0: &[f64],
    opts: &BreakEvenOptions,
) -> TrackResult<BreakEvenRun> {
    let n = obj.n_examples();
    if opts.subset < 2 {
        return Err(TrackError::invalid("subset", opts.subset, "must be ≥ 2"));
    }
    let mut subset: Vec<usize> = (0..n).collect();
    subset.shuffle(&mut rng::stream(opts.seed, 0x4B));
    subset.truncate(opts.subset.min(n));
    subset.sort_unstable();
    let mut sharp = sharpness_probe(opts.lanczos_iters, opts.lanczos_tol, opts.seed)?;
    let cov = CovarianceOptions::default();
    let mut points = Vec::new();
    let mut measure = |at: &StepView<'_, O>| -> TrackResult<Control> {
        let (o, th, step) = (at.objective, at.theta, at.step);
        let sub = Batch::Indices(&subset);
        let lambda_h = sharp.sharpness(o, th)?.value;
        let lambda_k = gradient_covariance_top(o, th, sub, cov, &CovarianceRoute::Gram)?.value;
        let trace_k = trace_gradient_covariance(o, th, sub, cov)?;
        let trace_f = if opts.fisher_samples == 0 {
            f64::NAN
        } else {
            let sampling = FisherSampling::Sampled {
                samples: opts.fisher_samples,
                seed: step_seed(opts.seed, step),
            };
            fisher_trace(o, th, sub, sampling)?
        };
        points.push(BreakEvenPoint {
            lambda_h,
            lambda_k,
            trace_k,
            trace_f,
        });
        Ok(Control::Continue)
    };
    // The full-batch loss first: a blown-up loss ends the run before the measurements at that iterate.
    let mut loss = LossCurve::new(opts.divergence_loss);
    let every = Cadence::Every(opts.every);
    let train_opts = train_options(opts.lr, opts.steps, opts.sampler_seed, opts.divergence_loss);
    let end = train(
        obj,
        theta0,
        &Optimizer::sgd(opts.sampler.clone()),
        &train_opts,
        &mut [
            Scheduled::new(every, &mut loss),
            Scheduled::new(every, &mut measure),
        ],
    )?;
    let steps: Vec<usize> = loss.records.iter().take(points.len()).map(|r| r.0).collect();
    let maxima = points.iter().copied().fold(
        BreakEvenPoint {
            lambda_h: f64::NAN,
            lambda_k: f64::NAN,
            trace_k: f64::NAN,
            trace_f: f64::NAN,
        },
        BreakEvenPoint::max,
    );
    Ok(BreakEvenRun {
        lr: opts.lr,
        batch_size: batch_size(&opts.sampler, n),
        loss: loss.records.iter().take(points.len()).map(|r| r.1).collect(),
        steps,
        points,
        outcome: end.outcome,
        maxima,
    })
}

/// The (largest) batch size of `sampler` on `n` examples.
fn batch_size(sampler: &Sampler, n: usize) -> usize {
    match sampler {
        Sampler::Full => n,
        Sampler::WithReplacement { batch_size } | Sampler::RandomReshuffling { batch_size, .. } => {
            *batch_size
        }
        Sampler::FixedPartition { partition } => partition.batches().iter().map(Vec::len).max().unwrap_or(0),
    }
}

/// Runs [`break_even`] for each options set, rayon-parallel, results in input order (bitwise deterministic).
pub fn sweep_break_even<O: Supervised + ?Sized>(
    obj: &O,
    theta0: &[f64],
    runs: &[BreakEvenOptions],
) -> Vec<TrackResult<BreakEvenRun>> {
    runs.par_iter().map(|o| break_even(obj, theta0, o)).collect()
}

/// One pairwise comparison of conjecture 1: `run_a` has the larger η (same b) or the smaller b (same η),
/// so the conjecture predicts `max_a < max_b` for `λ_H¹` and `λ_K¹`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConjectureComparison {
    /// `"η 0.2 vs 0.1 at b = 1000"` or `"b 32 vs 1000 at η = 0.1"`.
    pub what: String,
    /// `(max_a, max_b)` of `λ_H¹`.
    pub lambda_h: (f64, f64),
    /// `(max_a, max_b)` of `λ_K¹`.
    pub lambda_k: (f64, f64),
    /// `max_a < max_b` for `λ_H¹`.
    pub lambda_h_holds: bool,
    /// `max_a < max_b` for `λ_K¹`.
    pub lambda_k_holds: bool,
}

/// All pairwise comparisons of conjecture 1 among `runs`: pairs with equal batch size and different η, and
/// pairs with equal η and different batch size. Diverged runs are compared like the others (their maxima
/// are over the steps before divergence).
pub fn conjecture_one(runs: &[BreakEvenRun]) -> Vec<ConjectureComparison> {
    let mut out = Vec::new();
    for a in runs {
        for b in runs {
            let larger_lr = a.batch_size == b.batch_size && a.lr > b.lr;
            let smaller_batch = a.lr == b.lr && a.batch_size < b.batch_size;
            if !(larger_lr || smaller_batch) {
                continue;
            }
            let what = if larger_lr {
                format!("η {} vs {} at b = {}", a.lr, b.lr, a.batch_size)
            } else {
                format!("b {} vs {} at η = {}", a.batch_size, b.batch_size, a.lr)
            };
            out.push(ConjectureComparison {
                what,
                lambda_h: (a.maxima.lambda_h, b.maxima.lambda_h),
                lambda_k: (a.maxima.lambda_k, b.maxima.lambda_k),
                lambda_h_holds: a.maxima.lambda_h < b.maxima.lambda_h,
                lambda_k_holds: a.maxima.lambda_k < b.maxima.lambda_k,
            });
        }
    }
    out
}
