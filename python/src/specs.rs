//! Network descriptions: the presets and `NetworkSpec` parsing, as JSON for the Python layer.
use crate::error::{bad_input, failed};
use imreg_objective::models::{preset, NetworkSpec, SpecNetwork, PRESETS};
use pyo3::prelude::*;

/// Every preset: `(name, description, default input shape [C, H, W], default classes)`.
#[pyfunction]
pub fn presets() -> Vec<(&'static str, &'static str, Vec<usize>, usize)> {
    PRESETS
        .iter()
        .map(|p| (p.name, p.description, p.input.to_vec(), p.classes))
        .collect()
}

/// The `NetworkSpec` of preset `name` for inputs of shape `input` and `classes` outputs, as JSON.
#[pyfunction]
pub fn preset_spec(name: &str, input: Vec<usize>, classes: usize) -> PyResult<String> {
    let spec = preset(name, &input, classes).map_err(|e| bad_input("preset", e))?;
    serde_json::to_string(&spec).map_err(|e| failed("preset", e))
}

/// Parameter names in `θ` order with their shapes.
type ParameterShapes = Vec<(String, Vec<usize>)>;

/// Parses a description (`format` `"json"` or `"toml"`), compiles it to check every layer's sizes, and
/// returns it as JSON with its parameter names and shapes in `θ` order.
#[pyfunction]
pub fn parse_spec(text: &str, format: &str) -> PyResult<(String, ParameterShapes)> {
    let spec = match format {
        "json" => NetworkSpec::from_json(text),
        "toml" => NetworkSpec::from_toml(text),
        other => {
            return Err(bad_input(
                "format",
                format!("unknown format {other:?} (json, toml)"),
            ))
        }
    }
    .map_err(|e| bad_input("spec", e))?;
    let limit = imreg_cli::limits::MAX_PARAMS;
    let widths = imreg_cli::limits::spec_widths(&spec);
    if widths > limit {
        return Err(bad_input(
            "spec",
            format!("the network's widths ({widths}) exceed {limit}"),
        ));
    }
    let net = SpecNetwork::new(spec.clone()).map_err(|e| bad_input("spec", e))?;
    let params = imreg_objective::models::Network::parameters(&net)
        .into_iter()
        .map(|p| (p.name, p.shape))
        .collect();
    let json = serde_json::to_string(&spec).map_err(|e| failed("spec", e))?;
    Ok((json, params))
}

/// A TOML document as JSON (for Python < 3.11, which has no `tomllib`).
#[pyfunction]
pub fn toml_to_json(text: &str) -> PyResult<String> {
    let v: toml::Value =
        toml::from_str(text).map_err(|e| bad_input("model", format!("cannot parse the TOML: {e}")))?;
    serde_json::to_string(&v).map_err(|e| failed("model", e))
}
