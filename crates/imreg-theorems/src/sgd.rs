//! Theorem checks registered in the `reproduce` / `verify` registry (Smith et al. 2021;
//! docs/theory/modified-flows.md):
//!
//! - `smith.csgd-order`: the exact mean over all `m!` batch orders of one SGD epoch vs the flows at time
//!   `mε`: slopes 2 (gradient flow on C), 3 (C_SGD), 2 (C_GD), for several (N, B) on a non-quadratic model;
//! - `smith.with-replacement`: the exact with-replacement mean (all `m^m` draws) follows C_GD (slope 3), not
//!   C_SGD (slope 2);
//! - `smith.quadratic-reference`: the exact 1-D quadratic (closed-form flows, exact enumeration, quoted values
//!   as a cross-check only);
//! - `smith.finite-population`: `E_{|S|=B}‖ĝ_S‖² = ‖g‖² + (N−B)/(B(N−1))·Γ` by exhaustive enumeration.
use imreg_check::order::{fit_order, geometric_steps, save_order_figure, OrderStudy};
use imreg_check::{Check, CheckContext, CheckError, OrCheckError, Outcome};
use imreg_flow::dop853::Dop853Options;
use imreg_flow::field::{integrate_field, VectorField};
use imreg_flow::flows::{gradient_variance, GradientFlow, ModifiedGdFlow, PartitionAveragedSgdFlow, SgdFlow};
use imreg_objective::models::{LogCoshQuartic, PerExampleQuadratic};
use imreg_objective::{Batch, Objective};
use imreg_objective::{Partition, Remainder};
use imreg_sgd::affine::{AffineAlgorithm, AffineEpoch};
use imreg_sgd::expectation::{exact_mean, Averaging, ExactOptions};
use imreg_spectra::dist;
use nalgebra::{DMatrix, DVector};

/// The checks this crate registers.
pub fn checks() -> Vec<Check> {
    let mut checks = expectation_checks();
    // SGD without replacement, support learning and the explicit regularizers.
    checks.extend(crate::regularizers::regularization_checks());
    checks
}

/// The checks of exact SGD expectations against the modified flows (Smith et al.).
fn expectation_checks() -> Vec<Check> {
    vec![
        Check {
            id: "smith.csgd-order",
            claim: "the mean over all m! batch orders of one SGD epoch matches the flow on C_SGD at time mε to O(m³ε³) (slope 3), gradient flow on C and the C_GD flow only to O(ε²) (slope 2)",
            run: csgd_order,
        },
        Check {
            id: "smith.with-replacement",
            claim: "with i.i.d. (with-replacement) batches the mean epoch iterate follows C_GD (slope 3), not C_SGD (slope 2)",
            run: with_replacement,
        },
        Check {
            id: "smith.quadratic-reference",
            claim: "the exact 1-D quadratic of docs/theory/modified-flows.md: closed-form GF and C_SGD flows, exact E[w_m] by enumeration; errors vs GF shrink as ε², vs C_SGD as ε³",
            run: quadratic_reference,
        },
        Check {
            id: "smith.finite-population",
            claim: "E over all B-subsets of ‖ĝ_S‖² equals ‖∇C‖² + (N−B)/(B(N−1)) Γ exactly",
            run: finite_population,
        },
    ]
}

/// Flow reference: rtol 1e-13 keeps the integration error ≈ 1e-14, far below the smallest error measured.
fn flow_at(field: &dyn VectorField, w0: &[f64], t: f64) -> Result<Vec<f64>, CheckError> {
    Ok(
        (integrate_field(field, 0.0, w0, t, &Dop853Options::with_tol(1e-13, 1e-15)))
            .or_check()?
            .0,
    )
}

/// Errors of the exact mean (over `averaging`) after one epoch vs GF, C_SGD and C_GD flows at `mε`.
fn epoch_vs_flows(
    obj: &dyn Objective,
    part: &Partition,
    w0: &[f64],
    steps: &[f64],
    averaging: Averaging,
) -> std::result::Result<[OrderStudy; 3], CheckError> {
    let m = part.m() as f64;
    let mut errs = [Vec::new(), Vec::new(), Vec::new()];
    for &eps in steps {
        let mean = (exact_mean(obj, part, w0, eps, 1, averaging, &ExactOptions::default()))
            .or_check()?
            .mean;
        let t = m * eps;
        let gf = flow_at(&GradientFlow::new(obj), w0, t)?;
        let sgd = flow_at(&(SgdFlow::new(obj, part.clone(), eps)).or_check()?, w0, t)?;
        let igr = flow_at(&ModifiedGdFlow::new(obj, eps).or_check()?, w0, t)?;
        errs[0].push(dist(&mean, &gf));
        errs[1].push(dist(&mean, &sgd));
        errs[2].push(dist(&mean, &igr));
    }
    let [a, b, c] = errs;
    Ok([
        fit_order(steps, a).or_check()?,
        fit_order(steps, b).or_check()?,
        fit_order(steps, c).or_check()?,
    ])
}

const SLOPE_TOL: f64 = 0.15;

fn csgd_order(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    // (N, B): m = N/B batches; mε ≤ 0.2 keeps m ε λ_max ≪ 1 (λ_max ≈ 1 here), the asymptotic regime.
    let configs: &[(usize, usize)] = if ctx.quick {
        &[(6, 2), (8, 2)]
    } else {
        &[(6, 2), (6, 1), (8, 2), (9, 3)]
    };
    let mut parts = Vec::new();
    let mut figs = Vec::new();
    for &(n, b) in configs {
        let obj = LogCoshQuartic::random(n, 2, 2021 + n as u64).or_check()?;
        let part = Partition::consecutive(n, b, Remainder::Error).or_check()?;
        let m = part.m() as f64;
        let steps = geometric_steps(0.2 / m, 0.5, if ctx.quick { 4 } else { 6 }).or_check()?;
        let [gf, sgd, igr] = epoch_vs_flows(&obj, &part, &[0.6, -0.4], &steps, Averaging::BatchOrders)?;
        let tag = format!("N={n},B={b}");
        parts.push(gf.outcome(&format!("{tag} GF on C"), 2.0, SLOPE_TOL));
        parts.push(sgd.outcome(&format!("{tag} C_SGD"), 3.0, SLOPE_TOL));
        parts.push(igr.outcome(&format!("{tag} C_GD"), 2.0, SLOPE_TOL));
        if let Some(dir) = ctx.figure_dir("smith.csgd-order") {
            figs.extend(save_order_figure(
                &dir,
                &format!("csgd_order_N{n}_B{b}"),
                &format!("mean over all orders vs flows at mε ({tag}, log-cosh + quartic)"),
                "learning rate ε",
                &[("GF on C", &gf), ("C_SGD flow", &sgd), ("C_GD flow", &igr)],
            )?);
        }
    }
    // Random reshuffling (mean over all ordered partitions) follows the partition-averaged flow
    // C + (ε/4)‖∇C‖² + ((N−B)/(N−1))(ε/4B)Γ: slope 3 as well.
    let (n, b) = (6, 2);
    let obj = LogCoshQuartic::random(n, 2, 2021 + n as u64).or_check()?;
    let part = Partition::consecutive(n, b, Remainder::Error).or_check()?;
    let m = part.m() as f64;
    let steps = geometric_steps(0.2 / m, 0.5, if ctx.quick { 4 } else { 6 }).or_check()?;
    let w0 = [0.6, -0.4];
    let mut errs = Vec::new();
    for &eps in &steps {
        let mean = (exact_mean(
            &obj,
            &part,
            &w0,
            eps,
            1,
            Averaging::Partitions,
            &ExactOptions::default(),
        ))
        .or_check()?
        .mean;
        let flow = flow_at(
            &PartitionAveragedSgdFlow::new(&obj, eps, b).or_check()?,
            &w0,
            m * eps,
        )?;
        errs.push(dist(&mean, &flow));
    }
    let rr = fit_order(&steps, errs).or_check()?;
    parts.push(rr.outcome("N=6,B=2 all partitions vs E[C_SGD] (Γ) flow", 3.0, SLOPE_TOL));
    Ok(Outcome::all(parts).with_figures(figs))
}

fn with_replacement(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    let (n, b) = (6, 2);
    let obj = LogCoshQuartic::random(n, 2, 2027).or_check()?;
    let part = Partition::consecutive(n, b, Remainder::Error).or_check()?;
    let steps = (geometric_steps(0.2 / part.m() as f64, 0.5, if ctx.quick { 4 } else { 6 })).or_check()?;
    let [_, sgd, igr] = epoch_vs_flows(&obj, &part, &[0.6, -0.4], &steps, Averaging::WithReplacement)?;
    let mut out = Outcome::all(vec![
        igr.outcome("with-replacement vs C_GD", 3.0, SLOPE_TOL),
        sgd.outcome("with-replacement vs C_SGD", 2.0, SLOPE_TOL),
    ]);
    out = out.with_figures(ctx.save_order_figure(
        "smith.with-replacement",
        "with_replacement",
        "with-replacement mean (all m^m draws) vs flows at mε",
        "learning rate ε",
        &[("C_GD flow", &igr), ("C_SGD flow", &sgd)],
    )?);
    Ok(out)
}

/// The exact 1-D quadratic of docs/theory/modified-flows.md §Reference values: `C_i(w) = (a_i/2)(w − c_i)²`,
/// blocks of consecutive indices.
fn t2_problem() -> std::result::Result<(PerExampleQuadratic, [f64; 4], [f64; 4]), CheckError> {
    let a = [1.0, 2.0, 0.5, 1.5];
    let c = [1.0, -1.0, 2.0, 0.0];
    // ½ a_i w² − a_i c_i w: the same gradient as (a_i/2)(w − c_i)².
    let obj = (PerExampleQuadratic::new(
        a.iter().map(|ai| DMatrix::from_element(1, 1, *ai)).collect(),
        a.iter()
            .zip(&c)
            .map(|(ai, ci)| DVector::from_element(1, ai * ci))
            .collect(),
    ))
    .or_check()?;
    Ok((obj, a, c))
}

/// Closed form of `ẇ = −(α w − β)`: `w(t) = β/α + (w0 − β/α) e^{−αt}`.
fn linear_flow(alpha: f64, beta: f64, w0: f64, t: f64) -> f64 {
    beta / alpha + (w0 - beta / alpha) * (-alpha * t).exp()
}

/// (α, β) of the C_SGD flow for blocks of size `b` (α = ā + (ε/2m) Σ â_k², β = b̄ + (ε/2m) Σ â_k b̂_k), or of
/// gradient flow when `eps = 0`.
fn t2_coefficients(a: &[f64; 4], c: &[f64; 4], b: usize, eps: f64) -> (f64, f64) {
    let m = 4 / b;
    let mut alpha = a.iter().sum::<f64>() / 4.0;
    let mut beta = a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>() / 4.0;
    for k in 0..m {
        let ah = a[k * b..(k + 1) * b].iter().sum::<f64>() / b as f64;
        let bh = (k * b..(k + 1) * b).map(|i| a[i] * c[i]).sum::<f64>() / b as f64;
        alpha += eps / (2.0 * m as f64) * ah * ah;
        beta += eps / (2.0 * m as f64) * ah * bh;
    }
    (alpha, beta)
}

fn quadratic_reference(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    let (obj, a, c) = t2_problem()?;
    let w0 = 0.5;
    let mut parts = Vec::new();
    // Quoted reference values (docs/theory/modified-flows.md §Reference values): (B, ε, E[w_m], GF(mε), C_SGD
    // flow(mε)) — a cross-check only.
    let quoted = [
        (
            1usize,
            0.05,
            0.382661458333333,
            0.389400391535702,
            0.383014215133297,
        ),
        (1, 0.0125, 0.469235921223958, 0.469706531406738, 0.469242114052578),
        (2, 0.05, 0.4390625, 0.441248451292298, 0.439166341436586),
        (2, 0.0125, 0.48447265625, 0.484616617238172, 0.484474358869943),
    ];
    // E[w_m] over the m! batch orders of one epoch from w0, by enumeration.
    let mean_over_orders = |part: &Partition, eps: f64| -> Result<f64, CheckError> {
        let e = exact_mean(
            &obj,
            part,
            &[w0],
            eps,
            1,
            Averaging::BatchOrders,
            &ExactOptions::default(),
        );
        Ok(e.or_check()?.mean[0])
    };
    let mut max_route = 0.0f64;
    let mut max_quoted = 0.0f64;
    for &(b, eps, q_mean, q_gf, q_sgd) in &quoted {
        let part = Partition::consecutive(4, b, Remainder::Error).or_check()?;
        let t = part.m() as f64 * eps;
        // Route 1: generic enumeration of all m! orders. Route 2: the affine subset DP.
        let e1 = mean_over_orders(&part, eps)?;
        let e2 = AffineEpoch::from_objective(&obj, &part, eps)
            .or_check()?
            .mean_over_orders(&[w0], 1, AffineAlgorithm::SubsetDp)
            .or_check()?
            .mean[0];
        let (ag, bg) = t2_coefficients(&a, &c, b, 0.0);
        let (asg, bsg) = t2_coefficients(&a, &c, b, eps);
        let gf = linear_flow(ag, bg, w0, t);
        let sgd = linear_flow(asg, bsg, w0, t);
        // Route 3: DOP853 on the generic C_SGD flow against its closed form.
        let sgd_num = flow_at(&(SgdFlow::new(&obj, part.clone(), eps)).or_check()?, &[w0], t)?[0];
        max_route = max_route.max((e1 - e2).abs()).max((sgd - sgd_num).abs());
        max_quoted = max_quoted
            .max((e1 - q_mean).abs())
            .max((gf - q_gf).abs())
            .max((sgd - q_sgd).abs());
    }
    // Independent routes agree to round-off (sums of ≤ 24 terms of size ≤ 1: 1e-13 is generous).
    parts.push(Outcome::at_most(
        "max |enumeration − subset DP|, |closed-form − DOP853 C_SGD flow|",
        max_route,
        1e-13,
    ));
    // Quoted values have 15 decimals.
    parts.push(Outcome::at_most(
        "max |recomputed − quoted reference|",
        max_quoted,
        1e-14,
    ));
    // Orders on B = 1 (m = 4), ε = 0.025 … 0.025/2^k, where mελ ≤ 0.2.
    let part = Partition::consecutive(4, 1, Remainder::Error).or_check()?;
    let steps = geometric_steps(0.025, 0.5, if ctx.quick { 4 } else { 6 }).or_check()?;
    let (mut e_gf, mut e_sgd) = (Vec::new(), Vec::new());
    for &eps in &steps {
        let mean = mean_over_orders(&part, eps)?;
        let (ag, bg) = t2_coefficients(&a, &c, 1, 0.0);
        let (asg, bsg) = t2_coefficients(&a, &c, 1, eps);
        e_gf.push((mean - linear_flow(ag, bg, w0, 4.0 * eps)).abs());
        e_sgd.push((mean - linear_flow(asg, bsg, w0, 4.0 * eps)).abs());
    }
    let gf = fit_order(&steps, e_gf).or_check()?;
    let sgd = fit_order(&steps, e_sgd).or_check()?;
    parts.push(gf.outcome("B=1 vs GF closed form", 2.0, SLOPE_TOL));
    parts.push(sgd.outcome("B=1 vs C_SGD closed form", 3.0, SLOPE_TOL));
    let mut out = Outcome::all(parts);
    out = out.with_figures(ctx.save_order_figure(
        "smith.quadratic-reference",
        "quadratic_t2",
        "exact 1-D quadratic (B = 1, m = 4)",
        "learning rate ε",
        &[("GF on C", &gf), ("C_SGD flow", &sgd)],
    )?);
    Ok(out)
}

/// All `k`-subsets of `0..n` (lexicographic).
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![vec![]];
    }
    if n < k {
        return vec![];
    }
    let mut with_last: Vec<Vec<usize>> = subsets(n - 1, k - 1)
        .into_iter()
        .map(|mut v| {
            v.push(n - 1);
            v
        })
        .collect();
    let mut out = subsets(n - 1, k);
    out.append(&mut with_last);
    out
}

fn finite_population(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    let configs: &[(usize, usize)] = if ctx.quick {
        &[(6, 2), (7, 3), (8, 8)]
    } else {
        &[(6, 2), (7, 3), (8, 1), (8, 8), (10, 4), (12, 5)]
    };
    let mut worst = 0.0f64;
    let mut lines = Vec::new();
    for &(n, b) in configs {
        let obj = LogCoshQuartic::random(n, 3, 77 + n as u64).or_check()?;
        let w = [0.3, -0.5, 0.9];
        let g = obj.grad(&w, Batch::Full).or_check()?;
        let gamma = gradient_variance(&obj, &w).or_check()?;
        let subs = subsets(n, b);
        let lhs = subs
            .iter()
            .map(|sub| {
                obj.grad(&w, Batch::Indices(sub))
                    .map(|gs| gs.iter().map(|v| v * v).sum::<f64>())
            })
            .sum::<std::result::Result<f64, _>>();
        let lhs = lhs.or_check()? / subs.len() as f64;
        let rhs = g.iter().map(|v| v * v).sum::<f64>() + (n - b) as f64 / (b as f64 * (n - 1) as f64) * gamma;
        let rel = (lhs - rhs).abs() / rhs.abs().max(1e-300);
        worst = worst.max(rel);
        lines.push(format!(
            "N={n},B={b}: {} subsets, E‖ĝ_S‖² = {lhs:.12e}, formula {rhs:.12e}",
            subs.len()
        ));
    }
    // Both sides are sums of ≤ 792 O(1) terms: round-off ≤ 1e-13 relative.
    let mut out = Outcome::at_most(
        "max relative |E_S‖ĝ_S‖² − (‖g‖² + (N−B)/(B(N−1))Γ)|",
        worst,
        1e-12,
    );
    out.measured = format!("{}; {}", out.measured, lines.join("; "));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_checks_pass_quick() {
        // The regularization checks run one by one in tests/regularizers.rs.
        imreg_check::assert_all_pass(&super::expectation_checks(), true);
    }
}
