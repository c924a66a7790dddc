//! imreg-spectra
pub mod checks;
pub use checks::checks;
