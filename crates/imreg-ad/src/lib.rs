//! imreg-ad
pub mod checks;
pub use checks::checks;
