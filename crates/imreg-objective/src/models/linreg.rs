//! Linear regression with the ½ convention, `ℓ_i(θ) = ½ (x_iᵀθ − y_i)²`.
use super::glm::{Glm, HalfSquaredError};
use crate::error::Result;
use crate::objective::{At, Objective};
use crate::supervised::{LossKind, Supervised, Targets};
use ndarray::{Array1, Array2, ArrayView2};

/// Linear regression, `C_B(θ) = (1/|B|) Σ_{i∈B} ½ (x_iᵀθ − y_i)²`, `θ ∈ R^d`, no bias (append a column of
/// ones to `x` for one). `∇ℓ_i = r_i x_i` with `r_i = x_iᵀθ − y_i`, `∇²ℓ_i = x_i x_iᵀ`, third derivative 0.
/// As a [`Supervised`] model: `C = 1` output `f_i = x_iᵀθ`, [`LossKind::Mse`] with `half: true`.
pub type LinearRegression = Glm<HalfSquaredError>;

impl LinearRegression {
    /// `x` is `N × d`, `y` has length `N`; errors on mismatched shapes, empty data or non-finite values.
    pub fn new(x: Array2<f64>, y: Array1<f64>) -> Result<Self> {
        Glm::build(x, y.to_vec())
    }

    /// The targets `y`.
    pub fn y(&self) -> &[f64] {
        &self.y
    }
}

impl Supervised for LinearRegression {
    fn n_outputs(&self) -> usize {
        1
    }

    fn loss_kind(&self) -> LossKind {
        LossKind::Mse { half: true }
    }

    fn outputs_at(&self, at: At<'_>) -> Result<Array2<f64>> {
        let At { theta, batch } = at;
        let z = self.logits(theta, batch);
        Ok(Array2::from_shape_fn((z.len(), 1), |(k, _)| z[k]))
    }

    fn loss_grad_with_targets_at(&self, at: At<'_>, targets: Targets<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let nb = batch.len(self.n_examples());
        let t = super::common::value_targets(targets, nb, 1, "linreg")?;
        let (s, g) = self.sum_loss_grad(theta, batch, &|k, _| t[(k, 0)])?;
        grad.iter_mut().zip(&g).for_each(|(o, x)| *o = x / nb as f64);
        Ok(s / nb as f64)
    }

    fn output_jvp_at(&self, at: At<'_>, v: &[f64]) -> Result<Array2<f64>> {
        // `v` is checked as `θ` is (length `p`, finite), and the outputs are linear in `θ`: `J v = f(v)`.
        self.outputs_at(At { theta: v, ..at })
    }

    fn output_vjp_at(&self, at: At<'_>, u: ArrayView2<'_, f64>, out: &mut [f64]) -> Result<()> {
        self.linear_output_vjp(at.batch, u, out, (1, 0, "linreg"))
    }
}
