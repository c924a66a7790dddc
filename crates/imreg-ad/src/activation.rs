//! Parametrized activations as [`Primitive`]s (the parameter-free ones are [`crate::Unary`] functions with
//! fused kernels): PyTorch's `nn.LeakyReLU(α)` and `nn.ELU(α)`.
//!
//! Both are written with the constant mask `m = 1[x > 0]` of the innermost primal value, so they are piecewise
//! smooth and their higher derivatives are those of the active piece (as in PyTorch and JAX):
//!
//! * leaky ReLU: `y = x (m + α(1 − m))`, `y' = m + α(1 − m)`, `y'' = 0`;
//! * ELU: `y = x m + α(e^{x(1 − m)} − 1)`, `y' = m + α e^{x}(1 − m)`, `y'' = α e^{x}(1 − m)`. The exponent
//!   `x(1 − m)` is `min(x, 0)`, so large positive inputs never overflow.
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::primitive::{expect_inputs, Primitive};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug)]
enum Piecewise {
    LeakyRelu { slope: f64 },
    Elu { alpha: f64 },
}

impl Piecewise {
    /// `y'(x)`, through tensor ops (differentiable again on dual values).
    fn slope<T: Tensor>(&self, x: &T) -> T {
        let m = x.step();
        match *self {
            Piecewise::LeakyRelu { slope } => m.affine(1.0 - slope, slope),
            Piecewise::Elu { alpha } => {
                let off = m.affine(-1.0, 1.0);
                m.add(&x.mul(&off).exp().mul(&off).affine(alpha, 0.0))
            }
        }
    }
}

impl Primitive for Piecewise {
    fn name(&self) -> &'static str {
        match self {
            Piecewise::LeakyRelu { .. } => "leaky_relu",
            Piecewise::Elu { .. } => "elu",
        }
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        expect_inputs(self.name(), inputs, 1)?;
        Ok(inputs[0])
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        let x = x[0];
        match *self {
            Piecewise::LeakyRelu { .. } => x.mul(&self.slope(x)),
            Piecewise::Elu { alpha } => {
                let m = x.step();
                let neg = x.mul(&m.affine(-1.0, 1.0));
                x.mul(&m).add(&neg.exp().affine(alpha, -alpha))
            }
        }
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        dx[0].map(|d| d.mul(&self.slope(x[0])))
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, _wants: &[bool]) -> Vec<Option<T>> {
        vec![Some(g.mul(&self.slope(x[0])))]
    }
}

fn check_param(what: &'static str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(AdError::NonFinite {
            what,
            index: 0,
            value: v,
        });
    }
    Ok(())
}

impl<T: Tensor> Graph<T> {
    /// PyTorch's `nn.LeakyReLU(slope)`: `x` for `x > 0`, `slope · x` otherwise (see [`crate::activation`]).
    pub fn leaky_relu(&mut self, x: Var, slope: f64) -> Result<Var> {
        check_param("leaky ReLU slope", slope)?;
        self.apply(Piecewise::LeakyRelu { slope }, &[x])
    }

    /// PyTorch's `nn.ELU(alpha)`: `x` for `x > 0`, `α(eˣ − 1)` otherwise (see [`crate::activation`]).
    pub fn elu(&mut self, x: Var, alpha: f64) -> Result<Var> {
        check_param("ELU alpha", alpha)?;
        self.apply(Piecewise::Elu { alpha }, &[x])
    }
}
