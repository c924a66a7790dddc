//! Novack, Kaur, Marwah, Garg & Lipton (2023): penalties on the micro-batches `M_1 … M_k` of a large batch
//! `B` (`k = |B|/|M|`, the micro-batch size must divide the batch), each the **squared** L2 norm of a
//! micro-batch-mean gradient, averaged over the micro-batches and multiplied by `λ`:
//! `J = (1/k) Σ_j [L_{M_j} + λ R(M_j)] = L_B + λ mean_j R(M_j)` (THEORY §3.2, as in the official code).
//!
//! * GN: `R = ‖∇_θ L_M‖²` (true labels), on any model.
//! * FT: `R = ‖∇_θ (1/|M|) Σ_i CE(f(x_i), ŷ_i)‖²` with `ŷ_i ~ Categorical(softmax f(x_i))` drawn fresh per
//!   example and step; `E_ŷ R = Tr F̄_M / |M|` (check `reg.fisher-trace-expectation`). Classifiers only.
//! * AJ: `R = ‖∇_θ (1/|M|) Σ_i Σ_c f_c(x_i)‖²` (mean over examples, then **sum** over the logits).
//! * UJ: `R = ‖∇_θ (1/|M|) Σ_i uᵀ f(x_i)‖²`, `u = z/‖z‖`, `z ~ N(0, I_C)` drawn per micro-batch.
use super::fisher::sample_labels;
use super::net::{Head, Net};
use super::{batch_rows, micro_batch_count, Model, Penalty, PenaltyValue};
use crate::reg_error::{check_coefficient, RegError, RegResult};
use imreg_objective::rng::ChaCha8Rng;
use imreg_objective::Batch;
use ndarray::Array2;

fn check(micro: usize, lambda: f64) -> RegResult<()> {
    check_coefficient("lambda", lambda)?;
    if micro == 0 {
        return Err(RegError::MicroBatch { batch: 0, micro });
    }
    Ok(())
}

/// GN: `λ · mean_j ‖∇L_{M_j}‖²`, gradient `2λ mean_j H_{M_j} ∇L_{M_j}`.
pub struct MicroBatchGradNorm<'a> {
    model: Model<'a>,
    micro: usize,
    lambda: f64,
}

impl<'a> MicroBatchGradNorm<'a> {
    /// Errors on `λ < 0` or `|M| = 0` (divisibility is checked per batch).
    pub fn new(model: Model<'a>, micro: usize, lambda: f64) -> RegResult<Self> {
        check(micro, lambda)?;
        Ok(MicroBatchGradNorm { model, micro, lambda })
    }
}

impl Penalty for MicroBatchGradNorm<'_> {
    fn name(&self) -> String {
        format!(
            "GN λ·mean_j ‖∇L_M_j‖² (squared, true labels), |M| = {}, λ = {}",
            self.micro, self.lambda
        )
    }
    fn value_grad(&self, theta: &[f64], batch: Batch<'_>, _rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let rows = batch_rows(batch, self.model.n_examples())?;
        let k = micro_batch_count(rows.len(), self.micro)?;
        let p = self.model.dim();
        let (mut value, mut loss) = (0.0, 0.0);
        let mut grad = vec![0.0; p];
        let mut lgrad = vec![0.0; p];
        let inv = 1.0 / k as f64;
        for j in 0..k {
            let (l, g, hg) = self
                .model
                .grad_self_hvp(theta, &rows[j * self.micro..(j + 1) * self.micro])?;
            value += super::dot(&g, &g);
            loss += l;
            super::axpy(&mut grad, 2.0 * self.lambda * inv, &hg);
            super::axpy(&mut lgrad, inv, &g);
        }
        Ok(PenaltyValue {
            value: self.lambda * value * inv,
            grad,
            loss: Some((loss * inv, lgrad)),
        })
    }
}

/// Which micro-batch functional a [`NetMicroPenalty`] penalizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    FisherTrace,
    AverageJacobian,
    UnitJacobian,
}

/// Shared driver of FT, AJ and UJ on a [`Net`]: per micro-batch one loss pass (the `L_B` part and, for FT,
/// the probabilities to sample from), one pass of the penalized functional `φ_j` and one R-pass along
/// `∇φ_j`.
struct NetMicroPenalty<'a> {
    net: &'a Net,
    micro: usize,
    lambda: f64,
    kind: Kind,
}

impl NetMicroPenalty<'_> {
    fn eval(&self, theta: &[f64], batch: Batch<'_>, rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let rows = batch_rows(batch, self.net.n_examples_())?;
        let k = micro_batch_count(rows.len(), self.micro)?;
        let p = self.net.dim_();
        let c = self.net.outputs_();
        let inv = 1.0 / k as f64;
        let (mut value, mut loss) = (0.0, 0.0);
        let mut grad = vec![0.0; p];
        let mut lgrad = vec![0.0; p];
        for j in 0..k {
            let mrows = &rows[j * self.micro..(j + 1) * self.micro];
            let lp = self.net.loss_pass(theta, mrows)?;
            loss += lp.value;
            super::axpy(&mut lgrad, inv, &lp.grad);
            let x = self.net.batch_x(mrows);
            let pass = match self.kind {
                Kind::FisherTrace => {
                    let logits = self.net.forward(theta, mrows)?;
                    let labels = sample_labels(&logits, rng);
                    self.net.pass(theta, x, Head::Labels(&labels))?
                }
                Kind::AverageJacobian => {
                    let u = Array2::from_elem((mrows.len(), c), 1.0);
                    self.net.pass(theta, x, Head::OutputDot(u.view()))?
                }
                Kind::UnitJacobian => {
                    let z = imreg_objective::rng::normal_vec(rng, c);
                    let nz = super::dot(&z, &z).sqrt().max(f64::MIN_POSITIVE);
                    let u = Array2::from_shape_fn((mrows.len(), c), |(_, cc)| z[cc] / nz);
                    self.net.pass(theta, x, Head::OutputDot(u.view()))?
                }
            };
            let hg = self.net.rop(theta, &pass, Some(&pass.grad), None)?;
            value += super::dot(&pass.grad, &pass.grad);
            super::axpy(&mut grad, 2.0 * self.lambda * inv, &hg);
        }
        Ok(PenaltyValue {
            value: self.lambda * value * inv,
            grad,
            loss: Some((loss * inv, lgrad)),
        })
    }
}

macro_rules! net_penalty {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $label:expr, $needs_ce:expr) => {
        $(#[$doc])*
        pub struct $name<'a>(NetMicroPenalty<'a>);

        impl<'a> $name<'a> {
            /// Errors on `λ < 0`, `|M| = 0`, or (FT) a model without softmax outputs.
            pub fn new(net: &'a Net, micro: usize, lambda: f64) -> RegResult<Self> {
                check(micro, lambda)?;
                if $needs_ce && !net.is_classifier() {
                    return Err(RegError::Unsupported {
                        penalty: $label,
                        needs: "a softmax cross-entropy classifier (labels are sampled from the model)",
                        model: imreg_objective::Objective::name(net),
                    });
                }
                Ok($name(NetMicroPenalty { net, micro, lambda, kind: $kind }))
            }
        }

        impl Penalty for $name<'_> {
            fn name(&self) -> String {
                format!("{} (squared, micro-batch mean), |M| = {}, λ = {}", $label, self.0.micro, self.0.lambda)
            }
            fn value_grad(&self, theta: &[f64], batch: Batch<'_>, rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
                self.0.eval(theta, batch, rng)
            }
        }
    };
}

net_penalty!(
    /// FT: `λ · mean_j ‖∇L_{M_j}(ŷ)‖²` with labels sampled from the model's softmax (seeded by the rng).
    FisherTrace,
    Kind::FisherTrace,
    "FT λ·mean_j ‖∇(1/|M|)Σ CE(f, ŷ)‖², ŷ ~ softmax(f)",
    true
);
net_penalty!(
    /// AJ: `λ · mean_j ‖∇ (1/|M|) Σ_i Σ_c f_c(x_i)‖²` (logit sum: mean over examples, sum over classes).
    AverageJacobian,
    Kind::AverageJacobian,
    "AJ λ·mean_j ‖∇(1/|M|)Σ_i Σ_c f_c‖²",
    false
);
net_penalty!(
    /// UJ: `λ · mean_j ‖∇ (1/|M|) Σ_i uᵀ f(x_i)‖²` with a fresh unit `u` per micro-batch.
    UnitJacobian,
    Kind::UnitJacobian,
    "UJ λ·mean_j ‖∇(1/|M|)Σ_i uᵀf‖², u = z/‖z‖ per micro-batch",
    false
);

impl Net {
    fn n_examples_(&self) -> usize {
        imreg_objective::Objective::n_examples(self)
    }
    fn dim_(&self) -> usize {
        imreg_objective::Objective::dim(self)
    }
    fn outputs_(&self) -> usize {
        imreg_objective::Supervised::n_outputs(self)
    }
}
