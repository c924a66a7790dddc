//! The comparison penalties of Jastrzębski et al. (2021) (THEORY §4a; definitions [R], conventions
//! explicit): GP `α‖∇_θ L_B‖²` with the true labels, GP_x `α‖∇_x L_B‖²` (the gradient of the batch-mean
//! loss with respect to every input of the batch), GP_r `α‖∇_θ L_B(ỹ)‖²` with labels drawn uniformly at
//! random.
use super::fisher::sample_labels;
use super::net::{Head, Net};
use super::{batch_rows, Model, Penalty, PenaltyValue};
use crate::reg_error::{check_coefficient, RegError, RegResult};
use imreg_objective::rng::ChaCha8Rng;
use imreg_objective::{Batch, Objective};
use ndarray::Array2;

/// GP: `α ‖∇L_B‖²` (true labels, squared), gradient `2α H_B ∇L_B`; any model.
pub struct GradientPenalty<'a> {
    model: Model<'a>,
    alpha: f64,
}

impl<'a> GradientPenalty<'a> {
    /// Errors on `α < 0`.
    pub fn new(model: Model<'a>, alpha: f64) -> RegResult<Self> {
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
        let (l, g, hg) = self.model.grad_self_hvp(theta, &rows)?;
        Ok(PenaltyValue {
            value: self.alpha * super::dot(&g, &g),
            grad: hg.iter().map(|v| 2.0 * self.alpha * v).collect(),
            loss: Some((l, g)),
        })
    }
}

/// GP_x: `α ‖∇_x L_B‖²` summed over the batch's inputs, gradient `2α (∂²L_B/∂θ∂x) ∇_x L_B` (one R-pass
/// with an input direction).
pub struct InputGradientPenalty<'a> {
    net: &'a Net,
    alpha: f64,
}

impl<'a> InputGradientPenalty<'a> {
    /// Errors on `α < 0`.
    pub fn new(net: &'a Net, alpha: f64) -> RegResult<Self> {
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
        let pass = self.net.loss_pass(theta, &rows)?;
        let gx = pass.input_grad.clone();
        let r = self.net.rop(theta, &pass, None, Some(gx.view()))?;
        Ok(PenaltyValue {
            value: self.alpha * gx.iter().map(|v| v * v).sum::<f64>(),
            grad: r.iter().map(|v| 2.0 * self.alpha * v).collect(),
            loss: Some((pass.value, pass.grad)),
        })
    }
}

/// GP_r: `α ‖∇L_B(ỹ)‖²` with `ỹ_i` uniform over the classes (seeded), gradient `2α H_B(ỹ) g(ỹ)`.
pub struct RandomLabelPenalty<'a> {
    net: &'a Net,
    alpha: f64,
}

impl<'a> RandomLabelPenalty<'a> {
    /// Errors on `α < 0` or a regression model.
    pub fn new(net: &'a Net, alpha: f64) -> RegResult<Self> {
        check_coefficient("alpha", alpha)?;
        if !net.is_classifier() {
            return Err(RegError::Unsupported {
                penalty: "GP_r",
                needs: "a softmax cross-entropy classifier (random class labels)",
                model: net.name(),
            });
        }
        Ok(RandomLabelPenalty { net, alpha })
    }
}

impl Penalty for RandomLabelPenalty<'_> {
    fn name(&self) -> String {
        format!("GP_r α‖∇L_B(ỹ)‖², ỹ uniform labels, α = {}", self.alpha)
    }
    fn value_grad(&self, theta: &[f64], batch: Batch<'_>, rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let rows = batch_rows(batch, self.net.n_examples())?;
        let c = imreg_objective::Supervised::n_outputs(self.net);
        // Uniform labels: sampling from equal logits.
        let labels = sample_labels(&Array2::zeros((rows.len(), c)), rng);
        let pass = self
            .net
            .pass(theta, self.net.batch_x(&rows), Head::Labels(&labels))?;
        let hg = self.net.rop(theta, &pass, Some(&pass.grad), None)?;
        Ok(PenaltyValue {
            value: self.alpha * super::dot(&pass.grad, &pass.grad),
            grad: hg.iter().map(|v| 2.0 * self.alpha * v).collect(),
            loss: None,
        })
    }
}
