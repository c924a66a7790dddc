//! Where the legend goes: the corner of the plotting area that hides the least data.
//!
//! A legend drawn in a fixed corner covers whatever the data put there (a sharpness trace that ends high on
//! the right, an accuracy curve that rises into the upper right). Each of the four corners is scored by the
//! drawn geometry inside the box the legend would take there, in axis-fraction coordinates (log axes in log
//! space): every line segment counts by how much of it lies in the box (sampled at [`SAMPLES`] points, so a
//! dense trace and a two-point line weigh by length, not by vertex count), a marker as much as a segment
//! wholly inside, and a reference line as a segment across the plot. The corner with the least covered
//! geometry wins; ties keep the order upper right, upper left, lower right, lower left.
use crate::figure::Prepared;
use plotters::prelude::SeriesLabelPosition;

/// Points sampled along each segment.
const SAMPLES: usize = 8;

/// Legend size in pixels: per entry a row of `ROW_PX`, per character `CHAR_PX`, plus the swatch and padding.
const ROW_PX: f64 = 21.0;
const CHAR_PX: f64 = 9.0;
const PAD_PX: f64 = 48.0;

/// The corners in order of preference.
const CORNERS: [SeriesLabelPosition; 4] = [
    SeriesLabelPosition::UpperRight,
    SeriesLabelPosition::UpperLeft,
    SeriesLabelPosition::LowerRight,
    SeriesLabelPosition::LowerLeft,
];

/// The corner for a legend of `labels` over `prep`, in a plotting area of `plot_px` pixels.
pub(crate) fn corner(
    prep: &Prepared,
    log: (bool, bool),
    labels: &[String],
    plot_px: (f64, f64),
) -> SeriesLabelPosition {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let w = ((chars * CHAR_PX + PAD_PX) / plot_px.0).min(1.0);
    let h = ((labels.len() as f64 * ROW_PX + PAD_PX / 2.0) / plot_px.1).min(1.0);
    // A coordinate as a fraction of its axis range.
    let unit = |v: f64, (lo, hi): (f64, f64), log: bool| {
        if log {
            (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    let to_unit = |(x, y): (f64, f64)| (unit(x, prep.x_range, log.0), unit(y, prep.y_range, log.1));
    let mut segments: Vec<((f64, f64), (f64, f64))> = Vec::new();
    for run in prep.runs.iter().flatten() {
        segments.extend(run.windows(2).map(|s| (to_unit(s[0]), to_unit(s[1]))));
    }
    for (_, y) in &prep.hlines {
        let u = unit(*y, prep.y_range, log.1);
        segments.push(((0.0, u), (1.0, u)));
    }
    let markers: Vec<(f64, f64)> = prep.markers.iter().flatten().map(|&p| to_unit(p)).collect();
    let covered = |c: &SeriesLabelPosition| {
        let (x_lo, y_lo) = match c {
            SeriesLabelPosition::UpperRight => (1.0 - w, 1.0 - h),
            SeriesLabelPosition::UpperLeft => (0.0, 1.0 - h),
            SeriesLabelPosition::LowerRight => (1.0 - w, 0.0),
            _ => (0.0, 0.0),
        };
        let inside = |(x, y): (f64, f64)| x >= x_lo && x <= x_lo + w && y >= y_lo && y <= y_lo + h;
        let along: usize = segments
            .iter()
            .map(|&((xa, ya), (xb, yb))| {
                (0..SAMPLES)
                    .map(|k| (k as f64 + 0.5) / SAMPLES as f64)
                    .filter(|t| inside((xa + t * (xb - xa), ya + t * (yb - ya))))
                    .count()
            })
            .sum();
        along + SAMPLES * markers.iter().filter(|&&p| inside(p)).count()
    };
    // `min_by_key` keeps the first of equal scores, i.e. the preferred corner.
    CORNERS
        .into_iter()
        .min_by_key(covered)
        .unwrap_or(SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(c: SeriesLabelPosition) -> &'static str {
        match c {
            SeriesLabelPosition::UpperRight => "upper right",
            SeriesLabelPosition::UpperLeft => "upper left",
            SeriesLabelPosition::LowerRight => "lower right",
            SeriesLabelPosition::LowerLeft => "lower left",
            _ => "elsewhere",
        }
    }

    /// The corner of a two-entry legend over one series of `runs` and reference lines at `hlines`, unit axes.
    fn at(runs: Vec<Vec<(f64, f64)>>, hlines: Vec<f64>) -> &'static str {
        let p = Prepared {
            runs: vec![runs],
            markers: vec![],
            hlines: hlines.into_iter().map(|y| ("h".to_string(), y)).collect(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
        };
        name(corner(
            &p,
            (false, false),
            &["a label".into(), "b".into()],
            (800.0, 500.0),
        ))
    }

    #[test]
    fn a_curve_rising_to_the_upper_right_moves_the_legend_left() {
        let rising = (0..=50)
            .map(|i| (i as f64 / 50.0, (i as f64 / 50.0).sqrt()))
            .collect();
        assert_eq!(at(vec![rising], vec![]), "upper left");
    }

    #[test]
    fn empty_corners_tie_and_the_upper_right_is_kept() {
        assert_eq!(at(vec![vec![(0.3, 0.5), (0.7, 0.5)]], vec![]), "upper right");
    }

    #[test]
    fn a_reference_line_near_the_top_counts() {
        // A flat trace along the bottom and a reference line near the top: the upper corners are taken by the
        // line, the lower ones by the trace except where it stops short of the right edge.
        assert_eq!(
            at(vec![vec![(0.0, 0.02), (0.6, 0.02)]], vec![0.97]),
            "lower right"
        );
    }

    #[test]
    fn log_axes_are_scored_in_log_space() {
        // y = 0.5 on [1e-6, 1]: mid-height on a linear axis (every corner free), near the top on a log axis.
        let p = Prepared {
            runs: vec![vec![vec![(0.0, 0.5), (1.0, 0.5)]]],
            markers: vec![],
            hlines: vec![],
            x_range: (0.0, 1.0),
            y_range: (1e-6, 1.0),
        };
        let on = |log_y| name(corner(&p, (false, log_y), &["x".into()], (800.0, 500.0)));
        assert_eq!(on(false), "upper right");
        assert_eq!(on(true), "lower right");
    }
}
