//! Typed errors of the implicit-regularization modules (SGD without replacement, support learning, the
//! explicit regularizers). Each names the field, shape or value at fault.
use crate::error::SgdError;
use imreg_objective::ObjectiveError;
use thiserror::Error;

/// Result alias of the regularization modules.
pub type RegResult<T> = std::result::Result<T, RegError>;

/// What can go wrong in a penalty, a regularized step or a support run.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RegError {
    /// An argument is out of its domain; names the field.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A penalty coefficient (λ, weight decay, …) must be non-negative and finite.
    #[error("the coefficient {name} must be ≥ 0 and finite, got {value}")]
    NegativeCoefficient { name: &'static str, value: f64 },
    /// The micro-batch size must divide the batch size.
    #[error("micro-batch size {micro} does not divide the batch size {batch}")]
    MicroBatch { batch: usize, micro: usize },
    /// The penalty needs a model output the model does not have (e.g. FT on a regression model).
    #[error("penalty {penalty} needs {needs}, but the model is {model}")]
    Unsupported {
        penalty: &'static str,
        needs: &'static str,
        model: String,
    },
    /// A problem too large for exact enumeration.
    #[error("exact computation over {what} needs {count} states, above the limit {limit}")]
    TooLarge {
        what: &'static str,
        count: f64,
        limit: f64,
    },
    /// An iterate became non-finite or blew up.
    #[error("diverged at step {step}: {what}")]
    Diverged { step: usize, what: String },
    #[error("objective: {0}")]
    Objective(#[from] ObjectiveError),
    #[error("sgd: {0}")]
    Sgd(#[from] SgdError),
    #[error("spectra: {0}")]
    Spectra(String),
    #[error("flow: {0}")]
    Flow(String),
}

impl RegError {
    /// Shorthand for [`RegError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        RegError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<imreg_spectra::SpectraError> for RegError {
    fn from(e: imreg_spectra::SpectraError) -> Self {
        RegError::Spectra(e.to_string())
    }
}

impl From<imreg_flow::FlowError> for RegError {
    fn from(e: imreg_flow::FlowError) -> Self {
        RegError::Flow(e.to_string())
    }
}

/// Errors unless `value ≥ 0` and finite.
pub fn check_coefficient(name: &'static str, value: f64) -> RegResult<()> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(RegError::NegativeCoefficient { name, value });
    }
    Ok(())
}

/// Errors unless `value > 0` and finite.
pub fn check_positive(name: &'static str, value: f64) -> RegResult<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(RegError::invalid(
            name,
            format!("must be > 0 and finite, got {value}"),
        ));
    }
    Ok(())
}
