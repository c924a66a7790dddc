//! imreg-eos: the depth-2 linear network theory (Beneventano & Woodworth 2025) and step-size bounds.
//!
//! - [`scalar_net`]: the state (a, b) ∈ Rᵏ × Rᵏ with target Φ and data scale σ², its invariants
//!   (Q, S, D, P, m, λ, ε, aaᵀ − bbᵀ), full Hessian spectrum, exact GD step and width-k → width-1 reduction.
//! - [`gradient_flow`]: the closed-form gradient-flow solution and its limit λ_GF = √(4Φ² + P₀).
//! - [`gd_limit`]: GD to convergence with P_∞ = P₀Π(1 − η²ε_t²)², λ_GD = √(4Φ² + P_∞), rate |1 − ηλ_GD|,
//!   the small-η expansion of λ_GF − λ_GD, regimes, parallel η sweeps.
//! - [`bounds`]: divergence thresholds of GD, heavy ball and Nesterov on quadratics, with simulators.
//! - [`checks`]: the registered theory checks (`eos.*`).
pub mod bounds;
pub mod checks;
pub mod error;
pub mod gd_limit;
pub mod gradient_flow;
pub mod options;
pub mod scalar_net;

pub use bounds::{simulate, Method, QuadOutcome, Quadratic};
pub use checks::checks;
pub use error::{EosError, Result};
pub use gd_limit::{
    classify, gd_trajectory, run_gd, scalar_gd_steps, sweep_eta, GdOutcome, Regime, RegimeReport,
    SmallEtaExpansion, Trajectory,
};
pub use gradient_flow::GfSolution;
pub use options::RunOptions;
pub use scalar_net::{Invariants, ScalarNet, WidthReduction};
