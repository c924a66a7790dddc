//! Tests of the trajectory tracker, the EoS / EoSS / break-even runners, against independent oracles
//! (closed forms on quadratics, dense eigensolves, single-example gradients).
use imreg_eos::tracking::{
    epoch_stream_reshuffling, step_seed, LossCurve, RunOutcome, TrackError, TrackResult,
};
use imreg_eos::{
    break_even, edge_of_stability, edge_of_stochastic_stability, sweep_edge_of_stability, BreakEvenOptions,
    DigitsMlp, EosOptions, EossOptions, GfHorizon, GfOptions, SharpnessProbe,
};
use imreg_objective::{Batch, Objective, ObjectiveError, Quadratic};
use imreg_sgd::observe::{Cadence, Iterates, Scheduled};
use imreg_sgd::train::{train, Blowup, Optimizer, Seeds, TrainOptions};
use imreg_sgd::SgdError;
use nalgebra::{DMatrix, SymmetricEigen};

fn tiny() -> (imreg_objective::models::Mlp, Vec<f64>) {
    let p = DigitsMlp {
        hidden: vec![6],
        ..DigitsMlp::cohen(24)
    };
    p.build().unwrap()
}

/// GD with the loss curve first and the iterates every `every` steps.
fn gd_with_loss_curve(
    q: &Quadratic,
    lr: f64,
    steps: usize,
    every: usize,
) -> (RunOutcome, LossCurve, Iterates) {
    let mut loss = LossCurve::new(1e8);
    let mut iterates = Iterates::default();
    let opts = TrainOptions {
        lr,
        steps,
        ..Default::default()
    };
    let run: TrackResult<_> = train(
        q,
        &[1.0, -2.0],
        &Optimizer::gd(),
        &opts,
        &mut [
            Scheduled::new(Cadence::Every(1), &mut loss),
            Scheduled::new(Cadence::Every(every), &mut iterates),
        ],
    );
    (run.unwrap().outcome, loss, iterates)
}

#[test]
fn gd_on_a_quadratic_matches_the_closed_form_and_divergence_is_reported() {
    // C = ½ Σ h_j θ_j²: θ_k = (1 − ηh)^k θ₀ exactly (up to rounding of the repeated product).
    let h = [1.0, 3.0];
    let q = Quadratic::diagonal(&h);
    let (outcome, loss, iterates) = gd_with_loss_curve(&q, 0.1, 30, 10);
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(
        iterates.records.iter().map(|r| r.0).collect::<Vec<_>>(),
        [0, 10, 20, 30]
    );
    for (step, theta) in &iterates.records {
        for (j, (&x, &x0)) in theta.iter().zip(&[1.0, -2.0]).enumerate() {
            let want = (1.0f64 - 0.1 * h[j]).powi(*step as i32) * x0;
            assert!((x - want).abs() <= 1e-14, "step {step} coord {j}: {x} vs {want}");
        }
    }
    // The loss curve is C(θ_t) at every step, the final iterate's included.
    assert_eq!(loss.records.len(), 31);
    for (step, l) in &loss.records {
        let want: f64 = h
            .iter()
            .zip(&[1.0, -2.0])
            .map(|(&hj, &x0)| 0.5 * hj * ((1.0 - 0.1 * hj).powi(*step as i32) * x0).powi(2))
            .sum();
        assert!((l - want).abs() <= 1e-14, "step {step}: {l} vs {want}");
    }
    // η = 1 > 2/3: the h = 3 mode grows by |1 − 3| = 2 per step; loss ½·3·4·4^k > 1e8 from k = 12 on. The
    // loss curve reports it at that step, with the value, and keeps it as its last record.
    let (outcome, loss, iterates) = gd_with_loss_curve(&q, 1.0, 100, 4);
    let k = (1..).find(|&k| 0.5 * 3.0 * 4.0 * 4f64.powi(k) > 1e8).unwrap() as usize;
    match outcome {
        RunOutcome::Diverged {
            step,
            blowup: Blowup::Observed(l),
        } => assert!(
            step == k && l > 1e8 && loss.records.last() == Some(&(k, l)),
            "{step} vs {k}"
        ),
        s => panic!("expected divergence, got {s:?}"),
    }
    assert_eq!(outcome.diverged_at(), Some(k));
    // The diverged iterate θ_12 is due for the iterates (every 4 steps) but not measured: the loss curve,
    // listed first, ended the run there.
    assert_eq!(iterates.records.last().unwrap().0, 8);
}

#[test]
fn bad_options_are_typed_errors() {
    let (mlp, theta) = tiny();
    let eos = |o: EosOptions| edge_of_stability(&mlp, &theta, &o).unwrap_err();
    let gd = EosOptions {
        steps: 4,
        gradient_flow: None,
        ..Default::default()
    };
    for lr in [0.0, f64::NAN] {
        assert!(matches!(
            eos(EosOptions { lr, ..gd.clone() }),
            TrackError::Train(SgdError::NonPositiveStep { name: "lr", .. })
        ));
    }
    assert!(matches!(
        eos(EosOptions {
            every: 0,
            ..gd.clone()
        }),
        TrackError::Train(SgdError::Invalid { field: "cadence", .. })
    ));
    assert!(matches!(
        eos(EosOptions {
            lanczos_iters: 0,
            ..gd.clone()
        }),
        TrackError::Invalid {
            field: "lanczos_iters",
            ..
        }
    ));
    assert!(matches!(
        edge_of_stability(&mlp, &theta[1..], &gd).unwrap_err(),
        TrackError::Train(SgdError::Length { name: "theta0", .. })
    ));
    let mut nan = theta.clone();
    nan[3] = f64::NAN;
    assert!(edge_of_stability(&mlp, &nan, &gd).is_err());
    let eoss = EossOptions {
        batch_size: 25,
        steps: 4,
        mini_bs: None,
        ..Default::default()
    };
    assert!(matches!(
        edge_of_stochastic_stability(&mlp, &theta, &eoss).unwrap_err(),
        TrackError::Train(SgdError::Objective(ObjectiveError::Invalid { field, .. })) if field == "batch_size"
    ));
    assert!(DigitsMlp::cohen(0).build().is_err());
    assert!(DigitsMlp::cohen(5000).build().is_err());
}

#[test]
fn reshuffled_sgd_visits_every_example_once_per_epoch() {
    // With per-example quadratics ℓ_i = ½(θ − i)², the SGD step on batch B moves θ by −η(θ − mean(B)); with
    // η = 1 the iterate is the batch mean, so the iterates reveal the batches.
    let n = 12;
    let a: Vec<DMatrix<f64>> = (0..n).map(|_| DMatrix::from_element(1, 1, 1.0)).collect();
    let b: Vec<nalgebra::DVector<f64>> = (0..n)
        .map(|i| nalgebra::DVector::from_element(1, -(i as f64)))
        .collect();
    let q = Quadratic::new(a, b).unwrap();
    let opts = TrainOptions {
        lr: 1.0,
        steps: 12,
        seeds: Seeds::from_seed(3),
        ..Default::default()
    };
    let mut iterates = Iterates::default();
    let run: TrackResult<_> = train(
        &q,
        &[0.5],
        &Optimizer::sgd(epoch_stream_reshuffling(1)),
        &opts,
        &mut [Scheduled::new(Cadence::Every(1), &mut iterates)],
    );
    assert_eq!(run.unwrap().outcome, RunOutcome::Completed);
    let mut seen: Vec<f64> = iterates.records[1..].iter().map(|r| r.1[0]).collect();
    seen.sort_by(f64::total_cmp);
    assert_eq!(seen, (0..n).map(|i| i as f64).collect::<Vec<_>>());
}

#[test]
fn warm_started_sharpness_matches_the_dense_hessian() {
    let (mlp, theta) = tiny();
    let h = mlp.dense_hessian(&theta, Batch::Full).unwrap();
    let dense = SymmetricEigen::new(h).eigenvalues.max();
    let mut probe = SharpnessProbe::new(200, 1e-12, 1);
    let s = probe.sharpness(&mlp, &theta).unwrap();
    assert!((s.value - dense).abs() <= 1e-9 * dense, "{} vs {dense}", s.value);
    // Warm start at a nearby point converges in fewer iterations and to the dense value there.
    let g = mlp.grad(&theta, Batch::Full).unwrap();
    let theta2: Vec<f64> = theta.iter().zip(&g).map(|(t, g)| t - 0.01 * g).collect();
    let dense2 = SymmetricEigen::new(mlp.dense_hessian(&theta2, Batch::Full).unwrap())
        .eigenvalues
        .max();
    let s2 = probe.sharpness(&mlp, &theta2).unwrap();
    assert!((s2.value - dense2).abs() <= 1e-9 * dense2);
    assert!(
        s2.iterations < s.iterations,
        "{} vs {}",
        s2.iterations,
        s.iterations
    );
}

#[test]
fn break_even_quantities_match_dense_oracles() {
    let (mlp, theta) = tiny();
    let opts = BreakEvenOptions {
        lr: 0.1,
        steps: 0,
        every: 1,
        subset: 24,
        lanczos_iters: 200,
        lanczos_tol: 1e-12,
        fisher_samples: 1,
        ..Default::default()
    };
    let run = break_even(&mlp, &theta, &opts).unwrap();
    let p0 = run.points[0];
    // Dense K from single-example gradients (independent of the Gram route).
    let n = mlp.n_examples();
    let gs: Vec<Vec<f64>> = (0..n)
        .map(|i| mlp.grad(&theta, Batch::Indices(&[i])).unwrap())
        .collect();
    let d = mlp.dim();
    let mean: Vec<f64> = (0..d)
        .map(|j| gs.iter().map(|g| g[j]).sum::<f64>() / n as f64)
        .collect();
    let mut k = DMatrix::<f64>::zeros(d, d);
    for g in &gs {
        let c = nalgebra::DVector::from_iterator(d, g.iter().zip(&mean).map(|(a, m)| a - m));
        k += &c * c.transpose() / n as f64;
    }
    let tr_k = k.trace();
    let top_k = SymmetricEigen::new(k).eigenvalues.max();
    assert!(
        (p0.trace_k - tr_k).abs() <= 1e-10 * tr_k,
        "{} vs {tr_k}",
        p0.trace_k
    );
    assert!(
        (p0.lambda_k - top_k).abs() <= 1e-9 * top_k,
        "{} vs {top_k}",
        p0.lambda_k
    );
    let top_h = SymmetricEigen::new(mlp.dense_hessian(&theta, Batch::Full).unwrap())
        .eigenvalues
        .max();
    assert!((p0.lambda_h - top_h).abs() <= 1e-9 * top_h);
    assert!(p0.trace_f.is_finite() && p0.trace_f > 0.0);
}

#[test]
fn eos_run_tracks_gradient_flow_at_small_eta_and_reports_divergence() {
    let (mlp, theta) = tiny();
    // GD vs gradient flow at t = ηk = 0.4 for η and η/2: Euler's global error is O(η), so the distance halves
    // (slope 1 ± 0.15 over the factor 2).
    let dist = |lr: f64, steps: usize| {
        let r = edge_of_stability(
            &mlp,
            &theta,
            &EosOptions {
                lr,
                steps,
                every: steps / 4,
                gradient_flow: Some(GfOptions {
                    horizon: GfHorizon::Step(steps),
                    // the flow's sharpness at steps 0, steps/2, steps only
                    sharpness_every: Some(steps / 2),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
        let g = r.gradient_flow.unwrap();
        assert_eq!(g.steps, (0..=4).map(|i| i * steps / 4).collect::<Vec<_>>());
        assert_eq!(g.sharpness_steps, vec![0, steps / 2, steps]);
        assert_eq!(g.sharpness.len(), 3);
        assert_eq!(g.relative_distance[0], 0.0);
        g.final_distance
    };
    let (d1, d2) = (dist(0.02, 20), dist(0.01, 40));
    let slope = (d1 / d2).log2();
    assert!((slope - 1.0).abs() <= 0.15, "{d1:e} {d2:e} slope {slope}");
    // A step far beyond 2/λ_max blows up: reported with its step, never a panic.
    let r = edge_of_stability(
        &mlp,
        &theta,
        &EosOptions {
            lr: 1e3,
            steps: 200,
            every: 10,
            gradient_flow: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        matches!(r.outcome, RunOutcome::Diverged { step, .. } if step < 200),
        "{:?}",
        r.outcome
    );
}

#[test]
fn sweeps_are_bitwise_identical_at_one_and_two_threads() {
    let (mlp, theta) = tiny();
    let opts: Vec<EosOptions> = [0.05, 0.1]
        .iter()
        .map(|&lr| EosOptions {
            lr,
            steps: 30,
            every: 10,
            gradient_flow: Some(GfOptions {
                horizon: GfHorizon::Step(30),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let run = |threads: usize| {
        imreg_objective::threads::on_threads(threads, || {
            let eos: Vec<_> = sweep_edge_of_stability(&mlp, &theta, &opts)
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
            let eoss = edge_of_stochastic_stability(
                &mlp,
                &theta,
                &EossOptions {
                    lr: 0.1,
                    batch_size: 4,
                    steps: 20,
                    every: 10,
                    ..Default::default()
                },
            )
            .unwrap();
            (eos, eoss)
        })
        .unwrap()
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a, b);
    assert_ne!(step_seed(1, 0), step_seed(1, 1));
}

#[test]
fn the_mse_convention_is_a_step_size_rescaling() {
    // Without the ½ the loss, its gradient and its Hessian double, so SGD on the MSE at η takes the steps of
    // SGD on the ½-MSE at 2η, and batch sharpness/(2/η) and λ_max/(2/η) are the same numbers (the EoSS
    // setting's reason not to count the convention as a lever). Scaling by 2 is exact in binary floating
    // point, so the trajectories agree to rounding.
    let problem = |half| DigitsMlp {
        hidden: vec![6],
        loss: imreg_objective::LossKind::Mse { half },
        init_scale: 0.2,
        ..DigitsMlp::cohen(48)
    };
    let run = |half: bool, lr: f64| {
        let (mlp, theta) = problem(half).build().unwrap();
        let opts = EossOptions {
            lr,
            batch_size: 4,
            steps: 60,
            every: 30,
            seed: 3,
            mini_bs: None,
            ..Default::default()
        };
        edge_of_stochastic_stability(&mlp, &theta, &opts).unwrap()
    };
    let (with_half, without) = (run(true, 0.8), run(false, 0.4));
    assert_eq!(with_half.outcome, RunOutcome::Completed);
    // the comparisons below zip the series: they must be the same, non-empty length
    assert!(!with_half.measurements.is_empty() && with_half.measurements.len() == without.measurements.len());
    assert!(!with_half.loss.is_empty() && with_half.loss.len() == without.loss.len());
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    for (a, b) in with_half.measurements.iter().zip(&without.measurements) {
        // thresholds 2/0.8 and 2/0.4: the ratios to them must agree
        let (ta, tb) = (with_half.threshold, without.threshold);
        let ra = a.batch_sharpness.mean_of_ratios.value / ta;
        let rb = b.batch_sharpness.mean_of_ratios.value / tb;
        assert!(rel(ra, rb) <= 1e-12, "batch sharpness ratio {ra} vs {rb}");
        let (la, lb) = (a.lambda_max.value / ta, b.lambda_max.value / tb);
        assert!(rel(la, lb) <= 1e-9, "λ_max ratio {la} vs {lb}");
    }
    for (la, lb) in with_half.loss.iter().zip(&without.loss) {
        assert!(rel(2.0 * la, *lb) <= 1e-12, "loss {la} vs {lb}");
    }
}
