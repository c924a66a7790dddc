//! Matrix-free spectra of symmetric operators, and the curvature quantities of SGD theory.
//!
//! - [`LinearOperator`] and operators on any batch of an [`imreg_objective::Objective`]: the Hessian
//!   ([`HessianOperator`]), the gradient covariance `K` ([`GradientCovariance`], and its `N × N` Gram route
//!   [`GramCovariance`]), the empirical and true Fisher ([`FisherOperator`]) and the Gauss–Newton matrix
//!   ([`GaussNewtonOperator`]).
//! - Solvers with options and reports: [`lanczos()`] (both ends, full reorthogonalization, `(α, β)` and Ritz
//!   vectors with residual bounds), [`power_iteration`], [`hutchinson`] and [`hutch_plus_plus`], [`slq()`],
//!   and the dense fallback [`dense_eigen`].
//! - The sharpness family ([`sharpness`](mod@sharpness)): `λ_max(H)`, batch sharpness in both published
//!   variants, step sharpness, MiniBS, GNI, IAS, exact over all batches or Monte Carlo, rayon-parallel and
//!   bitwise deterministic; `λ_K¹`, `Tr K`, `Tr F`.
pub mod block;
pub mod dense;
pub mod diagonal;
pub mod error;
pub mod estimate;
pub mod lanczos;
pub mod operator;
pub mod operators;
pub mod power;
pub mod sharpness;
pub mod slq;
pub mod trace;
mod vector;

pub use block::PrincipalBlock;
pub use dense::{dense_eigen, dense_matrix, symmetric_eigen, tridiagonal_eigen, DenseEigen, DenseOptions};
pub use diagonal::{exact_diagonal, hutchinson_diagonal, Diagonal};
pub use error::{Result, SpectraError};
pub use estimate::{Estimate, Estimator};
pub use lanczos::{lanczos, ritz_values, LanczosOptions, LanczosReport, LanczosResult, RitzPair, StopRule};
pub use operator::{
    apply_checked, apply_vec, Affine, Deflated, DenseOperator, FnOperator, LinearOperator, Sum,
};
pub use operators::*;
pub use power::{power_iteration, PowerOptions, PowerPair, PowerResult};
pub use sharpness::*;
pub use slq::{slq, ProbeKind, SlqOptions, SlqProbe, SpectralDensity};
pub use trace::{
    exact_trace, hutch_plus_plus, hutchinson, hutchinson_with_probes, TraceEstimate, TraceOptions,
};
/// The flat-slice kernels the solvers sum with (fixed order), for callers that report distances and norms.
pub use vector::{axpy, dist, dot, norm};
