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
use imreg_objective::models::Mlp;
use imreg_objective::{Batch, Objective};

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

#[path = "../benches/support/mlp_models.rs"]
mod mlp_models;

/// `calls` calls of `row`; returns a number that depends on every call's result. The prepared Hessian is
/// prepared even for no calls, so that a difference of two runs counts the products alone.
fn calls(m: &Mlp, row: &str, calls: usize, theta: &[f64], v: &[f64]) -> f64 {
    let mut out = vec![0.0; m.dim()];
    let mut acc = 0.0;
    let prepared = (row == "hvp_prepared").then(|| m.hessian_at(theta, Batch::Full).expect("prepared"));
    for _ in 0..calls {
        acc += match row {
            "fwd" => m.loss(theta, Batch::Full).expect("fwd"),
            "grad" => m.loss_grad(theta, Batch::Full, &mut out).expect("grad"),
            "hvp" => {
                m.hvp(theta, Batch::Full, v, &mut out).expect("hvp");
                out[0]
            }
            "hvp_prepared" => {
                let h = prepared.as_ref().expect("prepared for this row");
                h.hvp(v, &mut out).expect("prepared hvp");
                out[0]
            }
            // "per_example" (`main` admits the five rows only)
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
    let Some(size) = mlp_models::sizes().into_iter().find(|s| s.name == size) else {
        eprintln!("SIZE is tiny, small or medium, not {size:?}");
        std::process::exit(2);
    };
    if !["mse", "ce"].contains(&loss.as_str()) {
        eprintln!("LOSS is mse or ce, not {loss:?}");
        std::process::exit(2);
    }
    if !["fwd", "grad", "hvp", "hvp_prepared", "per_example"].contains(&row.as_str()) {
        eprintln!("ROW is fwd, grad, hvp, hvp_prepared or per_example, not {row:?}");
        std::process::exit(2);
    }
    let Ok(n_calls) = n_calls.parse::<usize>() else {
        eprintln!("CALLS is a count, not {n_calls:?}");
        std::process::exit(2);
    };
    // as the bench does
    imreg_objective::reuse_large_buffers();
    let m = mlp_models::model(&size, loss == "ce");
    let theta = m.init_params(1, 1.0);
    let v = m.init_params(2, 1.0);
    calls(&m, row, 1, &theta, &v);
    println!("{}", calls(&m, row, n_calls, &theta, &v));
}
