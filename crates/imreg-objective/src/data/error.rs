//! Typed errors of the data loaders; each converts into [`ObjectiveError::Data`] with its message.
use super::limits::MAX_FILE_BYTES;
use crate::error::ObjectiveError;
use std::io::Read;
use std::path::Path;
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
    #[error("{what}: shape {shape} has a zero-length axis (every axis needs at least one entry)")]
    EmptyAxis { what: String, shape: String },
    #[error("{what}: shape {shape} overflows (its size is not representable)")]
    Overflow { what: String, shape: String },
    #[error("{what}: {size} {unit} exceed the loader limit of {limit} {unit}")]
    TooLarge {
        what: String,
        size: u64,
        limit: u64,
        unit: &'static str,
    },
    #[error("{file}: SHA-256 mismatch: expected {expected}, found {found}")]
    Checksum {
        file: String,
        expected: String,
        found: String,
    },
    #[error("unknown dataset {name:?}; the shipped datasets are: {valid}")]
    UnknownDataset { name: String, valid: String },
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

/// Reads a whole file of at most [`MAX_FILE_BYTES`] bytes (checked before reading, and again while reading
/// in case the file grows), mapping I/O errors to [`DataError::Io`] naming the path.
pub(crate) fn read_file(path: &Path) -> DataResult<Vec<u8>> {
    let io = |e: std::io::Error| DataError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let too_large = |size: u64| DataError::TooLarge {
        what: path.display().to_string(),
        size,
        limit: MAX_FILE_BYTES,
        unit: "bytes",
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}
