//! Models with outputs: what the Fisher, Gauss–Newton and output-gradient penalties need beyond a loss.
use crate::batch::Batch;
use crate::error::Result;
use crate::objective::{check_direction, check_len, At, Objective};
use ndarray::{Array2, ArrayView2};

/// The per-example loss on the model outputs `f = f(x_i; θ) ∈ R^C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LossKind {
    /// `ℓ = c ‖f − y‖²` with `c = ½` when `half` (Cohen et al., Beneventano & Woodworth) and `c = 1`
    /// otherwise (the EoSS code's `Σ_classes (f − y)²`). The factor scales every Hessian and every 2/η
    /// threshold, so it is part of the model's name.
    Mse { half: bool },
    /// `ℓ = −log softmax(f)_y` with integer labels.
    CrossEntropy,
}

/// Targets for a batch, one row (or label) per batch position, in batch order.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Regression targets, `|B| × C`.
    Values(ArrayView2<'a, f64>),
    /// Class labels in `0..C`.
    Labels(&'a [usize]),
}

/// Index of the largest entry of each row of `outputs` (ties: the first): the predicted class of each example.
pub fn argmax_rows(outputs: &Array2<f64>) -> Vec<usize> {
    outputs
        .outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (c, &v)| if v > b.1 { (c, v) } else { b },
                )
                .0
        })
        .collect()
}

/// An [`Objective`] whose loss is `ℓ(f(x_i; θ), y_i)` for a model with `C` outputs.
///
/// As for [`Objective`], the entry points are provided methods that validate once (the point and batch with
/// [`Objective::validate_call`], a direction with [`check_direction`], an output buffer with [`check_len`])
/// and then call the model's `*_at` computation; targets and `u` are checked by the model, which knows their
/// shape.
pub trait Supervised: Objective {
    /// Number of model outputs `C`.
    fn n_outputs(&self) -> usize;
    /// The loss on the outputs.
    fn loss_kind(&self) -> LossKind;

    // ---- the model's computations, on validated inputs ---------------------------------------------------

    /// The model outputs of [`Supervised::outputs`].
    fn outputs_at(&self, at: At<'_>) -> Result<Array2<f64>>;
    /// The loss and gradient of [`Supervised::loss_grad_with_targets`] (`grad` has length `p`).
    fn loss_grad_with_targets_at(&self, at: At<'_>, targets: Targets<'_>, grad: &mut [f64]) -> Result<f64>;
    /// The output JVP of [`Supervised::output_jvp`] (`v` has length `p` and is finite).
    fn output_jvp_at(&self, at: At<'_>, v: &[f64]) -> Result<Array2<f64>>;
    /// The output VJP of [`Supervised::output_vjp`] (`out` has length `p`).
    fn output_vjp_at(&self, at: At<'_>, u: ArrayView2<'_, f64>, out: &mut [f64]) -> Result<()>;

    // ---- the checked entry points -----------------------------------------------------------------------

    /// The model outputs `f(x_i; θ)` for the batch, `|B| × C` (logits for cross-entropy).
    fn outputs(&self, theta: &[f64], batch: Batch<'_>) -> Result<Array2<f64>> {
        self.outputs_at(self.validate_call(theta, batch)?)
    }
    /// Mean loss and its gradient on the batch with the given targets in place of the dataset's
    /// (sampled labels for the true Fisher, random labels for GP_r).
    fn loss_grad_with_targets(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        targets: Targets<'_>,
        grad: &mut [f64],
    ) -> Result<f64> {
        let at = self.validate_call(theta, batch)?;
        check_len("grad", grad, self.dim())?;
        self.loss_grad_with_targets_at(at, targets, grad)
    }
    /// Output Jacobian-vector product `J v`, `|B| × C`, with `J = ∂f(x_i; θ)/∂θ` stacked over the batch.
    fn output_jvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64]) -> Result<Array2<f64>> {
        let at = self.validate_call(theta, batch)?;
        check_direction("v", v, self.dim())?;
        self.output_jvp_at(at, v)
    }
    /// Output vector-Jacobian product `Jᵀ U = Σ_i J_iᵀ u_i` (a sum, not a mean), written into `out`.
    fn output_vjp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: ArrayView2<'_, f64>,
        out: &mut [f64],
    ) -> Result<()> {
        let at = self.validate_call(theta, batch)?;
        check_len("out", out, self.dim())?;
        self.output_vjp_at(at, u, out)
    }
}
