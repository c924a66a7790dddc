//! The registered checks of `imreg verify`, run from Python.
use crate::convert::to_py;
use crate::error::from_cli;
use imreg_check::CheckContext;
use imreg_cli::registry;
use pyo3::prelude::*;

/// Runs the built-in checks selected by `only` (exact ids or topic prefixes such as `flow`; empty: all)
/// without figures, at quick sizes unless `full`, and returns their records `{id, claim, expected,
/// measured, passed, seconds}` in registry order.
#[pyfunction]
#[pyo3(signature = (only=Vec::new(), full=false))]
pub fn verify(py: Python<'_>, only: Vec<String>, full: bool) -> PyResult<Bound<'_, PyAny>> {
    let checks = registry::select(registry::all_checks(), &only).map_err(|e| match e {
        imreg_cli::CliError::Input { reason, .. } => crate::error::bad_input("only", reason),
        e => from_cli(e),
    })?;
    let ctx = CheckContext {
        out_dir: None,
        quick: !full,
    };
    let records = py.allow_threads(|| registry::run_all(&checks, &ctx, &|_| {}));
    to_py(py, &records)
}

/// The ids of the built-in checks, in registry order.
#[pyfunction]
pub fn check_ids() -> Vec<&'static str> {
    registry::all_checks().iter().map(|c| c.id).collect()
}
