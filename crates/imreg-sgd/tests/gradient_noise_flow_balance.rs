//! The gradient-noise, gradient-flow and balancedness observers against independent computations: `λ_K¹`,
//! `Tr K` and `Tr F` against the dense covariance and Fisher assembled from the per-example gradients, the
//! distance to gradient flow against the closed-form GD iterates and flow of a quadratic, and the imbalance
//! invariants against norms sliced by the model's own parameter shapes, with their conservation law
//! `∇D · ∇C = 0` checked by central differences (and seen to fail for tanh).
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{rng, Batch, DeepLinear, LossKind, Objective, Quadratic, ScalarNet};
use imreg_sgd::observe::{
    Cadence, GradientCovarianceProbe, GradientFlowDistance, GradientTraces, Imbalance, Iterates, Scheduled,
};
use imreg_sgd::sampler::Sampler;
use imreg_sgd::train::{train, Optimizer, Seeds, TrainOptions};
use imreg_sgd::SgdError;
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use ndarray::Array2;

fn data(n: usize, d: usize, c: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
    let mut r = rng::stream(seed, 0);
    let x = Array2::from_shape_vec((n, d), rng::normal_vec(&mut r, n * d)).unwrap();
    let y = Array2::from_shape_vec((n, c), rng::normal_vec(&mut r, n * c)).unwrap();
    (x, y)
}

fn mlp(activation: Activation, bias: bool, seed: u64) -> Mlp {
    let (x, y) = data(12, 3, 2, seed);
    let spec = MlpSpec {
        widths: vec![3, 5, 4, 2],
        activation,
        bias,
        loss: LossKind::Mse { half: true },
    };
    Mlp::regression(spec, x, y).unwrap()
}

/// The `N × p` matrix of per-example gradients, one row per example.
fn per_example(obj: &dyn Objective, theta: &[f64]) -> DMatrix<f64> {
    let (n, p) = (obj.n_examples(), obj.dim());
    let mut g = DMatrix::zeros(n, p);
    for i in 0..n {
        let gi = obj.grad(theta, Batch::Indices(&[i])).unwrap();
        g.row_mut(i).copy_from(&DVector::from_vec(gi).transpose());
    }
    g
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn covariance_top_and_traces_along_sgd_equal_the_dense_matrices() {
    let obj = mlp(Activation::Tanh, true, 1);
    let p = obj.dim();
    let theta0 = obj.init_params(2, 1.0);
    let mut iterates = Iterates::default();
    let mut top = GradientCovarianceProbe::new(p, 1e-14, 3);
    let mut traces = GradientTraces {
        chunk: 5,
        ..GradientTraces::new()
    };
    let opts = TrainOptions {
        lr: 0.05,
        steps: 12,
        seeds: Seeds::from_seed(4),
        ..Default::default()
    };
    let method = Optimizer::sgd(Sampler::WithReplacement { batch_size: 4 });
    train::<_, SgdError>(
        &obj,
        &theta0,
        &method,
        &opts,
        &mut [
            Scheduled::new(Cadence::Every(4), &mut iterates),
            Scheduled::new(Cadence::Every(4), &mut top),
            Scheduled::new(Cadence::Every(4), &mut traces),
        ],
    )
    .unwrap();
    assert_eq!(iterates.records.len(), 4);
    let n = obj.n_examples() as f64;
    for (k, (step, theta)) in iterates.records.iter().enumerate() {
        let g = per_example(&obj, theta);
        let mean = g.row_mean().transpose();
        let fisher = g.transpose() * &g / n;
        let k_dense = &fisher - &mean * mean.transpose();
        // K v = (1/N) Σ g_i (g_iᵀv) − ḡ(ḡᵀv) is the centered form (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ v.
        let mut centered = g.clone();
        for mut row in centered.row_iter_mut() {
            row -= mean.transpose();
        }
        let k_centered = centered.transpose() * &centered / n;
        assert!((&k_dense - &k_centered).norm() <= 1e-12 * k_centered.norm());
        let lambda = SymmetricEigen::new(k_centered.clone()).eigenvalues.max();
        let (s, t) = (top.records[k].0, top.records[k].1);
        assert_eq!(s, *step);
        assert!(t.converged, "step {step}: {t:?}");
        assert!(
            rel(t.value, lambda) <= 1e-10,
            "step {step}: λ_K¹ {} vs dense {lambda}",
            t.value
        );
        let (s, tr) = traces.records[k];
        assert_eq!(s, *step);
        assert!(rel(tr.covariance, k_centered.trace()) <= 1e-12, "Tr K at {step}");
        assert!(rel(tr.fisher, fisher.trace()) <= 1e-12, "Tr F at {step}");
        assert!(rel(tr.fisher, tr.covariance + mean.norm_squared()) <= 1e-12);
    }
}

#[test]
fn distance_to_gradient_flow_equals_the_closed_form_on_a_quadratic() {
    // C(θ) = ½ θᵀAθ + bᵀθ (A, b the means): in A's eigenbasis z = Vᵀθ, c = Vᵀb, GD gives
    // z_k = q^k z_0 − c (1 − q^k)/λ with q = 1 − ηλ and the flow z(t) = e^{−λt} z_0 − c (1 − e^{−λt})/λ.
    let obj = Quadratic::random(4, 6, 9).unwrap();
    let n = obj.n_examples() as f64;
    let a = obj.a().iter().fold(DMatrix::zeros(4, 4), |s, m| s + m) / n;
    let b = obj.b().iter().fold(DVector::zeros(4), |s, v| s + v) / n;
    let eig = SymmetricEigen::new(a);
    let theta0 = [0.7, -0.4, 0.2, 1.1];
    let z0 = eig.eigenvectors.transpose() * DVector::from_column_slice(&theta0);
    let c = eig.eigenvectors.transpose() * &b;
    let lr = 0.1;
    let mut flow = GradientFlowDistance::default();
    let opts = TrainOptions {
        lr,
        steps: 60,
        ..Default::default()
    };
    train::<_, SgdError>(
        &obj,
        &theta0,
        &Optimizer::gd(),
        &opts,
        &mut [Scheduled::new(Cadence::Geometric { ratio: 1.5 }, &mut flow)],
    )
    .unwrap();
    assert!(flow.records.len() > 5);
    for (k, d) in &flow.records {
        let t = *k as f64 * lr;
        let gap = DVector::from_fn(4, |i, _| {
            let l = eig.eigenvalues[i];
            let (q, e) = ((1.0 - lr * l).powi(*k as i32), (-l * t).exp());
            (q - e) * z0[i] - c[i] * ((1.0 - q) - (1.0 - e)) / l
        });
        assert_eq!(d.time, t);
        assert!(
            (d.distance - gap.norm()).abs() <= 1e-10 * (1.0 + gap.norm()),
            "k = {k}: {} vs closed form {}",
            d.distance,
            gap.norm()
        );
    }
    assert!(
        flow.records.last().unwrap().1.distance > 1e-3,
        "GD at η = 0.1 is not the flow"
    );
}

#[test]
fn distance_to_gradient_flow_rejects_a_late_start_and_a_changed_rate() {
    let obj = Quadratic::random(3, 2, 1).unwrap();
    let theta = [0.1, 0.2, 0.3];
    let mut flow = GradientFlowDistance::default();
    assert!(flow.measure(&obj, 3, 0.1, &theta).is_err());
    flow.measure(&obj, 0, 0.1, &theta).unwrap();
    assert!(flow.measure(&obj, 1, 0.2, &theta).is_err());
    let mut flow = GradientFlowDistance::default();
    flow.measure(&obj, 0, 0.1, &theta).unwrap();
    assert!(flow.measure(&obj, 2, 0.1, &theta[..2]).is_err());
}

/// `∇D_l · ∇C / (‖∇D_l‖ ‖∇C‖)` at `θ`, with `∇D_l · v` by a central difference (exact for the quadratic
/// `D_l` up to rounding) and `‖∇D_l‖` from the same differences along the unit vectors.
fn conservation_defects(imb: &Imbalance, obj: &dyn Objective, theta: &[f64]) -> Vec<f64> {
    let g = obj.grad(theta, Batch::Full).unwrap();
    let gn = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let h = 1e-3;
    let along = |v: &[f64]| -> Vec<f64> {
        let shift = |s: f64| -> Vec<f64> { theta.iter().zip(v).map(|(t, v)| t + s * h * v).collect() };
        let (up, down) = (
            imb.invariants(&shift(1.0)).unwrap(),
            imb.invariants(&shift(-1.0)).unwrap(),
        );
        up.iter().zip(&down).map(|(u, d)| (u - d) / (2.0 * h)).collect()
    };
    let unit: Vec<f64> = g.iter().map(|v| v / gn).collect();
    let dir = along(&unit);
    let mut grad_d_sq = vec![0.0; dir.len()];
    for j in 0..theta.len() {
        let mut e = vec![0.0; theta.len()];
        e[j] = 1.0;
        for (s, v) in grad_d_sq.iter_mut().zip(along(&e)) {
            *s += v * v;
        }
    }
    dir.iter()
        .zip(&grad_d_sq)
        .map(|(d, s)| d.abs() / s.sqrt())
        .collect()
}

#[test]
fn imbalance_invariants_are_the_layer_norms_and_conserved_for_homogeneous_nets() {
    for bias in [false, true] {
        let relu = mlp(Activation::Relu, bias, 5);
        let imb = Imbalance::dense(&relu.spec().widths, bias).unwrap();
        let theta = relu.init_params(6, 1.0);
        // The layer norms sliced by the model's own parameter shapes.
        let mut off = 0;
        let mut incoming = Vec::new();
        let mut weights = Vec::new();
        for (name, shape) in relu.param_names().iter().zip(relu.param_shapes()) {
            let len: usize = shape.iter().product();
            let sq: f64 = theta[off..off + len].iter().map(|v| v * v).sum();
            off += len;
            if name.ends_with("weight") {
                weights.push(sq);
                incoming.push(sq);
            } else {
                *incoming.last_mut().unwrap() += sq;
            }
        }
        assert_eq!(off, theta.len());
        let want: Vec<f64> = (0..weights.len() - 1)
            .map(|l| weights[l + 1] - incoming[l])
            .collect();
        let got = imb.invariants(&theta).unwrap();
        assert_eq!(got.len(), 2);
        for (g, w) in got.iter().zip(&want) {
            assert!(rel(*g, *w) <= 1e-14, "bias {bias}: {g} vs {w}");
        }
        for d in conservation_defects(&imb, &relu, &theta) {
            assert!(d <= 1e-8, "ReLU (bias {bias}): ∇D·∇C/(‖∇D‖‖∇C‖) = {d}");
        }
        let tanh = mlp(Activation::Tanh, bias, 5);
        let worst = conservation_defects(&imb, &tanh, &theta)
            .into_iter()
            .fold(0.0, f64::max);
        assert!(
            worst > 1e-4,
            "tanh is not homogeneous, so D is not conserved: {worst}"
        );
    }
    let (x, y) = data(10, 3, 2, 7);
    let linear = DeepLinear::new(vec![3, 4, 4, 2], x, y, true).unwrap();
    let imb = Imbalance::dense(linear.widths(), true).unwrap();
    let mut r = rng::stream(8, 0);
    let theta = rng::normal_vec(&mut r, linear.dim());
    for d in conservation_defects(&imb, &linear, &theta) {
        assert!(d <= 1e-8, "deep linear: {d}");
    }
}

#[test]
fn scalar_net_imbalance_is_a_squared_minus_b_squared_and_nearly_conserved_by_small_step_gd() {
    let net = ScalarNet::from_data(3, vec![1.0, -0.5, 2.0], vec![0.3, 0.1, 1.2]).unwrap();
    let theta = [0.4, -0.2, 0.9, 0.1, 0.5, -0.3];
    let mut imb = Imbalance::scalar_net(3).unwrap();
    let d = imb.invariants(&theta).unwrap();
    let (a, b) = theta.split_at(3);
    let want = a.iter().map(|v| v * v).sum::<f64>() - b.iter().map(|v| v * v).sum::<f64>();
    assert_eq!(d, vec![want]);
    for d in conservation_defects(&imb, &net, &theta) {
        assert!(d <= 1e-8, "scalar net: {d}");
    }
    // GD moves D by O(η²) per step: to a fixed time t = Tη, halving η about halves the drift.
    let drift = |lr: f64, steps: usize, imb: &mut Imbalance| -> f64 {
        imb.records.clear();
        let opts = TrainOptions {
            lr,
            steps,
            ..Default::default()
        };
        train::<_, SgdError>(
            &net,
            &theta,
            &Optimizer::gd(),
            &opts,
            &mut [Scheduled::new(Cadence::Ends, imb)],
        )
        .unwrap();
        (imb.records[1].1[0] - imb.records[0].1[0]).abs()
    };
    let (coarse, fine) = (drift(0.02, 50, &mut imb), drift(0.01, 100, &mut imb));
    assert!(
        coarse > 0.0 && fine < 0.6 * coarse,
        "drift {coarse} at η = 0.02, {fine} at η = 0.01"
    );
    assert!(Imbalance::scalar_net(0).is_err());
    assert!(imb.invariants(&theta[..4]).is_err());
}
