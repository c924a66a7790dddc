//! The `Objective` trait: a mean-over-examples loss with exact derivatives on any batch.
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use nalgebra::DMatrix;
use ndarray::ArrayView2;

/// A loss with per-example structure, `C_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ)`.
///
/// Every method takes the batch explicitly, so full batch, minibatch, micro-batch and per-example calls are
/// the same call. Derivatives are exact: hand-written for the closed-form models, through `imreg-ad` for
/// networks.
///
/// Inputs are validated once, here. The entry points ([`Objective::loss`], [`Objective::loss_grad`],
/// [`Objective::hvp`], [`Objective::third_order`], [`Objective::per_example_grads`],
/// [`Objective::hessian_at`]) are provided methods that check
///
/// - the point and batch with [`Objective::validate_call`]: `|θ| = p`, `θ` finite, `B ≠ ∅` and every
///   `i ∈ B` below `N`, giving an [`At`];
/// - every direction `u, v` with [`check_direction`]: length `p`, finite;
/// - every output buffer with [`check_len`]: length `p`;
///
/// and return the typed error of the first failed check (never a panic). Then they call the model's
/// computation, the `*_at` method of the same name, which may rely on all of the above: a model implements
/// the `*_at` methods, callers use the checked ones.
pub trait Objective: Send + Sync {
    /// A short human-readable name, with the loss convention (e.g. "linreg (½ MSE)").
    fn name(&self) -> String;
    /// Number of parameters `p`.
    fn dim(&self) -> usize;
    /// Number of examples `N`.
    fn n_examples(&self) -> usize;

    // ---- the model's computations, on validated inputs ---------------------------------------------------

    /// `C_B(θ)`, the mean loss over the batch.
    fn loss_at(&self, at: At<'_>) -> Result<f64>;

    /// Writes `∇C_B(θ)` into `grad` (length `p`) and returns `C_B(θ)`.
    fn loss_grad_at(&self, at: At<'_>, grad: &mut [f64]) -> Result<f64>;

    /// Writes the Hessian-vector product `H_B(θ) v` into `out`.
    fn hvp_at(&self, at: At<'_>, v: &[f64], out: &mut [f64]) -> Result<()>;

    /// Writes the third-order directional derivative `T3_B[u, v] = ∇_θ (uᵀ H_B(θ) v)`, i.e.
    /// `Σ_jk ∂³C_B/∂θ_i∂θ_j∂θ_k u_j v_k`, into `out`.
    fn third_order_at(&self, at: At<'_>, u: &[f64], v: &[f64], out: &mut [f64]) -> Result<()>;

    /// The per-example gradients of [`Objective::per_example_grads`]. The default calls
    /// [`Objective::loss_grad_at`] on single-example batches; models override it with a faster path.
    fn per_example_grads_at(&self, at: At<'_>, chunk: usize, sink: &mut RowSink<'_>) -> Result<()> {
        let At { theta, batch } = at;
        stream_rows(batch.len(self.n_examples()), self.dim(), chunk, sink, |k, row| {
            let index = [batch.index(k)];
            let one = At {
                theta,
                batch: Batch::Indices(&index),
            };
            self.loss_grad_at(one, row).map(drop)
        })
    }

    /// The prepared Hessian of [`Objective::hessian_at`]. The default calls [`Objective::hvp_at`] for every
    /// product (nothing is kept between products, so memory does not grow with the batch); networks override
    /// it so that the primal forward pass runs once ([`imreg_ad::Linearized`]).
    fn prepared_hessian_at<'a>(&'a self, at: At<'a>) -> Result<Box<dyn HessianAt + 'a>> {
        Ok(Box::new(HvpAtPoint { obj: self, at }))
    }

    // ---- the checked entry points -----------------------------------------------------------------------

    /// Checks the point and batch of a call: `|θ| = p`, `θ` finite, the batch valid for `N` examples
    /// ([`At::checked`]). Every entry point calls it first; a model with a further requirement overrides it
    /// (and ends with [`At::checked`]).
    fn validate_call<'a>(&self, theta: &'a [f64], batch: Batch<'a>) -> Result<At<'a>> {
        At::checked(theta, self.dim(), batch, self.n_examples())
    }

    /// `C_B(θ)`, the mean loss over the batch.
    fn loss(&self, theta: &[f64], batch: Batch<'_>) -> Result<f64> {
        self.loss_at(self.validate_call(theta, batch)?)
    }

    /// Writes `∇C_B(θ)` into `grad` (length `p`) and returns `C_B(θ)`.
    fn loss_grad(&self, theta: &[f64], batch: Batch<'_>, grad: &mut [f64]) -> Result<f64> {
        let at = self.validate_call(theta, batch)?;
        check_len("grad", grad, self.dim())?;
        self.loss_grad_at(at, grad)
    }

    /// Writes the Hessian-vector product `H_B(θ) v` into `out`.
    fn hvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        let at = self.validate_call(theta, batch)?;
        check_direction("v", v, self.dim())?;
        check_len("out", out, self.dim())?;
        self.hvp_at(at, v, out)
    }

    /// Writes the third-order directional derivative `T3_B[u, v] = ∇_θ (uᵀ H_B(θ) v)`, i.e.
    /// `Σ_jk ∂³C_B/∂θ_i∂θ_j∂θ_k u_j v_k`, into `out`.
    fn third_order(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: &[f64],
        v: &[f64],
        out: &mut [f64],
    ) -> Result<()> {
        let at = self.validate_call(theta, batch)?;
        check_direction("u", u, self.dim())?;
        check_direction("v", v, self.dim())?;
        check_len("out", out, self.dim())?;
        self.third_order_at(at, u, v, out)
    }

    /// Streams the per-example gradients `∇ℓ_i(θ)` of the batch's examples, in batch order, in chunks of at
    /// most `chunk` rows: `sink(start, rows)` receives the gradients of batch positions
    /// `start..start + rows.nrows()` as the rows of a `rows × p` view. The full `|B| × p` matrix is never
    /// materialized unless the sink stores it.
    fn per_example_grads(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        chunk: usize,
        sink: &mut RowSink<'_>,
    ) -> Result<()> {
        self.per_example_grads_at(self.validate_call(theta, batch)?, chunk, sink)
    }

    /// `H_B(θ)` as a map prepared once for many HVPs at the same point and batch (Lanczos, power iteration,
    /// trace probes), JAX's `linearize(grad(C_B), θ)`. `θ` and the batch are validated here, each product's
    /// `v` and `out` by [`HessianAt::hvp`].
    fn hessian_at<'a>(&'a self, theta: &'a [f64], batch: Batch<'a>) -> Result<Box<dyn HessianAt + 'a>> {
        self.prepared_hessian_at(self.validate_call(theta, batch)?)
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

/// The rows sink of [`Objective::per_example_grads`]: `sink(start, rows)` receives batch positions
/// `start..start + rows.nrows()`.
pub type RowSink<'s> = dyn FnMut(usize, ArrayView2<'_, f64>) -> Result<()> + 's;

/// A point `θ` and batch `B` that passed [`Objective::validate_call`]: `|θ| = p`, `θ` finite, `B ≠ ∅`, every
/// `i ∈ B` below `N`. Outside this crate only [`At::checked`] makes one, so a model's `*_at` computation can
/// trust it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct At<'a> {
    /// `θ`, of length `p`, finite.
    pub theta: &'a [f64],
    /// `B`, non-empty, indices below `N`.
    pub batch: Batch<'a>,
}

impl<'a> At<'a> {
    /// `θ` and `B` after the checks of [`Objective::validate_call`] for `p` parameters and `n` examples, in
    /// this order: `|θ| = p`, `θ` finite, the batch ([`Batch::validate`]).
    pub fn checked(theta: &'a [f64], p: usize, batch: Batch<'a>, n: usize) -> Result<Self> {
        check_len("theta", theta, p)?;
        check_finite("theta", theta)?;
        batch.validate(n)?;
        Ok(At { theta, batch })
    }
}

/// The default [`Objective::prepared_hessian_at`]: [`Objective::hvp_at`] at the stored point, after checking
/// `v` and `out`.
struct HvpAtPoint<'a, O: ?Sized> {
    obj: &'a O,
    at: At<'a>,
}

impl<O: Objective + ?Sized> HessianAt for HvpAtPoint<'_, O> {
    fn hvp(&self, v: &[f64], out: &mut [f64]) -> Result<()> {
        check_direction("v", v, self.obj.dim())?;
        check_len("out", out, self.obj.dim())?;
        self.obj.hvp_at(self.at, v, out)
    }
}

/// [`Objective::hessian_at`] through [`Objective::hvp_at`] for every product, whatever the model's
/// [`Objective::prepared_hessian_at`] (the fallback of a prepared Hessian over its memory budget).
pub fn streamed_hessian<'a, O: Objective + ?Sized>(obj: &'a O, at: At<'a>) -> Box<dyn HessianAt + 'a> {
    Box::new(HvpAtPoint { obj, at })
}

/// Errors unless the direction `v` (named `name`) has length `p` and is finite.
pub fn check_direction(name: &'static str, v: &[f64], p: usize) -> Result<()> {
    check_len(name, v, p)?;
    check_finite(name, v)
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
    sink: &mut RowSink<'_>,
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
