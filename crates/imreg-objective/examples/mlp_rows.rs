//! The rows of the MLP bench (`benches/mlp.rs`: the same models, data and points), each called a given number
//! of times, for counting instructions rather than timing them:
//!
//! ```text
//! cargo run --release -p imreg-objective --example mlp_rows -- SIZE LOSS ROW CALLS
//! ```
//!
//! with `SIZE` one of `tiny`, `small`, `medium`; `LOSS` `mse` or `ce`; `ROW` `fwd`, `grad`, `hvp`,
//! `hvp_prepared` or `per_example`; after one warm-up call it makes `CALLS` calls. The per-call count of a row
//! is the difference of two runs under `valgrind --tool=callgrind`, one with `CALLS` calls and one with none,
//! divided by `CALLS` (`scripts/instructions_ab.sh`); callgrind counts instructions, so the figure is the same
//! on a loaded machine (docs/performance.md, "Instructions per call").
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{Batch, LossKind, Objective};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

/// The bench's model of these widths and `n` examples (its `model`).
fn model(mut widths: Vec<usize>, n: usize, ce: bool) -> Mlp {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Array2::from_shape_fn((n, widths[0]), |_| rng.random::<f64>() * 2.0 - 1.0);
    let spec = |widths, loss| MlpSpec {
        widths,
        activation: Activation::Tanh,
        bias: true,
        loss,
    };
    let classes = |widths: &mut Vec<usize>| {
        let c = widths.last_mut().expect("widths");
        *c = (*c).max(2);
        (0..n).map(|i| i % *c).collect()
    };
    if ce {
        let labels = classes(&mut widths);
        Mlp::classification(spec(widths, LossKind::CrossEntropy), x, labels).expect("model")
    } else if widths.last() == Some(&1) {
        let y = Array2::from_shape_fn((n, 1), |(i, _)| x.row(i).sum().sin());
        Mlp::regression(spec(widths, LossKind::Mse { half: true }), x, y).expect("model")
    } else {
        let labels = classes(&mut widths);
        Mlp::classification(spec(widths, LossKind::Mse { half: true }), x, labels).expect("model")
    }
}

/// `calls` calls of `row`; returns a number that depends on every call's result.
fn calls(m: &Mlp, row: &str, calls: usize, theta: &[f64], v: &[f64]) -> f64 {
    let mut out = vec![0.0; m.dim()];
    let mut acc = 0.0;
    let prepared = (row == "hvp_prepared").then(|| m.hessian_at(theta, Batch::Full).expect("prepared"));
    for _ in 0..calls {
        acc += match (row, &prepared) {
            ("fwd", _) => m.loss(theta, Batch::Full).expect("fwd"),
            ("grad", _) => m.loss_grad(theta, Batch::Full, &mut out).expect("grad"),
            ("hvp", _) => {
                m.hvp(theta, Batch::Full, v, &mut out).expect("hvp");
                out[0]
            }
            ("hvp_prepared", Some(h)) => {
                h.hvp(v, &mut out).expect("prepared hvp");
                out[0]
            }
            _ => {
                let mut first = 0.0;
                m.per_example_grads(theta, Batch::Full, 128, &mut |_, rows| {
                    first += rows[(0, 0)];
                    Ok(())
                })
                .expect("per-example gradients");
                first
            }
        };
    }
    acc
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [size, loss, row, n_calls] = args.as_slice() else {
        eprintln!("usage: mlp_rows SIZE LOSS ROW CALLS");
        std::process::exit(2);
    };
    let (widths, n) = match size.as_str() {
        "tiny" => (vec![10, 32, 32, 1], 64),
        "small" => (vec![64, 128, 128, 10], 512),
        "medium" => (vec![784, 256, 256, 10], 1024),
        _ => {
            eprintln!("SIZE is tiny, small or medium, not {size:?}");
            std::process::exit(2);
        }
    };
    let Ok(n_calls) = n_calls.parse::<usize>() else {
        eprintln!("CALLS is a count, not {n_calls:?}");
        std::process::exit(2);
    };
    // as the bench does
    imreg_objective::reuse_large_buffers();
    let m = model(widths, n, loss == "ce");
    let theta = m.init_params(1, 1.0);
    let v = m.init_params(2, 1.0);
    calls(&m, row, 1, &theta, &v);
    println!("{}", calls(&m, row, n_calls, &theta, &v));
}
