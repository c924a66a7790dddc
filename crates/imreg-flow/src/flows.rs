//! Gradient flow and the modified flows of backward error analysis, on any [`Objective`].
//!
//! Notation (Smith et al. 2021; Barrett & Dherin 2021): `C(w) = (1/N) Σ_i C_i(w)`, `g = ∇C`, `H = ∇²C`,
//! `T3[u, v] = ∇(uᵀHv)`; a partition into `m` minibatches `B_k` with `Ĉ_k = (1/|B_k|) Σ_{i∈B_k} C_i`,
//! `ĝ_k = ∇Ĉ_k`, `Ĥ_k = ∇²Ĉ_k`; `ε` (or `h`) is the learning rate.
//!
//! Each flow is a small struct implementing [`VectorField`], so [`crate::field::integrate_field`] (DOP853)
//! integrates any of them. The cost of one right-hand side is stated on each type (gradients, HVPs,
//! third-order products of the objective).
use crate::error::{check_len, check_step, FlowError, Result};
use crate::field::VectorField;
use imreg_objective::Partition;
use imreg_objective::{Batch, Objective};
use nalgebra::{DMatrix, DVector};

fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

fn sq_norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum()
}

/// The per-example gradients `∇C_i(w)`, `i = 0..N`, as rows.
pub fn per_example_gradients(obj: &dyn Objective, w: &[f64]) -> Result<Vec<Vec<f64>>> {
    let n = obj.n_examples();
    let mut rows = vec![Vec::new(); n];
    obj.per_example_grads(w, Batch::Full, 64, &mut |start, block| {
        for (r, row) in block.rows().into_iter().enumerate() {
            rows[start + r] = row.to_vec();
        }
        Ok(())
    })?;
    Ok(rows)
}

/// Per-example gradient variance `Γ(w) = (1/N) Σ_i ‖∇C_i(w) − ∇C(w)‖²` (denominator `N`: the trace of the
/// per-example gradient covariance).
pub fn gradient_variance(obj: &dyn Objective, w: &[f64]) -> Result<f64> {
    let rows = per_example_gradients(obj, w)?;
    let n = rows.len() as f64;
    let mut g = vec![0.0; obj.dim()];
    for r in &rows {
        axpy(&mut g, 1.0 / n, r);
    }
    Ok(rows
        .iter()
        .map(|r| r.iter().zip(&g).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
        .sum::<f64>()
        / n)
}

/// `C_GD(w) = C(w) + (ε/4)‖∇C(w)‖²` (Barrett & Dherin's implicit gradient regularization).
pub fn modified_loss_gd(obj: &dyn Objective, w: &[f64], eps: f64) -> Result<f64> {
    check_step("eps", eps)?;
    let g = obj.grad(w, Batch::Full)?;
    Ok(obj.loss(w, Batch::Full)? + 0.25 * eps * sq_norm(&g))
}

/// `C_SGD(w) = (1/m) Σ_k Ĉ_k(w) + (ε/4m) Σ_k ‖∇Ĉ_k(w)‖²` for a fixed partition (Smith et al., eq. 1). When
/// the batches have equal size and cover all examples, `(1/m) Σ_k Ĉ_k = C`.
pub fn modified_loss_sgd(obj: &dyn Objective, partition: &Partition, w: &[f64], eps: f64) -> Result<f64> {
    check_step("eps", eps)?;
    check_partition(obj, partition)?;
    let m = partition.m() as f64;
    let mut total = 0.0;
    let mut g = vec![0.0; obj.dim()];
    for b in partition.batches() {
        let l = obj.loss_grad(w, Batch::Indices(b), &mut g)?;
        total += (l + 0.25 * eps * sq_norm(&g)) / m;
    }
    Ok(total)
}

/// The expectation of `C_SGD` over uniformly random partitions into batches of size `B`:
/// `E[C_SGD](w) = C + (ε/4)‖∇C‖² + ((N−B)/(N−1)) (ε/4B) Γ(w)` (`docs/theory/modified-flows.md` §Random
/// partitions; exact, as each block of a random partition is a uniform random `B`-subset).
pub fn modified_loss_sgd_expected(
    obj: &dyn Objective,
    w: &[f64],
    eps: f64,
    batch_size: usize,
) -> Result<f64> {
    let coef = gamma_coefficient(obj.n_examples(), batch_size)?;
    Ok(modified_loss_gd(obj, w, eps)? + coef * 0.25 * eps / batch_size as f64 * gradient_variance(obj, w)?)
}

/// `(N − B)/(N − 1)` (0 at `N = 1`), validating `1 ≤ B ≤ N`.
fn gamma_coefficient(n: usize, batch_size: usize) -> Result<f64> {
    if batch_size == 0 || batch_size > n {
        return Err(FlowError::invalid(
            "batch_size",
            format!("must lie in 1..={n}, got {batch_size}"),
        ));
    }
    Ok(if n == 1 {
        0.0
    } else {
        (n - batch_size) as f64 / (n - 1) as f64
    })
}

fn check_partition(obj: &dyn Objective, partition: &Partition) -> Result<()> {
    match partition.mismatch(obj.n_examples()) {
        Some(reason) => Err(FlowError::invalid("partition", reason)),
        None => Ok(()),
    }
}

fn check_state(obj: &dyn Objective, w: &[f64], out: &[f64]) -> Result<()> {
    check_len("w", w, obj.dim())?;
    check_len("out", out, obj.dim())
}

/// Gradient flow `ẇ = −∇C(w)` on the full batch. Cost per RHS: 1 gradient.
pub struct GradientFlow<'a> {
    obj: &'a dyn Objective,
}

impl<'a> GradientFlow<'a> {
    pub fn new(obj: &'a dyn Objective) -> Self {
        GradientFlow { obj }
    }
}

impl VectorField for GradientFlow<'_> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn eval(&self, _t: f64, w: &[f64], out: &mut [f64]) -> Result<()> {
        check_state(self.obj, w, out)?;
        self.obj.loss_grad(w, Batch::Full, out)?;
        out.iter_mut().for_each(|v| *v = -*v);
        Ok(())
    }
}

/// Flow on `C_GD = C + (ε/4)‖∇C‖²`: `ẇ = −(g + (ε/2) H g)`. GD with step `ε` follows it with local error
/// `O(ε³)`. Cost per RHS: 1 gradient + 1 HVP.
pub struct ModifiedGdFlow<'a> {
    obj: &'a dyn Objective,
    eps: f64,
}

impl<'a> ModifiedGdFlow<'a> {
    /// Errors unless `ε > 0`.
    pub fn new(obj: &'a dyn Objective, eps: f64) -> Result<Self> {
        check_step("eps", eps)?;
        Ok(ModifiedGdFlow { obj, eps })
    }
}

impl VectorField for ModifiedGdFlow<'_> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn eval(&self, _t: f64, w: &[f64], out: &mut [f64]) -> Result<()> {
        check_state(self.obj, w, out)?;
        let g = self.obj.grad(w, Batch::Full)?;
        self.obj.hvp(w, Batch::Full, &g, out)?;
        for (o, gi) in out.iter_mut().zip(&g) {
            *o = -(gi + 0.5 * self.eps * *o);
        }
        Ok(())
    }
}

/// Flow on `C_SGD` of a fixed partition (Smith et al., eq. 1):
/// `ẇ = −(ḡ + (ε/2m) Σ_k Ĥ_k ĝ_k)`, `ḡ = (1/m) Σ_k ĝ_k` (`= ∇C` for equal batches covering all examples).
/// The mean over all `m!` batch orders of one SGD epoch follows it to `O(m³ε³)` at time `mε`.
/// Cost per RHS: `m` minibatch gradients + `m` minibatch HVPs (i.e. about 2 full-batch passes).
pub struct SgdFlow<'a> {
    obj: &'a dyn Objective,
    partition: Partition,
    eps: f64,
}

impl<'a> SgdFlow<'a> {
    /// Errors unless `ε > 0` and the partition refers to the objective's `N`.
    pub fn new(obj: &'a dyn Objective, partition: Partition, eps: f64) -> Result<Self> {
        check_step("eps", eps)?;
        check_partition(obj, &partition)?;
        Ok(SgdFlow { obj, partition, eps })
    }
}

impl VectorField for SgdFlow<'_> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn eval(&self, _t: f64, w: &[f64], out: &mut [f64]) -> Result<()> {
        check_state(self.obj, w, out)?;
        let p = self.obj.dim();
        let m = self.partition.m() as f64;
        let mut gk = vec![0.0; p];
        let mut hg = vec![0.0; p];
        out.iter_mut().for_each(|v| *v = 0.0);
        for b in self.partition.batches() {
            self.obj.loss_grad(w, Batch::Indices(b), &mut gk)?;
            self.obj.hvp(w, Batch::Indices(b), &gk, &mut hg)?;
            axpy(out, -1.0 / m, &gk);
            axpy(out, -0.5 * self.eps / m, &hg);
        }
        Ok(())
    }
}

/// Flow on the expectation of `C_SGD` over uniformly random partitions into batches of size `B`:
/// `C + (ε/4)‖∇C‖² + ((N−B)/(N−1)) (ε/4B) Γ`, whose gradient uses `∇Γ = (2/N) Σ_i H_i g_i − 2 H g`:
/// `ẇ = −(g + (ε/2) H g + ((N−B)/(N−1)) (ε/4B) ((2/N) Σ_i H_i g_i − 2 H g))`.
/// Cost per RHS: `N` per-example gradients + `N` per-example HVPs + 1 full-batch HVP (about 3 full-batch
/// passes, but with `N` single-example calls).
pub struct PartitionAveragedSgdFlow<'a> {
    obj: &'a dyn Objective,
    eps: f64,
    batch_size: usize,
    coef: f64,
}

impl<'a> PartitionAveragedSgdFlow<'a> {
    /// Errors unless `ε > 0` and `1 ≤ B ≤ N`.
    pub fn new(obj: &'a dyn Objective, eps: f64, batch_size: usize) -> Result<Self> {
        check_step("eps", eps)?;
        let coef = gamma_coefficient(obj.n_examples(), batch_size)?;
        Ok(PartitionAveragedSgdFlow {
            obj,
            eps,
            batch_size,
            coef,
        })
    }
}

impl VectorField for PartitionAveragedSgdFlow<'_> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn eval(&self, _t: f64, w: &[f64], out: &mut [f64]) -> Result<()> {
        check_state(self.obj, w, out)?;
        let p = self.obj.dim();
        let n = self.obj.n_examples();
        let rows = per_example_gradients(self.obj, w)?;
        let mut g = vec![0.0; p];
        for r in &rows {
            axpy(&mut g, 1.0 / n as f64, r);
        }
        // (1/N) Σ_i H_i g_i
        let mut mean_hg = vec![0.0; p];
        let mut tmp = vec![0.0; p];
        for (i, r) in rows.iter().enumerate() {
            self.obj.hvp(w, Batch::Indices(&[i]), r, &mut tmp)?;
            axpy(&mut mean_hg, 1.0 / n as f64, &tmp);
        }
        let mut hg = vec![0.0; p];
        self.obj.hvp(w, Batch::Full, &g, &mut hg)?;
        let c = self.coef * 0.25 * self.eps / self.batch_size as f64;
        for j in 0..p {
            let grad_gamma = 2.0 * mean_hg[j] - 2.0 * hg[j];
            out[j] = -(g[j] + 0.5 * self.eps * hg[j] + c * grad_gamma);
        }
        Ok(())
    }
}

/// The fixed-order modified flow of one batch order (`docs/theory/modified-flows.md` §Fixed-order flow):
/// `ẇ = −ḡ + (ε/m) ξ(w) − (mε/4) ∇‖ḡ‖²`, `ξ = Σ_j Σ_{k<j} Ĥ_j ĝ_k` (batch `j` later than `k` in the
/// partition's order), `∇‖ḡ‖² = 2 H̄ ḡ`, `H̄ = (1/m) Σ_k Ĥ_k`. That ordering's epoch `w_m` follows it to
/// `O(m³ε³)` at time `mε`; averaging its RHS over the `m!` orders gives the [`SgdFlow`].
/// Cost per RHS: `m` gradients + `2m` HVPs.
pub struct FixedOrderFlow<'a> {
    obj: &'a dyn Objective,
    partition: Partition,
    eps: f64,
}

impl<'a> FixedOrderFlow<'a> {
    /// Errors unless `ε > 0` and the partition refers to the objective's `N`.
    pub fn new(obj: &'a dyn Objective, partition: Partition, eps: f64) -> Result<Self> {
        check_step("eps", eps)?;
        check_partition(obj, &partition)?;
        Ok(FixedOrderFlow { obj, partition, eps })
    }
}

impl VectorField for FixedOrderFlow<'_> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn eval(&self, _t: f64, w: &[f64], out: &mut [f64]) -> Result<()> {
        check_state(self.obj, w, out)?;
        let p = self.obj.dim();
        let m = self.partition.m();
        let mf = m as f64;
        let grads: Vec<Vec<f64>> = self
            .partition
            .batches()
            .iter()
            .map(|b| self.obj.grad(w, Batch::Indices(b)))
            .collect::<std::result::Result<_, _>>()?;
        let mut gbar = vec![0.0; p];
        for gk in &grads {
            axpy(&mut gbar, 1.0 / mf, gk);
        }
        let mut prefix = vec![0.0; p];
        let mut xi = vec![0.0; p];
        let mut hbar_gbar = vec![0.0; p];
        let mut tmp = vec![0.0; p];
        for (j, b) in self.partition.batches().iter().enumerate() {
            if j > 0 {
                self.obj.hvp(w, Batch::Indices(b), &prefix, &mut tmp)?;
                axpy(&mut xi, 1.0, &tmp);
            }
            self.obj.hvp(w, Batch::Indices(b), &gbar, &mut tmp)?;
            axpy(&mut hbar_gbar, 1.0 / mf, &tmp);
            axpy(&mut prefix, 1.0, &grads[j]);
        }
        for k in 0..p {
            out[k] = -gbar[k] + self.eps / mf * xi[k] - 0.5 * mf * self.eps * hbar_gbar[k];
        }
        Ok(())
    }
}

/// GD's modified equation to second order (Hairer–Lubich–Wanner IX; `docs/theory/modified-flows.md` §Second
/// order of GD):
/// `ẇ = −g − (h/2) H g + h² (−(1/12) T3[g, g] − (1/3) H² g)`. GD follows it with local error `O(h⁴)`.
/// Beyond first order it is not a gradient field. Cost per RHS: 1 gradient + 2 HVPs + 1 third-order product.
pub struct GdSecondOrderFlow<'a> {
    obj: &'a dyn Objective,
    h: f64,
}

impl<'a> GdSecondOrderFlow<'a> {
    /// Errors unless `h > 0`.
    pub fn new(obj: &'a dyn Objective, h: f64) -> Result<Self> {
        check_step("h", h)?;
        Ok(GdSecondOrderFlow { obj, h })
    }
}

impl VectorField for GdSecondOrderFlow<'_> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn eval(&self, _t: f64, w: &[f64], out: &mut [f64]) -> Result<()> {
        check_state(self.obj, w, out)?;
        let p = self.obj.dim();
        let g = self.obj.grad(w, Batch::Full)?;
        let hg = self.obj.hvp_vec(w, Batch::Full, &g)?;
        let hhg = self.obj.hvp_vec(w, Batch::Full, &hg)?;
        let mut t3 = vec![0.0; p];
        self.obj.third_order(w, Batch::Full, &g, &g, &mut t3)?;
        let h = self.h;
        for j in 0..p {
            out[j] = -g[j] - 0.5 * h * hg[j] + h * h * (-t3[j] / 12.0 - hhg[j] / 3.0);
        }
        Ok(())
    }
}

/// How the principal flow treats eigenvalues with `hλ_i ≥ 1`, where `log(1 − hλ_i)` is complex
/// (`log|1 − hλ_i| + iπ`: GD's period-2 oscillation in that direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalBranch {
    /// `hλ_i ≥ 1` is a [`FlowError::Invalid`] naming `h·λ` (a real flow cannot follow GD there).
    Reject,
    /// Use the real part `log|1 − hλ_i|` for `hλ_i > 1`: the flow follows the *modulus* of GD's
    /// oscillating component (`|x_n| = |1 − hλ|^n |x_0|` on a quadratic) and drops the sign `(−1)^n`;
    /// for `hλ_i > 2` it grows, reproducing divergence. `hλ_i = 1` (log 0) is still an error.
    RealPart,
}

/// The principal flow (Rosca et al. 2023): with `H = Σ_i λ_i u_i u_iᵀ`,
/// `ẇ = Σ_i (log(1 − hλ_i)/(hλ_i)) (gᵀu_i) u_i` (the coefficient is `−1` at `λ_i = 0`). Exact for GD on
/// quadratics at times `t = nh` when all `hλ_i < 1`; its `h`-expansion gives the `−h^p/(p+1) H^p g` terms.
/// Cost per RHS: 1 gradient + a dense Hessian (`p` HVPs) + a `p × p` symmetric eigendecomposition, so it is
/// meant for small `p`.
pub struct PrincipalFlow<'a> {
    obj: &'a dyn Objective,
    h: f64,
    branch: PrincipalBranch,
}

impl<'a> PrincipalFlow<'a> {
    /// Errors unless `h > 0`.
    pub fn new(obj: &'a dyn Objective, h: f64, branch: PrincipalBranch) -> Result<Self> {
        check_step("h", h)?;
        Ok(PrincipalFlow { obj, h, branch })
    }

    /// The spectral coefficient `log(1 − x)/x` at `x = hλ`, following `branch`.
    pub fn coefficient(x: f64, branch: PrincipalBranch) -> Result<f64> {
        if !x.is_finite() {
            return Err(FlowError::invalid("h·λ", format!("non-finite {x}")));
        }
        if x.abs() < 1e-8 {
            // log(1 − x)/x = −1 − x/2 − x²/3 − …
            return Ok(-1.0 - x / 2.0 - x * x / 3.0);
        }
        if x < 1.0 {
            return Ok((-x).ln_1p() / x);
        }
        match branch {
            PrincipalBranch::Reject => Err(FlowError::invalid(
                "h·λ",
                format!("{x} ≥ 1: log(1 − hλ) is complex (GD oscillates); use PrincipalBranch::RealPart"),
            )),
            PrincipalBranch::RealPart if x == 1.0 => Err(FlowError::invalid("h·λ", "= 1: log(1 − hλ) = −∞")),
            PrincipalBranch::RealPart => Ok((x - 1.0).ln() / x),
        }
    }
}

impl VectorField for PrincipalFlow<'_> {
    fn dim(&self) -> usize {
        self.obj.dim()
    }
    fn eval(&self, _t: f64, w: &[f64], out: &mut [f64]) -> Result<()> {
        check_state(self.obj, w, out)?;
        let p = self.obj.dim();
        let g = DVector::from_vec(self.obj.grad(w, Batch::Full)?);
        let hess: DMatrix<f64> = self.obj.dense_hessian(w, Batch::Full)?;
        let eig = hess.symmetric_eigen();
        let mut v = DVector::<f64>::zeros(p);
        for i in 0..p {
            let u = eig.eigenvectors.column(i);
            let c = Self::coefficient(self.h * eig.eigenvalues[i], self.branch)?;
            v.axpy(c * u.dot(&g), &u, 1.0);
        }
        out.copy_from_slice(v.as_slice());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dop853::Dop853Options;
    use crate::field::integrate_field;
    use imreg_objective::models::{LogCoshQuartic, PerExampleQuadratic};
    use imreg_objective::Remainder;

    /// The gradient fields are `−∇` of their modified losses: central differences of the loss values in
    /// random directions (error O(r²) ≈ 1e-10) against the field.
    #[test]
    fn fields_are_negative_gradients_of_modified_losses() {
        let obj = LogCoshQuartic::random(6, 3, 11).unwrap();
        let w = [0.4, -0.3, 0.8];
        let eps = 0.3;
        let part = Partition::consecutive(6, 2, Remainder::Error).unwrap();
        type Case<'a> = (Box<dyn VectorField + 'a>, Box<dyn Fn(&[f64]) -> f64 + 'a>);
        let cases: Vec<Case<'_>> = vec![
            (
                Box::new(GradientFlow::new(&obj)),
                Box::new(|x: &[f64]| obj.loss(x, Batch::Full).unwrap()),
            ),
            (
                Box::new(ModifiedGdFlow::new(&obj, eps).unwrap()),
                Box::new(|x: &[f64]| modified_loss_gd(&obj, x, eps).unwrap()),
            ),
            (
                Box::new(SgdFlow::new(&obj, part.clone(), eps).unwrap()),
                Box::new(|x: &[f64]| modified_loss_sgd(&obj, &part, x, eps).unwrap()),
            ),
            (
                Box::new(PartitionAveragedSgdFlow::new(&obj, eps, 2).unwrap()),
                Box::new(|x: &[f64]| modified_loss_sgd_expected(&obj, x, eps, 2).unwrap()),
            ),
        ];
        let mut rng = imreg_objective::rng::stream(3, 0);
        for (k, (field, loss)) in cases.iter().enumerate() {
            let mut f = vec![0.0; 3];
            field.eval(0.0, &w, &mut f).unwrap();
            for _ in 0..3 {
                let u = imreg_objective::rng::normal_vec(&mut rng, 3);
                let r = 1e-5;
                let wp: Vec<f64> = w.iter().zip(&u).map(|(a, b)| a + r * b).collect();
                let wm: Vec<f64> = w.iter().zip(&u).map(|(a, b)| a - r * b).collect();
                let fd = (loss(&wp) - loss(&wm)) / (2.0 * r);
                let dir: f64 = f.iter().zip(&u).map(|(a, b)| a * b).sum();
                assert!(
                    (fd + dir).abs() < 1e-7 * (1.0 + fd.abs()),
                    "case {k}: {fd} vs {}",
                    -dir
                );
            }
        }
    }

    /// Averaging the fixed-order field over all m! orders gives the C_SGD field exactly
    /// (docs/theory/modified-flows.md §Fixed-order flow).
    #[test]
    fn fixed_order_fields_average_to_csgd() {
        let obj = LogCoshQuartic::random(6, 3, 5).unwrap();
        let w = [0.2, 0.5, -0.9];
        let eps = 0.2;
        let part = Partition::consecutive(6, 2, Remainder::Error).unwrap();
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        let mut mean = [0.0; 3];
        for o in orders {
            let f = FixedOrderFlow::new(&obj, part.reordered(&o).unwrap(), eps).unwrap();
            let mut v = vec![0.0; 3];
            f.eval(0.0, &w, &mut v).unwrap();
            axpy(&mut mean, 1.0 / 6.0, &v);
        }
        let mut s = vec![0.0; 3];
        SgdFlow::new(&obj, part, eps)
            .unwrap()
            .eval(0.0, &w, &mut s)
            .unwrap();
        for j in 0..3 {
            assert!((mean[j] - s[j]).abs() < 1e-13, "{mean:?} vs {s:?}");
        }
    }

    /// The second-order field equals the C_GD field plus the h² term, with the identity
    /// `T3[g,g] + 2H²g = ∇(gᵀHg)` checked by central differences.
    #[test]
    fn second_order_term_identity() {
        let obj = LogCoshQuartic::random(5, 2, 8).unwrap();
        let w = [0.7, -0.4];
        let h = 0.1;
        let mut f2 = vec![0.0; 2];
        GdSecondOrderFlow::new(&obj, h)
            .unwrap()
            .eval(0.0, &w, &mut f2)
            .unwrap();
        let mut f1 = vec![0.0; 2];
        ModifiedGdFlow::new(&obj, h)
            .unwrap()
            .eval(0.0, &w, &mut f1)
            .unwrap();
        let q = |x: &[f64]| {
            let g = obj.grad(x, Batch::Full).unwrap();
            let hg = obj.hvp_vec(x, Batch::Full, &g).unwrap();
            g.iter().zip(&hg).map(|(a, b)| a * b).sum::<f64>()
        };
        let g = obj.grad(&w, Batch::Full).unwrap();
        let hg = obj.hvp_vec(&w, Batch::Full, &g).unwrap();
        let hhg = obj.hvp_vec(&w, Batch::Full, &hg).unwrap();
        for j in 0..2 {
            let r = 1e-5;
            let mut wp = w;
            let mut wm = w;
            wp[j] += r;
            wm[j] -= r;
            let grad_q = (q(&wp) - q(&wm)) / (2.0 * r);
            // h² f_3 = h²(−(1/12)∇(gᵀHg) − (1/6)H²g)
            let expect = f1[j] + h * h * (-grad_q / 12.0 - hhg[j] / 6.0);
            assert!((f2[j] - expect).abs() < 1e-9, "{} vs {expect}", f2[j]);
        }
    }

    /// On a quadratic with hλ_i < 1 the principal flow at t = nh reproduces GD exactly; with hλ > 1 and
    /// the real-part branch it reproduces |GD| componentwise in the eigenbasis.
    #[test]
    fn principal_flow_exact_on_quadratics() {
        let a = DMatrix::from_row_slice(2, 2, &[2.0, 0.6, 0.6, 1.0]);
        let b = DVector::from_vec(vec![0.5, -0.2]);
        let obj = PerExampleQuadratic::new(vec![a.clone()], vec![b.clone()]).unwrap();
        let w_star = a.clone().lu().solve(&b).unwrap();
        let eig = a.clone().symmetric_eigen();
        let opts = Dop853Options::with_tol(1e-13, 1e-15);
        for (h, branch) in [(0.3, PrincipalBranch::Reject), (0.6, PrincipalBranch::RealPart)] {
            // λ_max ≈ 2.26: h = 0.6 gives hλ_max ≈ 1.36 > 1.
            let n_steps = 5;
            let mut w = DVector::from_vec(vec![1.0, -1.0]);
            let w0 = w.clone();
            for _ in 0..n_steps {
                w = &w - h * (&a * &w - &b);
            }
            let (wf, _) = integrate_field(
                &PrincipalFlow::new(&obj, h, branch).unwrap(),
                0.0,
                w0.as_slice(),
                n_steps as f64 * h,
                &opts,
            )
            .unwrap();
            for i in 0..2 {
                let u = eig.eigenvectors.column(i);
                let gd = u.dot(&(&w - &w_star));
                let fl = u.dot(&(DVector::from_column_slice(&wf) - &w_star));
                let expect = if h * eig.eigenvalues[i] < 1.0 {
                    gd
                } else {
                    gd.abs() * (u.dot(&(&w0 - &w_star))).signum()
                };
                assert!(
                    (fl - expect).abs() < 1e-10,
                    "h = {h}, i = {i}: flow {fl} vs GD {gd}"
                );
            }
        }
        let err = integrate_field(
            &PrincipalFlow::new(&obj, 0.6, PrincipalBranch::Reject).unwrap(),
            0.0,
            &[1.0, 0.0],
            1.0,
            &opts,
        )
        .unwrap_err();
        assert!(matches!(err, FlowError::Invalid { field: "h·λ", .. }));
    }

    #[test]
    fn bad_step_sizes_are_typed_errors() {
        let obj = LogCoshQuartic::random(4, 2, 1).unwrap();
        assert!(matches!(
            ModifiedGdFlow::new(&obj, 0.0),
            Err(FlowError::NonPositiveStep { name: "eps", .. })
        ));
        assert!(matches!(
            GdSecondOrderFlow::new(&obj, -1.0),
            Err(FlowError::NonPositiveStep { name: "h", .. })
        ));
        assert!(PartitionAveragedSgdFlow::new(&obj, 0.1, 5).is_err());
        let part = Partition::consecutive(6, 2, Remainder::Error).unwrap();
        assert!(matches!(
            SgdFlow::new(&obj, part, 0.1),
            Err(FlowError::Invalid {
                field: "partition",
                ..
            })
        ));
        let mut out = vec![0.0; 2];
        assert!(GradientFlow::new(&obj).eval(0.0, &[0.0], &mut out).is_err());
    }
}
