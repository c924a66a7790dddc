//! imreg-eos
pub mod checks;
pub use checks::checks;
