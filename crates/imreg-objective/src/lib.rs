//! The objective layer: a loss that is a **mean over examples**, `C(θ) = (1/N) Σ_i ℓ_i(θ)`, evaluated on any
//! index subset (full batch, minibatch, micro-batch, single example are the same call), with its gradient,
//! exact Hessian-vector products, third-order directional derivatives and per-example gradients.
//!
//! Parameters are one flat `&[f64]`; layer layouts follow PyTorch's `nn.Linear` (weight `[out, in]` row-major,
//! then bias).
pub mod batch;
pub mod error;
pub mod objective;
pub mod partition;
pub mod rng;
pub mod supervised;
pub mod threads;

pub use batch::Batch;
pub use error::{ObjectiveError, Result};
/// Allocator tuning for programs that evaluate objectives in a loop (see [`imreg_ad::alloc`]).
pub use imreg_ad::alloc::{reuse_large_buffers, LargeBlockCache};
pub use objective::{
    check_direction, check_finite, check_len, stream_rows, streamed_hessian, At, HessianAt, Objective,
    RowSink,
};
pub use partition::{Partition, Remainder};
pub use supervised::{argmax_rows, LossKind, Supervised, Targets};
pub mod models;
pub use models::{DeepLinear, LinearRegression, LogisticRegression, Quadratic, ScalarNet};
pub mod data;
