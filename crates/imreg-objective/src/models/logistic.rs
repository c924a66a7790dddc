//! Binary logistic regression, `ℓ_i(θ) = softplus(z_i) − y_i z_i`, `z_i = x_iᵀθ`, `y_i ∈ {0, 1}`.
use super::glm::{BinaryLogistic, Glm};
use crate::error::{ObjectiveError, Result};
use crate::objective::{At, Objective};
use crate::supervised::{LossKind, Supervised, Targets};
use ndarray::{Array2, ArrayView2};

/// Binary logistic regression, `C_B(θ) = (1/|B|) Σ_{i∈B} softplus(z_i) − y_i z_i`, `z_i = x_iᵀθ`, no bias
/// (append a column of ones to `x` for one). With `σ = sigmoid(z_i)`: `∇ℓ_i = (σ − y_i) x_i`,
/// `∇²ℓ_i = σ(1 − σ) x_i x_iᵀ`, `T3_i[u, v] = σ(1 − σ)(1 − 2σ)(x_iᵀu)(x_iᵀv) x_i`; evaluated without
/// overflow for any `z`.
///
/// As a [`Supervised`] model it has `C = 2` outputs, the logits `(0, z_i)`, with
/// [`LossKind::CrossEntropy`]: `−log softmax(0, z)_y = softplus(z) − y z` is exactly this loss. The first
/// logit is the constant 0, so its Jacobian row is zero.
pub type LogisticRegression = Glm<BinaryLogistic>;

impl LogisticRegression {
    /// `x` is `N × d`, `labels` has length `N` with values in `{0, 1}` (else
    /// [`ObjectiveError::LabelOutOfRange`]); errors on mismatched shapes, empty data or non-finite `x`.
    pub fn new(x: Array2<f64>, labels: Vec<usize>) -> Result<Self> {
        check_labels(&labels, 2)?;
        Glm::build(x, labels.iter().map(|&l| l as f64).collect())
    }

    /// The labels, in `{0, 1}`.
    pub fn labels(&self) -> Vec<usize> {
        self.y.iter().map(|&y| y as usize).collect()
    }
}

/// Errors with [`ObjectiveError::LabelOutOfRange`] on the first label `≥ classes`.
pub(crate) fn check_labels(labels: &[usize], classes: usize) -> Result<()> {
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        return Err(ObjectiveError::LabelOutOfRange {
            index,
            label: label as i64,
            classes,
        });
    }
    Ok(())
}

impl Supervised for LogisticRegression {
    fn n_outputs(&self) -> usize {
        2
    }

    fn loss_kind(&self) -> LossKind {
        LossKind::CrossEntropy
    }

    fn outputs_at(&self, at: At<'_>) -> Result<Array2<f64>> {
        let At { theta, batch } = at;
        let z = self.logits(theta, batch);
        Ok(Array2::from_shape_fn((z.len(), 2), |(k, c)| {
            if c == 1 {
                z[k]
            } else {
                0.0
            }
        }))
    }

    fn loss_grad_with_targets_at(&self, at: At<'_>, targets: Targets<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let nb = batch.len(self.n_examples());
        let labels = match targets {
            Targets::Labels(l) => l,
            Targets::Values(_) => {
                return Err(ObjectiveError::Unsupported {
                    what: "real-valued targets".into(),
                    model: "logreg (cross-entropy needs labels)".into(),
                })
            }
        };
        if labels.len() != nb {
            return Err(ObjectiveError::Length {
                name: "labels",
                expected: nb,
                got: labels.len(),
            });
        }
        check_labels(labels, 2)?;
        let (s, g) = self.sum_loss_grad(theta, batch, &|k, _| labels[k] as f64)?;
        grad.iter_mut().zip(&g).for_each(|(o, x)| *o = x / nb as f64);
        Ok(s / nb as f64)
    }

    fn output_jvp_at(&self, at: At<'_>, v: &[f64]) -> Result<Array2<f64>> {
        // `v` is checked as `θ` is (length `p`, finite), and the outputs are linear in `θ`: `J v = f(v)`.
        self.outputs_at(At { theta: v, ..at })
    }

    fn output_vjp_at(&self, at: At<'_>, u: ArrayView2<'_, f64>, out: &mut [f64]) -> Result<()> {
        self.linear_output_vjp(at.batch, u, out, (2, 1, "logreg"))
    }
}
