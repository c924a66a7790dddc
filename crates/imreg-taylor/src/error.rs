//! Typed errors of the small-learning-rate expansions.
use thiserror::Error;

/// Everything that can go wrong in `imreg-taylor`. Each variant names the offending field and value.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TaylorError {
    /// A vector or matrix argument has the wrong length.
    #[error("`{name}` has length {got}, expected {expected}")]
    Length {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    /// A scalar argument is out of its domain (non-finite, non-positive, …).
    #[error("invalid `{name}` = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: f64,
        reason: &'static str,
    },
    /// The batch size does not divide the number of training points.
    #[error("batch size B = {b} does not divide the number of training points N = {n}")]
    BatchNotDivisor { n: usize, b: usize },
    /// The number of steps is not a whole number of epochs.
    #[error("T = {t} is not a multiple of N/B = {n}/{b} = {per_epoch}: the formula needs whole epochs")]
    NotWholeEpochs {
        t: usize,
        n: usize,
        b: usize,
        per_epoch: usize,
    },
    /// Exact enumeration was asked of a distribution without finite support.
    #[error("exact enumeration needs a finite distribution, got {what}")]
    NotFinite { what: String },
    /// The enumeration would visit too many (training set, batch order) runs.
    #[error("exact enumeration too large: {count} runs of {steps} steps (limit {limit} runs)")]
    TooLarge { count: u128, steps: usize, limit: u128 },
    /// Probabilities of a finite distribution are negative, non-finite or do not sum to one.
    #[error("invalid probabilities: {reason}")]
    Probabilities { reason: String },
    /// A matrix that must be positive definite is not.
    #[error("`{name}` is not positive definite: eigenvalue {eigenvalue}")]
    NotPositiveDefinite { name: &'static str, eigenvalue: f64 },
    /// An error of the wrapped `imreg_objective::Objective`.
    #[error("objective: {message}")]
    Objective { message: String },
    /// An iteration blew up (NaN or infinity) at the given step.
    #[error("diverged at step {step}: {what} = {value}")]
    Diverged {
        step: usize,
        what: &'static str,
        value: f64,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TaylorError>;

/// Errors unless `v.len() == expected`.
pub(crate) fn check_len(name: &'static str, got: usize, expected: usize) -> Result<()> {
    if got != expected {
        return Err(TaylorError::Length { name, expected, got });
    }
    Ok(())
}

/// Errors unless `value` is finite and strictly positive.
pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(TaylorError::InvalidParam {
            name,
            value,
            reason: "must be finite and > 0",
        });
    }
    Ok(())
}

/// Errors unless `value` is finite.
pub(crate) fn check_finite(name: &'static str, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(TaylorError::InvalidParam {
            name,
            value,
            reason: "must be finite",
        });
    }
    Ok(())
}
