//! What the penalties that differentiate through a network's outputs or inputs (FT, AJ, UJ, FP, GP_x, GP_r)
//! need of a model, implemented by every [`NetworkObjective`] (the MLP, the CNN and ResNet presets, any spec or
//! user-written [`Network`]), all through `imreg-ad`:
//!
//! * the outputs `f(x_i; θ)` (to sample labels from `softmax f`);
//! * for a functional `φ` of the outputs on a batch ([`OutputFunctional`]: the loss with other targets, or
//!   the output dot `(1/|B|) Σ_i ⟨u_i, f(x_i)⟩`), `(φ, ∇φ)` and `(φ, ∇φ, ∇²φ ∇φ)`, so that
//!   `∇‖∇φ‖² = 2 ∇²φ ∇φ` is one forward-over-reverse pass after the gradient;
//! * the input-gradient norm `‖∇ₓC_B‖²` with its parameter gradient `2 (∂²C_B/∂θ∂x) ∇ₓC_B`.
//!
//! The penalties that need only the loss (GN, GP, Smith's λ-term) take any [`Objective`].
use imreg_objective::models::network::{InputGradNorm, OutputFunctional};
use imreg_objective::models::{Loss, Network, NetworkObjective};
use imreg_objective::{Batch, Objective, Result};
use ndarray::Array2;

/// A network objective as the output- and input-gradient penalties see it (see the module doc).
pub trait NetworkModel: Objective {
    /// Number of outputs `C`.
    fn n_outputs(&self) -> usize;
    /// Whether the loss takes labels in `0..C` on `C ≥ 2` outputs (softmax cross-entropy), so that labels can
    /// be drawn from the model's predictive distribution `softmax f(x)`.
    fn is_softmax_classifier(&self) -> bool;
    /// `f(x_i; θ)` on the batch, `|B| × C`.
    fn outputs(&self, theta: &[f64], batch: Batch<'_>) -> Result<Array2<f64>>;
    /// `(φ, ∇φ)`.
    fn functional_grad(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        f: OutputFunctional<'_>,
    ) -> Result<(f64, Vec<f64>)>;
    /// `(φ, ∇φ, ∇²φ ∇φ)`.
    fn functional_self_hvp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        f: OutputFunctional<'_>,
    ) -> Result<(f64, Vec<f64>, Vec<f64>)>;
    /// `C_B`, `∇C_B`, `‖∇ₓC_B‖²` and `∇_θ‖∇ₓC_B‖²`.
    fn input_grad_norm(&self, theta: &[f64], batch: Batch<'_>) -> Result<InputGradNorm>;
}

impl<N: Network, L: Loss> NetworkModel for NetworkObjective<N, L> {
    fn n_outputs(&self) -> usize {
        self.network().output_dim()
    }
    fn is_softmax_classifier(&self) -> bool {
        let c = self.n_outputs();
        c >= 2 && self.loss_fn().label_classes(c) == Some(c)
    }
    fn outputs(&self, theta: &[f64], batch: Batch<'_>) -> Result<Array2<f64>> {
        NetworkObjective::outputs(self, theta, batch)
    }
    fn functional_grad(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        f: OutputFunctional<'_>,
    ) -> Result<(f64, Vec<f64>)> {
        NetworkObjective::functional_grad(self, theta, batch, f)
    }
    fn functional_self_hvp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        f: OutputFunctional<'_>,
    ) -> Result<(f64, Vec<f64>, Vec<f64>)> {
        NetworkObjective::functional_self_hvp(self, theta, batch, f)
    }
    fn input_grad_norm(&self, theta: &[f64], batch: Batch<'_>) -> Result<InputGradNorm> {
        NetworkObjective::input_grad_norm(self, theta, batch)
    }
}
