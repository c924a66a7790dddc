//! Theorem checks registered in the `reproduce` / `verify` registry.
use imreg_check::Check;

/// The checks this crate registers.
pub fn checks() -> Vec<Check> {
    Vec::new()
}
