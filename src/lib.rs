//! imreg: theory-first numerical solvers for the implicit regularization of SGD.
//!
//! This facade re-exports the workspace crates; see the README for the crate map.
pub use imreg_ad as ad;
pub use imreg_check as check;
pub use imreg_eos as eos;
pub use imreg_flow as flow;
pub use imreg_objective as objective;
pub use imreg_plot as plot;
pub use imreg_sgd as sgd;
pub use imreg_spectra as spectra;
pub use imreg_taylor as taylor;
