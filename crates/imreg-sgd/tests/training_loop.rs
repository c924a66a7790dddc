//! The training loop through its public API only: a user-written observer (a trait impl outside the crate)
//! stops a run on divergence of its own measurement, the built-in observers agree with direct evaluations,
//! and a run with parallel penalties is bitwise identical on 1 and 2 threads.
use imreg_objective::data::digits;
use imreg_objective::models::LogCoshQuartic;
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::Remainder;
use imreg_objective::{Batch, LossKind, Objective};
use imreg_sgd::observe::{
    Cadence, Control, FullLoss, GradNorm, MicroBatchGradNormProbe, Observer, Scheduled, SharpnessProbe,
    StepView,
};
use imreg_sgd::regularizers::micro_batch::MicroBatchGradNorm as GnPenalty;
use imreg_sgd::sampler::Sampler;
use imreg_sgd::train::{
    train, Blowup, GradientTransform, Optimizer, RunOutcome, Seeds, TrainOptions, Update,
};
use imreg_sgd::SgdError;

/// A user's observer: the distance travelled from `θ_0`; the run is reported diverged once it exceeds
/// `limit`, and every measurement is kept.
struct Travelled {
    start: Option<Vec<f64>>,
    limit: f64,
    seen: Vec<(usize, f64)>,
}

impl<O: Objective + ?Sized> Observer<O> for Travelled {
    fn observe(&mut self, at: &StepView<'_, O>) -> imreg_sgd::Result<Control> {
        let start = self.start.get_or_insert_with(|| at.theta.to_vec());
        let d = start
            .iter()
            .zip(at.theta)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        self.seen.push((at.step, d));
        Ok(if d > self.limit {
            Control::Diverged(d)
        } else {
            Control::Continue
        })
    }
}

#[test]
fn a_user_observer_stops_the_run() {
    let obj = LogCoshQuartic::random(8, 2, 1).unwrap();
    let method = Optimizer {
        update: Update::HeavyBall { momentum: 0.9 },
        ..Optimizer::sgd(Sampler::reshuffling(2, Remainder::Error))
    };
    let opts = TrainOptions {
        lr: 0.1,
        steps: 500,
        seeds: Seeds::from_seed(4),
        ..Default::default()
    };
    // First the whole run, to know how far it goes.
    let mut free = Travelled {
        start: None,
        limit: f64::INFINITY,
        seen: Vec::new(),
    };
    let full = train(
        &obj,
        &[2.0, -2.0],
        &method,
        &opts,
        &mut [Scheduled::new(Cadence::Every(1), &mut free)],
    )
    .unwrap();
    assert_eq!(full.outcome, RunOutcome::Completed);
    assert_eq!(free.seen.len(), 501);
    // With the limit at half the largest distance, the first step beyond it ends the run there.
    let limit = 0.5 * free.seen.iter().map(|s| s.1).fold(0.0, f64::max);
    assert!(limit > 0.0);
    let first = free.seen.iter().find(|s| s.1 > limit).unwrap().0;
    let mut guard = Travelled {
        start: None,
        limit,
        seen: Vec::new(),
    };
    let end = train(
        &obj,
        &[2.0, -2.0],
        &method,
        &opts,
        &mut [Scheduled::new(Cadence::Every(1), &mut guard)],
    )
    .unwrap();
    assert!(first > 0);
    assert_eq!(guard.seen.len(), first + 1);
    match end.outcome {
        RunOutcome::Diverged {
            step,
            blowup: Blowup::Observed(d),
        } => assert_eq!((step, d), free.seen[first]),
        o => panic!("expected the observer's divergence, got {o:?}"),
    }
}

/// `FullLoss`, `GradNorm` and `SharpnessProbe` record what direct evaluations give at the same iterates.
#[test]
fn built_in_observers_match_direct_evaluations() {
    let obj = LogCoshQuartic::random(6, 3, 2).unwrap();
    let opts = TrainOptions {
        lr: 0.2,
        steps: 12,
        ..Default::default()
    };
    let mut loss = FullLoss::train();
    let mut grad = GradNorm::default();
    let mut sharp = SharpnessProbe::new(3, 0.0, 1);
    let mut iterates = imreg_sgd::observe::Iterates::default();
    train::<_, SgdError>(
        &obj,
        &[0.3, -0.1, 0.2],
        &Optimizer::gd(),
        &opts,
        &mut [
            Scheduled::new(Cadence::Every(4), &mut loss),
            Scheduled::new(Cadence::Every(4), &mut grad),
            Scheduled::new(Cadence::Every(4), &mut sharp),
            Scheduled::new(Cadence::Every(4), &mut iterates),
        ],
    )
    .unwrap();
    assert_eq!(iterates.records.len(), 4);
    for (k, (step, theta)) in iterates.records.iter().enumerate() {
        assert_eq!(loss.records[k], (*step, obj.loss(theta, Batch::Full).unwrap()));
        let g = obj.grad(theta, Batch::Full).unwrap();
        assert_eq!(grad.records[k].1, g.iter().map(|v| v * v).sum::<f64>().sqrt());
        // p = 3 Lanczos steps span the space: λ_max is exact up to rounding.
        let h = imreg_spectra::HessianOperator::new(&obj, theta, Batch::Full).unwrap();
        let top = imreg_spectra::dense_eigen(&h, &Default::default()).unwrap().max();
        assert!((sharp.records[k].1.value - top).abs() <= 1e-10 * top.abs().max(1.0));
    }
}

fn digits_mlp() -> Mlp {
    let d = digits();
    let spec = MlpSpec {
        widths: vec![64, 8, 10],
        activation: Activation::Tanh,
        bias: true,
        loss: LossKind::CrossEntropy,
    };
    Mlp::classification(spec, d.x.clone(), d.labels.clone()).unwrap()
}

/// SGD + the GN penalty (micro-batches in parallel) with the micro-batch gradient-norm observer: the same
/// bits on 1 and 2 threads.
#[test]
fn runs_are_bitwise_identical_on_one_and_two_threads() {
    let net = digits_mlp();
    let theta0 = net.init_params(3, 1.0);
    let run = || {
        let obj: &dyn Objective = net.objective();
        let method = Optimizer {
            transform: GradientTransform {
                penalties: vec![Box::new(GnPenalty::new(net.objective(), 8, 0.05).unwrap())],
                clip: Some(5.0),
                reuse_penalty_loss: true,
                ..Default::default()
            },
            ..Optimizer::sgd(Sampler::reshuffling(32, Remainder::Drop))
        };
        let opts = TrainOptions {
            lr: 0.1,
            steps: 20,
            seeds: Seeds::from_seed(11),
            ..Default::default()
        };
        let mut micro = MicroBatchGradNormProbe {
            micro: 8,
            records: Vec::new(),
        };
        let end = train::<_, SgdError>(
            obj,
            &theta0,
            &method,
            &opts,
            &mut [Scheduled::new(Cadence::Geometric { ratio: 2.0 }, &mut micro)],
        )
        .unwrap();
        (end, micro.records)
    };
    let on = |threads: usize| imreg_objective::threads::on_threads(threads, run).unwrap();
    let (one, two) = (on(1), on(2));
    assert_eq!(one.0.outcome, RunOutcome::Completed);
    assert_eq!(one.1.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 4, 8, 16]);
    assert_eq!(one, two);
}

/// Outcomes print as one comma-free token each, for the CSV tables that carry them.
#[test]
fn outcomes_print_as_single_csv_tokens() {
    use imreg_sgd::train::{Blowup, RunOutcome};
    let printed: Vec<String> = [
        RunOutcome::Completed,
        RunOutcome::Diverged {
            step: 12,
            blowup: Blowup::Loss(f64::INFINITY),
        },
        RunOutcome::Stopped { step: 3 },
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(printed, ["completed", "diverged@12", "stopped@3"]);
}
