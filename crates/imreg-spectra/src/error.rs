//! Typed errors of the spectra layer: each names the field, shape or value at fault.
use imreg_objective::ObjectiveError;
use thiserror::Error;

/// `Result` with a [`SpectraError`].
pub type Result<T> = std::result::Result<T, SpectraError>;

/// What can go wrong in `imreg-spectra`. Non-convergence of an iterative solver is **not** an error: it is
/// reported in the solver's report (`converged: false`). Errors are bad inputs and failures of the
/// underlying objective.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpectraError {
    /// A vector or operator has the wrong dimension.
    #[error("{what} has dimension {got}, expected {expected}")]
    Dimension {
        what: String,
        expected: usize,
        got: usize,
    },
    /// More eigenpairs (or probes, or Krylov vectors) requested than the dimension allows.
    #[error("{what} = {k} exceeds the dimension p = {p}")]
    TooMany { what: String, k: usize, p: usize },
    /// A probe, start or gradient vector is zero where a direction is needed.
    #[error("{what} is the zero vector")]
    ZeroVector { what: String },
    /// A NaN or infinity in an input or an intermediate result.
    #[error("non-finite value {value} in {what} at position {index}")]
    NonFinite { what: String, index: usize, value: f64 },
    /// A batch size larger than the number of examples (batches are drawn without replacement).
    #[error("batch size b = {b} exceeds the number of examples N = {n}")]
    BatchTooLarge { b: usize, n: usize },
    /// Any other invalid option or argument.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The dense symmetric eigensolver did not converge within its iteration cap.
    #[error("dense SymmetricEigen did not converge within {max_iter} iterations (n = {n})")]
    DenseEigen { n: usize, max_iter: usize },
    /// An error of the underlying objective (bad θ, bad batch, unsupported derivative, ...).
    #[error("objective: {0}")]
    Objective(#[from] ObjectiveError),
}

impl SpectraError {
    /// Shorthand for [`SpectraError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpectraError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Errors unless `got == expected`.
pub fn check_dim(what: &str, expected: usize, got: usize) -> Result<()> {
    if got != expected {
        return Err(SpectraError::Dimension {
            what: what.to_string(),
            expected,
            got,
        });
    }
    Ok(())
}

/// Errors on the first NaN or infinity in `v`.
pub fn check_finite(what: &str, v: &[f64]) -> Result<()> {
    if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(SpectraError::NonFinite {
            what: what.to_string(),
            index,
            value,
        });
    }
    Ok(())
}

/// Errors if `v` has the wrong length, holds a non-finite value, or is zero.
pub fn check_direction(what: &str, v: &[f64], p: usize) -> Result<()> {
    check_dim(what, p, v.len())?;
    check_finite(what, v)?;
    if v.iter().all(|&x| x == 0.0) {
        return Err(SpectraError::ZeroVector {
            what: what.to_string(),
        });
    }
    Ok(())
}
