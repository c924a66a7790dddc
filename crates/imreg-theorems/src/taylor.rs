//! Theorem checks registered in the `reproduce` / `verify` registry (theory: `docs/theory/tenka.md`).
//!
//! Every order-of-accuracy claim is a log-log slope over a geometric sequence of step sizes
//! ([`imreg_check::loglog_slope`]); every reference number of the theory page is recomputed by our own
//! enumeration or quadrature before it is compared.
use imreg_check::{slope_outcome, Check, CheckContext, CheckError, OrCheckError, Outcome};
use imreg_plot::{Figure, Series};
use imreg_taylor::exact::{exact_expectation, ExactParams};
use imreg_taylor::landscape::{DataDist, FiniteDist, Integration, Landscape};
use imreg_taylor::landscapes::{GaussLandscape, Helix, QuadraticNoise, RademacherToy};
use imreg_taylor::predictions::{
    epochs_displacement, epochs_displacement_as_published, overfit_gd, sgd_minus_gd, skewness_correction,
    skewness_correction_saturating, test_loss_expansion, valley_drift, OverfitPrediction,
};
use imreg_taylor::schedule::Schedule;
use imreg_taylor::sde::{ito_sde_second_moment, sgd_minus_sde_leading, sgd_second_moment};
use imreg_taylor::simulate::{
    gd_overfit_monte_carlo, one_step_gaussian_noise_test_loss, one_step_sgd_test_loss, online_sgd_drift,
    test_measure, DriftParams, OverfitMcParams,
};
use imreg_taylor::tensors::{population_tensors, PopulationTensors};
use nalgebra::DMatrix;

type CheckResult = Result<Outcome, CheckError>;

/// The checks this crate registers.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            id: "taylor.eta2-law",
            claim: "Tenka's order-η² law: (exact − prediction)/η³ converges (residual slope 3) on the Rademacher toy, \
                    SGD and GD at M = 1, 2",
            run: eta2_law,
        },
        Check {
            id: "taylor.sgd-minus-gd",
            claim: "SGD − GD at equal T, η, N = (T/4)(1/N − 1/B)η² Gᵀ∇trC + O(η³)",
            run: sgd_minus_gd_check,
        },
        Check {
            id: "taylor.epochs-corrected",
            claim: "Corrected Cor epochs: E[θ_E0 − θ_E1] = ((E0−1)/(4E0))Nη²∇(trC + ‖G‖²) + O(η³); the published \
                    ∇trC-only form misses at O(η²)",
            run: epochs_corrected,
        },
        Check {
            id: "taylor.helix-drift",
            claim: "Helix: SGD drifts along the valley by +η²/6 per step (valley-drift formula; seeded Monte Carlo)",
            run: helix_drift,
        },
        Check {
            id: "taylor.skewness",
            claim: "Gauss landscape, T = 1: SGD − Gaussian-noise SGD = −(η³/6)S·J = −η³/12 + O(η⁴)",
            run: skewness,
        },
        Check {
            id: "taylor.sde-order",
            claim: "SGD and the Itô SDE first differ at η³ (η³σ²hT in E[θ²]) on the quadratic, not at η²",
            run: sde_order,
        },
        Check {
            id: "taylor.overfit-tic",
            claim: "MeanEstimation GD overfit C(1−(1−ηh)^T)²/(2Nh), gap C(1−(1−ηh)^T)/(Nh) → TIC tr(CH⁻¹)/N",
            run: overfit_tic,
        },
    ]
}

// ---- helpers -----------------------------------------------------------------------------------------

/// Geometric step sizes `start, start/2, …` (`count` of them).
fn geometric(start: f64, count: usize) -> Vec<f64> {
    (0..count).map(|k| start / 2f64.powi(k as i32)).collect()
}

struct Toy {
    toy: RademacherToy,
    dist: DataDist,
    tensors: PopulationTensors,
}

/// The reference toy of `docs/theory/tenka.md` at `θ₀ = 1`, `N = 3`.
fn toy() -> Result<Toy, CheckError> {
    let toy = RademacherToy::reference();
    let dist = toy.distribution();
    let tensors = population_tensors(&toy, &dist, Integration::Exact, &[1.0]).or_check()?;
    Ok(Toy { toy, dist, tensors })
}

impl Toy {
    fn exact(&self, sched: &Schedule, eta: f64) -> Result<imreg_taylor::exact::ExactReport, CheckError> {
        exact_expectation(&self.toy, &self.dist, &[1.0], sched, eta, ExactParams::default()).or_check()
    }
}

// ---- taylor.eta2-law ---------------------------------------------------------------------------------

fn eta2_law(ctx: &CheckContext) -> CheckResult {
    let t = toy()?;
    let n = 3;
    // η from 0.02 down: the η⁴ term is ≤ 3% of the η³ term there (residual/η³ moves by < 1 per halving at
    // M = 1, < 12 of ≈ 220 at M = 2), so the fitted slope is 3 within ≈ 0.05; tolerance 0.15.
    let etas = geometric(0.02, if ctx.quick { 4 } else { 6 });
    let mut parts = Vec::new();
    // N = 3 with B = 1 (SGD) and B = 3 (GD); N = 4 with B = 2 exercises the 1/B of the ∇trC term.
    for (label, nn, b, steps) in [
        ("SGD M=1", 3, 1, 3),
        ("GD M=1", 3, 3, 3),
        ("SGD M=2", 3, 1, 6),
        ("GD M=2", 3, 3, 6),
        ("N=4 B=2 M=1", 4, 2, 4),
        ("N=4 B=2 M=2", 4, 2, 8),
    ] {
        let sched = Schedule::new(nn, b, steps).or_check()?;
        let mut res = Vec::new();
        for &eta in &etas {
            let exact = t.exact(&sched, eta)?.test_loss;
            let pred = test_loss_expansion(&t.tensors, &sched, eta)
                .or_check()?
                .through(2);
            res.push(exact - pred);
        }
        let scaled: Vec<f64> = res.iter().zip(&etas).map(|(r, eta)| r / eta.powi(3)).collect();
        let mut o = slope_outcome(&format!("{label} residual"), &etas, &res, 3.0, 0.15)?;
        // The constant: successive changes of residual/η³ must shrink (by ≈ ½ per halving of η).
        let d: Vec<f64> = scaled.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        let contracting = d.windows(2).all(|w| w[1] < 0.75 * w[0]);
        o.measured
            .push_str(&format!(", residual/η³ → {:.3}", scaled[scaled.len() - 1]));
        o.passed &= contracting;
        parts.push(o);
    }
    // Cross-check: the table of docs/theory/tenka.md, recomputed by our own enumeration.
    let table = [
        (1, 3, 0.01, 0.471068689909),
        (1, 3, 0.005, 0.485269511901),
        (3, 3, 0.01, 0.471140888897),
        (1, 6, 0.005, 0.471191537931),
    ];
    let mut worst: f64 = 0.0;
    for (b, steps, eta, quoted) in table {
        let got = t.exact(&Schedule::new(n, b, steps).or_check()?, eta)?.test_loss;
        worst = worst.max((got - quoted).abs());
    }
    // The table is quoted to 12 decimals.
    parts.push(Outcome::at_most(
        "|enumeration − the reference table of docs/theory/tenka.md|",
        worst,
        1e-11,
    ));

    // Figure: exact E[l] vs η with the order-0, -1 and -2 predictions, and residual/η³ (SGD, M = 1).
    // No general order-3 formula is derived (docs/theory/tenka.md), so none is drawn here.
    if ctx.out_dir.is_some() {
        let sched = Schedule::new(n, 1, 3).or_check()?;
        let (mut rows, mut cols) = (Vec::new(), vec![Vec::new(); 6]);
        for eta in geometric(0.16, 12) {
            let exact = t.exact(&sched, eta)?.test_loss;
            let x = test_loss_expansion(&t.tensors, &sched, eta).or_check()?;
            let row = vec![
                eta,
                exact,
                x.through(0),
                x.through(1),
                x.through(2),
                (exact - x.through(2)) / eta.powi(3),
            ];
            for (c, v) in cols.iter_mut().zip(&row) {
                c.push(*v);
            }
            rows.push(row);
        }
        let mut files = Vec::new();
        let id = "taylor.eta2-law";
        files.extend(ctx.save_csv(
            id,
            "exact_vs_eta_wide",
            "eta,exact,order0,order1,order2,residual_over_eta3",
            &rows,
        )?);
        if let Some(dir) = ctx.figure_dir(id) {
            let eta = cols[0].clone();
            let fig = Figure::new("Rademacher toy, SGD B=1, N=T=3: exact E[l(θ_T)] vs η")
                .x_label("η")
                .y_label("E[l(θ_T)]")
                .log_x()
                .series(Series::line_markers(
                    "exact (enumeration)",
                    eta.clone(),
                    cols[1].clone(),
                ))
                .series(Series::line("order 0", eta.clone(), cols[2].clone()))
                .series(Series::line("order 1", eta.clone(), cols[3].clone()))
                .series(Series::line("order 2 (Tenka)", eta.clone(), cols[4].clone()));
            files.extend(fig.save(&dir, "exact_vs_eta").or_check()?);
            let fig = Figure::new("(exact − order-2 prediction)/η³ converges to a constant")
                .x_label("η")
                .y_label("residual / η³")
                .log_x()
                .series(Series::line_markers("SGD B=1, M=1", eta, cols[5].clone()));
            files.extend(fig.save(&dir, "residual_over_eta3").or_check()?);
        }
        parts.push(
            Outcome::new("figures written", format!("{} files", files.len()), true).with_figures(files),
        );
    }
    Ok(Outcome::all(parts))
}

// ---- taylor.sgd-minus-gd -----------------------------------------------------------------------------

fn sgd_minus_gd_check(ctx: &CheckContext) -> CheckResult {
    let t = toy()?;
    // From η = 0.01: the O(η) relative correction of (SGD − GD)/η² is ≈ 3% per 0.01 at M = 2.
    let etas = geometric(0.01, if ctx.quick { 4 } else { 6 });
    let mut parts = Vec::new();
    for (n, b, steps) in [(3usize, 1usize, 3usize), (3, 1, 6), (4, 2, 4)] {
        let (sgd, gd) = (
            Schedule::new(n, b, steps).or_check()?,
            Schedule::gd(n, steps).or_check()?,
        );
        let mut diff = Vec::new();
        let mut res = Vec::new();
        for &eta in &etas {
            let d = t.exact(&sgd, eta)?.test_loss - t.exact(&gd, eta)?.test_loss;
            res.push(d - sgd_minus_gd(&t.tensors, n, b, steps, eta).or_check()?);
            diff.push(d);
        }
        let m = format!("N={n} B={b} T={steps}");
        parts.push(slope_outcome(&format!("{m} SGD − GD"), &etas, &diff, 2.0, 0.15)?);
        parts.push(slope_outcome(
            &format!("{m} (SGD − GD) − prediction"),
            &etas,
            &res,
            3.0,
            0.15,
        )?);
        // The constant: Richardson 2c(η/2) − c(η) of c = diff/η² removes the O(η) term; what is left is
        // O(η²) ≈ (change of the last two extrapolations), so 1% of the constant is a loose but failing bound
        // for a wrong factor (the next-likeliest errors, 1/2 or 2, are off by 50–100%).
        let c: Vec<f64> = diff.iter().zip(&etas).map(|(d, eta)| d / (eta * eta)).collect();
        let k = c.len();
        let extrap = 2.0 * c[k - 1] - c[k - 2];
        let constant = sgd_minus_gd(&t.tensors, n, b, steps, 1.0).or_check()?;
        parts.push(Outcome::within(
            &format!("{m} lim (SGD − GD)/η² = (T/4)(1/N − 1/B)G∇trC"),
            constant,
            extrap,
            0.01 * constant.abs(),
        ));
    }
    Ok(Outcome::all(parts))
}

// ---- taylor.epochs-corrected -------------------------------------------------------------------------

fn epochs_corrected(ctx: &CheckContext) -> CheckResult {
    let t = toy()?;
    let n = 3;
    let etas = geometric(0.02, if ctx.quick { 4 } else { 6 });
    let mut parts = Vec::new();
    for e0 in [2usize, 3] {
        let many = Schedule::epochs_of(n, 1, e0).or_check()?;
        let one = Schedule::epochs_of(n, 1, 1).or_check()?;
        let (mut res_fixed, mut res_paper) = (Vec::new(), Vec::new());
        for &eta in &etas {
            let disp = t.exact(&many, eta / e0 as f64)?.theta[0] - t.exact(&one, eta)?.theta[0];
            res_fixed.push(disp - epochs_displacement(&t.tensors, n, e0, eta).or_check()?[0]);
            res_paper.push(disp - epochs_displacement_as_published(&t.tensors, n, e0, eta).or_check()?[0]);
        }
        parts.push(slope_outcome(
            &format!("E0={e0} corrected residual"),
            &etas,
            &res_fixed,
            3.0,
            0.15,
        )?);
        // The published form leaves ((E0−1)/(4E0))Nη²·2HG unexplained: its residual is O(η²).
        parts.push(slope_outcome(
            &format!("E0={e0} published (∇trC only) residual"),
            &etas,
            &res_paper,
            2.0,
            0.15,
        )?);
    }
    Ok(Outcome::all(parts))
}

// ---- taylor.helix-drift ------------------------------------------------------------------------------

fn helix_drift(ctx: &CheckContext) -> CheckResult {
    let dist = Helix.distribution();
    let mut parts = Vec::new();
    // The formula: tensors by quadrature on the valley (any z), v_z = η²/6 exactly.
    for z in [0.0, 0.9] {
        let t = population_tensors(
            &Helix,
            &dist,
            Integration::Quadrature { nodes: 8 },
            &[0.0, 0.0, z],
        )
        .or_check()?;
        let v = valley_drift(&t, 1.0, 1e-9).or_check()?;
        parts.push(Outcome::within(
            &format!("valley drift along z at z = {z} / η²"),
            1.0 / 6.0,
            v.drift_per_step[2],
            1e-12,
        ));
    }
    // Monte Carlo: online SGD (fresh x each step) from the valley, after a burn-in of 10/(η·h_min) steps.
    let (etas, trials): (Vec<f64>, usize) = if ctx.quick {
        (vec![0.01, 0.02, 0.04], 150)
    } else {
        (vec![0.01, 0.02, 0.03, 0.04, 0.05], 600)
    };
    let steps = 10_000;
    let mut ratios = Vec::new();
    for &eta in &etas {
        let burn = (10.0 / eta) as usize;
        let r = online_sgd_drift(
            &Helix,
            &dist,
            &[0.0, 0.0, 0.0],
            &DriftParams {
                eta,
                burn_in: burn,
                steps,
                trials,
                seed: 2021,
            },
        )
        .or_check()?;
        let pred = eta * eta / 6.0;
        let (ratio, se) = (r[2].mean / pred, r[2].se / pred);
        ratios.push((eta, ratio, se));
        if eta <= 0.04 + 1e-12 {
            // 3% band, with an SE small enough (≤ 1%) that the band is a real test.
            let ok = (ratio - 1.0).abs() <= 0.03 && se <= 0.01;
            parts.push(Outcome::new(
                format!("η={eta}: drift/(η²/6) within 1 ± 0.03, SE ≤ 0.01"),
                format!("η={eta}: {ratio:.4} ± {se:.4} (SE, {trials} trials × {steps} steps)"),
                ok,
            ));
        } else {
            // At η = 0.05 the O(η) correction (≈ 0.65η) is ≈ 3.3%: reported, not asserted against 3%.
            parts.push(Outcome::new(
                format!("η={eta}: reported"),
                format!("η={eta}: {ratio:.4} ± {se:.4}"),
                true,
            ));
        }
    }
    // The deviation is O(η): a weighted linear fit ratio = a + bη must extrapolate to a = 1 within 3 SE.
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(x, y, se) in &ratios {
        let w = 1.0 / (se * se);
        sw += w;
        sx += w * x;
        sy += w * y;
        sxx += w * x * x;
        sxy += w * x * y;
    }
    let det = sw * sxx - sx * sx;
    let a = (sxx * sy - sx * sxy) / det;
    let a_se = (sxx / det).sqrt();
    parts.push(Outcome::new(
        "η → 0 intercept of drift/(η²/6) = 1 within 3 SE",
        format!(
            "intercept {a:.4} ± {a_se:.4}, slope {:.3}",
            (sw * sxy - sx * sy) / det
        ),
        (a - 1.0).abs() <= 3.0 * a_se,
    ));
    Ok(Outcome::all(parts))
}

// ---- taylor.skewness ---------------------------------------------------------------------------------

fn skewness(ctx: &CheckContext) -> CheckResult {
    let l = GaussLandscape;
    let dist = l.distribution();
    let t = population_tensors(&l, &dist, Integration::Quadrature { nodes: 20 }, &[0.0]).or_check()?;
    let mut parts = vec![Outcome::within("S·J (S = −1, J = −½)", 0.5, t.s_dot_j(), 1e-12)];
    let test = test_measure(&dist, 8).or_check()?;
    let step = dist.measure(Integration::Quadrature { nodes: 80 }).or_check()?;
    let etas = geometric(0.1, if ctx.quick { 4 } else { 6 });
    let (mut diff, mut res, mut quad_err) = (Vec::new(), Vec::new(), 0.0f64);
    for &eta in &etas {
        let sgd = one_step_sgd_test_loss(&l, &step, &test, &[0.0], eta).or_check()?;
        let gauss = one_step_gaussian_noise_test_loss(&l, &t, 40, &test, &[0.0], eta).or_check()?;
        // Closed forms: E[l(θ₁)] = ½e^{η/2}(1+η)^{−1/2} for SGD, ½e^{η²/4} for Gaussian noise.
        quad_err = quad_err.max((sgd - 0.5 * (eta / 2.0).exp() / (1.0 + eta).sqrt()).abs());
        quad_err = quad_err.max((gauss - 0.5 * (eta * eta / 4.0).exp()).abs());
        let d = sgd - gauss;
        diff.push(d);
        res.push(d - skewness_correction(&t, 1, eta).or_check()?);
    }
    parts.push(Outcome::at_most("|quadrature − closed form|", quad_err, 1e-14));
    parts.push(slope_outcome(
        "SGD − Gaussian-noise SGD",
        &etas,
        &diff,
        3.0,
        0.15,
    )?);
    // The remainder is η⁴/16 + O(η⁵) (closed-form expansion), so the residual has slope 4.
    parts.push(slope_outcome("(SGD − Gaussian) + η³/12", &etas, &res, 4.0, 0.15)?);
    let k = etas.len() - 1;
    parts.push(Outcome::within(
        "(SGD − Gaussian)/η³ at the smallest η",
        -1.0 / 12.0,
        diff[k] / etas[k].powi(3),
        2.0 * etas[k] / 16.0,
    ));
    if let Some(dir) = ctx.figure_dir("taylor.skewness") {
        let neg: Vec<f64> = diff.iter().map(|d| -d).collect();
        let pred: Vec<f64> = etas.iter().map(|eta| eta.powi(3) / 12.0).collect();
        let fig = Figure::new("Gauss landscape, T = 1: Gaussian-noise SGD − SGD (quadrature)")
            .x_label("η")
            .y_label("E_Gauss[l] − E_SGD[l]")
            .log_x()
            .log_y()
            .series(Series::points("quadrature", etas.clone(), neg))
            .series(Series::line("η³/12 = (η³/6)S·J (order 3)", etas.clone(), pred));
        let files = fig.save(&dir, "skewness").or_check()?;
        parts
            .push(Outcome::new("figure written", format!("{} files", files.len()), true).with_figures(files));
    }
    // Saturating form → small-Tηh form as T → small; at T = 1, η = 1e-3 they agree to O(η h).
    let (a, b) = (
        skewness_correction(&t, 1, 1e-3).or_check()?,
        skewness_correction_saturating(&t, 1, 1e-3).or_check()?,
    );
    parts.push(Outcome::at_most(
        "|saturating − small-Tηh form| / |form| at η = 1e-3",
        ((a - b) / a).abs(),
        2e-3,
    ));
    Ok(Outcome::all(parts))
}

// ---- taylor.sde-order --------------------------------------------------------------------------------

fn sde_order(ctx: &CheckContext) -> CheckResult {
    let (h, sigma2, steps) = (1.0, 1.0, 10usize);
    // Tηh ≤ 0.1, so the η⁴ term (relative size ≈ Tηh) bends the slope by < 0.1.
    let etas = geometric(0.01, if ctx.quick { 4 } else { 6 });
    let (mut diff, mut res, mut over_eta2) = (Vec::new(), Vec::new(), Vec::new());
    for &eta in &etas {
        // Test loss (h/2)θ² from the test minimum θ₀ = 0 (G = 0).
        let sgd = 0.5 * h * sgd_second_moment(h, sigma2, 0.0, eta, steps).or_check()?;
        let sde = 0.5 * h * ito_sde_second_moment(h, sigma2, 0.0, eta, steps as f64 * eta).or_check()?;
        let d = sgd - sde;
        diff.push(d);
        res.push(d - 0.5 * h * sgd_minus_sde_leading(h, sigma2, eta, steps));
        over_eta2.push(d / (eta * eta));
    }
    let mut parts = vec![
        slope_outcome("E_SGD[l] − E_SDE[l]", &etas, &diff, 3.0, 0.15)?,
        slope_outcome("difference − (h/2)η³σ²hT", &etas, &res, 4.0, 0.15)?,
        // No η² term: difference/η² → 0 linearly.
        slope_outcome("difference/η²", &etas, &over_eta2, 1.0, 0.15)?,
    ];
    // Both carry the same η² term (T/2)η²hσ² (Cor vsode against the ODE): check it on SGD alone. SGD's
    // next term is −(h²σ²/2)T(T−1)η³, so |E/η² − (T/2)hσ²| ≈ (h²σ²/2)T²η; the tolerance T²η is twice that.
    let eta = etas[etas.len() - 1];
    let sgd = 0.5 * h * sgd_second_moment(h, sigma2, 0.0, eta, steps).or_check()?;
    parts.push(Outcome::within(
        "E_SGD[l]/η² → (T/2)hσ² (the Cor vsode η² term, the same for the SDE)",
        0.5 * steps as f64 * h * sigma2,
        sgd / (eta * eta),
        steps as f64 * steps as f64 * eta,
    ));
    // The SGD closed form against exact enumeration with Rademacher noise (N = T, B = 1: a fresh point per step).
    let q = QuadraticNoise::mean_estimation(h, sigma2.sqrt()).or_check()?;
    let rad = DataDist::Finite(FiniteDist::rademacher());
    let t_enum = 5;
    let sched = Schedule::new(t_enum, 1, t_enum).or_check()?;
    let eta = 0.1;
    let ex = exact_expectation(&q, &rad, &[0.0], &sched, eta, ExactParams::default()).or_check()?;
    let closed = 0.5 * h * sgd_second_moment(h, sigma2, 0.0, eta, t_enum).or_check()?;
    parts.push(Outcome::within(
        "exact enumeration E_SGD[l] vs closed form",
        closed,
        ex.test_loss,
        1e-14,
    ));
    Ok(Outcome::all(parts))
}

// ---- taylor.overfit-tic ------------------------------------------------------------------------------

/// The predicted overfit (test loss) and gap (test − train loss) against their exact expectations over the
/// finite data distribution, from `θ_0` under `schedule` with step `eta`: two outcomes named by `labels`,
/// each to 1e-12.
fn exact_overfit_outcomes(
    labels: [&str; 2],
    pred: &OverfitPrediction,
    (landscape, data, theta0): (&dyn Landscape, &DataDist, &[f64]),
    schedule: &Schedule,
    eta: f64,
) -> Result<[Outcome; 2], CheckError> {
    let ex = exact_expectation(landscape, data, theta0, schedule, eta, ExactParams::default()).or_check()?;
    Ok([
        Outcome::within(labels[0], pred.overfit, ex.test_loss, 1e-12),
        Outcome::within(labels[1], pred.gap, ex.test_loss - ex.train_loss, 1e-12),
    ])
}

fn overfit_tic(ctx: &CheckContext) -> CheckResult {
    let (hh, s, n, steps, eta) = (0.3, 2.0, 5usize, 40usize, 0.1);
    let me = QuadraticNoise::mean_estimation(hh, s).or_check()?;
    let c = DMatrix::from_element(1, 1, s * s);
    let h = DMatrix::from_element(1, 1, hh);
    let pred = overfit_gd(&h, &c, n, eta, steps).or_check()?;
    let mut parts = Vec::new();
    // Monte Carlo over Gaussian training sets (seeded); the test loss by quadrature (exact for quadratics).
    let dist = me.gaussian_data();
    let test = test_measure(&dist, 4).or_check()?;
    let trials = if ctx.quick { 20_000 } else { 200_000 };
    let (of, gap) = gd_overfit_monte_carlo(
        &me,
        &dist,
        &test,
        &[0.0],
        &OverfitMcParams {
            n,
            eta,
            steps,
            trials,
            seed: 77,
        },
    )
    .or_check()?;
    for (what, mc, p) in [("overfit", of, pred.overfit), ("gap", gap, pred.gap)] {
        parts.push(Outcome::new(
            format!("MC {what} = {p:.5} within 3 SE"),
            format!("{:.5} ± {:.5} (SE, {trials} trials)", mc.mean, mc.se),
            (mc.mean - p).abs() <= 3.0 * mc.se,
        ));
    }
    // Exact: the formulas are exact for any zero-mean unit-variance x; enumerate Rademacher training sets.
    let rad = DataDist::Finite(FiniteDist::rademacher());
    let gd = Schedule::gd(n, steps).or_check()?;
    parts.extend(exact_overfit_outcomes(
        ["exact overfit (enumeration)", "exact gap (enumeration)"],
        &pred,
        (&me, &rad, &[0.0]),
        &gd,
        eta,
    )?);
    // 2-D with non-commuting H and C: only diag(QᵀCQ) enters; enumeration over {±1}² data.
    let h2 = DMatrix::from_row_slice(2, 2, &[1.0, 0.4, 0.4, 0.5]);
    let s2 = DMatrix::from_row_slice(2, 2, &[1.0, 0.3, -0.2, 0.8]);
    let q2 = QuadraticNoise::new(h2.clone(), s2.clone()).or_check()?;
    let square = FiniteDist::uniform(vec![
        vec![-1.0, -1.0],
        vec![-1.0, 1.0],
        vec![1.0, -1.0],
        vec![1.0, 1.0],
    ])
    .or_check()?;
    let (n2, t2, eta2) = (3usize, 7usize, 0.3);
    let p2 = overfit_gd(&h2, &(&s2 * s2.transpose()), n2, eta2, t2).or_check()?;
    let gd2 = Schedule::gd(n2, t2).or_check()?;
    parts.extend(exact_overfit_outcomes(
        ["2-D exact overfit", "2-D exact gap"],
        &p2,
        (&q2, &DataDist::Finite(square), &[0.0, 0.0]),
        &gd2,
        eta2,
    )?);
    // TIC: the gap tends to tr(CH⁻¹)/N; with C = H (well-specified) it is the AIC d/N.
    let long = overfit_gd(&h2, &(&s2 * s2.transpose()), n2, eta2, 5000).or_check()?;
    let tic =
        (&s2 * s2.transpose() * h2.clone().try_inverse().ok_or("H not invertible")?).trace() / n2 as f64;
    parts.push(Outcome::within("gap(T → ∞) = tr(CH⁻¹)/N", tic, long.gap, 1e-12));
    let aic = overfit_gd(&h2, &h2, n2, eta2, 5000).or_check()?;
    parts.push(Outcome::within(
        "C = H: TIC = AIC d/N",
        2.0 / n2 as f64,
        aic.tic,
        1e-12,
    ));
    let _ = me.dim();
    Ok(Outcome::all(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_checks_pass_quick() {
        imreg_check::assert_all_pass(&checks(), true);
    }

    #[test]
    fn ids_are_the_issue_list() {
        let ids: Vec<&str> = checks().iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            [
                "taylor.eta2-law",
                "taylor.sgd-minus-gd",
                "taylor.epochs-corrected",
                "taylor.helix-drift",
                "taylor.skewness",
                "taylor.sde-order",
                "taylor.overfit-tic"
            ]
        );
    }
}
