//! Performance targets of the explicit regularizers and the support experiment.
//! * `gn_step/*`: one training step on a 1280-example batch of the digits MLP (64-32-10, tanh,
//!   cross-entropy): plain SGD vs SGD + the GN penalty over 40 micro-batches of 32 (target ≤ 2.5×).
//! * `support/200k_steps_b32`: 2·10⁵ reshuffled SGD steps of the 15-wide depth-4 linear net, b = 32,
//!   on the paper's 10 000-row linear-target data (target < 20 s).
use criterion::{criterion_group, criterion_main, Criterion};
use imreg_objective::data::digits;
use imreg_objective::data::synthetic::{sparse_support, SupportParams, SupportTarget};
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::LossKind;
use imreg_objective::Objective;
use imreg_objective::Partition;
use imreg_sgd::regularizers::micro_batch::MicroBatchGradNorm;
use imreg_sgd::sampler::Sampler;
use imreg_sgd::support::{train_support, SupportConfig};
use imreg_sgd::train::{train, GradientTransform, Optimizer, TrainOptions};
use imreg_sgd::SgdError;
use std::time::Duration;

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

fn gn_step(c: &mut Criterion) {
    // as the `imreg` binary does: keep the tape's large buffers in the heap (imreg_ad::alloc)
    imreg_objective::reuse_large_buffers();
    let d = digits();
    let spec = MlpSpec {
        widths: vec![64, 32, 10],
        activation: Activation::Tanh,
        bias: true,
        loss: LossKind::CrossEntropy,
    };
    let net = Mlp::classification(spec, d.x.clone(), d.labels.clone()).unwrap();
    let theta0 = net.init_params(0, 1.0);
    let rows: Vec<usize> = (0..1280).collect();
    let batch = || Sampler::FixedPartition {
        partition: Partition::from_batches(vec![rows.clone()], d.labels.len()).unwrap(),
    };
    let plain = Optimizer::sgd(batch());
    let gn = Optimizer {
        transform: GradientTransform {
            penalties: vec![Box::new(
                MicroBatchGradNorm::new(net.objective(), 32, 0.01).unwrap(),
            )],
            reuse_penalty_loss: true,
            ..Default::default()
        },
        ..Optimizer::sgd(batch())
    };
    let one_step = TrainOptions {
        lr: 0.01,
        steps: 1,
        ..Default::default()
    };
    let obj: &dyn Objective = net.objective();
    let mut g = c.benchmark_group("gn_step");
    g.measurement_time(Duration::from_secs(5));
    for (name, method) in [("plain_b1280", &plain), ("gn_40x32_b1280", &gn)] {
        g.bench_function(name, |b| {
            let mut th = theta0.clone();
            b.iter(|| {
                th = train::<_, SgdError>(obj, &th, method, &one_step, &mut [])
                    .unwrap()
                    .theta;
            })
        });
    }
    g.finish();
}

fn support_run(c: &mut Criterion) {
    let data = sparse_support(&SupportParams::paper(SupportTarget::Linear, 0)).unwrap();
    let cfg = SupportConfig {
        record_every: 10_000,
        ..SupportConfig::paper(Some(32), 200_000, 0)
    };
    let mut g = c.benchmark_group("support");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("200k_steps_b32", |b| {
        b.iter(|| train_support(&data, &cfg, None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, gn_step, support_run);
criterion_main!(benches);
