//! The UCI optical digits (Optical Recognition of Handwritten Digits, the 1797-image copy shipped with
//! scikit-learn), embedded in the binary so it works offline. Source, license and file format:
//! `crates/imreg-objective/data/README.md`.
use super::Classification;
use crate::error::Result;
use ndarray::Array2;

/// Number of images.
pub const DIGITS_N: usize = 1797;
/// Pixels per image (8 × 8).
pub const DIGITS_D: usize = 64;
/// Largest pixel value (pixels are counts of on-pixels in 4 × 4 blocks, `0..=16`).
pub const DIGITS_MAX: u8 = 16;

/// Raw file: 1797 records of 65 bytes, the 64 pixels (row-major 8 × 8, values 0..=16) then the label 0..=9.
pub static DIGITS_RAW: &[u8] = include_bytes!("../../data/digits.u8");

/// The 1797 × 64 digits with features scaled to `[0, 1]` (pixel / 16) and labels `0..10`, in the file's order.
pub fn digits() -> Classification {
    let x = Array2::from_shape_fn((DIGITS_N, DIGITS_D), |(i, j)| {
        f64::from(DIGITS_RAW[i * (DIGITS_D + 1) + j]) / f64::from(DIGITS_MAX)
    });
    let labels = (0..DIGITS_N)
        .map(|i| usize::from(DIGITS_RAW[i * (DIGITS_D + 1) + DIGITS_D]))
        .collect();
    Classification {
        x,
        labels,
        classes: 10,
    }
}

/// [`digits()`] split at random (seeded) into `n_train` training and `1797 − n_train` test images.
pub fn digits_split(n_train: usize, seed: u64) -> Result<(Classification, Classification)> {
    digits().split(n_train, seed)
}
