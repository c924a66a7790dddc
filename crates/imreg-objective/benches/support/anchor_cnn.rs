//! The benchmark anchors' CNN problems, shared by the CNN benches of imreg-objective and imreg-spectra.
//!
//! Reproduced in kind: inputs `N(0, 1)`, labels uniform in `0..10`, weights `N(0, 1)·√(2/fan_in)` in parameter
//! order (He scaling), zero biases, a direction `v ~ N(0, I)`, all from seeded ChaCha streams (the values
//! differ from NumPy's, the shapes, scales and hence the ReLU patterns' statistics do not).
use imreg_objective::models::{preset_default, Network, NetworkObjective, SpecNetwork, StandardLoss};
use imreg_objective::rng::{normal_vec, stream};
use imreg_objective::Objective;
use ndarray::Array2;
use rand::Rng;

/// `(preset, n)` as in the anchors.
pub const MODELS: [(&str, usize); 3] = [("cnn-mnist", 256), ("cnn-cifar", 256), ("resnet-small", 128)];

/// One anchor problem at its starting point.
pub struct Problem {
    pub objective: NetworkObjective<SpecNetwork>,
    /// He-scaled weights, zero biases.
    pub theta: Vec<f64>,
    /// The HVP direction.
    pub v: Vec<f64>,
}

/// The preset `model` on `n` examples with mean cross-entropy (`ce`) or `1/(2n) Σ ‖f(x_i) − y_i‖²` on
/// one-hot targets ([`StandardLoss::HalfMse`], the anchors' `mse`).
pub fn problem(model: &str, n: usize, ce: bool) -> Problem {
    let net = SpecNetwork::new(preset_default(model).unwrap()).unwrap();
    let d = net.input_dim();
    let x = Array2::from_shape_vec((n, d), normal_vec(&mut stream(2, 0), n * d)).unwrap();
    let mut rng = stream(3, 0);
    let labels = (0..n).map(|_| rng.random_range(0..net.output_dim())).collect();
    let loss = if ce {
        StandardLoss::CrossEntropy
    } else {
        StandardLoss::HalfMse
    };
    let objective = NetworkObjective::classification(net, loss, x, labels).unwrap();
    let theta = he_params(objective.network());
    let v = normal_vec(&mut stream(7, 0), objective.dim());
    Problem { objective, theta, v }
}

/// He-scaled weights in parameter order, zero biases (as the anchors).
fn he_params(net: &SpecNetwork) -> Vec<f64> {
    let mut rng = stream(1, 0);
    let mut theta = Vec::new();
    for p in net.parameters() {
        if p.shape.len() >= 2 {
            let fan_in: usize = p.shape[1..].iter().product();
            let scale = (2.0 / fan_in as f64).sqrt();
            theta.extend(normal_vec(&mut rng, p.len()).into_iter().map(|w| w * scale));
        } else {
            theta.extend(std::iter::repeat_n(0.0, p.len()));
        }
    }
    theta
}
