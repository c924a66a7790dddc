//! The depth-2 linear network's identity, Hessian and gradient-flow errors (the measurements behind
//! `eos.scalar-gd-identities` and `eos.scalar-gf-closed-form`) over many random nets: T1 one-step
//! identities, T2 Hessian spectrum, T3 gradient flow vs DOP853.
use imreg_eos::ScalarNetState;
use imreg_theorems::eos::{gf_errors, hessian_errors, identity_errors};
use rand::Rng;

fn random_net(seed: u64, k: usize) -> ScalarNetState {
    ScalarNetState::random(k, seed, 7, Some(0.3..3.0)).unwrap()
}

#[test]
fn t1_every_one_step_identity_holds_to_rounding() {
    let mut worst = 0.0f64;
    for seed in 0..2000 {
        let k = 1 + (seed as usize % 9);
        let net = random_net(seed, k);
        let eta = imreg_objective::rng::stream(seed, 8).random_range(1e-3..1.5);
        for (name, e) in identity_errors(&net, eta).unwrap() {
            // A handful of roundings on O(k) sums (k ≤ 9): ≲ 20 k u ≈ 4e-14 relative to the terms.
            assert!(e <= 1e-13, "seed {seed}, k {k}: {name} off by {e:e}");
            worst = worst.max(e);
        }
    }
    assert!(worst > 0.0, "errors are measured, not identically zero");
}

#[test]
fn t2_hessian_spectrum_dense_and_finite_differences() {
    for seed in 0..200 {
        let net = random_net(100 + seed, 1 + seed as usize % 6);
        let (spec, fd) = hessian_errors(&net, seed).unwrap();
        assert!(spec <= 1e-13, "seed {seed}: spectrum vs SymmetricEigen {spec:e}");
        // Central differences with δ = 1e-5: O(δ²) truncation and O(u/δ) rounding, ≲ 1e-9 relative.
        assert!(fd <= 1e-7, "seed {seed}: Hessian vs FD {fd:e}");
    }
}

#[test]
fn t3_gradient_flow_closed_form_vs_dop853() {
    let mut inits = vec![
        ScalarNetState::scalar(1.5, 0.01, 1.0).unwrap(),
        ScalarNetState::scalar(3.0, 0.1, 1.0).unwrap(),
        // Φ < 0 on the line a + b = 0: not a saddle line for Φ < 0 (z* = 4|Φ|/D₀).
        ScalarNetState::scalar(0.7, -0.7, -0.5).unwrap(),
        // Φ > 0 on the balanced line a = b (D₀ = 0, c = 0).
        ScalarNetState::scalar(0.3, 0.3, 1.2).unwrap(),
    ];
    inits.extend((0..8).map(|s| random_net(500 + s, 1 + s as usize % 4)));
    for net in &inits {
        let e = gf_errors(net).unwrap();
        for (name, v) in ["trajectory", "invariants", "limit", "∫ε²", "energy"]
            .iter()
            .zip(e)
        {
            // DOP853 at rtol 1e-14 has global error ~1e-14 on these flows; the closed forms are ~1e-15.
            assert!(v <= 1e-12, "{net:?}: {name} error {v:e}");
        }
    }
}
