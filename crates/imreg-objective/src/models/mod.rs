//! The models. The closed-form ones have hand-written exact derivatives (loss, gradient, HVP, third-order
//! directional derivative, fast per-example gradients); every network — the MLP, the deep linear network,
//! any [`network::Network`] built from a [`spec`] or a [`presets`] name — is differentiated by `imreg-ad`
//! through [`network::NetworkObjective`]:
//!
//! | model | per-example loss `ℓ_i(θ)` | `p` | derivatives |
//! |---|---|---|---|
//! | [`Quadratic`] | `½ θᵀA_iθ + b_iᵀθ` | `p` | closed form |
//! | [`LinearRegression`] | `½ (x_iᵀθ − y_i)²` | `d` | closed form |
//! | [`LogisticRegression`] | `softplus(x_iᵀθ) − y_i x_iᵀθ` | `d` | closed form |
//! | [`ScalarNet`] | `½ (aᵀb x_i − y_i)²`, `θ = (a, b)` | `2k` | closed form |
//! | [`DeepLinear`] | `½ ‖W_L⋯W_1 x_i (+ biases) − y_i‖²` | `Σ_ℓ d_ℓ(d_{ℓ−1} + 1_bias)` | imreg-ad |
//! | [`Mlp`], spec networks | the [`loss`] of the network's output | its parameters | imreg-ad |
//! | [`LogCoshQuartic`] (toy) | `log cosh(a_iᵀθ − c_i) + (β_i/4) Σ_j θ_j⁴` | `p` | closed form |
//! | [`PerExampleQuadratic`] (toy) | `½ θᵀA_iθ − b_iᵀθ (+ c_i)` | `p` | closed form |
//!
//! ```
//! use imreg_objective::{Batch, Objective, ScalarNet};
//! // ½(aᵀb − Φ)² with k = 2, Φ = 1, at the minimum a = b = (1/√2, 1/√2): sharpness = ‖a‖² + ‖b‖² = 2
//! let net = ScalarNet::new(2, 1.0)?;
//! let s = 0.5f64.sqrt();
//! let theta = [s, s, s, s];
//! assert!(net.grad(&theta, Batch::Full)?.iter().all(|g| g.abs() < 1e-15));
//! assert!((net.sharpness(&theta)? - 2.0).abs() < 1e-14);
//! # Ok::<(), imreg_objective::ObjectiveError>(())
//! ```
//!
//! Every loss is a mean over the batch. Batches are processed in fixed chunks (see [`common`]), so results
//! are bitwise identical at any thread count.
pub mod common;
pub mod deep_linear;
pub mod glm;
pub mod linreg;
pub mod logistic;
pub mod loss;
pub mod mlp;
pub mod network;
pub mod presets;
pub mod quadratic;
pub mod scalar_net;
pub mod spec;
pub mod toy;

pub use deep_linear::DeepLinear;
pub use glm::{sigmoid, softplus, BinaryLogistic, Glm, HalfSquaredError, ScalarLoss};
pub use linreg::LinearRegression;
pub use logistic::LogisticRegression;
pub use loss::{ChunkTargets, Loss, StandardLoss, LOSS_NAMES};
pub use mlp::{Activation, Mlp, MlpSpec};
pub use network::{
    Network, NetworkObjective, Parameter, TapePlan, TargetData, HEAVY_CHUNK_BYTES, PREPARED_HESSIAN_BYTES,
};
pub use presets::{preset, preset_default, PresetInfo, PRESETS};
pub use quadratic::Quadratic;
pub use scalar_net::ScalarNet;
pub use spec::{
    read_state_dict, write_state_dict, BatchNormStats, LayerSpec, NetworkSpec, Size2, SpecError, SpecNetwork,
};
pub use toy::{LogCoshQuartic, PerExampleQuadratic};
