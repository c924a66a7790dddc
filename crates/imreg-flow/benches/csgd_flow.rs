//! The flow on C_SGD = C + (ε/4m) Σ_k ‖∇Ĉ_k‖² for a small MLP, integrated by our DOP853 to rtol 1e-10, and the
//! cost of one right-hand side against its theoretical price of m batch gradients + m batch HVPs
//! (`∇C_SGD = g + (ε/2m) Σ_k Ĥ_k ĝ_k`).
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use imreg_flow::dop853::Dop853Options;
use imreg_flow::field::{integrate_field, VectorField};
use imreg_flow::flows::SgdFlow;
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{Batch, LossKind, Objective};
use imreg_objective::{Partition, Remainder};
use ndarray::Array2;

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

const N: usize = 64;
const B: usize = 8;
const EPS: f64 = 0.05;

fn model() -> (Mlp, Vec<f64>) {
    let x = Array2::from_shape_fn((N, 10), |(i, j)| ((i * 7 + 3 * j) as f64 * 0.37).sin());
    let y = Array2::from_shape_fn((N, 1), |(i, _)| x.row(i).sum().sin());
    let spec = MlpSpec {
        widths: vec![10, 32, 32, 1],
        activation: Activation::Tanh,
        bias: true,
        loss: LossKind::Mse { half: true },
    };
    let m = Mlp::regression(spec, x, y).expect("valid model");
    let theta = m.init_params(0, 1.0);
    (m, theta)
}

fn bench(c: &mut Criterion) {
    // as the `imreg` binary does: keep the tape's large buffers in the heap (imreg_ad::alloc)
    imreg_objective::reuse_large_buffers();
    let (m, theta) = model();
    let partition = Partition::consecutive(N, B, Remainder::Error).expect("B divides N");
    let batches: Vec<Vec<usize>> = (0..N / B).map(|k| (k * B..(k + 1) * B).collect()).collect();
    let flow = SgdFlow::new(&m, partition, EPS).expect("valid flow");
    let p = m.dim();
    let opts = Dop853Options {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    let t_end = (N / B) as f64 * EPS;
    let (_, report) = integrate_field(&flow, 0.0, &theta, t_end, &opts).expect("flow integrates");
    eprintln!(
        "C_SGD flow, mlp 10-32-32-1, N = {N}, B = {B} (m = {}), t = mε = {t_end}: {} accepted, {} rejected steps, {} RHS evaluations",
        N / B,
        report.accepted,
        report.rejected,
        report.evaluations
    );
    let mut g = c.benchmark_group("csgd_flow_mlp_10_32_32_1");
    g.bench_function("rhs", |b| {
        let mut out = vec![0.0; p];
        b.iter(|| flow.eval(0.0, black_box(&theta), &mut out).expect("rhs"))
    });
    g.bench_function("m_grads_plus_m_hvps", |b| {
        let (mut gk, mut hk) = (vec![0.0; p], vec![0.0; p]);
        b.iter(|| {
            for batch in &batches {
                m.loss_grad(&theta, Batch::Indices(batch), &mut gk).expect("grad");
                m.hvp(&theta, Batch::Indices(batch), &gk, &mut hk).expect("hvp");
            }
            black_box(hk[0])
        })
    });
    g.sample_size(10);
    g.bench_function("integrate_to_m_eps_rtol_1e-10", |b| {
        b.iter(|| integrate_field(&flow, 0.0, black_box(&theta), t_end, &opts).expect("flow integrates"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
