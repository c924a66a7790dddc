//! Theorem checks registered in the `reproduce` / `verify` registry.
//!
//! | id | claim |
//! |---|---|
//! | `spectra.lanczos-vs-dense` | Lanczos top/bottom eigenvalues = dense `SymmetricEigen` to 1e-10 relative |
//! | `spectra.slq-moments` | SLQ: `∫λ dμ = tr H/p`, `∫λ² dμ = ‖H‖²_F/p`, per-probe quadrature exact |
//! | `spectra.hutchinson-unbiased` | Hutchinson and Hutch++ means within 3 SE of the exact trace |
//! | `spectra.minibs-ge-sharpness` | `MiniBS ≥ λ_max(H)` for every b, `= λ_max` at `b = N`; batch sharpness ≤ MiniBS |
//! | `spectra.batch-sharpness-linreg-b1` | linear regression, `b = 1`: MiniBS = batch sharpness = `tr H` |
use imreg_check::{Check, CheckContext, CheckError, OrCheckError, Outcome};
use imreg_objective::models::{Activation, LinearRegression, Mlp, MlpSpec};
use imreg_objective::{rng, Batch, LossKind, Objective};
use imreg_plot::{Figure, Series};
use imreg_spectra::dense::{dense_eigen, symmetric_eigen, DenseOptions};
use imreg_spectra::lanczos::{lanczos, LanczosOptions};
use imreg_spectra::operator::DenseOperator;
use imreg_spectra::operators::HessianOperator;
use imreg_spectra::sharpness::{batch_sharpness, mini_bs, BatchExpectation};
use imreg_spectra::slq::{probe, slq, ProbeKind, SlqOptions};
use imreg_spectra::trace::{hutch_plus_plus, hutchinson, TraceOptions};
use ndarray::{Array1, Array2};

/// The checks this crate registers.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            id: "spectra.lanczos-vs-dense",
            claim: "Lanczos top and bottom eigenvalues of MLP Hessians and planted spectra equal dense SymmetricEigen \
                    to 1e-10 relative, with residuals within the reported bounds",
            run: lanczos_vs_dense,
        },
        Check {
            id: "spectra.slq-moments",
            claim: "SLQ quadrature reproduces vᵀHv and ‖Hv‖² per probe, and ∫λdμ = tr(H)/p, ∫λ²dμ = ‖H‖²_F/p \
                    over a basis of probes, to rounding",
            run: slq_moments,
        },
        Check {
            id: "spectra.hutchinson-unbiased",
            claim: "Hutchinson (Rademacher) and Hutch++ trace estimates are within 3 standard errors of the exact \
                    trace (seeded)",
            run: hutchinson_unbiased,
        },
        Check {
            id: "spectra.minibs-ge-sharpness",
            claim: "MiniBS = E_B λ_max(H_B) ≥ λ_max(H) for every batch size b (Jensen), with equality at b = N, and \
                    mean-of-ratios batch sharpness ≤ MiniBS (exact enumeration over all batches)",
            run: minibs_ge_sharpness,
        },
        Check {
            id: "spectra.batch-sharpness-linreg-b1",
            claim: "Linear regression with b = 1: MiniBS = mean-of-ratios batch sharpness = tr(H) for every θ",
            run: batch_sharpness_linreg_b1,
        },
    ]
}

type CheckResult = Result<Outcome, CheckError>;

fn gaussian(n: usize, d: usize, seed: u64, stream: u64) -> Result<Array2<f64>, CheckError> {
    Array2::from_shape_vec((n, d), rng::normal_vec(&mut rng::stream(seed, stream), n * d)).or_check()
}

/// A tanh MLP `d → h → h → c` with cross-entropy on seeded Gaussian data, and θ at 2× PyTorch's init scale
/// (an indefinite Hessian).
fn small_mlp(n: usize, d: usize, h: usize, c: usize, seed: u64) -> Result<(Mlp, Vec<f64>), CheckError> {
    let spec = MlpSpec {
        widths: vec![d, h, h, c],
        activation: Activation::Tanh,
        bias: true,
        loss: LossKind::CrossEntropy,
    };
    let labels = (0..n).map(|i| (i * 7 + 3) % c).collect();
    let m = Mlp::classification(spec, gaussian(n, d, seed, 1)?, labels).or_check()?;
    let theta = m.init_params(seed, 2.0);
    Ok((m, theta))
}

fn lanczos_vs_dense(ctx: &CheckContext) -> CheckResult {
    let (n, h) = if ctx.quick { (24, 8) } else { (64, 16) };
    let (m, theta) = small_mlp(n, 5, h, 3, 1)?;
    let hess = HessianOperator::new(&m, &theta, Batch::Full).or_check()?;
    let p = m.dim();
    let lam: Vec<f64> = (0..100).map(|i| -5.0 + 8.0 * (i as f64 / 99.0).powi(2)).collect();
    let planted = DenseOperator::planted(&lam, 11).or_check()?;
    let opts = |p| LanczosOptions {
        k_top: 2,
        k_bottom: 2,
        max_iter: p,
        tol: 1e-13,
        true_residuals: true,
        ..Default::default()
    };
    let mut worst_rel = 0.0_f64;
    let mut worst_excess = 0.0_f64;
    let mut converged = true;
    for (op, dim) in [
        (&hess as &dyn imreg_spectra::LinearOperator, p),
        (&planted as &dyn imreg_spectra::LinearOperator, 100),
    ] {
        let dense = dense_eigen(op, &DenseOptions::default()).or_check()?;
        let r = lanczos(op, &opts(dim)).or_check()?;
        converged &= r.report.converged;
        let scale = dense.max().abs().max(dense.min().abs());
        for (pair, want) in r
            .top
            .iter()
            .zip(dense.top(2))
            .chain(r.bottom.iter().zip(dense.bottom(2)))
        {
            worst_rel = worst_rel.max((pair.value - want).abs() / want.abs());
            let res = pair.residual.unwrap_or(f64::INFINITY);
            worst_excess = worst_excess.max((res - pair.residual_bound) / scale);
        }
    }
    Ok(Outcome::all(vec![
        Outcome::at_most(
            &format!("max relative eigenvalue error (MLP Hessian p = {p}, planted p = 100)"),
            worst_rel,
            1e-10,
        ),
        Outcome::at_most("max (residual − bound)/‖A‖", worst_excess, 1e-12),
        Outcome::new("converged", format!("{converged}"), converged),
    ]))
}

fn slq_moments(ctx: &CheckContext) -> CheckResult {
    let (m, theta) = small_mlp(16, 4, if ctx.quick { 6 } else { 12 }, 3, 5)?;
    let h = m.dense_hessian(&theta, Batch::Full).or_check()?;
    let op = DenseOperator::new(h.clone()).or_check()?;
    let p = m.dim();
    let scale = h.norm();
    let basis = slq(
        &op,
        &SlqOptions {
            probes: p,
            steps: 4,
            kind: ProbeKind::Basis,
            seed: 0,
        },
    )
    .or_check()?;
    let e1 = (basis.moment(1) - h.trace() / p as f64).abs() / scale;
    let e2 = (basis.moment(2) - h.norm_squared() / p as f64).abs() / (scale * scale);
    let rad = slq(
        &op,
        &SlqOptions {
            probes: 10,
            steps: 8,
            kind: ProbeKind::Rademacher,
            seed: 3,
        },
    )
    .or_check()?;
    let mut per_probe = 0.0_f64;
    for (k, rule) in rad.probes.iter().enumerate() {
        let v = nalgebra::DVector::from_vec(probe(ProbeKind::Rademacher, p, 3, k));
        let hv = &h * &v;
        per_probe = per_probe.max((rule.moment(1) - v.dot(&hv)).abs() / scale);
        per_probe = per_probe.max((rule.moment(2) - hv.dot(&hv)).abs() / (scale * scale));
    }
    let mut figures = Vec::new();
    if ctx.out_dir.is_some() {
        let dense = symmetric_eigen(h.clone(), &DenseOptions::default()).or_check()?;
        let (lo, hi) = (dense.min() - 0.1 * scale, dense.max() + 0.1 * scale);
        let grid: Vec<f64> = (0..=400).map(|i| lo + (hi - lo) * i as f64 / 400.0).collect();
        let sigma = scale / 40.0;
        let rho_slq = rad.smoothed(&grid, sigma).or_check()?;
        let rho_exact = basis.smoothed(&grid, sigma).or_check()?;
        let fig = Figure::new(format!("Hessian spectral density, tanh MLP p = {p}"))
            .x_label("λ")
            .y_label("density (Gaussian kernel)")
            .series(Series::line(
                "SLQ, 10 Rademacher probes, 8 steps",
                grid.clone(),
                rho_slq,
            ))
            .series(Series::line(
                format!("SLQ, all {p} basis probes"),
                grid,
                rho_exact,
            ));
        figures = ctx.save_figure("spectra.slq-moments", "density", &fig)?;
    }
    Ok(Outcome::all(vec![
        Outcome::at_most("|∫λdμ − tr H/p| / ‖H‖_F (basis probes)", e1, 1e-12),
        Outcome::at_most("|∫λ²dμ − ‖H‖²_F/p| / ‖H‖²_F (basis probes)", e2, 1e-12),
        Outcome::at_most(
            "per-probe |μ_v(λ^k) − vᵀH^k v| / ‖H‖^k, k = 1, 2",
            per_probe,
            1e-12,
        ),
    ])
    .with_figures(figures))
}

fn hutchinson_unbiased(ctx: &CheckContext) -> CheckResult {
    let (m, theta) = small_mlp(16, 4, 6, 3, 5)?;
    let h = m.dense_hessian(&theta, Batch::Full).or_check()?;
    let op = DenseOperator::new(h.clone()).or_check()?;
    let exact = h.trace();
    let mv = if ctx.quick { 2000 } else { 20000 };
    let t = hutchinson(&op, &TraceOptions { matvecs: mv, seed: 7 }).or_check()?;
    // Hutch++: the mean of independent runs, with the standard error across runs
    let runs = if ctx.quick { 100 } else { 1000 };
    let est: Vec<f64> = (0..runs)
        .map(|seed| hutch_plus_plus(&op, &TraceOptions { matvecs: 30, seed }).map(|t| t.estimate))
        .collect::<Result<_, _>>()
        .or_check()?;
    let n = runs as f64;
    let mean = est.iter().sum::<f64>() / n;
    let se = (est.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
    Ok(Outcome::all(vec![
        Outcome::at_most(
            "|Hutchinson − tr H| / SE",
            (t.estimate - exact).abs() / t.std_error,
            3.0,
        ),
        Outcome::at_most("|mean Hutch++ − tr H| / SE", (mean - exact).abs() / se, 3.0),
    ]))
}

fn minibs_ge_sharpness(ctx: &CheckContext) -> CheckResult {
    let n = if ctx.quick { 6 } else { 9 };
    let (m, theta) = small_mlp(n, 3, 4, 2, 12)?;
    let lo = LanczosOptions {
        tol: 1e-13,
        max_iter: 200,
        ..Default::default()
    };
    let lmax = dense_eigen(
        &HessianOperator::new(&m, &theta, Batch::Full).or_check()?,
        &DenseOptions::default(),
    )
    .or_check()?
    .max();
    let (mut worst_gap, mut worst_bs, mut at_n) = (f64::INFINITY, f64::NEG_INFINITY, f64::NAN);
    let (mut bs_mr, mut bs_rm, mut mbs) = (Vec::new(), Vec::new(), Vec::new());
    for b in 1..=n {
        let mb = mini_bs(&m, &theta, Batch::Full, b, &BatchExpectation::Exact, &lo).or_check()?;
        let bs = batch_sharpness(&m, &theta, Batch::Full, b, &BatchExpectation::Exact).or_check()?;
        worst_gap = worst_gap.min((mb.estimate.value - lmax) / lmax.abs());
        worst_bs = worst_bs.max((bs.mean_of_ratios.value - mb.estimate.value) / lmax.abs());
        if b == n {
            at_n = (mb.estimate.value - lmax).abs() / lmax.abs();
        }
        mbs.push(mb.estimate.value);
        bs_mr.push(bs.mean_of_ratios.value);
        bs_rm.push(bs.ratio_of_means.value);
    }
    let bsz: Vec<f64> = (1..=n).map(|b| b as f64).collect();
    let fig = Figure::new(format!(
        "MiniBS and batch sharpness vs b, tanh MLP, N = {n}, exact over all batches"
    ))
    .x_label("batch size b")
    .y_label("curvature")
    .series(Series::line_markers("MiniBS E_B λ_max(H_B)", bsz.clone(), mbs))
    .series(Series::line_markers(
        "batch sharpness, mean of ratios",
        bsz.clone(),
        bs_mr,
    ))
    .series(Series::line_markers(
        "batch sharpness, ratio of means",
        bsz,
        bs_rm,
    ))
    .hline("λ_max(H)", lmax);
    let figures = if ctx.out_dir.is_some() {
        ctx.save_figure("spectra.minibs-ge-sharpness", "minibs_vs_b", &fig)?
    } else {
        Vec::new()
    };
    // slack 1e-11: per-batch Lanczos to 1e-13 relative, means of ≤ 126 terms
    Ok(Outcome::all(vec![
        Outcome::new(
            "min_b (MiniBS − λ_max)/|λ_max| ≥ −1e-11",
            format!("{worst_gap:.3e}"),
            worst_gap >= -1e-11,
        ),
        Outcome::at_most("|MiniBS − λ_max|/|λ_max| at b = N", at_n, 1e-11),
        Outcome::at_most("max_b (batch sharpness − MiniBS)/|λ_max|", worst_bs, 1e-11),
    ])
    .with_figures(figures))
}

fn batch_sharpness_linreg_b1(ctx: &CheckContext) -> CheckResult {
    let (n, d) = if ctx.quick { (12, 5) } else { (60, 20) };
    let x = gaussian(n, d, 4, 1)?;
    let y = Array1::from(rng::normal_vec(&mut rng::stream(4, 2), n));
    let lr = LinearRegression::new(x, y).or_check()?;
    let mut worst = 0.0_f64;
    for seed in 0..3 {
        let theta = rng::normal_vec(&mut rng::stream(seed, 3), d);
        let tr = lr.dense_hessian(&theta, Batch::Full).or_check()?.trace();
        let lo = LanczosOptions {
            tol: 1e-13,
            ..Default::default()
        };
        let mb = mini_bs(&lr, &theta, Batch::Full, 1, &BatchExpectation::Exact, &lo).or_check()?;
        let bs = batch_sharpness(&lr, &theta, Batch::Full, 1, &BatchExpectation::Exact).or_check()?;
        worst = worst
            .max((mb.estimate.value - tr).abs() / tr)
            .max((bs.mean_of_ratios.value - tr).abs() / tr);
    }
    Ok(Outcome::at_most(
        "max relative |MiniBS − tr H|, |batch sharpness − tr H| over 3 θ",
        worst,
        1e-12,
    ))
}
