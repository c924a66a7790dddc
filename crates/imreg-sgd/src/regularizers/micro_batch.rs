//! Novack, Kaur, Marwah, Garg & Lipton (2023): penalties on the micro-batches `M_1 … M_k` of a large batch
//! `B` (`k = |B|/|M|`, the micro-batch size must divide the batch), each the **squared** L2 norm of a
//! micro-batch-mean gradient, averaged over the micro-batches and multiplied by `λ`:
//! `J = (1/k) Σ_j [L_{M_j} + λ R(M_j)] = L_B + λ mean_j R(M_j)` (`docs/theory/regularizers.md` §Micro-batch
//! penalties, as in the official code).
//!
//! * GN: `R = ‖∇_θ L_M‖²` (true labels), on any model.
//! * FT: `R = ‖∇_θ (1/|M|) Σ_i CE(f(x_i), ŷ_i)‖²` with `ŷ_i ~ Categorical(softmax f(x_i))` drawn fresh per
//!   example and step; `E_ŷ R = Tr F̄_M / |M|` (check `reg.fisher-trace-expectation`). Classifiers only.
//! * AJ: `R = ‖∇_θ (1/|M|) Σ_i Σ_c f_c(x_i)‖²` (mean over examples, then **sum** over the logits).
//! * UJ: `R = ‖∇_θ (1/|M|) Σ_i uᵀ f(x_i)‖²`, `u = z/‖z‖`, `z ~ N(0, I_C)` drawn per micro-batch.
use super::fisher::{sample_labels, softmax_classifier};
use super::{batch_rows, grad_self_hvp, loss_grad, micro_batch_count, NetworkModel, Penalty, PenaltyValue};
use crate::reg_error::{check_coefficient, RegError, RegResult};
use imreg_objective::models::network::OutputFunctional;
use imreg_objective::rng::ChaCha8Rng;
use imreg_objective::{Batch, Objective, Targets};
use imreg_spectra::{axpy, dot};
use ndarray::Array2;
use rayon::prelude::*;

fn check(micro: usize, lambda: f64) -> RegResult<()> {
    check_coefficient("lambda", lambda)?;
    if micro == 0 {
        return Err(RegError::MicroBatch { batch: 0, micro });
    }
    Ok(())
}

/// One micro-batch's `(L_M, ∇L_M, ‖∇φ_M‖², ∇²φ_M ∇φ_M)`.
type MicroTerms = (f64, Vec<f64>, f64, Vec<f64>);

/// `L_B = mean_j L_{M_j}` with its gradient, and `λ mean_j ‖∇φ_j‖²` with its gradient `2λ mean_j ∇²φ_j ∇φ_j`,
/// from the micro-batch terms `term(j, rows of M_j)`, evaluated in parallel and added in micro-batch order
/// (bitwise identical at any thread count).
fn micro_batch_mean<F>(
    rows: &[usize],
    micro: usize,
    lambda: f64,
    dim: usize,
    term: F,
) -> RegResult<PenaltyValue>
where
    F: Fn(usize, &[usize]) -> RegResult<MicroTerms> + Sync,
{
    let k = micro_batch_count(rows.len(), micro)?;
    let terms: Vec<MicroTerms> = (0..k)
        .into_par_iter()
        .map(|j| term(j, &rows[j * micro..(j + 1) * micro]))
        .collect::<RegResult<_>>()?;
    let inv = 1.0 / k as f64;
    let (mut value, mut loss) = (0.0, 0.0);
    let mut grad = vec![0.0; dim];
    let mut lgrad = vec![0.0; dim];
    for (l, g, n2, hg) in terms {
        value += n2;
        loss += l;
        axpy(2.0 * lambda * inv, &hg, &mut grad);
        axpy(inv, &g, &mut lgrad);
    }
    Ok(PenaltyValue {
        value: lambda * value * inv,
        grad,
        loss: Some((loss * inv, lgrad)),
    })
}

/// GN: `λ · mean_j ‖∇L_{M_j}‖²`, gradient `2λ mean_j H_{M_j} ∇L_{M_j}`; any model.
pub struct MicroBatchGradNorm<'a> {
    model: &'a dyn Objective,
    micro: usize,
    lambda: f64,
}

impl<'a> MicroBatchGradNorm<'a> {
    /// Errors on `λ < 0` or `|M| = 0` (divisibility is checked per batch).
    pub fn new(model: &'a dyn Objective, micro: usize, lambda: f64) -> RegResult<Self> {
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
        micro_batch_mean(&rows, self.micro, self.lambda, self.model.dim(), |_, m| {
            let (l, g, hg) = grad_self_hvp(self.model, theta, m)?;
            let n2 = dot(&g, &g);
            Ok((l, g, n2, hg))
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

/// The functional `φ_j` of one micro-batch, its randomness drawn.
enum Drawn {
    Labels(Vec<usize>),
    Dot(Array2<f64>),
}

/// Shared driver of FT, AJ and UJ on a [`NetworkModel`]: the randomness of every micro-batch is drawn first,
/// in micro-batch order (FT: labels from the softmax of the micro-batch's outputs; UJ: one unit vector per
/// micro-batch); then per micro-batch, in parallel, the loss gradient (the `L_B` part) and
/// `(φ_j, ∇φ_j, ∇²φ_j ∇φ_j)`.
struct NetMicroPenalty<'a> {
    net: &'a dyn NetworkModel,
    micro: usize,
    lambda: f64,
    kind: Kind,
}

impl NetMicroPenalty<'_> {
    fn eval(&self, theta: &[f64], batch: Batch<'_>, rng: &mut ChaCha8Rng) -> RegResult<PenaltyValue> {
        let rows = batch_rows(batch, self.net.n_examples())?;
        let k = micro_batch_count(rows.len(), self.micro)?;
        let c = self.net.n_outputs();
        let micro_rows = |j: usize| &rows[j * self.micro..(j + 1) * self.micro];
        let drawn: Vec<Drawn> = match self.kind {
            Kind::FisherTrace => {
                let logits: Vec<Array2<f64>> = (0..k)
                    .into_par_iter()
                    .map(|j| self.net.outputs(theta, Batch::Indices(micro_rows(j))))
                    .collect::<imreg_objective::Result<_>>()?;
                logits
                    .iter()
                    .map(|l| Drawn::Labels(sample_labels(l, rng)))
                    .collect()
            }
            Kind::AverageJacobian => (0..k)
                .map(|_| Drawn::Dot(Array2::from_elem((self.micro, c), 1.0)))
                .collect(),
            Kind::UnitJacobian => (0..k)
                .map(|_| {
                    let z = imreg_objective::rng::normal_vec(rng, c);
                    let nz = dot(&z, &z).sqrt().max(f64::MIN_POSITIVE);
                    Drawn::Dot(Array2::from_shape_fn((self.micro, c), |(_, cc)| z[cc] / nz))
                })
                .collect(),
        };
        micro_batch_mean(&rows, self.micro, self.lambda, self.net.dim(), |j, m| {
            let (l, lg) = loss_grad(self.net, theta, m)?;
            let f = match &drawn[j] {
                Drawn::Labels(labels) => OutputFunctional::Loss(Targets::Labels(labels)),
                Drawn::Dot(u) => OutputFunctional::OutputDot(u.view()),
            };
            let (_, g, hg) = self.net.functional_self_hvp(theta, Batch::Indices(m), f)?;
            Ok((l, lg, dot(&g, &g), hg))
        })
    }
}

macro_rules! net_penalty {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $label:expr, $needs_ce:expr) => {
        $(#[$doc])*
        pub struct $name<'a>(NetMicroPenalty<'a>);

        impl<'a> $name<'a> {
            /// Errors on `λ < 0`, `|M| = 0`, or (FT) a model without softmax outputs.
            pub fn new(net: &'a dyn NetworkModel, micro: usize, lambda: f64) -> RegResult<Self> {
                check(micro, lambda)?;
                if $needs_ce {
                    softmax_classifier(net, $label, "a softmax cross-entropy classifier (labels are sampled from the model)")?;
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
