use crate::{csv, render, PlotError, Series};
use std::path::{Path, PathBuf};

/// A 2-D figure: series, optional log axes, optional fixed axis limits and labelled horizontal reference
/// lines (e.g. `2/η`).
///
/// Build it with the chained methods and write it with [`Figure::save`]. Lines are clipped to the plotting
/// area: a segment leaving the axis range ends on the frame, and markers outside it are not drawn.
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
    /// Fixed x axis range `(lo, hi)` (default: the data's, padded by 5 %).
    pub x_limits: Option<(f64, f64)>,
    /// Fixed y axis range `(lo, hi)` (default: the data's and the reference lines', padded by 5 %).
    pub y_limits: Option<(f64, f64)>,
}

/// The drawable part of a figure: per series, the polylines clipped to the axis ranges (a skipped point or
/// an excursion outside the ranges breaks a line) and the markers inside them, the reference lines inside
/// the y range, and the axis ranges.
pub(crate) struct Prepared {
    pub runs: Vec<Vec<Vec<(f64, f64)>>>,
    pub markers: Vec<Vec<(f64, f64)>>,
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
    /// Fixes the x axis range to `[lo, hi]`; lines are clipped to it.
    pub fn x_limits(mut self, lo: f64, hi: f64) -> Self {
        self.x_limits = Some((lo, hi));
        self
    }
    /// Fixes the y axis range to `[lo, hi]`; lines are clipped to it.
    pub fn y_limits(mut self, lo: f64, hi: f64) -> Self {
        self.y_limits = Some((lo, hi));
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
        let x_range = match self.x_limits {
            Some(l) => check_limits("x", l, self.log_x)?,
            None => pad(xmin, xmax, self.log_x),
        };
        let y_range = match self.y_limits {
            Some(l) => check_limits("y", l, self.log_y)?,
            None => pad(ymin, ymax, self.log_y),
        };
        let clip = Clip {
            x: x_range,
            y: y_range,
            log_x: self.log_x,
            log_y: self.log_y,
        };
        let markers = runs
            .iter()
            .map(|rs| rs.iter().flatten().copied().filter(|&p| clip.inside(p)).collect())
            .collect();
        let runs = runs
            .iter()
            .map(|rs| rs.iter().flat_map(|r| clip.polyline(r)).collect())
            .collect();
        let hlines = hlines
            .into_iter()
            .filter(|(_, y)| (y_range.0..=y_range.1).contains(y))
            .collect();
        Ok(Prepared {
            runs,
            markers,
            hlines,
            x_range,
            y_range,
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

/// Validates fixed limits: finite, `lo < hi`, positive on a log axis.
fn check_limits(axis: &'static str, (lo, hi): (f64, f64), log: bool) -> Result<(f64, f64), PlotError> {
    if !(lo.is_finite() && hi.is_finite() && lo < hi && (!log || lo > 0.0)) {
        return Err(PlotError::Limits {
            axis,
            lo,
            hi,
            reason: if log {
                "need finite 0 < lo < hi on a log axis"
            } else {
                "need finite lo < hi"
            },
        });
    }
    Ok((lo, hi))
}

/// Clipping to the axis box, in axis coordinates (`ln` on a log axis, where lines are straight on screen).
pub(crate) struct Clip {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub log_x: bool,
    pub log_y: bool,
}

impl Clip {
    fn to_axis(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (
            if self.log_x { x.ln() } else { x },
            if self.log_y { y.ln() } else { y },
        )
    }
    fn data_of(&self, (u, v): (f64, f64)) -> (f64, f64) {
        (
            if self.log_x { u.exp() } else { u },
            if self.log_y { v.exp() } else { v },
        )
    }
    fn bounds(&self) -> [(f64, f64); 2] {
        [
            self.to_axis((self.x.0, self.y.0)),
            self.to_axis((self.x.1, self.y.1)),
        ]
    }
    /// Whether a point lies in the closed box.
    pub fn inside(&self, p: (f64, f64)) -> bool {
        (self.x.0..=self.x.1).contains(&p.0) && (self.y.0..=self.y.1).contains(&p.1)
    }
    /// The part of segment `p → q` inside the box as parameters `0 ≤ t0 ≤ t1 ≤ 1` (Liang–Barsky).
    fn segment(&self, p: (f64, f64), q: (f64, f64)) -> Option<(f64, f64)> {
        let [(u0, v0), (u1, v1)] = self.bounds();
        let (a, b) = (self.to_axis(p), self.to_axis(q));
        let (du, dv) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (pk, qk) in [(-du, a.0 - u0), (du, u1 - a.0), (-dv, a.1 - v0), (dv, v1 - a.1)] {
            if pk == 0.0 {
                if qk < 0.0 {
                    return None;
                }
            } else {
                let r = qk / pk;
                if pk < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        (t0 <= t1).then_some((t0, t1))
    }
    fn lerp(&self, p: (f64, f64), q: (f64, f64), t: f64) -> (f64, f64) {
        if t == 0.0 {
            return p;
        }
        if t == 1.0 {
            return q;
        }
        let (a, b) = (self.to_axis(p), self.to_axis(q));
        self.data_of((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)))
    }
    /// A polyline clipped to the box: the runs of it that lie inside, each ending on the frame where the line
    /// leaves the box. A single point is kept if it is inside.
    pub fn polyline(&self, run: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
        if run.len() == 1 {
            return if self.inside(run[0]) {
                vec![run.to_vec()]
            } else {
                Vec::new()
            };
        }
        let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut cur: Vec<(f64, f64)> = Vec::new();
        for w in run.windows(2) {
            let (p, q) = (w[0], w[1]);
            match self.segment(p, q) {
                Some((t0, t1)) => {
                    let a = self.lerp(p, q, t0);
                    let b = self.lerp(p, q, t1);
                    if cur.is_empty() || t0 > 0.0 {
                        if !cur.is_empty() {
                            out.push(std::mem::take(&mut cur));
                        }
                        cur.push(a);
                    }
                    cur.push(b);
                    if t1 < 1.0 {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                None => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
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
