//! Datasets of `imreg run` / `imreg analyze`: seeded generators and `.npy` files.
use crate::config::DataConfig;
use crate::error::{CliError, Result};
use crate::npy::read_npy;
use imreg_objective::rng;
use ndarray::Array2;
use std::path::Path;

/// Stream ids of the master seed (one per purpose, so changing one never shifts another).
pub const STREAM_DATA: u64 = 1;
pub const STREAM_INIT: u64 = 2;
pub const STREAM_BATCHES: u64 = 3;
pub const STREAM_SPECTRUM: u64 = 4;

/// `N` examples: inputs `x` (`N × d`) and targets `y` (`N × outputs`; labels stored as `0.0`, `1.0`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Array2<f64>,
    pub y: Array2<f64>,
}

impl Dataset {
    pub fn n(&self) -> usize {
        self.x.nrows()
    }
    pub fn dim(&self) -> usize {
        self.x.ncols()
    }
}

/// Builds the dataset of `cfg` with master seed `seed`; `file` is the config file (for error messages).
pub fn build(cfg: &DataConfig, seed: u64, file: &Path) -> Result<Dataset> {
    match cfg {
        DataConfig::GaussianLinear { n, dim, noise } => Ok(gaussian(*n, *dim, *noise, seed, false)),
        DataConfig::GaussianLogistic { n, dim, noise } => Ok(gaussian(*n, *dim, *noise, seed, true)),
        DataConfig::Npy { x, y } => from_npy(x, y, file),
    }
}

/// `x_i ~ N(0, I)`, `w* ~ N(0, I/d)`, `s_i = x_iᵀw* + noise ε_i`; `y_i = s_i` or `1[s_i > 0]`.
fn gaussian(n: usize, d: usize, noise: f64, seed: u64, labels: bool) -> Dataset {
    let mut r = rng::stream(seed, STREAM_DATA);
    let x = rng::normal_vec(&mut r, n * d);
    let w: Vec<f64> = rng::normal_vec(&mut r, d)
        .iter()
        .map(|v| v / (d as f64).sqrt())
        .collect();
    let eps = rng::normal_vec(&mut r, n);
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let s = x[i * d..(i + 1) * d]
                .iter()
                .zip(&w)
                .map(|(a, b)| a * b)
                .sum::<f64>()
                + noise * eps[i];
            if labels {
                f64::from(u8::from(s > 0.0))
            } else {
                s
            }
        })
        .collect();
    Dataset {
        x: Array2::from_shape_vec((n, d), x).unwrap_or_default(),
        y: Array2::from_shape_vec((n, 1), y).unwrap_or_default(),
    }
}

fn from_npy(xp: &Path, yp: &Path, file: &Path) -> Result<Dataset> {
    for (p, field) in [(xp, "data.x"), (yp, "data.y")] {
        if !p.exists() {
            return Err(CliError::input(
                file,
                field,
                format!("file {} does not exist", p.display()),
            ));
        }
    }
    let x = read_npy(xp, "data.x")?;
    let y = read_npy(yp, "data.y")?;
    let n = *x
        .shape
        .first()
        .ok_or_else(|| CliError::input(file, "data.x", "is a scalar; expected N × d"))?;
    if n == 0 {
        return Err(CliError::input(file, "data.x", "has no examples (N = 0)"));
    }
    let d = x.data.len() / n;
    let yn = y.shape.first().copied().unwrap_or(1);
    if yn != n {
        return Err(CliError::input(
            file,
            "data.y",
            format!(
                "has {yn} rows but data.x has {n} (shapes {:?} vs {:?})",
                y.shape, x.shape
            ),
        ));
    }
    let c = y.data.len() / n.max(1);
    let bad = |field: &str, what: &[f64]| {
        what.iter()
            .position(|v| !v.is_finite())
            .map(|i| (field.to_string(), i))
    };
    if let Some((field, i)) = bad("data.x", &x.data).or_else(|| bad("data.y", &y.data)) {
        return Err(CliError::input(
            file,
            field,
            format!("non-finite value at flat position {i}"),
        ));
    }
    let shape_err = |f: &str| CliError::input(file, f, "inconsistent shape");
    Ok(Dataset {
        x: Array2::from_shape_vec((n, d), x.data).map_err(|_| shape_err("data.x"))?,
        y: Array2::from_shape_vec((n, c), y.data).map_err(|_| shape_err("data.y"))?,
    })
}
