//! imreg-sgd: trajectories of GD, SGD (with replacement, random reshuffling, fixed partitions), momentum
//! and noise-injected GD; exact expectations of the SGD iterate over batch orders, partitions and
//! with-replacement draws (enumeration with prefix sharing, rayon-parallel with a fixed reduction order),
//! a fast exact path for affine-gradient models, and seeded Monte Carlo with confidence intervals.
pub mod affine;
pub mod error;
pub mod expectation;
pub mod trajectory;

pub use error::{Result, SgdError};
pub mod reg_error;
pub mod regularizers;
pub mod study;
pub mod support;
pub mod without_replacement;
