//! The MLP problems of the anchors' sizes, shared by the MLP bench (`benches/mlp.rs`) and the instruction-count
//! driver `examples/mlp_rows.rs`, so that both measure the same models, data and points.
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::LossKind;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One of the anchors' MLP sizes: layer widths and examples.
pub struct Size {
    pub name: &'static str,
    pub widths: Vec<usize>,
    pub n: usize,
}

/// tiny, small and medium, as in the anchors.
pub fn sizes() -> Vec<Size> {
    vec![
        Size {
            name: "tiny",
            widths: vec![10, 32, 32, 1],
            n: 64,
        },
        Size {
            name: "small",
            widths: vec![64, 128, 128, 10],
            n: 512,
        },
        Size {
            name: "medium",
            widths: vec![784, 256, 256, 10],
            n: 1024,
        },
    ]
}

/// The tanh MLP of size `s` on seeded inputs in `[−1, 1)`: cross-entropy on labels `i mod c` when `ce`, else
/// ½-MSE (regression on `sin Σx` for one output, one-hot targets otherwise).
pub fn model(s: &Size, ce: bool) -> Mlp {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let d = s.widths[0];
    let x = Array2::from_shape_fn((s.n, d), |_| rng.random::<f64>() * 2.0 - 1.0);
    let mut widths = s.widths.clone();
    let spec = |widths, loss| MlpSpec {
        widths,
        activation: Activation::Tanh,
        bias: true,
        loss,
    };
    let half_mse = LossKind::Mse { half: true };
    if ce {
        let c = (*widths.last().unwrap()).max(2);
        *widths.last_mut().unwrap() = c;
        let labels = (0..s.n).map(|i| i % c).collect();
        Mlp::classification(spec(widths, LossKind::CrossEntropy), x, labels).unwrap()
    } else if *widths.last().unwrap() == 1 {
        let y = Array2::from_shape_fn((s.n, 1), |(i, _)| x.row(i).sum().sin());
        Mlp::regression(spec(widths, half_mse), x, y).unwrap()
    } else {
        let c = *widths.last().unwrap();
        let labels = (0..s.n).map(|i| i % c).collect();
        Mlp::classification(spec(widths, half_mse), x, labels).unwrap()
    }
}
