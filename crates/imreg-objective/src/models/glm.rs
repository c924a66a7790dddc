//! Generalized linear models: `ℓ_i(θ) = ψ(z_i, y_i)` with `z_i = x_iᵀθ`, the shared core of
//! [`LinearRegression`](super::LinearRegression) and [`LogisticRegression`](super::LogisticRegression).
//!
//! With `ψ', ψ'', ψ'''` the `z`-derivatives: `∇ℓ_i = ψ' x_i`, `H_i v = ψ'' (x_iᵀv) x_i` and
//! `T3_i[u, v] = ψ''' (x_iᵀu)(x_iᵀv) x_i`.
use super::common::{chunked_sum, dot, per_example_driver};
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::objective::{check_finite, At, Objective, RowSink};
use ndarray::Array2;
use std::marker::PhantomData;

/// A per-example loss `ψ(z, y)` of the linear predictor `z`.
pub trait ScalarLoss: Send + Sync + Clone + std::fmt::Debug {
    /// Name with its convention, e.g. "linreg (½ MSE)".
    const NAME: &'static str;
    /// `[ψ, ∂ψ/∂z, ∂²ψ/∂z², ∂³ψ/∂z³]` at `(z, y)`.
    fn derivs(z: f64, y: f64) -> [f64; 4];
}

/// `ψ(z, y) = ½ (z − y)²`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HalfSquaredError;

impl ScalarLoss for HalfSquaredError {
    const NAME: &'static str = "linreg (½ MSE)";
    #[inline]
    fn derivs(z: f64, y: f64) -> [f64; 4] {
        let r = z - y;
        [0.5 * r * r, r, 1.0, 0.0]
    }
}

/// `ψ(z, y) = softplus(z) − y z` (binary cross-entropy on the logit `z`, `y ∈ {0, 1}`), evaluated stably:
/// `softplus(z) = max(z, 0) + ln(1 + e^{−|z|})`, `σ(z)` without overflow.
#[derive(Clone, Copy, Debug, Default)]
pub struct BinaryLogistic;

/// `σ(z) = 1/(1 + e^{−z})`, without overflow for large `|z|`.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `softplus(z) = ln(1 + e^z)`, without overflow or cancellation.
#[inline]
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

impl ScalarLoss for BinaryLogistic {
    const NAME: &'static str = "logreg (binary cross-entropy)";
    #[inline]
    fn derivs(z: f64, y: f64) -> [f64; 4] {
        let s = sigmoid(z);
        let s1 = s * (1.0 - s);
        [softplus(z) - y * z, s - y, s1, s1 * (1.0 - 2.0 * s)]
    }
}

/// `C_B(θ) = (1/|B|) Σ_{i∈B} ψ(x_iᵀθ, y_i)` with `θ ∈ R^d` (no bias term: append a column of ones to `x`
/// for one).
#[derive(Clone, Debug)]
pub struct Glm<L: ScalarLoss> {
    /// `N × d`, standard (row-major) layout.
    pub(crate) x: Array2<f64>,
    /// Targets as reals (labels `0.0` / `1.0` for logistic regression).
    pub(crate) y: Vec<f64>,
    _loss: PhantomData<L>,
}

impl<L: ScalarLoss> Glm<L> {
    /// Validates shapes (`x` is `N × d` with `N, d ≥ 1`, `y` has length `N`) and finiteness.
    pub(crate) fn build(x: Array2<f64>, y: Vec<f64>) -> Result<Self> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(ObjectiveError::Shape {
                what: "x".into(),
                expected: "N × d with N ≥ 1, d ≥ 1".into(),
                got: format!("{n} × {d}"),
            });
        }
        if y.len() != n {
            return Err(ObjectiveError::Shape {
                what: "y (one target per row of x)".into(),
                expected: n.to_string(),
                got: y.len().to_string(),
            });
        }
        let x = x.as_standard_layout().into_owned();
        check_finite("x", x.as_slice().unwrap_or(&[]))?;
        check_finite("y", &y)?;
        Ok(Glm {
            x,
            y,
            _loss: PhantomData,
        })
    }

    /// The design matrix `x` (`N × d`).
    pub fn x(&self) -> &Array2<f64> {
        &self.x
    }

    /// Row `i` of `x` as a slice.
    #[inline]
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        let d = self.x.ncols();
        // `x` is stored in standard layout (see `build`), so the whole matrix is one slice.
        let all = self.x.as_slice().unwrap_or(&[]);
        &all[i * d..(i + 1) * d]
    }

    /// `(Σ_B ψ, Σ_B ψ' x_i)` with target `y(position, index)`.
    pub(crate) fn sum_loss_grad(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        y: &(dyn Fn(usize, usize) -> f64 + Sync),
    ) -> Result<(f64, Vec<f64>)> {
        chunked_sum(batch, self.x.nrows(), self.x.ncols(), |start, ix, s, acc| {
            for (r, &i) in ix.iter().enumerate() {
                let xi = self.row(i);
                let d = L::derivs(dot(xi, theta), y(start + r, i));
                *s += d[0];
                acc.iter_mut().zip(xi).for_each(|(a, x)| *a += d[1] * x);
            }
            Ok(())
        })
    }

    /// `z_i = x_iᵀθ` for the batch, in batch order.
    pub(crate) fn logits(&self, theta: &[f64], batch: Batch<'_>) -> Vec<f64> {
        batch
            .iter(self.x.nrows())
            .map(|i| dot(self.row(i), theta))
            .collect()
    }

    /// Output VJP `Σ_k u_{k,column} x_{B_k}` of a model with `classes` outputs of which only `column` is the
    /// linear predictor (the others are constant).
    pub(crate) fn linear_output_vjp(
        &self,
        batch: Batch<'_>,
        u: ndarray::ArrayView2<'_, f64>,
        out: &mut [f64],
        (classes, column, model): (usize, usize, &str),
    ) -> Result<()> {
        let nb = batch.len(self.n_examples());
        let u = super::common::value_targets(crate::Targets::Values(u), nb, classes, model)?;
        let w: Vec<f64> = u.column(column).to_vec();
        self.vjp(batch, &w, out)
    }

    /// `Σ_k w_k x_{B_k}` (the output VJP of the linear predictor).
    pub(crate) fn vjp(&self, batch: Batch<'_>, w: &[f64], out: &mut [f64]) -> Result<()> {
        let (_, g) = chunked_sum(batch, self.x.nrows(), self.x.ncols(), |start, ix, _, acc| {
            for (r, &i) in ix.iter().enumerate() {
                let wk = w[start + r];
                acc.iter_mut().zip(self.row(i)).for_each(|(a, x)| *a += wk * x);
            }
            Ok(())
        })?;
        out.copy_from_slice(&g);
        Ok(())
    }
}

impl<L: ScalarLoss> Objective for Glm<L> {
    fn name(&self) -> String {
        format!("{} (N = {}, d = {})", L::NAME, self.x.nrows(), self.x.ncols())
    }

    fn dim(&self) -> usize {
        self.x.ncols()
    }

    fn n_examples(&self) -> usize {
        self.x.nrows()
    }

    fn loss_at(&self, at: At<'_>) -> Result<f64> {
        let At { theta, batch } = at;
        let (s, _) = chunked_sum(batch, self.x.nrows(), 0, |_, ix, s, _| {
            for &i in ix {
                *s += L::derivs(dot(self.row(i), theta), self.y[i])[0];
            }
            Ok(())
        })?;
        Ok(s / batch.len(self.x.nrows()) as f64)
    }

    fn loss_grad_at(&self, at: At<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let nb = batch.len(self.x.nrows()) as f64;
        let (s, g) = self.sum_loss_grad(theta, batch, &|_, i| self.y[i])?;
        grad.iter_mut().zip(&g).for_each(|(o, x)| *o = x / nb);
        Ok(s / nb)
    }

    fn hvp_at(&self, at: At<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        let nb = batch.len(self.x.nrows()) as f64;
        let (_, hv) = chunked_sum(batch, self.x.nrows(), self.dim(), |_, ix, _, acc| {
            for &i in ix {
                let xi = self.row(i);
                let d = L::derivs(dot(xi, theta), self.y[i]);
                let w = d[2] * dot(xi, v);
                acc.iter_mut().zip(xi).for_each(|(a, x)| *a += w * x);
            }
            Ok(())
        })?;
        out.iter_mut().zip(&hv).for_each(|(o, x)| *o = x / nb);
        Ok(())
    }

    fn third_order_at(&self, at: At<'_>, u: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        let nb = batch.len(self.x.nrows()) as f64;
        let (_, t) = chunked_sum(batch, self.x.nrows(), self.dim(), |_, ix, _, acc| {
            for &i in ix {
                let xi = self.row(i);
                let d = L::derivs(dot(xi, theta), self.y[i]);
                let w = d[3] * dot(xi, u) * dot(xi, v);
                acc.iter_mut().zip(xi).for_each(|(a, x)| *a += w * x);
            }
            Ok(())
        })?;
        out.iter_mut().zip(&t).for_each(|(o, x)| *o = x / nb);
        Ok(())
    }

    fn per_example_grads_at(&self, at: At<'_>, chunk: usize, sink: &mut RowSink<'_>) -> Result<()> {
        let At { theta, batch } = at;
        per_example_driver(
            batch,
            self.x.nrows(),
            self.dim(),
            chunk,
            |ix, mut rows, _zeroed| {
                for (r, &i) in ix.iter().enumerate() {
                    let xi = self.row(i);
                    let g = L::derivs(dot(xi, theta), self.y[i])[1];
                    rows.row_mut(r).iter_mut().zip(xi).for_each(|(o, x)| *o = g * x);
                }
                Ok(())
            },
            sink,
        )
    }
}
