//! Drawing a prepared figure on a plotters backend (SVG into a string, PNG into a file).
use crate::figure::Prepared;
use crate::{ensure_font, Figure, PlotError, Style, FONT_FAMILY};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Pixel size of every figure.
const SIZE: (u32, u32) = (960, 640);

/// Tableau 10: distinguishable and print-safe.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn svg(fig: &Figure, prep: &Prepared, path: &Path) -> Result<String, PlotError> {
    ensure_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        render(&root, fig, prep, false, path)?;
    }
    Ok(out)
}

pub(crate) fn png(fig: &Figure, prep: &Prepared, path: &Path) -> Result<(), PlotError> {
    ensure_font()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    render(&root, fig, prep, true, path)
}

/// [`draw`] then present the drawing; a failure of either names the file being rendered.
fn render<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    prep: &Prepared,
    paint_lines: bool,
    path: &Path,
) -> Result<(), PlotError> {
    let failed = |message: String| PlotError::Render {
        path: path.to_path_buf(),
        message,
    };
    draw(root, fig, prep, paint_lines).map_err(failed)?;
    root.present().map_err(|e| failed(e.to_string()))
}

/// The layout of [`draw`] in pixels: margin, the x axis' label area (below), the y axis' (left), and the
/// caption's height (approximate).
const MARGIN: u32 = 16;
const X_LABEL_AREA: u32 = 56;
const Y_LABEL_AREA: u32 = 84;
const CAPTION: u32 = 40;

/// The plotting area inside [`SIZE`], approximately: what the legend placement measures against.
const PLOT_PX: (f64, f64) = (
    (SIZE.0 - 2 * MARGIN - Y_LABEL_AREA) as f64,
    (SIZE.1 - 2 * MARGIN - X_LABEL_AREA - CAPTION) as f64,
);

/// A reference line's legend entry.
fn hline_label(label: &str, y: f64) -> String {
    format!("{label} = {}", fmt_num(y))
}

/// Tick and legend numbers: plain decimals in [1e-3, 1e4), scientific otherwise, trailing zeros trimmed.
pub(crate) fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e4).contains(&a) {
        let s = format!("{v:.2e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let m = m.trim_end_matches('0').trim_end_matches('.');
                format!("{m}e{e}")
            }
            None => s,
        }
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The labelled (bold) and grid-only (light) ticks of a log axis on `[lo, hi]` (`0 < lo < hi`). Plotters labels
/// the powers of ten only, so an axis spanning less than a decade or two, such as a learning-rate grid
/// 0.025–0.4, showed one number or none. The labels are the powers of ten when at least three fall in the
/// range (every k-th of them when there are more than [`MAX_LOG_LABELS`]), else the 1-2-5 sequence, else
/// every `d · 10^k`; the grid lines are every `d · 10^k` (d = 1…9) not labelled, on spans of at most
/// [`MAX_LOG_LABELS`] decades.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let inside = |v: &f64| (lo..=hi).contains(v);
    let with_digits = |digits: &[f64]| -> Vec<f64> {
        (k0..=k1)
            .flat_map(|k| digits.iter().map(move |d| d * 10f64.powi(k)))
            .filter(inside)
            .collect()
    };
    let decades = with_digits(&[1.0]);
    let every_digit = with_digits(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let bold = if decades.len() >= 3 {
        let step = decades.len().div_ceil(MAX_LOG_LABELS);
        decades.into_iter().step_by(step).collect()
    } else {
        let one_two_five = with_digits(&[1.0, 2.0, 5.0]);
        if one_two_five.len() >= 3 {
            one_two_five
        } else {
            every_digit.clone()
        }
    };
    let light = if k1 - k0 <= MAX_LOG_LABELS as i32 {
        every_digit.into_iter().filter(|v| !bold.contains(v)).collect()
    } else {
        Vec::new()
    };
    (bold, light)
}

/// At most this many labels on a log axis spanning many decades.
const MAX_LOG_LABELS: usize = 8;

/// How a series appears in the legend, decided once for [`legend_labels`] and [`draw`]: a named series whose
/// line is drawn (a run of at least one segment) is shown by its line (with a dot if it has markers), else one
/// whose markers are drawn by a dot; a series with nothing drawn (every point skipped, e.g. non-positive on a
/// log axis) or without a name gets no entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegendMark {
    Line,
    Dot,
}

fn legend_mark(i: usize, s: &crate::Series, prep: &Prepared) -> Option<LegendMark> {
    let lines = matches!(s.style, Style::Line | Style::LineMarkers)
        && prep.runs.get(i).is_some_and(|r| !r.is_empty());
    let points = matches!(s.style, Style::Points | Style::LineMarkers)
        && prep.markers.get(i).is_some_and(|m| !m.is_empty());
    match (s.name.is_empty(), lines, points) {
        (true, _, _) | (false, false, false) => None,
        (false, true, _) => Some(LegendMark::Line),
        (false, false, true) => Some(LegendMark::Dot),
    }
}

/// The legend's entries in [`draw`]'s order: the series with a [`legend_mark`], then every reference line.
fn legend_labels(fig: &Figure, prep: &Prepared) -> Vec<String> {
    let mut labels: Vec<String> = fig
        .series
        .iter()
        .enumerate()
        .filter(|&(i, s)| legend_mark(i, s, prep).is_some())
        .map(|(_, s)| s.name.clone())
        .collect();
    labels.extend(prep.hlines.iter().map(|(label, y)| hline_label(label, *y)));
    labels
}

/// The width of a line of the bitmap in pixels (that of plotters' flat lines of stroke width 2).
const LINE_WIDTH: f64 = 3.0;

/// Chart coordinates to continuous pixel coordinates (pixel `(i, j)` centred at `(i, j)`), for lines
/// drawn between plotters' whole pixels: plotters puts the value at the fraction `t` of an axis (of `ln v`
/// on a log axis) on pixel `p_lo + ⌊L t⌋` when the axis runs toward larger pixels (x) and `p_lo + ⌈L t⌉`
/// when it runs toward smaller ones (y), `L = p_hi − p_lo`; this map is `p_lo + L t ∓ 1/2`, which rounds to
/// the same pixel (markers and lines agree).
struct PixelMap {
    x: AxisMap,
    y: AxisMap,
}

/// One axis of [`PixelMap`]: `v ↦ offset + scale · v` (`ln v` on a log axis).
struct AxisMap {
    log: bool,
    offset: f64,
    scale: f64,
}

impl AxisMap {
    /// The axis from its ends `(lo, hi)` and their pixels.
    fn new((lo, hi): (f64, f64), log: bool, p_lo: i32, p_hi: i32) -> AxisMap {
        let value = |v: f64| if log { v.ln() } else { v };
        let (p_lo, p_hi) = (f64::from(p_lo), f64::from(p_hi));
        let scale = (p_hi - p_lo) / (value(hi) - value(lo));
        let shift = if p_hi > p_lo { -0.5 } else { 0.5 };
        AxisMap {
            log,
            offset: p_lo - scale * value(lo) + shift,
            scale,
        }
    }

    fn at(&self, v: f64) -> f64 {
        self.offset + self.scale * if self.log { v.ln() } else { v }
    }
}

impl PixelMap {
    /// From the pixels of the plot's lower-left and upper-right corners (`(x0, y0)`, `(x1, y1)` of `prep`).
    fn new(corners: [(i32, i32); 2], prep: &Prepared, (log_x, log_y): (bool, bool)) -> PixelMap {
        let [(x_lo, y_lo), (x_hi, y_hi)] = corners;
        PixelMap {
            x: AxisMap::new(prep.x_range, log_x, x_lo, x_hi),
            y: AxisMap::new(prep.y_range, log_y, y_lo, y_hi),
        }
    }

    fn at(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (self.x.at(x), self.y.at(y))
    }
}

/// Draws the figure. With `paint_lines` (the bitmap), lines are painted pixel by pixel by
/// [`crate::stroke`] (one width in every direction, antialiased, round joins, clipped to the plotting area);
/// SVG viewers draw exact widths and cap miters, so the SVG keeps plotters' polylines.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    prep: &Prepared,
    paint_lines: bool,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (x0, x1) = prep.x_range;
    let (y0, y1) = prep.y_range;
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(&fig.title, (FONT_FAMILY, 26))
        .margin(MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA);
    let labels = legend_labels(fig, prep);
    let legend_at = crate::legend::corner(prep, (fig.log_x, fig.log_y), &labels, PLOT_PX);
    // Each axis kind is its own coordinate type, so the four combinations are expanded by a macro.
    macro_rules! with_axes {
        ($xs:expr, $ys:expr) => {{
            let mut chart = builder.build_cartesian_2d($xs, $ys).map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(fig.x_label.as_str())
                .y_desc(fig.y_label.as_str())
                .axis_desc_style((FONT_FAMILY, 20))
                .label_style((FONT_FAMILY, 15))
                .x_labels(7)
                .y_labels(8)
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| fmt_num(*v))
                .light_line_style(RGBColor(242, 242, 242))
                .draw()
                .map_err(|e| e.to_string())?;
            let to_pixels = PixelMap::new(
                [chart.backend_coord(&(x0, y0)), chart.backend_coord(&(x1, y1))],
                prep,
                (fig.log_x, fig.log_y),
            );
            let clip = chart.plotting_area().get_pixel_range();
            for (i, series) in fig.series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let mark = legend_mark(i, series, prep);
                let marker = series.style == Style::LineMarkers;
                if matches!(series.style, Style::Line | Style::LineMarkers) {
                    for (k, run) in prep.runs.get(i).into_iter().flatten().enumerate() {
                        let ann = if paint_lines {
                            let px: Vec<(f64, f64)> = run.iter().map(|&p| to_pixels.at(p)).collect();
                            for (at, c) in crate::stroke::coverage(&px, LINE_WIDTH, &clip) {
                                root.draw_pixel(at, &color.mix(c)).map_err(|e| e.to_string())?;
                            }
                            // Nothing more to draw: the series' entry in the legend.
                            chart.draw_series(run.first().map(|&p| EmptyElement::at(p)))
                        } else {
                            chart.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                        }
                        .map_err(|e| e.to_string())?;
                        if k == 0 && mark == Some(LegendMark::Line) {
                            ann.label(series.name.as_str()).legend(move |(x, y)| {
                                let line = PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2));
                                let dot =
                                    Circle::new((x + 12, y), if marker { 3 } else { 0 }, color.filled());
                                EmptyElement::at((0, 0)) + line + dot
                            });
                        }
                    }
                }
                if matches!(series.style, Style::Points | Style::LineMarkers) {
                    let pts = prep.markers.get(i).map(Vec::as_slice).unwrap_or(&[]);
                    let ann = chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| e.to_string())?;
                    if mark == Some(LegendMark::Dot) {
                        ann.label(series.name.as_str())
                            .legend(move |(x, y)| Circle::new((x + 12, y), 3, color.filled()));
                    }
                }
            }
            for (label, y) in &prep.hlines {
                let style = BLACK.mix(0.7).stroke_width(2);
                chart
                    .draw_series(DashedLineSeries::new(vec![(x0, *y), (x1, *y)], 10, 6, style))
                    .map_err(|e| e.to_string())?
                    .label(hline_label(label, *y))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            }
            if !labels.is_empty() {
                chart
                    .configure_series_labels()
                    .label_font((FONT_FAMILY, 16))
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.4))
                    .position(legend_at)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }};
    }
    let log_axis = |lo: f64, hi: f64| {
        let (bold, light) = log_ticks(lo, hi);
        (lo..hi)
            .log_scale()
            .with_key_points(bold)
            .with_light_points(light)
    };
    match (fig.log_x, fig.log_y) {
        (false, false) => with_axes!(x0..x1, y0..y1),
        (true, false) => with_axes!(log_axis(x0, x1), y0..y1),
        (false, true) => with_axes!(x0..x1, log_axis(y0, y1)),
        (true, true) => with_axes!(log_axis(x0, x1), log_axis(y0, y1)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Series;

    /// Renders into an RGB buffer with the PNG path's drawing code.
    fn rgb(fig: &Figure) -> Vec<u8> {
        ensure_font().unwrap();
        let prep = fig.prepare().unwrap();
        let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
            draw(&root, fig, &prep, true).unwrap();
            root.present().unwrap();
        }
        buf
    }

    /// Pixels that differ between two renderings, as `(x, y)`.
    fn diff(a: &[u8], b: &[u8]) -> Vec<(u32, u32)> {
        (0..SIZE.0 * SIZE.1)
            .filter(|&i| a[3 * i as usize..3 * i as usize + 3] != b[3 * i as usize..3 * i as usize + 3])
            .map(|i| (i % SIZE.0, i / SIZE.0))
            .collect()
    }

    fn bbox(p: &[(u32, u32)]) -> (u32, u32, u32, u32) {
        p.iter()
            .fold((u32::MAX, u32::MAX, 0, 0), |(a, b, c, d), &(x, y)| {
                (a.min(x), b.min(y), c.max(x), d.max(y))
            })
    }

    /// A trajectory that reverses direction sharply (GD oscillating across a valley, as the scalar net does
    /// at large η) must not paint outside the plotting area: thick polylines joined with miters grow long
    /// spikes at such corners, so the bitmap draws each segment on its own. The frame is located as the
    /// pixels of a corner-to-corner reference line.
    #[test]
    fn sharp_reversals_stay_inside_the_frame() {
        // A point outside the limits makes the figure non-empty while drawing nothing.
        let (lo, hi) = ((0.1, -0.2), (2.5, 2.6));
        let base = Figure::new("")
            .x_limits(lo.0, hi.0)
            .y_limits(lo.1, hi.1)
            .series(Series::points("", vec![5.0], vec![5.0]));
        let empty = rgb(&base);
        let frame = bbox(&diff(
            &empty,
            &rgb(&base
                .clone()
                .series(Series::line("", vec![lo.0, hi.0], vec![lo.1, hi.1]))),
        ));
        // The first GD iterates of the scalar net at η = 0.9 from (a, b) = (1.5, 0.01), Φ = 1.
        let xs = vec![
            1.5, 1.508865, 0.277164, 0.233918, 0.409813, 0.714245, 1.029151, 0.974937, 1.018856,
        ];
        let ys = vec![
            0.01, 1.33975, -0.047428, 0.205299, 0.405714, 0.713222, 1.02858, 0.974336, 1.018282,
        ];
        let zig = rgb(&base.clone().series(Series::line("", xs, ys)));
        let (x0, y0, x1, y1) = frame;
        let outside: Vec<_> = diff(&empty, &zig)
            .into_iter()
            .filter(|&(x, y)| x + 1 < x0 || x > x1 + 1 || y + 1 < y0 || y > y1 + 1)
            .collect();
        assert!(
            outside.is_empty(),
            "{} pixels outside the frame {frame:?}: {:?}",
            outside.len(),
            &outside[..outside.len().min(5)]
        );
        // The series itself was drawn, inside.
        assert!(diff(&empty, &zig).len() > 1000);
    }

    /// Plotters' pixel of a value, for points along both axes of a linear and a log chart.
    fn plotters_pixels_match<X, Y>(
        chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
        prep: &Prepared,
        logs: (bool, bool),
    ) where
        X: Ranged<ValueType = f64>,
        Y: Ranged<ValueType = f64>,
    {
        let ((x0, x1), (y0, y1)) = (prep.x_range, prep.y_range);
        let map = PixelMap::new(
            [chart.backend_coord(&(x0, y0)), chart.backend_coord(&(x1, y1))],
            prep,
            logs,
        );
        let along = |lo: f64, hi: f64, log: bool, t: f64| {
            if log {
                (lo.ln() + t * (hi.ln() - lo.ln())).exp()
            } else {
                lo + t * (hi - lo)
            }
        };
        for k in 0..=997 {
            let t = f64::from(k) / 997.0;
            let p = (along(x0, x1, logs.0, t), along(y0, y1, logs.1, 1.0 - t));
            let (fx, fy) = map.at(p);
            let (px, py) = chart.backend_coord(&p);
            // Away from a half pixel (where plotters' 10⁻³ nudge decides), the same pixel.
            for (f, whole) in [(fx, px), (fy, py)] {
                if (f - f.floor() - 0.5).abs() > 1e-2 {
                    assert_eq!(f.round() as i32, whole, "{p:?} at {f}");
                }
            }
        }
    }

    #[test]
    fn lines_are_placed_where_plotters_puts_their_points() {
        let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        let fig = Figure::new("").series(Series::line("", vec![0.013, 7.9], vec![2e-5, 3.1]));
        let builder = || {
            let mut b = ChartBuilder::on(&root);
            b.margin(MARGIN)
                .x_label_area_size(X_LABEL_AREA)
                .y_label_area_size(Y_LABEL_AREA);
            b
        };
        let prep = fig.prepare().unwrap();
        let (x, y) = (prep.x_range, prep.y_range);
        let chart = builder().build_cartesian_2d(x.0..x.1, y.0..y.1).unwrap();
        plotters_pixels_match(&chart, &prep, (false, false));
        let fig = fig.log_x().log_y();
        let prep = fig.prepare().unwrap();
        let (x, y) = (prep.x_range, prep.y_range);
        let chart = builder()
            .build_cartesian_2d((x.0..x.1).log_scale(), (y.0..y.1).log_scale())
            .unwrap();
        plotters_pixels_match(&chart, &prep, (true, true));
    }

    /// A line is as wide in every direction in the rendered bitmap: its ink (the opacity of each pixel it
    /// changes, from the colour's green channel) per pixel of length, for a flat, an oblique and a steep
    /// segment (plotters' own lines of stroke width 2 measure 2.99, 3.61 and 2.45 here).
    #[test]
    fn lines_have_one_width_in_every_direction() {
        let base = Figure::new("")
            .x_limits(0.0, 1.0)
            .y_limits(0.0, 1.0)
            .series(Series::points("", vec![5.0], vec![5.0]));
        let empty = rgb(&base);
        let (x0, y0, x1, y1) = bbox(&diff(
            &empty,
            &rgb(&base
                .clone()
                .series(Series::line("", vec![0.0, 1.0], vec![0.0, 1.0]))),
        ));
        let (w, h) = (f64::from(x1 - x0), f64::from(y1 - y0));
        // The line is the second series: PALETTE[1], green channel 127 on white 255.
        let width = |(a, b): (f64, f64), (c, d): (f64, f64)| {
            let img = rgb(&base.clone().series(Series::line("", vec![a, c], vec![b, d])));
            let ink: f64 = diff(&empty, &img)
                .iter()
                .map(|&(x, y)| (255.0 - f64::from(img[3 * (y * SIZE.0 + x) as usize + 1])) / 128.0)
                .sum();
            ink / ((c - a) * w).hypot((d - b) * h)
        };
        let flat = width((0.1, 0.5), (0.9, 0.5));
        let oblique = width((0.2, 0.2), (0.8, 0.8));
        let steep = width((0.45, 0.1), (0.55, 0.9));
        for (what, v) in [("flat", flat), ("oblique", oblique), ("steep", steep)] {
            assert!((v - LINE_WIDTH).abs() < 0.1, "{what}: {v:.2} pixels wide");
        }
    }

    /// The legend is drawn where [`crate::legend::corner`] puts it: over a curve rising into the upper right,
    /// the pixels a name adds (the legend) lie in the upper left of the image.
    #[test]
    fn the_rendered_legend_avoids_a_curve_rising_to_the_upper_right() {
        let xs: Vec<f64> = (0..=50).map(|i| i as f64 / 50.0).collect();
        let ys: Vec<f64> = xs.iter().map(|x| x.sqrt()).collect();
        let fig = |name: &str| Figure::new("").series(Series::line(name, xs.clone(), ys.clone()));
        let (x0, y0, x1, y1) = bbox(&diff(&rgb(&fig("")), &rgb(&fig("a rising curve"))));
        assert!(
            x1 < SIZE.0 / 2 && y1 < SIZE.1 / 2,
            "legend at {:?}",
            (x0, y0, x1, y1)
        );
    }

    #[test]
    fn a_series_with_nothing_drawn_gets_no_legend_entry() {
        let fig = Figure::new("")
            .log_y()
            .series(Series::line("drawn", vec![1.0, 2.0], vec![1.0, 10.0]))
            .series(Series::line("all skipped", vec![1.0, 2.0], vec![0.0, -1.0]))
            .series(Series::points("", vec![1.5], vec![3.0]));
        let prep = fig.prepare().unwrap();
        assert_eq!(legend_labels(&fig, &prep), vec!["drawn".to_string()]);
    }

    #[test]
    fn a_narrow_log_axis_gets_several_labels_and_a_wide_one_its_decades() {
        // A learning-rate grid 0.025–0.4 with the 5 % margins: the 1-2-5 sequence.
        let (bold, light) = log_ticks(0.025 / 1.15, 0.4 * 1.15);
        assert_eq!(bold, [0.05, 0.1, 0.2]);
        assert!(light.contains(&0.03) && light.contains(&0.4) && !light.contains(&0.1));
        // Within one decade: every digit.
        assert_eq!(log_ticks(2.5, 7.5).0, [3.0, 4.0, 5.0, 6.0, 7.0]);
        // Five powers of ten inside: they are the labels, the other digits the grid (8 below 1e-6, 8 in each
        // of the four decades from 1e-6, and 2–5 · 1e-2).
        let (bold, light) = log_ticks(1.5e-7, 5.5e-2);
        assert_eq!(bold.len(), 5);
        assert_eq!(light.len(), 8 + 4 * 8 + 4);
        // Twenty decades: at most eight labels, no grid of digits.
        let (bold, light) = log_ticks(1e-12, 1e8);
        assert!((3..=MAX_LOG_LABELS).contains(&bold.len()), "{bold:?}");
        assert!(light.is_empty());
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(1e-5), "1e-5");
        assert_eq!(fmt_num(-2.5e6), "-2.5e6");
        assert_eq!(fmt_num(123.456), "123.456");
    }
}
