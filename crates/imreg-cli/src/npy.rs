//! A minimal `.npy` (NumPy format 1.0/2.0) reader and writer for C-ordered arrays.
//!
//! Stopgap until `imreg-objective` ships its npy module: the CLI writes `<f8` arrays and reads `<f8`, `<f4`,
//! `<i8`, `<i4` and `|u1` arrays (converted to `f64`).
use crate::error::{CliError, Result};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// A dense array read from a `.npy` file, values converted to `f64`, C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// The bytes of a `.npy` file (format 1.0, `<f8`, C order) holding `data` with `shape`.
pub fn to_npy_bytes(shape: &[usize], data: &[f64]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    let used = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - used % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `data` with `shape` to `path` atomically. Panics never; a shape/data mismatch is an error.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(CliError::Failed(format!(
            "{}: shape {shape:?} does not match {} values",
            path.display(),
            data.len()
        )));
    }
    imreg_plot::write_atomic(path, &to_npy_bytes(shape, data)).map_err(CliError::from)
}

/// Reads a `.npy` file; `field` names the config field or argument it came from (for error messages).
pub fn read_npy(path: &Path, field: &str) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| CliError::input(path, field, format!("cannot read: {e}")))?;
    parse_npy(&bytes).map_err(|reason| CliError::input(path, field, reason))
}

/// Parses the bytes of a `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(start..start + hlen).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "non-UTF-8 .npy header")?;
    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let quote = descr
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or("malformed 'descr'")?;
    let descr = descr[1..].split(quote).next().ok_or("malformed 'descr'")?;
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-ordered arrays are not supported (save with np.ascontiguousarray)".into());
    }
    let shape_txt = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let inner = shape_txt.trim().trim_start_matches('(');
    let inner = inner
        .get(..inner.find(')').ok_or("malformed shape")?)
        .ok_or("malformed shape")?;
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("malformed shape entry {s:?}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let count: usize = shape.iter().product();
    let body = &bytes[start + hlen..];
    let (size, conv): (usize, fn(&[u8]) -> f64) = match descr {
        "<f8" => (8, |b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
        "<f4" => (4, |b| f32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as f64),
        "<i8" => (8, |b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64),
        "<i4" => (4, |b| i32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as f64),
        "|u1" | "<u1" => (1, |b| b[0] as f64),
        other => {
            return Err(format!(
                "unsupported dtype {other:?} (use float64, float32, int64, int32 or uint8)"
            ))
        }
    };
    if body.len() != count * size {
        return Err(format!(
            "shape {shape:?} needs {} bytes of data, file has {}",
            count * size,
            body.len()
        ));
    }
    Ok(NpyArray {
        shape,
        data: body.chunks_exact(size).map(conv).collect(),
    })
}

/// The text after `'key':` in a Python dict literal, up to the end of the header.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[pos + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_alignment() {
        for shape in [vec![3usize], vec![2, 3], vec![0]] {
            let n: usize = shape.iter().product();
            let data: Vec<f64> = (0..n).map(|i| i as f64 / 3.0).collect();
            let bytes = to_npy_bytes(&shape, &data);
            let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + hlen) % 64, 0);
            let back = parse_npy(&bytes).unwrap();
            assert_eq!(back, NpyArray { shape, data });
        }
    }

    #[test]
    fn numpy_written_header_parses() {
        // The exact header numpy 1.26 writes for np.save(f, np.arange(4, dtype='<i8').reshape(2, 2)).
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }";
        let padded = format!("{header:<117}\n");
        bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
        bytes.extend_from_slice(padded.as_bytes());
        for v in 0i64..4 {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let a = parse_npy(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.data, vec![0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(parse_npy(b"hello").is_err());
        let mut bytes = to_npy_bytes(&[4], &[1.0; 4]);
        bytes.truncate(bytes.len() - 1);
        assert!(parse_npy(&bytes).unwrap_err().contains("needs 32 bytes"));
    }
}
