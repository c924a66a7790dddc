//! The `Landscape` trait: a family of per-example losses `l_x(θ)` with exact derivatives up to third order,
//! and the distributions `D` over `x` with the ways imreg integrates against them.
use crate::error::{check_len, Result, TaylorError};
use crate::quadrature::gauss_hermite_product;
use crate::tensor::Tensor3;
use imreg_objective::rng;
use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A per-example loss `l_x(θ)`, `θ ∈ ℝ^p`, `x ∈ ℝ^d`, with hand-written derivatives:
/// value, `∇l_x`, `∇∇l_x` and the third-derivative tensor `∇³l_x` (Tenka's `l_x`).
///
/// The lengths of `x` and `θ` are checked once, by the provided entry points ([`Landscape::loss`],
/// [`Landscape::grad`], [`Landscape::hessian`], [`Landscape::third`] call [`Landscape::check_args`]), which
/// return typed errors and never panic; an implementation writes the `*_unchecked` computations, which may
/// assume `|x| = d` and `|θ| = p`.
pub trait Landscape: Send + Sync {
    /// A short name with the formula.
    fn name(&self) -> String;
    /// Parameter dimension `p`.
    fn dim(&self) -> usize;
    /// Data dimension `d` (length of `x`).
    fn data_dim(&self) -> usize;
    /// `l_x(θ)` for checked lengths.
    fn loss_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<f64>;
    /// `∇_θ l_x(θ)` for checked lengths.
    fn grad_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DVector<f64>>;
    /// `∇_θ∇_θ l_x(θ)` for checked lengths.
    fn hessian_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DMatrix<f64>>;
    /// `∇³_θ l_x(θ)` for checked lengths.
    fn third_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<Tensor3>;

    /// `|x| = d` and `|θ| = p`, else a typed length error.
    fn check_args(&self, x: &[f64], theta: &[f64]) -> Result<()> {
        check_len("x", x.len(), self.data_dim())?;
        check_len("theta", theta.len(), self.dim())
    }
    /// `l_x(θ)`.
    fn loss(&self, x: &[f64], theta: &[f64]) -> Result<f64> {
        self.check_args(x, theta)?;
        self.loss_unchecked(x, theta)
    }
    /// `∇_θ l_x(θ)`.
    fn grad(&self, x: &[f64], theta: &[f64]) -> Result<DVector<f64>> {
        self.check_args(x, theta)?;
        self.grad_unchecked(x, theta)
    }
    /// `∇_θ∇_θ l_x(θ)` (symmetric `p × p`).
    fn hessian(&self, x: &[f64], theta: &[f64]) -> Result<DMatrix<f64>> {
        self.check_args(x, theta)?;
        self.hessian_unchecked(x, theta)
    }
    /// `∇³_θ l_x(θ)` (symmetric `p × p × p`).
    fn third(&self, x: &[f64], theta: &[f64]) -> Result<Tensor3> {
        self.check_args(x, theta)?;
        self.third_unchecked(x, theta)
    }
}

/// A finite distribution: support points `x_i ∈ ℝ^d` with probabilities `p_i`.
#[derive(Clone, Debug, PartialEq)]
pub struct FiniteDist {
    points: Vec<Vec<f64>>,
    probs: Vec<f64>,
}

impl FiniteDist {
    /// Validates: at least one point, equal lengths, all points of the same dimension, probabilities finite,
    /// non-negative and summing to 1 within 1e-12.
    pub fn new(points: Vec<Vec<f64>>, probs: Vec<f64>) -> Result<Self> {
        if points.is_empty() {
            return Err(TaylorError::Probabilities {
                reason: "empty support".into(),
            });
        }
        check_len("probs", probs.len(), points.len())?;
        let d = points[0].len();
        for p in &points {
            check_len("support point", p.len(), d)?;
            if let Some(v) = p.iter().find(|v| !v.is_finite()) {
                return Err(TaylorError::InvalidParam {
                    name: "support point",
                    value: *v,
                    reason: "must be finite",
                });
            }
        }
        if let Some((i, p)) = probs
            .iter()
            .enumerate()
            .find(|(_, p)| !(p.is_finite() && **p >= 0.0))
        {
            return Err(TaylorError::Probabilities {
                reason: format!("probs[{i}] = {p} is not a probability"),
            });
        }
        let total: f64 = probs.iter().sum();
        if (total - 1.0).abs() > 1e-12 {
            return Err(TaylorError::Probabilities {
                reason: format!("probabilities sum to {total}, not 1"),
            });
        }
        Ok(FiniteDist { points, probs })
    }

    /// The uniform distribution on the given points (a finite dataset).
    pub fn uniform(points: Vec<Vec<f64>>) -> Result<Self> {
        let n = points.len().max(1);
        FiniteDist::new(points, vec![1.0 / n as f64; n])
    }

    /// Rademacher `x ∈ {−1, +1}` with probability ½ each (the toy of `docs/theory/tenka.md` §Reference
    /// values).
    pub fn rademacher() -> Self {
        FiniteDist {
            points: vec![vec![-1.0], vec![1.0]],
            probs: vec![0.5, 0.5],
        }
    }

    pub fn points(&self) -> &[Vec<f64>] {
        &self.points
    }

    pub fn probs(&self) -> &[f64] {
        &self.probs
    }

    /// Support size.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Always false (the support is never empty).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Data dimension `d`.
    pub fn data_dim(&self) -> usize {
        self.points.first().map_or(0, |p| p.len())
    }
}

/// A distribution `D` over the data `x`.
#[derive(Clone, Debug, PartialEq)]
pub enum DataDist {
    /// Finite support with probabilities (Rademacher toys, finite datasets).
    Finite(FiniteDist),
    /// `x ~ N(0, I_d)`.
    StandardNormal { dim: usize },
}

/// How to integrate against a [`DataDist`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Integration {
    /// Exact weighted sum over a finite support (error for continuous distributions).
    Exact,
    /// Tensor-product Gauss–Hermite with `nodes` points per dimension (for `StandardNormal`; a finite
    /// distribution is integrated exactly).
    Quadrature { nodes: usize },
    /// `samples` seeded i.i.d. draws, each of weight `1/samples`.
    MonteCarlo { samples: usize, seed: u64 },
}

impl DataDist {
    /// Data dimension `d`.
    pub fn data_dim(&self) -> usize {
        match self {
            DataDist::Finite(f) => f.data_dim(),
            DataDist::StandardNormal { dim } => *dim,
        }
    }

    /// The finite distribution, or [`TaylorError::NotFinite`].
    pub fn as_finite(&self) -> Result<&FiniteDist> {
        match self {
            DataDist::Finite(f) => Ok(f),
            DataDist::StandardNormal { dim } => Err(TaylorError::NotFinite {
                what: format!("N(0, I_{dim}) (continuous support)"),
            }),
        }
    }

    /// One draw `x ~ D` from the stream.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        match self {
            DataDist::Finite(f) => {
                let u: f64 = rng.random();
                let mut acc = 0.0;
                for (p, w) in f.points.iter().zip(&f.probs) {
                    acc += w;
                    if u < acc {
                        return p.clone();
                    }
                }
                f.points.last().cloned().unwrap_or_default()
            }
            DataDist::StandardNormal { dim } => rng::normal_vec(rng, *dim),
        }
    }

    /// The weighted point set that realizes `E_{x~D}[·]` under the chosen integration.
    pub fn measure(&self, how: Integration) -> Result<Measure> {
        match (self, how) {
            (DataDist::Finite(f), Integration::Exact | Integration::Quadrature { .. }) => Ok(Measure {
                points: f.points.clone(),
                weights: f.probs.clone(),
            }),
            (DataDist::StandardNormal { .. }, Integration::Exact) => {
                Err(self.as_finite().err().unwrap_or(TaylorError::NotFinite {
                    what: "a continuous distribution".into(),
                }))
            }
            (DataDist::StandardNormal { dim }, Integration::Quadrature { nodes }) => {
                let (points, weights) = gauss_hermite_product(nodes, *dim)?;
                Ok(Measure { points, weights })
            }
            (_, Integration::MonteCarlo { samples, seed }) => {
                if samples == 0 {
                    return Err(TaylorError::InvalidParam {
                        name: "samples",
                        value: 0.0,
                        reason: "Monte Carlo needs at least one sample",
                    });
                }
                let mut r = rng::stream(seed, 0);
                let points: Vec<Vec<f64>> = (0..samples).map(|_| self.sample(&mut r)).collect();
                Ok(Measure {
                    points,
                    weights: vec![1.0 / samples as f64; samples],
                })
            }
        }
    }
}

/// A weighted point set `E[f] ≈ Σ_i w_i f(x_i)` (exact support, quadrature nodes or Monte Carlo draws).
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    pub points: Vec<Vec<f64>>,
    pub weights: Vec<f64>,
}

impl Measure {
    /// The population (test) loss `l(θ) = E_x[l_x(θ)]`, summed in the fixed order of the points.
    pub fn loss<L: Landscape + ?Sized>(&self, landscape: &L, theta: &[f64]) -> Result<f64> {
        let mut s = 0.0;
        for (x, w) in self.points.iter().zip(&self.weights) {
            s += w * landscape.loss(x, theta)?;
        }
        Ok(s)
    }

    /// The population gradient `G(θ) = E_x[∇l_x(θ)]`.
    pub fn grad<L: Landscape + ?Sized>(&self, landscape: &L, theta: &[f64]) -> Result<DVector<f64>> {
        let mut g = DVector::zeros(landscape.dim());
        for (x, w) in self.points.iter().zip(&self.weights) {
            g.axpy(*w, &landscape.grad(x, theta)?, 1.0);
        }
        Ok(g)
    }
}

/// Largest relative errors of the hand-written derivatives against central finite differences in random
/// directions (see [`finite_difference_check`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FdReport {
    /// `|(l(θ+ru) − l(θ−ru))/2r − ∇l·u|`, relative.
    pub grad: f64,
    /// `‖(∇l(θ+ru) − ∇l(θ−ru))/2r − H u‖`, relative.
    pub hessian: f64,
    /// `‖(H(θ+ru) − H(θ−ru))/2r − ∇³l[u]‖`, relative.
    pub third: f64,
    /// Largest asymmetry of the Hessian and third tensor under index swaps.
    pub asymmetry: f64,
}

/// Checks a landscape's derivatives at `(x, θ)` against central differences with step `r` in `dirs`
/// seeded random unit directions. Errors are relative to `max(1, scale)`; the truncation error is
/// `O(r²)` times the next derivative.
pub fn finite_difference_check<L: Landscape + ?Sized>(
    landscape: &L,
    x: &[f64],
    theta: &[f64],
    r: f64,
    dirs: usize,
    seed: u64,
) -> Result<FdReport> {
    landscape.check_args(x, theta)?;
    let p = landscape.dim();
    let mut s = rng::stream(seed, 17);
    let g = landscape.grad(x, theta)?;
    let h = landscape.hessian(x, theta)?;
    let t = landscape.third(x, theta)?;
    let mut rep = FdReport {
        grad: 0.0,
        hessian: 0.0,
        third: 0.0,
        asymmetry: 0.0,
    };
    for i in 0..p {
        for j in 0..p {
            rep.asymmetry = rep.asymmetry.max((h[(i, j)] - h[(j, i)]).abs());
            for k in 0..p {
                let a = t.get(i, j, k).unwrap_or(f64::NAN);
                for b in [t.get(j, i, k), t.get(i, k, j), t.get(k, j, i)] {
                    rep.asymmetry = rep.asymmetry.max((a - b.unwrap_or(f64::NAN)).abs());
                }
            }
        }
    }
    for _ in 0..dirs {
        let u = DVector::from_vec(rng::normal_vec(&mut s, p));
        let u = &u / u.norm().max(f64::MIN_POSITIVE);
        let plus: Vec<f64> = theta.iter().zip(u.iter()).map(|(a, b)| a + r * b).collect();
        let minus: Vec<f64> = theta.iter().zip(u.iter()).map(|(a, b)| a - r * b).collect();
        let dl = (landscape.loss(x, &plus)? - landscape.loss(x, &minus)?) / (2.0 * r);
        let gu = g.dot(&u);
        rep.grad = rep.grad.max((dl - gu).abs() / gu.abs().max(1.0));
        let dg = (landscape.grad(x, &plus)? - landscape.grad(x, &minus)?) / (2.0 * r);
        let hu = &h * &u;
        rep.hessian = rep.hessian.max((dg - &hu).norm() / hu.norm().max(1.0));
        let dh = (landscape.hessian(x, &plus)? - landscape.hessian(x, &minus)?) / (2.0 * r);
        let tu = t.apply_last(&u);
        rep.third = rep.third.max((dh - &tu).norm() / tu.norm().max(1.0));
    }
    Ok(rep)
}
