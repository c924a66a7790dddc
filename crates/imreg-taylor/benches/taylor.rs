//! Throughput of the exact-expectation engine, quadrature tensors and online-SGD Monte Carlo.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use imreg_taylor::prelude::*;
use imreg_taylor::simulate::{online_sgd_drift, DriftParams};

fn bench(c: &mut Criterion) {
    let toy = RademacherToy::reference();
    let dist = toy.distribution();
    let sched = Schedule::new(4, 1, 8).expect("valid schedule");
    c.bench_function("exact N=4 B=1 E=2 (9216 runs)", |b| {
        b.iter(|| {
            exact_expectation(
                &toy,
                &dist,
                &[1.0],
                &sched,
                black_box(0.01),
                ExactParams::default(),
            )
        })
    });
    c.bench_function("helix tensors, 40-node quadrature", |b| {
        b.iter(|| {
            population_tensors(
                &Helix,
                &Helix.distribution(),
                Integration::Quadrature { nodes: 40 },
                &[0.1, 0.2, 0.3],
            )
        })
    });
    let p = DriftParams {
        eta: 0.02,
        burn_in: 0,
        steps: 1000,
        trials: 8,
        seed: 1,
    };
    c.bench_function("helix online SGD, 8 × 1000 steps", |b| {
        b.iter(|| online_sgd_drift(&Helix, &Helix.distribution(), &[0.0; 3], black_box(&p)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
