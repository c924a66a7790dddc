//! Write a theorem check of your own and run it next to imreg's built-in checks.
//!
//! The claim: gradient descent with step η, run for T/η steps, ends O(η) away from the gradient flow at time
//! T (Euler's global error), so the fitted log-log slope of the distance against η is 1.
//!
//! ```text
//! cargo run --release --example register_check -- verify --only user --json
//! cargo run --release --example register_check -- reproduce --quick --out /tmp/mine
//! ```
use imreg::check::{
    geometric_steps, order_of_accuracy, Check, CheckContext, CheckError, OrCheckError, Outcome,
};
use imreg::flow::{dop853::Dop853Options, field::integrate_field, flows::GradientFlow};
use imreg::objective::{Batch, Objective, Quadratic};
use std::process::ExitCode;

const ID: &str = "user.gd-global-order";

/// ‖θ_GD(T/η steps) − θ_GF(T)‖ over a geometric sequence of η, with its fitted slope against the expected 1.
fn gd_global_order(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    // A small least-squares problem: 6 random positive semi-definite quadratics in 4 dimensions.
    let obj = Quadratic::random(4, 6, 7).or_check()?;
    let theta0 = [1.0, -0.5, 0.25, 2.0];
    let t_end = 1.0;
    // The flow by DOP853 at rtol 1e-13: its error is far below the smallest GD error measured.
    let reference = Dop853Options::with_tol(1e-13, 1e-15);
    let (flow, _) = integrate_field(&GradientFlow::new(&obj), 0.0, &theta0, t_end, &reference).or_check()?;
    let etas = geometric_steps(0.1, 0.5, if ctx.quick { 4 } else { 6 })?;
    let study = order_of_accuracy(&etas, |eta| {
        let mut theta = theta0.to_vec();
        for _ in 0..(t_end / eta).round() as usize {
            let g = obj.grad(&theta, Batch::Full).or_check()?;
            theta.iter_mut().zip(&g).for_each(|(t, g)| *t -= eta * g);
        }
        Ok(theta
            .iter()
            .zip(&flow)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt())
    })?;
    // The figure (SVG, PNG and the raw series as CSV) is written only when `reproduce` asks for figures.
    let title = "GD after T/η steps vs gradient flow at T = 1";
    let figures = ctx.save_order_figure(ID, "gd_vs_flow", title, "step size η", &[("GD", &study)])?;
    Ok(study.outcome("‖θ_GD − θ_GF(T)‖", 1.0, 0.15).with_figures(figures))
}

fn main() -> ExitCode {
    imreg::cli::main_with(vec![Check {
        id: ID,
        claim: "GD run for T/η steps is O(η) from gradient flow at time T (global error slope 1 in η)",
        run: gd_global_order,
    }])
}
