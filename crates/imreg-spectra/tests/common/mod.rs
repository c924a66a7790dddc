//! Shared fixtures of the integration tests: small real models with seeded data.
#![allow(dead_code)]
use imreg_objective::models::{Activation, DeepLinear, LinearRegression, LogisticRegression, Mlp, MlpSpec};
use imreg_objective::{rng, LossKind};
use ndarray::{Array1, Array2};

/// `N × d` standard normal inputs from stream `(seed, stream)`.
pub fn gaussian(n: usize, d: usize, seed: u64, stream: u64) -> Array2<f64> {
    Array2::from_shape_vec((n, d), rng::normal_vec(&mut rng::stream(seed, stream), n * d)).unwrap()
}

/// Linear regression with Gaussian inputs and noisy targets (residuals non-zero almost surely).
pub fn linreg(n: usize, d: usize, seed: u64) -> LinearRegression {
    let x = gaussian(n, d, seed, 1);
    let y = Array1::from(rng::normal_vec(&mut rng::stream(seed, 2), n));
    LinearRegression::new(x, y).unwrap()
}

/// Binary logistic regression on Gaussian inputs with random labels.
pub fn logreg(n: usize, d: usize, seed: u64) -> LogisticRegression {
    let x = gaussian(n, d, seed, 1);
    let u = rng::normal_vec(&mut rng::stream(seed, 2), n);
    LogisticRegression::new(x, u.iter().map(|&v| usize::from(v > 0.0)).collect()).unwrap()
}

/// A small tanh MLP `d → h → h → c`, regression (½ MSE) or cross-entropy, with its initial θ.
pub fn mlp(n: usize, d: usize, h: usize, c: usize, loss: LossKind, seed: u64) -> (Mlp, Vec<f64>) {
    let spec = MlpSpec {
        widths: vec![d, h, h, c],
        activation: Activation::Tanh,
        bias: true,
        loss,
    };
    let x = gaussian(n, d, seed, 1);
    let m = match loss {
        LossKind::CrossEntropy => {
            let u = rng::normal_vec(&mut rng::stream(seed, 2), n);
            let labels = u.iter().map(|&v| ((v.abs() * 7.0) as usize) % c).collect();
            Mlp::classification(spec, x, labels).unwrap()
        }
        LossKind::Mse { .. } => Mlp::regression(spec, x, gaussian(n, c, seed, 2)).unwrap(),
    };
    // scale 2: a curved, indefinite Hessian at initialization
    let theta = m.init_params(seed, 2.0);
    (m, theta)
}

/// A deep linear net `d → h → c` with bias, and a random θ.
pub fn deep_linear(n: usize, d: usize, h: usize, c: usize, seed: u64) -> (DeepLinear, Vec<f64>) {
    let m = DeepLinear::new(
        vec![d, h, c],
        gaussian(n, d, seed, 1),
        gaussian(n, c, seed, 2),
        true,
    )
    .unwrap();
    let p = imreg_objective::Objective::dim(&m);
    let theta = rng::normal_vec(&mut rng::stream(seed, 3), p)
        .iter()
        .map(|v| 0.5 * v)
        .collect();
    (m, theta)
}

/// `|a − b| / |b|`.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}
