//! The compiled core of the `imreg` Python package (`imreg._imreg`): models on numpy data and their curvature
//! ([`model`]), the theory on them (modified flows and exact SGD expectations, [`theory`]; training runs
//! with observers, [`training`]), the scalar network's closed forms ([`scalar`]), network descriptions and
//! presets, and the registered checks (`verify`). The Python package
//! `imreg` wraps these with docstrings, result types and the PyTorch converter.
use pyo3::prelude::*;

mod checks;
mod convert;
mod error;
mod model;
mod scalar;
mod specs;
mod theory;
mod training;

/// The Rust side's large tape buffers are kept for the next call (see `imreg_ad::alloc`); Python's own
/// objects keep Python's allocator.
#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

#[pymodule]
fn _imreg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The tape's large short-lived buffers stay in the heap between evaluations (as the `imreg` binary).
    imreg_objective::reuse_large_buffers();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ImregError", m.py().get_type::<error::ImregError>())?;
    m.add("ImregRuntimeError", m.py().get_type::<error::ImregRuntimeError>())?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<scalar::PyScalarNet>()?;
    m.add_function(wrap_pyfunction!(theory::flow, m)?)?;
    m.add_function(wrap_pyfunction!(theory::modified_loss, m)?)?;
    m.add_function(wrap_pyfunction!(theory::sgd_expectation, m)?)?;
    m.add_function(wrap_pyfunction!(theory::sgd_moments, m)?)?;
    m.add_function(wrap_pyfunction!(training::run, m)?)?;
    m.add_function(wrap_pyfunction!(specs::presets, m)?)?;
    m.add_function(wrap_pyfunction!(specs::preset_spec, m)?)?;
    m.add_function(wrap_pyfunction!(specs::parse_spec, m)?)?;
    m.add_function(wrap_pyfunction!(specs::toml_to_json, m)?)?;
    m.add_function(wrap_pyfunction!(checks::verify, m)?)?;
    m.add_function(wrap_pyfunction!(checks::check_ids, m)?)?;
    Ok(())
}
