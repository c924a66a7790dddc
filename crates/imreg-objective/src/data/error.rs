//! Typed errors of the data loaders; each converts into [`ObjectiveError::Data`] with its message.
use crate::error::ObjectiveError;
use thiserror::Error;

pub type DataResult<T> = std::result::Result<T, DataError>;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum DataError {
    #[error("cannot read or write {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{what}: bad magic number {got:#010x}, expected {expected:#010x}")]
    BadMagic { what: String, expected: u32, got: u32 },
    #[error("{what} is truncated: needs {expected} bytes, has {got}")]
    Truncated {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("{what} is ragged: {len} bytes is not a whole number of {record}-byte records")]
    Ragged { what: String, len: usize, record: usize },
    #[error("{what}: malformed header: {reason}")]
    Header { what: String, reason: String },
    #[error("{what}: unsupported dtype {dtype}")]
    Dtype { what: String, dtype: String },
    #[error("{what}: shape mismatch: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{what}: value {value} at position {index} is out of range ({reason})")]
    Value {
        what: String,
        index: usize,
        value: String,
        reason: String,
    },
    #[error("tensor {name} is missing from the weights file")]
    MissingTensor { name: String },
    #[error("{0}")]
    Other(String),
}

impl From<DataError> for ObjectiveError {
    fn from(e: DataError) -> Self {
        ObjectiveError::Data(e.to_string())
    }
}

impl From<ObjectiveError> for DataError {
    fn from(e: ObjectiveError) -> Self {
        DataError::Other(e.to_string())
    }
}

/// Reads a whole file, mapping I/O errors to [`DataError::Io`] naming the path.
pub(crate) fn read_file(path: &std::path::Path) -> DataResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}
