//! Gradient descent on the depth-2 linear network run to its limit (`docs/theory/scalar-net.md` §GD limit,
//! §Convergence rate).
//!
//! Exact one-step identities (`docs/theory/scalar-net.md` §One GD step) give, for a converging run, ε_∞ = 0,
//! m_∞ = Φ and
//!
//! `λ_GD = ‖a_∞‖² + ‖b_∞‖² = √(4Φ² + P_∞)`, `P_∞ = P₀ Π_t (1 − η²ε_t²)²`,
//!
//! with asymptotic rate `|1 − ηλ_GD|` and, for small η, `λ_GF − λ_GD ≈ η (λ_GF − 4Φ²/λ_GF) ∫₀^∞ ε_GF²`.
//! (η here is the effective step ησ²; all formulas are of the canonical loss.)
//!
//! Runs use the exact width-k → width-1 reduction ([`ScalarNetState::reduce`]), so the inner loop is a few
//! flops per step whatever the width, and lift the final state back to width k.
use crate::error::{check_step, Result};
use crate::gradient_flow::{lambda_gf, GfSolution};
use crate::options::RunOptions;
use crate::scalar_net::ScalarNetState;
use rayon::prelude::*;

/// How a GD run ended. Never a panic: divergence and non-convergence are outcomes.
#[derive(Clone, Debug, PartialEq)]
pub enum GdOutcome {
    /// |ε_t| < tol at step `steps`.
    Converged {
        /// The first t with |ε_t| < tol.
        steps: usize,
        /// λ_∞ = ‖a‖² + ‖b‖² of the final state (measured).
        lambda_inf: f64,
        /// λ_GD = √(4Φ² + P_∞) from the accumulated product (the closed form of the limit).
        lambda_gd: f64,
        /// P_∞ = P₀ Π_t (1 − η²ε_t²)².
        p_inf: f64,
        /// Sharpness of the final state, λ_max(∇²L) (= σ² λ_∞ at the minimum).
        sharpness_inf: f64,
        /// Asymptotic rate |1 − ησ²λ_GD| of ε_{t+1}/ε_t.
        rate: f64,
        /// max_t ησ²|ε_t| over the run (λ_GD < λ_GF when it is < √2).
        max_eta_eps: f64,
        /// The final width-k state.
        state: ScalarNetState,
    },
    /// Non-finite or λ_t > divergence_norm at step `step`.
    Diverged { step: usize, residual: f64, lambda: f64 },
    /// `max_steps` steps without |ε| < tol (e.g. η ≥ 1/|Φ|, or η just below it: very slow).
    NotConverged {
        steps: usize,
        residual: f64,
        lambda: f64,
        p: f64,
        max_eta_eps: f64,
    },
    /// The init lies on an invariant line toward the saddle a = b = 0 ([`ScalarNetState::saddle_line`]): the run
    /// reached λ_t < tol or spent `max_steps` on that line (ε → −Φ, or sublinear decay when Φ = 0).
    Saddle {
        line: &'static str,
        steps: usize,
        residual: f64,
        lambda: f64,
    },
}

impl GdOutcome {
    pub fn is_converged(&self) -> bool {
        matches!(self, GdOutcome::Converged { .. })
    }
    /// λ_∞ of a converged run.
    pub fn lambda_inf(&self) -> Option<f64> {
        match self {
            GdOutcome::Converged { lambda_inf, .. } => Some(*lambda_inf),
            _ => None,
        }
    }
    /// The steps taken (the step of divergence for a diverged run).
    pub fn steps(&self) -> usize {
        match self {
            GdOutcome::Converged { steps, .. }
            | GdOutcome::NotConverged { steps, .. }
            | GdOutcome::Saddle { steps, .. } => *steps,
            GdOutcome::Diverged { step, .. } => *step,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Converged,
    Diverged,
    MaxSteps,
    Saddle,
}

struct LoopEnd {
    end: End,
    steps: usize,
    a: f64,
    b: f64,
    p_factor: f64,
    max_eta_eps: f64,
}

/// The scalar GD loop: `a ← a − ηε b`, `b ← b − ηε a`, accumulating Π(1 − η²ε²)² and max η|ε|.
#[inline]
fn scalar_loop(mut a: f64, mut b: f64, phi: f64, eta: f64, opts: &RunOptions, saddle: bool) -> LoopEnd {
    let mut p_factor = 1.0;
    let mut max_eta_eps = 0.0f64;
    let mut t = 0;
    let end = loop {
        let eps = a * b - phi;
        let lam = a * a + b * b;
        if lam.is_nan() || lam > opts.divergence_norm || !eps.is_finite() {
            break End::Diverged;
        }
        if saddle {
            if lam < opts.tol {
                break End::Saddle;
            }
        } else if eps.abs() < opts.tol {
            break End::Converged;
        }
        if t == opts.max_steps {
            break End::MaxSteps;
        }
        let ee = eta * eps;
        max_eta_eps = max_eta_eps.max(ee.abs());
        let f = 1.0 - ee * ee;
        p_factor *= f * f;
        let na = a - ee * b;
        b -= ee * a;
        a = na;
        t += 1;
    };
    LoopEnd {
        end,
        steps: t,
        a,
        b,
        p_factor,
        max_eta_eps,
    }
}

/// `n` raw GD steps of the width-1 net on ½(ab − Φ)² with no checks (the benchmark kernel; use
/// [`run_gd`] for runs with outcomes).
#[inline]
pub fn scalar_gd_steps(mut a: f64, mut b: f64, phi: f64, eta: f64, n: usize) -> (f64, f64) {
    for _ in 0..n {
        let ee = eta * (a * b - phi);
        let na = a - ee * b;
        b -= ee * a;
        a = na;
    }
    (a, b)
}

/// Runs GD with step η from `init` until |ε| < tol, divergence, or `max_steps`.
///
/// ```
/// use imreg_eos::{run_gd, RunOptions, ScalarNetState};
/// let net = ScalarNetState::scalar(1.5, 0.01, 1.0).unwrap();
/// let out = run_gd(&net, 0.5, &RunOptions::default()).unwrap();
/// let lam = out.lambda_inf().unwrap();
/// // Flatter than gradient flow's limit λ_GF = √(4Φ² + Q₀²) ≈ 3.0103, and stable: λ_∞ ≤ 2/η.
/// assert!(2.0 <= lam && lam < 3.0103 && lam <= 2.0 / 0.5);
/// ```
pub fn run_gd(init: &ScalarNetState, eta: f64, opts: &RunOptions) -> Result<GdOutcome> {
    check_step("eta", eta)?;
    opts.validate()?;
    let eta_eff = eta * init.sigma2();
    let red = init.reduce();
    let (a0, b0) = (red.scalar.a()[0], red.scalar.b()[0]);
    let saddle = init.saddle_line();
    let r = scalar_loop(a0, b0, init.phi(), eta_eff, opts, saddle.is_some());
    let residual = r.a * r.b - init.phi();
    let lambda = r.a * r.a + r.b * r.b;
    Ok(match (r.end, saddle) {
        (End::Diverged, _) => GdOutcome::Diverged {
            step: r.steps,
            residual,
            lambda,
        },
        (_, Some(line)) => GdOutcome::Saddle {
            line,
            steps: r.steps,
            residual,
            lambda,
        },
        (End::MaxSteps, None) => GdOutcome::NotConverged {
            steps: r.steps,
            residual,
            lambda,
            p: init.invariants().p * r.p_factor,
            max_eta_eps: r.max_eta_eps,
        },
        (End::Converged | End::Saddle, None) => {
            let state = red.lift(r.a, r.b);
            let p_inf = init.invariants().p * r.p_factor;
            let lambda_gd = lambda_gf(p_inf, init.phi());
            GdOutcome::Converged {
                steps: r.steps,
                lambda_inf: state.norm(),
                lambda_gd,
                p_inf,
                sharpness_inf: state.sharpness(),
                rate: (1.0 - eta_eff * lambda_gd).abs(),
                max_eta_eps: r.max_eta_eps,
                state,
            }
        }
    })
}

/// Runs [`run_gd`] for every η of `etas`, rayon-parallel over η; results are in input order and
/// independent of the thread count (each run is a pure function of its η).
pub fn sweep_eta(init: &ScalarNetState, etas: &[f64], opts: &RunOptions) -> Vec<Result<GdOutcome>> {
    etas.par_iter().map(|&eta| run_gd(init, eta, opts)).collect()
}

/// A recorded GD trajectory of the (reduced) width-1 state: for k = 1 the trajectory itself; for k > 1 the
/// equivalent scalar state of [`ScalarNetState::reduce`] (its imbalance is then √P).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Trajectory {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    /// ε_t.
    pub residual: Vec<f64>,
    /// λ_t = a² + b².
    pub norm: Vec<f64>,
    /// Q_t = a² − b².
    pub imbalance: Vec<f64>,
}

/// Records up to `steps` GD steps (steps + 1 states); stops early, without error, at the first non-finite
/// state or λ_t > `divergence_norm`.
pub fn gd_trajectory(
    init: &ScalarNetState,
    eta: f64,
    steps: usize,
    divergence_norm: f64,
) -> Result<Trajectory> {
    check_step("eta", eta)?;
    RunOptions {
        divergence_norm,
        ..RunOptions::default()
    }
    .validate()?;
    let eta_eff = eta * init.sigma2();
    let red = init.reduce();
    let (mut a, mut b) = (red.scalar.a()[0], red.scalar.b()[0]);
    let phi = init.phi();
    let mut tr = Trajectory::default();
    for t in 0..=steps {
        let (eps, lam) = (a * b - phi, a * a + b * b);
        if lam.is_nan() || lam > divergence_norm || !eps.is_finite() {
            break;
        }
        tr.a.push(a);
        tr.b.push(b);
        tr.residual.push(eps);
        tr.norm.push(lam);
        tr.imbalance.push(a * a - b * b);
        if t < steps {
            (a, b) = scalar_gd_steps(a, b, phi, eta_eff, 1);
        }
    }
    Ok(tr)
}

/// The step-size regime of a run from `init` at step η (`docs/theory/scalar-net.md` §Regimes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// η σ² ≤ 2/λ_GF: the GF limit is itself linearly stable; GD converges near it (for moderate λ₀).
    Stable,
    /// 2/λ_GF < ησ² ≤ 1/|Φ|: GD cannot stay near the GF solution; it oscillates, shrinks P and converges to
    /// a flatter minimum with 2|Φ| ≤ λ_GD < 2/η (slowly as η → 1/|Φ|).
    EdgeOfStability,
    /// ησ² > 1/|Φ|: every minimum has sharpness ≥ 2σ²|Φ| > 2/η, so generic runs do not converge.
    NoStableMinimum,
    /// The init lies on an invariant line a + b = 0 (Φ ≥ 0) or a − b = 0 (Φ ≤ 0) leading to the saddle.
    SaddleLine,
}

/// The regime with the thresholds it was decided by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegimeReport {
    pub regime: Regime,
    /// λ_GF = √(4Φ² + P₀) (None on a saddle line).
    pub lambda_gf: Option<f64>,
    /// 2/(σ²λ_GF): the largest η at which GF's limit is stable.
    pub eta_gf_stable: Option<f64>,
    /// 1/(σ²|Φ|): the largest η at which any minimum is stable (∞ for Φ = 0).
    pub eta_max_stable: f64,
    /// Sharpness of the init, λ_max(∇²L(θ₀)).
    pub initial_sharpness: f64,
    /// η · sharpness(θ₀) > 2: the init itself is unstable, so GD starts with a catapult (a loss spike
    /// and a sharpness drop; `docs/theory/scalar-net.md` §Reference values, start (3, 0.1); it may also
    /// diverge, roughly for ηλ₀ ≳ 4).
    pub catapult: bool,
}

/// Classifies the regime of GD with step η from `init`.
pub fn classify(init: &ScalarNetState, eta: f64) -> Result<RegimeReport> {
    check_step("eta", eta)?;
    let s2 = init.sigma2();
    let phi = init.phi();
    let eta_max_stable = if phi == 0.0 {
        f64::INFINITY
    } else {
        1.0 / (s2 * phi.abs())
    };
    let initial_sharpness = init.sharpness();
    let catapult = eta * initial_sharpness > 2.0;
    let (regime, lgf) = if init.saddle_line().is_some() {
        (Regime::SaddleLine, None)
    } else {
        let l = lambda_gf(init.invariants().p, phi);
        let r = if eta > eta_max_stable {
            Regime::NoStableMinimum
        } else if eta * s2 * l > 2.0 {
            Regime::EdgeOfStability
        } else {
            Regime::Stable
        };
        (r, Some(l))
    };
    Ok(RegimeReport {
        regime,
        lambda_gf: lgf,
        eta_gf_stable: lgf.map(|l| 2.0 / (s2 * l)),
        eta_max_stable,
        initial_sharpness,
        catapult,
    })
}

/// The small-η expansion of the GD limit (`docs/theory/scalar-net.md` §GD limit):
/// `log(P₀/P_∞) ≈ 2η ∫₀^∞ ε_GF² dτ`, hence
/// `λ_GD ≈ √(4Φ² + P₀ e^{−2ηI})` and `λ_GF − λ_GD = η (λ_GF − 4Φ²/λ_GF) I + O(η²)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmallEtaExpansion {
    pub lambda_gf: f64,
    /// I = ∫₀^∞ ε_GF(τ)² dτ (canonical time), closed form.
    pub residual_sq_integral: f64,
    /// d(λ_GF − λ_GD)/dη at η = 0 (per unit effective step ησ²): (λ_GF − 4Φ²/λ_GF) I.
    pub gap_slope: f64,
    p0: f64,
    phi: f64,
    sigma2: f64,
}

impl SmallEtaExpansion {
    pub fn new(init: &ScalarNetState) -> Result<Self> {
        let gf = GfSolution::new(init)?;
        let l = gf.lambda_gf();
        let i = gf.residual_sq_integral();
        let phi = init.phi();
        Ok(SmallEtaExpansion {
            lambda_gf: l,
            residual_sq_integral: i,
            gap_slope: (l - 4.0 * phi * phi / l) * i,
            p0: init.invariants().p,
            phi,
            sigma2: init.sigma2(),
        })
    }

    /// First order: λ_GD ≈ λ_GF − ησ² (λ_GF − 4Φ²/λ_GF) I.
    pub fn lambda_gd_first_order(&self, eta: f64) -> f64 {
        self.lambda_gf - eta * self.sigma2 * self.gap_slope
    }

    /// Exponential form: λ_GD ≈ √(4Φ² + P₀ e^{−2ησ² I}).
    pub fn lambda_gd_exponential(&self, eta: f64) -> f64 {
        lambda_gf(
            self.p0 * (-2.0 * eta * self.sigma2 * self.residual_sq_integral).exp(),
            self.phi,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EosError;

    #[test]
    fn bad_step_and_options_are_typed_errors() {
        let net = ScalarNetState::scalar(1.5, 0.01, 1.0).unwrap();
        for eta in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                run_gd(&net, eta, &RunOptions::default()),
                Err(EosError::NonPositiveStep { .. })
            ));
        }
        let bad = RunOptions {
            tol: 0.0,
            ..RunOptions::default()
        };
        assert!(matches!(
            run_gd(&net, 0.1, &bad),
            Err(EosError::Invalid { field: "tol", .. })
        ));
        let bad = RunOptions {
            divergence_norm: f64::NAN,
            ..RunOptions::default()
        };
        assert!(matches!(
            run_gd(&net, 0.1, &bad),
            Err(EosError::Invalid {
                field: "divergence_norm",
                ..
            })
        ));
    }

    #[test]
    fn divergence_is_an_outcome_with_its_step() {
        // docs/theory/scalar-net.md §Reference values: (3, 0.1, Φ = 1) diverges for η ≥ 0.45 (ηλ₀ ≥ 4.05).
        let net = ScalarNetState::scalar(3.0, 0.1, 1.0).unwrap();
        match run_gd(&net, 0.6, &RunOptions::default()).unwrap() {
            GdOutcome::Diverged { step, .. } => assert!(step > 0 && step < 100, "step {step}"),
            other => panic!("expected divergence, got {other:?}"),
        }
    }

    #[test]
    fn saddle_inits_are_reported() {
        // Φ = 0 with a balanced init: ε = a² decays only like 1/(ηt).
        let net = ScalarNetState::scalar(0.5, 0.5, 0.0).unwrap();
        let opts = RunOptions {
            max_steps: 10_000,
            ..RunOptions::default()
        };
        assert!(matches!(
            run_gd(&net, 0.1, &opts).unwrap(),
            GdOutcome::Saddle { steps: 10_000, .. }
        ));
        // a + b = 0 with Φ = 1: a − b contracts by (1 − ηΦ) → the saddle, with ε → −Φ.
        let net = ScalarNetState::scalar(0.5, -0.5, 1.0).unwrap();
        match run_gd(&net, 0.1, &opts).unwrap() {
            GdOutcome::Saddle {
                residual,
                lambda,
                steps,
                ..
            } => {
                assert!(lambda < 1e-12 && (residual + 1.0).abs() < 1e-12 && steps < 10_000)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(classify(&net, 0.1).unwrap().regime, Regime::SaddleLine);
    }
}
