//! imreg-sgd: one training loop ([`train`]) for GD, SGD (with replacement, random reshuffling, fixed
//! partitions), momentum, noise-injected GD and explicitly regularized SGD, with observers called on a
//! schedule ([`observe`]) and samplers ([`sampler`]); exact expectations of the SGD iterate over batch orders,
//! partitions and with-replacement draws (enumeration with prefix sharing, rayon-parallel with a fixed
//! reduction order), a fast exact path for affine-gradient models, and seeded Monte Carlo with confidence
//! intervals; the explicit regularizers and support learning.
pub mod affine;
pub mod error;
pub mod expectation;
pub mod observe;
pub mod sampler;
pub mod train;
pub mod trajectory;

pub use error::{Result, SgdError};
pub mod reg_error;
pub mod regularizers;
pub mod support;
pub mod without_replacement;

/// The examples of `docs/training.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/training.md")]
pub struct TrainingGuide;
