//! Model weights in the safetensors format (PyTorch: `safetensors.torch.save_file(model.state_dict(), …)`),
//! flattened into imreg's parameter vector in `nn.Linear` layout.
use super::error::{read_file, DataError, DataResult};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::path::Path;

/// A named tensor: name, shape, values in C order.
pub type NamedTensor = (String, Vec<usize>, Vec<f64>);

/// Parses a safetensors buffer into its tensors, sorted by name; `F64` and `F32` tensors only (others are a
/// [`DataError::Dtype`] naming the tensor).
pub fn parse_safetensors(bytes: &[u8], what: &str) -> DataResult<Vec<NamedTensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| DataError::Header {
        what: what.into(),
        reason: format!("{e:?}"),
    })?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let data: Vec<f64> = match view.dtype() {
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                .collect(),
            other => {
                return Err(DataError::Dtype {
                    what: format!("{what}: tensor {name}"),
                    dtype: format!("{other:?}"),
                })
            }
        };
        out.push((name, view.shape().to_vec(), data));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads a safetensors file (see [`parse_safetensors`]).
pub fn load_safetensors(path: impl AsRef<Path>) -> DataResult<Vec<NamedTensor>> {
    let path = path.as_ref();
    parse_safetensors(&read_file(path)?, &path.display().to_string())
}

/// Writes tensors as an `F64` safetensors file.
pub fn save_safetensors(path: impl AsRef<Path>, tensors: &[NamedTensor]) -> DataResult<()> {
    let path = path.as_ref();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F64, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| DataError::Shape {
                    what: format!("tensor {n}"),
                    expected: format!("{s:?}"),
                    got: format!("{e:?}"),
                })
        })
        .collect::<DataResult<Vec<_>>>()?;
    safetensors::serialize_to_file(views, &None, path).map_err(|e| DataError::Io {
        path: path.display().to_string(),
        reason: format!("{e:?}"),
    })
}

/// Concatenates the tensors `names` (in that order, each C-ordered) into one flat parameter vector,
/// checking each against its expected shape. Errors name a missing tensor ([`DataError::MissingTensor`])
/// or a wrong shape ([`DataError::Shape`]). For a model, pass its `param_names()` and `layer_shapes()`.
pub fn flatten_params(
    tensors: &[NamedTensor],
    names: &[String],
    shapes: &[Vec<usize>],
) -> DataResult<Vec<f64>> {
    if names.len() != shapes.len() {
        return Err(DataError::Shape {
            what: "flatten_params names vs shapes".into(),
            expected: format!("{} shapes", names.len()),
            got: shapes.len().to_string(),
        });
    }
    let mut out = Vec::new();
    for (name, shape) in names.iter().zip(shapes) {
        let (_, s, d) = tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| DataError::MissingTensor { name: name.clone() })?;
        if s != shape {
            return Err(DataError::Shape {
                what: format!("tensor {name}"),
                expected: format!("{shape:?}"),
                got: format!("{s:?}"),
            });
        }
        out.extend_from_slice(d);
    }
    Ok(out)
}
