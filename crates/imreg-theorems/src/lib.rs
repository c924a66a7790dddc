//! imreg-theorems: the registered theorem checks and their figures.
//!
//! Every claim that `imreg reproduce` / `imreg verify` measures lives here, one module per topic, so the
//! solver crates stay free of check and plotting code. [`checks()`] lists them in registry order; this
//! crate's tests run every check in quick mode, so a registered check is also a test.
pub mod ad;
pub mod eos;
pub mod eos_cnn;
pub mod eos_mlp;
pub mod flow;
pub mod objective;
pub mod regularizers;
pub mod sgd;
pub mod spectra;
pub mod taylor;

use imreg_check::Check;

/// Every built-in check, in registry order (by topic, then as each module lists them).
pub fn checks() -> Vec<Check> {
    let mut v = Vec::new();
    v.extend(ad::checks());
    v.extend(objective::checks());
    v.extend(spectra::checks());
    v.extend(flow::checks());
    v.extend(sgd::checks());
    v.extend(eos::checks());
    v.extend(taylor::checks());
    v
}
