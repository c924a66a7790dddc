//! Parameter files: a flat `.npy` vector, or a PyTorch-layout `.safetensors` state dict (as written by
//! `safetensors.torch.save_file(model.state_dict(), path)`), mapped onto the flat `θ` by the model's layout
//! with `imreg_objective::data::{npy, weights}`.
use crate::error::{CliError, Result};
use crate::model::ParamTensor;
use imreg_objective::data::npy::read_npy;
use imreg_objective::data::weights::{flatten_params, load_safetensors, save_safetensors, NamedTensor};
use std::path::Path;

/// Reads `θ` for a model with `layout` from `path` (`.npy` or `.safetensors`); `field` names the config
/// field or argument.
pub fn load_params(path: &Path, layout: &[ParamTensor], field: &str) -> Result<Vec<f64>> {
    if !path.exists() {
        return Err(CliError::input(path, field, "file does not exist"));
    }
    let bad = |reason: String| CliError::input(path, field, reason);
    let p: usize = layout.iter().map(ParamTensor::numel).sum();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let theta = match ext {
        "npy" => read_npy(path).map_err(|e| bad(e.to_string()))?.data,
        "safetensors" => {
            from_state_dict(load_safetensors(path).map_err(|e| bad(e.to_string()))?, layout).map_err(bad)?
        }
        other => {
            return Err(bad(format!(
                "unknown extension {other:?}: use .npy or .safetensors"
            )))
        }
    };
    if theta.len() != p {
        return Err(bad(format!(
            "has {} parameters, the model needs p = {p} ({})",
            theta.len(),
            describe(layout)
        )));
    }
    if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("non-finite parameter at flat position {i}")));
    }
    Ok(theta)
}

/// `0.weight [1, 5], 0.bias [1]`.
pub fn describe(layout: &[ParamTensor]) -> String {
    layout
        .iter()
        .map(|t| format!("{} {:?}", t.name, t.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps a state dict onto `θ`, strictly like PyTorch's `load_state_dict(strict=True)`: every tensor of the
/// file must be used and have the layout's shape. A bare `nn.Linear` saves `weight`/`bias` without the
/// `0.` prefix; those names are accepted for `0.weight`/`0.bias`.
fn from_state_dict(
    mut tensors: Vec<NamedTensor>,
    layout: &[ParamTensor],
) -> std::result::Result<Vec<f64>, String> {
    let names: Vec<String> = layout.iter().map(|t| t.name.clone()).collect();
    for (name, _, _) in tensors.iter_mut() {
        let prefixed = format!("0.{name}");
        if !names.contains(name) && names.contains(&prefixed) {
            *name = prefixed;
        }
    }
    let unexpected: Vec<&String> = tensors
        .iter()
        .map(|(n, _, _)| n)
        .filter(|n| !names.contains(n))
        .collect();
    if !unexpected.is_empty() {
        return Err(format!(
            "unexpected tensors {unexpected:?} for the model's layout ({})",
            describe(layout)
        ));
    }
    let shapes: Vec<Vec<usize>> = layout.iter().map(|t| t.shape.clone()).collect();
    flatten_params(&tensors, &names, &shapes)
        .map_err(|e| format!("{e} (the model's layout: {})", describe(layout)))
}

/// Writes `θ` as float64 tensors named and shaped by `layout` to a `.safetensors` file.
pub fn save_params(path: &Path, theta: &[f64], layout: &[ParamTensor]) -> Result<()> {
    let mut tensors: Vec<NamedTensor> = Vec::with_capacity(layout.len());
    let mut at = 0;
    for t in layout {
        let n = t.numel();
        let chunk = theta
            .get(at..at + n)
            .ok_or_else(|| CliError::Failed(format!("θ too short for {}", t.name)))?;
        tensors.push((t.name.clone(), t.shape.clone(), chunk.to_vec()));
        at += n;
    }
    save_safetensors(path, &tensors).map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))
}
