//! Classical fourth-order Runge–Kutta with a curvature-scaled fixed step: Cohen et al.'s reference gradient
//! flow for the edge of stability (their `flow.py`).
//!
//! One step of size `h` from `(t, y)` with `F = field`:
//! `k₁ = F(t, y)`, `k₂ = F(t + h/2, y + (h/2)k₁)`, `k₃ = F(t + h/2, y + (h/2)k₂)`, `k₄ = F(t + h, y + h k₃)`,
//! `y⁺ = y + (h/6)(k₁ + 2k₂ + 2k₃ + k₄)` (local error `O(h⁵)`, global `O(h⁴)` on smooth fields).
//!
//! **Step rule.** The output times `t₀ < t₁ < …` cut the run into intervals. At the start of each interval
//! a curvature scale `λ` is measured at the current state (for gradient flow: the sharpness
//! `λ_max(∇²C(y))`), the step bound is `h* = min(α/λ, h_max)` (`h* = h_max` when `λ ≤ 0`), and the interval
//! `Δ = t_{j+1} − t_j` is covered by `n = ⌈Δ/h*⌉` equal steps `Δ/n` — as Cohen et al.'s `rk_advance_time`
//! covers each tick. On the linear test equation `ẏ = −λy` RK4 is stable for `hλ ≤ 2.785`; `α = 1` (their
//! default) keeps it well inside, so the step follows the stiffness of the flow.
//!
//! Unlike an adaptive integrator ([`crate::dop853`]) the step does not shrink where the field is
//! discontinuous (the max-pool and ReLU switches of a CNN's gradient): there the local error is only first
//! order, which is why the step rule, not a tolerance, defines this reference flow.
//!
//! ```
//! use imreg_flow::rk4::{integrate_rk4, Rk4Options};
//! // ẏ = −4y, y(0) = 1, curvature 4: steps of at most α/λ = 1/4, outputs at t = 0.5, 1.
//! let opts = Rk4Options { alpha: 1.0, h_max: 1.0, divergence_norm: f64::INFINITY };
//! let (ys, report) = integrate_rk4(
//!     |_t, y: &[f64], dy: &mut [f64]| { dy[0] = -4.0 * y[0]; Ok(()) },
//!     |_t, _y: &[f64]| Ok(4.0),
//!     0.0, &[1.0], &[0.5, 1.0], &opts,
//! ).unwrap();
//! assert_eq!((report.steps, report.evaluations), (4, 16));
//! assert!((ys[1][0] - (-4.0f64).exp()).abs() < 2e-3);
//! ```
use crate::error::{FlowError, Result};

/// Options of [`integrate_rk4`].
#[derive(Clone, Debug, PartialEq)]
pub struct Rk4Options {
    /// `α` of the step bound `min(α/λ, h_max)` (Cohen et al.: 1).
    pub alpha: f64,
    /// The largest step.
    pub h_max: f64,
    /// A state with Euclidean norm above this (or non-finite) is [`FlowError::BlowUp`].
    pub divergence_norm: f64,
}

impl Default for Rk4Options {
    fn default() -> Self {
        Rk4Options {
            alpha: 1.0,
            h_max: 1.0,
            divergence_norm: f64::INFINITY,
        }
    }
}

/// What an [`integrate_rk4`] run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rk4Report {
    /// RK4 steps taken.
    pub steps: usize,
    /// Evaluations of the field (`4 · steps`).
    pub evaluations: usize,
    /// The curvature `λ` measured at the start of each output interval (one per output time).
    pub curvatures: Vec<f64>,
    /// The step used on each output interval.
    pub step_sizes: Vec<f64>,
}

fn axpy_into(out: &mut [f64], y: &[f64], a: f64, k: &[f64]) {
    for ((o, yi), ki) in out.iter_mut().zip(y).zip(k) {
        *o = yi + a * ki;
    }
}

/// Integrates `ẏ = field(t, y)` from `(t0, y0)` with RK4 under the step rule of the module docs and returns
/// `y` at each time of `t_eval` (non-decreasing, all `≥ t0`; an output at the current time repeats the state).
/// `curvature(t, y)` is called once per output interval, at its start.
///
/// Errors: bad options or times ([`FlowError::Invalid`]), a non-finite curvature, an error of `field` or
/// `curvature` (returned unchanged), a blow-up ([`FlowError::BlowUp`], with `t` and the step).
pub fn integrate_rk4<F, K>(
    mut field: F,
    mut curvature: K,
    t0: f64,
    y0: &[f64],
    t_eval: &[f64],
    opts: &Rk4Options,
) -> Result<(Vec<Vec<f64>>, Rk4Report)>
where
    F: FnMut(f64, &[f64], &mut [f64]) -> Result<()>,
    K: FnMut(f64, &[f64]) -> Result<f64>,
{
    if !(opts.alpha.is_finite() && opts.alpha > 0.0) {
        return Err(FlowError::invalid(
            "alpha",
            format!("must be finite and > 0, got {}", opts.alpha),
        ));
    }
    if !(opts.h_max.is_finite() && opts.h_max > 0.0) {
        return Err(FlowError::invalid(
            "h_max",
            format!("must be finite and > 0, got {}", opts.h_max),
        ));
    }
    if !t0.is_finite() {
        return Err(FlowError::invalid("t0", format!("must be finite, got {t0}")));
    }
    let mut prev = t0;
    for &t in t_eval {
        if !(t.is_finite() && t >= prev) {
            return Err(FlowError::invalid(
                "t_eval",
                format!("must be finite, non-decreasing and ≥ t0 = {t0}; got {t} after {prev}"),
            ));
        }
        prev = t;
    }
    let dim = y0.len();
    let mut y = y0.to_vec();
    let (mut k1, mut k2, mut k3, mut k4, mut tmp) = (
        vec![0.0; dim],
        vec![0.0; dim],
        vec![0.0; dim],
        vec![0.0; dim],
        vec![0.0; dim],
    );
    let mut report = Rk4Report::default();
    let mut out = Vec::with_capacity(t_eval.len());
    let mut t = t0;
    for &target in t_eval {
        let span = target - t;
        let lambda = curvature(t, &y)?;
        if !lambda.is_finite() {
            return Err(FlowError::invalid(
                "curvature",
                format!("non-finite value {lambda} at t = {t}"),
            ));
        }
        let bound = if lambda > 0.0 {
            (opts.alpha / lambda).min(opts.h_max)
        } else {
            opts.h_max
        };
        // n = ⌈Δ/h*⌉ equal steps (0 for an output at the current time).
        let n = (span / bound).ceil() as usize;
        let h = if n == 0 { 0.0 } else { span / n as f64 };
        report.curvatures.push(lambda);
        report.step_sizes.push(h);
        let start = t;
        for i in 0..n {
            let ti = start + i as f64 * h;
            field(ti, &y, &mut k1)?;
            axpy_into(&mut tmp, &y, 0.5 * h, &k1);
            field(ti + 0.5 * h, &tmp, &mut k2)?;
            axpy_into(&mut tmp, &y, 0.5 * h, &k2);
            field(ti + 0.5 * h, &tmp, &mut k3)?;
            axpy_into(&mut tmp, &y, h, &k3);
            field(ti + h, &tmp, &mut k4)?;
            for j in 0..dim {
                y[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
            }
            report.steps += 1;
            report.evaluations += 4;
            let norm = y.iter().map(|v| v * v).sum::<f64>().sqrt();
            if !norm.is_finite() || norm > opts.divergence_norm {
                return Err(FlowError::BlowUp {
                    t: ti + h,
                    step: report.steps,
                    what: format!("‖y‖ = {norm:e}"),
                });
            }
        }
        t = target;
        out.push(y.clone());
    }
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decay(rate: f64) -> impl FnMut(f64, &[f64], &mut [f64]) -> Result<()> {
        move |_t, y, dy| {
            dy[0] = -rate * y[0];
            Ok(())
        }
    }

    /// Global error at t = 1 on ẏ = −y falls 16-fold per halving of h (order 4).
    #[test]
    fn fourth_order_on_linear_decay() {
        let err = |h: f64| {
            let opts = Rk4Options {
                alpha: 1.0,
                h_max: h,
                ..Default::default()
            };
            let (ys, _) = integrate_rk4(decay(1.0), |_, _| Ok(0.0), 0.0, &[1.0], &[1.0], &opts).unwrap();
            (ys[0][0] - (-1.0f64).exp()).abs()
        };
        let (e1, e2, e3) = (err(0.04), err(0.02), err(0.01));
        for r in [e1 / e2, e2 / e3] {
            assert!((r - 16.0).abs() < 0.5, "ratio {r}");
        }
    }

    /// One step on ẏ = −λy multiplies y by the RK4 stability polynomial R(z) = 1 + z + z²/2 + z³/6 + z⁴/24,
    /// z = −hλ, with h = α/λ (here z = −1 exactly), and the outputs land on the requested times.
    #[test]
    fn step_rule_and_stability_polynomial() {
        let lambda = 8.0;
        let opts = Rk4Options {
            alpha: 1.0,
            h_max: 10.0,
            ..Default::default()
        };
        let times = [0.25, 0.25, 0.5];
        let (ys, rep) = integrate_rk4(decay(lambda), |_, _| Ok(lambda), 0.0, &[1.0], &times, &opts).unwrap();
        let r = 1.0 - 1.0 + 0.5 - 1.0 / 6.0 + 1.0 / 24.0;
        assert_eq!(rep.steps, 4);
        assert_eq!(rep.step_sizes, [0.125, 0.0, 0.125]);
        assert!((ys[0][0] - r * r).abs() < 1e-15 && ys[1] == ys[0]);
        assert!((ys[2][0] - r.powi(4)).abs() < 1e-15);
    }

    /// Gradient flow on `C = ½ θᵀ diag(1, 30) θ` (a `VectorField` of [`crate::flows`]): each component is
    /// multiplied by `R(−h a_i)` per step, and is within the RK4 truncation bound of `θ_i e^{−a_i t}`.
    #[test]
    fn gradient_flow_of_a_quadratic() {
        use crate::field::VectorField;
        use crate::flows::GradientFlow;
        let q = imreg_objective::Quadratic::diagonal(&[1.0, 30.0]);
        let flow = GradientFlow::new(&q);
        let opts = Rk4Options {
            alpha: 1.0,
            h_max: 0.02,
            ..Default::default()
        };
        let (ys, rep) = integrate_rk4(
            |t, y, dy| flow.eval(t, y, dy),
            |_, _| Ok(30.0),
            0.0,
            &[1.0, 1.0],
            &[0.3],
            &opts,
        )
        .unwrap();
        assert_eq!(rep.steps, 15);
        let poly = |z: f64| 1.0 + z + z * z / 2.0 + z.powi(3) / 6.0 + z.powi(4) / 24.0;
        for (i, a) in [1.0f64, 30.0].iter().enumerate() {
            let exact = (-a * 0.3).exp();
            assert!((ys[0][i] - poly(-a * 0.02).powi(15)).abs() <= 1e-14, "{i}");
            // Lagrange remainder: |R(z) − e^z| ≤ |z|⁵/120 for z < 0, so per step the relative error is at
            // most δ = |z|⁵ e^{|z|}/120, and over n steps (1 + δ)ⁿ − 1.
            let z = a * 0.02;
            let bound = (1.0 + z.powi(5) * z.exp() / 120.0).powi(15) - 1.0;
            let rel = (ys[0][i] - exact).abs() / exact;
            assert!(rel <= bound, "{i}: relative error {rel} > {bound}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let opts = Rk4Options::default();
        let run = |times: &[f64], o: &Rk4Options, lam: f64| {
            integrate_rk4(decay(1.0), move |_, _| Ok(lam), 0.0, &[1.0], times, o)
        };
        assert!(matches!(
            run(&[1.0, 0.5], &opts, 1.0),
            Err(FlowError::Invalid { field: "t_eval", .. })
        ));
        assert!(matches!(
            run(&[-1.0], &opts, 1.0),
            Err(FlowError::Invalid { field: "t_eval", .. })
        ));
        let zero = Rk4Options {
            alpha: 0.0,
            ..Default::default()
        };
        assert!(matches!(
            run(&[1.0], &zero, 1.0),
            Err(FlowError::Invalid { field: "alpha", .. })
        ));
        let inf = Rk4Options {
            h_max: f64::INFINITY,
            ..Default::default()
        };
        assert!(matches!(
            run(&[1.0], &inf, 1.0),
            Err(FlowError::Invalid { field: "h_max", .. })
        ));
        assert!(matches!(
            run(&[1.0], &opts, f64::NAN),
            Err(FlowError::Invalid {
                field: "curvature",
                ..
            })
        ));
        // ẏ = +y with a bound on ‖y‖: a blow-up with its time.
        let capped = Rk4Options {
            divergence_norm: 10.0,
            ..Default::default()
        };
        let grow = integrate_rk4(decay(-1.0), |_, _| Ok(0.0), 0.0, &[1.0], &[5.0], &capped);
        assert!(matches!(grow, Err(FlowError::BlowUp { t, .. }) if t == 3.0));
    }
}
