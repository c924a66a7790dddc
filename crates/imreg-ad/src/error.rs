//! Typed errors of the autodiff engine.
use thiserror::Error;

pub type Result<T> = std::result::Result<T, AdError>;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum AdError {
    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{what} has length {got}, expected {expected}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("label {label} at row {row} is out of range for {classes} classes")]
    Label {
        row: usize,
        label: usize,
        classes: usize,
    },
    #[error("the output of a program must be a 1 × 1 scalar, got {rows} × {cols}")]
    NotScalar { rows: usize, cols: usize },
    #[error("non-finite value {value} in {what} at position {index}")]
    NonFinite {
        what: &'static str,
        index: usize,
        value: f64,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}
