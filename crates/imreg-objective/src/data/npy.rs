//! A small `.npy` reader and writer (NumPy format versions 1.0, 2.0 and 3.0 headers; C order;
//! little-endian `f8`, `f4`, `i8`, `i4` and `u1`).
//!
//! Layout: the magic `\x93NUMPY`, the version `(major, minor)`, the header length (`u16` LE for 1.0, `u32`
//! LE for 2.0/3.0), the header — a Python dict literal `{'descr': '<f8', 'fortran_order': False,
//! 'shape': (3, 4), }` padded with spaces and ended by `\n` — then the raw data.
use super::error::{read_file, DataError, DataResult};
use super::limits::{checked_count, exact_body, extent};
use ndarray::Array2;
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element type of a `.npy` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDtype {
    F64,
    F32,
    I64,
    I32,
    U8,
}

impl NpyDtype {
    fn parse(descr: &str, what: &str) -> DataResult<Self> {
        Ok(match descr {
            "<f8" => NpyDtype::F64,
            "<f4" => NpyDtype::F32,
            "<i8" => NpyDtype::I64,
            "<i4" => NpyDtype::I32,
            "|u1" | "<u1" | "u1" => NpyDtype::U8,
            other => {
                return Err(DataError::Dtype {
                    what: what.into(),
                    dtype: other.into(),
                })
            }
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            NpyDtype::F64 | NpyDtype::I64 => 8,
            NpyDtype::F32 | NpyDtype::I32 => 4,
            NpyDtype::U8 => 1,
        }
    }

    /// `true` for the integer types.
    pub fn is_integer(self) -> bool {
        matches!(self, NpyDtype::I64 | NpyDtype::I32 | NpyDtype::U8)
    }
}

/// An array read from a `.npy` file: its shape, its element type, and its values in C order converted to
/// `f64` (exact for `f4`, `i4`, `u1`, and for `i8` values of magnitude ≤ 2⁵³).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub dtype: NpyDtype,
    pub data: Vec<f64>,
}

impl NpyArray {
    /// The array as a matrix: 2-D as is, 1-D as one column.
    pub fn into_array2(self) -> DataResult<Array2<f64>> {
        let (r, c) = match self.shape[..] {
            [r, c] => (r, c),
            [r] => (r, 1),
            _ => {
                return Err(DataError::Shape {
                    what: "npy array as a matrix".into(),
                    expected: "1 or 2 dimensions".into(),
                    got: format!("{:?}", self.shape),
                })
            }
        };
        Array2::from_shape_vec((r, c), self.data).map_err(|e| DataError::Other(e.to_string()))
    }

    /// The array as labels: needs an integer dtype and values `≥ 0`.
    pub fn into_labels(self) -> DataResult<Vec<usize>> {
        if !self.dtype.is_integer() {
            return Err(DataError::Dtype {
                what: "labels".into(),
                dtype: format!("{:?} (need an integer type)", self.dtype),
            });
        }
        if let Some((index, v)) = self.data.iter().enumerate().find(|(_, v)| **v < 0.0) {
            return Err(DataError::Value {
                what: "labels".into(),
                index,
                value: v.to_string(),
                reason: "labels are ≥ 0".into(),
            });
        }
        Ok(self.data.iter().map(|&v| v as usize).collect())
    }
}

/// Finds the value text after `'key':` in the header dict.
fn field<'h>(header: &'h str, key: &str, what: &str) -> DataResult<&'h str> {
    let pat = format!("'{key}':");
    let at = header.find(&pat).ok_or_else(|| DataError::Header {
        what: what.into(),
        reason: format!("no '{key}' key"),
    })?;
    Ok(header[at + pat.len()..].trim_start())
}

/// Parses the header dict into `(dtype, shape)`.
fn parse_header(header: &str, what: &str) -> DataResult<(NpyDtype, Vec<usize>)> {
    let bad = |reason: String| DataError::Header {
        what: what.into(),
        reason,
    };
    let descr = field(header, "descr", what)?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| bad("descr is not a string".into()))?;
    let dtype = NpyDtype::parse(descr, what)?;
    let fortran = field(header, "fortran_order", what)?;
    if fortran.starts_with("True") {
        return Err(bad(
            "fortran_order = True is not supported (save C-ordered arrays)".into(),
        ));
    } else if !fortran.starts_with("False") {
        return Err(bad("fortran_order is neither True nor False".into()));
    }
    let shape = field(header, "shape", what)?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("shape is not a tuple".into()))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| bad(format!("shape entry {s:?} is not a size")))
        })
        .collect::<DataResult<Vec<usize>>>()?;
    Ok((dtype, shape))
}

/// Parses a `.npy` buffer. Errors on a bad magic string, an unknown version, a malformed header, an
/// unsupported dtype (big-endian, other types), Fortran order, a shape with a zero-length axis, a shape whose
/// size overflows or exceeds [`MAX_VALUES`](super::limits::MAX_VALUES) values, or a body shorter or longer
/// than the shape; the sizes are checked before the values are allocated.
pub fn parse_npy(bytes: &[u8], what: &str) -> DataResult<NpyArray> {
    if bytes.len() < 10 {
        return Err(DataError::Truncated {
            what: what.into(),
            expected: 10,
            got: bytes.len(),
        });
    }
    if &bytes[..6] != MAGIC {
        return Err(DataError::Header {
            what: what.into(),
            reason: "missing the \\x93NUMPY magic string".into(),
        });
    }
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            let b = bytes.get(8..12).ok_or(DataError::Truncated {
                what: what.into(),
                expected: 12,
                got: bytes.len(),
            })?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => {
            return Err(DataError::Header {
                what: what.into(),
                reason: format!("unsupported format version {v}.{}", bytes[7]),
            })
        }
    };
    let end = hlen.saturating_add(start);
    let header = bytes.get(start..end).ok_or(DataError::Truncated {
        what: format!("{what} header"),
        expected: end,
        got: bytes.len(),
    })?;
    let header = std::str::from_utf8(header).map_err(|_| DataError::Header {
        what: what.into(),
        reason: "header is not UTF-8".into(),
    })?;
    let (dtype, shape) = parse_header(header, what)?;
    let need = extent(&shape, dtype.size(), what)?;
    let body = exact_body(bytes, end, need, &shape, what)?;
    let data: Vec<f64> = match dtype {
        NpyDtype::F64 => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        NpyDtype::F32 => body
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
            .collect(),
        NpyDtype::I64 => body
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        NpyDtype::I32 => body
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
            .collect(),
        NpyDtype::U8 => body.iter().map(|&b| f64::from(b)).collect(),
    };
    Ok(NpyArray { shape, dtype, data })
}

/// Reads a `.npy` file (see [`parse_npy`]).
pub fn read_npy(path: impl AsRef<Path>) -> DataResult<NpyArray> {
    let path = path.as_ref();
    parse_npy(&read_file(path)?, &path.display().to_string())
}

/// The header of a C-order `<f8` `.npy` file of `shape` (magic, version, header length and the padded
/// header dictionary): the file is this followed by the `8 · Π shape` little-endian bytes of the values,
/// so a writer can stream the values after it.
pub fn npy_header(shape: &[usize]) -> DataResult<Vec<u8>> {
    checked_count(shape, "write_npy shape")?;
    let dims = match shape {
        [d] => format!("{d},"),
        _ => shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
    };
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({dims}), }}");
    let v1 = dict.len() + 11 <= u16::MAX as usize;
    let pre = if v1 { 10 } else { 12 };
    let total = (pre + dict.len() + 1).div_ceil(64) * 64;
    let mut header = dict.into_bytes();
    header.resize(total - pre - 1, b' ');
    header.push(b'\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&header);
    Ok(out)
}

/// The bytes of a `.npy` file holding `data` (C order, `<f8`) with the given shape: version 1.0, or 2.0 if
/// the header would not fit in 65535 bytes; the preamble is padded to a multiple of 64 bytes.
pub fn npy_bytes(shape: &[usize], data: &[f64]) -> DataResult<Vec<u8>> {
    let count = checked_count(shape, "write_npy shape")?;
    if count != data.len() {
        return Err(DataError::Shape {
            what: "write_npy data".into(),
            expected: format!("{count} values for shape {shape:?}"),
            got: data.len().to_string(),
        });
    }
    let mut out = npy_header(shape)?;
    out.reserve(8 * data.len());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes `data` (C order) with the given shape as a `<f8` `.npy` file (see [`npy_bytes`]).
pub fn write_npy(path: impl AsRef<Path>, shape: &[usize], data: &[f64]) -> DataResult<()> {
    let path = path.as_ref();
    let bytes = npy_bytes(shape, data)?;
    std::fs::write(path, bytes).map_err(|e| DataError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes a matrix as a 2-D `<f8` `.npy` file.
pub fn write_npy_array2(path: impl AsRef<Path>, a: &Array2<f64>) -> DataResult<()> {
    let a = a.as_standard_layout();
    write_npy(path, &[a.nrows(), a.ncols()], a.as_slice().unwrap_or(&[]))
}
