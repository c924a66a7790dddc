//! Deep linear networks `f(x) = W_L ⋯ W_1 x` (optionally with biases) under the ½ MSE.
//!
//! A deep linear network is the [`Mlp`] with the identity activation and the ½ MSE, so every derivative —
//! loss, gradient, HVP (forward-over-reverse), prepared HVPs (`linearize`), third order (`Dual<Dual<_>>`)
//! and per-example gradients (one reverse pass per chunk) — is the `imreg-ad` tape's, with the MLP's chunked,
//! thread-count-independent reductions. This type keeps the deep-linear view: its own validation, the
//! `nn.Sequential(nn.Linear, nn.Linear, …)` parameter names (no activation modules between the layers) and
//! the end-to-end matrix `W_L ⋯ W_1`.
use super::common::forward_objective;
use super::common::value_targets;
use super::mlp::{Activation, Mlp, MlpSpec};
use crate::error::{ObjectiveError, Result};
use crate::objective::{check_finite, check_len, At, Objective, RowSink};
use crate::supervised::{LossKind, Supervised, Targets};
use ndarray::{Array2, ArrayView2};

/// Deep linear network `f(x) = W_L(⋯(W_1 x + b_1)⋯) + b_L` with `ℓ_i = ½ ‖f(x_i) − y_i‖²`.
///
/// `widths = [d_in, h_1, …, d_out]` gives `L = widths.len() − 1` layers; layer `ℓ` has weight `W_ℓ`
/// (`d_ℓ × d_{ℓ−1}`) and, if `bias`, bias `b_ℓ` (`d_ℓ`). The flat parameter vector follows PyTorch's
/// `nn.Sequential(nn.Linear, …)`: for each layer its weight `[out, in]` row-major, then its bias; the names are
/// [`DeepLinear::param_names`] (`0.weight`, `0.bias`, `1.weight`, …).
#[derive(Clone, Debug)]
pub struct DeepLinear {
    /// The identity-activation, ½-MSE [`Mlp`] that computes every derivative.
    net: Mlp,
    /// `N × d_out`.
    y: Array2<f64>,
}

impl DeepLinear {
    /// `widths = [d_in, h_1, …, d_out]` (at least two entries, all ≥ 1), `x` is `N × d_in`, `y` is
    /// `N × d_out`. Errors on bad widths, mismatched shapes, no example or non-finite data.
    pub fn new(widths: Vec<usize>, x: Array2<f64>, y: Array2<f64>, bias: bool) -> Result<Self> {
        if widths.len() < 2 {
            return Err(ObjectiveError::invalid(
                "widths",
                "needs [d_in, …, d_out] with at least one layer",
            ));
        }
        if let Some(pos) = widths.iter().position(|&w| w == 0) {
            return Err(ObjectiveError::invalid("widths", format!("width {pos} is 0")));
        }
        let (d_in, d_out) = (widths[0], widths[widths.len() - 1]);
        if x.ncols() != d_in || x.nrows() == 0 {
            return Err(ObjectiveError::Shape {
                what: "x".into(),
                expected: format!("N × {d_in} with N ≥ 1"),
                got: format!("{} × {}", x.nrows(), x.ncols()),
            });
        }
        if y.dim() != (x.nrows(), d_out) {
            return Err(ObjectiveError::Shape {
                what: "y".into(),
                expected: format!("{} × {d_out}", x.nrows()),
                got: format!("{} × {}", y.nrows(), y.ncols()),
            });
        }
        let x = x.as_standard_layout().into_owned();
        let y = y.as_standard_layout().into_owned();
        check_finite("x", x.as_slice().unwrap_or(&[]))?;
        check_finite("y", y.as_slice().unwrap_or(&[]))?;
        let spec = MlpSpec {
            widths,
            activation: Activation::Identity,
            bias,
            loss: LossKind::Mse { half: true },
        };
        let net = Mlp::regression(spec, x, y.clone())?;
        Ok(DeepLinear { net, y })
    }

    /// `[d_in, h_1, …, d_out]`.
    pub fn widths(&self) -> &[usize] {
        &self.net.spec().widths
    }

    /// Number of layers `L`.
    pub fn depth(&self) -> usize {
        self.widths().len() - 1
    }

    /// Whether the layers have biases.
    pub fn has_bias(&self) -> bool {
        self.net.spec().bias
    }

    /// Inputs, `N × d_in`.
    pub fn x(&self) -> &Array2<f64> {
        self.net.inputs()
    }

    /// Targets, `N × d_out`.
    pub fn y(&self) -> &Array2<f64> {
        &self.y
    }

    /// The network as an identity-activation, ½-MSE [`Mlp`] (the same parameters, the same objective).
    pub fn as_mlp(&self) -> &Mlp {
        &self.net
    }

    /// PyTorch `nn.Sequential` parameter names in `θ` order: `0.weight`, `0.bias`, `1.weight`, ….
    pub fn param_names(&self) -> Vec<String> {
        let bias = self.has_bias();
        (0..self.depth())
            .flat_map(|l| std::iter::once(format!("{l}.weight")).chain(bias.then(|| format!("{l}.bias"))))
            .collect()
    }

    /// Tensor shapes in `θ` order, matching [`DeepLinear::param_names`]: `[out, in]` per weight, `[out]` per bias.
    pub fn layer_shapes(&self) -> Vec<Vec<usize>> {
        self.net.param_shapes()
    }

    /// The end-to-end matrix `W_L ⋯ W_1` (`d_out × d_in`; biases ignored).
    pub fn end_to_end(&self, theta: &[f64]) -> Result<Array2<f64>> {
        check_len("theta", theta, self.dim())?;
        let bias = usize::from(self.has_bias());
        let mut off = 0;
        let mut m: Option<Array2<f64>> = None;
        for w in self.widths().windows(2) {
            let (o, i) = (w[1], w[0]);
            let wl = ArrayView2::from_shape((o, i), &theta[off..off + o * i])
                .map_err(|e| ObjectiveError::invalid("theta", e.to_string()))?;
            m = Some(match m {
                None => wl.to_owned(),
                Some(m) => wl.dot(&m),
            });
            off += o * (i + bias);
        }
        m.ok_or_else(|| ObjectiveError::invalid("widths", "no layer"))
    }
}

impl Objective for DeepLinear {
    fn name(&self) -> String {
        format!(
            "deep-linear {:?}{} (½ MSE, N = {})",
            self.widths(),
            if self.has_bias() { " +bias" } else { "" },
            self.n_examples()
        )
    }

    forward_objective!(net);

    fn per_example_grads_at(&self, at: At<'_>, chunk: usize, sink: &mut RowSink<'_>) -> Result<()> {
        self.net.per_example_grads_at(at, chunk, sink)
    }
}

impl Supervised for DeepLinear {
    fn n_outputs(&self) -> usize {
        self.net.n_outputs()
    }

    fn loss_kind(&self) -> LossKind {
        LossKind::Mse { half: true }
    }

    fn outputs_at(&self, at: At<'_>) -> Result<Array2<f64>> {
        self.net.outputs_at(at)
    }

    /// Value targets only (`N_B × d_out`, finite); class labels are refused.
    fn loss_grad_with_targets_at(&self, at: At<'_>, targets: Targets<'_>, grad: &mut [f64]) -> Result<f64> {
        let nb = at.batch.len(self.n_examples());
        let t = value_targets(targets, nb, self.n_outputs(), "deep-linear")?;
        self.net.loss_grad_with_targets_at(at, Targets::Values(t), grad)
    }

    fn output_jvp_at(&self, at: At<'_>, v: &[f64]) -> Result<Array2<f64>> {
        self.net.output_jvp_at(at, v)
    }

    fn output_vjp_at(&self, at: At<'_>, u: ArrayView2<'_, f64>, out: &mut [f64]) -> Result<()> {
        let nb = at.batch.len(self.n_examples());
        let u = value_targets(Targets::Values(u), nb, self.n_outputs(), "deep-linear")?;
        self.net.output_vjp_at(at, u, out)
    }
}
