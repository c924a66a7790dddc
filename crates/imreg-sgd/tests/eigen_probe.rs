//! `ExtremeEigenProbe`: the top-k / bottom-k Ritz values lie within their residual bounds of the dense
//! spectrum, a warm start from the previous Ritz vectors converges in fewer steps than the seeded start at
//! the same Hessian, and without warm starts every evaluation repeats bit for bit.
use imreg_objective::models::Quadratic;
use imreg_objective::{Batch, Objective};
use imreg_sgd::observe::{Control, ExtremeEigenProbe, Observer, StepView};
use imreg_spectra::LanczosOptions;

fn options() -> LanczosOptions {
    LanczosOptions {
        max_iter: 200,
        k_top: 3,
        k_bottom: 2,
        tol: 1e-10,
        seed: 5,
        ..LanczosOptions::default()
    }
}

#[test]
fn warm_starts_converge_faster_to_the_same_eigenvalues() {
    let q = Quadratic::random(120, 4, 3).unwrap();
    let theta = vec![0.1; q.dim()];
    let mut e: Vec<f64> = q
        .dense_hessian(&theta, Batch::Full)
        .unwrap()
        .symmetric_eigenvalues()
        .iter()
        .copied()
        .collect();
    e.sort_by(f64::total_cmp);
    let p = e.len();
    let scale = e[p - 1].abs().max(e[0].abs());
    let mut warm = ExtremeEigenProbe::new(options(), true);
    let first = warm.measure(&q, &theta).unwrap();
    let second = warm.measure(&q, &theta).unwrap();
    assert!(!first.warm && second.warm);
    assert!(first.converged && second.converged);
    for r in [&first, &second] {
        let want_top = [e[p - 1], e[p - 2], e[p - 3]];
        let want_bottom = [e[0], e[1]];
        for (got, want) in r.top.iter().zip(want_top).chain(r.bottom.iter().zip(want_bottom)) {
            assert!(got.residual_bound <= 1e-10 * scale * (1.0 + 1e-12));
            assert!(
                (got.value - want).abs() <= got.residual_bound + 1e-13 * scale,
                "{} vs {want}",
                got.value
            );
        }
    }
    assert!(
        second.iterations < first.iterations,
        "warm {} vs cold {}",
        second.iterations,
        first.iterations
    );
    // Cold: the same seeded start each time, so the same numbers bit for bit; recorded by `observe`.
    let mut cold = ExtremeEigenProbe::new(options(), false);
    let view = StepView {
        step: 7,
        theta: &theta,
        objective: &q,
        lr: 0.1,
        batch: None,
        loss: None,
        grad: None,
        last: false,
    };
    for _ in 0..2 {
        let c: Control = Observer::<Quadratic>::observe(&mut cold, &view).unwrap();
        assert_eq!(c, Control::Continue);
    }
    assert_eq!(cold.records.len(), 2);
    assert_eq!(cold.records[0], cold.records[1]);
    assert_eq!(cold.records[0].1, first);
}
