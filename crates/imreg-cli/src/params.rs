//! Parameter files: a flat `.npy` vector, or a PyTorch-layout `.safetensors` state dict (as written by
//! `safetensors.torch.save_file(model.state_dict(), path)`), mapped onto the flat `θ` by the model's layout.
use crate::error::{CliError, Result};
use crate::model::ParamTensor;
use crate::npy::read_npy;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::path::Path;

/// Reads `θ` for a model with `layout` from `path` (`.npy` or `.safetensors`); `field` names the config
/// field or argument.
pub fn load_params(path: &Path, layout: &[ParamTensor], field: &str) -> Result<Vec<f64>> {
    if !path.exists() {
        return Err(CliError::input(path, field, "file does not exist"));
    }
    let p: usize = layout.iter().map(ParamTensor::numel).sum();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let theta = match ext {
        "npy" => read_npy(path, field)?.data,
        "safetensors" => load_safetensors(path, layout, field)?,
        other => {
            return Err(CliError::input(
                path,
                field,
                format!("unknown extension {other:?}: use .npy or .safetensors"),
            ))
        }
    };
    if theta.len() != p {
        return Err(CliError::input(
            path,
            field,
            format!(
                "has {} parameters, the model needs p = {p} ({})",
                theta.len(),
                describe(layout)
            ),
        ));
    }
    if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
        return Err(CliError::input(
            path,
            field,
            format!("non-finite parameter at flat position {i}"),
        ));
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

fn load_safetensors(path: &Path, layout: &[ParamTensor], field: &str) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).map_err(|e| CliError::input(path, field, format!("cannot read: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| CliError::input(path, field, format!("not a safetensors file: {e:?}")))?;
    // Strict, like PyTorch's `load_state_dict(strict=True)`: every tensor of the file must be used.
    let expected: Vec<String> = layout
        .iter()
        .flat_map(|t| {
            [
                t.name.clone(),
                t.name.strip_prefix("0.").unwrap_or(&t.name).to_string(),
            ]
        })
        .collect();
    let mut unexpected: Vec<&String> = st.names().into_iter().filter(|n| !expected.contains(n)).collect();
    unexpected.sort();
    if !unexpected.is_empty() {
        return Err(CliError::input(
            path,
            field,
            format!(
                "unexpected tensors {unexpected:?} for the model's layout ({})",
                describe(layout)
            ),
        ));
    }
    let mut theta = Vec::new();
    for t in layout {
        // A bare nn.Linear saves `weight`/`bias` without the `0.` prefix.
        let bare = t.name.strip_prefix("0.").unwrap_or(&t.name);
        let view = st.tensor(&t.name).or_else(|_| st.tensor(bare)).map_err(|_| {
            let names: Vec<&String> = st.names();
            CliError::input(
                path,
                format!("{field}[{}]", t.name),
                format!("missing tensor; the file has {names:?}"),
            )
        })?;
        let numel: usize = view.shape().iter().product();
        if numel != t.numel() || (view.shape() != t.shape.as_slice() && view.shape().len() > 1) {
            return Err(CliError::input(
                path,
                format!("{field}[{}]", t.name),
                format!("shape {:?}, expected {:?}", view.shape(), t.shape),
            ));
        }
        let data = view.data();
        match view.dtype() {
            Dtype::F64 => theta.extend(
                data.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
            ),
            Dtype::F32 => theta.extend(
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as f64),
            ),
            other => {
                return Err(CliError::input(
                    path,
                    format!("{field}[{}]", t.name),
                    format!("dtype {other:?} is not supported (use float32 or float64)"),
                ))
            }
        }
    }
    Ok(theta)
}

/// The bytes of a `.safetensors` file holding `θ` as float64 tensors named and shaped by `layout`.
pub fn to_safetensors(theta: &[f64], layout: &[ParamTensor]) -> Result<Vec<u8>> {
    let mut buffers = Vec::with_capacity(layout.len());
    let mut at = 0;
    for t in layout {
        let n = t.numel();
        let chunk = theta
            .get(at..at + n)
            .ok_or_else(|| CliError::Failed(format!("θ too short for {}", t.name)))?;
        buffers.push(chunk.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        at += n;
    }
    let views = layout
        .iter()
        .zip(&buffers)
        .map(|(t, b)| {
            TensorView::new(Dtype::F64, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| CliError::Failed(format!("safetensors {}: {e:?}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, &None).map_err(|e| CliError::Failed(format!("safetensors: {e:?}")))
}
