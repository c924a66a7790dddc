//! imreg's typed errors as Python exceptions: bad input raises `ImregError` (a `ValueError`) whose message
//! and `field` attribute name the argument or field at fault; a computation that could not complete on valid
//! input raises `ImregRuntimeError` (a `RuntimeError`).
use imreg_cli::CliError;
use imreg_objective::ObjectiveError;
use imreg_spectra::SpectraError;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::fmt::Display;

create_exception!(
    _imreg,
    ImregError,
    PyValueError,
    "Bad input to imreg: the message and the `field` attribute name the argument, field, shape or value at fault."
);
create_exception!(
    _imreg,
    ImregRuntimeError,
    PyRuntimeError,
    "A computation that could not complete on valid input (I/O, an autodiff or eigensolver failure)."
);

/// `ImregError("{field}: {reason}")` with `.field = field`.
pub fn bad_input(field: &str, reason: impl Display) -> PyErr {
    let err = ImregError::new_err(format!("{field}: {reason}"));
    Python::with_gil(|py| {
        // Setting an attribute on a fresh exception instance cannot fail short of memory exhaustion; the
        // message names the field either way.
        let _ = err.value(py).setattr("field", field);
    });
    err
}

/// `ImregRuntimeError("{what}: {reason}")`.
pub fn failed(what: &str, reason: impl Display) -> PyErr {
    ImregRuntimeError::new_err(format!("{what}: {reason}"))
}

/// An error of the CLI layer (model building, weights files): bad input names its field (and the file when it
/// is one), everything else is a runtime error.
pub fn from_cli(e: CliError) -> PyErr {
    match e {
        CliError::Input { file, field, reason } => {
            let shown = file.display().to_string();
            if shown.starts_with('<') {
                bad_input(&field, reason)
            } else {
                bad_input(&field, format!("{shown}: {reason}"))
            }
        }
        CliError::CheckId { id, reason } => bad_input("only", format!("check id {id:?}: {reason}")),
        e => failed("imreg", e),
    }
}

/// An objective error of a call whose inputs are named `field` (`theta`, `v`, `batch`, …): wrong lengths,
/// indices, shapes and non-finite values are bad input; autodiff failures are runtime errors.
pub fn from_objective(field: &str, e: ObjectiveError) -> PyErr {
    match e {
        ObjectiveError::IndexOutOfRange { .. } | ObjectiveError::EmptyBatch => bad_input("batch", e),
        ObjectiveError::Ad(_) | ObjectiveError::Data(_) => failed(field, e),
        ObjectiveError::Length { name, .. } => bad_input(name, e),
        e => bad_input(field, e),
    }
}

/// A spectra error: non-convergence of the dense eigensolver is a runtime error, the rest is bad input
/// (options, dimensions, batch sizes) or the objective's error.
pub fn from_spectra(field: &str, e: SpectraError) -> PyErr {
    match e {
        SpectraError::Objective(o) => from_objective(field, o),
        SpectraError::DenseEigen { .. } => failed(field, e),
        SpectraError::Invalid { field: f, reason } => bad_input(&f, reason),
        SpectraError::BatchTooLarge { .. } => bad_input("batch_size", e),
        e => bad_input(field, e),
    }
}
