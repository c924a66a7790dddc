//! Typed errors of the objective layer: each names the field, shape or value at fault.
use thiserror::Error;

pub type Result<T> = std::result::Result<T, ObjectiveError>;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ObjectiveError {
    #[error("{name} has length {got}, expected {expected}")]
    Length {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("example index {index} is out of range for a dataset of N = {n} examples")]
    IndexOutOfRange { index: usize, n: usize },
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("non-finite value {value} in {what} at position {index}")]
    NonFinite { what: String, index: usize, value: f64 },
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error("label {label} at example {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        index: usize,
        label: i64,
        classes: usize,
    },
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{what} is not supported by {model}")]
    Unsupported { what: String, model: String },
    #[error("data error: {0}")]
    Data(String),
    #[error("autodiff: {0}")]
    Ad(String),
}

impl ObjectiveError {
    /// Shorthand for [`ObjectiveError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ObjectiveError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
