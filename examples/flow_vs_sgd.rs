//! A modified flow against exact SGD expectations (Smith et al., 2021): one epoch of SGD with random
//! reshuffling, averaged *exactly* over every ordered partition of the N examples, lands within O(ε³) of the
//! flow on `C + (ε/4)‖∇C‖² + ((N−B)/(N−1))(ε/4B)Γ` at time mε, but only within O(ε²) of gradient flow on `C`.
//! The orders are read off the fitted log-log slopes of the distances against ε.
//!
//! `cargo run --release --example flow_vs_sgd`
use imreg::check::loglog_slope;
use imreg::flow::dop853::Dop853Options;
use imreg::flow::field::{integrate_field, VectorField};
use imreg::flow::flows::{GradientFlow, PartitionAveragedSgdFlow};
use imreg::objective::models::LogCoshQuartic;
use imreg::objective::{Partition, Remainder};
use imreg::sgd::expectation::{exact_mean, Averaging, ExactOptions};

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
}

fn flow_at(field: &dyn VectorField, w0: &[f64], t: f64) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let tight = Dop853Options::with_tol(1e-13, 1e-15);
    Ok(integrate_field(field, 0.0, w0, t, &tight)?.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // N = 6 examples of a log-cosh + quartic loss in 2 parameters, batches of B = 2 (m = 3 steps per epoch)
    let (n, b) = (6, 2);
    let obj = LogCoshQuartic::random(n, 2, 7)?;
    let part = Partition::consecutive(n, b, Remainder::Error)?;
    let m = part.m() as f64;
    let w0 = [0.6, -0.4];
    let (mut steps, mut to_gf, mut to_modified) = (vec![], vec![], vec![]);
    println!(
        "{:>10} {:>14} {:>14} {:>10}",
        "ε", "|E[θ]−GF|", "|E[θ]−C_SGD|", "orders"
    );
    for k in 0..5 {
        let eps = 0.05 * 0.5f64.powi(k);
        let sgd = exact_mean(
            &obj,
            &part,
            &w0,
            eps,
            1,
            Averaging::Partitions,
            &ExactOptions::default(),
        )?;
        let gf = flow_at(&GradientFlow::new(&obj), &w0, m * eps)?;
        let modified = flow_at(&PartitionAveragedSgdFlow::new(&obj, eps, b)?, &w0, m * eps)?;
        steps.push(eps);
        to_gf.push(distance(&sgd.mean, &gf));
        to_modified.push(distance(&sgd.mean, &modified));
        println!(
            "{eps:>10.5} {:>14.3e} {:>14.3e} {:>10}",
            to_gf[k as usize], to_modified[k as usize], sgd.sequences
        );
    }
    let gf = loglog_slope(&steps, &to_gf)?;
    let modified = loglog_slope(&steps, &to_modified)?;
    println!("fitted order vs gradient flow: {:.3} (theory 2)", gf.slope);
    println!(
        "fitted order vs the modified flow: {:.3} (theory 3)",
        modified.slope
    );
    Ok(())
}
