//! `check_grads` in the JAX style: JVPs against central differences in random directions, VJPs through the
//! dot-product identity `⟨u, J v⟩ = ⟨Jᵀu, v⟩`, recursively to order 2.
use crate::error::{AdError, Result};
use crate::program::{self, Program};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A differentiable map `R^n → R^m` with its JVP and VJP.
pub trait Differentiable {
    fn dim_in(&self) -> usize;
    fn dim_out(&self) -> usize;
    fn eval(&self, x: &[f64]) -> Result<Vec<f64>>;
    /// `J(x) v`.
    fn jvp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>>;
    /// `J(x)ᵀ u`.
    fn vjp(&self, x: &[f64], u: &[f64]) -> Result<Vec<f64>>;
    /// The map `x ↦ J(x) v` as a differentiable function, if its derivatives are available (for order 2).
    fn directional(&self, _v: &[f64]) -> Option<Box<dyn Differentiable + '_>> {
        None
    }
}

/// Options of [`check_grads`].
#[derive(Clone, Debug)]
pub struct CheckGradsOptions {
    /// 1 checks the first derivative; 2 also checks the derivative of `x ↦ J(x) v`.
    pub order: usize,
    /// Random directions per check.
    pub directions: usize,
    /// Central-difference step (relative to `max(1, ‖x‖_∞)`).
    pub eps: f64,
    /// Relative tolerance for JVP vs finite differences.
    pub fd_rtol: f64,
    /// Relative tolerance for the dot-product identity (exact up to rounding).
    pub identity_rtol: f64,
    pub seed: u64,
}

impl Default for CheckGradsOptions {
    fn default() -> Self {
        // The central difference has truncation error O(eps²‖f'''‖) and rounding error O(u‖f‖/eps); eps = 1e-5
        // balances them near 1e-10 relative for O(1) functions, so 1e-6 leaves two decades of margin.
        CheckGradsOptions {
            order: 2,
            directions: 4,
            eps: 1e-5,
            fd_rtol: 1e-6,
            identity_rtol: 1e-10,
            seed: 0,
        }
    }
}

/// What [`check_grads`] measured.
#[derive(Clone, Debug)]
pub struct CheckGradsReport {
    /// Largest error `‖Jv − FD‖ / max(‖Jv‖, ‖FD‖, ‖Jᵀu‖)` of the JVP against central differences (unit `u`, `v`).
    pub jvp_fd_rel_err: f64,
    /// Largest violation of `⟨u, J v⟩ = ⟨Jᵀu, v⟩`, relative to the same scale.
    pub vjp_identity_rel_err: f64,
    /// The same for the derivative maps (order 2).
    pub second: Option<Box<CheckGradsReport>>,
    pub passed: bool,
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `Σ_i a_i b_i`.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn random_unit(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    let nv = norm(&v).max(1e-300);
    v.into_iter().map(|x| x / nv).collect()
}

/// Checks `f`'s JVP against central differences and its VJP against the JVP by the dot-product identity, in
/// seeded random directions, and (with `order = 2`) the same for `x ↦ J(x) v`.
pub fn check_grads(f: &dyn Differentiable, x: &[f64], opts: &CheckGradsOptions) -> Result<CheckGradsReport> {
    if x.len() != f.dim_in() {
        return Err(AdError::Length {
            what: "check point",
            expected: f.dim_in(),
            got: x.len(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let scale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let h = opts.eps * scale;
    let mut jvp_err = 0.0f64;
    let mut id_err = 0.0f64;
    let mut second: Option<Box<CheckGradsReport>> = None;
    for k in 0..opts.directions {
        let v = random_unit(&mut rng, f.dim_in());
        let u = random_unit(&mut rng, f.dim_out());
        let jv = f.jvp(x, &v)?;
        let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let (fp, fm) = (f.eval(&xp)?, f.eval(&xm)?);
        let fd: Vec<f64> = fp.iter().zip(&fm).map(|(a, b)| (a - b) / (2.0 * h)).collect();
        let jtu = f.vjp(x, &u)?;
        // Both errors are measured against the size of the derivative, `scale = max(‖Jv‖, ‖FD‖, ‖Jᵀu‖)` (v and u
        // are unit vectors), not against `‖Jv‖` alone: a random direction nearly orthogonal to a gradient makes
        // `∇f·v` small while the difference's error, O(h²‖f‴‖ + ε_mach|f|/h), does not shrink with it.
        let diff: Vec<f64> = jv.iter().zip(&fd).map(|(a, b)| a - b).collect();
        let scale = norm(&jv).max(norm(&fd)).max(norm(&jtu)).max(1e-12);
        jvp_err = jvp_err.max(norm(&diff) / scale);
        let (ujv, jtuv) = (dot(&u, &jv), dot(&jtu, &v));
        id_err = id_err.max((ujv - jtuv).abs() / scale.max(ujv.abs()).max(jtuv.abs()));
        if opts.order >= 2 && k == 0 {
            if let Some(d) = f.directional(&v) {
                let sub = CheckGradsOptions {
                    order: opts.order - 1,
                    seed: opts.seed + 1,
                    ..opts.clone()
                };
                second = Some(Box::new(check_grads(d.as_ref(), x, &sub)?));
            }
        }
    }
    let passed = jvp_err <= opts.fd_rtol
        && id_err <= opts.identity_rtol
        && second.as_ref().is_none_or(|s| s.passed)
        && (opts.order < 2 || second.is_some());
    Ok(CheckGradsReport {
        jvp_fd_rel_err: jvp_err,
        vjp_identity_rel_err: id_err,
        second,
        passed,
    })
}

/// A scalar [`Program`] seen as a map `R^n → R^1` (JVP `∇f·v`, VJP `u ∇f`), whose directional derivative
/// `x ↦ ∇f(x)·v` is checked with the HVP at order 2.
pub struct ScalarFn<'a, P: Program + ?Sized>(pub &'a P);

impl<P: Program + ?Sized> Differentiable for ScalarFn<'_, P> {
    fn dim_in(&self) -> usize {
        self.0.n_inputs()
    }
    fn dim_out(&self) -> usize {
        1
    }
    fn eval(&self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(vec![program::value(self.0, x)?])
    }
    fn jvp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        Ok(vec![program::jvp(self.0, x, v)?.1])
    }
    fn vjp(&self, x: &[f64], u: &[f64]) -> Result<Vec<f64>> {
        let (_, g) = program::grad(self.0, x)?;
        Ok(g.into_iter().map(|gi| gi * u[0]).collect())
    }
    fn directional(&self, v: &[f64]) -> Option<Box<dyn Differentiable + '_>> {
        Some(Box::new(Directional {
            p: self.0,
            v: v.to_vec(),
        }))
    }
}

/// `x ↦ ∇f(x)·v`: derivative `vᵀ∇²f(x)`, obtained from the HVP (whose own order-3 check uses
/// [`program::third_order`]).
struct Directional<'a, P: Program + ?Sized> {
    p: &'a P,
    v: Vec<f64>,
}

impl<P: Program + ?Sized> Differentiable for Directional<'_, P> {
    fn dim_in(&self) -> usize {
        self.p.n_inputs()
    }
    fn dim_out(&self) -> usize {
        1
    }
    fn eval(&self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(vec![program::jvp(self.p, x, &self.v)?.1])
    }
    fn jvp(&self, x: &[f64], w: &[f64]) -> Result<Vec<f64>> {
        Ok(vec![dot(&program::hvp(self.p, x, &self.v)?, w)])
    }
    fn vjp(&self, x: &[f64], u: &[f64]) -> Result<Vec<f64>> {
        Ok(program::hvp(self.p, x, &self.v)?
            .into_iter()
            .map(|h| h * u[0])
            .collect())
    }
}

/// The gradient map `x ↦ ∇f(x)` of a scalar program (`R^n → R^n`, Jacobian = the Hessian), with the
/// third-order derivative as the derivative of `x ↦ ∇²f(x) v`.
pub struct GradientMap<'a, P: Program + ?Sized>(pub &'a P);

impl<P: Program + ?Sized> Differentiable for GradientMap<'_, P> {
    fn dim_in(&self) -> usize {
        self.0.n_inputs()
    }
    fn dim_out(&self) -> usize {
        self.0.n_inputs()
    }
    fn eval(&self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(program::grad(self.0, x)?.1)
    }
    fn jvp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        program::hvp(self.0, x, v)
    }
    fn vjp(&self, x: &[f64], u: &[f64]) -> Result<Vec<f64>> {
        program::hvp(self.0, x, u)
    }
    fn directional(&self, v: &[f64]) -> Option<Box<dyn Differentiable + '_>> {
        Some(Box::new(HessianAlong {
            p: self.0,
            v: v.to_vec(),
        }))
    }
}

/// `x ↦ ∇²f(x) v`, with Jacobian `w ↦ T3[v, w]` (symmetric in its last two slots, so also its transpose).
struct HessianAlong<'a, P: Program + ?Sized> {
    p: &'a P,
    v: Vec<f64>,
}

impl<P: Program + ?Sized> Differentiable for HessianAlong<'_, P> {
    fn dim_in(&self) -> usize {
        self.p.n_inputs()
    }
    fn dim_out(&self) -> usize {
        self.p.n_inputs()
    }
    fn eval(&self, x: &[f64]) -> Result<Vec<f64>> {
        program::hvp(self.p, x, &self.v)
    }
    fn jvp(&self, x: &[f64], w: &[f64]) -> Result<Vec<f64>> {
        program::third_order(self.p, x, &self.v, w)
    }
    fn vjp(&self, x: &[f64], u: &[f64]) -> Result<Vec<f64>> {
        program::third_order(self.p, x, &self.v, u)
    }
}
