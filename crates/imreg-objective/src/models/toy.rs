//! Small objectives with hand-written derivatives, used by the checks and tests of the flows and of SGD (and by
//! anyone who needs a cheap, exactly differentiable per-example loss).
//!
//! Every derivative here is checked against central finite differences in random directions in this
//! module's tests.
use super::common::dot;
use super::quadratic::check_examples;
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::objective::{check_finite, check_len, At, Objective};
use nalgebra::{DMatrix, DVector};

/// `(1/|B|) Σ_{i∈B} per(i)` over a batch already validated against `n`.
fn mean_loss(n: usize, batch: Batch<'_>, per: impl Fn(usize) -> f64) -> f64 {
    batch.iter(n).map(per).sum::<f64>() / batch.len(n) as f64
}

/// Writes `(1/|B|) Σ_{i∈B} per(i)` into `out` (length `p`), where `per(i, buf)` writes example `i`'s vector
/// into a zeroed buffer; the batch is already validated against `n`.
fn mean_over_batch(n: usize, batch: Batch<'_>, out: &mut [f64], mut per: impl FnMut(usize, &mut [f64])) {
    out.iter_mut().for_each(|v| *v = 0.0);
    let len = batch.len(n);
    let mut buf = vec![0.0; out.len()];
    for i in batch.iter(n) {
        buf.iter_mut().for_each(|v| *v = 0.0);
        per(i, &mut buf);
        for (o, b) in out.iter_mut().zip(&buf) {
            *o += b;
        }
    }
    let inv = 1.0 / len as f64;
    out.iter_mut().for_each(|v| *v *= inv);
}

/// A smooth, non-quadratic per-example loss
/// `ℓ_i(w) = log cosh(a_i·w − c_i) + (β_i/4) Σ_j w_j⁴`, with `C = (1/N) Σ_i ℓ_i`.
///
/// Its third derivative is non-zero, so the backward-error-analysis orders (which differ between
/// quadratics and general losses) are genuinely exercised.
#[derive(Clone, Debug)]
pub struct LogCoshQuartic {
    /// Rows `a_i`, `N × p`.
    pub a: Vec<Vec<f64>>,
    /// Offsets `c_i`.
    pub c: Vec<f64>,
    /// Quartic weights `β_i ≥ 0`.
    pub beta: Vec<f64>,
}

impl LogCoshQuartic {
    /// Validates shapes and finiteness.
    pub fn new(a: Vec<Vec<f64>>, c: Vec<f64>, beta: Vec<f64>) -> Result<Self> {
        let n = a.len();
        if n == 0 {
            return Err(ObjectiveError::invalid("a", "needs at least one example"));
        }
        let p = a[0].len();
        if p == 0 {
            return Err(ObjectiveError::invalid("a", "needs at least one parameter"));
        }
        for row in &a {
            check_len("a[i]", row, p)?;
            check_finite("a", row)?;
        }
        check_len("c", &c, n)?;
        check_len("beta", &beta, n)?;
        check_finite("c", &c)?;
        check_finite("beta", &beta)?;
        Ok(LogCoshQuartic { a, c, beta })
    }

    /// A seeded random instance with `n` examples in `p` dimensions: `a_i ~ N(0, I)`, `c_i ~ N(0, 1)`,
    /// `β_i ∈ [0.05, 0.25]`.
    pub fn random(n: usize, p: usize, seed: u64) -> Result<Self> {
        use rand::Rng;
        let mut rng = crate::rng::stream(seed, 0);
        let a = (0..n).map(|_| crate::rng::normal_vec(&mut rng, p)).collect();
        let c = crate::rng::normal_vec(&mut rng, n);
        let beta = (0..n).map(|_| 0.05 + 0.2 * rng.random::<f64>()).collect();
        Self::new(a, c, beta)
    }

    fn z(&self, i: usize, w: &[f64]) -> f64 {
        dot(&self.a[i], w) - self.c[i]
    }
}

/// `log cosh z`, stable for large `|z|`.
fn log_cosh(z: f64) -> f64 {
    let a = z.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

impl Objective for LogCoshQuartic {
    fn name(&self) -> String {
        "log-cosh + quartic (toy)".into()
    }
    fn dim(&self) -> usize {
        self.a[0].len()
    }
    fn n_examples(&self) -> usize {
        self.a.len()
    }
    fn loss_at(&self, at: At<'_>) -> Result<f64> {
        let quart: f64 = at.theta.iter().map(|w| w.powi(4)).sum::<f64>() / 4.0;
        Ok(mean_loss(self.n_examples(), at.batch, |i| {
            log_cosh(self.z(i, at.theta)) + self.beta[i] * quart
        }))
    }
    fn loss_grad_at(&self, at: At<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let loss = self.loss_at(at)?;
        mean_over_batch(self.n_examples(), batch, grad, |i, g| {
            let t = self.z(i, theta).tanh();
            for j in 0..g.len() {
                g[j] = t * self.a[i][j] + self.beta[i] * theta[j].powi(3);
            }
        });
        Ok(loss)
    }
    fn hvp_at(&self, at: At<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        mean_over_batch(self.n_examples(), batch, out, |i, o| {
            let t = self.z(i, theta).tanh();
            let av = dot(&self.a[i], v) * (1.0 - t * t);
            for j in 0..o.len() {
                o[j] = av * self.a[i][j] + 3.0 * self.beta[i] * theta[j] * theta[j] * v[j];
            }
        });
        Ok(())
    }
    fn third_order_at(&self, at: At<'_>, u: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        mean_over_batch(self.n_examples(), batch, out, |i, o| {
            let t = self.z(i, theta).tanh();
            let s = -2.0 * t * (1.0 - t * t) * dot(&self.a[i], u) * dot(&self.a[i], v);
            for j in 0..o.len() {
                o[j] = s * self.a[i][j] + 6.0 * self.beta[i] * theta[j] * u[j] * v[j];
            }
        });
        Ok(())
    }
}

/// Per-example quadratics `ℓ_i(w) = ½ wᵀ A_i w − b_iᵀ w` (`A_i` symmetric), so `∇ℓ_i = A_i w − b_i` is
/// affine and the third derivative vanishes. Least squares `½(x_i·w − y_i)²` is the case
/// `A_i = x_i x_iᵀ`, `b_i = y_i x_i` (up to the constant `½y_i²`, which [`PerExampleQuadratic::least_squares`]
/// keeps in the loss).
#[derive(Clone, Debug)]
pub struct PerExampleQuadratic {
    a: Vec<DMatrix<f64>>,
    b: Vec<DVector<f64>>,
    c: Vec<f64>,
}

impl PerExampleQuadratic {
    /// Validates the examples as [`Quadratic::new`](super::Quadratic::new) does, and that every `A_i` is
    /// symmetric.
    pub fn new(a: Vec<DMatrix<f64>>, b: Vec<DVector<f64>>) -> Result<Self> {
        check_examples(&a, &b)?;
        for (i, ai) in a.iter().enumerate() {
            if (ai - ai.transpose()).amax() > 1e-12 * (1.0 + ai.amax()) {
                return Err(ObjectiveError::invalid(format!("A_{i}"), "is not symmetric"));
            }
        }
        let n = a.len();
        Ok(PerExampleQuadratic {
            a,
            b,
            c: vec![0.0; n],
        })
    }

    /// Least squares `ℓ_i(w) = ½(x_i·w − y_i)²` (½ MSE) from the rows `x_i`.
    pub fn least_squares(x: &[Vec<f64>], y: &[f64]) -> Result<Self> {
        if x.len() != y.len() {
            return Err(ObjectiveError::Length {
                name: "y",
                expected: x.len(),
                got: y.len(),
            });
        }
        let a = x
            .iter()
            .map(|r| {
                let v = DVector::from_column_slice(r);
                &v * v.transpose()
            })
            .collect();
        let b = x
            .iter()
            .zip(y)
            .map(|(r, yi)| DVector::from_column_slice(r) * *yi)
            .collect();
        let mut q = Self::new(a, b)?;
        q.c = y.iter().map(|v| 0.5 * v * v).collect();
        Ok(q)
    }

    /// A seeded random least-squares instance: `x_i ~ N(0, I_p)/√p`-scaled rows, `y = x·w* + 0.5 noise`.
    pub fn random_least_squares(n: usize, p: usize, seed: u64) -> Result<Self> {
        let mut rng = crate::rng::stream(seed, 0);
        let w_star = crate::rng::normal_vec(&mut rng, p);
        let scale = 1.0 / (p as f64).sqrt();
        let x: Vec<Vec<f64>> = (0..n)
            .map(|_| {
                crate::rng::normal_vec(&mut rng, p)
                    .into_iter()
                    .map(|v| v * scale)
                    .collect()
            })
            .collect();
        let noise = crate::rng::normal_vec(&mut rng, n);
        let y: Vec<f64> = x
            .iter()
            .zip(&noise)
            .map(|(r, e)| dot(r, &w_star) + 0.5 * e)
            .collect();
        Self::least_squares(&x, &y)
    }

    /// `A_i` of example `i`.
    pub fn a(&self, i: usize) -> &DMatrix<f64> {
        &self.a[i]
    }
    /// `b_i` of example `i`.
    pub fn b(&self, i: usize) -> &DVector<f64> {
        &self.b[i]
    }
}

impl Objective for PerExampleQuadratic {
    fn name(&self) -> String {
        "per-example quadratic ½wᵀA_iw − b_iᵀw (toy)".into()
    }
    fn dim(&self) -> usize {
        self.a[0].nrows()
    }
    fn n_examples(&self) -> usize {
        self.a.len()
    }
    fn loss_at(&self, at: At<'_>) -> Result<f64> {
        let w = DVector::from_column_slice(at.theta);
        Ok(mean_loss(self.n_examples(), at.batch, |i| {
            0.5 * w.dot(&(&self.a[i] * &w)) - self.b[i].dot(&w) + self.c[i]
        }))
    }
    fn loss_grad_at(&self, at: At<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let loss = self.loss_at(at)?;
        let w = DVector::from_column_slice(theta);
        mean_over_batch(self.n_examples(), batch, grad, |i, g| {
            let gi = &self.a[i] * &w - &self.b[i];
            g.copy_from_slice(gi.as_slice());
        });
        Ok(loss)
    }
    fn hvp_at(&self, at: At<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { batch, .. } = at;
        let v = DVector::from_column_slice(v);
        mean_over_batch(self.n_examples(), batch, out, |i, o| {
            o.copy_from_slice((&self.a[i] * &v).as_slice());
        });
        Ok(())
    }
    fn third_order_at(&self, at: At<'_>, _u: &[f64], _v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { batch, .. } = at;
        mean_over_batch(self.n_examples(), batch, out, |_, _| {});
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite differences of loss → grad, grad → HVP, HVP → third order in random directions.
    fn check_derivatives(obj: &dyn Objective, theta: &[f64], seed: u64) {
        let p = obj.dim();
        let mut rng = crate::rng::stream(seed, 9);
        let batches: [Vec<usize>; 2] = [(0..obj.n_examples()).collect(), vec![0, obj.n_examples() - 1, 0]];
        for ix in &batches {
            let b = Batch::Indices(ix);
            for _ in 0..3 {
                let u = crate::rng::normal_vec(&mut rng, p);
                let v = crate::rng::normal_vec(&mut rng, p);
                let r = 1e-5;
                let plus: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t + r * d).collect();
                let minus: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t - r * d).collect();
                // Central differences have error O(r²) ≈ 1e-10 relative; round-off ≈ 1e-16/r ≈ 1e-11.
                let fd = (obj.loss(&plus, b).unwrap() - obj.loss(&minus, b).unwrap()) / (2.0 * r);
                let g = obj.grad(theta, b).unwrap();
                assert!(
                    (fd - dot(&g, &u)).abs() < 1e-7 * (1.0 + fd.abs()),
                    "grad: {fd} vs {}",
                    dot(&g, &u)
                );
                let gp = obj.grad(&plus, b).unwrap();
                let gm = obj.grad(&minus, b).unwrap();
                let hu = obj.hvp_vec(theta, b, &u).unwrap();
                for j in 0..p {
                    let fdj = (gp[j] - gm[j]) / (2.0 * r);
                    assert!(
                        (fdj - hu[j]).abs() < 1e-6 * (1.0 + fdj.abs()),
                        "hvp[{j}]: {fdj} vs {}",
                        hu[j]
                    );
                }
                let hp = obj.hvp_vec(&plus, b, &v).unwrap();
                let hm = obj.hvp_vec(&minus, b, &v).unwrap();
                let mut t3 = vec![0.0; p];
                obj.third_order(theta, b, &u, &v, &mut t3).unwrap();
                for j in 0..p {
                    let fdj = (hp[j] - hm[j]) / (2.0 * r);
                    assert!(
                        (fdj - t3[j]).abs() < 1e-6 * (1.0 + fdj.abs()),
                        "t3[{j}]: {fdj} vs {}",
                        t3[j]
                    );
                }
            }
        }
    }

    #[test]
    fn logcosh_quartic_derivatives() {
        let obj = LogCoshQuartic::random(5, 3, 1).unwrap();
        check_derivatives(&obj, &[0.3, -0.7, 1.1], 2);
    }

    #[test]
    fn quadratic_derivatives() {
        let obj = PerExampleQuadratic::random_least_squares(6, 3, 4).unwrap();
        check_derivatives(&obj, &[0.3, -0.7, 1.1], 5);
        assert!(PerExampleQuadratic::new(
            vec![DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 0.0, 1.0])],
            vec![DVector::zeros(2)]
        )
        .is_err());
    }

    #[test]
    fn bad_input_is_typed() {
        let obj = LogCoshQuartic::random(3, 2, 1).unwrap();
        assert!(matches!(
            obj.loss(&[0.0], Batch::Full),
            Err(ObjectiveError::Length { .. })
        ));
        assert!(matches!(
            obj.loss(&[0.0, f64::NAN], Batch::Full),
            Err(ObjectiveError::NonFinite { .. })
        ));
        assert!(matches!(
            obj.loss(&[0.0, 0.0], Batch::Indices(&[7])),
            Err(ObjectiveError::IndexOutOfRange { .. })
        ));
    }
}
