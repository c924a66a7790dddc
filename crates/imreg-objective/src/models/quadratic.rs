//! Quadratic objective with a per-example decomposition, `ℓ_i(θ) = ½ θᵀA_iθ + b_iᵀθ`.
use super::common::{chunked_sum, per_example_driver};
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::objective::{check_finite, At, Objective, RowSink};
use crate::rng;
use nalgebra::{DMatrix, DVector};

/// `C_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ)`, `ℓ_i(θ) = ½ θᵀA_iθ + b_iᵀθ`, so `∇ℓ_i = A_iθ + b_i`, `∇²ℓ_i = A_i`
/// and the third derivative is zero.
///
/// **Symmetrization:** the loss only sees the symmetric part of `A_i` (`θᵀAθ = θᵀ½(A + Aᵀ)θ`), so the
/// constructors store `A_i ← ½(A_i + A_iᵀ)`; gradient and Hessian are those of the stored symmetric matrices.
#[derive(Clone, Debug)]
pub struct Quadratic {
    a: Vec<DMatrix<f64>>,
    b: Vec<DVector<f64>>,
    /// `(1/N) Σ_i A_i` and `(1/N) Σ_i b_i`, for full-batch calls.
    a_mean: DMatrix<f64>,
    b_mean: DVector<f64>,
    p: usize,
    /// A construction error of the infallible [`Quadratic::diagonal`], returned by every call.
    defect: Option<ObjectiveError>,
}

impl Quadratic {
    /// `N = a.len()` examples with `A_i` (`p × p`, symmetrized, see the type doc) and `b_i` (length `p`).
    /// Errors on no example, `p = 0`, mismatched counts or shapes, or a non-finite entry.
    pub fn new(a: Vec<DMatrix<f64>>, b: Vec<DVector<f64>>) -> Result<Quadratic> {
        let p = check_examples(&a, &b)?;
        let a: Vec<DMatrix<f64>> = a.into_iter().map(|m| (&m + m.transpose()) * 0.5).collect();
        let n = a.len() as f64;
        let a_mean = a.iter().fold(DMatrix::zeros(p, p), |s, m| s + m) / n;
        let b_mean = b.iter().fold(DVector::zeros(p), |s, v| s + v) / n;
        Ok(Quadratic {
            a,
            b,
            a_mean,
            b_mean,
            p,
            defect: None,
        })
    }

    /// One example `½ Σ_j h_j θ_j²` (`A = diag(h)`, `b = 0`). Infallible for convenience: an empty or
    /// non-finite `h` is reported as a typed error by every later call. Use [`Quadratic::try_diagonal`] to get
    /// the error at construction.
    pub fn diagonal(h: &[f64]) -> Quadratic {
        match Self::try_diagonal(h) {
            Ok(q) => q,
            Err(e) => {
                let p = h.len();
                Quadratic {
                    a: Vec::new(),
                    b: Vec::new(),
                    a_mean: DMatrix::zeros(p, p),
                    b_mean: DVector::zeros(p),
                    p,
                    defect: Some(e),
                }
            }
        }
    }

    /// [`Quadratic::diagonal`], with the error at construction.
    pub fn try_diagonal(h: &[f64]) -> Result<Quadratic> {
        let p = h.len();
        Self::new(
            vec![DMatrix::from_diagonal(&DVector::from_column_slice(h))],
            vec![DVector::zeros(p)],
        )
    }

    /// A seeded random instance: `A_i = M_iM_iᵀ/p` (symmetric positive semi-definite, so `C` is bounded below)
    /// with `M_i` a `p × p` matrix of i.i.d. `N(0, 1)` entries, and `b_i ~ N(0, I_p)`, all drawn from
    /// `rng::stream(seed, 0)`. Errors on `p = 0` or `n = 0`.
    pub fn random(p: usize, n: usize, seed: u64) -> Result<Quadratic> {
        if n == 0 {
            return Err(ObjectiveError::invalid("n", "needs at least one example"));
        }
        let mut rng = rng::stream(seed, 0);
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        for _ in 0..n {
            let m = DMatrix::from_vec(p, p, rng::normal_vec(&mut rng, p * p));
            a.push(&m * m.transpose() / p.max(1) as f64);
            b.push(DVector::from_vec(rng::normal_vec(&mut rng, p)));
        }
        Self::new(a, b)
    }

    /// The (symmetrized) `A_i`.
    pub fn a(&self) -> &[DMatrix<f64>] {
        &self.a
    }

    /// The `b_i`.
    pub fn b(&self) -> &[DVector<f64>] {
        &self.b
    }

    /// The batch Hessian `H_B = (1/|B|) Σ_{i∈B} A_i` (constant in θ).
    pub fn hessian(&self, batch: Batch<'_>) -> Result<DMatrix<f64>> {
        self.check_batch(batch)?;
        if let Batch::Full = batch {
            return Ok(self.a_mean.clone());
        }
        let (_, s) = chunked_sum(batch, self.a.len(), self.p * self.p, |_, ix, _, acc| {
            for &i in ix {
                acc.iter_mut()
                    .zip(self.a[i].as_slice())
                    .for_each(|(s, x)| *s += x);
            }
            Ok(())
        })?;
        Ok(DMatrix::from_vec(self.p, self.p, s) / batch.len(self.a.len()) as f64)
    }

    fn check_batch(&self, batch: Batch<'_>) -> Result<()> {
        if let Some(e) = &self.defect {
            return Err(e.clone());
        }
        batch.validate(self.a.len())
    }

    /// `Σ_{i∈B} A_i w` (and `Σ b_i` added when `with_b`), plus `Σ ½θᵀA_iθ + b_iᵀθ` when `loss`.
    fn sum_apply(&self, batch: Batch<'_>, w: &[f64], with_b: bool) -> Result<(f64, Vec<f64>)> {
        let w = DVector::from_column_slice(w);
        let nb = batch.len(self.a.len()) as f64;
        if let Batch::Full = batch {
            let mut aw = &self.a_mean * &w;
            let mut s = 0.5 * w.dot(&aw);
            if with_b {
                s += self.b_mean.dot(&w);
                aw += &self.b_mean;
            }
            return Ok((s * nb, (aw * nb).as_slice().to_vec()));
        }
        chunked_sum(batch, self.a.len(), self.p, |_, ix, s, acc| {
            for &i in ix {
                let aw = &self.a[i] * &w;
                *s += 0.5 * w.dot(&aw);
                acc.iter_mut().zip(aw.iter()).for_each(|(a, x)| *a += x);
                if with_b {
                    *s += self.b[i].dot(&w);
                    acc.iter_mut().zip(self.b[i].iter()).for_each(|(a, x)| *a += x);
                }
            }
            Ok(())
        })
    }
}

/// Checks the examples of a per-example quadratic: at least one, `A_i` all `p × p` with `p ≥ 1`, as many
/// `b_i` of length `p`, every entry finite. Returns `p`.
pub(crate) fn check_examples(a: &[DMatrix<f64>], b: &[DVector<f64>]) -> Result<usize> {
    let first = a
        .first()
        .ok_or_else(|| ObjectiveError::invalid("a", "needs at least one example"))?;
    let p = first.nrows();
    if p == 0 {
        return Err(ObjectiveError::invalid("a", "parameter dimension p must be ≥ 1"));
    }
    if b.len() != a.len() {
        return Err(ObjectiveError::Shape {
            what: "number of b_i vs number of A_i".into(),
            expected: a.len().to_string(),
            got: b.len().to_string(),
        });
    }
    for (i, (ai, bi)) in a.iter().zip(b).enumerate() {
        if ai.shape() != (p, p) {
            return Err(ObjectiveError::Shape {
                what: format!("A_{i}"),
                expected: format!("{p}×{p}"),
                got: format!("{}×{}", ai.nrows(), ai.ncols()),
            });
        }
        if bi.len() != p {
            return Err(ObjectiveError::Shape {
                what: format!("b_{i}"),
                expected: p.to_string(),
                got: bi.len().to_string(),
            });
        }
        check_finite(&format!("A_{i}"), ai.as_slice())?;
        check_finite(&format!("b_{i}"), bi.as_slice())?;
    }
    Ok(p)
}

impl Objective for Quadratic {
    fn name(&self) -> String {
        format!("quadratic (p = {}, N = {})", self.p, self.a.len())
    }

    fn dim(&self) -> usize {
        self.p
    }

    fn n_examples(&self) -> usize {
        self.a.len()
    }

    /// The checks of [`At::checked`], after the construction error of [`Quadratic::diagonal`] if any.
    fn validate_call<'a>(&self, theta: &'a [f64], batch: Batch<'a>) -> Result<At<'a>> {
        if let Some(e) = &self.defect {
            return Err(e.clone());
        }
        At::checked(theta, self.p, batch, self.a.len())
    }

    fn loss_at(&self, at: At<'_>) -> Result<f64> {
        let At { theta, batch } = at;
        let nb = batch.len(self.a.len()) as f64;
        Ok(self.sum_apply(batch, theta, true)?.0 / nb)
    }

    fn loss_grad_at(&self, at: At<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let nb = batch.len(self.a.len()) as f64;
        let (s, g) = self.sum_apply(batch, theta, true)?;
        grad.iter_mut().zip(&g).for_each(|(o, x)| *o = x / nb);
        Ok(s / nb)
    }

    fn hvp_at(&self, at: At<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { batch, .. } = at;
        let nb = batch.len(self.a.len()) as f64;
        let (_, hv) = self.sum_apply(batch, v, false)?;
        out.iter_mut().zip(&hv).for_each(|(o, x)| *o = x / nb);
        Ok(())
    }

    fn third_order_at(&self, _at: At<'_>, _u: &[f64], _v: &[f64], out: &mut [f64]) -> Result<()> {
        out.fill(0.0);
        Ok(())
    }

    fn per_example_grads_at(&self, at: At<'_>, chunk: usize, sink: &mut RowSink<'_>) -> Result<()> {
        let At { theta, batch } = at;
        let t = DVector::from_column_slice(theta);
        per_example_driver(
            batch,
            self.a.len(),
            self.p,
            chunk,
            |ix, mut rows, _zeroed| {
                for (r, &i) in ix.iter().enumerate() {
                    let g = &self.a[i] * &t + &self.b[i];
                    rows.row_mut(r)
                        .iter_mut()
                        .zip(g.iter())
                        .for_each(|(o, x)| *o = *x);
                }
                Ok(())
            },
            sink,
        )
    }
}
