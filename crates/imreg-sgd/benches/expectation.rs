//! Exact expectations over batch orders and permutation Monte Carlo on linear regression (½ MSE), d = 10,
//! B = 4: N = 32 (m = 8, 8! = 40 320 orders) and N = 40 (m = 10, 10! = 3 628 800 orders), on a 2-thread pool.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imreg_objective::models::PerExampleQuadratic;
use imreg_objective::{Partition, Remainder};
use imreg_sgd::affine::{AffineAlgorithm, AffineEpoch};
use imreg_sgd::expectation::McOptions;

fn epoch(n: usize) -> AffineEpoch {
    let obj = PerExampleQuadratic::random_least_squares(n, 10, 1).expect("problem");
    let part = Partition::consecutive(n, 4, Remainder::Error).expect("partition");
    AffineEpoch::from_objective(&obj, &part, 0.05).expect("affine")
}

fn bench(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool");
    let w0 = vec![0.1; 10];
    let e8 = epoch(32);
    let e10 = epoch(40);
    let mut g = c.benchmark_group("exact_orders");
    g.bench_function("prefix_tree_8!_d10", |b| {
        b.iter(|| {
            pool.install(|| {
                e8.mean_over_orders(&w0, 1, AffineAlgorithm::PrefixTree)
                    .expect("mean")
            })
        })
    });
    g.bench_function("subset_dp_8!_d10", |b| {
        b.iter(|| {
            e8.mean_over_orders(&w0, 1, AffineAlgorithm::SubsetDp)
                .expect("mean")
        })
    });
    g.bench_function("subset_dp_10!_d10", |b| {
        b.iter(|| {
            e10.mean_over_orders(&w0, 1, AffineAlgorithm::SubsetDp)
                .expect("mean")
        })
    });
    g.sample_size(10);
    g.bench_function("prefix_tree_10!_d10", |b| {
        b.iter(|| {
            pool.install(|| {
                e10.mean_over_orders(&w0, 1, AffineAlgorithm::PrefixTree)
                    .expect("mean")
            })
        })
    });
    g.finish();

    let samples = 400_000;
    let mut g = c.benchmark_group("monte_carlo_orders");
    g.throughput(Throughput::Elements(samples as u64));
    g.sample_size(10);
    let opts = McOptions {
        samples,
        seed: 1,
        ..Default::default()
    };
    g.bench_function("permutations_m8_d10", |b| {
        b.iter(|| pool.install(|| e8.monte_carlo_orders(&w0, 1, &opts).expect("mc")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
