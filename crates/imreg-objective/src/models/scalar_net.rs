//! The depth-2 linear network of width `k` with a single input and output (Beneventano & Woodworth 2025;
//! `docs/theory/scalar-net.md`): `f(x) = (aᵀb) x`, `θ = (a, b) ∈ R^{2k}` with `a` first.
use super::common::{chunked_sum, dot, value_targets};
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::objective::{check_finite, At, Objective, RowSink};
use crate::supervised::{LossKind, Supervised, Targets};
use ndarray::{Array2, ArrayView2};

/// `ℓ_i(a, b) = ½ (aᵀb x_i − y_i)²`. [`ScalarNet::new`] is the one-"example" form `½(aᵀb − Φ)²` (`x = 1`,
/// `y = Φ`, `N = 1`); [`ScalarNet::from_data`] is the data form, which equals `(σ²/2)(aᵀb − Φ)² + const`
/// with `σ² = mean x²`, `Φ = Σ x_i y_i / Σ x_i²`.
///
/// Derivatives, with `m = aᵀb`, `r_i = m x_i − y_i`, `g = ∇m = (b; a)` and `J = [[0, I], [I, 0]]`:
/// `∇ℓ_i = r_i x_i g`, `∇²ℓ_i = x_i² g gᵀ + r_i x_i J`, and on a batch, with `σ_B² = mean_B x²`,
/// `ρ_B = mean_B r x`: `H_B = σ_B² g gᵀ + ρ_B J = σ_B² (g gᵀ + ε̃_B J)`, `ε̃_B = ρ_B/σ_B² = m − Φ_B`,
/// `T3_B[u, v] = σ_B² ((gᵀv) J u + (gᵀu) J v + (uᵀJv) g)`.
#[derive(Clone, Debug)]
pub struct ScalarNet {
    k: usize,
    x: Vec<f64>,
    y: Vec<f64>,
}

impl ScalarNet {
    /// `½(aᵀb − Φ)²`, width `k ≥ 1`, `N = 1`.
    pub fn new(k: usize, phi: f64) -> Result<Self> {
        Self::from_data(k, vec![1.0], vec![phi])
    }

    /// The data form `ℓ_i = ½(aᵀb x_i − y_i)²`, `N = x.len()`. Errors on `k = 0`, mismatched or empty data,
    /// non-finite values, or `Σ x_i² = 0` (then `Φ` is undefined).
    pub fn from_data(k: usize, x: Vec<f64>, y: Vec<f64>) -> Result<Self> {
        if k == 0 {
            return Err(ObjectiveError::invalid("k", "the width must be ≥ 1"));
        }
        if x.is_empty() {
            return Err(ObjectiveError::invalid("x", "needs at least one example"));
        }
        if y.len() != x.len() {
            return Err(ObjectiveError::Shape {
                what: "y (one target per x)".into(),
                expected: x.len().to_string(),
                got: y.len().to_string(),
            });
        }
        check_finite("x", &x)?;
        check_finite("y", &y)?;
        if dot(&x, &x) == 0.0 {
            return Err(ObjectiveError::invalid(
                "x",
                "Σ x_i² = 0, so Φ = Σxy/Σx² is undefined",
            ));
        }
        Ok(ScalarNet { k, x, y })
    }

    /// The width `k` (`p = 2k`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Inputs `x_i`.
    pub fn x(&self) -> &[f64] {
        &self.x
    }

    /// Targets `y_i`.
    pub fn y(&self) -> &[f64] {
        &self.y
    }

    /// `Φ = Σ x_i y_i / Σ x_i²` (the `Φ` of [`ScalarNet::new`]).
    pub fn phi(&self) -> f64 {
        dot(&self.x, &self.y) / dot(&self.x, &self.x)
    }

    /// `σ² = (1/N) Σ x_i²` (1 for [`ScalarNet::new`]).
    pub fn sigma2(&self) -> f64 {
        dot(&self.x, &self.x) / self.x.len() as f64
    }

    /// `(a, b)` views of `θ` (unchecked length: callers validate first).
    fn split<'t>(&self, theta: &'t [f64]) -> (&'t [f64], &'t [f64]) {
        theta.split_at(self.k)
    }

    /// `g = ∇m = (b; a)`.
    fn grad_m(&self, theta: &[f64]) -> Vec<f64> {
        let (a, b) = self.split(theta);
        b.iter().chain(a).copied().collect()
    }

    /// `J w = (w_b; w_a)`.
    fn j(&self, w: &[f64]) -> Vec<f64> {
        let (wa, wb) = w.split_at(self.k);
        wb.iter().chain(wa).copied().collect()
    }

    /// `(mean_B ½ r², mean_B r x, mean_B x²)` with targets `y(position, index)`.
    fn moments(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        y: &(dyn Fn(usize, usize) -> f64 + Sync),
    ) -> Result<[f64; 3]> {
        let (a, b) = self.split(theta);
        let m = dot(a, b);
        let (s, acc) = chunked_sum(batch, self.x.len(), 2, |start, ix, s, acc| {
            for (r, &i) in ix.iter().enumerate() {
                let xi = self.x[i];
                let res = m * xi - y(start + r, i);
                *s += 0.5 * res * res;
                acc[0] += res * xi;
                acc[1] += xi * xi;
            }
            Ok(())
        })?;
        let nb = batch.len(self.x.len()) as f64;
        Ok([s / nb, acc[0] / nb, acc[1] / nb])
    }

    /// The closed-form Hessian spectrum of the full-data loss (`docs/theory/scalar-net.md` §Hessian), in
    /// descending order:
    /// `σ² · {λ/2 ± √((m + ε̃)² + P/4), +ε̃ (k − 1 times), −ε̃ (k − 1 times)}` with `m = aᵀb`,
    /// `λ = ‖a‖² + ‖b‖²`, `P = ‖a + b‖²‖a − b‖² = λ² − 4m²`, `ε̃ = m − Φ` (the residual `aᵀb − Φ` of the
    /// reduced loss), `σ² = mean x²`. For [`ScalarNet::new`] `σ² = 1` and `ε̃ = ε`.
    pub fn hessian_spectrum(&self, theta: &[f64]) -> Result<Vec<f64>> {
        self.hessian_spectrum_on(theta, Batch::Full)
    }

    /// [`ScalarNet::hessian_spectrum`] of the batch loss `C_B` (with `σ_B²`, `Φ_B` of the batch).
    pub fn hessian_spectrum_on(&self, theta: &[f64], batch: Batch<'_>) -> Result<Vec<f64>> {
        self.validate_call(theta, batch)?;
        let [_, rho, s2] = self.moments(theta, batch, &|_, i| self.y[i])?;
        let (a, b) = self.split(theta);
        let m = dot(a, b);
        let lambda = dot(a, a) + dot(b, b);
        let (sum2, diff2) = a.iter().zip(b).fold((0.0, 0.0), |(s, d), (ai, bi)| {
            (s + (ai + bi) * (ai + bi), d + (ai - bi) * (ai - bi))
        });
        let p = sum2 * diff2;
        if s2 == 0.0 {
            return Ok(vec![0.0; 2 * self.k]);
        }
        let eps = rho / s2;
        let root = ((m + eps).powi(2) + p / 4.0).sqrt();
        let mut spec = vec![s2 * (lambda / 2.0 + root), s2 * (lambda / 2.0 - root)];
        spec.extend(std::iter::repeat_n(s2 * eps, self.k - 1));
        spec.extend(std::iter::repeat_n(-s2 * eps, self.k - 1));
        spec.sort_by(|x, y| y.total_cmp(x));
        Ok(spec)
    }

    /// `λ_max(H) = σ²(λ/2 + √((m + ε̃)² + P/4))` (the largest eigenvalue of [`ScalarNet::hessian_spectrum`]).
    /// At a global minimum this is `σ²(‖a‖² + ‖b‖²)`.
    pub fn sharpness(&self, theta: &[f64]) -> Result<f64> {
        Ok(self.hessian_spectrum(theta)?.first().copied().unwrap_or(0.0))
    }
}

impl Objective for ScalarNet {
    fn name(&self) -> String {
        format!("scalar-net (k = {}, N = {}, ½(aᵀb x − y)²)", self.k, self.x.len())
    }

    fn dim(&self) -> usize {
        2 * self.k
    }

    fn n_examples(&self) -> usize {
        self.x.len()
    }

    fn loss_at(&self, at: At<'_>) -> Result<f64> {
        let At { theta, batch } = at;
        Ok(self.moments(theta, batch, &|_, i| self.y[i])?[0])
    }

    fn loss_grad_at(&self, at: At<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let [l, rho, _] = self.moments(theta, batch, &|_, i| self.y[i])?;
        grad.iter_mut()
            .zip(self.grad_m(theta))
            .for_each(|(o, g)| *o = rho * g);
        Ok(l)
    }

    fn hvp_at(&self, at: At<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        let [_, rho, s2] = self.moments(theta, batch, &|_, i| self.y[i])?;
        let g = self.grad_m(theta);
        let gv = s2 * dot(&g, v);
        for ((o, gi), jv) in out.iter_mut().zip(&g).zip(self.j(v)) {
            *o = gv * gi + rho * jv;
        }
        Ok(())
    }

    fn third_order_at(&self, at: At<'_>, u: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        let [_, _, s2] = self.moments(theta, batch, &|_, i| self.y[i])?;
        let g = self.grad_m(theta);
        let (gu, gv) = (dot(&g, u), dot(&g, v));
        let (ju, jv) = (self.j(u), self.j(v));
        let ujv = dot(u, &jv);
        for (k, o) in out.iter_mut().enumerate() {
            *o = s2 * (gv * ju[k] + gu * jv[k] + ujv * g[k]);
        }
        Ok(())
    }

    fn per_example_grads_at(&self, at: At<'_>, chunk: usize, sink: &mut RowSink<'_>) -> Result<()> {
        let At { theta, batch } = at;
        let g = self.grad_m(theta);
        let (a, b) = self.split(theta);
        let m = dot(a, b);
        super::common::per_example_driver(
            batch,
            self.x.len(),
            self.dim(),
            chunk,
            |ix, mut rows, _zeroed| {
                for (r, &i) in ix.iter().enumerate() {
                    let w = (m * self.x[i] - self.y[i]) * self.x[i];
                    rows.row_mut(r).iter_mut().zip(&g).for_each(|(o, gi)| *o = w * gi);
                }
                Ok(())
            },
            sink,
        )
    }
}

impl Supervised for ScalarNet {
    fn n_outputs(&self) -> usize {
        1
    }

    fn loss_kind(&self) -> LossKind {
        LossKind::Mse { half: true }
    }

    fn outputs_at(&self, at: At<'_>) -> Result<Array2<f64>> {
        let At { theta, batch } = at;
        let (a, b) = self.split(theta);
        let m = dot(a, b);
        let xs: Vec<f64> = batch.iter(self.x.len()).map(|i| m * self.x[i]).collect();
        Ok(Array2::from_shape_fn((xs.len(), 1), |(k, _)| xs[k]))
    }

    fn loss_grad_with_targets_at(&self, at: At<'_>, targets: Targets<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let t = value_targets(targets, batch.len(self.x.len()), 1, "scalar-net")?;
        let [l, rho, _] = self.moments(theta, batch, &|k, _| t[(k, 0)])?;
        grad.iter_mut()
            .zip(self.grad_m(theta))
            .for_each(|(o, g)| *o = rho * g);
        Ok(l)
    }

    fn output_jvp_at(&self, at: At<'_>, v: &[f64]) -> Result<Array2<f64>> {
        let At { theta, batch } = at;
        let gv = dot(&self.grad_m(theta), v);
        let xs: Vec<f64> = batch.iter(self.x.len()).map(|i| gv * self.x[i]).collect();
        Ok(Array2::from_shape_fn((xs.len(), 1), |(k, _)| xs[k]))
    }

    fn output_vjp_at(&self, at: At<'_>, u: ArrayView2<'_, f64>, out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        let u = value_targets(Targets::Values(u), batch.len(self.x.len()), 1, "scalar-net")?;
        let w: f64 = batch
            .iter(self.x.len())
            .enumerate()
            .map(|(k, i)| u[(k, 0)] * self.x[i])
            .sum();
        out.iter_mut()
            .zip(self.grad_m(theta))
            .for_each(|(o, g)| *o = w * g);
        Ok(())
    }
}
