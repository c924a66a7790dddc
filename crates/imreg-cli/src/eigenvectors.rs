//! Hessian eigenvectors as files: `eigenvectors.npy` (`k × p`, one unit eigenvector per row, in parameter
//! order: the top ones descending, then the bottom ones ascending) and the sidecar `eigenvectors.json` with
//! each row's eigenvalue and the PyTorch name, shape and offset of every parameter tensor, so that
//! `v[offset : offset + numel].reshape(shape)` is the tensor `name` of the direction (the layout of
//! `torch.nn.utils.parameters_to_vector(model.parameters())`).
use crate::error::{CliError, Result};
use crate::model::ParamTensor;
use crate::spectrum::Extremes;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Writes the eigenvectors of `e` and their names into `dir`; returns the two paths.
pub fn write(dir: &Path, e: &Extremes, layout: &[ParamTensor]) -> Result<Vec<PathBuf>> {
    let p = layout.iter().map(ParamTensor::numel).sum::<usize>();
    let k = e.vectors.len();
    if e.vectors.iter().any(|v| v.len() != p) {
        return Err(CliError::Failed(format!(
            "eigenvectors: the parameter layout has {p} entries, the vectors do not"
        )));
    }
    let flat: Vec<f64> = e.vectors.iter().flatten().copied().collect();
    let npy = dir.join("eigenvectors.npy");
    let bytes = imreg_objective::data::npy::npy_bytes(&[k, p], &flat)
        .map_err(|err| CliError::Failed(format!("{}: {err}", npy.display())))?;
    imreg_plot::write_atomic(&npy, &bytes)?;
    let residual = |r: &[f64], i: usize| r.get(i).copied();
    let rows: Vec<_> = e
        .top
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"which": "top", "rank": i + 1, "eigenvalue": v, "residual_bound": residual(&e.top_residuals, i)}))
        .chain(e.bottom.iter().enumerate().map(|(i, v)| {
            json!({"which": "bottom", "rank": i + 1, "eigenvalue": v, "residual_bound": residual(&e.bottom_residuals, i)})
        }))
        .take(k)
        .collect();
    let mut offset = 0;
    let tensors: Vec<_> = layout
        .iter()
        .map(|t| {
            let entry = json!({"name": t.name, "shape": t.shape, "offset": offset, "numel": t.numel()});
            offset += t.numel();
            entry
        })
        .collect();
    let sidecar = json!({
        "file": "eigenvectors.npy",
        "shape": [k, p],
        "method": e.method,
        "converged": e.converged,
        "rows": rows,
        "parameters": tensors,
    });
    let side = dir.join("eigenvectors.json");
    let text = serde_json::to_string_pretty(&sidecar).map_err(|err| CliError::Failed(err.to_string()))?;
    imreg_plot::write_atomic(&side, text.as_bytes())?;
    Ok(vec![npy, side])
}
