//! Step-size bounds as property tests (proptest, 256 cases each, ChaCha with a fixed seed so CI is
//! deterministic; failures shrink to a minimal counterexample that is printed).
use imreg_eos::bounds::{heavy_ball_threshold, nesterov_threshold};
use imreg_eos::{
    run_gd, simulate, GdOutcome, GfSolution, Method, QuadOutcome, QuadraticForm, RunOptions, ScalarNetState,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestRunner};
use std::cell::Cell;

fn runner(seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases: 256,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs `test` on 256 cases of `strategy`, panicking with the shrunk counterexample on failure.
fn check<S: Strategy>(seed: u64, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let passed = Cell::new(0usize);
    let counted = |v: S::Value| {
        test(v)?;
        passed.set(passed.get() + 1);
        Ok(())
    };
    if let Err(e) = runner(seed).run(&strategy, counted) {
        panic!("{e}");
    }
    assert!(passed.get() >= 256, "only {} cases ran", passed.get());
}

/// A quadratic with top eigenvalue `top` and the others in [0.05, 0.9]·`top`, and a random start.
fn quadratic(top: f64, others: &[f64], seed: u64) -> (QuadraticForm, Vec<f64>) {
    let mut eigs: Vec<f64> = others.iter().map(|f| f * top).collect();
    eigs.push(top);
    let q = QuadraticForm::from_spectrum(&eigs, seed).unwrap();
    let mut rng = imreg_objective::rng::stream(seed, 1);
    let x0 = imreg_objective::rng::normal_vec(&mut rng, eigs.len());
    (q, x0)
}

/// (λ_max, other eigenvalues as fractions, relative margin δ, below?, seed).
fn spectrum() -> impl Strategy<Value = (f64, Vec<f64>, f64, bool, u64)> {
    (
        0.1f64..100.0,
        prop::collection::vec(0.05f64..0.9, 0..7),
        0.02f64..0.5,
        any::<bool>(),
        any::<u64>(),
    )
}

#[test]
fn gd_on_a_convex_quadratic_converges_iff_eta_below_two_over_lambda_max() {
    check(1, spectrum(), |(top, others, delta, below, seed)| {
        let (q, x0) = quadratic(top, &others, seed);
        let lm = q.lambda_max();
        let eta = 2.0 / lm * if below { 1.0 - delta } else { 1.0 + delta };
        let out = simulate(&q, Method::Gd, eta, &x0, &RunOptions::default()).unwrap();
        prop_assert_eq!(
            out.is_converged(),
            below,
            "η = {} vs 2/λ_max = {}: {:?}",
            eta,
            2.0 / lm,
            out
        );
        prop_assert_eq!(matches!(out, QuadOutcome::Diverged { .. }), !below);
        Ok(())
    });
}

fn momentum_case(seed: u64, nesterov: bool) {
    let strategy = (spectrum(), 0.0f64..0.95, 0.01f64..1.0);
    check(seed, strategy, |((_, others, delta, below, seed), beta, eta)| {
        let (method, thr) = if nesterov {
            (Method::Nesterov { beta }, nesterov_threshold(beta, eta))
        } else {
            (Method::HeavyBall { beta }, heavy_ball_threshold(beta, eta))
        };
        let top = thr * if below { 1.0 - delta } else { 1.0 + delta };
        let (q, x0) = quadratic(top, &others, seed);
        let out = simulate(&q, method, eta, &x0, &RunOptions::default()).unwrap();
        prop_assert_eq!(
            out.is_diverged(),
            !below,
            "{:?}, λ_max = {} vs threshold {}: {:?}",
            method,
            top,
            thr,
            out
        );
        prop_assert_eq!(out.is_converged(), below);
        Ok(())
    });
}

#[test]
fn heavy_ball_diverges_iff_lambda_above_two_plus_two_beta_over_eta() {
    momentum_case(2, false);
}

#[test]
fn nesterov_diverges_iff_lambda_above_its_threshold() {
    momentum_case(3, true);
}

/// A random width-k state: entries in [−2.5, 2.5], |Φ| in [0.2, 2].
fn net_strategy() -> impl Strategy<Value = ScalarNetState> {
    (1usize..5)
        .prop_flat_map(|k| {
            (
                prop::collection::vec(-2.5f64..2.5, k),
                prop::collection::vec(-2.5f64..2.5, k),
                0.2f64..2.0,
                any::<bool>(),
            )
        })
        .prop_map(|(a, b, phi, neg)| ScalarNetState::new(a, b, if neg { -phi } else { phi }).unwrap())
}

#[test]
fn imbalance_contracts_iff_eta_eps_below_sqrt2() {
    // The target value of η|ε| is drawn on both sides of √2 with a margin, and η solved for.
    let target = prop_oneof![
        1e-3f64..(std::f64::consts::SQRT_2 - 1e-3),
        (std::f64::consts::SQRT_2 + 1e-3)..3.0
    ];
    check(4, (net_strategy(), target), |(net, he)| {
        let inv = net.invariants();
        prop_assume!(inv.residual.abs() > 1e-6 && inv.imbalance.abs() > 1e-6 * inv.norm && inv.p > 1e-6);
        let eta = he / inv.residual.abs();
        let next = net.gd_step(eta).unwrap().invariants();
        let contracts = he < std::f64::consts::SQRT_2;
        prop_assert_eq!(
            next.imbalance.abs() < inv.imbalance.abs(),
            contracts,
            "η|ε| = {}: Q {} → {}",
            he,
            inv.imbalance,
            next.imbalance
        );
        prop_assert_eq!(
            next.p < inv.p,
            contracts,
            "η|ε| = {}: P {} → {}",
            he,
            inv.p,
            next.p
        );
        Ok(())
    });
}

#[test]
fn converged_runs_are_stable_and_no_sharper_than_gf_when_eta_eps_stays_below_sqrt2() {
    let converged = Cell::new(0usize);
    let below_sqrt2 = Cell::new(0usize);
    check(5, (net_strategy(), 0.02f64..0.98), |(net, frac)| {
        let eta = frac / net.phi().abs();
        let opts = RunOptions {
            max_steps: 100_000,
            ..RunOptions::default()
        };
        if let GdOutcome::Converged {
            lambda_inf,
            lambda_gd,
            max_eta_eps,
            ..
        } = run_gd(&net, eta, &opts).unwrap()
        {
            converged.set(converged.get() + 1);
            // Stability of the limit (|ε| < 1e-12 leaves λ within ~1e-10 of its limit).
            prop_assert!(
                lambda_inf <= 2.0 / eta * (1.0 + 1e-9),
                "λ_∞ = {} > 2/η = {}",
                lambda_inf,
                2.0 / eta
            );
            prop_assert!(
                lambda_inf >= 2.0 * net.phi().abs() * (1.0 - 1e-10),
                "λ_∞ = {} < 2|Φ|",
                lambda_inf
            );
            if max_eta_eps < std::f64::consts::SQRT_2 {
                below_sqrt2.set(below_sqrt2.get() + 1);
                let lgf = GfSolution::new(&net).unwrap().lambda_gf();
                prop_assert!(lambda_gd < lgf, "λ_GD = {} ≥ λ_GF = {}", lambda_gd, lgf);
            }
        }
        Ok(())
    });
    // The properties must not hold vacuously.
    assert!(
        converged.get() >= 100,
        "only {} of 256 runs converged",
        converged.get()
    );
    assert!(
        below_sqrt2.get() >= 50,
        "only {} runs had η|ε_t| < √2 throughout",
        below_sqrt2.get()
    );
}

#[test]
fn generic_runs_with_eta_above_one_over_phi_do_not_converge() {
    check(6, (net_strategy(), 1.02f64..3.0), |(net, frac)| {
        let eta = frac / net.phi().abs();
        let opts = RunOptions {
            max_steps: 100_000,
            ..RunOptions::default()
        };
        let out = run_gd(&net, eta, &opts).unwrap();
        prop_assert!(!out.is_converged(), "η = {} > 1/|Φ| converged: {:?}", eta, out);
        Ok(())
    });
}
