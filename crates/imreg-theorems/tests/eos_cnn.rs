//! The CNN edge-of-stability runs are bitwise identical at 1 and 2 threads (the records of the two CNN checks
//! are printed by the ignored `print_check_records` of `tests/eos.rs`).
use imreg_eos::edge_of_stability::{sweep_edge_of_stability, EosOptions};
use imreg_eos::mnist_cnn::MnistCnn;
use imreg_eos::stochastic_stability::{edge_of_stochastic_stability, EossOptions};
use imreg_objective::models::StandardLoss;
use imreg_objective::threads::on_threads;
use imreg_theorems::eos_cnn::{gd_until_fitted, CnnEosSetting};

/// GD (with sharpness), GD until the accuracy goal with the RK4 gradient-flow comparison, and SGD (with
/// batch sharpness and MiniBS) on cnn-relu and cnn-tanh with 2 digits per class: every number bitwise equal
/// at 1 and 2 threads.
#[test]
fn runs_are_bitwise_identical_at_one_and_two_threads() {
    let run = |threads: usize| {
        on_threads(threads, || {
            let mut out = Vec::new();
            for (preset, loss) in [
                ("cnn-relu", StandardLoss::CrossEntropy),
                ("cnn-tanh", StandardLoss::HalfMse),
            ] {
                let (obj, theta) = MnistCnn {
                    downsample: 2,
                    ..MnistCnn::cohen(preset, 2, loss)
                }
                .build()
                .unwrap();
                let opts: Vec<EosOptions> = [0.05, 0.1]
                    .iter()
                    .map(|&lr| EosOptions {
                        lr,
                        steps: 12,
                        every: 4,
                        lanczos_iters: 6,
                        gradient_flow: None,
                        ..Default::default()
                    })
                    .collect();
                let eos: Vec<_> = sweep_edge_of_stability(&obj, &theta, &opts)
                    .into_iter()
                    .map(|r| r.unwrap())
                    .collect();
                let eoss = edge_of_stochastic_stability(
                    &obj,
                    &theta,
                    &EossOptions {
                        lr: 0.05,
                        batch_size: 4,
                        steps: 8,
                        every: 4,
                        lanczos_iters: 6,
                        ..Default::default()
                    },
                )
                .unwrap();
                let set = CnnEosSetting {
                    max_steps: 12,
                    every: 4,
                    ..CnnEosSetting::new(true)
                };
                let fitted = gd_until_fitted(&obj, &theta, 0.02, &set, true).unwrap();
                assert!(
                    fitted.flow.as_ref().is_some_and(|f| f.report.steps > 0),
                    "{fitted:?}"
                );
                out.push((format!("{eos:?} {eoss:?} {fitted:?}"),));
            }
            out
        })
        .unwrap()
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(format!("{one:?}"), format!("{two:?}"));
}
