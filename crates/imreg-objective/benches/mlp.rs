//! Forward, gradient, HVP and per-example gradients of tanh MLPs (MSE with ½ on one-hot targets, and
//! cross-entropy), f64, at the three sizes of `shared/anchors/` (tiny 10-32-32-1 n=64, small 64-128-128-10
//! n=512, medium 784-256-256-10 n=1024). Throughput is reported in matmul GFLOP/s with the anchors' FLOP
//! model: fwd = F, grad = 2F + R, HVP = 3F + 5R (F: forward matmul FLOPs, R: F minus the first layer).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imreg_objective::{Batch, Objective};

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

#[path = "support/mlp_models.rs"]
mod mlp_models;
use mlp_models::{model, sizes};

fn flops(widths: &[usize], n: usize) -> (u64, u64) {
    let layer: Vec<u64> = widths.windows(2).map(|w| 2 * (n * w[0] * w[1]) as u64).collect();
    let f: u64 = layer.iter().sum();
    (f, f - layer[0])
}

fn bench(c: &mut Criterion) {
    // as the `imreg` binary does: keep the tape's large buffers in the heap (imreg_ad::alloc)
    imreg_objective::reuse_large_buffers();
    for s in sizes() {
        for ce in [false, true] {
            let m = model(&s, ce);
            let theta = m.init_params(1, 1.0);
            let v: Vec<f64> = m.init_params(2, 1.0);
            let (f, r) = flops(&m.spec().widths, s.n);
            let loss = if ce { "ce" } else { "mse" };
            let mut group = c.benchmark_group(format!("mlp/{}/{}", s.name, loss));
            group.sample_size(if s.name == "medium" { 20 } else { 50 });
            group.throughput(Throughput::Elements(f));
            group.bench_function("fwd", |b| b.iter(|| m.loss(&theta, Batch::Full).unwrap()));
            let mut g = vec![0.0; m.dim()];
            group.throughput(Throughput::Elements(2 * f + r));
            group.bench_function("grad", |b| {
                b.iter(|| m.loss_grad(&theta, Batch::Full, &mut g).unwrap())
            });
            let mut hv = vec![0.0; m.dim()];
            group.throughput(Throughput::Elements(3 * f + 5 * r));
            group.bench_function("hvp", |b| {
                b.iter(|| m.hvp(&theta, Batch::Full, &v, &mut hv).unwrap())
            });
            // θ fixed, many directions: the Hessian prepared once (its primal forward pass hoisted), as XLA
            // hoists the loop-invariant primal work out of JAX's in-loop `fori_loop` of HVPs at fixed params.
            let h = m.hessian_at(&theta, Batch::Full).unwrap();
            group.throughput(Throughput::Elements(2 * f + 5 * r));
            group.bench_function("hvp_prepared", |b| b.iter(|| h.hvp(&v, &mut hv).unwrap()));
            drop(h);
            if s.name != "medium" {
                group.throughput(Throughput::Elements(2 * f + r));
                group.bench_function("per_example_grads", |b| {
                    b.iter(|| {
                        let mut acc = 0.0;
                        m.per_example_grads(&theta, Batch::Full, 128, &mut |_, rows| {
                            acc += rows[(0, 0)];
                            Ok(())
                        })
                        .unwrap();
                        acc
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
