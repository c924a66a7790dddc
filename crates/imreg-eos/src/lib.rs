//! imreg-eos: the depth-2 linear network theory (Beneventano & Woodworth 2025) and step-size bounds.
//!
//! - [`scalar_net`]: the state (a, b) ∈ Rᵏ × Rᵏ with target Φ and data scale σ², its invariants
//!   (Q, S, D, P, m, λ, ε, aaᵀ − bbᵀ), full Hessian spectrum, exact GD step and width-k → width-1 reduction.
//! - [`gradient_flow`]: the closed-form gradient-flow solution and its limit λ_GF = √(4Φ² + P₀).
//! - [`gd_limit`]: GD to convergence with P_∞ = P₀Π(1 − η²ε_t²)², λ_GD = √(4Φ² + P_∞), rate |1 − ηλ_GD|,
//!   the small-η expansion of λ_GF − λ_GD, regimes, parallel η sweeps.
//! - [`bounds`]: divergence thresholds of GD, heavy ball and Nesterov on quadratics, with simulators.
//! - [`tracking`]: what the studies below add to the observers of `imreg-sgd`'s one training loop (the loss
//!   curve with its divergence threshold, hover statistics around `2/η`, their reshuffling convention).
//! - [`edge_of_stability`](mod@edge_of_stability): Cohen et al.'s edge of stability on a tanh MLP (digits, ½-MSE), with gradient flow
//!   (DOP853) alongside at t = ηk.
//! - [`mnist_cnn`]: Cohen et al.'s CNN presets on a class-balanced subset of the shipped MNIST digits.
//! - [`stochastic_stability`]: the edge of stochastic stability (batch sharpness, MiniBS, λ_max under SGD).
//! - [`break_even`](mod@break_even): λ_H¹, λ_K¹, Tr K, Tr F along GD/SGD (Jastrzębski et al.'s break-even point).
//! - the registered theory checks (`eos.*`) live in `imreg-theorems`.
pub mod bounds;
pub mod break_even;
pub mod edge_of_stability;
pub mod error;
pub mod gd_limit;
pub mod gradient_flow;
pub mod mnist_cnn;
pub mod options;
pub mod scalar_net;
pub mod stochastic_stability;
pub mod tracking;

pub use bounds::{simulate, Method, QuadOutcome, QuadraticForm};
pub use break_even::{
    break_even, conjecture_one, sweep_break_even, BreakEvenOptions, BreakEvenPoint, BreakEvenRun,
};
pub use edge_of_stability::{
    edge_of_stability, sweep_edge_of_stability, DigitsMlp, EosOptions, EosRun, GfComparison, GfHorizon,
    GfOptions,
};
pub use error::{EosError, Result};
pub use gd_limit::{
    classify, gd_trajectory, run_gd, scalar_gd_steps, sweep_eta, GdOutcome, Regime, RegimeReport,
    SmallEtaExpansion, Trajectory,
};
pub use gradient_flow::GfSolution;
pub use options::RunOptions;
pub use scalar_net::{Invariants, ScalarNetState, WidthReduction};
pub use stochastic_stability::{
    edge_of_stochastic_stability, sweep_edge_of_stochastic_stability, EossMeasurement, EossOptions, EossRun,
    MiniBsOptions,
};
pub use tracking::{
    epoch_stream_reshuffling, step_seed, Hover, LossCurve, RunOutcome, SharpnessProbe, TopEigen, TrackError,
    TrackResult,
};
