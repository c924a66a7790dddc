//! The comparison penalties of Jastrzębski et al. (2021) (`docs/theory/regularizers.md` §Comparison
//! penalties; definitions reconstructed, conventions explicit): GP `α‖∇_θ L_B‖²` with the true labels, GP_x
//! `α‖∇_x L_B‖²` (the gradient of the batch-mean loss with respect to every input of the batch), GP_r
//! `α‖∇_θ L_B(ỹ)‖²` with labels drawn uniformly at random.
use super::fisher::{sample_labels, softmax_classifier};
use super::{batch_rows, grad_self_hvp, NetworkModel, Penalty, PenaltyValue};
use crate::reg_error::{check_coefficient, RegResult};
use imreg_objective::models::network::OutputFunctional;
use imreg_objective::rng::ChaCha8Rng;
use imreg_objective::{Batch, Objective, Targets};
use imreg_spectra::dot;
use ndarray::Array2;

/// GP: `α ‖∇L_B‖²` (true labels, squared), gradient `2α H_B ∇L_B`; any model.
pub struct GradientPenalty<'a> {
    model: &'a dyn Objective,
    alpha: f64,
}

impl<'a> GradientPenalty<'a> {
    /// Errors on `α < 0`.
    pub fn new(model: &'a dyn Objective, alpha: f64) -> RegResult<Self> {
        check_coefficient("alpha", alpha)?;
        Ok(GradientPenalty { model, alpha })
    }
}

impl Penalty for GradientPenalty<'_> {
    fn name(&self) -> String {
        format!("GP α‖∇L_B‖² (true labels, squared), α = {}", self.alpha)
    }
    fn value_grad(&self, theta: &[f64], batch: Batch<'_>, _rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let rows = batch_rows(batch, self.model.n_examples())?;
        let (l, g, hg) = grad_self_hvp(self.model, theta, &rows)?;
        Ok(PenaltyValue {
            value: self.alpha * dot(&g, &g),
            grad: hg.iter().map(|v| 2.0 * self.alpha * v).collect(),
            loss: Some((l, g)),
        })
    }
}

/// GP_x: `α ‖∇_x L_B‖²` summed over the batch's inputs, gradient `2α (∂²L_B/∂θ∂x) ∇_x L_B` (one HVP of the
/// tape with the inputs as a leaf, along `(0, ∇_x L_B)`).
pub struct InputGradientPenalty<'a> {
    net: &'a dyn NetworkModel,
    alpha: f64,
}

impl<'a> InputGradientPenalty<'a> {
    /// Errors on `α < 0`.
    pub fn new(net: &'a dyn NetworkModel, alpha: f64) -> RegResult<Self> {
        check_coefficient("alpha", alpha)?;
        Ok(InputGradientPenalty { net, alpha })
    }
}

impl Penalty for InputGradientPenalty<'_> {
    fn name(&self) -> String {
        format!(
            "GP_x α‖∇_x L_B‖² (batch-mean loss, all inputs), α = {}",
            self.alpha
        )
    }
    fn value_grad(&self, theta: &[f64], batch: Batch<'_>, _rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let rows = batch_rows(batch, self.net.n_examples())?;
        let r = self.net.input_grad_norm(theta, Batch::Indices(&rows))?;
        Ok(PenaltyValue {
            value: self.alpha * r.norm2,
            grad: r.norm2_grad.iter().map(|v| self.alpha * v).collect(),
            loss: Some((r.loss, r.grad)),
        })
    }
}

/// GP_r: `α ‖∇L_B(ỹ)‖²` with `ỹ_i` uniform over the classes (seeded), gradient `2α H_B(ỹ) g(ỹ)`.
pub struct RandomLabelPenalty<'a> {
    net: &'a dyn NetworkModel,
    alpha: f64,
}

impl<'a> RandomLabelPenalty<'a> {
    /// Errors on `α < 0` or a model without softmax outputs.
    pub fn new(net: &'a dyn NetworkModel, alpha: f64) -> RegResult<Self> {
        check_coefficient("alpha", alpha)?;
        softmax_classifier(
            net,
            "GP_r",
            "a softmax cross-entropy classifier (random class labels)",
        )?;
        Ok(RandomLabelPenalty { net, alpha })
    }
}

impl Penalty for RandomLabelPenalty<'_> {
    fn name(&self) -> String {
        format!("GP_r α‖∇L_B(ỹ)‖², ỹ uniform labels, α = {}", self.alpha)
    }
    fn value_grad(&self, theta: &[f64], batch: Batch<'_>, rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let rows = batch_rows(batch, self.net.n_examples())?;
        // Uniform labels: sampling from equal logits.
        let labels = sample_labels(&Array2::zeros((rows.len(), self.net.n_outputs())), rng);
        let (_, g, hg) = self.net.functional_self_hvp(
            theta,
            Batch::Indices(&rows),
            OutputFunctional::Loss(Targets::Labels(&labels)),
        )?;
        Ok(PenaltyValue {
            value: self.alpha * dot(&g, &g),
            grad: hg.iter().map(|v| 2.0 * self.alpha * v).collect(),
            loss: None,
        })
    }
}
