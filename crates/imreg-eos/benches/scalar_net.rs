//! Scalar-net benchmarks: 10⁶ GD steps (target < 20 ms) and a 200-point η sweep to convergence (< 1 s).
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use imreg_eos::{run_gd, scalar_gd_steps, sweep_eta, RunOptions, ScalarNetState};

fn bench(c: &mut Criterion) {
    c.bench_function("scalar_gd_1e6_raw_steps", |b| {
        b.iter(|| {
            scalar_gd_steps(
                black_box(1.5),
                black_box(0.01),
                black_box(1.0),
                black_box(1.0),
                1_000_000,
            )
        })
    });
    // The full loop with outcome bookkeeping (P_∞ product, max η|ε|, divergence and convergence tests):
    // η = 1/|Φ| never converges, so exactly 10⁶ steps run.
    let net = ScalarNetState::scalar(1.5, 0.01, 1.0).unwrap();
    let opts = RunOptions {
        max_steps: 1_000_000,
        ..RunOptions::default()
    };
    c.bench_function("scalar_gd_1e6_steps_run_gd", |b| {
        b.iter(|| run_gd(black_box(&net), black_box(1.0), &opts))
    });
    // 200 step sizes in (0, 1/|Φ|), each run to |ε| < 1e-12, rayon-parallel.
    let etas: Vec<f64> = (1..=200).map(|i| 0.995 * i as f64 / 200.0).collect();
    c.bench_function("scalar_eta_sweep_200_to_convergence", |b| {
        b.iter(|| sweep_eta(black_box(&net), black_box(&etas), &RunOptions::default()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
