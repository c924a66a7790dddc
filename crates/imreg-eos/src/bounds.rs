//! Step-size bounds on quadratics `f(x) = ½ xᵀHx` (Cohen et al. 2021; derivation in
//! `docs/theory/edge-of-stability.md` §Stability thresholds): per eigenvalue λ of H,
//!
//! - GD `x⁺ = x − η∇f(x)` diverges iff λ > 2/η (multiplier 1 − ηλ);
//! - heavy ball `x⁺ = x − η∇f(x) + β(x − x⁻)` iff λ > (2 + 2β)/η
//!   (characteristic polynomial z² − (1 + β − ηλ)z + β);
//! - Nesterov `y = x + β(x − x⁻)`, `x⁺ = y − η∇f(y)` iff λ > (2 + 2β)/((1 + 2β)η)
//!   (characteristic polynomial z² − (1 − ηλ)(1 + β)z + (1 − ηλ)β),
//!
//! for 0 ≤ β < 1 and λ > 0. Functions for the thresholds and the spectral radius, and simulators.
use crate::error::{check_finite, check_step, EosError, Result};
use crate::options::RunOptions;
use nalgebra::{DMatrix, DVector};

/// An optimizer with a linear update on quadratics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Gd,
    HeavyBall { beta: f64 },
    Nesterov { beta: f64 },
}

impl Method {
    fn validate(&self) -> Result<()> {
        match *self {
            Method::Gd => Ok(()),
            Method::HeavyBall { beta } | Method::Nesterov { beta } => {
                if (0.0..1.0).contains(&beta) {
                    Ok(())
                } else {
                    Err(EosError::Invalid {
                        field: "beta",
                        value: beta,
                        reason: "momentum must be in [0, 1)",
                    })
                }
            }
        }
    }

    /// The largest curvature λ at which the method is stable with step η: 2/η, (2 + 2β)/η,
    /// (2 + 2β)/((1 + 2β)η).
    pub fn curvature_threshold(&self, eta: f64) -> Result<f64> {
        check_step("eta", eta)?;
        self.validate()?;
        Ok(match *self {
            Method::Gd => gd_threshold(eta),
            Method::HeavyBall { beta } => heavy_ball_threshold(beta, eta),
            Method::Nesterov { beta } => nesterov_threshold(beta, eta),
        })
    }

    /// The largest stable step η at curvature λ > 0 (the thresholds solved for η).
    pub fn step_threshold(&self, lambda: f64) -> Result<f64> {
        check_step("lambda", lambda)?;
        // Every threshold is c/η, so η* = c/λ with c the threshold at η = 1.
        Ok(self.curvature_threshold(1.0)? / lambda)
    }

    /// The spectral radius of the update restricted to an eigen-direction with curvature λ: the largest
    /// root modulus of its characteristic polynomial (|1 − ηλ| for GD). Stable iff < 1.
    pub fn spectral_radius(&self, eta: f64, lambda: f64) -> f64 {
        let h = eta * lambda;
        match *self {
            Method::Gd => (1.0 - h).abs(),
            Method::HeavyBall { beta } => quadratic_root_modulus(1.0 + beta - h, beta),
            Method::Nesterov { beta } => quadratic_root_modulus((1.0 - h) * (1.0 + beta), (1.0 - h) * beta),
        }
    }
}

/// GD on a quadratic is stable iff λ_max < 2/η.
pub fn gd_threshold(eta: f64) -> f64 {
    2.0 / eta
}

/// Heavy ball is stable iff λ < (2 + 2β)/η.
pub fn heavy_ball_threshold(beta: f64, eta: f64) -> f64 {
    (2.0 + 2.0 * beta) / eta
}

/// Nesterov is stable iff λ < (2 + 2β)/((1 + 2β)η).
pub fn nesterov_threshold(beta: f64, eta: f64) -> f64 {
    (2.0 + 2.0 * beta) / ((1.0 + 2.0 * beta) * eta)
}

/// max |z| over the roots of z² − p z + q.
fn quadratic_root_modulus(p: f64, q: f64) -> f64 {
    let disc = p * p - 4.0 * q;
    if disc >= 0.0 {
        let r = disc.sqrt();
        (0.5 * (p + r)).abs().max((0.5 * (p - r)).abs())
    } else {
        q.sqrt()
    }
}

/// A quadratic f(x) = ½ xᵀHx with symmetric H.
#[derive(Clone, Debug, PartialEq)]
pub struct QuadraticForm {
    h: DMatrix<f64>,
}

impl QuadraticForm {
    /// From a symmetric matrix (square, finite, symmetric to 1e-12 relative).
    pub fn new(h: DMatrix<f64>) -> Result<Self> {
        if h.nrows() != h.ncols() {
            return Err(EosError::Length {
                field: "h (columns)",
                expected: h.nrows(),
                got: h.ncols(),
            });
        }
        if h.nrows() == 0 {
            return Err(EosError::Empty { field: "h" });
        }
        check_finite("h", h.as_slice())?;
        let asym = (&h - h.transpose()).amax();
        if asym > 1e-12 * h.amax().max(f64::MIN_POSITIVE) {
            return Err(EosError::Invalid {
                field: "h",
                value: asym,
                reason: "matrix is not symmetric",
            });
        }
        Ok(QuadraticForm { h })
    }

    /// H = U diag(eigs) Uᵀ with U a random orthogonal matrix (QR of a Gaussian matrix from the ChaCha stream
    /// `rng::stream(seed, 0)`).
    pub fn from_spectrum(eigs: &[f64], seed: u64) -> Result<Self> {
        if eigs.is_empty() {
            return Err(EosError::Empty { field: "eigs" });
        }
        check_finite("eigs", eigs)?;
        let n = eigs.len();
        let mut rng = imreg_objective::rng::stream(seed, 0);
        let g = DMatrix::from_vec(n, n, imreg_objective::rng::normal_vec(&mut rng, n * n));
        let u = g.qr().q();
        let h = &u * DMatrix::from_diagonal(&DVector::from_column_slice(eigs)) * u.transpose();
        QuadraticForm::new(0.5 * (&h + h.transpose()))
    }

    pub fn hessian(&self) -> &DMatrix<f64> {
        &self.h
    }

    pub fn dim(&self) -> usize {
        self.h.nrows()
    }

    /// Eigenvalues of H, ascending (dense symmetric eigen-decomposition).
    pub fn eigenvalues(&self) -> Vec<f64> {
        let mut ev: Vec<f64> = self.h.clone().symmetric_eigenvalues().iter().copied().collect();
        ev.sort_by(f64::total_cmp);
        ev
    }

    /// λ_max(H).
    pub fn lambda_max(&self) -> f64 {
        self.eigenvalues().last().copied().unwrap_or(f64::NAN)
    }
}

/// How a quadratic run ended; `ratio` is max(‖x_t‖, ‖x_{t−1}‖)/‖x₀‖ at the end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QuadOutcome {
    Converged { steps: usize, ratio: f64 },
    Diverged { step: usize, ratio: f64 },
    NotConverged { steps: usize, ratio: f64 },
}

impl QuadOutcome {
    pub fn is_converged(&self) -> bool {
        matches!(self, QuadOutcome::Converged { .. })
    }
    pub fn is_diverged(&self) -> bool {
        matches!(self, QuadOutcome::Diverged { .. })
    }
}

/// Runs `method` with step η on `q` from x₀ (zero initial momentum, x₋₁ = x₀) until the ratio
/// max(‖x_t‖, ‖x_{t−1}‖)/‖x₀‖ falls below `tol` (converged), exceeds `divergence_norm` or is non-finite (diverged),
/// or `max_steps` pass.
pub fn simulate(
    q: &QuadraticForm,
    method: Method,
    eta: f64,
    x0: &[f64],
    opts: &RunOptions,
) -> Result<QuadOutcome> {
    check_step("eta", eta)?;
    method.validate()?;
    opts.validate()?;
    if x0.len() != q.dim() {
        return Err(EosError::Length {
            field: "x0",
            expected: q.dim(),
            got: x0.len(),
        });
    }
    check_finite("x0", x0)?;
    let mut x = DVector::from_column_slice(x0);
    let n0 = x.norm();
    if n0 == 0.0 {
        return Err(EosError::Invalid {
            field: "x0",
            value: 0.0,
            reason: "the start must be nonzero",
        });
    }
    let beta = match method {
        Method::Gd => 0.0,
        Method::HeavyBall { beta } | Method::Nesterov { beta } => beta,
    };
    let mut x_prev = x.clone();
    let mut prev_norm = n0;
    let mut t = 0;
    loop {
        let nx = x.norm();
        let ratio = nx.max(prev_norm) / n0;
        if ratio.is_nan() || ratio > opts.divergence_norm {
            return Ok(QuadOutcome::Diverged { step: t, ratio });
        }
        if ratio < opts.tol {
            return Ok(QuadOutcome::Converged { steps: t, ratio });
        }
        if t == opts.max_steps {
            return Ok(QuadOutcome::NotConverged { steps: t, ratio });
        }
        let next = match method {
            Method::Gd => &x - eta * (&q.h * &x),
            Method::HeavyBall { .. } => &x - eta * (&q.h * &x) + beta * (&x - &x_prev),
            Method::Nesterov { .. } => {
                let y = &x + beta * (&x - &x_prev);
                &y - eta * (&q.h * &y)
            }
        };
        x_prev = std::mem::replace(&mut x, next);
        prev_norm = nx;
        t += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_where_the_spectral_radius_crosses_one() {
        // Independent oracle: bisection on the root modulus of the characteristic polynomial.
        for method in [
            Method::Gd,
            Method::HeavyBall { beta: 0.9 },
            Method::Nesterov { beta: 0.5 },
        ] {
            let eta = 0.1;
            let thr = method.curvature_threshold(eta).unwrap();
            let (mut lo, mut hi) = (1e-6, 10.0 * thr);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if method.spectral_radius(eta, mid) < 1.0 {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            assert!(
                (lo - thr).abs() <= 1e-12 * thr,
                "{method:?}: bisection {lo} vs closed form {thr}"
            );
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let q = QuadraticForm::from_spectrum(&[1.0, 2.0], 1).unwrap();
        let o = RunOptions::default();
        assert!(matches!(
            simulate(&q, Method::Gd, 0.0, &[1.0, 1.0], &o),
            Err(EosError::NonPositiveStep { .. })
        ));
        assert!(matches!(
            simulate(&q, Method::Gd, 0.1, &[1.0], &o),
            Err(EosError::Length { field: "x0", .. })
        ));
        assert!(matches!(
            simulate(&q, Method::Gd, 0.1, &[0.0, 0.0], &o),
            Err(EosError::Invalid { .. })
        ));
        assert!(matches!(
            simulate(&q, Method::HeavyBall { beta: 1.0 }, 0.1, &[1.0, 1.0], &o),
            Err(EosError::Invalid { field: "beta", .. })
        ));
        let asym = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 0.0, 1.0]);
        assert!(matches!(
            QuadraticForm::new(asym),
            Err(EosError::Invalid { field: "h", .. })
        ));
    }
}
