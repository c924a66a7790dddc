//! DOP853: the explicit Runge–Kutta method of order 8 of Dormand & Prince with Hairer's coefficients, both
//! of Hairer's error estimators (the 5th-order estimate combined with the 3rd-order one, as in `dop853.f`),
//! PI step-size control (Gustafsson / Lund stabilization) and the 7th-order continuous extension (dense
//! output, three extra stages per step that carries a requested output time).
//!
//! The state is a flat `&[f64]`. The right-hand side is any
//! `FnMut(t, y, dy) -> Result<(), FlowError>` writing `f(t, y)` into `dy`; an `Err` from it aborts the
//! integration and is returned unchanged.
//!
//! ```
//! use imreg_flow::dop853::{integrate, Dop853Options};
//! // ẏ = −y, y(0) = 1  ⇒  y(1) = e^{−1}
//! let opts = Dop853Options { rtol: 1e-12, atol: 1e-14, ..Default::default() };
//! let (y, report) = integrate(|_t, y: &[f64], dy: &mut [f64]| { dy[0] = -y[0]; Ok(()) }, 0.0, &[1.0], 1.0, &opts)
//!     .unwrap();
//! assert!((y[0] - (-1.0f64).exp()).abs() < 1e-12);
//! assert_eq!(report.t_end, 1.0);
//! assert!(report.accepted > 0 && report.evaluations >= 12 * report.accepted);
//! ```
//!
//! Failure modes are typed errors, never hangs: a non-finite state or one whose norm exceeds
//! [`Dop853Options::divergence_norm`] gives [`FlowError::BlowUp`] (with `t` and the step number), a step size
//! below `h_min` (or below round-off of `t`) gives [`FlowError::StepSizeCollapse`], and more than
//! `max_steps` steps give [`FlowError::MaxSteps`].
use crate::dop853_tableau::{A, C, D, E3, E5, N_STAGES, N_STAGES_EXTENDED};
use crate::error::{FlowError, Result};

/// Options of [`integrate`] / [`integrate_dense`]. The defaults are Hairer's, except `beta` (see below).
#[derive(Clone, Debug, PartialEq)]
pub struct Dop853Options {
    /// Relative tolerance (per component, `sk = atol + rtol·max(|y|, |y_new|)`).
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Initial step size; `None` uses Hairer's `HINIT` estimate for an order-8 method.
    pub h0: Option<f64>,
    /// Largest step size (default `∞`, i.e. `|t_end − t0|`).
    pub h_max: f64,
    /// Smallest step size before [`FlowError::StepSizeCollapse`] (default 0: only the round-off floor
    /// `0.1|h| ≤ u|t|` of `dop853.f` applies).
    pub h_min: f64,
    /// Maximal number of attempted steps (accepted + rejected).
    pub max_steps: usize,
    /// Safety factor of the step-size prediction (Hairer's `SAFE`, 0.9).
    pub safety: f64,
    /// Lower bound of the step-size ratio `h_new/h` (Hairer's `FAC1`, 0.333).
    pub fac_min: f64,
    /// Upper bound of the step-size ratio `h_new/h` (Hairer's `FAC2`, 6.0).
    pub fac_max: f64,
    /// PI (Lund) stabilization exponent `β`: `h_new = h · safety · err^{−(1/8 − 0.2β)} · err_old^{β}`.
    /// Default 0.04 (the PI controller); `β = 0` recovers the pure I-controller that is `dop853.f`'s default.
    pub beta: f64,
    /// A state with Euclidean norm above this is reported as [`FlowError::BlowUp`] (default `∞`: only
    /// non-finite states).
    pub divergence_norm: f64,
}

impl Default for Dop853Options {
    fn default() -> Self {
        Dop853Options {
            rtol: 1e-10,
            atol: 1e-12,
            h0: None,
            h_max: f64::INFINITY,
            h_min: 0.0,
            max_steps: 100_000,
            safety: 0.9,
            fac_min: 0.333,
            fac_max: 6.0,
            beta: 0.04,
            divergence_norm: f64::INFINITY,
        }
    }
}

impl Dop853Options {
    /// Tolerances `rtol`, `atol` with the other defaults.
    pub fn with_tol(rtol: f64, atol: f64) -> Self {
        Dop853Options {
            rtol,
            atol,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let positive = |field: &'static str, v: f64| {
            if v.is_nan() || v <= 0.0 {
                Err(FlowError::invalid(field, format!("must be > 0, got {v}")))
            } else {
                Ok(())
            }
        };
        positive("rtol", self.rtol)?;
        if !(self.atol >= 0.0 && self.atol.is_finite()) {
            return Err(FlowError::invalid(
                "atol",
                format!("must be ≥ 0 and finite, got {}", self.atol),
            ));
        }
        if self.rtol < 10.0 * f64::EPSILON && self.atol == 0.0 {
            return Err(FlowError::invalid(
                "rtol",
                format!("{} is below round-off with atol = 0", self.rtol),
            ));
        }
        positive("h_max", self.h_max)?;
        if let Some(h0) = self.h0 {
            if !(h0.is_finite() && h0 > 0.0) {
                return Err(FlowError::invalid(
                    "h0",
                    format!("must be positive and finite, got {h0}"),
                ));
            }
        }
        if !(self.h_min >= 0.0 && self.h_min.is_finite()) {
            return Err(FlowError::invalid(
                "h_min",
                format!("must be ≥ 0 and finite, got {}", self.h_min),
            ));
        }
        if self.max_steps == 0 {
            return Err(FlowError::invalid("max_steps", "must be ≥ 1"));
        }
        if !(self.safety > 0.0 && self.safety < 1.0) {
            return Err(FlowError::invalid(
                "safety",
                format!("must lie in (0, 1), got {}", self.safety),
            ));
        }
        if !(self.fac_min > 0.0 && self.fac_min < 1.0) {
            return Err(FlowError::invalid(
                "fac_min",
                format!("must lie in (0, 1), got {}", self.fac_min),
            ));
        }
        if !(self.fac_max > 1.0 && self.fac_max.is_finite()) {
            return Err(FlowError::invalid(
                "fac_max",
                format!("must be > 1 and finite, got {}", self.fac_max),
            ));
        }
        if !(0.0..=0.2).contains(&self.beta) {
            return Err(FlowError::invalid(
                "beta",
                format!("must lie in [0, 0.2], got {}", self.beta),
            ));
        }
        positive("divergence_norm", self.divergence_norm)?;
        Ok(())
    }
}

/// What an integration did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dop853Report {
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps (error estimate above tolerance, or a trial step with a non-finite stage).
    pub rejected: usize,
    /// Right-hand-side evaluations (12 per attempted step, plus the first, plus 3 per dense-output step,
    /// plus 1 for the initial step-size estimate).
    pub evaluations: usize,
    /// Steps on which the dense output was built.
    pub dense_steps: usize,
    /// The time reached (`t_end` on success).
    pub t_end: f64,
    /// The last accepted step size.
    pub h_last: f64,
    /// The smallest accepted step size.
    pub h_min_used: f64,
}

/// Integrates `ẏ = f(t, y)` from `(t0, y0)` to `t_end` (backwards if `t_end < t0`) and returns `y(t_end)`.
///
/// `f(t, y, dy)` writes `f(t, y)` into `dy` (length `y0.len()`).
pub fn integrate<F>(
    f: F,
    t0: f64,
    y0: &[f64],
    t_end: f64,
    opts: &Dop853Options,
) -> Result<(Vec<f64>, Dop853Report)>
where
    F: FnMut(f64, &[f64], &mut [f64]) -> Result<()>,
{
    let (y, _, report) = run(f, t0, y0, t_end, opts, &[])?;
    Ok((y, report))
}

/// Integrates `ẏ = f(t, y)` from `(t0, y0)` up to the last of `t_eval` and returns the solution at each time
/// of `t_eval`, evaluated with the 7th-order dense output (the steps are chosen by the error control alone,
/// never shortened to hit the output times).
///
/// `t_eval` must be monotone (non-decreasing, or non-increasing for a backward integration) and start at or
/// after `t0` in the direction of integration.
pub fn integrate_dense<F>(
    f: F,
    t0: f64,
    y0: &[f64],
    t_eval: &[f64],
    opts: &Dop853Options,
) -> Result<(Vec<Vec<f64>>, Dop853Report)>
where
    F: FnMut(f64, &[f64], &mut [f64]) -> Result<()>,
{
    let Some(&t_last) = t_eval.last() else {
        return Err(FlowError::invalid("t_eval", "is empty"));
    };
    let (_, out, report) = run(f, t0, y0, t_last, opts, t_eval)?;
    Ok((out, report))
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// `out = y + h Σ_j coef[j] k[j]` over the stages with a non-zero coefficient.
fn combine(out: &mut [f64], y: &[f64], h: f64, coef: &[f64], k: &[Vec<f64>]) {
    out.copy_from_slice(y);
    for (c, kj) in coef.iter().zip(k) {
        if *c != 0.0 {
            let hc = h * c;
            for (o, v) in out.iter_mut().zip(kj) {
                *o += hc * v;
            }
        }
    }
}

/// Hairer's `HINIT` for a method of order `iord = 8`.
fn initial_step<F>(
    f: &mut F,
    t0: f64,
    y0: &[f64],
    f0: &[f64],
    dir: f64,
    opts: &Dop853Options,
    scratch: &mut [Vec<f64>; 2],
) -> Result<f64>
where
    F: FnMut(f64, &[f64], &mut [f64]) -> Result<()>,
{
    let (mut dnf, mut dny) = (0.0, 0.0);
    for i in 0..y0.len() {
        let sk = opts.atol + opts.rtol * y0[i].abs();
        dnf += (f0[i] / sk).powi(2);
        dny += (y0[i] / sk).powi(2);
    }
    let mut h = if dnf <= 1e-10 || dny <= 1e-10 {
        1e-6
    } else {
        (dny / dnf).sqrt() * 0.01
    };
    h = h.min(opts.h_max);
    let [y1, f1] = scratch;
    for i in 0..y0.len() {
        y1[i] = y0[i] + dir * h * f0[i];
    }
    f(t0 + dir * h, y1, f1)?;
    let mut der2 = 0.0;
    for i in 0..y0.len() {
        let sk = opts.atol + opts.rtol * y0[i].abs();
        der2 += ((f1[i] - f0[i]) / sk).powi(2);
    }
    let der2 = der2.sqrt() / h;
    let der12 = der2.abs().max(dnf.sqrt());
    let h1 = if !der12.is_finite() || der12 <= 1e-15 {
        1e-6f64.max(h * 1e-3)
    } else {
        (0.01 / der12).powf(1.0 / 8.0)
    };
    Ok((100.0 * h).min(h1).min(opts.h_max))
}

/// The 7th-order dense-output polynomial on one step `[t_old, t_old + h]`.
struct DenseStep {
    t_old: f64,
    h: f64,
    y_old: Vec<f64>,
    /// `F_0..F_6` of Hairer's `CONTD8` (`rcont1..rcont8` minus `y_old`).
    coef: [Vec<f64>; 7],
}

impl DenseStep {
    fn new(n: usize) -> Self {
        DenseStep {
            t_old: 0.0,
            h: 0.0,
            y_old: vec![0.0; n],
            coef: std::array::from_fn(|_| vec![0.0; n]),
        }
    }

    /// `y(t) = y_old + s(F0 + (1−s)(F1 + s(F2 + (1−s)(F3 + s(F4 + (1−s)(F5 + s F6))))))`, `s = (t − t_old)/h`.
    fn eval(&self, t: f64, out: &mut [f64]) {
        let s = (t - self.t_old) / self.h;
        let s1 = 1.0 - s;
        let f = &self.coef;
        for i in 0..out.len() {
            let conpar = f[3][i] + s * (f[4][i] + s1 * (f[5][i] + s * f[6][i]));
            out[i] = self.y_old[i] + s * (f[0][i] + s1 * (f[1][i] + s * (f[2][i] + s1 * conpar)));
        }
    }
}

#[allow(clippy::type_complexity)]
fn run<F>(
    mut f: F,
    t0: f64,
    y0: &[f64],
    t_end: f64,
    opts: &Dop853Options,
    t_eval: &[f64],
) -> Result<(Vec<f64>, Vec<Vec<f64>>, Dop853Report)>
where
    F: FnMut(f64, &[f64], &mut [f64]) -> Result<()>,
{
    opts.validate()?;
    if !t0.is_finite() {
        return Err(FlowError::invalid("t0", format!("must be finite, got {t0}")));
    }
    if !t_end.is_finite() {
        return Err(FlowError::invalid(
            "t_end",
            format!("must be finite, got {t_end}"),
        ));
    }
    if y0.is_empty() {
        return Err(FlowError::invalid("y0", "is empty"));
    }
    if let Some((i, v)) = y0.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(FlowError::invalid(
            "y0",
            format!("non-finite value {v} at position {i}"),
        ));
    }
    let n = y0.len();
    let dir = if t_end >= t0 { 1.0 } else { -1.0 };
    // Validate the output times: inside [t0, t_end] and monotone in the direction of integration.
    let mut prev = t0;
    for (i, &te) in t_eval.iter().enumerate() {
        if !te.is_finite() || (te - prev) * dir < 0.0 {
            return Err(FlowError::invalid(
                "t_eval",
                format!(
                    "t_eval[{i}] = {te} is not finite or not monotone from t0 = {t0} towards t_end = {t_end}"
                ),
            ));
        }
        prev = te;
    }
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(t_eval.len());
    let mut next_eval = 0;
    while next_eval < t_eval.len() && t_eval[next_eval] == t0 {
        out.push(y0.to_vec());
        next_eval += 1;
    }

    let mut report = Dop853Report {
        t_end: t0,
        h_min_used: f64::INFINITY,
        ..Default::default()
    };
    let mut y = y0.to_vec();
    if t_end == t0 {
        report.h_min_used = 0.0;
        return Ok((y, out, report));
    }

    let mut k: Vec<Vec<f64>> = (0..N_STAGES_EXTENDED).map(|_| vec![0.0; n]).collect();
    let mut y_stage = vec![0.0; n];
    let mut y_new = vec![0.0; n];
    let mut dense = DenseStep::new(n);

    f(t0, &y, &mut k[0])?;
    report.evaluations += 1;
    if !all_finite(&k[0]) {
        return Err(FlowError::BlowUp {
            t: t0,
            step: 0,
            what: "non-finite vector field at the initial state".into(),
        });
    }
    let h_max = opts.h_max.min((t_end - t0).abs());
    let mut h = match opts.h0 {
        Some(h0) => h0.min(h_max),
        None => {
            let mut scratch = [vec![0.0; n], vec![0.0; n]];
            report.evaluations += 1;
            initial_step(
                &mut f,
                t0,
                &y,
                &k[0],
                dir,
                &Dop853Options {
                    h_max,
                    ..opts.clone()
                },
                &mut scratch,
            )?
        }
    } * dir;

    let expo1 = 1.0 / 8.0 - opts.beta * 0.2;
    let facc1 = 1.0 / opts.fac_min;
    let facc2 = 1.0 / opts.fac_max;
    let mut facold: f64 = 1e-4;
    let mut t = t0;
    let mut reject = false;
    let mut last_reject_nonfinite = false;
    let mut steps = 0usize;

    loop {
        if steps >= opts.max_steps {
            return Err(FlowError::MaxSteps {
                t,
                t_end,
                max_steps: opts.max_steps,
            });
        }
        if 0.1 * h.abs() <= t.abs() * f64::EPSILON || h.abs() < opts.h_min || h == 0.0 {
            if last_reject_nonfinite {
                return Err(FlowError::BlowUp {
                    t,
                    step: steps,
                    what: format!("non-finite stages for every step size down to h = {:e}", h.abs()),
                });
            }
            return Err(FlowError::StepSizeCollapse {
                t,
                step: steps,
                h: h.abs(),
                h_min: opts.h_min.max(10.0 * t.abs() * f64::EPSILON),
            });
        }
        let mut last = false;
        if (t + 1.01 * h - t_end) * dir > 0.0 {
            h = t_end - t;
            last = true;
        }
        steps += 1;

        // The 11 further stages of the step.
        for s in 1..N_STAGES {
            combine(&mut y_stage, &y, h, &A[s][..s], &k[..s]);
            f(t + C[s] * h, &y_stage, &mut k[s])?;
        }
        report.evaluations += N_STAGES - 1;
        combine(&mut y_new, &y, h, &A[12][..N_STAGES], &k[..N_STAGES]);

        // Error estimate: Hairer's combination of the 5th- and 3rd-order estimators.
        let (mut err5, mut err3) = (0.0, 0.0);
        for i in 0..n {
            let sk = opts.atol + opts.rtol * y[i].abs().max(y_new[i].abs());
            let (mut e5, mut e3) = (0.0, 0.0);
            for s in 0..N_STAGES {
                e5 += E5[s] * k[s][i];
                e3 += E3[s] * k[s][i];
            }
            err5 += (e5 / sk).powi(2);
            err3 += (e3 / sk).powi(2);
        }
        let mut deno = err5 + 0.01 * err3;
        if deno <= 0.0 {
            deno = 1.0;
        }
        let err = h.abs() * err5 * (1.0 / (n as f64 * deno)).sqrt();

        if !err.is_finite() || !all_finite(&y_new) {
            // A trial step with non-finite stages: retry with a much smaller step (a genuine blow-up ends
            // in a step-size collapse reported as `BlowUp`).
            report.rejected += 1;
            reject = true;
            last_reject_nonfinite = true;
            h *= 0.1;
            continue;
        }
        last_reject_nonfinite = false;

        let fac11 = err.powf(expo1);
        // Lund stabilization (PI control).
        let fac = (fac11 / facold.powf(opts.beta) / opts.safety).clamp(facc2, facc1);
        let mut h_new = h / fac;

        if err <= 1.0 {
            facold = err.max(1e-4);
            report.accepted += 1;
            let t_new = if last { t_end } else { t + h };
            // First stage of the next step (and stage 12 of the dense output).
            f(t_new, &y_new, &mut k[12])?;
            report.evaluations += 1;
            if !all_finite(&k[12]) || norm(&y_new) > opts.divergence_norm {
                return Err(FlowError::BlowUp {
                    t: t_new,
                    step: steps,
                    what: format!(
                        "state norm {:e} (divergence_norm {:e}) or non-finite field",
                        norm(&y_new),
                        opts.divergence_norm
                    ),
                });
            }
            // Dense output for the requested times in (t, t_new].
            if next_eval < t_eval.len() && (t_eval[next_eval] - t_new) * dir <= 0.0 {
                build_dense(&mut f, &mut dense, &mut k, &y, &y_new, t, h, &mut y_stage)?;
                report.evaluations += 3;
                report.dense_steps += 1;
                while next_eval < t_eval.len() && (t_eval[next_eval] - t_new) * dir <= 0.0 {
                    let te = t_eval[next_eval];
                    if te == t_new {
                        out.push(y_new.clone());
                    } else {
                        let mut v = vec![0.0; n];
                        dense.eval(te, &mut v);
                        out.push(v);
                    }
                    next_eval += 1;
                }
            }
            k.swap(0, 12);
            std::mem::swap(&mut y, &mut y_new);
            t = t_new;
            report.h_last = h.abs();
            report.h_min_used = report.h_min_used.min(h.abs());
            report.t_end = t;
            if last {
                break;
            }
            if h_new.abs() > h_max {
                h_new = dir * h_max;
            }
            if reject {
                h_new = dir * h_new.abs().min(h.abs());
            }
            reject = false;
        } else {
            h_new = h / facc1.min(fac11 / opts.safety);
            reject = true;
            report.rejected += 1;
        }
        h = h_new;
    }
    Ok((y, out, report))
}

/// The three extra stages and the dense-output coefficients `F_0..F_6` of the step `[t, t + h]`
/// (`k[12] = f(t + h, y_new)` must already be computed).
#[allow(clippy::too_many_arguments)]
fn build_dense<F>(
    f: &mut F,
    dense: &mut DenseStep,
    k: &mut [Vec<f64>],
    y: &[f64],
    y_new: &[f64],
    t: f64,
    h: f64,
    y_stage: &mut [f64],
) -> Result<()>
where
    F: FnMut(f64, &[f64], &mut [f64]) -> Result<()>,
{
    for s in (N_STAGES + 1)..N_STAGES_EXTENDED {
        combine(y_stage, y, h, &A[s][..s], &k[..s]);
        f(t + C[s] * h, y_stage, &mut k[s])?;
    }
    dense.t_old = t;
    dense.h = h;
    dense.y_old.copy_from_slice(y);
    let n = y.len();
    for i in 0..n {
        let dy = y_new[i] - y[i];
        let bspl = h * k[0][i] - dy;
        dense.coef[0][i] = dy;
        dense.coef[1][i] = bspl;
        dense.coef[2][i] = dy - h * k[12][i] - bspl;
        for (r, drow) in D.iter().enumerate() {
            let mut acc = 0.0;
            for (s, d) in drow.iter().enumerate() {
                if *d != 0.0 {
                    acc += d * k[s][i];
                }
            }
            dense.coef[3 + r][i] = h * acc;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decay(_t: f64, y: &[f64], dy: &mut [f64]) -> Result<()> {
        dy[0] = -y[0];
        Ok(())
    }

    #[test]
    fn exponential_decay_endpoint_and_dense() {
        let opts = Dop853Options::with_tol(1e-13, 1e-15);
        let t_eval: Vec<f64> = (0..=20).map(|i| i as f64 * 0.25).collect();
        let (ys, rep) = integrate_dense(decay, 0.0, &[1.0], &t_eval, &opts).unwrap();
        for (t, y) in t_eval.iter().zip(&ys) {
            assert!(
                (y[0] - (-t).exp()).abs() < 1e-13,
                "t = {t}: {} vs {}",
                y[0],
                (-t).exp()
            );
        }
        assert!(rep.dense_steps > 0 && rep.dense_steps <= rep.accepted);
        // Backwards: y(−1) = e.
        let (y, _) = integrate(decay, 0.0, &[1.0], -1.0, &opts).unwrap();
        assert!((y[0] - 1f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn blow_up_is_reported_with_time_and_step() {
        // ẏ = y², y(0) = 1 blows up at t = 1.
        let blow_up = |opts: &Dop853Options| {
            integrate(
                |_t, y: &[f64], dy: &mut [f64]| {
                    dy[0] = y[0] * y[0];
                    Ok(())
                },
                0.0,
                &[1.0],
                2.0,
                opts,
            )
            .unwrap_err()
        };
        match blow_up(&Dop853Options::default()) {
            FlowError::BlowUp { t, step, .. } | FlowError::StepSizeCollapse { t, step, .. } => {
                assert!((t - 1.0).abs() < 1e-3, "t = {t}");
                assert!(step > 0);
            }
            other => panic!("unexpected {other:?}"),
        }
        let opts = Dop853Options {
            divergence_norm: 1e6,
            ..Default::default()
        };
        let err = blow_up(&opts);
        assert!(
            matches!(err, FlowError::BlowUp { t, .. } if t < 1.0 && t > 0.99),
            "{err:?}"
        );
    }

    #[test]
    fn stiff_problem_hits_max_steps_or_h_min() {
        // ẏ = −1e8 (y − cos t): explicit methods need h ~ 3e-8.
        let f = |t: f64, y: &[f64], dy: &mut [f64]| {
            dy[0] = -1e8 * (y[0] - t.cos());
            Ok(())
        };
        let opts = Dop853Options {
            max_steps: 1000,
            ..Default::default()
        };
        let err = integrate(f, 0.0, &[0.0], 1.0, &opts).unwrap_err();
        assert!(
            matches!(err, FlowError::MaxSteps { max_steps: 1000, .. }),
            "{err:?}"
        );
        let opts = Dop853Options {
            h_min: 1e-6,
            ..Default::default()
        };
        let err = integrate(f, 0.0, &[0.0], 1.0, &opts).unwrap_err();
        assert!(matches!(err, FlowError::StepSizeCollapse { .. }), "{err:?}");
    }

    #[test]
    fn bad_options_are_named() {
        let bad = [
            (
                Dop853Options {
                    rtol: 0.0,
                    ..Default::default()
                },
                "rtol",
            ),
            (
                Dop853Options {
                    atol: -1.0,
                    ..Default::default()
                },
                "atol",
            ),
            (
                Dop853Options {
                    h0: Some(-1.0),
                    ..Default::default()
                },
                "h0",
            ),
            (
                Dop853Options {
                    max_steps: 0,
                    ..Default::default()
                },
                "max_steps",
            ),
            (
                Dop853Options {
                    beta: 0.5,
                    ..Default::default()
                },
                "beta",
            ),
        ];
        for (o, field) in bad {
            match integrate(decay, 0.0, &[1.0], 1.0, &o) {
                Err(FlowError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(matches!(
            integrate(decay, 0.0, &[f64::NAN], 1.0, &Dop853Options::default()),
            Err(FlowError::Invalid { field: "y0", .. })
        ));
        assert!(matches!(
            integrate_dense(decay, 0.0, &[1.0], &[0.5, 0.25], &Dop853Options::default()),
            Err(FlowError::Invalid { field: "t_eval", .. })
        ));
    }

    #[test]
    fn rhs_error_propagates() {
        let f = |t: f64, _y: &[f64], _dy: &mut [f64]| {
            if t > 0.5 {
                Err(FlowError::invalid("test", "stop"))
            } else {
                Ok(())
            }
        };
        assert!(matches!(
            integrate(f, 0.0, &[1.0], 1.0, &Dop853Options::default()),
            Err(FlowError::Invalid { field: "test", .. })
        ));
    }
}
