//! imreg-flow
pub mod checks;
pub use checks::checks;
