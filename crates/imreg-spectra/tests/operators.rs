//! Curvature operators against dense oracles built independently (single-example gradients, finite
//! differences of the model outputs).
mod common;
use imreg_objective::{Batch, LossKind, Objective, Supervised};
use imreg_spectra::*;
use nalgebra::{DMatrix, DVector};

/// Per-example gradients by single-example `loss_grad` calls (not through `per_example_grads`).
fn example_grads<O: Objective>(m: &O, theta: &[f64], ix: &[usize]) -> Vec<DVector<f64>> {
    ix.iter()
        .map(|&i| DVector::from_vec(m.grad(theta, Batch::Indices(&[i])).unwrap()))
        .collect()
}

fn dense_cov(g: &[DVector<f64>], center: bool, denom: f64) -> DMatrix<f64> {
    let p = g[0].len();
    let mean = g.iter().fold(DVector::zeros(p), |a, x| a + x) / g.len() as f64;
    g.iter().fold(DMatrix::zeros(p, p), |k, gi| {
        let d = if center { gi - &mean } else { gi.clone() };
        k + &d * d.transpose() / denom
    })
}

fn close(a: &DMatrix<f64>, b: &DMatrix<f64>, tol: f64) {
    let err = (a - b).amax();
    assert!(
        err <= tol * b.amax(),
        "max abs error {err:e} vs scale {:e}",
        b.amax()
    );
}

#[test]
fn covariance_gram_operator_and_dense_agree() {
    // N = 10 examples < p = 74 parameters: the Gram route applies.
    let (m, theta) = common::mlp(30, 4, 6, 2, LossKind::CrossEntropy, 2);
    let ix: Vec<usize> = (5..15).collect();
    let batch = Batch::Indices(&ix);
    let g = example_grads(&m, &theta, &ix);
    for (norm, denom) in [(Normalization::N, 10.0), (Normalization::NMinusOne, 9.0)] {
        let opts = CovarianceOptions {
            normalization: norm,
            chunk: 3,
        };
        let k_dense = dense_cov(&g, true, denom);
        let op = GradientCovariance::covariance(&m, &theta, batch, opts).unwrap();
        // operator = dense (rounding: sums of 10 outer products, 1e-12 relative)
        close(&dense_matrix(&op).unwrap(), &k_dense, 1e-12);
        let dense = symmetric_eigen(k_dense.clone(), &DenseOptions::default()).unwrap();
        let gram = GramCovariance::new(&m, &theta, batch, opts).unwrap();
        let via_gram = gradient_covariance_top(&m, &theta, batch, opts, &CovarianceRoute::Gram).unwrap();
        let lo = LanczosOptions {
            tol: 1e-13,
            max_iter: 74,
            ..Default::default()
        };
        let via_op =
            gradient_covariance_top(&m, &theta, batch, opts, &CovarianceRoute::Operator(lo)).unwrap();
        let auto = gradient_covariance_top(&m, &theta, batch, opts, &CovarianceRoute::Auto).unwrap();
        assert!(via_gram.gram && !via_op.gram && auto.gram);
        assert!(via_op.report.as_ref().unwrap().converged);
        for v in [via_gram.value, via_op.value] {
            assert!(
                common::rel(v, dense.max()) < 1e-10,
                "λ_K¹ {v} vs dense {}",
                dense.max()
            );
        }
        // the non-zero spectrum of K is the Gram spectrum (rank ≤ N − 1 after centering)
        let ge = gram.eigen(&DenseOptions::default()).unwrap();
        for (a, b) in ge.top(9).iter().zip(dense.top(9)) {
            assert!((a - b).abs() < 1e-10 * dense.max());
        }
        assert!(
            ge.min().abs() < 1e-10 * dense.max(),
            "centering leaves a zero eigenvalue"
        );
        // Tr K three ways (and = Smith's Γ = (1/N) Σ ‖g_i − ḡ‖² for 1/N)
        let tr = k_dense.trace();
        for t in [
            gram.trace(),
            op.trace().unwrap(),
            trace_gradient_covariance(&m, &theta, batch, opts).unwrap(),
        ] {
            assert!(common::rel(t, tr) < 1e-12, "{t} vs {tr}");
        }
        // the Gram eigenvector maps to a K eigenvector
        let top = ge
            .vectors
            .column(ge.values.len() - 1)
            .iter()
            .copied()
            .collect::<Vec<_>>();
        let v = DVector::from_vec(gram.parameter_vector(&top).unwrap());
        assert!((&k_dense * &v - &v * ge.max()).norm() < 1e-10 * ge.max());
    }
    let one = [3usize];
    let bad = CovarianceOptions {
        normalization: Normalization::NMinusOne,
        chunk: 4,
    };
    assert!(GradientCovariance::covariance(&m, &theta, Batch::Indices(&one), bad).is_err());
}

#[test]
fn empirical_fisher_matches_dense() {
    let lr = common::logreg(20, 7, 3);
    let theta = vec![0.3; 7];
    let ix: Vec<usize> = (0..20).collect();
    let g = example_grads(&lr, &theta, &ix);
    let f = dense_cov(&g, false, 20.0);
    let op = GradientOuterOperator::empirical_fisher(&lr, &theta, Batch::Full, 6).unwrap();
    close(&dense_matrix(&op).unwrap(), &f, 1e-12);
    assert!(
        common::rel(
            empirical_fisher_trace(&lr, &theta, Batch::Full).unwrap(),
            f.trace()
        ) < 1e-12
    );
}

#[test]
fn gauss_newton_equals_hessian_for_linear_models() {
    // linear in θ: H = Jᵀ H_ℓ J exactly
    let lin = common::linreg(25, 6, 1);
    let lg = common::logreg(25, 6, 1);
    let theta: Vec<f64> = (0..6).map(|i| 0.2 * i as f64 - 0.4).collect();
    let ix = [1usize, 4, 7, 9, 20];
    for batch in [Batch::Full, Batch::Indices(&ix)] {
        let g1 = dense_matrix(&GaussNewtonOperator::new(&lin, &theta, batch).unwrap()).unwrap();
        close(&g1, &lin.dense_hessian(&theta, batch).unwrap(), 1e-12);
        let g2 = dense_matrix(&GaussNewtonOperator::new(&lg, &theta, batch).unwrap()).unwrap();
        close(&g2, &lg.dense_hessian(&theta, batch).unwrap(), 1e-12);
        // for CE the exact Fisher is the Gauss–Newton matrix
        let f2 =
            dense_matrix(&FisherOperator::new(&lg, &theta, batch, FisherSampling::Exact).unwrap()).unwrap();
        close(&f2, &g2, 1e-14);
    }
}

/// `J_i` (C × p) of the model outputs by central differences, step 1e-5: error O(h² f''') ≈ 1e-10.
fn fd_jacobians<O: Supervised>(m: &O, theta: &[f64]) -> Vec<DMatrix<f64>> {
    let (n, c, p) = (m.n_examples(), m.n_outputs(), m.dim());
    let h = 1e-5;
    let mut jac = vec![DMatrix::zeros(c, p); n];
    for j in 0..p {
        let mut tp = theta.to_vec();
        tp[j] += h;
        let fp = m.outputs(&tp, Batch::Full).unwrap();
        tp[j] -= 2.0 * h;
        let fm = m.outputs(&tp, Batch::Full).unwrap();
        for (i, ji) in jac.iter_mut().enumerate() {
            for a in 0..c {
                ji[(a, j)] = (fp[(i, a)] - fm[(i, a)]) / (2.0 * h);
            }
        }
    }
    jac
}

#[test]
fn gauss_newton_and_exact_fisher_match_finite_difference_jacobians_on_an_mlp() {
    for loss in [
        LossKind::Mse { half: true },
        LossKind::Mse { half: false },
        LossKind::CrossEntropy,
    ] {
        let (m, theta) = common::mlp(12, 3, 5, 3, loss, 4);
        let f = m.outputs(&theta, Batch::Full).unwrap();
        let jac = fd_jacobians(&m, &theta);
        let p = m.dim();
        let mut g = DMatrix::zeros(p, p);
        for (i, ji) in jac.iter().enumerate() {
            let hl = output_loss_hessian(loss, &f.row(i).to_vec());
            let hl = DMatrix::from_row_slice(3, 3, &hl);
            g += ji.transpose() * hl * ji / 12.0;
        }
        let gn = dense_matrix(&GaussNewtonOperator::new(&m, &theta, Batch::Full).unwrap()).unwrap();
        // FD error ≈ 1e-10 relative per Jacobian entry: allow 1e-7 relative to max |G|
        close(&gn, &g, 1e-7);
        let fe = dense_matrix(&FisherOperator::new(&m, &theta, Batch::Full, FisherSampling::Exact).unwrap())
            .unwrap();
        close(&fe, &gn, 1e-14);
        let e = dense_eigen(
            &GaussNewtonOperator::new(&m, &theta, Batch::Full).unwrap(),
            &DenseOptions::default(),
        )
        .unwrap();
        assert!(e.min() > -1e-12 * e.max(), "Gauss–Newton is PSD: {}", e.min());
    }
}

#[test]
fn sampled_fisher_trace_paths_agree_and_are_unbiased() {
    for loss in [LossKind::CrossEntropy, LossKind::Mse { half: true }] {
        let (m, theta) = common::mlp(8, 3, 4, 3, loss, 6);
        // exact Tr F = tr(Gauss–Newton)
        let exact = exact_trace(&GaussNewtonOperator::new(&m, &theta, Batch::Full).unwrap()).unwrap();
        if loss == LossKind::CrossEntropy {
            let t = fisher_trace(&m, &theta, Batch::Full, FisherSampling::Exact).unwrap();
            assert!(
                common::rel(t, exact) < 1e-12,
                "class enumeration {t} vs tr G {exact}"
            );
        }
        // one sampled Fisher: the per-example-gradient trace equals the operator's exact trace
        let s = FisherSampling::Sampled { samples: 3, seed: 1 };
        let op = FisherOperator::new(&m, &theta, Batch::Full, s).unwrap();
        assert!(common::rel(op.trace().unwrap(), exact_trace(&op).unwrap()) < 1e-12);
        // unbiased over seeds: 400 independent single-sample Fisher traces, mean within 3 SE of Tr F
        let vals: Vec<f64> = (0..400)
            .map(|seed| {
                fisher_trace(
                    &m,
                    &theta,
                    Batch::Full,
                    FisherSampling::Sampled { samples: 1, seed },
                )
                .unwrap()
            })
            .collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let se = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
        assert!(
            (mean - exact).abs() <= 3.0 * se,
            "{loss:?}: {mean} vs {exact} (SE {se})"
        );
    }
}
