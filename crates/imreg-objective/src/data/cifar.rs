//! CIFAR-10 binary batches (`data_batch_*.bin`, `test_batch.bin`): records of 3073 bytes, a label byte
//! `0..=9` then 3072 pixel bytes, channel-major (`R`, `G`, `B` planes of 32 × 32, row-major).
use super::error::{read_file, DataError, DataResult};
use super::limits::extent;
use super::Classification;
use ndarray::Array2;
use std::path::Path;

/// Pixels per image (3 × 32 × 32).
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;
/// Bytes per record (label + pixels).
pub const CIFAR_RECORD: usize = CIFAR_PIXELS + 1;

/// Parses one batch: `N × 3072` pixels scaled to `[0, 1]` (byte / 255) in the file's channel-major order,
/// and the labels. Errors on an empty buffer, a length that is not a multiple of 3073 (ragged or truncated
/// file), more than [`MAX_VALUES`](super::limits::MAX_VALUES) pixels, or a label `≥ 10`.
pub fn parse_cifar10(bytes: &[u8], what: &str) -> DataResult<(Array2<f64>, Vec<usize>)> {
    if bytes.len() < CIFAR_RECORD {
        return Err(DataError::Truncated {
            what: what.into(),
            expected: CIFAR_RECORD,
            got: bytes.len(),
        });
    }
    if !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(DataError::Ragged {
            what: what.into(),
            len: bytes.len(),
            record: CIFAR_RECORD,
        });
    }
    let n = bytes.len() / CIFAR_RECORD;
    extent(&[n, CIFAR_PIXELS], 1, what)?;
    let mut labels = Vec::with_capacity(n);
    let mut x = Vec::with_capacity(n * CIFAR_PIXELS);
    for (index, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        let l = rec[0];
        if l >= 10 {
            return Err(DataError::Value {
                what: what.into(),
                index,
                value: l.to_string(),
                reason: "CIFAR-10 labels are 0..=9".into(),
            });
        }
        labels.push(usize::from(l));
        x.extend(rec[1..].iter().map(|&b| f64::from(b) / 255.0));
    }
    let x =
        Array2::from_shape_vec((n, CIFAR_PIXELS), x).map_err(|e| DataError::Other(format!("{what}: {e}")))?;
    Ok((x, labels))
}

/// Reads one CIFAR-10 batch file of at most [`MAX_FILE_BYTES`](super::limits::MAX_FILE_BYTES) bytes (see
/// [`parse_cifar10`]).
pub fn read_cifar10(path: impl AsRef<Path>) -> DataResult<(Array2<f64>, Vec<usize>)> {
    let path = path.as_ref();
    parse_cifar10(&read_file(path)?, &path.display().to_string())
}

/// Reads and concatenates CIFAR-10 binary batches into a 10-class [`Classification`]; the batches together
/// are capped at [`MAX_VALUES`](super::limits::MAX_VALUES) pixels.
pub fn load_cifar10<P: AsRef<Path>>(paths: &[P]) -> DataResult<Classification> {
    let mut xs = Vec::new();
    let mut labels = Vec::new();
    for p in paths {
        let (x, l) = read_cifar10(p)?;
        xs.push(x);
        labels.extend(l);
        extent(&[labels.len(), CIFAR_PIXELS], 1, "CIFAR-10 batches together")?;
    }
    if xs.is_empty() {
        return Err(DataError::Other("load_cifar10: no batch file given".into()));
    }
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    let x = ndarray::concatenate(ndarray::Axis(0), &views).map_err(|e| DataError::Other(e.to_string()))?;
    Ok(Classification::new(x, labels, 10)?)
}
