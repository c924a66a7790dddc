//! The `VectorField` trait: an autonomous or time-dependent right-hand side `ẏ = F(t, y)` on a flat state,
//! so that [`crate::dop853`] composes with every flow of [`crate::flows`].
use crate::dop853::{self, Dop853Options, Dop853Report};
use crate::error::{check_len, Result};

/// A vector field `F(t, y)` on `R^dim`.
pub trait VectorField: Sync {
    /// Dimension of the state.
    fn dim(&self) -> usize;
    /// Writes `F(t, y)` into `out`.
    fn eval(&self, t: f64, y: &[f64], out: &mut [f64]) -> Result<()>;
}

/// Integrates `ẏ = F(t, y)` with DOP853 from `(t0, y0)` to `t_end`.
///
/// ```
/// use imreg_flow::{flows::GradientFlow, field::integrate_field, dop853::Dop853Options};
/// use imreg_objective::models::LogCoshQuartic;
/// let obj = LogCoshQuartic::random(4, 2, 1).unwrap();
/// let (w, report) = integrate_field(&GradientFlow::new(&obj), 0.0, &[0.5, -0.5], 1.0, &Dop853Options::default()).unwrap();
/// assert_eq!(w.len(), 2);
/// assert!(report.accepted > 0);
/// ```
pub fn integrate_field(
    field: &dyn VectorField,
    t0: f64,
    y0: &[f64],
    t_end: f64,
    opts: &Dop853Options,
) -> Result<(Vec<f64>, Dop853Report)> {
    check_len("y0", y0, field.dim())?;
    dop853::integrate(|t, y, out| field.eval(t, y, out), t0, y0, t_end, opts)
}

/// Integrates `ẏ = F(t, y)` with DOP853 and returns the solution at each time of `t_eval` (dense output).
pub fn integrate_field_dense(
    field: &dyn VectorField,
    t0: f64,
    y0: &[f64],
    t_eval: &[f64],
    opts: &Dop853Options,
) -> Result<(Vec<Vec<f64>>, Dop853Report)> {
    check_len("y0", y0, field.dim())?;
    dop853::integrate_dense(|t, y, out| field.eval(t, y, out), t0, y0, t_eval, opts)
}
