//! SGD against the Itô SDE on the linear problem `l = (h/2)θ²` with additive noise of variance `σ²`
//! (Cor vsode; `docs/theory/tenka.md` §SGD vs SDE).
//!
//! **Correction.** Tenka's Cor vsode says the covariance contributes `(T/2)η² tr(CH)` to SGD's test-loss
//! excess "over ODE/SDE". Against the ODE (gradient flow) that is right. Against the standard Itô SDE
//! `dθ = −∇l dt + √(ηC) dW` (run for time `Tη`) there is **no** η² difference: from a test minimum both give
//! `(T/2)η²hσ²`, and they first differ at `η³`: `E[θ_T²]_SGD − E[θ²]_SDE = η³σ²hT + O(η⁴)`. imreg encodes
//! only that η³ statement.
use crate::error::{check_finite, check_positive, Result};

/// `E[θ_T²]` of SGD `θ_{t+1} = θ_t − η(hθ_t + σξ_t)`, `ξ_t` i.i.d., mean 0, variance 1, exactly:
/// `a^Tθ₀² + η²σ²(1 − a^T)/(1 − a)`, `a = (1 − ηh)²`.
pub fn sgd_second_moment(h: f64, sigma2: f64, theta0: f64, eta: f64, steps: usize) -> Result<f64> {
    check_positive("h", h)?;
    check_finite("sigma2", sigma2)?;
    check_finite("theta0", theta0)?;
    check_finite("eta", eta)?;
    let t = steps as f64;
    let ln_a = 2.0 * (-eta * h).ln_1p();
    let a_t = (t * ln_a).exp();
    // (1 − a^T)/(1 − a) without cancellation; a = 1 only at η = 0 (or ηh = 2), where it is T.
    let geom = if ln_a.abs() < 1e-300 {
        t
    } else {
        (t * ln_a).exp_m1() / ln_a.exp_m1()
    };
    Ok(a_t * theta0 * theta0 + eta * eta * sigma2 * geom)
}

/// `E[θ(τ)²]` of the Itô SDE `dθ = −hθ dt + √(ησ²) dW` (Ornstein–Uhlenbeck), exactly:
/// `e^{−2hτ}θ₀² + ησ²(1 − e^{−2hτ})/(2h)`. SGD's `T` steps correspond to `τ = Tη`.
pub fn ito_sde_second_moment(h: f64, sigma2: f64, theta0: f64, eta: f64, time: f64) -> Result<f64> {
    check_positive("h", h)?;
    check_finite("sigma2", sigma2)?;
    check_finite("theta0", theta0)?;
    check_finite("eta", eta)?;
    check_finite("time", time)?;
    Ok((-2.0 * h * time).exp() * theta0 * theta0 - eta * sigma2 * (-2.0 * h * time).exp_m1() / (2.0 * h))
}

/// The leading SGD-minus-SDE difference of `E[θ_T²]` from the test minimum `θ₀ = 0`: `η³σ²hT`
/// (the test loss `(h/2)θ²` differs by `h/2` times this). There is no `η²` term.
pub fn sgd_minus_sde_leading(h: f64, sigma2: f64, eta: f64, steps: usize) -> f64 {
    eta.powi(3) * sigma2 * h * steps as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_against_recursions() {
        let (h, s2, th0, eta, t): (f64, f64, f64, f64, usize) = (0.8, 1.7, 0.6, 0.05, 25);
        let mut m = th0 * th0;
        for _ in 0..t {
            m = (1.0 - eta * h).powi(2) * m + eta * eta * s2;
        }
        assert!((sgd_second_moment(h, s2, th0, eta, t).unwrap() - m).abs() < 1e-14);
        // Euler–Maruyama moment recursion with dt → 0 converges to the OU moment at O(dt).
        let tau = t as f64 * eta;
        let em = |k: usize| {
            let dt = tau / k as f64;
            let mut m = th0 * th0;
            for _ in 0..k {
                m = (1.0 - h * dt).powi(2) * m + eta * s2 * dt;
            }
            m
        };
        let exact = ito_sde_second_moment(h, s2, th0, eta, tau).unwrap();
        let (e1, e2) = (em(100_000), em(200_000));
        assert!(
            (2.0 * e2 - e1 - exact).abs() < 1e-10,
            "Richardson EM {} vs {exact}",
            2.0 * e2 - e1
        );
        assert!(sgd_second_moment(-1.0, 1.0, 0.0, 0.1, 3).is_err());
    }
}
