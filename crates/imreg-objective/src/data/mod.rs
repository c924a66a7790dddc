//! Datasets: validated containers ([`Regression`], [`Classification`]), seeded synthetic generators
//! ([`synthetic`]), the embedded UCI optical digits ([`digits()`]), the embedded MNIST and Fashion-MNIST
//! subsets checked against their SHA-256 ([`shipped`]), and loaders with typed errors for MNIST IDX
//! ([`idx`]), CIFAR-10 binary batches ([`cifar`]), `.npy` arrays ([`npy`]) and safetensors weights
//! ([`weights`]). Every loader checks its declared sizes with overflow-checked arithmetic against the bytes
//! present before allocating, and caps arrays at [`limits::MAX_VALUES`] values ([`limits`]). See
//! `docs/data.md`.
pub mod cifar;
pub mod digits;
pub mod error;
pub mod idx;
pub mod limits;
pub mod npy;
pub mod shipped;
pub mod synthetic;
pub mod weights;

pub use digits::{digits, digits_split};
pub use error::{DataError, DataResult};
pub use shipped::{Part, ShippedDataset};

use crate::error::{ObjectiveError, Result};
use crate::models::{DeepLinear, LinearRegression, LogisticRegression};
use crate::objective::check_finite;
use crate::rng;
use ndarray::{Array1, Array2, Axis};
use rand::seq::SliceRandom;

/// A regression dataset: inputs `x` (`N × d_in`) and targets `y` (`N × d_out`).
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    pub x: Array2<f64>,
    pub y: Array2<f64>,
}

/// A classification dataset: inputs `x` (`N × d`) and labels in `0..classes`.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    pub x: Array2<f64>,
    pub labels: Vec<usize>,
    pub classes: usize,
}

/// A random permutation of `0..n` from `rng::stream(seed, 0)`, split after `n_train`.
fn split_indices(n: usize, n_train: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if n_train > n {
        return Err(ObjectiveError::invalid(
            "n_train",
            format!("{n_train} exceeds the N = {n} examples"),
        ));
    }
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rng::stream(seed, 0));
    let test = perm.split_off(n_train);
    Ok((perm, test))
}

fn check_indices(ix: &[usize], n: usize) -> Result<()> {
    match ix.iter().find(|&&i| i >= n) {
        Some(&index) => Err(ObjectiveError::IndexOutOfRange { index, n }),
        None => Ok(()),
    }
}

fn check_x(x: &Array2<f64>) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(ObjectiveError::Shape {
            what: "x".into(),
            expected: "N × d with N, d ≥ 1".into(),
            got: format!("{} × {}", x.nrows(), x.ncols()),
        });
    }
    check_finite("x", x.as_standard_layout().as_slice().unwrap_or(&[]))
}

impl Regression {
    /// Errors on empty data, `y.nrows() ≠ x.nrows()`, `y` without columns or a non-finite value.
    pub fn new(x: Array2<f64>, y: Array2<f64>) -> Result<Self> {
        check_x(&x)?;
        if y.nrows() != x.nrows() || y.ncols() == 0 {
            return Err(ObjectiveError::Shape {
                what: "y".into(),
                expected: format!("{} × d_out with d_out ≥ 1", x.nrows()),
                got: format!("{} × {}", y.nrows(), y.ncols()),
            });
        }
        check_finite("y", y.as_standard_layout().as_slice().unwrap_or(&[]))?;
        Ok(Regression { x, y })
    }

    /// Number of examples `N`.
    pub fn n(&self) -> usize {
        self.x.nrows()
    }

    /// The examples `ix` (repetitions allowed), in that order.
    pub fn subset(&self, ix: &[usize]) -> Result<Self> {
        check_indices(ix, self.n())?;
        Ok(Regression {
            x: self.x.select(Axis(0), ix),
            y: self.y.select(Axis(0), ix),
        })
    }

    /// A seeded random split into `n_train` training and `N − n_train` test examples.
    pub fn split(&self, n_train: usize, seed: u64) -> Result<(Self, Self)> {
        let (tr, te) = split_indices(self.n(), n_train, seed)?;
        Ok((self.subset(&tr)?, self.subset(&te)?))
    }

    /// The [`LinearRegression`] on this data (needs `d_out = 1`).
    pub fn linear_regression(&self) -> Result<LinearRegression> {
        if self.y.ncols() != 1 {
            return Err(ObjectiveError::Shape {
                what: "y for linear regression".into(),
                expected: format!("{} × 1", self.n()),
                got: format!("{} × {}", self.y.nrows(), self.y.ncols()),
            });
        }
        LinearRegression::new(self.x.clone(), self.y.column(0).to_owned())
    }

    /// The [`DeepLinear`] network with hidden widths `hidden` on this data.
    pub fn deep_linear(&self, hidden: &[usize], bias: bool) -> Result<DeepLinear> {
        let mut widths = vec![self.x.ncols()];
        widths.extend_from_slice(hidden);
        widths.push(self.y.ncols());
        DeepLinear::new(widths, self.x.clone(), self.y.clone(), bias)
    }
}

impl Classification {
    /// Errors on empty data, `labels.len() ≠ x.nrows()`, `classes = 0`, a label `≥ classes` or non-finite `x`.
    pub fn new(x: Array2<f64>, labels: Vec<usize>, classes: usize) -> Result<Self> {
        check_x(&x)?;
        if labels.len() != x.nrows() {
            return Err(ObjectiveError::Length {
                name: "labels",
                expected: x.nrows(),
                got: labels.len(),
            });
        }
        if classes == 0 {
            return Err(ObjectiveError::invalid("classes", "must be ≥ 1"));
        }
        crate::models::logistic::check_labels(&labels, classes)?;
        Ok(Classification { x, labels, classes })
    }

    /// Number of examples `N`.
    pub fn n(&self) -> usize {
        self.x.nrows()
    }

    /// Number of examples of each class.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(slot) = c.get_mut(l) {
                *slot += 1;
            }
        }
        c
    }

    /// The examples `ix` (repetitions allowed), in that order.
    pub fn subset(&self, ix: &[usize]) -> Result<Self> {
        check_indices(ix, self.n())?;
        Ok(Classification {
            x: self.x.select(Axis(0), ix),
            labels: ix.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
        })
    }

    /// A seeded random split into `n_train` training and `N − n_train` test examples.
    pub fn split(&self, n_train: usize, seed: u64) -> Result<(Self, Self)> {
        let (tr, te) = split_indices(self.n(), n_train, seed)?;
        Ok((self.subset(&tr)?, self.subset(&te)?))
    }

    /// The first `k` examples of each class, in their order here: a class-balanced subset of `k · classes`
    /// examples (a seeded random one when the order is a seeded shuffle, as in the [`shipped`] files). Errors
    /// if `k = 0` or a class has fewer than `k` examples (naming the smallest class).
    pub fn first_per_class(&self, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(ObjectiveError::invalid("per_class", "must be ≥ 1"));
        }
        let counts = self.counts();
        let smallest = counts.iter().enumerate().min_by_key(|&(_, &c)| c);
        if let Some((class, &have)) = smallest.filter(|&(_, &c)| c < k) {
            return Err(ObjectiveError::invalid(
                "per_class",
                format!("{k} exceeds the {have} examples of class {class}"),
            ));
        }
        let mut taken = vec![0; self.classes];
        let ix: Vec<usize> = (0..self.n())
            .filter(|&i| {
                let t = &mut taken[self.labels[i]];
                *t += 1;
                *t <= k
            })
            .collect();
        self.subset(&ix)
    }

    /// One-hot targets `N × classes` (for MSE training on class labels).
    pub fn one_hot(&self) -> Array2<f64> {
        Array2::from_shape_fn((self.n(), self.classes), |(i, c)| {
            f64::from(u8::from(self.labels[i] == c))
        })
    }

    /// The one-hot regression view (`y` = [`Classification::one_hot`]).
    pub fn to_regression(&self) -> Regression {
        Regression {
            x: self.x.clone(),
            y: self.one_hot(),
        }
    }

    /// The [`LogisticRegression`] on this data (needs `classes = 2`).
    pub fn logistic_regression(&self) -> Result<LogisticRegression> {
        if self.classes != 2 {
            return Err(ObjectiveError::invalid(
                "classes",
                format!("logistic regression needs 2, got {}", self.classes),
            ));
        }
        LogisticRegression::new(self.x.clone(), self.labels.clone())
    }
}

/// Column means of `x` (used to center features).
pub fn column_means(x: &Array2<f64>) -> Array1<f64> {
    x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(x.ncols()))
}

/// The examples of `docs/data.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/data.md")]
pub struct DataGuide;
