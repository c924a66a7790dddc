//! Explicit regularizers of `imreg run` (`[[regularizer]]` and `optimizer.clip_grad_norm`): the penalties of
//! `imreg_sgd::regularizers`, each with its exact gradient, added to the minibatch loss by the gradient
//! transform of the training loop (`imreg_sgd::train::GradientTransform`): on a batch `B` the step direction
//! is `d = clip(∇L_B(θ) + Σ_r ∇R_r(θ; B))` (torch order: the penalties in config order, then
//! `clip_grad_norm_`), so every optimizer of the CLI (GD, SGD, momentum, noise-injected) and its seeded
//! sampler apply unchanged, and the tracked metrics stay on the unregularized model. Penalty randomness
//! (sampled or random labels, UJ's unit vectors) comes from one ChaCha stream of the master seed
//! ([`STREAM_REGULARIZERS`]), drawn in step order, so a run stays bitwise reproducible.
use crate::config::{ExperimentConfig, RegularizerConfig};
#[cfg(doc)]
use crate::data::STREAM_REGULARIZERS;
use crate::error::{CliError, Result};
use crate::model::Model;
use imreg_flow::{Partition, Remainder};
use imreg_sgd::regularizers::fisher::{FisherPenalty, NormPower};
use imreg_sgd::regularizers::gradient_penalty::{GradientPenalty, InputGradientPenalty, RandomLabelPenalty};
use imreg_sgd::regularizers::micro_batch::{AverageJacobian, FisherTrace, MicroBatchGradNorm, UnitJacobian};
use imreg_sgd::regularizers::smith::{SmithLambda, SmithStochastic};
use imreg_sgd::regularizers::{NetworkModel, Penalty, WeightDecay};
use std::path::Path;

/// Whether `cfg` trains with the regularized update (any penalty or gradient clipping).
pub fn is_regularized(cfg: &ExperimentConfig) -> bool {
    !cfg.regularizers.is_empty() || cfg.optimizer.clip_grad_norm().is_some()
}

/// The network objective of a model, for the penalties that differentiate through the network's outputs or
/// inputs (FT, AJ, UJ, FP, GP_x, GP_r); `None` for the closed-form models.
pub fn network_model(model: &Model) -> Option<&dyn NetworkModel> {
    match model {
        Model::Mlp(m, _) => Some(m.objective()),
        Model::Network(m, _) => Some(m),
        Model::Linear(..)
        | Model::Logistic(..)
        | Model::DeepLinear(_)
        | Model::Scalar(_)
        | Model::Quadratic(_) => None,
    }
}

/// The batch sizes the optimizer of `cfg` produces on `n` examples (full batch, or the batch size and the
/// smaller last batch of an epoch without replacement).
fn batch_sizes(cfg: &ExperimentConfig, n: usize) -> Vec<usize> {
    match (cfg.optimizer.batch_size(), cfg.optimizer.replacement()) {
        (None, _) => vec![n],
        (Some(b), true) => vec![b],
        (Some(b), false) if !n.is_multiple_of(b) => vec![b, n % b],
        (Some(b), false) => vec![b],
    }
}

/// Builds the penalties of `cfg` on `model`. Every model-dependent input error (FT on a regression model, a
/// micro-batch that does not divide some batch) names its field.
pub fn penalties<'a>(
    cfg: &ExperimentConfig,
    model: &'a Model,
    file: &Path,
) -> Result<Vec<Box<dyn Penalty + 'a>>> {
    let obj = model.objective();
    let net = network_model(model);
    let n = obj.n_examples();
    let mut out: Vec<Box<dyn Penalty + 'a>> = Vec::new();
    for (i, r) in cfg.regularizers.iter().enumerate() {
        let field = |key: &str| format!("regularizer[{i}].{key}");
        let lib =
            |key: &str, e: imreg_sgd::reg_error::RegError| CliError::input(file, field(key), e.to_string());
        if let Some(m) = r.micro_batch() {
            if let Some(b) = batch_sizes(cfg, n)
                .into_iter()
                .find(|&b| m == 0 || !b.is_multiple_of(m))
            {
                return Err(CliError::input(
                    file,
                    field("micro_batch"),
                    format!("micro-batch size {m} does not divide the batch size {b} (N = {n})"),
                ));
            }
        }
        // The penalties that differentiate through the network's outputs or inputs need a network.
        let need_net = || {
            net.ok_or_else(|| {
                CliError::input(
                    file,
                    field("kind"),
                    format!(
                        "{} differentiates through the network: it needs a network model (mlp or network), got {}",
                        r.kind(),
                        obj.name()
                    ),
                )
            })
        };
        let p: Box<dyn Penalty + 'a> = match *r {
            RegularizerConfig::WeightDecay { coefficient } => {
                Box::new(WeightDecay::new(coefficient).map_err(|e| lib("coefficient", e))?)
            }
            RegularizerConfig::SmithStochastic { lambda } => {
                Box::new(SmithStochastic::new(obj, lambda).map_err(|e| lib("lambda", e))?)
            }
            RegularizerConfig::SmithLambda { lambda } => {
                let b = cfg.optimizer.batch_size().unwrap_or(n);
                let part = Partition::consecutive(n, b, Remainder::SmallerLastBatch)
                    .map_err(|e| CliError::input(file, field("kind"), e.to_string()))?;
                Box::new(SmithLambda::new(obj, part, lambda).map_err(|e| lib("lambda", e))?)
            }
            RegularizerConfig::GradientPenalty { alpha } => {
                Box::new(GradientPenalty::new(obj, alpha).map_err(|e| lib("alpha", e))?)
            }
            RegularizerConfig::GradientNorm { lambda, micro_batch } => {
                Box::new(MicroBatchGradNorm::new(obj, micro_batch, lambda).map_err(|e| lib("lambda", e))?)
            }
            RegularizerConfig::FisherTrace { lambda, micro_batch } => {
                Box::new(FisherTrace::new(need_net()?, micro_batch, lambda).map_err(|e| lib("kind", e))?)
            }
            RegularizerConfig::AverageJacobian { lambda, micro_batch } => {
                Box::new(AverageJacobian::new(need_net()?, micro_batch, lambda).map_err(|e| lib("kind", e))?)
            }
            RegularizerConfig::UnitJacobian { lambda, micro_batch } => {
                Box::new(UnitJacobian::new(need_net()?, micro_batch, lambda).map_err(|e| lib("kind", e))?)
            }
            RegularizerConfig::FisherPenalty { alpha, squared } => {
                let norm = if squared {
                    NormPower::Squared
                } else {
                    NormPower::Unsquared
                };
                Box::new(FisherPenalty::new(need_net()?, norm, alpha).map_err(|e| lib("kind", e))?)
            }
            RegularizerConfig::InputGradientPenalty { alpha } => {
                Box::new(InputGradientPenalty::new(need_net()?, alpha).map_err(|e| lib("kind", e))?)
            }
            RegularizerConfig::RandomLabelPenalty { alpha } => {
                Box::new(RandomLabelPenalty::new(need_net()?, alpha).map_err(|e| lib("kind", e))?)
            }
        };
        out.push(p);
    }
    Ok(out)
}
