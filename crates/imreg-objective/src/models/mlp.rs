//! Multi-layer perceptrons through `imreg-ad`: any widths and activations, MSE (with or without the ½) or
//! softmax cross-entropy, PyTorch `nn.Linear` parameter layout.
//!
//! The parameter vector is, layer by layer, the weight `W_ℓ` (`[out, in]`, row-major) then the bias `b_ℓ`
//! (`[out]`, if `bias`), exactly as `torch.nn.Sequential(Linear, act, Linear, …).state_dict()` flattens, with
//! names `0.weight`, `0.bias`, `2.weight`, … (see [`Mlp::param_names`]).
//!
//! The MLP is one [`Network`] (implemented by [`MlpSpec`]); [`Mlp`] is its [`NetworkObjective`] with the loss of
//! the spec, plus a faster per-example gradient path (one reverse pass per chunk, see
//! [`Mlp::per_example_grads`](Objective::per_example_grads)). Batches are cut into fixed chunks (see
//! [`super::common`]) evaluated in parallel and added in chunk order, so results are bitwise identical at any
//! thread count.
use super::common::forward_objective;
use super::common::{gather_rows, per_example_driver};
use super::loss::{Loss, StandardLoss};
use super::network::{Network, NetworkObjective, Parameter, TargetData};
use crate::error::{ObjectiveError, Result};
use crate::objective::{At, Objective, RowSink};
use crate::supervised::{LossKind, Supervised, Targets};
use imreg_ad::{Dense, Graph, Mat, Tensor, Unary, Var};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// The hidden-layer nonlinearity (the output layer is linear).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    Relu,
    /// The exact (erf) GELU, `x Φ(x)`.
    Gelu,
    Softplus,
    Sigmoid,
    /// No nonlinearity: the MLP is a deep linear network.
    Identity,
}

impl Activation {
    fn unary(self) -> Unary {
        match self {
            Activation::Tanh => Unary::Tanh,
            Activation::Relu => Unary::Relu,
            Activation::Gelu => Unary::Gelu,
            Activation::Softplus => Unary::Softplus,
            Activation::Sigmoid => Unary::Sigmoid,
            Activation::Identity => Unary::Identity,
        }
    }
}

/// Architecture and loss of an [`Mlp`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpSpec {
    /// `[d_in, h_1, …, h_{L−1}, C]`.
    pub widths: Vec<usize>,
    pub activation: Activation,
    pub bias: bool,
    pub loss: LossKind,
}

impl MlpSpec {
    /// `(out, in)` of each layer's weight.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        self.widths.windows(2).map(|w| (w[1], w[0])).collect()
    }

    /// The network as an `imreg-ad` layer builder.
    pub fn net(&self) -> Dense {
        Dense {
            widths: self.widths.clone(),
            activation: self.activation.unary(),
            bias: self.bias,
        }
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        let bias = usize::from(self.bias);
        self.widths.windows(2).map(|w| (w[0] + bias) * w[1]).sum()
    }
}

impl Network for MlpSpec {
    fn name(&self) -> String {
        let w: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        format!("mlp {} {:?}", w.join("-"), self.activation).to_lowercase()
    }

    /// PyTorch `nn.Sequential` names: `0.weight`, `0.bias`, `2.weight`, … (linear layers at even indices,
    /// activations between them), shapes `[out, in]` and `[out]`.
    fn parameters(&self) -> Vec<Parameter> {
        self.layer_shapes()
            .into_iter()
            .enumerate()
            .flat_map(|(k, (o, i))| {
                let w = Parameter::new(format!("{}.weight", 2 * k), vec![o, i]);
                let b = self
                    .bias
                    .then(|| Parameter::new(format!("{}.bias", 2 * k), vec![o]));
                std::iter::once(w).chain(b)
            })
            .collect()
    }

    fn input_dim(&self) -> usize {
        self.widths.first().copied().unwrap_or(0)
    }

    fn output_dim(&self) -> usize {
        self.widths.last().copied().unwrap_or(0)
    }

    fn forward<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var], x: Var) -> imreg_ad::Result<Var> {
        Ok(self.net().forward(g, leaves, x, &[])?.0)
    }

    /// Weight `[out, in]`, then bias `[1, out]` if any, per layer.
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        Dense::leaf_shapes_of(&self.widths, self.bias)
    }

    fn n_params(&self) -> usize {
        MlpSpec::n_params(self)
    }

    fn tape_floats_per_example(&self) -> usize {
        self.widths.iter().sum()
    }
}

impl LossKind {
    /// The built-in loss of this kind.
    pub fn standard(self) -> StandardLoss {
        match self {
            LossKind::Mse { half: true } => StandardLoss::HalfMse,
            LossKind::Mse { half: false } => StandardLoss::SquaredError,
            LossKind::CrossEntropy => StandardLoss::CrossEntropy,
        }
    }
}

/// An MLP on a fixed dataset: `ℓ_i(θ) = loss(f(x_i; θ), y_i)`, `C_B = mean over B`.
#[derive(Clone, Debug)]
pub struct Mlp {
    spec: MlpSpec,
    objective: NetworkObjective<MlpSpec, StandardLoss>,
}

impl Mlp {
    fn validate_spec(spec: &MlpSpec) -> Result<()> {
        if spec.widths.len() < 2 || spec.widths.contains(&0) {
            return Err(ObjectiveError::invalid(
                "widths",
                format!("{:?}: need ≥ 2 positive widths [d_in, …, C]", spec.widths),
            ));
        }
        Ok(())
    }

    /// A regression MLP (`spec.loss` must be `Mse`), targets `y` of shape `N × C`.
    pub fn regression(spec: MlpSpec, x: Array2<f64>, y: Array2<f64>) -> Result<Self> {
        Self::validate_spec(&spec)?;
        if !matches!(spec.loss, LossKind::Mse { .. }) {
            return Err(ObjectiveError::invalid(
                "loss",
                "regression targets need an MSE loss",
            ));
        }
        let objective = NetworkObjective::regression(spec.clone(), spec.loss.standard(), x, y)?;
        Ok(Mlp { spec, objective })
    }

    /// A classifier. With `LossKind::CrossEntropy` the outputs are logits; with `LossKind::Mse` the targets are
    /// the one-hot vectors of the labels (as in Cohen et al.'s MSE experiments).
    pub fn classification(spec: MlpSpec, x: Array2<f64>, labels: Vec<usize>) -> Result<Self> {
        Self::validate_spec(&spec)?;
        let objective = NetworkObjective::classification(spec.clone(), spec.loss.standard(), x, labels)?;
        Ok(Mlp { spec, objective })
    }

    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// The objective of the MLP as a generic [`NetworkObjective`] (what every other network gets).
    pub fn objective(&self) -> &NetworkObjective<MlpSpec, StandardLoss> {
        &self.objective
    }

    /// The regression targets `N × C` (`None` for a classifier, whose labels the caller keeps).
    pub fn regression_targets(&self) -> Option<&Array2<f64>> {
        match self.objective.targets() {
            TargetData::Values(y) => Some(y),
            TargetData::Labels(_) => None,
        }
    }

    /// The inputs, `N × d_in`.
    pub fn inputs(&self) -> &Array2<f64> {
        self.objective.inputs()
    }

    /// `(out, in)` of each layer's weight.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        self.spec.layer_shapes()
    }

    /// PyTorch `nn.Sequential` names of the parameters in order: `0.weight`, `0.bias`, `2.weight`, … (linear
    /// layers sit at even indices, activations between them).
    pub fn param_names(&self) -> Vec<String> {
        self.spec.parameters().into_iter().map(|p| p.name).collect()
    }

    /// Shapes matching [`Mlp::param_names`] (`[out, in]` and `[out]`).
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.spec.parameters().into_iter().map(|p| p.shape).collect()
    }

    /// PyTorch's default `nn.Linear` initialization, `U(−1/√in, 1/√in)` for weights and biases, times `scale`,
    /// from a seeded ChaCha stream.
    pub fn init_params(&self, seed: u64, scale: f64) -> Vec<f64> {
        use rand::Rng;
        let mut rng = crate::rng::stream(seed, 0);
        let mut theta = Vec::with_capacity(self.dim());
        for (o, i) in self.spec.layer_shapes() {
            let bound = scale / (i as f64).sqrt();
            let count = o * i + if self.spec.bias { o } else { 0 };
            theta.extend((0..count).map(|_| bound * (2.0 * rng.random::<f64>() - 1.0)));
        }
        theta
    }

    #[cfg(test)]
    fn hessian_within<'a>(
        &'a self,
        theta: &'a [f64],
        batch: crate::Batch<'a>,
        budget_bytes: usize,
    ) -> Result<Box<dyn crate::HessianAt + 'a>> {
        self.objective
            .hessian_within(self.validate_call(theta, batch)?, budget_bytes)
    }
}

fn ad_err(e: imreg_ad::AdError) -> ObjectiveError {
    ObjectiveError::Ad(e.to_string())
}

/// Memory budget of [`Mlp::hessian_at`]'s recorded tapes (see [`super::network::PREPARED_HESSIAN_BYTES`]).
pub use super::network::PREPARED_HESSIAN_BYTES;

impl Objective for Mlp {
    fn name(&self) -> String {
        let loss = match self.spec.loss {
            LossKind::Mse { half: true } => "½ MSE",
            LossKind::Mse { half: false } => "MSE (no ½)",
            LossKind::CrossEntropy => "cross-entropy",
        };
        let w: Vec<String> = self.spec.widths.iter().map(|w| w.to_string()).collect();
        format!("mlp {} {:?} ({loss})", w.join("-"), self.spec.activation).to_lowercase()
    }

    forward_objective!(objective);

    /// Per-example gradients from one reverse pass per chunk: with `δ_ℓ = ∂ℓ_i/∂z_ℓ` the pre-activation
    /// cotangent of example `i` (read off zero "probe" leaves added to each pre-activation) and `a_{ℓ−1}` its
    /// layer input, `∇_{W_ℓ} ℓ_i = δ_ℓ a_{ℓ−1}ᵀ` and `∇_{b_ℓ} ℓ_i = δ_ℓ`.
    fn per_example_grads_at(&self, at: At<'_>, chunk: usize, sink: &mut RowSink<'_>) -> Result<()> {
        let At { theta, batch } = at;
        let shapes = Network::leaf_shapes(&self.spec);
        let params = imreg_ad::unflatten(theta, &shapes).map_err(ad_err)?;
        let net = self.spec.net();
        let loss = self.spec.loss.standard();
        let fill = |ix: &[usize], mut rows: ArrayViewMut2<'_, f64>, _zeroed: bool| -> Result<()> {
            let labels = self.objective.chunk_labels(ix);
            let y = self.objective.chunk_targets(ix, &labels);
            // Parameters are constants here: only the probes are leaves, so the reverse pass computes the
            // pre-activation cotangents and skips every weight-gradient product.
            let mut g = Graph::<Mat>::new();
            let consts: Vec<Var> = params.iter().map(|p| g.constant(p.clone())).collect();
            let n = ix.len();
            let layers = self.spec.layer_shapes();
            let probes: Vec<Var> = layers.iter().map(|&(o, _)| g.leaf(Mat::zeros((n, o)))).collect();
            let x = g.constant(gather_rows(self.inputs(), ix));
            let (out, inputs) = net.forward(&mut g, &consts, x, &probes).map_err(ad_err)?;
            let total = loss.sum(&mut g, out, &y).map_err(ad_err)?;
            let deltas = g.backward(total).map_err(ad_err)?;
            for (r, mut row) in rows.rows_mut().into_iter().enumerate() {
                let row = row
                    .as_slice_mut()
                    .ok_or_else(|| ObjectiveError::invalid("buffer", "not contiguous"))?;
                let mut off = 0;
                for (k, &(o, i)) in layers.iter().enumerate() {
                    // Tape values are row-major, so their rows are slices.
                    let (Some(d), Some(a)) =
                        (deltas[k].row(r).to_slice(), g.value(inputs[k]).row(r).to_slice())
                    else {
                        return Err(ObjectiveError::invalid("tape value", "not row-major"));
                    };
                    imreg_ad::fastmath::outer_into(d, a, &mut row[off..off + o * i]);
                    off += o * i;
                    if self.spec.bias {
                        row[off..off + o].copy_from_slice(d);
                        off += o;
                    }
                }
            }
            Ok(())
        };
        per_example_driver(batch, self.n_examples(), self.dim(), chunk, fill, sink)
    }
}

impl Supervised for Mlp {
    fn n_outputs(&self) -> usize {
        self.spec.output_dim()
    }

    fn loss_kind(&self) -> LossKind {
        self.spec.loss
    }

    fn outputs_at(&self, at: At<'_>) -> Result<Array2<f64>> {
        let At { theta, batch } = at;
        self.objective.outputs(theta, batch)
    }

    fn loss_grad_with_targets_at(&self, at: At<'_>, targets: Targets<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        self.objective.loss_grad_with_targets(theta, batch, targets, grad)
    }

    fn output_jvp_at(&self, at: At<'_>, v: &[f64]) -> Result<Array2<f64>> {
        let At { theta, batch } = at;
        self.objective.output_jvp(theta, batch, v)
    }

    fn output_vjp_at(&self, at: At<'_>, u: ArrayView2<'_, f64>, out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        self.objective.output_vjp(theta, batch, u, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Batch;

    #[test]
    fn hessian_over_the_memory_budget_is_streamed_and_equal() {
        let x = Array2::from_shape_fn((300, 4), |(i, j)| ((i * 7 + j * 3) as f64).sin());
        let spec = MlpSpec {
            widths: vec![4, 6, 3],
            activation: Activation::Tanh,
            bias: true,
            loss: LossKind::CrossEntropy,
        };
        let m = Mlp::classification(spec, x, (0..300).map(|i| i % 3).collect()).unwrap();
        let theta = m.init_params(3, 1.0);
        let v = m.init_params(4, 1.0);
        let want = m.hvp_vec(&theta, Batch::Full, &v).unwrap();
        // A zero budget streams through `hvp` (bitwise its result); the default budget records the tapes.
        for (budget, exact) in [(0, true), (PREPARED_HESSIAN_BYTES, false)] {
            let mut got = vec![0.0; m.dim()];
            let h = m.hessian_within(&theta, Batch::Full, budget).unwrap();
            h.hvp(&v, &mut got).unwrap();
            let err = want
                .iter()
                .zip(&got)
                .fold(0.0_f64, |e, (a, b)| e.max((a - b).abs()));
            let scale = want.iter().fold(0.0_f64, |s, a| s.max(a.abs()));
            assert!(
                if exact { err == 0.0 } else { err <= 1e-14 * scale },
                "budget {budget}: {err:e}"
            );
        }
        assert!(m.hessian_within(&theta, Batch::Indices(&[300]), 0).is_err());
    }
}
