//! Recorded trajectories: the iterates of a training run ([`crate::train::train`]) at the steps of a
//! schedule, and the plain-GD and fixed-partition shorthands. Every method (GD, SGD with replacement,
//! random reshuffling, a fixed partition, momentum, noise, penalties) is a [`Optimizer`] of the one loop.
//!
//! ```
//! use imreg_sgd::trajectory::run;
//! use imreg_sgd::train::{Optimizer, TrainOptions, Update, RunOutcome};
//! use imreg_sgd::observe::Cadence;
//! use imreg_sgd::sampler::Sampler;
//! use imreg_objective::{models::LogCoshQuartic, Remainder};
//! let obj = LogCoshQuartic::random(8, 2, 1).unwrap();
//! let method = Optimizer { update: Update::HeavyBall { momentum: 0.9 }, ..Optimizer::sgd(Sampler::reshuffling(2, Remainder::Error)) };
//! let opts = TrainOptions { lr: 0.1, steps: 40, ..Default::default() };
//! let tr = run(&obj, &[0.5, -0.5], &method, &opts, Cadence::Every(4)).unwrap();
//! assert_eq!(tr.outcome, RunOutcome::Completed);
//! assert_eq!(tr.iterates.len(), 11); // θ_0, θ_4, …, θ_40
//! ```
use crate::error::{Result, SgdError};
use crate::observe::{Cadence, Iterates, Scheduled};
use crate::sampler::Sampler;
use crate::train::{train, Optimizer, RunOutcome, TrainOptions};
use imreg_objective::Objective;
use imreg_objective::Partition;

/// A run's result with its recorded iterates ([`run`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedIterates {
    /// The last finite iterate (after the last completed step, or before the diverging one).
    pub theta: Vec<f64>,
    /// The recorded iterates, in step order.
    pub iterates: Vec<Vec<f64>>,
    /// Step indices of the recorded iterates.
    pub recorded_steps: Vec<usize>,
    pub outcome: RunOutcome,
    /// Gradient evaluations.
    pub gradient_calls: usize,
}

/// A shorthand of the one loop: [`train`] with a single [`Iterates`] observer on the schedule `record`
/// (which always includes `θ_0` and, for a completed run, the final iterate), its records unzipped. For any
/// other measurement call [`train`] with the observers of [`crate::observe`].
pub fn run(
    obj: &dyn Objective,
    theta0: &[f64],
    method: &Optimizer<'_>,
    opts: &TrainOptions,
    record: Cadence,
) -> Result<RecordedIterates> {
    let mut kept = Iterates::default();
    let end = train::<_, SgdError>(
        obj,
        theta0,
        method,
        opts,
        &mut [Scheduled::new(record, &mut kept)],
    )?;
    let (recorded_steps, iterates) = kept.records.into_iter().unzip();
    Ok(RecordedIterates {
        theta: end.theta,
        iterates,
        recorded_steps,
        outcome: end.outcome,
        gradient_calls: end.gradient_calls,
    })
}

/// Plain GD for `steps` steps (no divergence threshold but non-finite iterates).
pub fn gd(obj: &dyn Objective, theta0: &[f64], lr: f64, steps: usize) -> Result<RecordedIterates> {
    let opts = TrainOptions {
        lr,
        steps,
        ..Default::default()
    };
    run(obj, theta0, &Optimizer::gd(), &opts, Cadence::Ends)
}

/// `epochs` epochs of SGD over a fixed partition in its batch order.
pub fn fixed_partition(
    obj: &dyn Objective,
    theta0: &[f64],
    lr: f64,
    partition: &Partition,
    epochs: usize,
) -> Result<RecordedIterates> {
    let opts = TrainOptions {
        lr,
        steps: epochs * partition.m(),
        ..Default::default()
    };
    let method = Optimizer::sgd(Sampler::FixedPartition {
        partition: partition.clone(),
    });
    run(obj, theta0, &method, &opts, Cadence::Ends)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{Control, Observer, StepView};
    use crate::train::{Blowup, Divergence, Noise, Seeds, Update};
    use imreg_objective::models::{LogCoshQuartic, PerExampleQuadratic};
    use imreg_objective::Batch;
    use imreg_objective::Remainder;
    use nalgebra::{DMatrix, DVector};
    use rand::seq::SliceRandom;
    use rand::Rng;

    fn opts(lr: f64, steps: usize, seed: u64) -> TrainOptions {
        TrainOptions {
            lr,
            steps,
            seeds: Seeds::from_seed(seed),
            ..Default::default()
        }
    }

    /// GD, heavy ball and Nesterov equal the unrolled PyTorch recurrences bitwise.
    #[test]
    fn gd_and_momentum_match_hand_loops_bitwise() {
        let obj = LogCoshQuartic::random(5, 2, 3).unwrap();
        let w0 = [0.3, -0.2];
        let tr = gd(&obj, &w0, 0.1, 3).unwrap();
        let mut w = w0.to_vec();
        for _ in 0..3 {
            let g = obj.grad(&w, Batch::Full).unwrap();
            w = w.iter().zip(&g).map(|(a, b)| a - 0.1 * b).collect();
        }
        assert_eq!(tr.theta, w);
        for nesterov in [false, true] {
            let update = if nesterov {
                Update::Nesterov { momentum: 0.5 }
            } else {
                Update::HeavyBall { momentum: 0.5 }
            };
            let method = Optimizer {
                update,
                ..Optimizer::gd()
            };
            let tr = run(&obj, &w0, &method, &opts(0.1, 3, 0), Cadence::Ends).unwrap();
            let mut w = w0.to_vec();
            let mut b = [0.0; 2];
            for k in 0..3 {
                let g = obj.grad(&w, Batch::Full).unwrap();
                for j in 0..2 {
                    b[j] = if k == 0 { g[j] } else { 0.5 * b[j] + g[j] };
                    let u = if nesterov { g[j] + 0.5 * b[j] } else { b[j] };
                    w[j] -= 0.1 * u;
                }
            }
            assert_eq!(tr.theta, w);
        }
    }

    /// SGD with replacement and with reshuffling equal hand-written loops on the same seeded streams.
    #[test]
    fn sgd_matches_hand_loops_bitwise() {
        let obj = LogCoshQuartic::random(7, 2, 4).unwrap();
        let w0 = [0.4, 0.1];
        let seed = 5;
        let method = Optimizer::sgd(Sampler::WithReplacement { batch_size: 3 });
        let tr = run(&obj, &w0, &method, &opts(0.05, 9, seed), Cadence::Ends).unwrap();
        let mut r = imreg_objective::rng::stream(seed, 0);
        let mut w = w0.to_vec();
        for _ in 0..9 {
            let ix: Vec<usize> = (0..3).map(|_| r.random_range(0..7)).collect();
            let g = obj.grad(&w, Batch::Indices(&ix)).unwrap();
            w = w.iter().zip(&g).map(|(a, b)| a - 0.05 * b).collect();
        }
        assert_eq!(tr.theta, w);
        let method = Optimizer::sgd(Sampler::reshuffling(3, Remainder::SmallerLastBatch));
        let tr = run(&obj, &w0, &method, &opts(0.05, 9, seed), Cadence::Ends).unwrap();
        let mut r = imreg_objective::rng::stream(seed, 0);
        let mut w = w0.to_vec();
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for _ in 0..9 {
            if batches.is_empty() {
                let mut perm: Vec<usize> = (0..7).collect();
                perm.shuffle(&mut r);
                batches = perm.chunks(3).rev().map(<[usize]>::to_vec).collect();
            }
            let ix = batches.pop().unwrap();
            let g = obj.grad(&w, Batch::Indices(&ix)).unwrap();
            w = w.iter().zip(&g).map(|(a, b)| a - 0.05 * b).collect();
        }
        assert_eq!(tr.theta, w);
    }

    /// Each schedule calls its observer at its steps and at the final iterate, once each.
    #[test]
    fn observers_fire_on_their_schedules() {
        let obj = LogCoshQuartic::random(10, 2, 4).unwrap();
        let method = Optimizer::sgd(Sampler::reshuffling(4, Remainder::SmallerLastBatch)); // 3 steps per epoch
        let steps_of = |schedule: Cadence, steps: usize| {
            run(&obj, &[0.2, 0.1], &method, &opts(0.1, steps, 2), schedule)
                .unwrap()
                .recorded_steps
        };
        assert_eq!(steps_of(Cadence::Every(4), 10), [0, 4, 8, 10]);
        assert_eq!(steps_of(Cadence::Every(5), 10), [0, 5, 10]);
        assert_eq!(steps_of(Cadence::Every(1), 3), [0, 1, 2, 3]);
        assert_eq!(steps_of(Cadence::EpochEnds, 10), [0, 3, 6, 9, 10]);
        assert_eq!(steps_of(Cadence::Ends, 10), [0, 10]);
        assert_eq!(
            steps_of(Cadence::Geometric { ratio: 2.0 }, 40),
            [0, 1, 2, 4, 8, 16, 32, 40]
        );
        assert_eq!(
            steps_of(Cadence::Geometric { ratio: 1.5 }, 12),
            [0, 1, 2, 3, 5, 8, 12]
        );
        assert_eq!(steps_of(Cadence::Every(3), 0), [0]);
        assert!(run(&obj, &[0.2, 0.1], &method, &opts(0.1, 3, 2), Cadence::Every(0)).is_err());
        assert!(run(
            &obj,
            &[0.2, 0.1],
            &method,
            &opts(0.1, 3, 2),
            Cadence::Geometric { ratio: 1.0 }
        )
        .is_err());
    }

    /// The observer sees the step's batch, loss and gradient as the loop computed them; observers are
    /// called in list order and the first non-`Continue` ends the run there.
    #[test]
    fn observers_see_the_step_and_can_stop_or_report_divergence() {
        let obj = LogCoshQuartic::random(6, 2, 4).unwrap();
        let method = Optimizer::sgd(Sampler::WithReplacement { batch_size: 2 });
        let o = opts(0.1, 10, 2);
        let mut checked = 0;
        let mut check = |at: &StepView<'_, dyn Objective>| -> Result<Control> {
            if let (Some(b), Some(l), Some(g)) = (at.batch, at.loss, at.grad) {
                let mut g2 = vec![0.0; 2];
                assert_eq!(at.objective.loss_grad(at.theta, b, &mut g2).unwrap(), l);
                assert_eq!(g, &g2[..]);
                checked += 1;
            }
            Ok(if at.step == 6 {
                Control::Stop
            } else {
                Control::Continue
            })
        };
        let never = |_: &StepView<'_, dyn Objective>| -> Result<Control> { panic!("called after a stop") };
        let end = train(
            &obj as &dyn Objective,
            &[0.2, 0.1],
            &method,
            &o,
            &mut [
                Scheduled::new(Cadence::Every(3), &mut check),
                Scheduled::new(Cadence::Every(6), &mut |at: &StepView<'_, dyn Objective>| {
                    if at.step == 6 {
                        never(at)
                    } else {
                        Ok(Control::Continue)
                    }
                }),
            ],
        )
        .unwrap();
        assert_eq!(checked, 3);
        assert_eq!(end.outcome, RunOutcome::Stopped { step: 6 });
        let full = run(&obj, &[0.2, 0.1], &method, &o, Cadence::Every(1)).unwrap();
        assert_eq!(end.theta, full.iterates[6]);
        let every_step = |observer: &mut dyn Observer<dyn Objective>| {
            let objective: &dyn Objective = &obj;
            train(
                objective,
                &[0.2, 0.1],
                &method,
                &o,
                &mut [Scheduled::new(Cadence::Every(1), observer)],
            )
        };
        let end = every_step(&mut |at: &StepView<'_, dyn Objective>| -> Result<Control> {
            Ok(if at.step == 2 {
                Control::Diverged(7.0)
            } else {
                Control::Continue
            })
        })
        .unwrap();
        assert_eq!(
            end.outcome,
            RunOutcome::Diverged {
                step: 2,
                blowup: Blowup::Observed(7.0)
            }
        );
        let failed = every_step(&mut |at: &StepView<'_, dyn Objective>| -> Result<Control> {
            Err(SgdError::invalid("observer", format!("failed at {}", at.step)))
        });
        assert_eq!(failed, Err(SgdError::invalid("observer", "failed at 0")));
    }

    #[test]
    fn divergence_is_reported_with_the_step() {
        // ½x² with η = 3: |1 − η| = 2, so x_k = (−2)^k. The norm passes 1e3 at step 10 (θ = 1024, the last
        // finite iterate −512); the batch loss ½x² passes 1e4 at θ_8 = 256 (loss 32768).
        let obj = PerExampleQuadratic::least_squares(&[vec![1.0]], &[0.0]).unwrap();
        for (divergence, outcome, theta) in [
            (
                Divergence {
                    norm: 1e3,
                    ..Default::default()
                },
                RunOutcome::Diverged {
                    step: 10,
                    blowup: Blowup::Norm(1024.0),
                },
                -512.0,
            ),
            (
                Divergence {
                    loss: 1e4,
                    ..Default::default()
                },
                RunOutcome::Diverged {
                    step: 8,
                    blowup: Blowup::Loss(32768.0),
                },
                256.0,
            ),
        ] {
            let o = TrainOptions {
                divergence,
                ..opts(3.0, 50, 0)
            };
            let tr = run(&obj, &[1.0], &Optimizer::gd(), &o, Cadence::Ends).unwrap();
            assert_eq!((tr.outcome, tr.theta), (outcome, vec![theta]));
        }
    }

    #[test]
    fn seeded_runs_are_reproducible_and_samplers_differ() {
        let obj = LogCoshQuartic::random(8, 2, 3).unwrap();
        let cov = DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.5, 2.0]);
        for sampler in [
            Sampler::WithReplacement { batch_size: 2 },
            Sampler::reshuffling(3, Remainder::SmallerLastBatch),
        ] {
            for noise in [
                Noise::None,
                Noise::Isotropic { sigma: 0.1 },
                Noise::Full {
                    covariance: cov.clone(),
                },
            ] {
                let method = Optimizer {
                    sampler: sampler.clone(),
                    noise,
                    ..Optimizer::gd()
                };
                let a = run(&obj, &[0.1, 0.2], &method, &opts(0.05, 20, 9), Cadence::Every(1)).unwrap();
                let b = run(&obj, &[0.1, 0.2], &method, &opts(0.05, 20, 9), Cadence::Every(1)).unwrap();
                assert_eq!(a, b);
                let c = run(&obj, &[0.1, 0.2], &method, &opts(0.05, 20, 10), Cadence::Ends).unwrap();
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
        let method = Optimizer {
            noise: Noise::Full {
                covariance: cov.clone(),
            },
            ..Optimizer::gd()
        };
        let n = 4000;
        let mut s = DMatrix::<f64>::zeros(2, 2);
        for seed in 0..n {
            let tr = run(&obj, &[0.0, 0.0], &method, &opts(1.0, 1, seed), Cadence::Ends).unwrap();
            let x = DVector::from_vec(tr.theta);
            s += &x * x.transpose() / n as f64;
        }
        // Entry-wise standard error ≈ √(2/n)·2 ≈ 0.045; 5 se.
        assert!((&s - &cov).amax() < 0.22, "{s}");
        let bad = Optimizer {
            noise: Noise::Full {
                covariance: DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]),
            },
            ..Optimizer::gd()
        };
        assert!(run(&obj, &[0.0, 0.0], &bad, &opts(1.0, 1, 0), Cadence::Ends).is_err());
    }

    #[test]
    fn bad_input_is_typed() {
        let obj = LogCoshQuartic::random(4, 2, 3).unwrap();
        let o = opts(0.1, 10, 0);
        let gd = Optimizer::gd();
        assert!(matches!(
            run(&obj, &[0.0, 0.0], &gd, &opts(0.0, 10, 0), Cadence::Ends),
            Err(SgdError::NonPositiveStep { .. })
        ));
        assert!(matches!(
            run(&obj, &[0.0], &gd, &o, Cadence::Ends),
            Err(SgdError::Length { .. })
        ));
        let momentum = Optimizer {
            update: Update::HeavyBall { momentum: 1.5 },
            ..Optimizer::gd()
        };
        assert!(run(&obj, &[0.0, 0.0], &momentum, &o, Cadence::Ends).is_err());
        let r = run(
            &obj,
            &[0.0, 0.0],
            &Optimizer::sgd(Sampler::reshuffling(3, Remainder::Error)),
            &o,
            Cadence::Ends,
        );
        assert!(matches!(
            r,
            Err(SgdError::Objective(imreg_objective::ObjectiveError::Invalid { field, .. })) if field == "batch_size"
        ));
        let noise = Optimizer {
            noise: Noise::Diagonal { variances: vec![1.0] },
            ..Optimizer::gd()
        };
        assert!(run(&obj, &[0.0, 0.0], &noise, &o, Cadence::Ends).is_err());
        let clip = Optimizer {
            transform: crate::train::GradientTransform {
                clip: Some(0.0),
                ..Default::default()
            },
            ..Optimizer::gd()
        };
        assert!(matches!(
            run(&obj, &[0.0, 0.0], &clip, &o, Cadence::Ends),
            Err(SgdError::Invalid { field: "clip", .. })
        ));
    }
}
