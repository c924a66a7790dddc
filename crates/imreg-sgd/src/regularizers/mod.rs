//! Explicit regularizers: each a composable [`Penalty`] with an exact gradient (Hessian-vector products and
//! differentiable backward passes, never finite differences unless the name says so) and a named
//! convention (`docs/theory/regularizers.md`):
//!
//! | penalty | value | gradient |
//! |---|---|---|
//! | [`smith::SmithLambda`] | `(λ/(4m)) Σ_k ‖∇Ĉ_k‖²` over a fixed partition | `(λ/(2m)) Σ_k Ĥ_k ĝ_k` |
//! | [`smith::SmithStochastic`] | `(λ/4) ‖∇Ĉ_B‖²` on the current batch | `(λ/2) Ĥ_B ĝ_B` |
//! | [`micro_batch::MicroBatchGradNorm`] (GN) | `λ · mean_j ‖∇L_{M_j}‖²` | `2λ mean_j H_j g_j` |
//! | [`micro_batch::FisherTrace`] (FT) | `λ · mean_j ‖∇L_{M_j}(ŷ)‖²`, `ŷ ~ softmax(f)` | `2λ mean_j H_j(ŷ) g_j(ŷ)` |
//! | [`micro_batch::AverageJacobian`] (AJ) | `λ · mean_j ‖∇ (1/|M|) Σ_i Σ_c f_c(x_i)‖²` | `2λ mean_j ∇²φ_j ∇φ_j` |
//! | [`micro_batch::UnitJacobian`] (UJ) | `λ · mean_j ‖∇ (1/|M|) Σ_i uᵀ f(x_i)‖²`, `u` unit | `2λ mean_j ∇²φ_j ∇φ_j` |
//! | [`fisher::FisherPenalty`] (FP) | `α ‖∇L_B(ŷ)‖^p`, `p ∈ {2, 1}` | `2α H g` or `α H g/‖g‖` |
//! | [`fisher::FisherPenaltyFd`] | the same value | central differences of `∇L(ŷ)` along `g` (`O(r²)`) |
//! | [`gradient_penalty::GradientPenalty`] (GP) | `α ‖∇L_B‖²` (true labels) | `2α H g` |
//! | [`gradient_penalty::InputGradientPenalty`] (GP_x) | `α ‖∇_x L_B‖²` | `2α (∂²L/∂θ∂x) ∇_x L` |
//! | [`gradient_penalty::RandomLabelPenalty`] (GP_r) | `α ‖∇L_B(ỹ)‖²`, `ỹ` uniform labels | `2α H(ỹ) g(ỹ)` |
//! | [`WeightDecay`] | `(wd/2) ‖θ‖²` (torch `weight_decay`) | `wd θ` |
//!
//! Every gradient is `imreg-ad`'s: `∇‖∇φ‖² = 2 ∇²φ ∇φ` is a gradient then one forward-over-reverse HVP of
//! the functional `φ`, and GP_x's mixed derivative is one HVP of the tape with the inputs as a leaf. GN, GP and
//! Smith's λ-term take any [`Objective`]; the penalties that differentiate through the outputs or the inputs
//! take a [`NetworkModel`], which every [`imreg_objective::models::NetworkObjective`] is (MLPs, CNNs, ResNets,
//! specs). Micro-batches run in parallel, their randomness drawn first in micro-batch order and their results
//! added in that order, so values are bitwise identical at any thread count.
//!
//! plus the step transforms [`clip_grad_norm`] (torch `clip_grad_norm_`) and iterative gradient grafting
//! ([`grafting::IterativeGrafting`]). A training run composes them as the gradient transform of its method
//! ([`crate::train::GradientTransform`]): `d = ∇L_B + Σ ∇R`, clipped, then grafted.
//!
//! Randomness (sampled labels, random unit vectors) comes from the `ChaCha8Rng` passed to
//! [`Penalty::value_grad`], drawn in a fixed order, so a seed freezes it (the gradient checks rely on this).
pub mod fisher;
pub mod gradient_penalty;
pub mod grafting;
pub mod micro_batch;
pub mod network_model;
pub mod smith;

pub use network_model::NetworkModel;

use crate::reg_error::{check_coefficient, RegError, RegResult};
use imreg_objective::rng::ChaCha8Rng;
use imreg_objective::{Batch, Objective};
use imreg_spectra::dot;

/// One evaluation of a penalty on a batch.
#[derive(Clone, Debug)]
pub struct PenaltyValue {
    /// The penalty value (coefficient included).
    pub value: f64,
    /// Its exact gradient with respect to θ.
    pub grad: Vec<f64>,
    /// The batch loss `L_B` and `∇L_B`, when the penalty computed them on the way (micro-batch penalties
    /// with the true labels), so a training step need not recompute them.
    pub loss: Option<(f64, Vec<f64>)>,
}

/// An explicit regularizer `R(θ; B)` with its exact gradient.
pub trait Penalty: Send + Sync {
    /// Name with the convention (squared or not, sum or mean, which labels).
    fn name(&self) -> String;
    /// Value and gradient on the batch; randomness from `rng`.
    fn value_grad(&self, theta: &[f64], batch: Batch<'_>, rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue>;
}

/// `(L_B, ∇L_B, H_B ∇L_B)` on the rows: a gradient, then one HVP along it.
pub fn grad_self_hvp(
    obj: &dyn Objective,
    theta: &[f64],
    rows: &[usize],
) -> RegResult<(f64, Vec<f64>, Vec<f64>)> {
    let (l, g) = loss_grad(obj, theta, rows)?;
    let hg = obj.hvp_vec(theta, Batch::Indices(rows), &g)?;
    Ok((l, g, hg))
}

/// `(L_B, ∇L_B)` on the rows.
pub fn loss_grad(obj: &dyn Objective, theta: &[f64], rows: &[usize]) -> RegResult<(f64, Vec<f64>)> {
    let mut g = vec![0.0; obj.dim()];
    let l = obj.loss_grad(theta, Batch::Indices(rows), &mut g)?;
    Ok((l, g))
}

/// The rows of a batch, validated against `n`.
pub fn batch_rows(batch: Batch<'_>, n: usize) -> RegResult<Vec<usize>> {
    batch.validate(n)?;
    Ok(batch.iter(n).collect())
}

/// The number of micro-batches `k = |B|/|M|`; errors unless `|M| ≥ 1` divides `|B|`.
pub fn micro_batch_count(batch: usize, micro: usize) -> RegResult<usize> {
    if micro == 0 || !batch.is_multiple_of(micro) {
        return Err(RegError::MicroBatch { batch, micro });
    }
    Ok(batch / micro)
}

/// Weight decay `(wd/2)‖θ‖²`, gradient `wd θ` (PyTorch's `weight_decay` adds `wd θ` to the gradient).
#[derive(Clone, Copy, Debug)]
pub struct WeightDecay {
    coefficient: f64,
}

impl WeightDecay {
    /// Errors on a negative or non-finite coefficient.
    pub fn new(coefficient: f64) -> RegResult<Self> {
        check_coefficient("weight_decay", coefficient)?;
        Ok(WeightDecay { coefficient })
    }
}

impl Penalty for WeightDecay {
    fn name(&self) -> String {
        format!("weight decay (wd/2)‖θ‖², wd = {}", self.coefficient)
    }
    fn value_grad(&self, theta: &[f64], _batch: Batch<'_>, _rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let c = self.coefficient;
        Ok(PenaltyValue {
            value: 0.5 * c * dot(theta, theta),
            grad: theta.iter().map(|t| c * t).collect(),
            loss: None,
        })
    }
}

/// PyTorch's `clip_grad_norm_`: if `‖g‖ > max_norm`, scale `g` by `max_norm/(‖g‖ + 1e-6)`. Returns the norm
/// before clipping.
pub fn clip_grad_norm(grad: &mut [f64], max_norm: f64) -> f64 {
    let norm = dot(grad, grad).sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        grad.iter_mut().for_each(|g| *g *= coef);
    }
    norm
}
