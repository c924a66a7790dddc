//! The network-scale measurements of SGD without replacement against independent dense computations:
//! `noise_covariance_along` and `weighted_noise_trace` against the dense `Σ` and the dense eigendecomposition
//! of `H`, `top_hessian_pairs` against `SymmetricEigen`, the matched noise level against `tr S/p`; and the
//! measurements bitwise identical at one and two threads on a small ReLU classifier.
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{rng, Batch, LossKind, Objective};
use imreg_sgd::without_replacement::{
    batch_noise_covariance, epoch_weight, first_step_at_most, flat_and_sharp_norms, matched_isotropic_sigma,
    noise_covariance, noise_covariance_along, top_hessian_pairs, toy, weighted_noise_trace, ToyParams,
};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

fn quadratic() -> imreg_objective::Quadratic {
    toy(&ToyParams {
        h: vec![2.0, 0.7, 0.05, 0.0, -0.1],
        n: 12,
        amplitude: 0.3,
        seed: 3,
        diagonal_noise: false,
    })
    .unwrap()
}

fn dense_hessian(q: &imreg_objective::Quadratic) -> DMatrix<f64> {
    let n = q.a().len() as f64;
    let sum = q.a().iter().fold(DMatrix::zeros(5, 5), |s, a| s + a) / n;
    (&sum + sum.transpose()) * 0.5
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn covariance_along_directions_matches_the_dense_covariance() {
    let q = quadratic();
    let theta = [0.3, -0.2, 0.5, 1.0, -0.4];
    let sigma = noise_covariance(&q, &theta).unwrap();
    let mut r = rng::stream(7, 0);
    let dirs: Vec<Vec<f64>> = (0..3).map(|_| rng::normal_vec(&mut r, 5)).collect();
    let (trace, along) = noise_covariance_along(&q, &theta, &dirs).unwrap();
    assert!(close(trace, sigma.trace(), 1e-12), "{trace} vs {}", sigma.trace());
    for (v, a) in dirs.iter().zip(&along) {
        let v = DVector::from_column_slice(v);
        let dense = (v.transpose() * &sigma * &v)[(0, 0)];
        assert!(close(*a, dense, 1e-12), "{a} vs {dense}");
    }
    // A direction of the wrong length is a typed error naming the field.
    let e = noise_covariance_along(&q, &theta, &[vec![1.0; 4]]).unwrap_err();
    assert!(e.to_string().contains("directions"), "{e}");
}

#[test]
fn top_pairs_and_weighted_trace_match_the_dense_eigendecomposition() {
    let q = quadratic();
    let theta = [0.1, 0.2, -0.3, 0.4, 0.0];
    let h = dense_hessian(&q);
    let eig = SymmetricEigen::new(h.clone());
    let mut order: Vec<usize> = (0..5).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    // All five Lanczos steps: the Krylov space is the whole space, so the pairs are exact.
    let pairs = top_hessian_pairs(&q, &theta, 3, 5, 1).unwrap();
    for (j, (l, v)) in pairs.iter().enumerate() {
        assert!(close(*l, eig.eigenvalues[order[j]], 1e-10), "λ_{j}: {l}");
        let hv = &h * DVector::from_column_slice(v);
        let res = (hv - DVector::from_column_slice(v) * *l).norm();
        assert!(res < 1e-9, "residual {res}");
    }
    let (eta, k) = (0.4, 6);
    let w = weighted_noise_trace(&q, &theta, eta, k, &pairs).unwrap();
    // Dense: Σ_j ŵ_j v_jᵀΣv_j over the three pairs, weight 1 on the two remaining (flat) eigenvectors.
    let sigma = noise_covariance(&q, &theta).unwrap();
    let flat = (k * (k - 1)) as f64 / 2.0;
    let mut dense = 0.0;
    for (j, &i) in order.iter().enumerate() {
        let v = eig.eigenvectors.column(i).into_owned();
        let var = (v.transpose() * &sigma * &v)[(0, 0)];
        let weight = if j < 3 {
            epoch_weight(eta * eig.eigenvalues[i], k) / flat
        } else {
            1.0
        };
        dense += weight * var;
    }
    assert!(close(w.weighted, dense, 1e-9), "{} vs {dense}", w.weighted);
    assert!(close(w.trace, sigma.trace(), 1e-12));
    // Sharp weights are below the flat weight 1 (0 < ηλ < 2).
    assert!(w.weights[0] < 1.0 && w.weights[1] < 1.0, "{:?}", w.weights);
    assert!(weighted_noise_trace(&q, &theta, eta, 1, &pairs).is_err());
    assert!(top_hessian_pairs(&q, &theta, 3, 2, 1).is_err());
}

#[test]
fn matched_sigma_norms_and_first_crossing() {
    let q = quadratic();
    let theta = [0.3, -0.2, 0.5, 1.0, -0.4];
    let s = batch_noise_covariance(&q, &theta, 3).unwrap();
    let sigma = matched_isotropic_sigma(&q, &theta, 3).unwrap();
    assert!(close(sigma * sigma * 5.0, s.trace(), 1e-12));
    assert!(matched_isotropic_sigma(&q, &theta, 13).is_err());
    // Orthonormal sharp vectors e₁, e₂: the flat part of (3, 4, 12) is 12, the sharp part 5.
    let e = |i: usize| {
        (0..3)
            .map(|j| if i == j { 1.0 } else { 0.0 })
            .collect::<Vec<f64>>()
    };
    assert_eq!(
        flat_and_sharp_norms(&[e(0), e(1)], &[3.0, 4.0, 12.0]),
        (12.0, 5.0)
    );
    let series = [(0, 2.3), (5, 2.2), (10, 2.0), (15, 1.5)];
    assert_eq!(first_step_at_most(&series, 2.05), Some(10));
    assert_eq!(first_step_at_most(&series, 1.0), None);
}

#[test]
fn measurements_are_identical_at_one_and_two_threads() {
    let (n, d, c) = (64, 6, 3);
    let mut r = rng::stream(11, 0);
    let x = ndarray::Array2::from_shape_vec((n, d), rng::normal_vec(&mut r, n * d)).unwrap();
    let labels: Vec<usize> = (0..n).map(|i| i % c).collect();
    let spec = MlpSpec {
        widths: vec![d, 16, c],
        activation: Activation::Relu,
        bias: true,
        loss: LossKind::CrossEntropy,
    };
    let mlp = Mlp::classification(spec, x, labels).unwrap();
    let theta = mlp.init_params(5, 1.0);
    let measure = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let pairs = top_hessian_pairs(&mlp, &theta, 4, 8, 2).unwrap();
                let w = weighted_noise_trace(&mlp, &theta, 0.1, 8, &pairs).unwrap();
                let sigma = matched_isotropic_sigma(&mlp, &theta, 8).unwrap();
                let loss = mlp.loss(&theta, Batch::Full).unwrap();
                format!("{pairs:?} {w:?} {sigma:?} {loss:?}")
            })
    };
    assert_eq!(measure(1), measure(2));
}
