//! Gradient flow of the depth-2 linear network in closed form (`docs/theory/scalar-net.md` §Gradient flow).
//!
//! GF `ȧ = −σ²ε b`, `ḃ = −σ²ε a` conserves Q, aaᵀ − bbᵀ and P = S·D. With canonical time τ = σ²t and
//! `u(τ) = ∫₀^τ ε`, `S = S₀ e^{−2u}`, `D = D₀ e^{2u}`, and `z = e^{2u}` solves the Riccati equation
//! `ż = (S₀ − D₀ z²)/2 − 2Φ z`, `z(0) = 1`. With `λ_GF = √(4Φ² + P₀)`, the fixed point
//! `z* = (λ_GF − 2Φ)/D₀ = S₀/(λ_GF + 2Φ)`, `c = D₀/2`, `w₀ = 1 − z*`:
//!
//! `w(τ) = λ_GF w₀ e^{−λ_GF τ} / (λ_GF + c w₀ (1 − e^{−λ_GF τ}))`, `z = z* + w`,
//! `ε = ż/(2z) = (−λ_GF w − c w²)/(2z)`, `S = S₀/z`, `D = D₀ z`.
//!
//! The limit has `a_∞ + b_∞ = (a₀ + b₀)/√z*`, `a_∞ − b_∞ = (a₀ − b₀)√z*`, m_∞ = Φ and
//! **λ_GF = ‖a_∞‖² + ‖b_∞‖² = √(4Φ² + P₀)**.
use crate::error::{EosError, Result};
use crate::scalar_net::ScalarNetState;

/// The closed-form gradient-flow solution from an initial state.
#[derive(Clone, Debug, PartialEq)]
pub struct GfSolution {
    init: ScalarNetState,
    s0: f64,
    d0: f64,
    lambda_gf: f64,
    z_star: f64,
    c: f64,
    w0: f64,
}

impl GfSolution {
    /// The closed form from `init`. An init on an invariant line that leads to the saddle a = b = 0
    /// ([`ScalarNetState::saddle_line`]) has no limit at a global minimum with ε = 0 and is an error.
    pub fn new(init: &ScalarNetState) -> Result<Self> {
        if let Some(line) = init.saddle_line() {
            return Err(EosError::SaddleLine {
                line,
                phi: init.phi(),
            });
        }
        let inv = init.invariants();
        let phi = init.phi();
        let lambda_gf = lambda_gf(inv.p, phi);
        // Both forms of z* are exact; pick the one without cancellation (D₀ > 0 when Φ ≤ 0 off the lines,
        // and λ_GF + 2Φ > 0 when Φ > 0).
        let z_star = if phi > 0.0 {
            inv.s / (lambda_gf + 2.0 * phi)
        } else {
            (lambda_gf - 2.0 * phi) / inv.d
        };
        Ok(GfSolution {
            init: init.clone(),
            s0: inv.s,
            d0: inv.d,
            lambda_gf,
            z_star,
            c: 0.5 * inv.d,
            w0: 1.0 - z_star,
        })
    }

    /// λ_GF = √(4Φ² + P₀): the norm (and sharpness/σ²) of the GF limit.
    pub fn lambda_gf(&self) -> f64 {
        self.lambda_gf
    }

    /// The fixed point z* of the Riccati equation.
    pub fn z_star(&self) -> f64 {
        self.z_star
    }

    fn tau(&self, t: f64) -> f64 {
        self.init.sigma2() * t
    }

    /// w(τ) = z(τ) − z*.
    fn w(&self, t: f64) -> f64 {
        let l = self.lambda_gf;
        let tau = self.tau(t);
        let e = (-l * tau).exp();
        let one_minus_e = -(-l * tau).exp_m1();
        l * self.w0 * e / (l + self.c * self.w0 * one_minus_e)
    }

    /// z(t) = e^{2u(t)}.
    pub fn z(&self, t: f64) -> f64 {
        self.z_star + self.w(t)
    }

    /// u(t) = ∫₀^{σ²t} ε dτ = ½ ln z(t).
    pub fn u(&self, t: f64) -> f64 {
        0.5 * self.z(t).ln()
    }

    /// The residual ε(t) = (−λ_GF w − c w²)/(2z).
    pub fn residual(&self, t: f64) -> f64 {
        let w = self.w(t);
        (-self.lambda_gf * w - self.c * w * w) / (2.0 * (self.z_star + w))
    }

    /// S(t) = S₀/z(t).
    pub fn s_sq(&self, t: f64) -> f64 {
        self.s0 / self.z(t)
    }

    /// D(t) = D₀ z(t).
    pub fn d_sq(&self, t: f64) -> f64 {
        self.d0 * self.z(t)
    }

    /// λ(t) = (S + D)/2.
    pub fn norm(&self, t: f64) -> f64 {
        0.5 * (self.s_sq(t) + self.d_sq(t))
    }

    /// The state (a(t), b(t)): a + b = s₀/√z, a − b = d₀√z.
    pub fn state(&self, t: f64) -> ScalarNetState {
        self.state_at_z(self.z(t))
    }

    /// The GF limit (a_∞, b_∞): a + b = s₀/√z*, a − b = d₀√z*.
    pub fn limit(&self) -> ScalarNetState {
        self.state_at_z(self.z_star)
    }

    fn state_at_z(&self, z: f64) -> ScalarNetState {
        let r = z.sqrt();
        let (a0, b0) = (self.init.a(), self.init.b());
        let a = a0
            .iter()
            .zip(b0)
            .map(|(x, y)| 0.5 * ((x + y) / r + (x - y) * r))
            .collect();
        let b = a0
            .iter()
            .zip(b0)
            .map(|(x, y)| 0.5 * ((x + y) / r - (x - y) * r))
            .collect();
        // Finite by construction: the init was validated and z > 0 off the saddle lines.
        ScalarNetState::new(a, b, self.init.phi())
            .and_then(|n| n.with_sigma2(self.init.sigma2()))
            .unwrap_or_else(|_| self.init.clone())
    }

    /// `∫₀^∞ ε_GF(τ)² dτ` in canonical time τ = σ²t, in closed form. Changing variables to z (dτ = dz/ż)
    /// and using `D₀z*² + 4Φz* = S₀` gives, with δ = z* − 1,
    /// `∫ε² dτ = (D₀/8) δ² + (Φ/2)(δ − ln(1 + δ))`.
    pub fn residual_sq_integral(&self) -> f64 {
        let delta = self.z_star - 1.0;
        self.d0 / 8.0 * delta * delta + 0.5 * self.init.phi() * x_minus_log1p(delta)
    }
}

/// λ_GF = √(4Φ² + P₀).
pub fn lambda_gf(p0: f64, phi: f64) -> f64 {
    (4.0 * phi * phi + p0).sqrt()
}

/// x − ln(1 + x), by its series for small |x| (no cancellation).
fn x_minus_log1p(x: f64) -> f64 {
    if x.abs() < 1e-2 {
        // x²/2 − x³/3 + x⁴/4 − …; 12 terms leave a remainder below 1e-24·x².
        let mut sum = 0.0;
        let mut pow = x * x;
        for n in 2..14 {
            let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
            sum += sign * pow / n as f64;
            pow *= x;
        }
        sum
    } else {
        x - x.ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_matches_direct_formula_where_both_are_accurate() {
        for &x in &[-9e-3, -1e-3, 2e-3, 9.9e-3] {
            let direct = x - f64::ln_1p(x);
            assert!((x_minus_log1p(x) - direct).abs() <= 1e-12 * direct.abs(), "{x}");
        }
    }

    #[test]
    fn saddle_line_is_rejected() {
        let net = ScalarNetState::scalar(1.0, -1.0, 1.0).unwrap();
        assert!(matches!(GfSolution::new(&net), Err(EosError::SaddleLine { .. })));
    }
}
