//! Loss, gradient, HVP (per call and prepared), per-example gradients and a 20-HVP Lanczos budget of the
//! benchmark anchors' CNN presets (`cnn-mnist` n = 256, `cnn-cifar` n = 256, `resnet-small` n = 128), f64,
//! with the anchors' losses: `ce` (mean softmax cross-entropy) and `mse` (`1/(2n) Σ ‖f(x_i) − y_i‖²` on one-hot
//! targets, [`StandardLoss::HalfMse`]).
//!
//! The anchors' problem is reproduced in kind: inputs `N(0, 1)`, labels uniform in `0..10`, weights
//! `N(0, 1)·√(2/fan_in)` in parameter order (He scaling), zero biases, a direction `v ~ N(0, I)`, all from
//! seeded ChaCha streams (the values differ from NumPy's, the shapes, scales and hence the ReLU patterns'
//! statistics do not). Bench ids `cnn/{model}/{loss}/{op}` map one to one to the anchors' rows:
//!
//! | op | anchor row |
//! |---|---|
//! | `fwd` | fwd (loss) |
//! | `grad` | grad |
//! | `hvp` | HVP per call (PyTorch double backward / `torch.func` fwd-over-rev, JAX `jit(jvp(grad))`) |
//! | `hvp_prepared` | HVP at fixed θ (`hessian_at`, the primal pass hoisted: JAX's in-loop row) |
//! | `per_example_grads` | per-example gradients of the first 64 examples |
//! | `lanczos20` | Lanczos top-1 with 20 HVPs: 20 prepared HVPs plus preparing the Hessian (imreg-spectra is not a dependency of this crate; its re-orthogonalisation is O(20²·P), negligible next to the HVPs) |
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use imreg_objective::models::{preset_default, Network, NetworkObjective, SpecNetwork, StandardLoss};
use imreg_objective::{Batch, Objective};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::time::Duration;

/// `(preset, n)` as in the anchors.
const MODELS: [(&str, usize); 3] = [("cnn-mnist", 256), ("cnn-cifar", 256), ("resnet-small", 128)];
/// Per-example gradients are taken on the first 64 examples.
const PERGRAD_N: usize = 64;
/// HVPs of the Lanczos row.
const LANCZOS_STEPS: usize = 20;

fn normal(rng: &mut ChaCha8Rng, len: usize) -> Vec<f64> {
    (0..len).map(|_| rng.sample(StandardNormal)).collect()
}

fn objective(model: &str, n: usize, ce: bool) -> NetworkObjective<SpecNetwork> {
    let net = SpecNetwork::new(preset_default(model).unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = Array2::from_shape_vec((n, net.input_dim()), normal(&mut rng, n * net.input_dim())).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let labels = (0..n).map(|_| rng.random_range(0..net.output_dim())).collect();
    let loss = if ce {
        StandardLoss::CrossEntropy
    } else {
        StandardLoss::HalfMse
    };
    NetworkObjective::classification(net, loss, x, labels).unwrap()
}

/// He-scaled weights in parameter order, zero biases (as the anchors).
fn he_params(net: &SpecNetwork) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut theta = Vec::new();
    for p in net.parameters() {
        if p.shape.len() >= 2 {
            let fan_in: usize = p.shape[1..].iter().product();
            let scale = (2.0 / fan_in as f64).sqrt();
            theta.extend(normal(&mut rng, p.len()).into_iter().map(|w| w * scale));
        } else {
            theta.extend(std::iter::repeat_n(0.0, p.len()));
        }
    }
    theta
}

fn bench(c: &mut Criterion) {
    // as the `imreg` binary does: keep the tape's large buffers in the heap (imreg_ad::alloc)
    imreg_objective::reuse_large_buffers();
    for (model, n) in MODELS {
        for ce in [true, false] {
            let m = objective(model, n, ce);
            let theta = he_params(m.network());
            let v = normal(&mut ChaCha8Rng::seed_from_u64(7), m.dim());
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
            let h = m.hessian_at(&theta, Batch::Full).unwrap();
            group.bench_function("hvp_prepared", |b| b.iter(|| h.hvp(&v, &mut hv).unwrap()));
            drop(h);
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
            group.bench_function(BenchmarkId::new("lanczos", LANCZOS_STEPS), |b| {
                b.iter(|| {
                    let h = m.hessian_at(&theta, Batch::Full).unwrap();
                    let mut q = v.clone();
                    for _ in 0..LANCZOS_STEPS {
                        h.hvp(&q, &mut hv).unwrap();
                        let norm = hv.iter().map(|x| x * x).sum::<f64>().sqrt();
                        q.iter_mut().zip(&hv).for_each(|(q, h)| *q = h / norm);
                    }
                    q[0]
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
