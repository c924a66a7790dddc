//! imreg: theory-first numerical solvers for the implicit regularization of SGD.
//!
//! This facade re-exports the workspace crates; see the README for the crate map. A crate with theorem
//! checks of its own runs them next to the built-in ones with [`main_with`] (see `docs/checks.md`).
pub use imreg_ad as ad;
pub use imreg_check as check;
pub use imreg_cli as cli;
pub use imreg_cli::main_with;
pub use imreg_eos as eos;
pub use imreg_flow as flow;
pub use imreg_objective as objective;
pub use imreg_plot as plot;
pub use imreg_sgd as sgd;
pub use imreg_spectra as spectra;
pub use imreg_taylor as taylor;
pub use imreg_theorems as theorems;

/// The examples of `docs/checks.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/checks.md")]
pub struct ChecksGuide;
