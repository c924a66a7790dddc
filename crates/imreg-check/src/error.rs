//! [`CheckError`]: why a check could not run (a failed claim is an [`crate::Outcome`], not an error).
use std::path::PathBuf;

/// Why a check could not run to an outcome. The runner reports it as a failed record naming the cause;
/// a claim that is measured and does not hold is an [`crate::Outcome`] with `passed = false` instead.
///
/// Any solver error converts with [`CheckError::solver`] (or [`OrCheckError::or_check`] on a `Result`), so
/// `?` composes inside a check without flattening the error to text:
///
/// ```
/// use imreg_check::{CheckError, OrCheckError};
/// fn parse(s: &str) -> Result<f64, CheckError> {
///     Ok(s.parse::<f64>().or_check()?)
/// }
/// assert!(matches!(parse("x"), Err(CheckError::Solver(_))));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A computation the check relies on failed; the solver's own error is the source.
    #[error("{0}")]
    Solver(Box<dyn std::error::Error + Send + Sync>),
    /// A toolkit function got input it cannot use (the field names it).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A figure or data file could not be written.
    #[error("writing {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: imreg_plot::PlotError,
    },
    /// The check could not proceed for a reason it states.
    #[error("{0}")]
    Failed(String),
}

impl CheckError {
    /// Wraps any error (a solver's `SpectraError`, `FlowError`, …) as the source of a [`CheckError::Solver`].
    pub fn solver(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        CheckError::Solver(Box::new(e))
    }

    /// A [`CheckError::Invalid`] naming `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        CheckError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<String> for CheckError {
    fn from(message: String) -> Self {
        CheckError::Failed(message)
    }
}

impl From<&str> for CheckError {
    fn from(message: &str) -> Self {
        CheckError::Failed(message.to_string())
    }
}

impl From<imreg_plot::PlotError> for CheckError {
    fn from(e: imreg_plot::PlotError) -> Self {
        CheckError::solver(e)
    }
}

/// `result.or_check()?`: turns any `Result<T, E: Error>` into `Result<T, CheckError>` (the error becomes the
/// source of [`CheckError::Solver`]), so solver calls compose with `?` inside a check.
pub trait OrCheckError<T> {
    fn or_check(self) -> Result<T, CheckError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> OrCheckError<T> for Result<T, E> {
    fn or_check(self) -> Result<T, CheckError> {
        self.map_err(CheckError::solver)
    }
}
