//! imreg-taylor
pub mod checks;
pub use checks::checks;
