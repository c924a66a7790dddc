//! Typed errors of the SGD layer.
use imreg_flow::FlowError;
use imreg_objective::ObjectiveError;
use thiserror::Error;

/// Result alias of the SGD layer.
pub type Result<T> = std::result::Result<T, SgdError>;

/// What can go wrong in a trajectory or an expectation.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SgdError {
    /// An argument is out of its domain; names the field.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The learning rate must be positive and finite.
    #[error("the learning rate {name} must be positive and finite, got {value}")]
    NonPositiveStep { name: &'static str, value: f64 },
    /// A parameter vector has the wrong length.
    #[error("{name} has length {got}, expected {expected}")]
    Length {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    /// An iterate became non-finite or exceeded the divergence threshold inside an expectation.
    #[error("an iterate diverged at step {step} of a sequence: {what}")]
    Diverged { step: usize, what: String },
    /// Exact enumeration would visit more sequences than allowed: use Monte Carlo.
    #[error("exact enumeration needs {count} sequences, above the limit {limit}; use Monte Carlo")]
    TooManySequences { count: f64, limit: f64 },
    /// The affine fast path was asked for a model whose minibatch gradients are not affine in θ.
    #[error("batch {batch}: the gradient is not affine in θ (residual {residual:e} at a probe point)")]
    NotAffine { batch: usize, residual: f64 },
    #[error("objective: {0}")]
    Objective(#[from] ObjectiveError),
    #[error("flow: {0}")]
    Flow(#[from] FlowError),
    /// A spectral solver (an observer's Lanczos run, a batch-sharpness estimate) rejected a call.
    #[error("spectra: {0}")]
    Spectra(#[from] imreg_spectra::SpectraError),
    /// A penalty of the gradient transform failed.
    #[error("penalty: {0}")]
    Penalty(String),
}

impl SgdError {
    /// Shorthand for [`SgdError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        SgdError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

pub(crate) fn check_lr(name: &'static str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(SgdError::NonPositiveStep { name, value });
    }
    Ok(())
}

/// Errors unless `v` has length `expected` and finite entries.
pub(crate) fn check_len(name: &'static str, v: &[f64], expected: usize) -> Result<()> {
    if v.len() != expected {
        return Err(SgdError::Length {
            name,
            expected,
            got: v.len(),
        });
    }
    if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(SgdError::invalid(
            name,
            format!("{name}[{i}] = {x} is not finite"),
        ));
    }
    Ok(())
}
