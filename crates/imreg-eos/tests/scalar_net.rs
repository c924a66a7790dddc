//! Theory tests of the depth-2 linear network (`docs/theory/scalar-net.md`): gradient-flow limit, GD limit,
//! data form, width reduction, determinism of the η sweep, outcomes of bad runs.
use imreg_eos::{
    gd_trajectory, run_gd, sweep_eta, EosError, GdOutcome, GfSolution, RunOptions, ScalarNetState,
    SmallEtaExpansion,
};
use rand::Rng;

fn random_net(seed: u64, k: usize) -> ScalarNetState {
    ScalarNetState::random(k, seed, 7, Some(0.3..3.0)).unwrap()
}

#[test]
fn gradient_and_loss_agree_with_finite_differences() {
    for seed in 0..50 {
        let net = random_net(300 + seed, 3);
        let g = net.gradient();
        let h = 1e-6;
        for i in 0..6 {
            let (mut a, mut b) = (net.a().to_vec(), net.b().to_vec());
            let (mut a2, mut b2) = (a.clone(), b.clone());
            if i < 3 {
                a[i] += h;
                a2[i] -= h;
            } else {
                b[i - 3] += h;
                b2[i - 3] -= h;
            }
            let lp = ScalarNetState::new(a, b, net.phi())
                .unwrap()
                .with_sigma2(net.sigma2())
                .unwrap()
                .loss();
            let lm = ScalarNetState::new(a2, b2, net.phi())
                .unwrap()
                .with_sigma2(net.sigma2())
                .unwrap()
                .loss();
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-7 * (1.0 + g[i].abs()),
                "seed {seed} coord {i}: {fd} vs {}",
                g[i]
            );
        }
    }
}

#[test]
fn data_form_is_the_scaled_canonical_loss() {
    let mut rng = imreg_objective::rng::stream(5, 0);
    let xs = imreg_objective::rng::normal_vec(&mut rng, 40);
    let ys: Vec<f64> = xs.iter().map(|x| 0.8 * x + 0.3 * rng.random::<f64>()).collect();
    let net = ScalarNetState::from_data(&xs, &ys, vec![0.4, -1.0], vec![0.9, 0.2]).unwrap();
    let sxx: f64 = xs.iter().map(|x| x * x).sum();
    assert!((net.sigma2() - sxx / 40.0).abs() < 1e-15);
    // L_data − (σ²/2)(aᵀb − Φ)² is a constant of (a, b).
    let c0 = net.data_loss(&xs, &ys) - net.loss();
    for seed in 0..20 {
        let other = random_net(seed, 2);
        let o = ScalarNetState::new(other.a().to_vec(), other.b().to_vec(), net.phi())
            .unwrap()
            .with_sigma2(net.sigma2())
            .unwrap();
        let c = o.data_loss(&xs, &ys) - o.loss();
        assert!(
            (c - c0).abs() <= 1e-13 * (1.0 + o.data_loss(&xs, &ys)),
            "{c} vs {c0}"
        );
    }
    // GD with step η on the data form = GD with ησ² on the canonical loss.
    let canon = ScalarNetState::new(net.a().to_vec(), net.b().to_vec(), net.phi()).unwrap();
    let (p, q) = (
        net.gd_step(0.1).unwrap(),
        canon.gd_step(0.1 * net.sigma2()).unwrap(),
    );
    for (x, y) in p.a().iter().chain(p.b()).zip(q.a().iter().chain(q.b())) {
        assert!((x - y).abs() <= 1e-15 * (1.0 + x.abs()));
    }
    assert!((net.sharpness() - net.sigma2() * canon.sharpness()).abs() <= 1e-14 * net.sharpness());
}

#[test]
fn t3_gf_limit_is_a_minimum_with_the_closed_form_norm() {
    for seed in 0..50 {
        let net = random_net(700 + seed, 1 + seed as usize % 5);
        let gf = GfSolution::new(&net).unwrap();
        let lim = gf.limit();
        let inv = net.invariants();
        assert!(
            lim.residual().abs() <= 1e-13 * (1.0 + net.phi().abs() + inv.norm),
            "seed {seed}"
        );
        let l = (4.0 * net.phi().powi(2) + inv.p).sqrt();
        assert!((lim.norm() - l).abs() <= 1e-13 * l);
        assert!((gf.lambda_gf() - l).abs() <= 1e-15 * l);
        // The limit preserves the matrix imbalance aaᵀ − bbᵀ.
        assert!((lim.imbalance_matrix() - net.imbalance_matrix()).amax() <= 1e-13 * l);
    }
}

#[test]
fn t4_gd_limit_closed_form_and_flatter_than_gf() {
    let mut checked = 0;
    for seed in 0..300 {
        let net = random_net(900 + seed, 1 + seed as usize % 4);
        let Ok(gf) = GfSolution::new(&net) else { continue };
        // Steps well inside the stable range of both the init and the GF limit.
        let eta = 0.9 / (net.sigma2() * gf.lambda_gf().max(net.invariants().norm));
        match run_gd(&net, eta, &RunOptions::default()).unwrap() {
            GdOutcome::Converged {
                lambda_inf,
                lambda_gd,
                max_eta_eps,
                sharpness_inf,
                ..
            } => {
                assert!((lambda_inf - lambda_gd).abs() <= 1e-10 * lambda_gd, "seed {seed}");
                assert!((sharpness_inf - net.sigma2() * lambda_inf).abs() <= 1e-10 * sharpness_inf);
                if max_eta_eps < std::f64::consts::SQRT_2 {
                    assert!(
                        lambda_gd < gf.lambda_gf(),
                        "seed {seed}: {lambda_gd} ≥ {}",
                        gf.lambda_gf()
                    );
                    checked += 1;
                }
            }
            other => panic!("seed {seed}: {other:?}"),
        }
    }
    assert!(checked > 200, "only {checked} runs exercised λ_GD < λ_GF");
}

#[test]
fn t4_small_eta_expansion_first_order_and_exponential_forms_agree_to_second_order() {
    let net = ScalarNetState::scalar(1.5, 0.01, 1.0).unwrap();
    let e = SmallEtaExpansion::new(&net).unwrap();
    // ∫ε² quoted 0.2035847; λ_GF quoted 3.0103239 (cross-check at quoted precision).
    assert!((e.residual_sq_integral - 0.2035847).abs() < 1e-7);
    let etas = [1e-3, 2e-3, 4e-3, 8e-3];
    let gaps: Vec<f64> = etas
        .iter()
        .map(|h| (e.lambda_gd_first_order(*h) - e.lambda_gd_exponential(*h)).abs())
        .collect();
    let fit = imreg_check::loglog_slope(&etas, &gaps).unwrap();
    assert!((fit.slope - 2.0).abs() < 0.05, "slope {}", fit.slope);
}

#[test]
fn width_one_reduction_is_the_identity_and_lift_inverts_it() {
    let net = ScalarNetState::scalar(-0.3, 1.7, 0.4).unwrap();
    let red = net.reduce();
    assert_eq!(red.scalar.a(), net.a());
    assert_eq!(red.scalar.b(), net.b());
    let net5 = random_net(42, 5);
    let red5 = net5.reduce();
    let back = red5.lift(red5.scalar.a()[0], red5.scalar.b()[0]);
    for (x, y) in back
        .a()
        .iter()
        .chain(back.b())
        .zip(net5.a().iter().chain(net5.b()))
    {
        assert!((x - y).abs() < 1e-14 * (1.0 + y.abs()));
    }
    let (i, j) = (red5.scalar.invariants(), net5.invariants());
    assert!((i.s - j.s).abs() < 1e-14 * j.s && (i.d - j.d).abs() < 1e-14 * j.d);
}

#[test]
fn eta_sweep_is_ordered_and_bitwise_independent_of_thread_count() {
    let net = random_net(77, 4);
    let etas: Vec<f64> = (1..=64).map(|i| i as f64 / 64.0 / net.sigma2()).collect();
    let run = |threads: usize| {
        imreg_objective::threads::on_threads(threads, || sweep_eta(&net, &etas, &RunOptions::default()))
            .unwrap()
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(format!("{one:?}"), format!("{two:?}"));
    for (eta, out) in etas.iter().zip(&one) {
        assert_eq!(
            format!("{out:?}"),
            format!("{:?}", run_gd(&net, *eta, &RunOptions::default()))
        );
    }
}

#[test]
fn bad_inputs_are_typed_errors_and_bad_runs_are_outcomes() {
    let net = ScalarNetState::scalar(1.5, 0.01, 1.0).unwrap();
    assert!(matches!(
        run_gd(&net, -1.0, &RunOptions::default()),
        Err(EosError::NonPositiveStep { .. })
    ));
    assert!(matches!(
        gd_trajectory(&net, 0.0, 10, 1e6),
        Err(EosError::NonPositiveStep { .. })
    ));
    assert!(matches!(
        ScalarNetState::scalar(f64::NAN, 1.0, 1.0),
        Err(EosError::NonFinite { field: "a", .. })
    ));
    let out = sweep_eta(&net, &[0.1, -0.1, 1.05], &RunOptions::default());
    assert!(out[0].as_ref().is_ok_and(|o| o.is_converged()));
    assert!(out[1].is_err());
    assert!(matches!(
        out[2],
        Ok(GdOutcome::NotConverged { steps: 400_000, .. })
    ));
    // A huge init with a large step blows up: reported with its step.
    let big = ScalarNetState::scalar(50.0, 40.0, 1.0).unwrap();
    assert!(
        matches!(run_gd(&big, 0.5, &RunOptions::default()).unwrap(), GdOutcome::Diverged { step, .. } if step < 20)
    );
    let tr = gd_trajectory(&big, 0.5, 100, 1e30).unwrap();
    assert!(tr.a.len() < 20 && tr.norm.iter().all(|v| v.is_finite()));
}
