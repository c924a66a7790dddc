//! `imreg-ad`: reverse-mode tensor autodiff on f64 matrices, with exact Hessian-vector products,
//! gradients of functions of gradients, third-order directional derivatives and a `check_grads` utility.
//!
//! * [`Graph`] records tensor operations (matmul, bias add, elementwise arithmetic and activations,
//!   reductions, MSE with an explicit ½, fused softmax cross-entropy, log-softmax) and runs the reverse pass.
//! * The tape is generic over its value type ([`Tensor`]): on [`Mat`] it is reverse mode; on [`Dual<Mat>`] it
//!   is forward-over-reverse, so [`hvp`] is the gradient computed on dual numbers; on `Dual<Dual<Mat>>` it gives
//!   [`third_order`] derivatives. See `docs/autodiff.md` for why this design was chosen.
//! * The op set is open: a [`Primitive`] keeps an op's forward, JVP and VJP rules in one `impl` and joins the
//!   tape through [`Graph::apply`]. The layers of convolutional networks are primitives: [`conv`], [`pool`],
//!   [`norm`], [`activation`] and [`layout`] (NCHW activations, one example per row).
//! * [`check_grads`] checks any [`Differentiable`] map against central differences and the dot-product identity.
pub mod activation;
pub mod alloc;
pub mod check;
pub mod conv;
pub mod dual;
pub mod error;
pub mod fastmath;
pub mod graph;
pub mod layout;
pub mod matmul;
pub mod nn;
pub mod norm;
pub mod pool;
pub mod primitive;
pub mod program;
pub mod tensor;

pub use check::{check_grads, CheckGradsOptions, CheckGradsReport, Differentiable, GradientMap, ScalarFn};
pub use conv::Conv2d;
pub use dual::{add_opt, Dual};
pub use error::{AdError, Result};
pub use fastmath::first_non_finite;
pub use graph::{Graph, Unary, Var};
pub use layout::{Concat, Image};
pub use nn::Dense;
pub use norm::BatchNormMode;
pub use pool::Pool2d;
pub use primitive::{DynPrimitive, Primitive};
pub use program::{
    dense_hessian_forward, flatten, flatten_into, grad, grad_acc, grad_hvp, grad_into,
    grad_of_block_grad_norm, grad_of_grad_fn, hvp, hvp_acc, jvp, linearize, per_example_grads_acc,
    per_example_grads_into, per_example_supported, third_order, unflatten, value, value_at, Linearized,
    Point, Program,
};
pub use tensor::{Mat, Tensor};

/// The examples of `docs/autodiff.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/autodiff.md")]
pub struct AutodiffGuide;
