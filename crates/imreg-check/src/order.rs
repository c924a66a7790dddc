//! Order-of-accuracy harness: evaluate an error quantity over a geometric sequence of step sizes and fit
//! the log-log slope (with its standard error) by [`crate::loglog_slope`].
//!
//! ```
//! use imreg_check::order::{geometric_steps, order_of_accuracy};
//! let steps = geometric_steps(0.1, 0.5, 5).unwrap();
//! let study = order_of_accuracy(&steps, |h| Ok(3.0 * h * h * h * (1.0 + h))).unwrap();
//! assert!((study.fit.slope - 3.0).abs() < 0.15);
//! ```
use crate::{loglog_slope, CheckError, Outcome, SlopeFit};

type Result<T> = std::result::Result<T, CheckError>;

/// The measured errors at each step size and the fitted log-log slope.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderStudy {
    /// Step sizes used (in the order given).
    pub steps: Vec<f64>,
    /// The error quantity at each step size.
    pub errors: Vec<f64>,
    /// `log err = slope · log h + intercept`, with the slope's standard error and the residuals.
    pub fit: SlopeFit,
    /// `(min, max)` of the step sizes: the range over which the slope is claimed.
    pub range: (f64, f64),
}

impl OrderStudy {
    /// `|slope − theory| ≤ tol`.
    pub fn agrees(&self, theory: f64, tol: f64) -> bool {
        (self.fit.slope - theory).abs() <= tol && self.fit.slope.is_finite()
    }

    /// A check outcome: "`label`: slope `theory` ± `tol` over h ∈ [a, b]" vs the fitted slope ± se.
    pub fn outcome(&self, label: &str, theory: f64, tol: f64) -> Outcome {
        Outcome::new(
            format!(
                "{label}: slope {theory} ± {tol} over ε ∈ [{:.3e}, {:.3e}]",
                self.range.0, self.range.1
            ),
            format!(
                "{label}: slope {:.3} (se {:.3})",
                self.fit.slope, self.fit.slope_se
            ),
            self.agrees(theory, tol),
        )
    }

    /// The raw series as CSV lines `step,error`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("step,error\n");
        for (h, e) in self.steps.iter().zip(&self.errors) {
            s.push_str(&format!("{h:e},{e:e}\n"));
        }
        s
    }
}

/// `count` step sizes `largest · ratio^k`, `k = 0..count` (`0 < ratio < 1`).
pub fn geometric_steps(largest: f64, ratio: f64, count: usize) -> Result<Vec<f64>> {
    if !(largest.is_finite() && largest > 0.0) {
        return Err(CheckError::invalid(
            "largest",
            format!("must be positive and finite, got {largest}"),
        ));
    }
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(CheckError::invalid(
            "ratio",
            format!("must lie in (0, 1), got {ratio}"),
        ));
    }
    if count < 2 {
        return Err(CheckError::invalid(
            "count",
            format!("need at least 2 step sizes, got {count}"),
        ));
    }
    Ok((0..count).map(|k| largest * ratio.powi(k as i32)).collect())
}

/// Evaluates `quantity(h)` at each step size and fits the log-log slope.
pub fn order_of_accuracy<F>(steps: &[f64], mut quantity: F) -> Result<OrderStudy>
where
    F: FnMut(f64) -> Result<f64>,
{
    let errors = steps.iter().map(|&h| quantity(h)).collect::<Result<Vec<f64>>>()?;
    fit_order(steps, errors)
}

/// Fits the slope of already measured `(step, error)` pairs.
pub fn fit_order(steps: &[f64], errors: Vec<f64>) -> Result<OrderStudy> {
    let fit = loglog_slope(steps, &errors)?;
    let range = steps
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &h| {
            (a.min(h), b.max(h))
        });
    Ok(OrderStudy {
        steps: steps.to_vec(),
        errors,
        fit,
        range,
    })
}

/// Writes a log-log figure of error vs step size with one measured series and one fitted line per study
/// (`<stem>.svg`, `<stem>.png`, and the raw series in `<stem>.csv`) and returns the paths written.
pub fn save_order_figure(
    dir: &std::path::Path,
    stem: &str,
    title: &str,
    x_label: &str,
    studies: &[(&str, &OrderStudy)],
) -> Result<Vec<std::path::PathBuf>> {
    let mut fig = imreg_plot::Figure::new(title)
        .x_label(x_label)
        .y_label("error")
        .log_x()
        .log_y();
    for (label, s) in studies {
        fig.push(imreg_plot::Series::points(
            label.to_string(),
            s.steps.clone(),
            s.errors.clone(),
        ));
        let fitted: Vec<f64> = s
            .steps
            .iter()
            .map(|h| (s.fit.intercept + s.fit.slope * h.ln()).exp())
            .collect();
        fig.push(imreg_plot::Series::line(
            format!("{label}: fit slope {:.2}", s.fit.slope),
            s.steps.clone(),
            fitted,
        ));
    }
    fig.save(dir, stem).map_err(|source| CheckError::Output {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_orders_and_rejects_bad_input() {
        let steps = geometric_steps(0.2, 0.5, 6).unwrap();
        for p in [1.0, 2.0, 4.0] {
            let s = order_of_accuracy(&steps, |h| Ok(h.powf(p) * (2.0 + h))).unwrap();
            assert!(s.agrees(p, 0.1), "p = {p}: {:?}", s.fit);
            assert_eq!(s.range, (0.2 * 0.5f64.powi(5), 0.2));
            assert!(s.outcome("x", p, 0.1).passed);
        }
        assert!(geometric_steps(0.1, 1.5, 4).is_err());
        assert!(geometric_steps(0.1, 0.5, 1).is_err());
        assert!(order_of_accuracy(&steps, |_| Ok(0.0)).is_err());
    }
}
