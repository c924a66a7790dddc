//! Lanczos top-1 (20 steps, full reorthogonalization) against 20 bare HVPs and against the 20 products of the
//! prepared operator (`Objective::hessian_at`) on the medium MLP
//! (784-256-256-10, n = 1024, ½ MSE on one-hot targets, as the JAX anchor `lanczos_sharpness.py`), and batch
//! sharpness over 1000 batches of size 32 on the small MLP (64-128-128-10, n = 512); and Lanczos top-1 with
//! 20 HVPs on the benchmark anchors' CNNs with cross-entropy (the problems of imreg-objective's CNN bench), to
//! be read against 20 × its `hvp_prepared` row of the same sitting.
use criterion::{criterion_group, criterion_main, Criterion};
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{rng, Batch, LossKind, Objective};
use imreg_spectra::{
    batch_sharpness, lanczos, BatchExpectation, HessianOperator, LanczosOptions, LinearOperator,
    MonteCarloOptions,
};
use ndarray::Array2;
use std::hint::black_box;

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

fn mlp(widths: Vec<usize>, n: usize) -> (Mlp, Vec<f64>) {
    let d = widths[0];
    let c = *widths.last().unwrap();
    let spec = MlpSpec {
        widths,
        activation: Activation::Relu,
        bias: true,
        loss: LossKind::Mse { half: true },
    };
    let x = Array2::from_shape_vec((n, d), rng::normal_vec(&mut rng::stream(1, 1), n * d)).unwrap();
    let labels = (0..n).map(|i| (i * 7 + 3) % c).collect();
    let m = Mlp::classification(spec, x, labels).unwrap();
    let theta = m.init_params(2, 1.0);
    (m, theta)
}

fn lanczos_vs_hvps(c: &mut Criterion) {
    // as the `imreg` binary does: keep the tape's large buffers in the heap (imreg_ad::alloc)
    imreg_objective::reuse_large_buffers();
    let (m, theta) = mlp(vec![784, 256, 256, 10], 1024);
    let p = m.dim();
    let v: Vec<f64> = rng::normal_vec(&mut rng::stream(3, 0), p);
    let mut g = c.benchmark_group("mlp_784_256_256_10_n1024");
    g.sample_size(10);
    g.bench_function("hvp_x20", |b| {
        let mut out = vec![0.0; p];
        b.iter(|| {
            for _ in 0..20 {
                m.hvp(&theta, Batch::Full, black_box(&v), &mut out).unwrap();
            }
            black_box(out[0])
        })
    });
    // The operator Lanczos applies: the Hessian prepared once at θ (one primal pass), then 20 products.
    g.bench_function("hessian_at_hvp_x20", |b| {
        let mut out = vec![0.0; p];
        b.iter(|| {
            let h = m.hessian_at(&theta, Batch::Full).unwrap();
            for _ in 0..20 {
                h.hvp(black_box(&v), &mut out).unwrap();
            }
            black_box(out[0])
        })
    });
    g.bench_function("lanczos_top1_m20", |b| {
        // tol 0: exactly 20 steps, as the JAX anchor's lanczos_m20
        let opts = LanczosOptions {
            max_iter: 20,
            tol: 0.0,
            ritz_vectors: false,
            ..Default::default()
        };
        // The operator is built inside the loop: its one primal pass is part of the cost.
        b.iter(|| {
            let h = HessianOperator::new(&m, &theta, Batch::Full).unwrap();
            black_box(lanczos(&h, &opts).unwrap().max())
        })
    });
    g.finish();
}

// The problems of imreg-objective's CNN bench.
#[path = "../../imreg-objective/benches/support/anchor_cnn.rs"]
mod anchor_cnn;

/// Lanczos top-1, exactly 20 steps with full reorthogonalization, the operator (one primal pass) built inside
/// the timed loop: the anchors' `lanczos_m20` row (the start vector differs: Lanczos' own seeded one); and the
/// same operator's 20 bare products (`hessian_at_hvp_x20`), so that the Lanczos overhead is read in one binary.
fn cnn_lanczos(c: &mut Criterion) {
    imreg_objective::reuse_large_buffers();
    let opts = LanczosOptions {
        max_iter: 20,
        tol: 0.0,
        ritz_vectors: false,
        ..Default::default()
    };
    for (model, n) in anchor_cnn::MODELS {
        let problem = anchor_cnn::problem(model, n, true);
        let (m, theta) = (&problem.objective, &problem.theta);
        let mut g = c.benchmark_group(format!("cnn/{model}/ce"));
        g.sample_size(10);
        g.bench_function("lanczos_top1_m20", |b| {
            b.iter(|| {
                let h = HessianOperator::new(m, theta, Batch::Full).unwrap();
                black_box(lanczos(&h, &opts).unwrap().max())
            })
        });
        // Its price in the same binary: the same operator built once per iteration, then 20 bare products
        // (the Lanczos overhead is the ratio of the two rows).
        g.bench_function("hessian_at_hvp_x20", |b| {
            let mut out = vec![0.0; m.dim()];
            b.iter(|| {
                let h = HessianOperator::new(m, theta, Batch::Full).unwrap();
                for _ in 0..20 {
                    h.apply(black_box(&problem.v), &mut out).unwrap();
                }
                black_box(out[0])
            })
        });
        g.finish();
    }
}

fn batch_sharpness_1000(c: &mut Criterion) {
    let (m, theta) = mlp(vec![64, 128, 128, 10], 512);
    let mut g = c.benchmark_group("mlp_64_128_128_10_n512");
    g.sample_size(10);
    g.bench_function("batch_sharpness_1000x32", |b| {
        let mc = MonteCarloOptions {
            min_batches: 1000,
            max_batches: 1000,
            rel_se_tol: 0.0,
            round: 100,
            seed: 0,
        };
        b.iter(|| {
            black_box(
                batch_sharpness(&m, &theta, Batch::Full, 32, &BatchExpectation::MonteCarlo(mc)).unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, lanczos_vs_hvps, batch_sharpness_1000, cnn_lanczos);
criterion_main!(benches);
