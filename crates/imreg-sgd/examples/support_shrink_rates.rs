//! The support-learning shrink rates on a ReLU network (docs/support.md §Shrink rate on a ReLU network): the
//! settings of `ShrinkRateConfig::default()`, fixed before any run, and the rates as measured. A reported
//! result, not a pass/fail check. `cargo run --release -p imreg-sgd --example support_shrink_rates`
use imreg_sgd::support::{shrink_rates, ShrinkArm, ShrinkRateConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = ShrinkRateConfig::default();
    let start = std::time::Instant::now();
    let m = shrink_rates(&cfg)?;
    println!(
        "ReLU net [{}, {:?}, 1], n = {}, σ = {}: after GD pre-training E[r²] = {:.4}, ‖W₁[:, r:]‖ = {:.4}",
        cfg.d, cfg.hidden, cfg.n, cfg.sigma, m.mean_sq_residual, m.start_norm
    );
    println!("| arm | (η/b)(n−b)/(n−1) | steps | irrelevant rate | support rate |");
    println!("|---|---|---|---|---|");
    for r in m.sgd.iter().chain([&m.gd, &m.gd_weight_decay]) {
        let arm = match r.arm {
            ShrinkArm::Sgd { lr, batch } => format!("SGD η = {lr}, b = {batch}"),
            ShrinkArm::Gd { lr } => format!("GD η = {lr}"),
            ShrinkArm::GdWeightDecay { lr, weight_decay } => format!("GD η = {lr} + wd {weight_decay}"),
        };
        println!(
            "| {arm} | {:.3e} | {} | {:.3e} | {:.3e} |",
            r.noise_scale, r.steps, r.rate_irrelevant, r.rate_relevant
        );
    }
    println!(
        "log-log slope of the SGD rate vs (η/b)(n−b)/(n−1): {} (NaN: some rate ≤ 0); wall time {:.1} s",
        m.slope,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
