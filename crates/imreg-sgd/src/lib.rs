//! imreg-sgd
pub mod checks;
pub use checks::checks;
