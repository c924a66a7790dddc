//! The depth-2 linear network with one input and one output (Beneventano & Woodworth 2025; theory in
//! `docs/theory/scalar-net.md`): parameters (a, b) ∈ Rᵏ × Rᵏ, end-to-end model m = aᵀb, loss
//!
//! `L(a, b) = (σ²/2)(aᵀb − Φ)²`,
//!
//! which is the data-form loss `(1/2n) Σᵢ (aᵀb xᵢ − yᵢ)²` up to a constant, with `σ² = mean xᵢ²` and
//! `Φ = Σ xᵢyᵢ / Σ xᵢ²` ([`ScalarNetState::from_data`]). The canonical loss of the note is σ² = 1. GD with step η
//! on the data form is GD with the **effective step** η σ² on the canonical loss, and every Hessian
//! eigenvalue carries the factor σ².
//!
//! Quantities (all of the canonical loss): ε = m − Φ (residual), λ = ‖a‖² + ‖b‖² (norm), Q = ‖a‖² − ‖b‖²
//! (imbalance), s = a + b, d = a − b, S = ‖s‖², D = ‖d‖², P = S·D = λ² − 4m².
use crate::error::{check_finite, check_step, EosError, Result};
use imreg_spectra::dot;
use nalgebra::DMatrix;

/// A state (a, b) of the width-k depth-2 linear network together with its target Φ and data scale σ².
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarNetState {
    a: Vec<f64>,
    b: Vec<f64>,
    phi: f64,
    sigma2: f64,
}

/// The invariants and auxiliary quantities of a state (canonical loss, σ² not applied).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Invariants {
    /// m = aᵀb, the end-to-end model.
    pub m: f64,
    /// ε = aᵀb − Φ, the residual.
    pub residual: f64,
    /// λ = ‖a‖² + ‖b‖², the norm (= sharpness at a global minimum).
    pub norm: f64,
    /// Q = ‖a‖² − ‖b‖², the imbalance (conserved by GF, contracted by GD).
    pub imbalance: f64,
    /// S = ‖a + b‖².
    pub s: f64,
    /// D = ‖a − b‖².
    pub d: f64,
    /// P = S·D = λ² − 4m² (conserved by GF; √P is the nuclear norm of aaᵀ − bbᵀ).
    pub p: f64,
}

impl ScalarNetState {
    /// A width-k state with the canonical loss ½(aᵀb − Φ)² (σ² = 1).
    pub fn new(a: Vec<f64>, b: Vec<f64>, phi: f64) -> Result<Self> {
        if a.is_empty() {
            return Err(EosError::Empty { field: "a" });
        }
        if b.len() != a.len() {
            return Err(EosError::Length {
                field: "b",
                expected: a.len(),
                got: b.len(),
            });
        }
        check_finite("a", &a)?;
        check_finite("b", &b)?;
        check_finite("phi", &[phi])?;
        Ok(ScalarNetState {
            a,
            b,
            phi,
            sigma2: 1.0,
        })
    }

    /// The width-1 state (a, b) with the canonical loss ½(ab − Φ)².
    pub fn scalar(a: f64, b: f64, phi: f64) -> Result<Self> {
        ScalarNetState::new(vec![a], vec![b], phi)
    }

    /// The same state with the data scale σ² = mean xᵢ² (loss (σ²/2)(aᵀb − Φ)²).
    pub fn with_sigma2(mut self, sigma2: f64) -> Result<Self> {
        check_step("sigma2", sigma2)?;
        self.sigma2 = sigma2;
        Ok(self)
    }

    /// A seeded random width-`k` state: `a, b ~ N(0, I_k)`, `Φ ~ U(−2, 2)` and, if `sigma2` is given,
    /// `σ² ~ U(sigma2)` (else σ² = 1), drawn in that order from `rng::stream(seed, stream)`.
    pub fn random(k: usize, seed: u64, stream: u64, sigma2: Option<std::ops::Range<f64>>) -> Result<Self> {
        use rand::Rng;
        let mut rng = imreg_objective::rng::stream(seed, stream);
        let a = imreg_objective::rng::normal_vec(&mut rng, k);
        let b = imreg_objective::rng::normal_vec(&mut rng, k);
        let net = ScalarNetState::new(a, b, rng.random_range(-2.0..2.0))?;
        match sigma2 {
            Some(range) => net.with_sigma2(rng.random_range(range)),
            None => Ok(net),
        }
    }

    /// The data form `(1/2n) Σᵢ (aᵀb xᵢ − yᵢ)²`: σ² = mean xᵢ², Φ = Σ xᵢyᵢ / Σ xᵢ² (the loss equals
    /// (σ²/2)(aᵀb − Φ)² plus a constant).
    pub fn from_data(xs: &[f64], ys: &[f64], a: Vec<f64>, b: Vec<f64>) -> Result<Self> {
        if xs.is_empty() {
            return Err(EosError::Empty { field: "xs" });
        }
        if ys.len() != xs.len() {
            return Err(EosError::Length {
                field: "ys",
                expected: xs.len(),
                got: ys.len(),
            });
        }
        check_finite("xs", xs)?;
        check_finite("ys", ys)?;
        let sxx: f64 = xs.iter().map(|x| x * x).sum();
        if sxx <= 0.0 {
            return Err(EosError::Invalid {
                field: "xs",
                value: sxx,
                reason: "Σ xᵢ² must be > 0",
            });
        }
        let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| x * y).sum();
        ScalarNetState::new(a, b, sxy / sxx)?.with_sigma2(sxx / xs.len() as f64)
    }

    /// The data-form loss `(1/2n) Σᵢ (aᵀb xᵢ − yᵢ)²` at this state's (a, b) (an oracle for [`Self::from_data`]).
    pub fn data_loss(&self, xs: &[f64], ys: &[f64]) -> f64 {
        let m = self.m();
        let n = xs.len().max(1) as f64;
        xs.iter().zip(ys).map(|(x, y)| (m * x - y).powi(2)).sum::<f64>() / (2.0 * n)
    }

    pub fn a(&self) -> &[f64] {
        &self.a
    }
    pub fn b(&self) -> &[f64] {
        &self.b
    }
    /// The target Φ.
    pub fn phi(&self) -> f64 {
        self.phi
    }
    /// The data scale σ² (1 for the canonical loss).
    pub fn sigma2(&self) -> f64 {
        self.sigma2
    }
    /// The width k.
    pub fn width(&self) -> usize {
        self.a.len()
    }

    /// m = aᵀb.
    pub fn m(&self) -> f64 {
        dot(&self.a, &self.b)
    }
    /// ε = aᵀb − Φ.
    pub fn residual(&self) -> f64 {
        self.m() - self.phi
    }
    /// λ = ‖a‖² + ‖b‖².
    pub fn norm(&self) -> f64 {
        dot(&self.a, &self.a) + dot(&self.b, &self.b)
    }
    /// Q = ‖a‖² − ‖b‖².
    pub fn imbalance(&self) -> f64 {
        dot(&self.a, &self.a) - dot(&self.b, &self.b)
    }

    /// All invariants in one pass.
    pub fn invariants(&self) -> Invariants {
        let (mut aa, mut bb, mut ab, mut s, mut d) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (x, y) in self.a.iter().zip(&self.b) {
            aa += x * x;
            bb += y * y;
            ab += x * y;
            s += (x + y) * (x + y);
            d += (x - y) * (x - y);
        }
        Invariants {
            m: ab,
            residual: ab - self.phi,
            norm: aa + bb,
            imbalance: aa - bb,
            s,
            d,
            p: s * d,
        }
    }

    /// The matrix imbalance aaᵀ − bbᵀ (k × k; conserved by GF, scaled by (1 − η²ε²) per GD step).
    pub fn imbalance_matrix(&self) -> DMatrix<f64> {
        let k = self.width();
        DMatrix::from_fn(k, k, |i, j| self.a[i] * self.a[j] - self.b[i] * self.b[j])
    }

    /// L = (σ²/2) ε².
    pub fn loss(&self) -> f64 {
        0.5 * self.sigma2 * self.residual().powi(2)
    }

    /// ∇L = σ² ε (b; a), ordering (a, b).
    pub fn gradient(&self) -> Vec<f64> {
        let g = self.sigma2 * self.residual();
        self.b.iter().chain(&self.a).map(|v| g * v).collect()
    }

    /// The 2k × 2k Hessian (`docs/theory/scalar-net.md` §Hessian), ordering (a, b):
    /// `H = σ² (v vᵀ + ε J)`, `v = (b; a)`, `J = [[0, I], [I, 0]]`.
    pub fn hessian(&self) -> DMatrix<f64> {
        let k = self.width();
        let eps = self.residual();
        let v: Vec<f64> = self.b.iter().chain(&self.a).copied().collect();
        DMatrix::from_fn(2 * k, 2 * k, |i, j| {
            let j_term = if i + k == j || j + k == i { eps } else { 0.0 };
            self.sigma2 * (v[i] * v[j] + j_term)
        })
    }

    /// The full Hessian spectrum in closed form (`docs/theory/scalar-net.md` §Hessian), ascending, with the
    /// factor σ²:
    /// `λ/2 ± √((m + ε)² + P/4)`, and `+ε`, `−ε` with multiplicity k − 1 each.
    pub fn hessian_spectrum(&self) -> Vec<f64> {
        let inv = self.invariants();
        let k = self.width();
        let (top, bottom) = top_pair(&inv);
        let mut ev = Vec::with_capacity(2 * k);
        ev.push(top);
        ev.push(bottom);
        for _ in 1..k {
            ev.push(inv.residual);
            ev.push(-inv.residual);
        }
        let mut ev: Vec<f64> = ev.into_iter().map(|e| self.sigma2 * e).collect();
        ev.sort_by(f64::total_cmp);
        ev
    }

    /// Sharpness = λ_max(∇²L) = σ² (λ/2 + √((m + ε)² + P/4)); equal to σ²λ at a global minimum.
    pub fn sharpness(&self) -> f64 {
        // λ/2 + r ≥ |m| + |m + ε| ≥ |ε|, so the top of the pair dominates the ±ε eigenvalues.
        self.sigma2 * top_pair(&self.invariants()).0
    }

    /// One exact GD step with step η on L: `a ← a − ησ²ε b`, `b ← b − ησ²ε a`.
    pub fn gd_step(&self, eta: f64) -> Result<ScalarNetState> {
        check_step("eta", eta)?;
        let g = eta * self.sigma2 * self.residual();
        let a = self.a.iter().zip(&self.b).map(|(x, y)| x - g * y).collect();
        let b = self.b.iter().zip(&self.a).map(|(y, x)| y - g * x).collect();
        Ok(ScalarNetState {
            a,
            b,
            phi: self.phi,
            sigma2: self.sigma2,
        })
    }

    /// Which invariant line leading to the saddle a = b = 0 the state lies on, if any: a + b = 0 with
    /// Φ ≥ 0, or a − b = 0 with Φ ≤ 0. GD and GF never leave these lines, so they cannot reach a global
    /// minimum with ε = 0 (for Φ = 0 the limit a = b = 0 is a degenerate minimum reached only sublinearly).
    pub fn saddle_line(&self) -> Option<&'static str> {
        let inv = self.invariants();
        if inv.s == 0.0 && self.phi >= 0.0 {
            Some("a + b = 0")
        } else if inv.d == 0.0 && self.phi <= 0.0 {
            Some("a − b = 0")
        } else {
            None
        }
    }

    /// The reduction of width k to width 1 through (S, D) (`docs/theory/scalar-net.md` §Width reduction): GD
    /// and GF depend on (a, b) only through (S, D), so the width-k problem equals the scalar one with a₀ =
    /// (√S₀ + √D₀)/2, b₀ = (√S₀ − √D₀)/2. For k = 1 the reduction is the identity.
    pub fn reduce(&self) -> WidthReduction {
        let inv = self.invariants();
        let s0: Vec<f64> = self.a.iter().zip(&self.b).map(|(x, y)| x + y).collect();
        let d0: Vec<f64> = self.a.iter().zip(&self.b).map(|(x, y)| x - y).collect();
        let (sig_s, sig_d) = if self.width() == 1 {
            (s0[0], d0[0])
        } else {
            (inv.s.sqrt(), inv.d.sqrt())
        };
        let scalar = if self.width() == 1 {
            self.clone()
        } else {
            ScalarNetState {
                a: vec![0.5 * (sig_s + sig_d)],
                b: vec![0.5 * (sig_s - sig_d)],
                phi: self.phi,
                sigma2: self.sigma2,
            }
        };
        WidthReduction {
            scalar,
            s0,
            d0,
            sig_s,
            sig_d,
        }
    }
}

/// The width-k → width-1 reduction of a state (see [`ScalarNetState::reduce`]), with the map back.
#[derive(Clone, Debug, PartialEq)]
pub struct WidthReduction {
    /// The equivalent width-1 state (same S, D, Φ, σ²).
    pub scalar: ScalarNetState,
    s0: Vec<f64>,
    d0: Vec<f64>,
    sig_s: f64,
    sig_d: f64,
}

impl WidthReduction {
    /// The width-k state whose reduced trajectory is at the width-1 state `(alpha, beta)`: the directions of
    /// a + b and a − b are invariant, so `a + b = s₀ (α + β)/√S₀`, `a − b = d₀ (α − β)/√D₀`.
    pub fn lift(&self, alpha: f64, beta: f64) -> ScalarNetState {
        if self.s0.len() == 1 {
            return ScalarNetState {
                a: vec![alpha],
                b: vec![beta],
                ..self.scalar.clone()
            };
        }
        let fs = if self.sig_s == 0.0 {
            0.0
        } else {
            (alpha + beta) / self.sig_s
        };
        let fd = if self.sig_d == 0.0 {
            0.0
        } else {
            (alpha - beta) / self.sig_d
        };
        let a = self
            .s0
            .iter()
            .zip(&self.d0)
            .map(|(s, d)| 0.5 * (fs * s + fd * d))
            .collect();
        let b = self
            .s0
            .iter()
            .zip(&self.d0)
            .map(|(s, d)| 0.5 * (fs * s - fd * d))
            .collect();
        ScalarNetState {
            a,
            b,
            phi: self.scalar.phi,
            sigma2: self.scalar.sigma2,
        }
    }
}

/// The two eigenvalues λ/2 ± r, r = √((m+ε)² + P/4), of the (canonical) Hessian; the lower one through the
/// product (λ/2)² − r² = −ε(2m + ε) to avoid cancellation.
fn top_pair(inv: &Invariants) -> (f64, f64) {
    let r = ((inv.m + inv.residual).powi(2) + 0.25 * inv.p).sqrt();
    let top = 0.5 * inv.norm + r;
    let bottom = if top > 0.0 {
        -inv.residual * (2.0 * inv.m + inv.residual) / top
    } else {
        0.5 * inv.norm - r
    };
    (top, bottom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_a_typed_error() {
        assert_eq!(
            ScalarNetState::new(vec![], vec![], 1.0),
            Err(EosError::Empty { field: "a" })
        );
        assert_eq!(
            ScalarNetState::new(vec![1.0], vec![1.0, 2.0], 1.0),
            Err(EosError::Length {
                field: "b",
                expected: 1,
                got: 2
            })
        );
        assert!(matches!(
            ScalarNetState::new(vec![1.0, f64::NAN], vec![1.0, 2.0], 1.0),
            Err(EosError::NonFinite {
                field: "a",
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            ScalarNetState::scalar(1.0, 1.0, f64::INFINITY),
            Err(EosError::NonFinite { field: "phi", .. })
        ));
        let net = ScalarNetState::scalar(1.0, 0.5, 1.0).unwrap();
        assert!(matches!(
            net.gd_step(0.0),
            Err(EosError::NonPositiveStep { field: "eta", .. })
        ));
        assert!(matches!(net.gd_step(-1.0), Err(EosError::NonPositiveStep { .. })));
        assert!(matches!(
            net.clone().with_sigma2(0.0),
            Err(EosError::NonPositiveStep { field: "sigma2", .. })
        ));
        assert!(matches!(
            ScalarNetState::from_data(&[0.0], &[1.0], vec![1.0], vec![1.0]),
            Err(EosError::Invalid { .. })
        ));
    }

    #[test]
    fn saddle_lines_are_detected() {
        assert_eq!(
            ScalarNetState::scalar(1.0, -1.0, 1.0).unwrap().saddle_line(),
            Some("a + b = 0")
        );
        assert_eq!(
            ScalarNetState::scalar(1.0, 1.0, -1.0).unwrap().saddle_line(),
            Some("a − b = 0")
        );
        assert_eq!(
            ScalarNetState::scalar(1.0, 1.0, 0.0).unwrap().saddle_line(),
            Some("a − b = 0")
        );
        assert_eq!(ScalarNetState::scalar(1.0, 1.0, 1.0).unwrap().saddle_line(), None);
        assert_eq!(
            ScalarNetState::scalar(1.0, -1.0, -1.0).unwrap().saddle_line(),
            None
        );
    }
}
