//! The `Objective` trait: a mean-over-examples loss with exact derivatives on any batch.
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use nalgebra::DMatrix;
use ndarray::ArrayView2;

/// A loss with per-example structure, `C_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ)`.
///
/// Every method takes the batch explicitly, so full batch, minibatch, micro-batch and per-example calls are
/// the same call. Implementations validate their inputs (parameter length, batch indices, non-finite values)
/// and return typed errors; they never panic on bad input.
///
/// Derivatives are exact: hand-written for the closed-form models, through `imreg-ad` for networks.
pub trait Objective: Send + Sync {
    /// A short human-readable name, with the loss convention (e.g. "linreg (½ MSE)").
    fn name(&self) -> String;
    /// Number of parameters `p`.
    fn dim(&self) -> usize;
    /// Number of examples `N`.
    fn n_examples(&self) -> usize;

    /// `C_B(θ)`, the mean loss over the batch.
    fn loss(&self, theta: &[f64], batch: Batch<'_>) -> Result<f64>;

    /// Writes `∇C_B(θ)` into `grad` (length `p`) and returns `C_B(θ)`.
    fn loss_grad(&self, theta: &[f64], batch: Batch<'_>, grad: &mut [f64]) -> Result<f64>;

    /// Writes the Hessian-vector product `H_B(θ) v` into `out`.
    fn hvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64], out: &mut [f64]) -> Result<()>;

    /// Writes the third-order directional derivative `T3_B[u, v] = ∇_θ (uᵀ H_B(θ) v)`, i.e.
    /// `Σ_jk ∂³C_B/∂θ_i∂θ_j∂θ_k u_j v_k`, into `out`.
    fn third_order(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: &[f64],
        v: &[f64],
        out: &mut [f64],
    ) -> Result<()>;

    /// Streams the per-example gradients `∇ℓ_i(θ)` of the batch's examples, in batch order, in chunks of at
    /// most `chunk` rows: `sink(start, rows)` receives the gradients of batch positions
    /// `start..start + rows.nrows()` as the rows of a `rows × p` view. The full `|B| × p` matrix is never
    /// materialized unless the sink stores it.
    ///
    /// The default calls [`Objective::loss_grad`] on single-example batches; models override it with a
    /// faster path.
    fn per_example_grads(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        chunk: usize,
        sink: &mut dyn FnMut(usize, ArrayView2<'_, f64>) -> Result<()>,
    ) -> Result<()> {
        let n = self.n_examples();
        batch.validate(n)?;
        stream_rows(batch.len(n), self.dim(), chunk, sink, |k, row| {
            self.loss_grad(theta, Batch::Indices(&[batch.index(k)]), row)
                .map(drop)
        })
    }

    /// `H_B(θ)` as a map prepared once for many HVPs at the same point and batch (Lanczos, power iteration,
    /// trace probes), JAX's `linearize(grad(C_B), θ)`. `θ` and the batch are validated here. The default
    /// calls [`Objective::hvp`] each time; networks override it so that the primal forward pass runs once
    /// ([`imreg_ad::Linearized`]).
    fn hessian_at<'a>(&'a self, theta: &'a [f64], batch: Batch<'a>) -> Result<Box<dyn HessianAt + 'a>> {
        streamed_hessian(self, theta, batch)
    }

    // ---- provided conveniences -------------------------------------------------------------------------

    /// `∇C_B(θ)` as a new vector.
    fn grad(&self, theta: &[f64], batch: Batch<'_>) -> Result<Vec<f64>> {
        let mut g = vec![0.0; self.dim()];
        self.loss_grad(theta, batch, &mut g)?;
        Ok(g)
    }

    /// `H_B(θ) v` as a new vector.
    fn hvp_vec(&self, theta: &[f64], batch: Batch<'_>, v: &[f64]) -> Result<Vec<f64>> {
        let mut out = vec![0.0; self.dim()];
        self.hvp(theta, batch, v, &mut out)?;
        Ok(out)
    }

    /// The dense Hessian `H_B(θ)`, assembled from `p` HVPs against the unit vectors and symmetrized.
    /// Meant for small `p` (oracles, dense fallbacks).
    fn dense_hessian(&self, theta: &[f64], batch: Batch<'_>) -> Result<DMatrix<f64>> {
        let p = self.dim();
        let mut h = DMatrix::<f64>::zeros(p, p);
        let mut e = vec![0.0; p];
        let mut col = vec![0.0; p];
        for j in 0..p {
            e[j] = 1.0;
            self.hvp(theta, batch, &e, &mut col)?;
            e[j] = 0.0;
            for i in 0..p {
                h[(i, j)] = col[i];
            }
        }
        Ok((&h + h.transpose()) * 0.5)
    }
}

/// `v ↦ H_B(θ) v` at a point and batch fixed by [`Objective::hessian_at`].
pub trait HessianAt: Send + Sync {
    /// Writes `H_B(θ) v` into `out` (both of length `p`).
    fn hvp(&self, v: &[f64], out: &mut [f64]) -> Result<()>;
}

/// The default [`Objective::hessian_at`]: validates `θ` and the batch, then calls [`Objective::hvp`] for every
/// product (nothing is kept between products, so memory does not grow with the batch).
pub fn streamed_hessian<'a, O: Objective + ?Sized>(
    obj: &'a O,
    theta: &'a [f64],
    batch: Batch<'a>,
) -> Result<Box<dyn HessianAt + 'a>> {
    check_len("theta", theta, obj.dim())?;
    check_finite("theta", theta)?;
    batch.validate(obj.n_examples())?;
    Ok(Box::new(HvpAtPoint { obj, theta, batch }))
}

/// The default [`HessianAt`]: [`Objective::hvp`] at the stored point.
struct HvpAtPoint<'a, O: ?Sized> {
    obj: &'a O,
    theta: &'a [f64],
    batch: Batch<'a>,
}

impl<O: Objective + ?Sized> HessianAt for HvpAtPoint<'_, O> {
    fn hvp(&self, v: &[f64], out: &mut [f64]) -> Result<()> {
        self.obj.hvp(self.theta, self.batch, v, out)
    }
}

/// Errors unless `v.len() == expected`.
pub fn check_len(name: &'static str, v: &[f64], expected: usize) -> Result<()> {
    if v.len() != expected {
        return Err(ObjectiveError::Length {
            name,
            expected,
            got: v.len(),
        });
    }
    Ok(())
}

/// Errors on the first NaN or infinity in `v`.
pub fn check_finite(what: &str, v: &[f64]) -> Result<()> {
    if let Some(index) = imreg_ad::first_non_finite(v) {
        return Err(ObjectiveError::NonFinite {
            what: what.to_string(),
            index,
            value: v[index],
        });
    }
    Ok(())
}

/// Streams `len` rows of length `p` in chunks of at most `chunk` rows through one reused buffer: `fill(k, row)`
/// writes row `k`, and `sink(start, rows)` receives rows `start..start + rows.nrows()` (the contract of
/// [`Objective::per_example_grads`]).
pub fn stream_rows(
    len: usize,
    p: usize,
    chunk: usize,
    sink: &mut dyn FnMut(usize, ArrayView2<'_, f64>) -> Result<()>,
    mut fill: impl FnMut(usize, &mut [f64]) -> Result<()>,
) -> Result<()> {
    let chunk = chunk.max(1);
    let mut buf = ndarray::Array2::<f64>::zeros((chunk.min(len), p));
    let mut start = 0;
    while start < len {
        let end = (start + chunk).min(len);
        for k in start..end {
            let mut row = buf.row_mut(k - start);
            fill(k, row.as_slice_mut().expect("row-major buffer"))?;
        }
        sink(start, buf.slice(ndarray::s![..end - start, ..]))?;
        start = end;
    }
    Ok(())
}
