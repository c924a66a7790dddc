//! The compiled core of the `imreg` Python package (`imreg._imreg`): models on numpy data and their curvature
//! ([`model`]), network descriptions and presets, and the registered checks (`verify`). The Python package
//! `imreg` wraps these with docstrings, result types and the PyTorch converter.
use pyo3::prelude::*;

mod checks;
mod convert;
mod error;
mod model;
mod specs;

#[pymodule]
fn _imreg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The tape's large short-lived buffers stay in the heap between evaluations (as the `imreg` binary).
    imreg_objective::reuse_large_buffers();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ImregError", m.py().get_type::<error::ImregError>())?;
    m.add("ImregRuntimeError", m.py().get_type::<error::ImregRuntimeError>())?;
    m.add_class::<model::PyModel>()?;
    m.add_function(wrap_pyfunction!(specs::presets, m)?)?;
    m.add_function(wrap_pyfunction!(specs::preset_spec, m)?)?;
    m.add_function(wrap_pyfunction!(specs::parse_spec, m)?)?;
    m.add_function(wrap_pyfunction!(specs::toml_to_json, m)?)?;
    m.add_function(wrap_pyfunction!(checks::verify, m)?)?;
    m.add_function(wrap_pyfunction!(checks::check_ids, m)?)?;
    Ok(())
}
