//! # imreg-taylor — small-learning-rate expansions of SGD (Tenka), corrected and checked
//!
//! Tenka's "SGD at small learning rates" expands SGD's expected **test** loss in powers of `η`. This crate
//! evaluates each prediction from a distribution over per-example losses and checks it against exact
//! enumeration, Gauss–Hermite quadrature or seeded Monte Carlo (theory: `docs/theory/tenka.md`).
//!
//! * [`landscape::Landscape`]: a per-example loss `l_x(θ)` with hand-written derivatives up to third order;
//!   [`landscape::DataDist`] (finite support or `N(0, I)`) and [`landscape::Integration`] (exact,
//!   quadrature, Monte Carlo). The toys of the theory page in [`landscapes`].
//! * [`tensors::population_tensors`]: `G, H, J, C, S, ∇trC` at `θ₀`.
//! * [`predictions`]: the order-η² law, SGD − GD, the **corrected** epochs corollary, the valley drift,
//!   the skewness correction (sign: minus), MeanEstimation overfitting / gap / TIC; [`sde`]: SGD vs the
//!   Itô SDE (first difference at η³, **not** η² as Cor vsode suggests).
//! * [`exact::exact_expectation`]: all training sets × all reshuffles for small finite problems.
//! * the registered theorem checks (`taylor.*`) live in `imreg-theorems`.
//!
//! ```
//! use imreg_taylor::prelude::*;
//! let toy = RademacherToy::reference();
//! let dist = toy.distribution();
//! let sched = Schedule::new(3, 1, 3).unwrap();
//! let t = population_tensors(&toy, &dist, Integration::Exact, &[1.0]).unwrap();
//! let eta = 0.005;
//! let exact = exact_expectation(&toy, &dist, &[1.0], &sched, eta, ExactParams::default()).unwrap();
//! let pred = test_loss_expansion(&t, &sched, eta).unwrap().through(2);
//! assert!(((exact.test_loss - pred) / eta.powi(3) + 18.9).abs() < 0.1); // residual/η³ ≈ −18.9
//! ```
pub mod error;
pub mod exact;
pub mod landscape;
pub mod landscapes;
pub mod objective_landscape;
pub mod predictions;
pub mod quadrature;
pub mod schedule;
pub mod sde;
pub mod simulate;
pub mod tensor;
pub mod tensors;

pub use error::{Result, TaylorError};

/// The commonly used items.
pub mod prelude {
    pub use crate::error::{Result, TaylorError};
    pub use crate::exact::{exact_expectation, ExactParams, ExactReport};
    pub use crate::landscape::{DataDist, FiniteDist, Integration, Landscape, Measure};
    pub use crate::landscapes::{GaussLandscape, Helix, QuadraticNoise, RademacherToy};
    pub use crate::predictions::{
        epochs_displacement, overfit_gd, sgd_minus_gd, skewness_correction, test_loss_expansion, valley_drift,
    };
    pub use crate::schedule::Schedule;
    pub use crate::tensors::{population_tensors, PopulationTensors};
}
