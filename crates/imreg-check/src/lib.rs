//! The check toolkit: typed theorem checks (id, claim, expected, measured, passed) and what every check
//! shares.
//!
//! A [`Check`] is one claim of the theory (an order of accuracy, an exact identity, a closed form) that imreg
//! measures. The built-in checks live in `imreg-theorems`; a user crate writes its own the same way and
//! registers them next to ours with `imreg_cli::main_with`. [`assert_all_pass`] runs a list of checks as a
//! test, so a registered check is also a test.
//!
//! The toolkit: [`Outcome`] constructors for bounds and tolerances, [`loglog_slope`] and the
//! order-of-accuracy harness in [`order`] (fitted slope vs an expected order), figure and CSV saving into a
//! check's folder ([`CheckContext::save_figures`], [`CheckContext::save_csv`], atomic writes), and
//! [`CheckError`] so that `?` composes inside a check.
//!
//! ```
//! use imreg_check::{Check, CheckContext, CheckError, Outcome};
//! fn two_plus_two(_: &CheckContext) -> Result<Outcome, CheckError> {
//!     Ok(Outcome::within("2 + 2", 4.0, 2.0 + 2.0, 0.0))
//! }
//! let c = Check { id: "demo.sum", claim: "2 + 2 = 4", run: two_plus_two };
//! let out = (c.run)(&CheckContext::default()).unwrap();
//! assert!(out.passed);
//! ```
pub mod error;
pub mod order;

pub use error::{CheckError, OrCheckError};
pub use order::{fit_order, geometric_steps, order_of_accuracy, save_order_figure, OrderStudy};

use imreg_plot::Figure;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a check may use while it runs.
#[derive(Clone, Debug, Default)]
pub struct CheckContext {
    /// Where figures and their raw series go (`None`: run without figures, e.g. `imreg verify` and tests).
    pub out_dir: Option<PathBuf>,
    /// Smaller problem sizes / fewer repetitions (`reproduce --quick`). Checks must still assert the claim.
    pub quick: bool,
}

impl CheckContext {
    /// The folder for figures of check `id`, created on demand; `None` when figures are off.
    pub fn figure_dir(&self, id: &str) -> Option<PathBuf> {
        let dir = self.out_dir.as_ref()?.join("figures").join(id.replace('.', "_"));
        std::fs::create_dir_all(&dir).ok()?;
        Some(dir)
    }

    /// Saves the figures `make` builds (each as `stem.svg`, `stem.png` and the raw series `stem.csv`, written
    /// atomically) into check `id`'s folder and returns their paths. When figures are off nothing is built or
    /// written and the list is empty.
    pub fn save_figures<S: AsRef<str>>(
        &self,
        id: &str,
        make: impl FnOnce() -> Vec<(S, Figure)>,
    ) -> Result<Vec<PathBuf>, CheckError> {
        let Some(dir) = self.figure_dir(id) else {
            return Ok(Vec::new());
        };
        let mut paths = Vec::new();
        for (stem, fig) in make() {
            paths.extend(fig.save(&dir, stem.as_ref()).map_err(|e| output_error(&dir, e))?);
        }
        Ok(paths)
    }

    /// Saves one figure (see [`CheckContext::save_figures`]).
    pub fn save_figure(&self, id: &str, stem: &str, fig: &Figure) -> Result<Vec<PathBuf>, CheckError> {
        let Some(dir) = self.figure_dir(id) else {
            return Ok(Vec::new());
        };
        fig.save(&dir, stem).map_err(|e| output_error(&dir, e))
    }

    /// Saves the log-log error-vs-step figure of order studies ([`order::save_order_figure`]) into check
    /// `id`'s folder and returns the paths written; empty when figures are off.
    pub fn save_order_figure(
        &self,
        id: &str,
        stem: &str,
        title: &str,
        x_label: &str,
        studies: &[(&str, &OrderStudy)],
    ) -> Result<Vec<PathBuf>, CheckError> {
        match self.figure_dir(id) {
            Some(dir) => save_order_figure(&dir, stem, title, x_label, studies),
            None => Ok(Vec::new()),
        }
    }

    /// Writes a numeric table `stem.csv` (a `header` line, then one line per row at full precision)
    /// atomically into check `id`'s folder and returns its path; `None` when figures are off.
    pub fn save_csv(
        &self,
        id: &str,
        stem: &str,
        header: &str,
        rows: &[Vec<f64>],
    ) -> Result<Option<PathBuf>, CheckError> {
        let mut text = String::from(header);
        text.push('\n');
        for r in rows {
            let line: Vec<String> = r.iter().map(|v| format!("{v:.17e}")).collect();
            text.push_str(&line.join(","));
            text.push('\n');
        }
        self.save_text(id, &format!("{stem}.csv"), &text)
    }

    /// Writes `contents` atomically as `file` in check `id`'s folder and returns its path; `None` when figures
    /// are off.
    pub fn save_text(&self, id: &str, file: &str, contents: &str) -> Result<Option<PathBuf>, CheckError> {
        let Some(dir) = self.figure_dir(id) else {
            return Ok(None);
        };
        let path = dir.join(file);
        imreg_plot::write_atomic(&path, contents.as_bytes()).map_err(|e| output_error(&path, e))?;
        Ok(Some(path))
    }
}

fn output_error(path: &Path, source: imreg_plot::PlotError) -> CheckError {
    CheckError::Output {
        path: path.to_path_buf(),
        source,
    }
}

/// The result of running one check.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    /// What the theory predicts, in words and numbers (e.g. "slope 3 ± 0.15").
    pub expected: String,
    /// What imreg measured.
    pub measured: String,
    pub passed: bool,
    /// Figures written by the check (SVG/PNG), relative or absolute paths.
    #[serde(default)]
    pub figures: Vec<PathBuf>,
}

impl Outcome {
    pub fn new(expected: impl Into<String>, measured: impl Into<String>, passed: bool) -> Self {
        Outcome {
            expected: expected.into(),
            measured: measured.into(),
            passed,
            figures: Vec::new(),
        }
    }

    /// `|measured − expected| ≤ tol` for a named scalar quantity.
    pub fn within(what: &str, expected: f64, measured: f64, tol: f64) -> Self {
        let passed = (measured - expected).abs() <= tol && measured.is_finite();
        Outcome::new(
            format!("{what} = {expected:.6e} (± {tol:.1e})"),
            format!("{measured:.6e}"),
            passed,
        )
    }

    /// `measured ≤ bound` for a named error quantity.
    pub fn at_most(what: &str, measured: f64, bound: f64) -> Self {
        let passed = measured <= bound && measured.is_finite();
        Outcome::new(format!("{what} ≤ {bound:.1e}"), format!("{measured:.3e}"), passed)
    }

    pub fn with_figures(mut self, figures: Vec<PathBuf>) -> Self {
        self.figures = figures;
        self
    }

    /// Combine several sub-outcomes into one (all must pass).
    pub fn all(parts: Vec<Outcome>) -> Self {
        let passed = parts.iter().all(|o| o.passed);
        let expected = parts
            .iter()
            .map(|o| o.expected.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let measured = parts
            .iter()
            .map(|o| o.measured.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let figures = parts.into_iter().flat_map(|o| o.figures).collect();
        Outcome {
            expected,
            measured,
            passed,
            figures,
        }
    }
}

/// One registered theorem check.
#[derive(Clone, Copy)]
pub struct Check {
    /// Stable identifier, `crate.claim` (e.g. `ad.hvp-vs-dense`).
    pub id: &'static str,
    /// The claim in one sentence.
    pub claim: &'static str,
    /// Runs the measurement. `Err` means the check could not run (reported as failed with the error).
    pub run: fn(&CheckContext) -> Result<Outcome, CheckError>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("id", &self.id)
            .field("claim", &self.claim)
            .finish()
    }
}

/// One line of a report: a check and its outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    pub claim: String,
    pub expected: String,
    pub measured: String,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<PathBuf>,
    /// Wall-clock seconds the check took.
    #[serde(default)]
    pub seconds: f64,
}

/// Runs one check, turning an `Err` or a panic-free failure into a failed record.
pub fn run_check(check: &Check, ctx: &CheckContext) -> Record {
    let start = std::time::Instant::now();
    let outcome =
        (check.run)(ctx).unwrap_or_else(|e| Outcome::new("check runs", format!("error: {e}"), false));
    Record {
        id: check.id.to_string(),
        claim: check.claim.to_string(),
        expected: outcome.expected,
        measured: outcome.measured,
        passed: outcome.passed,
        figures: outcome.figures,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Runs every check of a list and panics with a readable table if one fails. `imreg-theorems`' tests call
/// it on the built-in checks (and a user crate's tests on its own), so a registered check is also a test.
pub fn assert_all_pass(checks: &[Check], quick: bool) {
    let ctx = CheckContext { out_dir: None, quick };
    let records: Vec<Record> = checks.iter().map(|c| run_check(c, &ctx)).collect();
    let failed: Vec<&Record> = records.iter().filter(|r| !r.passed).collect();
    assert!(
        failed.is_empty(),
        "failed checks:\n{}",
        failed
            .iter()
            .map(|r| format!(
                "  {}: {} | expected {} | measured {}",
                r.id, r.claim, r.expected, r.measured
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Log-log slope fit `log y = slope · log x + intercept` by least squares, with the slope's standard error.
/// Shared by every order-of-accuracy check.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SlopeFit {
    pub slope: f64,
    pub intercept: f64,
    /// Standard error of the slope (0 for two points).
    pub slope_se: f64,
    /// Residuals in log space, one per point.
    pub residuals: Vec<f64>,
}

/// Fits the log-log slope of `ys` against `xs` (all must be positive and finite; at least two points).
pub fn loglog_slope(xs: &[f64], ys: &[f64]) -> Result<SlopeFit, CheckError> {
    if xs.len() != ys.len() || xs.len() < 2 {
        return Err(CheckError::invalid(
            "slope fit",
            format!("needs ≥ 2 paired points, got {} and {}", xs.len(), ys.len()),
        ));
    }
    if let Some(bad) = xs.iter().chain(ys).find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(CheckError::invalid(
            "slope fit",
            format!("needs positive finite values, got {bad}"),
        ));
    }
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    let n = lx.len() as f64;
    let mx = lx.iter().sum::<f64>() / n;
    let my = ly.iter().sum::<f64>() / n;
    let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    if sxx == 0.0 {
        return Err(CheckError::invalid(
            "slope fit",
            "needs at least two distinct x values",
        ));
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let residuals: Vec<f64> = lx
        .iter()
        .zip(&ly)
        .map(|(x, y)| y - (slope * x + intercept))
        .collect();
    let slope_se = if lx.len() > 2 {
        (residuals.iter().map(|r| r * r).sum::<f64>() / (n - 2.0) / sxx).sqrt()
    } else {
        0.0
    };
    Ok(SlopeFit {
        slope,
        intercept,
        slope_se,
        residuals,
    })
}

/// "`what`: slope `expected` ± `tol`" against the fitted log-log slope of `|ys|` vs `xs` (with its standard
/// error): the outcome of an order-of-accuracy claim on already measured points.
pub fn slope_outcome(
    what: &str,
    xs: &[f64],
    ys: &[f64],
    expected: f64,
    tol: f64,
) -> Result<Outcome, CheckError> {
    let abs: Vec<f64> = ys.iter().map(|y| y.abs()).collect();
    let fit = loglog_slope(xs, &abs)?;
    let passed = (fit.slope - expected).abs() <= tol;
    Ok(Outcome::new(
        format!("{what}: slope {expected} ± {tol}"),
        format!("{what}: slope {:.4} (SE {:.1e})", fit.slope, fit.slope_se),
        passed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_power_law_is_exact() {
        let xs = [0.1, 0.05, 0.025, 0.0125];
        let ys: Vec<f64> = xs.iter().map(|x: &f64| 7.0 * x.powi(3)).collect();
        let fit = loglog_slope(&xs, &ys).unwrap();
        assert!((fit.slope - 3.0).abs() < 1e-12);
        assert!((fit.intercept - 7f64.ln()).abs() < 1e-10);
        assert!(fit.slope_se < 1e-10);
    }

    #[test]
    fn slope_fit_rejects_bad_input() {
        assert!(loglog_slope(&[1.0], &[1.0]).is_err());
        assert!(loglog_slope(&[1.0, 2.0], &[1.0, -1.0]).is_err());
        assert!(loglog_slope(&[1.0, 1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn failed_run_becomes_failed_record() {
        fn boom(_: &CheckContext) -> Result<Outcome, CheckError> {
            Err(CheckError::invalid("data", "no data"))
        }
        let r = run_check(
            &Check {
                id: "x.y",
                claim: "c",
                run: boom,
            },
            &CheckContext::default(),
        );
        assert!(!r.passed);
        assert!(r.measured.contains("no data"));
    }
}
