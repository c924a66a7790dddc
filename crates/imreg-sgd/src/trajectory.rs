//! Trajectories of the first-order methods on any [`Objective`]: GD, SGD with replacement, random
//! reshuffling, a fixed partition with a given batch order, momentum (heavy ball and Nesterov in PyTorch's
//! form) and noise-injected GD. All randomness is seeded (`imreg_objective::rng::stream`); divergence is a
//! reported outcome carrying the step.
//!
//! ```
//! use imreg_sgd::trajectory::{run, Sampler, Update, Noise, RunOptions, RunStatus};
//! use imreg_flow::toy::LogCoshQuartic;
//! let obj = LogCoshQuartic::random(8, 2, 1).unwrap();
//! let opts = RunOptions { steps: 40, record_every: 4, ..Default::default() };
//! let sampler = Sampler::RandomReshuffling { batch_size: 2, remainder: imreg_flow::Remainder::Error };
//! let tr = run(&obj, &[0.5, -0.5], 0.1, &sampler, &Update::HeavyBall { momentum: 0.9 }, &Noise::None, &opts).unwrap();
//! assert_eq!(tr.status, RunStatus::Completed);
//! assert_eq!(tr.iterates.len(), 11); // θ_0, θ_4, …, θ_40
//! ```
//!
//! [`run`] keeps every recorded iterate. A long run records through an observer instead —
//! [`run_observed`] hands each recorded `(step, θ)` to a callback and keeps none, so its memory does not
//! grow with the number of recorded steps; the callback may also stop the run:
//!
//! ```
//! use imreg_sgd::trajectory::{run_observed, Sampler, Update, Noise, RunOptions, RunStatus};
//! use imreg_sgd::SgdError;
//! use imreg_flow::toy::LogCoshQuartic;
//! use std::ops::ControlFlow;
//! let obj = LogCoshQuartic::random(8, 2, 1).unwrap();
//! let opts = RunOptions { steps: 1000, record_every: 1, ..Default::default() };
//! let mut largest = 0.0f64;
//! let end = run_observed(&obj, &[0.5, -0.5], 0.1, &Sampler::Full, &Update::Plain, &Noise::None, &opts,
//!     &mut |step, theta| -> Result<_, SgdError> {
//!         largest = largest.max(theta[0].abs());
//!         Ok(if step == 600 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
//!     }).unwrap();
//! assert_eq!(end.status, RunStatus::Stopped { step: 600 });
//! assert!(largest >= 0.5);
//! ```
use crate::error::{check_len, check_lr, Result, SgdError};
use imreg_flow::{Partition, Remainder};
use imreg_objective::{rng, Batch, Objective};
use nalgebra::{DMatrix, DVector};
use rand::seq::SliceRandom;
use rand::Rng;
use std::ops::ControlFlow;

/// Which examples each step uses.
#[derive(Clone, Debug)]
pub enum Sampler {
    /// Full batch (GD).
    Full,
    /// Each step draws `batch_size` examples uniformly **with replacement** (i.i.d. indices).
    WithReplacement { batch_size: usize },
    /// Random reshuffling: each epoch a fresh seeded permutation of `0..N` cut into batches.
    RandomReshuffling { batch_size: usize, remainder: Remainder },
    /// A fixed partition, its batches visited in the given order every epoch (cyclic).
    FixedPartition { partition: Partition },
}

/// The update rule (PyTorch `torch.optim.SGD` conventions, dampening 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    /// `θ ← θ − η g`.
    Plain,
    /// `b ← μ b + g` (`b_0 = g_0`), `θ ← θ − η b`.
    HeavyBall { momentum: f64 },
    /// `b ← μ b + g` (`b_0 = g_0`), `θ ← θ − η (g + μ b)`.
    Nesterov { momentum: f64 },
}

/// Gaussian noise added to the gradient: `θ ← θ − η (g + ξ)`, `ξ ~ N(0, Σ)` i.i.d. per step.
#[derive(Clone, Debug)]
pub enum Noise {
    None,
    /// `Σ = σ² I`.
    Isotropic {
        sigma: f64,
    },
    /// `Σ = diag(variances)`.
    Diagonal {
        variances: Vec<f64>,
    },
    /// A full covariance `Σ` (symmetric positive semi-definite; factored once).
    Full {
        covariance: DMatrix<f64>,
    },
}

/// Options of [`run`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Number of steps (updates).
    pub steps: usize,
    /// Record `θ_0` and every `record_every`-th iterate (0: record only `θ_0` and the last).
    pub record_every: usize,
    /// An iterate with Euclidean norm above this (or non-finite) stops the run as diverged.
    pub divergence_norm: f64,
    /// Master seed; the sampler uses stream 0, the noise stream 1.
    pub seed: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            steps: 100,
            record_every: 0,
            divergence_norm: 1e12,
            seed: 0,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    Completed,
    /// The iterate after update `step` (1-based) was non-finite or had norm above `divergence_norm`.
    Diverged {
        step: usize,
        norm: f64,
    },
    /// The observer of [`run_observed`] stopped the run at the recorded iterate of `step`.
    Stopped {
        step: usize,
    },
}

/// A run's result with its recorded iterates ([`run`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    /// The last finite iterate (after the last completed step, or before the diverging one).
    pub theta: Vec<f64>,
    /// Recorded iterates (see [`RunOptions::record_every`]).
    pub iterates: Vec<Vec<f64>>,
    /// Step indices of the recorded iterates.
    pub recorded_steps: Vec<usize>,
    pub status: RunStatus,
    /// Gradient evaluations.
    pub gradient_calls: usize,
}

/// How an observed run ([`run_observed`]) ended; its recorded iterates went to the observer.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEnd {
    /// The last finite iterate (after the last completed step, before the diverging one, or the one at
    /// which the observer stopped the run).
    pub theta: Vec<f64>,
    pub status: RunStatus,
    /// Gradient evaluations.
    pub gradient_calls: usize,
}

/// Draws Gaussian vectors with a given covariance.
enum NoiseSampler {
    None,
    Scaled(Vec<f64>),
    Factor(DMatrix<f64>),
}

impl NoiseSampler {
    fn new(noise: &Noise, p: usize) -> Result<Self> {
        Ok(match noise {
            Noise::None => NoiseSampler::None,
            Noise::Isotropic { sigma } => {
                if !(sigma.is_finite() && *sigma >= 0.0) {
                    return Err(SgdError::invalid(
                        "sigma",
                        format!("must be ≥ 0 and finite, got {sigma}"),
                    ));
                }
                NoiseSampler::Scaled(vec![*sigma; p])
            }
            Noise::Diagonal { variances } => {
                if variances.len() != p {
                    return Err(SgdError::Length {
                        name: "variances",
                        expected: p,
                        got: variances.len(),
                    });
                }
                if let Some(v) = variances.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                    return Err(SgdError::invalid(
                        "variances",
                        format!("must be ≥ 0 and finite, got {v}"),
                    ));
                }
                NoiseSampler::Scaled(variances.iter().map(|v| v.sqrt()).collect())
            }
            Noise::Full { covariance } => {
                if covariance.nrows() != p || covariance.ncols() != p {
                    return Err(SgdError::invalid(
                        "covariance",
                        format!(
                            "must be {p}×{p}, got {}×{}",
                            covariance.nrows(),
                            covariance.ncols()
                        ),
                    ));
                }
                if (covariance - covariance.transpose()).amax() > 1e-12 * (1.0 + covariance.amax()) {
                    return Err(SgdError::invalid("covariance", "is not symmetric"));
                }
                // Σ = U Λ Uᵀ, factor U Λ^{1/2} (semi-definite allowed; negative eigenvalues rejected).
                let eig = covariance.clone().symmetric_eigen();
                let lmin = eig.eigenvalues.min();
                if lmin < -1e-12 * (1.0 + eig.eigenvalues.amax()) {
                    return Err(SgdError::invalid(
                        "covariance",
                        format!("is not positive semi-definite (eigenvalue {lmin:e})"),
                    ));
                }
                let sq = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
                NoiseSampler::Factor(&eig.eigenvectors * DMatrix::from_diagonal(&sq))
            }
        })
    }

    fn add(&self, rng: &mut rng::ChaCha8Rng, g: &mut [f64]) {
        match self {
            NoiseSampler::None => {}
            NoiseSampler::Scaled(s) => {
                let z = rng::normal_vec(rng, g.len());
                for ((gi, si), zi) in g.iter_mut().zip(s).zip(z) {
                    *gi += si * zi;
                }
            }
            NoiseSampler::Factor(l) => {
                let z = DVector::from_vec(rng::normal_vec(rng, g.len()));
                let xi = l * z;
                for (gi, x) in g.iter_mut().zip(xi.iter()) {
                    *gi += x;
                }
            }
        }
    }
}

fn validate_momentum(update: &Update) -> Result<()> {
    if let Update::HeavyBall { momentum } | Update::Nesterov { momentum } = update {
        if !(momentum.is_finite() && (0.0..1.0).contains(momentum)) {
            return Err(SgdError::invalid(
                "momentum",
                format!("must lie in [0, 1), got {momentum}"),
            ));
        }
    }
    Ok(())
}

/// Produces the batch of each step.
struct BatchStream<'s> {
    sampler: &'s Sampler,
    n: usize,
    rng: rng::ChaCha8Rng,
    epoch_batches: Vec<Vec<usize>>,
    pos: usize,
    buf: Vec<usize>,
}

impl<'s> BatchStream<'s> {
    fn new(sampler: &'s Sampler, n: usize, seed: u64) -> Result<Self> {
        match sampler {
            Sampler::Full => {}
            Sampler::WithReplacement { batch_size } => {
                if *batch_size == 0 {
                    return Err(SgdError::invalid("batch_size", "must be ≥ 1"));
                }
            }
            Sampler::RandomReshuffling {
                batch_size,
                remainder,
            } => {
                Partition::consecutive(n, *batch_size, *remainder)?;
            }
            Sampler::FixedPartition { partition } => {
                if partition.n_examples() != n {
                    return Err(SgdError::invalid(
                        "partition",
                        format!("refers to N = {}, the objective has {n}", partition.n_examples()),
                    ));
                }
            }
        }
        Ok(BatchStream {
            sampler,
            n,
            rng: rng::stream(seed, 0),
            epoch_batches: Vec::new(),
            pos: 0,
            buf: Vec::new(),
        })
    }

    /// The batch of the next step (`None` = full batch).
    fn next(&mut self) -> Result<Option<&[usize]>> {
        match self.sampler {
            Sampler::Full => Ok(None),
            Sampler::WithReplacement { batch_size } => {
                self.buf.clear();
                for _ in 0..*batch_size {
                    self.buf.push(self.rng.random_range(0..self.n));
                }
                Ok(Some(&self.buf))
            }
            Sampler::RandomReshuffling {
                batch_size,
                remainder,
            } => {
                if self.pos == self.epoch_batches.len() {
                    let mut perm: Vec<usize> = (0..self.n).collect();
                    perm.shuffle(&mut self.rng);
                    self.epoch_batches = Partition::from_order(&perm, self.n, *batch_size, *remainder)?
                        .batches()
                        .to_vec();
                    self.pos = 0;
                }
                self.pos += 1;
                Ok(Some(&self.epoch_batches[self.pos - 1]))
            }
            Sampler::FixedPartition { partition } => {
                let b = &partition.batches()[self.pos % partition.m()];
                self.pos += 1;
                Ok(Some(b))
            }
        }
    }
}

/// Runs `opts.steps` updates of the chosen method from `theta0` with learning rate `lr`, keeping every
/// recorded iterate (see [`RunOptions::record_every`]); [`run_observed`] with a callback that collects.
pub fn run(
    obj: &dyn Objective,
    theta0: &[f64],
    lr: f64,
    sampler: &Sampler,
    update: &Update,
    noise: &Noise,
    opts: &RunOptions,
) -> Result<Trajectory> {
    let mut iterates = Vec::new();
    let mut recorded_steps = Vec::new();
    let end = run_observed(obj, theta0, lr, sampler, update, noise, opts, &mut |step,
                                                                                theta|
     -> Result<
        ControlFlow<()>,
    > {
        iterates.push(theta.to_vec());
        recorded_steps.push(step);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(Trajectory {
        theta: end.theta,
        iterates,
        recorded_steps,
        status: end.status,
        gradient_calls: end.gradient_calls,
    })
}

/// The observer of [`run_observed`]: called with `(step, θ_step)` at each recorded step; `Break` stops the
/// run there, an error ends it.
pub type Observer<'a, E> = dyn FnMut(usize, &[f64]) -> std::result::Result<ControlFlow<()>, E> + 'a;

/// Runs `opts.steps` updates like [`run`], handing each recorded iterate to `observe(step, θ_step)` as
/// soon as it exists — `θ_0` first, then the iterates [`RunOptions::record_every`] selects — and keeping
/// none of them: the run holds a fixed number of length-`p` vectors (`θ`, the next `θ`, the gradient,
/// the momentum buffer) whatever the number of steps. `observe` returning
/// [`ControlFlow::Break`] ends the run at that iterate ([`RunStatus::Stopped`]); its error ends the run
/// and is returned. Errors of the run itself (bad options, a failed gradient) arrive as `E::from`.
#[allow(clippy::too_many_arguments)]
pub fn run_observed<E: From<SgdError>>(
    obj: &dyn Objective,
    theta0: &[f64],
    lr: f64,
    sampler: &Sampler,
    update: &Update,
    noise: &Noise,
    opts: &RunOptions,
    observe: &mut Observer<'_, E>,
) -> std::result::Result<RunEnd, E> {
    let p = obj.dim();
    check_len("theta0", theta0, p)?;
    check_lr("lr", lr)?;
    validate_momentum(update)?;
    if opts.divergence_norm.is_nan() || opts.divergence_norm <= 0.0 {
        return Err(SgdError::invalid(
            "divergence_norm",
            format!("must be > 0, got {}", opts.divergence_norm),
        )
        .into());
    }
    let noise = NoiseSampler::new(noise, p)?;
    let mut noise_rng = rng::stream(opts.seed, 1);
    let mut batches = BatchStream::new(sampler, obj.n_examples(), opts.seed)?;
    let mut theta = theta0.to_vec();
    let mut next = theta.clone();
    let mut g = vec![0.0; p];
    let mut buf: Option<Vec<f64>> = None;
    let mut end = RunEnd {
        theta: Vec::new(),
        status: RunStatus::Completed,
        gradient_calls: 0,
    };
    if observe(0, &theta)?.is_break() {
        end.status = RunStatus::Stopped { step: 0 };
        end.theta = theta;
        return Ok(end);
    }
    for step in 1..=opts.steps {
        let batch = match batches.next()? {
            None => Batch::Full,
            Some(ix) => Batch::Indices(ix),
        };
        obj.loss_grad(&theta, batch, &mut g).map_err(SgdError::from)?;
        end.gradient_calls += 1;
        noise.add(&mut noise_rng, &mut g);
        match update {
            Update::Plain => {
                for j in 0..p {
                    next[j] = theta[j] - lr * g[j];
                }
            }
            Update::HeavyBall { momentum } | Update::Nesterov { momentum } => {
                let b = buf.get_or_insert_with(|| vec![0.0; p]);
                let first = step == 1;
                for j in 0..p {
                    b[j] = if first { g[j] } else { momentum * b[j] + g[j] };
                    let d = if matches!(update, Update::Nesterov { .. }) {
                        g[j] + momentum * b[j]
                    } else {
                        b[j]
                    };
                    next[j] = theta[j] - lr * d;
                }
            }
        }
        let norm = next.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !norm.is_finite() || norm > opts.divergence_norm {
            end.status = RunStatus::Diverged { step, norm };
            break;
        }
        std::mem::swap(&mut theta, &mut next);
        let recorded = (opts.record_every > 0 && step.is_multiple_of(opts.record_every))
            || (step == opts.steps && opts.record_every == 0);
        if recorded && observe(step, &theta)?.is_break() {
            end.status = RunStatus::Stopped { step };
            break;
        }
    }
    end.theta = theta;
    Ok(end)
}

/// Plain GD for `steps` steps.
pub fn gd(obj: &dyn Objective, theta0: &[f64], lr: f64, steps: usize) -> Result<Trajectory> {
    run(
        obj,
        theta0,
        lr,
        &Sampler::Full,
        &Update::Plain,
        &Noise::None,
        &RunOptions {
            steps,
            ..Default::default()
        },
    )
}

/// One epoch (or several) of SGD over a fixed partition in its batch order.
pub fn fixed_partition(
    obj: &dyn Objective,
    theta0: &[f64],
    lr: f64,
    partition: &Partition,
    epochs: usize,
) -> Result<Trajectory> {
    let steps = epochs * partition.m();
    run(
        obj,
        theta0,
        lr,
        &Sampler::FixedPartition {
            partition: partition.clone(),
        },
        &Update::Plain,
        &Noise::None,
        &RunOptions {
            steps,
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use imreg_flow::toy::{LogCoshQuartic, PerExampleQuadratic};

    #[test]
    fn gd_matches_a_hand_loop_and_momentum_matches_pytorch_recurrences() {
        let obj = LogCoshQuartic::random(5, 2, 3).unwrap();
        let w0 = [0.3, -0.2];
        let tr = gd(&obj, &w0, 0.1, 3).unwrap();
        let mut w = w0.to_vec();
        for _ in 0..3 {
            let g = obj.grad(&w, Batch::Full).unwrap();
            w = w.iter().zip(&g).map(|(a, b)| a - 0.1 * b).collect();
        }
        assert_eq!(tr.theta, w);
        // Nesterov vs the unrolled PyTorch recurrence.
        let opts = RunOptions {
            steps: 3,
            ..Default::default()
        };
        let tr = run(
            &obj,
            &w0,
            0.1,
            &Sampler::Full,
            &Update::Nesterov { momentum: 0.5 },
            &Noise::None,
            &opts,
        )
        .unwrap();
        let mut w = w0.to_vec();
        let mut b = [0.0; 2];
        for k in 0..3 {
            let g = obj.grad(&w, Batch::Full).unwrap();
            for j in 0..2 {
                b[j] = if k == 0 { g[j] } else { 0.5 * b[j] + g[j] };
                w[j] -= 0.1 * (g[j] + 0.5 * b[j]);
            }
        }
        assert_eq!(tr.theta, w);
    }

    /// The observer sees exactly the iterates `run` keeps, can stop the run at any recorded step (leaving
    /// `θ` there), and its error ends the run unchanged.
    #[test]
    fn observed_runs_see_the_recorded_iterates_and_can_stop() {
        let obj = LogCoshQuartic::random(6, 2, 4).unwrap();
        let sampler = Sampler::WithReplacement { batch_size: 2 };
        let update = Update::Nesterov { momentum: 0.3 };
        for record_every in [0, 1, 3] {
            let opts = RunOptions {
                steps: 10,
                record_every,
                seed: 2,
                ..Default::default()
            };
            let tr = run(&obj, &[0.2, 0.1], 0.1, &sampler, &update, &Noise::None, &opts).unwrap();
            let observed = |observe: &mut Observer<SgdError>| {
                run_observed(
                    &obj,
                    &[0.2, 0.1],
                    0.1,
                    &sampler,
                    &update,
                    &Noise::None,
                    &opts,
                    observe,
                )
            };
            let mut seen: Vec<(usize, Vec<f64>)> = Vec::new();
            let end = observed(&mut |step, theta| {
                seen.push((step, theta.to_vec()));
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
            assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), tr.recorded_steps);
            assert_eq!(seen.into_iter().map(|s| s.1).collect::<Vec<_>>(), tr.iterates);
            assert_eq!(
                (end.theta, end.status, end.gradient_calls),
                (tr.theta, tr.status, tr.gradient_calls)
            );
            // Stopped at the second recorded step: θ is that iterate and no later step was taken.
            let stop_at = tr.recorded_steps[1];
            let end = observed(&mut |step, _| {
                Ok(if step == stop_at {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })
            .unwrap();
            assert_eq!(end.status, RunStatus::Stopped { step: stop_at });
            assert_eq!(end.theta, tr.iterates[1]);
            assert_eq!(end.gradient_calls, stop_at);
        }
        let failed = run_observed(
            &obj,
            &[0.2, 0.1],
            0.1,
            &Sampler::Full,
            &Update::Plain,
            &Noise::None,
            &RunOptions::default(),
            &mut |step, _| -> Result<ControlFlow<()>> {
                Err(SgdError::invalid("observer", format!("failed at {step}")))
            },
        );
        assert_eq!(failed, Err(SgdError::invalid("observer", "failed at 0")));
    }

    #[test]
    fn divergence_is_reported_with_the_step() {
        // ½x² with η = 3: |1 − η| = 2, so |x_k| = 2^k; norm 1e3 is passed at step 10.
        let obj = PerExampleQuadratic::least_squares(&[vec![1.0]], &[0.0]).unwrap();
        let opts = RunOptions {
            steps: 50,
            divergence_norm: 1e3,
            ..Default::default()
        };
        let tr = run(
            &obj,
            &[1.0],
            3.0,
            &Sampler::Full,
            &Update::Plain,
            &Noise::None,
            &opts,
        )
        .unwrap();
        assert_eq!(
            tr.status,
            RunStatus::Diverged {
                step: 10,
                norm: 1024.0
            }
        );
        assert_eq!(tr.theta, vec![-512.0]);
    }

    #[test]
    fn seeded_runs_are_reproducible_and_samplers_differ() {
        let obj = LogCoshQuartic::random(8, 2, 3).unwrap();
        let cov = DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.5, 2.0]);
        for sampler in [
            Sampler::WithReplacement { batch_size: 2 },
            Sampler::RandomReshuffling {
                batch_size: 3,
                remainder: Remainder::SmallerLastBatch,
            },
        ] {
            for noise in [
                Noise::None,
                Noise::Isotropic { sigma: 0.1 },
                Noise::Full {
                    covariance: cov.clone(),
                },
            ] {
                let o = RunOptions {
                    steps: 20,
                    seed: 9,
                    ..Default::default()
                };
                let a = run(&obj, &[0.1, 0.2], 0.05, &sampler, &Update::Plain, &noise, &o).unwrap();
                let b = run(&obj, &[0.1, 0.2], 0.05, &sampler, &Update::Plain, &noise, &o).unwrap();
                assert_eq!(a, b);
                let c = run(
                    &obj,
                    &[0.1, 0.2],
                    0.05,
                    &sampler,
                    &Update::Plain,
                    &noise,
                    &RunOptions { seed: 10, ..o },
                )
                .unwrap();
                assert_ne!(a.theta, c.theta);
            }
        }
    }

    /// Noise statistics: from the minimizer θ = 0 of a zero-gradient point, one noisy step is −η ξ, so its
    /// sample covariance over seeds must match Σ.
    #[test]
    fn full_covariance_noise_has_the_requested_covariance() {
        let obj = PerExampleQuadratic::least_squares(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[0.0, 0.0]).unwrap();
        let cov = DMatrix::from_row_slice(2, 2, &[1.0, 0.6, 0.6, 2.0]);
        let n = 4000;
        let mut s = DMatrix::<f64>::zeros(2, 2);
        for seed in 0..n {
            let o = RunOptions {
                steps: 1,
                seed,
                ..Default::default()
            };
            let tr = run(
                &obj,
                &[0.0, 0.0],
                1.0,
                &Sampler::Full,
                &Update::Plain,
                &Noise::Full {
                    covariance: cov.clone(),
                },
                &o,
            )
            .unwrap();
            let x = DVector::from_vec(tr.theta);
            s += &x * x.transpose() / n as f64;
        }
        // Entry-wise standard error ≈ √(2/n)·2 ≈ 0.045; 5 se.
        assert!((&s - &cov).amax() < 0.22, "{s}");
        assert!(NoiseSampler::new(
            &Noise::Full {
                covariance: DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0])
            },
            2
        )
        .is_err());
    }

    #[test]
    fn bad_input_is_typed() {
        let obj = LogCoshQuartic::random(4, 2, 3).unwrap();
        let o = RunOptions::default();
        assert!(matches!(
            run(
                &obj,
                &[0.0, 0.0],
                0.0,
                &Sampler::Full,
                &Update::Plain,
                &Noise::None,
                &o
            ),
            Err(SgdError::NonPositiveStep { .. })
        ));
        assert!(matches!(
            run(
                &obj,
                &[0.0],
                0.1,
                &Sampler::Full,
                &Update::Plain,
                &Noise::None,
                &o
            ),
            Err(SgdError::Length { .. })
        ));
        assert!(run(
            &obj,
            &[0.0, 0.0],
            0.1,
            &Sampler::Full,
            &Update::HeavyBall { momentum: 1.5 },
            &Noise::None,
            &o
        )
        .is_err());
        let r = run(
            &obj,
            &[0.0, 0.0],
            0.1,
            &Sampler::RandomReshuffling {
                batch_size: 3,
                remainder: Remainder::Error,
            },
            &Update::Plain,
            &Noise::None,
            &o,
        );
        assert!(matches!(
            r,
            Err(SgdError::Flow(imreg_flow::FlowError::Invalid {
                field: "batch_size",
                ..
            }))
        ));
        assert!(run(
            &obj,
            &[0.0, 0.0],
            0.1,
            &Sampler::Full,
            &Update::Plain,
            &Noise::Diagonal { variances: vec![1.0] },
            &o
        )
        .is_err());
    }
}
