//! Support trainer and exact moment engine.
use imreg_objective::data::synthetic::{sparse_support, SupportParams, SupportTarget};
use imreg_sgd::support::{train_support, SupportConfig};
use imreg_sgd::without_replacement::{exact_moments, orders_mean, toy, Process, ToyParams};

#[test]
fn subset_dynamic_program_matches_brute_force_orders() {
    let q = toy(&ToyParams {
        h: vec![0.3, -0.2],
        n: 6,
        amplitude: 0.2,
        seed: 2,
        diagonal_noise: false,
    })
    .unwrap();
    for b in [1, 2, 3] {
        let th0 = [0.4, -0.7];
        let brute = orders_mean(&q, &th0, 0.7, b).unwrap();
        let dp = exact_moments(&q, &th0, 0.7, b, Process::WithoutReplacement).unwrap();
        let k = 6 / b;
        assert!(
            (&dp.mean[k] - &brute).norm() <= 1e-14 * brute.norm().max(1.0),
            "b = {b}"
        );
    }
    assert!(exact_moments(&q, &[0.0, 0.0], 0.7, 4, Process::WithoutReplacement).is_err());
}

#[test]
fn support_trainer_records_and_validates() {
    let data = sparse_support(&SupportParams {
        n: 100,
        ..SupportParams::paper(SupportTarget::Linear, 0)
    })
    .unwrap();
    let run = train_support(
        &data,
        &SupportConfig {
            record_every: 50,
            ..SupportConfig::paper(Some(32), 200, 0)
        },
        None,
    )
    .unwrap();
    assert_eq!(run.steps, vec![0, 50, 100, 150, 200]);
    // He init: ‖W1[:, 5:]‖_F ≈ √(150 · 2/15) = √20 ≈ 4.47
    assert!((run.irrelevant_norm[0] - 20f64.sqrt()).abs() < 1.0);
    assert!(run.loss[4] < run.loss[0]);
    let bad = SupportConfig {
        lr: -1.0,
        ..SupportConfig::paper(None, 1, 0)
    };
    assert!(train_support(&data, &bad, None).is_err());
}

/// The batch-size ordering of the final irrelevant norm (paper figure: GD > 512 > 128 > 32), at reduced
/// size: n = 1000 base samples (2000 rows) and 10 000 steps instead of 10 000 rows and 2·10⁵ steps; the four
/// runs are independent and run in parallel (each is sequential and seeded, so the result is deterministic).
#[test]
fn support_batch_size_ordering_reduced() {
    let data = sparse_support(&SupportParams {
        n: 1000,
        ..SupportParams::paper(SupportTarget::Linear, 0)
    })
    .unwrap();
    use rayon::prelude::*;
    let steps = 10_000;
    let finals: Vec<f64> = [None, Some(512), Some(128), Some(32)]
        .par_iter()
        .map(|&b| {
            let cfg = SupportConfig {
                record_every: steps,
                ..SupportConfig::paper(b, steps, 0)
            };
            *train_support(&data, &cfg, None)
                .unwrap()
                .irrelevant_norm
                .last()
                .unwrap()
        })
        .collect();
    println!(
        "final ‖W1_irr‖: GD {:.3}, 512 {:.3}, 128 {:.3}, 32 {:.3}",
        finals[0], finals[1], finals[2], finals[3]
    );
    assert!(finals.windows(2).all(|w| w[0] > w[1]), "{finals:?}");
}
