//! Typed errors of the depth-2 linear network and step-size-bound solvers: each names the field and value at
//! fault. Divergence is **not** an error: it is a reported outcome ([`crate::gd_limit::GdOutcome::Diverged`],
//! [`crate::bounds::QuadOutcome::Diverged`]).
use thiserror::Error;

pub type Result<T> = std::result::Result<T, EosError>;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum EosError {
    /// A step size η ≤ 0 or non-finite.
    #[error("step size {field} = {value} must be finite and > 0")]
    NonPositiveStep { field: &'static str, value: f64 },
    /// A non-finite entry in an input vector or scalar.
    #[error("non-finite value {value} in {field} at position {index}")]
    NonFinite {
        field: &'static str,
        index: usize,
        value: f64,
    },
    /// Two vectors that must have the same length do not.
    #[error("{field} has length {got}, expected {expected}")]
    Length {
        field: &'static str,
        expected: usize,
        got: usize,
    },
    /// An empty vector where width k ≥ 1 is required.
    #[error("{field} is empty: the width k must be ≥ 1")]
    Empty { field: &'static str },
    /// Any other out-of-range parameter.
    #[error("invalid {field} = {value}: {reason}")]
    Invalid {
        field: &'static str,
        value: f64,
        reason: &'static str,
    },
    /// The initialization lies on an invariant line that leads to the saddle a = b = 0, where a
    /// limit that is a global minimum does not exist (a + b = 0 with Φ ≥ 0, or a − b = 0 with Φ ≤ 0).
    #[error(
        "initialization on the invariant line {line} with Φ = {phi}: the flow goes to the saddle a = b = 0"
    )]
    SaddleLine { line: &'static str, phi: f64 },
}

/// `Ok(())` iff `v` is finite and > 0.
pub(crate) fn check_step(field: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(EosError::NonPositiveStep { field, value: v })
    }
}

/// `Ok(())` iff every entry of `xs` is finite.
pub(crate) fn check_finite(field: &'static str, xs: &[f64]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(EosError::NonFinite {
            field,
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}
