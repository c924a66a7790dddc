use crate::{csv, render, PlotError, Series};
use std::path::{Path, PathBuf};

/// A 2-D figure: series, optional log axes and labelled horizontal reference lines (e.g. `2/η`).
///
/// Build it with the chained methods and write it with [`Figure::save`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    /// Horizontal reference lines `(label, y)`, drawn dashed across the plot and listed in the legend.
    pub hlines: Vec<(String, f64)>,
}

/// The drawable part of a figure: per series, runs of consecutive drawable points (a skipped point breaks a
/// line), the drawable reference lines and the padded axis ranges.
pub(crate) struct Prepared {
    pub runs: Vec<Vec<Vec<(f64, f64)>>>,
    pub hlines: Vec<(String, f64)>,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
}

impl Figure {
    pub fn new(title: impl Into<String>) -> Self {
        Figure {
            title: title.into(),
            ..Figure::default()
        }
    }
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }
    /// Logarithmic x axis (non-positive x values are skipped).
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }
    /// Logarithmic y axis (non-positive y values are skipped).
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }
    /// Adds one series.
    pub fn series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }
    /// Adds several series.
    pub fn with_series(mut self, series: impl IntoIterator<Item = Series>) -> Self {
        self.series.extend(series);
        self
    }
    /// Adds a horizontal reference line at `y`, labelled `label` (its value is appended in the legend).
    pub fn hline(mut self, label: impl Into<String>, y: f64) -> Self {
        self.hlines.push((label.into(), y));
        self
    }
    /// Adds a series in place.
    pub fn push(&mut self, series: Series) {
        self.series.push(series);
    }

    fn drawable(&self, x: f64, y: f64) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
    }

    /// Number of points that cannot be drawn: non-finite coordinates, or non-positive values on a log axis.
    pub fn skipped_points(&self) -> usize {
        self.series
            .iter()
            .flat_map(|s| s.x.iter().zip(&s.y))
            .filter(|(x, y)| !self.drawable(**x, **y))
            .count()
    }

    pub(crate) fn prepare(&self) -> Result<Prepared, PlotError> {
        for s in &self.series {
            if s.x.len() != s.y.len() {
                return Err(PlotError::LengthMismatch {
                    series: s.name.clone(),
                    x_len: s.x.len(),
                    y_len: s.y.len(),
                });
            }
        }
        let mut runs = Vec::with_capacity(self.series.len());
        for s in &self.series {
            let mut these: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (&x, &y) in s.x.iter().zip(&s.y) {
                if self.drawable(x, y) {
                    if let Some(run) = these.last_mut() {
                        run.push((x, y));
                    }
                } else if these.last().is_some_and(|r| !r.is_empty()) {
                    these.push(Vec::new());
                }
            }
            these.retain(|r| !r.is_empty());
            runs.push(these);
        }
        let skipped = self.skipped_points();
        let pts = || runs.iter().flatten().flatten();
        if pts().next().is_none() {
            return Err(PlotError::Empty {
                title: self.title.clone(),
                series: self.series.len(),
                skipped,
            });
        }
        let hlines: Vec<(String, f64)> = self
            .hlines
            .iter()
            .filter(|(_, y)| y.is_finite() && (!self.log_y || *y > 0.0))
            .cloned()
            .collect();
        let (xmin, xmax) = min_max(pts().map(|p| p.0));
        let (ymin, ymax) = min_max(pts().map(|p| p.1).chain(hlines.iter().map(|h| h.1)));
        Ok(Prepared {
            runs,
            hlines,
            x_range: pad(xmin, xmax, self.log_x),
            y_range: pad(ymin, ymax, self.log_y),
        })
    }

    /// Writes `stem.svg`, `stem.png` and the raw series `stem.csv` into `dir` (created if missing), each
    /// atomically, and returns their paths in that order. An empty figure is an error.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<Vec<PathBuf>, PlotError> {
        if stem.is_empty() || stem == "." || stem == ".." || stem.contains(['/', '\\']) {
            return Err(PlotError::Stem {
                stem: stem.to_string(),
                reason: "must be a plain, non-empty file name",
            });
        }
        let prepared = self.prepare()?;
        std::fs::create_dir_all(dir).map_err(|e| PlotError::io(dir, e))?;
        let svg_path = dir.join(format!("{stem}.svg"));
        let png_path = dir.join(format!("{stem}.png"));
        let csv_path = dir.join(format!("{stem}.csv"));
        let svg = render::svg(self, &prepared, &svg_path)?;
        // The PNG encoder writes to a path, so render into a private temporary folder beside the target and
        // rename (atomic on one file system).
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(dir)
            .map_err(|e| PlotError::io(dir, e))?;
        let tmp_png = tmp.path().join(format!("{stem}.png"));
        render::png(self, &prepared, &tmp_png)?;
        csv::write_csv(&csv_path, &self.series)?;
        crate::write_atomic(&svg_path, svg.as_bytes())?;
        std::fs::rename(&tmp_png, &png_path).map_err(|e| PlotError::io(&png_path, e))?;
        Ok(vec![svg_path, png_path, csv_path])
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Adds a margin around `[lo, hi]` (5 % of the span, multiplicative on a log axis) and widens a degenerate
/// range so every axis has a positive extent.
fn pad(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if log {
        if hi <= lo {
            return (lo / 2.0, hi * 2.0);
        }
        let f = (hi / lo).powf(0.05);
        (lo / f, hi * f)
    } else {
        if hi <= lo {
            let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            return (lo - d, hi + d);
        }
        let d = (hi - lo) * 0.05;
        (lo - d, hi + d)
    }
}
