//! SLQ quadrature moments, Hutchinson and Hutch++ unbiasedness.
mod common;
use imreg_objective::{Batch, LossKind, Objective};
use imreg_spectra::*;

fn mlp_hessian_dense() -> (nalgebra::DMatrix<f64>, DenseOperator) {
    let (m, theta) = common::mlp(16, 4, 6, 3, LossKind::CrossEntropy, 5);
    let h = m.dense_hessian(&theta, Batch::Full).unwrap();
    (h.clone(), DenseOperator::new(h).unwrap())
}

#[test]
fn slq_quadrature_moments_per_probe() {
    let (h, op) = mlp_hessian_dense();
    let p = op.dim();
    let scale = h.norm();
    let steps = 6;
    let d = slq(
        &op,
        &SlqOptions {
            probes: 8,
            steps,
            kind: ProbeKind::Rademacher,
            seed: 4,
        },
    )
    .unwrap();
    for (k, rule) in d.probes.iter().enumerate() {
        let v = nalgebra::DVector::from_vec(imreg_spectra::slq::probe(ProbeKind::Rademacher, p, 4, k));
        let hv = &h * &v;
        // Gauss quadrature with m nodes is exact for degree ≤ 2m − 1: μ_v(λ^k) = vᵀH^k v. Rounding: the
        // Lanczos recurrence is backward stable, errors O(m ε ‖H‖^k); allow 1e-12 ‖H‖^k.
        let want = [1.0, v.dot(&hv), hv.dot(&hv), hv.dot(&(&h * &hv))];
        for (deg, w) in want.iter().enumerate() {
            let got = rule.moment(deg as i32);
            assert!(
                (got - w).abs() <= 1e-12 * scale.powi(deg as i32),
                "probe {k} degree {deg}: {got} vs {w}"
            );
        }
        assert_eq!(rule.steps, steps);
    }
}

#[test]
fn slq_basis_probes_give_exact_normalized_moments() {
    let (h, op) = mlp_hessian_dense();
    let p = op.dim();
    let d = slq(
        &op,
        &SlqOptions {
            probes: p,
            steps: 4,
            kind: ProbeKind::Basis,
            seed: 0,
        },
    )
    .unwrap();
    // ∫λ dμ = tr(H)/p and ∫λ² dμ = ‖H‖²_F/p, to rounding (1e-12 relative to ‖H‖, ‖H‖²)
    let scale = h.norm();
    assert!((d.moment(1) - h.trace() / p as f64).abs() <= 1e-12 * scale);
    assert!((d.moment(2) - h.norm_squared() / p as f64).abs() <= 1e-12 * scale * scale);
    // all p unit vectors and 2m − 1 = 7 ≥ degree: reported exact over p terms
    for deg in [1, 2, 7] {
        let e = d.moment_estimate(deg).unwrap();
        assert_eq!(e, Estimate::exact(d.moment(deg), p as u64), "degree {deg}");
    }
    assert!(!d.moment_estimate(8).unwrap().is_exact());
    let partial = slq(
        &op,
        &SlqOptions {
            probes: p - 1,
            steps: 4,
            kind: ProbeKind::Basis,
            seed: 0,
        },
    )
    .unwrap();
    assert!(matches!(
        partial.moment_estimate(1),
        Err(SpectraError::Invalid { .. })
    ));
    // the smoothed density integrates to one and has the same mean (trapezoid on a wide, fine grid)
    let (lo, hi) = (-2.0 * scale, 2.0 * scale);
    let grid: Vec<f64> = (0..=4000).map(|i| lo + (hi - lo) * i as f64 / 4000.0).collect();
    let sigma = scale / 50.0;
    let rho = d.smoothed(&grid, sigma).unwrap();
    let dx = grid[1] - grid[0];
    let mass: f64 = rho.iter().sum::<f64>() * dx;
    let mean: f64 = rho.iter().zip(&grid).map(|(r, t)| r * t).sum::<f64>() * dx;
    assert!((mass - 1.0).abs() < 1e-10, "mass {mass}");
    assert!(
        (mean - d.moment(1)).abs() < 1e-8 * scale,
        "mean {mean} vs {}",
        d.moment(1)
    );
    assert!(d.smoothed(&grid, 0.0).is_err());
}

#[test]
fn slq_rademacher_moments_are_unbiased() {
    let (h, op) = mlp_hessian_dense();
    let p = op.dim() as f64;
    let d = slq(
        &op,
        &SlqOptions {
            probes: 400,
            steps: 3,
            kind: ProbeKind::Rademacher,
            seed: 1,
        },
    )
    .unwrap();
    for (deg, exact) in [(1, h.trace() / p), (2, h.norm_squared() / p)] {
        let est = d.moment_estimate(deg).unwrap();
        let (mean, se) = (est.value, est.std_error);
        assert_eq!(
            est.estimator,
            Estimator::MonteCarlo {
                samples: 400,
                converged: None
            }
        );
        assert!(
            (mean - exact).abs() <= 3.0 * se,
            "degree {deg}: {mean} vs {exact} (SE {se})"
        );
        assert!((mean - d.moment(deg)).abs() < 1e-12 * exact.abs());
    }
}

#[test]
fn hutchinson_is_unbiased_within_three_standard_errors() {
    let (h, op) = mlp_hessian_dense();
    let exact = h.trace();
    assert!((exact_trace(&op).unwrap() - exact).abs() < 1e-12 * h.norm());
    let t = hutchinson(
        &op,
        &TraceOptions {
            matvecs: 3000,
            seed: 7,
        },
    )
    .unwrap();
    assert!(
        t.std_error > 0.0 && (t.estimate - exact).abs() <= 3.0 * t.std_error,
        "{t:?} vs {exact}"
    );
    assert_eq!(t.applications, 3000);
    let e = t.to_estimate();
    assert!(!e.is_exact() && e.samples() == 3000 && e.converged() && e.std_error == t.std_error);
    // Rademacher variance is 2(‖H‖²_F − Σ h_ii²): the reported SE estimates its square root / √m.
    let var = 2.0 * (h.norm_squared() - h.diagonal().iter().map(|d| d * d).sum::<f64>());
    let se_true = (var / 3000.0).sqrt();
    assert!(
        (t.std_error / se_true - 1.0).abs() < 0.1,
        "SE {} vs {se_true}",
        t.std_error
    );
    // seeded: the same options give the same bits
    let again = hutchinson(
        &op,
        &TraceOptions {
            matvecs: 3000,
            seed: 7,
        },
    )
    .unwrap();
    assert_eq!(t.estimate.to_bits(), again.estimate.to_bits());
}

#[test]
fn hutch_plus_plus_is_unbiased_and_beats_hutchinson_on_decaying_spectra() {
    // fast-decaying spectrum λ_i = 0.7^i with signs: Hutch++ removes the top directions exactly.
    let lam: Vec<f64> = (0..60)
        .map(|i| if i % 5 == 0 { -1.0 } else { 1.0 } * 0.7f64.powi(i))
        .collect();
    let op = DenseOperator::planted(&lam, 3).unwrap();
    let exact: f64 = lam.iter().sum();
    let runs = 300;
    let (mut pp, mut hu, mut se2) = (Vec::new(), Vec::new(), 0.0);
    for seed in 0..runs {
        let t = hutch_plus_plus(&op, &TraceOptions { matvecs: 30, seed }).unwrap();
        pp.push(t.estimate);
        se2 += t.std_error * t.std_error / runs as f64;
        hu.push(
            hutchinson(&op, &TraceOptions { matvecs: 30, seed })
                .unwrap()
                .estimate,
        );
    }
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        (
            m,
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
        )
    };
    let (mp, sp) = stats(&pp);
    let (mh, sh) = stats(&hu);
    let n = (runs as f64).sqrt();
    assert!(
        (mp - exact).abs() <= 3.0 * sp / n,
        "Hutch++ mean {mp} vs {exact} (SE {})",
        sp / n
    );
    assert!(
        (mh - exact).abs() <= 3.0 * sh / n,
        "Hutchinson mean {mh} vs {exact} (SE {})",
        sh / n
    );
    assert!(sp < 0.1 * sh, "Hutch++ sd {sp} vs Hutchinson sd {sh}");
    // the reported SE² estimates the conditional variance given the sketch; the estimator is conditionally
    // unbiased, so its mean over runs is the variance across runs (300 runs: ±20% covers the sampling
    // error of both variance estimates)
    assert!(
        (se2 / (sp * sp) - 1.0).abs() < 0.2,
        "mean SE² {se2} vs variance {}",
        sp * sp
    );
}
