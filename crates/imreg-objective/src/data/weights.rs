//! Model weights in the safetensors format (PyTorch: `safetensors.torch.save_file(model.state_dict(), …)`),
//! flattened into imreg's parameter vector in `nn.Linear` layout.
use super::error::{read_file, DataError, DataResult};
use super::limits::extent;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::path::Path;

/// A named tensor: name, shape, values in C order.
pub type NamedTensor = (String, Vec<usize>, Vec<f64>);

/// The largest safetensors header read, in bytes (the format's own limit).
pub const MAX_HEADER_BYTES: usize = 100_000_000;

/// Bytes per value of the dtypes imreg reads (`F64`, `F32`); others are a [`DataError::Dtype`] naming the tensor.
fn dtype_size(dtype: &str, what: &str) -> DataResult<usize> {
    match dtype {
        "F64" => Ok(8),
        "F32" => Ok(4),
        other => Err(DataError::Dtype {
            what: what.into(),
            dtype: other.into(),
        }),
    }
}

/// Checks the header of a safetensors buffer with checked arithmetic before the `safetensors` crate sees it
/// (its bounds check adds the declared data end without overflow checks): the header length fits the buffer,
/// the header is a JSON object, and each tensor has a readable dtype, a shape without a zero-length axis whose
/// size does not overflow or exceed [`MAX_VALUES`](super::limits::MAX_VALUES), and `data_offsets`
/// `[begin, end]` inside the data with `end − begin` the shape's byte count. Errors name the tensor.
fn check_header(bytes: &[u8], what: &str) -> DataResult<()> {
    let header = |reason: String| DataError::Header {
        what: what.into(),
        reason,
    };
    let len = bytes.get(..8).ok_or(DataError::Truncated {
        what: format!("{what} header length"),
        expected: 8,
        got: bytes.len(),
    })?;
    let n = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
    if n > MAX_HEADER_BYTES as u64 {
        return Err(DataError::TooLarge {
            what: format!("{what} header"),
            size: n,
            limit: MAX_HEADER_BYTES as u64,
            unit: "bytes",
        });
    }
    // n ≤ 10⁸, so 8 + n does not overflow
    let data_start = 8 + n as usize;
    let text = bytes.get(8..data_start).ok_or(DataError::Truncated {
        what: format!("{what} header"),
        expected: data_start,
        got: bytes.len(),
    })?;
    let data_len = bytes.len() - data_start;
    let dict: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(text).map_err(|e| header(format!("header is not a JSON object: {e}")))?;
    for (name, info) in dict.iter().filter(|(name, _)| *name != "__metadata__") {
        let tensor = format!("{what}: tensor {name}");
        let field = |key: &str| {
            info.get(key).ok_or_else(|| DataError::Header {
                what: tensor.clone(),
                reason: format!("no {key:?} entry"),
            })
        };
        let sizes = |key: &str| -> DataResult<Vec<usize>> {
            let list = field(key)?.as_array().ok_or_else(|| DataError::Header {
                what: tensor.clone(),
                reason: format!("{key:?} is not a list"),
            })?;
            list.iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|v| usize::try_from(v).ok())
                        .ok_or_else(|| DataError::Header {
                            what: tensor.clone(),
                            reason: format!("{key:?} entry {v} is not a size"),
                        })
                })
                .collect()
        };
        let dtype = field("dtype")?.as_str().ok_or_else(|| DataError::Header {
            what: tensor.clone(),
            reason: "\"dtype\" is not a string".into(),
        })?;
        let elem = dtype_size(dtype, &tensor)?;
        let shape = sizes("shape")?;
        let need = extent(&shape, elem, &tensor)?;
        let (begin, end) = match sizes("data_offsets")?[..] {
            [begin, end] => (begin, end),
            _ => {
                return Err(DataError::Header {
                    what: tensor,
                    reason: "\"data_offsets\" is not [begin, end]".into(),
                })
            }
        };
        if begin > end || end > data_len {
            return Err(DataError::Truncated {
                what: format!("{tensor} (data_offsets [{begin}, {end}])"),
                expected: data_start.saturating_add(end.max(begin)),
                got: bytes.len(),
            });
        }
        if end - begin != need {
            return Err(DataError::Shape {
                what: tensor,
                expected: format!("{need} bytes for shape {shape:?} of {dtype}"),
                got: format!("{} bytes (data_offsets [{begin}, {end}])", end - begin),
            });
        }
    }
    Ok(())
}

/// Parses a safetensors buffer into its tensors, sorted by name; `F64` and `F32` tensors only (others are a
/// [`DataError::Dtype`] naming the tensor). The header is checked first (see the sizes and limits in
/// [`super::limits`]): a wrong dtype, a zero-length axis, an overflowing or oversized shape, or offsets
/// outside the data are typed errors naming the tensor, found before any tensor is allocated.
pub fn parse_safetensors(bytes: &[u8], what: &str) -> DataResult<Vec<NamedTensor>> {
    check_header(bytes, what)?;
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
