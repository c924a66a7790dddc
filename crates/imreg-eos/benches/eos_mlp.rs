//! One edge-of-stability run: tanh MLP 64-100-100-10 (½-MSE) on 1 000 digits, 5 000 full-batch GD steps,
//! sharpness every 20 steps by 20 warm-started Lanczos iterations (no gradient-flow comparison).
//! `cargo bench -p imreg-eos --bench eos_mlp` (target < 60 s on 2 cores).
use criterion::{criterion_group, criterion_main, Criterion};
use imreg_eos::{edge_of_stability, DigitsMlp, EosOptions};
use std::hint::black_box;

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

fn eos_run(c: &mut Criterion) {
    // as the `imreg` binary does: keep the tape's large buffers in the heap (imreg_ad::alloc)
    imreg_objective::reuse_large_buffers();
    let (mlp, theta0) = DigitsMlp::cohen(1000).build().expect("digits MLP");
    let opts = EosOptions {
        lr: 0.2,
        steps: 5000,
        every: 20,
        lanczos_iters: 20,
        lanczos_tol: 0.0,
        gradient_flow: None,
        ..Default::default()
    };
    let mut g = c.benchmark_group("eos_mlp");
    g.sample_size(10);
    g.bench_function("gd_5000_steps_sharpness_every_20", |b| {
        b.iter(|| edge_of_stability(black_box(&mlp), black_box(&theta0), &opts).expect("run"))
    });
    g.finish();
}

criterion_group!(benches, eos_run);
criterion_main!(benches);
