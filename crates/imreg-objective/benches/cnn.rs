//! Loss, gradient, HVP (per call and prepared) and per-example gradients of the benchmark anchors' CNN presets
//! (`cnn-mnist` n = 256, `cnn-cifar` n = 256, `resnet-small` n = 128), f64, with the anchors' losses: `ce`
//! (mean softmax cross-entropy) and `mse` (`1/(2n) Σ ‖f(x_i) − y_i‖²` on one-hot targets); the problems are
//! those of `support/anchor_cnn.rs`. Bench ids `cnn/{model}/{loss}/{op}` map one to one to the anchors' rows:
//!
//! | op | anchor row |
//! |---|---|
//! | `fwd` | fwd (loss) |
//! | `grad` | grad |
//! | `hvp` | HVP per call (PyTorch double backward / `torch.func` fwd-over-rev, JAX `jit(jvp(grad))`) |
//! | `hvp_prepared` | HVP at fixed θ (`hessian_at`, the primal pass hoisted: JAX's in-loop row) |
//! | `per_example_grads/64` | per-example gradients of the first 64 examples (`vmap(grad)`) |
//!
//! The anchors' Lanczos row (top-1 with 20 HVPs) is `cnn/{model}/ce/lanczos_top1_m20` of imreg-spectra's bench
//! (imreg-spectra is not a dependency of this crate).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use imreg_objective::{Batch, Objective};
use std::time::Duration;

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

#[path = "support/anchor_cnn.rs"]
mod anchor_cnn;

/// Per-example gradients are taken on the first 64 examples.
const PERGRAD_N: usize = 64;

fn bench(c: &mut Criterion) {
    // as the `imreg` binary does: keep the tape's large buffers in the heap (imreg_ad::alloc)
    imreg_objective::reuse_large_buffers();
    for (model, n) in anchor_cnn::MODELS {
        for ce in [true, false] {
            let anchor_cnn::Problem {
                objective: m,
                theta,
                v,
            } = anchor_cnn::problem(model, n, ce);
            let loss = if ce { "ce" } else { "mse" };
            let mut group = c.benchmark_group(format!("cnn/{model}/{loss}"));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(5));
            group.bench_function("fwd", |b| b.iter(|| m.loss(&theta, Batch::Full).unwrap()));
            let mut g = vec![0.0; m.dim()];
            group.bench_function("grad", |b| {
                b.iter(|| m.loss_grad(&theta, Batch::Full, &mut g).unwrap())
            });
            let mut hv = vec![0.0; m.dim()];
            group.bench_function("hvp", |b| {
                b.iter(|| m.hvp(&theta, Batch::Full, &v, &mut hv).unwrap())
            });
            // prepared only when the row runs (a `--bench` filter skips the others' preparation)
            let mut prepared = None;
            group.bench_function("hvp_prepared", |b| {
                let h = prepared.get_or_insert_with(|| m.hessian_at(&theta, Batch::Full).unwrap());
                b.iter(|| h.hvp(&v, &mut hv).unwrap())
            });
            drop(prepared);
            let first: Vec<usize> = (0..PERGRAD_N).collect();
            group.bench_function(BenchmarkId::new("per_example_grads", PERGRAD_N), |b| {
                b.iter(|| {
                    let mut acc = 0.0;
                    m.per_example_grads(&theta, Batch::Indices(&first), PERGRAD_N, &mut |_, rows| {
                        acc += rows[(0, 0)];
                        Ok(())
                    })
                    .unwrap();
                    acc
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
