//! Resource limits of the loaders and the checked size arithmetic they share.
//!
//! A file declares a shape; before anything is allocated, a loader computes the number of values
//! `n = ∏ dᵢ` and of data bytes `n · s` (element size `s`) with overflow checks, requires every axis
//! `dᵢ ≥ 1`, caps `n` at [`MAX_VALUES`], and compares the declared bytes with the bytes present in the file.
//! A file is read only if it has at most [`MAX_FILE_BYTES`] bytes. Each failure is a typed [`DataError`]
//! naming the file (or tensor) and the shape.
use super::error::{DataError, DataResult};

/// The largest array a loader accepts: 2²⁸ = 268,435,456 values (2 GiB as `f64`).
pub const MAX_VALUES: usize = 1 << 28;

/// The largest file a loader reads: 2³¹ + 2²⁰ bytes (an `f64` array of [`MAX_VALUES`] values plus 1 MiB of
/// header).
pub const MAX_FILE_BYTES: u64 = 8 * MAX_VALUES as u64 + (1 << 20);

/// `∏ dᵢ` with overflow checked (`1` for the empty shape of a scalar); [`DataError::Overflow`] otherwise.
pub fn checked_count(shape: &[usize], what: &str) -> DataResult<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DataError::Overflow {
            what: what.into(),
            shape: format!("{shape:?}"),
        })
}

/// The number of data bytes `∏ dᵢ · elem` of a declared `shape` of `elem`-byte values. Errors, in this order:
/// a zero-length axis ([`DataError::EmptyAxis`]), a value or byte count that overflows `usize`
/// ([`DataError::Overflow`]), more than [`MAX_VALUES`] values ([`DataError::TooLarge`]).
pub fn extent(shape: &[usize], elem: usize, what: &str) -> DataResult<usize> {
    if shape.contains(&0) {
        return Err(DataError::EmptyAxis {
            what: what.into(),
            shape: format!("{shape:?}"),
        });
    }
    let values = checked_count(shape, what)?;
    let bytes = values.checked_mul(elem).ok_or_else(|| DataError::Overflow {
        what: what.into(),
        shape: format!("{shape:?}"),
    })?;
    if values > MAX_VALUES {
        return Err(DataError::TooLarge {
            what: format!("{what} with shape {shape:?}"),
            size: values as u64,
            limit: MAX_VALUES as u64,
            unit: "values",
        });
    }
    Ok(bytes)
}

/// The data of a file whose header ends at `start` and declares `need` data bytes for `shape`: exactly
/// `bytes[start..start + need]`. Errors on fewer bytes ([`DataError::Truncated`]) or trailing bytes
/// ([`DataError::Shape`]).
pub(crate) fn exact_body<'b>(
    bytes: &'b [u8],
    start: usize,
    need: usize,
    shape: &[usize],
    what: &str,
) -> DataResult<&'b [u8]> {
    let body = bytes.get(start..).unwrap_or_default();
    if body.len() < need {
        return Err(DataError::Truncated {
            what: what.into(),
            expected: start.saturating_add(need),
            got: bytes.len(),
        });
    }
    if body.len() > need {
        return Err(DataError::Shape {
            what: what.into(),
            expected: format!("{need} data bytes for shape {shape:?}"),
            got: format!("{} bytes ({} trailing)", body.len(), body.len() - need),
        });
    }
    Ok(body)
}
