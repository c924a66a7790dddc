//! Stopping rules shared by every simulator of this crate.
use crate::error::{EosError, Result};

/// When a run stops: converged below `tol`, diverged past `divergence_norm` (or non-finite), or out of steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunOptions {
    /// Convergence tolerance: |ε| < tol for the scalar net (the reference tables of
    /// `docs/theory/scalar-net.md` use 1e-12); for quadratics, (‖x_t‖ + ‖x_{t−1}‖)/‖x₀‖ < tol.
    pub tol: f64,
    /// Steps before a run is reported as not converged (those tables use 4·10⁵).
    pub max_steps: usize,
    /// A run whose size (λ = ‖a‖² + ‖b‖² for the scalar net, ‖x_t‖/‖x₀‖ for quadratics) exceeds this is
    /// reported as diverged; non-finite values always are.
    pub divergence_norm: f64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            tol: 1e-12,
            max_steps: 400_000,
            divergence_norm: 1e30,
        }
    }
}

impl RunOptions {
    /// Checks that `tol` and `divergence_norm` are finite and positive.
    pub fn validate(&self) -> Result<()> {
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(EosError::Invalid {
                field: "tol",
                value: self.tol,
                reason: "must be finite and > 0",
            });
        }
        if !(self.divergence_norm.is_finite() && self.divergence_norm > 0.0) {
            return Err(EosError::Invalid {
                field: "divergence_norm",
                value: self.divergence_norm,
                reason: "must be finite and > 0",
            });
        }
        Ok(())
    }
}
