//! Layer builders: a fully connected network in PyTorch `nn.Linear` layout, recorded on any tape.
use crate::error::Result;
use crate::graph::{Graph, Var};
use crate::tensor::{Tensor, Unary};

/// A fully connected network `x ↦ W_L σ(… σ(W_1 x + b_1) …) + b_L` with weights `[out, in]` and biases
/// `[1, out]` (PyTorch `nn.Linear`), the hidden nonlinearity `activation`, and a linear output layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// `[d_in, h_1, …, d_out]`.
    pub widths: Vec<usize>,
    pub activation: Unary,
    pub bias: bool,
}

impl Dense {
    /// Leaf shapes in parameter order: per layer the weight `(out, in)`, then the bias `(1, out)` if any.
    pub fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        Self::leaf_shapes_of(&self.widths, self.bias)
    }

    /// [`Dense::leaf_shapes`] of the network with these widths, without building it.
    pub fn leaf_shapes_of(widths: &[usize], bias: bool) -> Vec<(usize, usize)> {
        widths
            .windows(2)
            .flat_map(|w| std::iter::once((w[1], w[0])).chain(bias.then_some((1, w[1]))))
            .collect()
    }

    /// Number of layers `L`.
    pub fn layers(&self) -> usize {
        self.widths.len().saturating_sub(1)
    }

    /// Records the forward pass on the input node `x` (`n × d_in`); returns the output node (`n × d_out`) and
    /// each layer's input node. With `probes`, the `k`-th probe leaf (`n × out_k`, zeros) is added to the
    /// `k`-th pre-activation, so its gradient is that pre-activation's cotangent (used for per-example
    /// gradients).
    pub fn forward<T: Tensor>(
        &self,
        g: &mut Graph<T>,
        params: &[Var],
        x: Var,
        probes: &[Var],
    ) -> Result<(Var, Vec<Var>)> {
        let per = if self.bias { 2 } else { 1 };
        let layers = self.layers();
        let mut h = x;
        let mut inputs = Vec::with_capacity(layers);
        for k in 0..layers {
            inputs.push(h);
            let b = self.bias.then(|| params[per * k + 1]);
            h = g.linear(h, params[per * k], b)?;
            if let Some(&p) = probes.get(k) {
                h = g.add(h, p)?;
            }
            if k + 1 < layers {
                h = g.unary(h, self.activation);
            }
        }
        Ok((h, inputs))
    }
}

/// What a [`DenseLoss`] compares the network output with.
#[derive(Clone, Debug)]
pub enum Head {
    /// `(c/n) Σ_i ‖f(x_i) − y_i‖²` with `c = ½` when `half`.
    Mse { y: crate::Mat, half: bool },
    /// Mean softmax cross-entropy with integer labels.
    CrossEntropy { labels: Vec<usize> },
}

/// The mean loss of a [`Dense`] network on fixed data, as a [`Program`](crate::Program) of its parameters.
#[derive(Clone, Debug)]
pub struct DenseLoss {
    pub net: Dense,
    pub x: crate::Mat,
    pub head: Head,
}

impl crate::Program for DenseLoss {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        self.net.leaf_shapes()
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var]) -> Result<Var> {
        let x = g.constant(self.x.clone());
        let (out, _) = self.net.forward(g, leaves, x, &[])?;
        match &self.head {
            Head::Mse { y, half } => g.mse(out, y, *half),
            Head::CrossEntropy { labels } => g.softmax_cross_entropy(out, labels),
        }
    }
}
