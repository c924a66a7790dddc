//! The shrink-rate measurement of support learning: bitwise identical at one and two threads (tiny instance),
//! and its bookkeeping (horizons, noise scales, arms) as configured.
use imreg_sgd::support::{shrink_rates, ShrinkArm, ShrinkRateConfig};

fn tiny() -> ShrinkRateConfig {
    ShrinkRateConfig {
        n: 40,
        pretrain_steps: 300,
        lrs: vec![0.05],
        batches: vec![2, 8],
        min_steps: 50,
        max_steps: 200,
        gd_steps: 100,
        wd_steps: 100,
        ..ShrinkRateConfig::default()
    }
}

#[test]
fn shrink_rates_are_identical_at_one_and_two_threads() {
    let cfg = tiny();
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| shrink_rates(&cfg).unwrap())
    };
    let (one, two) = (in_pool(1), in_pool(2));
    // Debug prints every f64 in its shortest round-trip form, so equal strings are equal bits (NaN included).
    assert_eq!(format!("{one:?}"), format!("{two:?}"));
}

#[test]
fn shrink_rates_follow_the_configured_grid() {
    let cfg = tiny();
    let m = shrink_rates(&cfg).unwrap();
    let n = cfg.n as f64;
    assert_eq!(m.sgd.len(), 2);
    for (r, b) in m.sgd.iter().zip([2usize, 8]) {
        assert_eq!(r.arm, ShrinkArm::Sgd { lr: 0.05, batch: b });
        let bf = b as f64;
        assert_eq!(r.noise_scale, 0.05 / bf * (n - bf) / (n - 1.0));
        // One predicted e-fold of γ = (η²/(2b))((n−b)/(n−1))E[r²], clamped to 50..=200 steps.
        let gamma = 0.05 * 0.05 / (2.0 * bf) * (n - bf) / (n - 1.0) * m.mean_sq_residual;
        assert_eq!(r.steps, ((1.0 / gamma).ceil() as usize).clamp(50, 200));
        assert_eq!(*r.time.last().unwrap(), 0.05 * r.steps as f64);
    }
    assert_eq!(m.gd.arm, ShrinkArm::Gd { lr: 0.05 });
    assert_eq!(m.gd.steps, 100);
    // Weight decay wd on top of GD: the irrelevant weights shrink faster than under GD alone.
    assert!(m.gd_weight_decay.rate_irrelevant > m.gd.rate_irrelevant);
    assert!(matches!(
        shrink_rates(&ShrinkRateConfig {
            lrs: vec![-1.0],
            ..tiny()
        }),
        Err(imreg_sgd::reg_error::RegError::Invalid { field: "lrs", .. })
    ));
}
