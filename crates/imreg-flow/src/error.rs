//! Typed errors of the flow layer. Each names the field, value, time or step at fault.
use imreg_objective::ObjectiveError;
use thiserror::Error;

/// Result alias of the flow layer.
pub type Result<T> = std::result::Result<T, FlowError>;

/// What can go wrong while building or integrating a flow.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FlowError {
    /// An option or argument is out of its domain (e.g. `rtol ≤ 0`, a non-monotone `t_eval`).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The learning rate ε (or step h) must be positive and finite.
    #[error("the step size {name} must be positive and finite, got {value}")]
    NonPositiveStep { name: &'static str, value: f64 },
    /// A vector has the wrong length.
    #[error("{name} has length {got}, expected {expected}")]
    Length {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    /// The state or the vector field became NaN/∞ (or exceeded `divergence_norm`): the flow blew up.
    #[error("the flow blew up at t = {t} (step {step}): {what}")]
    BlowUp { t: f64, step: usize, what: String },
    /// The step size fell below `h_min` (or below round-off of `t`): a stiff problem or a singularity.
    #[error("step-size collapse at t = {t} (step {step}): h = {h:e} < h_min = {h_min:e}")]
    StepSizeCollapse { t: f64, step: usize, h: f64, h_min: f64 },
    /// `max_steps` steps (accepted + rejected) were taken before reaching `t_end`.
    #[error("max_steps = {max_steps} reached at t = {t} before t_end = {t_end}")]
    MaxSteps { t: f64, t_end: f64, max_steps: usize },
    /// The objective rejected a call (bad batch, non-finite parameters, unsupported derivative, …).
    #[error("objective: {0}")]
    Objective(#[from] ObjectiveError),
}

impl FlowError {
    /// Shorthand for [`FlowError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        FlowError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Errors unless `v.len() == expected`.
pub fn check_len(name: &'static str, v: &[f64], expected: usize) -> Result<()> {
    if v.len() != expected {
        return Err(FlowError::Length {
            name,
            expected,
            got: v.len(),
        });
    }
    Ok(())
}

/// Errors unless `value` is a positive finite step size.
pub fn check_step(name: &'static str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(FlowError::NonPositiveStep { name, value });
    }
    Ok(())
}
