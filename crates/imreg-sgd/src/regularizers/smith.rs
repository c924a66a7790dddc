//! Smith, Dherin, Barrett & De (2021): the implicit regularizer of SGD made explicit,
//! `C_mod = C + (λ/(4m)) Σ_k ‖∇Ĉ_k‖²` (`docs/theory/regularizers.md` §Smith's explicit regularizer), and its
//! per-step stochastic form `(λ/4)‖∇Ĉ_B‖²`. To the order of the theorem, SGD at rate `ε` on `C_mod` follows
//! the flow on `C_SGD` with `ε + λ` (check `reg.explicit-matches-implicit`).
use super::{batch_rows, grad_self_hvp, Penalty, PenaltyValue};
use crate::reg_error::{check_coefficient, RegError, RegResult};
use imreg_objective::rng::ChaCha8Rng;
use imreg_objective::Partition;
use imreg_objective::{Batch, Objective};
use imreg_spectra::{axpy, dot};

/// `(λ/(4m)) Σ_k ‖∇Ĉ_k(θ)‖²` over the `m` batches of a fixed partition (the batch argument is ignored:
/// this is the full-epoch term). Gradient `(λ/(2m)) Σ_k Ĥ_k ĝ_k`.
pub struct SmithLambda<'a> {
    model: &'a dyn Objective,
    partition: Partition,
    lambda: f64,
}

impl<'a> SmithLambda<'a> {
    /// Errors on `λ < 0` or a partition of a different dataset.
    pub fn new(model: &'a dyn Objective, partition: Partition, lambda: f64) -> RegResult<Self> {
        check_coefficient("lambda", lambda)?;
        if let Some(reason) = partition.mismatch(model.n_examples()) {
            return Err(RegError::invalid("partition", reason));
        }
        Ok(SmithLambda {
            model,
            partition,
            lambda,
        })
    }
}

impl Penalty for SmithLambda<'_> {
    fn name(&self) -> String {
        format!(
            "Smith λ-term (λ/(4m)) Σ_k ‖∇Ĉ_k‖², m = {}, λ = {}",
            self.partition.m(),
            self.lambda
        )
    }
    fn value_grad(&self, theta: &[f64], _batch: Batch<'_>, _rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let m = self.partition.m() as f64;
        let mut value = 0.0;
        let mut grad = vec![0.0; self.model.dim()];
        for b in self.partition.batches() {
            let (_, g, hg) = grad_self_hvp(self.model, theta, b)?;
            value += dot(&g, &g);
            axpy(self.lambda / (2.0 * m), &hg, &mut grad);
        }
        Ok(PenaltyValue {
            value: value * self.lambda / (4.0 * m),
            grad,
            loss: None,
        })
    }
}

/// The per-step stochastic form `(λ/4)‖∇Ĉ_B(θ)‖²` on the current batch; gradient `(λ/2) Ĥ_B ĝ_B`.
/// Averaged over the batches of an epoch it is [`SmithLambda`].
pub struct SmithStochastic<'a> {
    model: &'a dyn Objective,
    lambda: f64,
}

impl<'a> SmithStochastic<'a> {
    /// Errors on `λ < 0`.
    pub fn new(model: &'a dyn Objective, lambda: f64) -> RegResult<Self> {
        check_coefficient("lambda", lambda)?;
        Ok(SmithStochastic { model, lambda })
    }
}

impl Penalty for SmithStochastic<'_> {
    fn name(&self) -> String {
        format!("Smith λ-term, per step (λ/4)‖∇Ĉ_B‖², λ = {}", self.lambda)
    }
    fn value_grad(&self, theta: &[f64], batch: Batch<'_>, _rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let rows = batch_rows(batch, self.model.n_examples())?;
        let (l, g, hg) = grad_self_hvp(self.model, theta, &rows)?;
        Ok(PenaltyValue {
            value: 0.25 * self.lambda * dot(&g, &g),
            grad: hg.iter().map(|v| 0.5 * self.lambda * v).collect(),
            loss: Some((l, g)),
        })
    }
}
