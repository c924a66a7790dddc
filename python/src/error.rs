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

/// The keyword argument of the Python calls that a solver flag of `imreg analyze` sets (`lanczos-tol` is
/// `eigenvalues(tol=…)`); the other flags keep their name with `_` (`mc-rel-se` is `mc_rel_se`).
fn keyword(flag: &str) -> String {
    match flag {
        "lanczos-tol" => "tol".into(),
        "lanczos-max-iter" => "max_iter".into(),
        "slq-probes" | "diagonal-probes" => "probes".into(),
        "slq-steps" => "steps".into(),
        "density-points" => "points".into(),
        "density-sigma" => "sigma".into(),
        "trace-matvecs" => "matvecs".into(),
        f => f.replace('-', "_"),
    }
}

/// An error of the CLI layer (model building, weights files, solver options): bad input names its field (a
/// flag as its keyword argument, and the file when it is one), everything else is a runtime error.
pub fn from_cli(e: CliError) -> PyErr {
    match e {
        CliError::Input { file, field, reason } => {
            let field = match field.strip_prefix("--") {
                Some(flag) => keyword(flag),
                None => field,
            };
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

/// The Python argument of a library field: the learning rate is `lr` (the library's `eps`, `eta`, `h`),
/// the start point `theta0` (an integrator's `y0`).
fn python_name(field: &str) -> &str {
    match field {
        "eps" | "eta" | "h" => "lr",
        "y0" => "theta0",
        f => f,
    }
}

/// A flow error: bad options, lengths and steps are bad input; a blow-up, a step-size collapse or the step
/// limit are runtime errors naming the time and step.
pub fn from_flow(field: &str, e: imreg_flow::FlowError) -> PyErr {
    use imreg_flow::FlowError;
    match e {
        FlowError::Invalid { field: f, reason } => bad_input(python_name(f), reason),
        FlowError::NonPositiveStep { .. } => bad_input("lr", e),
        FlowError::Length { name, .. } => bad_input(python_name(name), e),
        FlowError::Objective(o) => from_objective(field, o),
        e => failed(field, e),
    }
}

/// An error of the SGD layer (training, exact expectations).
pub fn from_sgd(field: &str, e: imreg_sgd::SgdError) -> PyErr {
    use imreg_sgd::SgdError;
    match e {
        SgdError::Invalid { field: f, reason } => bad_input(python_name(f), reason),
        SgdError::NonPositiveStep { .. } => bad_input("lr", e),
        SgdError::Length { name, .. } => bad_input(name, e),
        SgdError::TooManySequences { .. } => bad_input("epochs", e),
        SgdError::Objective(o) => from_objective(field, o),
        SgdError::Flow(f) => from_flow(field, f),
        SgdError::Spectra(s) => from_spectra(field, s),
        e => failed(field, e),
    }
}

/// An error of the exact-moment computations of SGD with and without replacement.
pub fn from_reg(field: &str, e: imreg_sgd::reg_error::RegError) -> PyErr {
    use imreg_sgd::reg_error::RegError;
    match e {
        RegError::Invalid { field: f, reason } => bad_input(python_name(f), reason),
        RegError::NegativeCoefficient { name, .. } => bad_input(name, e),
        RegError::TooLarge { .. } => bad_input("a", e),
        RegError::Objective(o) => from_objective(field, o),
        RegError::Sgd(s) => from_sgd(field, s),
        e => failed(field, e),
    }
}

/// An error of the scalar-network theory: every variant names its field (or the saddle line).
pub fn from_eos(e: imreg_eos::EosError) -> PyErr {
    use imreg_eos::EosError;
    match e {
        EosError::NonPositiveStep { field, .. }
        | EosError::NonFinite { field, .. }
        | EosError::Length { field, .. }
        | EosError::Empty { field }
        | EosError::Invalid { field, .. } => bad_input(python_name(field), e),
        EosError::SaddleLine { .. } => bad_input("a", e),
    }
}
