//! MNIST IDX files (`*-images-idx3-ubyte`, `*-labels-idx1-ubyte`, uncompressed): a big-endian header
//! `[0, 0, type, ndims]`, `ndims` big-endian `u32` dimensions, then the data. Only unsigned bytes
//! (`type = 0x08`) are read, as MNIST and Fashion-MNIST use.
use super::error::{read_file, DataError, DataResult};
use super::limits::{exact_body, extent};
use super::Classification;
use ndarray::Array2;
use std::path::Path;

/// Magic number of an image file: ubyte, 3 dimensions `(N, rows, cols)`.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of a label file: ubyte, 1 dimension `(N)`.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

fn be_u32(bytes: &[u8], at: usize, what: &str) -> DataResult<u32> {
    let b = bytes.get(at..at + 4).ok_or_else(|| DataError::Truncated {
        what: format!("{what} header"),
        expected: at + 4,
        got: bytes.len(),
    })?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses an unsigned-byte IDX buffer with the given magic number: returns the dimensions and the data.
/// Errors on a wrong magic number, a truncated header, a zero dimension, dimensions whose product exceeds
/// [`MAX_VALUES`](super::limits::MAX_VALUES), a truncated body or trailing bytes (sizes are checked before
/// anything is allocated).
pub fn parse_idx<'b>(bytes: &'b [u8], magic: u32, what: &str) -> DataResult<(Vec<usize>, &'b [u8])> {
    let got = be_u32(bytes, 0, what)?;
    if got != magic {
        return Err(DataError::BadMagic {
            what: what.into(),
            expected: magic,
            got,
        });
    }
    let ndims = (magic & 0xff) as usize;
    let dims: Vec<usize> = (0..ndims)
        .map(|k| be_u32(bytes, 4 + 4 * k, what).map(|d| d as usize))
        .collect::<DataResult<_>>()?;
    let start = 4 + 4 * ndims;
    let need = extent(&dims, 1, what)?;
    let body = exact_body(bytes, start, need, &dims, what)?;
    Ok((dims, body))
}

/// Images `N × (rows·cols)`, pixels scaled to `[0, 1]` (byte / 255), row-major within an image.
pub fn parse_images(bytes: &[u8], what: &str) -> DataResult<Array2<f64>> {
    let (dims, body) = parse_idx(bytes, IMAGES_MAGIC, what)?;
    // `(N, rows, cols)` by the magic number, all ≥ 1 with product `body.len()` (checked by `parse_idx`)
    let n = dims[0];
    let d = body.len() / n;
    Array2::from_shape_vec((n, d), body.iter().map(|&b| f64::from(b) / 255.0).collect())
        .map_err(|e| DataError::Other(format!("{what}: {e}")))
}

/// Labels, each `< 10`.
pub fn parse_labels(bytes: &[u8], what: &str) -> DataResult<Vec<usize>> {
    let (_, body) = parse_idx(bytes, LABELS_MAGIC, what)?;
    if let Some((index, &v)) = body.iter().enumerate().find(|(_, &v)| v >= 10) {
        return Err(DataError::Value {
            what: what.into(),
            index,
            value: v.to_string(),
            reason: "labels are 0..=9".into(),
        });
    }
    Ok(body.iter().map(|&v| usize::from(v)).collect())
}

/// Reads an MNIST image file (see [`parse_images`]).
pub fn load_images(path: impl AsRef<Path>) -> DataResult<Array2<f64>> {
    let path = path.as_ref();
    parse_images(&read_file(path)?, &path.display().to_string())
}

/// Reads an MNIST label file (see [`parse_labels`]).
pub fn load_labels(path: impl AsRef<Path>) -> DataResult<Vec<usize>> {
    let path = path.as_ref();
    parse_labels(&read_file(path)?, &path.display().to_string())
}

/// Reads an MNIST image file and its label file into a 10-class [`Classification`]; errors if the counts differ.
pub fn load_mnist(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> DataResult<Classification> {
    let x = load_images(images)?;
    let labels = load_labels(labels)?;
    if labels.len() != x.nrows() {
        return Err(DataError::Shape {
            what: "MNIST labels vs images".into(),
            expected: format!("{} labels", x.nrows()),
            got: labels.len().to_string(),
        });
    }
    Ok(Classification::new(x, labels, 10)?)
}
