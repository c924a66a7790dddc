use imreg_plot::{read_csv, Figure, PlotError, Series, Style};
use std::path::Path;

/// A PNG starts with its 8-byte signature and has an IHDR chunk with the figure's size.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    (w, h)
}

fn demo() -> Figure {
    let etas: Vec<f64> = (0..6).map(|k| 0.2 * 0.5f64.powi(k)).collect();
    let err3: Vec<f64> = etas.iter().map(|h| 3.0 * h.powi(3)).collect();
    let err2: Vec<f64> = etas.iter().map(|h| 0.5 * h.powi(2)).collect();
    Figure::new("order of accuracy: GD vs the modified flow (η, λ_max)")
        .x_label("step size η")
        .y_label("‖θ_n − θ(nη)‖")
        .log_x()
        .log_y()
        .series(Series::line_markers("C̃_GD (slope 3)", etas.clone(), err3))
        .series(Series::points("gradient flow (slope 2)", etas, err2))
        .hline("2/η", 1e-3)
}

#[test]
fn figure_writes_svg_png_csv() {
    let dir = tempfile::tempdir().unwrap();
    let fig = demo();
    let files = fig.save(dir.path(), "order").unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["order.svg", "order.png", "order.csv"]);
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // Unicode labels survive into the SVG text (the PNG draws them with the embedded font).
    assert!(svg.contains("step size η"), "x label missing");
    assert!(svg.contains("2/η"), "hline label missing");
    assert!(svg.matches("<circle").count() >= 12, "markers missing");
    let png = std::fs::read(&files[1]).unwrap();
    assert_eq!(png_size(&png), (960, 640));
    assert!(png.len() > 10_000, "PNG suspiciously small: {} bytes", png.len());
    // No temporary files left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
}

/// The PNG really contains drawn text: render the same figure with and without its labels and compare the
/// number of non-white pixels (text is drawn with the embedded font; a missing font draws nothing).
#[test]
fn png_text_is_rendered_with_the_embedded_font() {
    let dir = tempfile::tempdir().unwrap();
    let with = demo();
    let mut without = demo();
    without.title.clear();
    without.x_label.clear();
    without.y_label.clear();
    let a = std::fs::read(&with.save(dir.path(), "a").unwrap()[1]).unwrap();
    let b = std::fs::read(&without.save(dir.path(), "b").unwrap()[1]).unwrap();
    // Text adds ink, and PNG compression grows with it; the title alone is ~50 glyphs.
    assert!(
        a.len() > b.len() + 1000,
        "labels did not add ink: {} vs {} bytes",
        a.len(),
        b.len()
    );
}

#[test]
fn csv_round_trips_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let x = vec![0.1, 1.0 / 3.0, 2.5e-300, 7.0];
    let y = vec![f64::NAN, -0.0, 1e300, f64::INFINITY];
    let fig = Figure::new("t")
        .series(Series::line("plain", x.clone(), y.clone()))
        .series(Series::points(
            "with, comma and \"quotes\"",
            vec![1.0, 2.0],
            vec![3.0, 4.0],
        ));
    let files = fig.save(dir.path(), "rt").unwrap();
    let back = read_csv(&files[2]).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].name, "plain");
    assert_eq!(back[1].name, "with, comma and \"quotes\"");
    for (a, b) in back[0].x.iter().zip(&x).chain(back[0].y.iter().zip(&y)) {
        assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
    }
    assert_eq!(back[1].y, vec![3.0, 4.0]);
    assert_eq!(back[0].style, Style::Line);
}

#[test]
fn non_finite_and_non_positive_points_are_skipped_and_counted() {
    let fig = Figure::new("skips").log_y().series(Series::line(
        "s",
        vec![0.0, 1.0, 2.0, 3.0, 4.0],
        vec![1.0, f64::NAN, -1.0, 0.0, 2.0],
    ));
    // NaN, −1 and 0 cannot be drawn on a log y axis.
    assert_eq!(fig.skipped_points(), 3);
    let dir = tempfile::tempdir().unwrap();
    let files = fig.save(dir.path(), "skips").unwrap();
    // The CSV keeps every raw point, skipped ones included.
    assert_eq!(read_csv(&files[2]).unwrap()[0].x.len(), 5);
    let lin = Figure { log_y: false, ..fig };
    assert_eq!(lin.skipped_points(), 1);
}

#[test]
fn empty_figures_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Figure::new("none").save(dir.path(), "e"),
        Err(PlotError::Empty { series: 0, .. })
    ));
    let all_bad = Figure::new("nan")
        .log_x()
        .series(Series::line("s", vec![-1.0, f64::NAN], vec![1.0, 2.0]));
    match all_bad.save(dir.path(), "e") {
        Err(PlotError::Empty { skipped: 2, .. }) => {}
        other => panic!("expected Empty, got {other:?}"),
    }
    let mismatch = Figure::new("m").series(Series::line("s", vec![1.0, 2.0], vec![1.0]));
    assert!(matches!(
        mismatch.save(dir.path(), "e"),
        Err(PlotError::LengthMismatch {
            x_len: 2,
            y_len: 1,
            ..
        })
    ));
    assert!(matches!(
        demo().save(dir.path(), "../escape"),
        Err(PlotError::Stem { .. })
    ));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a failed save left files behind"
    );
}

#[test]
fn constant_and_single_point_series_render() {
    let dir = tempfile::tempdir().unwrap();
    Figure::new("flat")
        .series(Series::line("c", vec![1.0, 2.0], vec![5.0, 5.0]))
        .save(dir.path(), "flat")
        .unwrap();
    Figure::new("one")
        .log_x()
        .log_y()
        .series(Series::points("p", vec![3.0], vec![4.0]))
        .save(dir.path(), "one")
        .unwrap();
    assert!(Path::new(&dir.path().join("one.png")).exists());
}

/// Writes the demo figure to `target/imreg-plot-demo/` for a human look (ignored by default).
#[test]
#[ignore]
fn write_demo_for_inspection() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("imreg-plot-demo");
    let files = demo().save(&dir, "demo").unwrap();
    println!("{files:?}");
}

/// The `points` of every `<polyline>` drawn in `color` (`#RRGGBB`), as pixel coordinates.
fn polylines(svg: &str, color: &str) -> Vec<Vec<(f64, f64)>> {
    svg.split("<polyline")
        .skip(1)
        .filter(|el| {
            el.split("/>")
                .next()
                .unwrap()
                .contains(&format!("stroke=\"{color}\""))
        })
        .map(|el| {
            let pts = el.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
            pts.split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

/// A series with a large excursion beyond fixed axis limits is clipped at the plot frame: no stray segment
/// leaves the plotting area, and the visible parts still reach the frame. The frame is located by a
/// reference series drawn corner to corner of the limits.
#[test]
fn lines_are_clipped_to_the_plotting_area() {
    let dir = tempfile::tempdir().unwrap();
    for log in [false, true] {
        let (lo, hi) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
        let mid = |t: f64| if log { 10f64.powf(t) } else { t };
        let mut fig = Figure::new("excursion")
            .x_limits(lo, hi)
            .y_limits(lo, hi)
            // unnamed series: no legend swatches among the polylines
            .series(Series::line("", vec![lo, hi], vec![lo, hi]))
            .series(Series::line_markers(
                "",
                vec![mid(0.2), mid(0.5), mid(0.8), mid(0.9)],
                vec![mid(0.5), 1e6, mid(0.5), -1e6],
            ));
        if log {
            fig = fig.log_x().log_y();
        }
        let files = fig.save(dir.path(), if log { "log" } else { "lin" }).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        let frame = polylines(&svg, "#1F77B4");
        assert_eq!(frame.len(), 1, "reference line: {frame:?}");
        let (fx0, fx1) = (frame[0][0].0.min(frame[0][1].0), frame[0][0].0.max(frame[0][1].0));
        let (fy0, fy1) = (frame[0][0].1.min(frame[0][1].1), frame[0][0].1.max(frame[0][1].1));
        assert!(fx1 - fx0 > 500.0 && fy1 - fy0 > 300.0, "frame {frame:?}");
        let runs = polylines(&svg, "#FF7F0E");
        // Linear: up-and-back-down is two visible runs (the drop to −1e6 leaves at the bottom); on log axes
        // −1e6 is skipped, so the last point ends the line.
        assert_eq!(runs.len(), 2, "{log}: {runs:?}");
        for &(x, y) in runs.iter().flatten() {
            // one pixel of rounding in plotters' coordinate mapping
            assert!(
                (fx0 - 1.0..=fx1 + 1.0).contains(&x) && (fy0 - 1.0..=fy1 + 1.0).contains(&y),
                "{log}: point ({x}, {y}) outside the frame x {fx0}..{fx1}, y {fy0}..{fy1}"
            );
        }
        // Each run touches the top edge where the excursion leaves the frame.
        for r in &runs {
            assert!(
                r.iter().any(|p| (p.1 - fy0).abs() <= 1.0),
                "{log}: {r:?} never reaches the top"
            );
        }
        // Markers are drawn only for the points inside the limits (the two at mid height).
        let markers = svg.matches("<circle").count();
        assert_eq!(markers, 2, "{log}");
    }
    // Limits that cannot be drawn are a typed error.
    let bad =
        Figure::new("b")
            .log_y()
            .y_limits(0.0, 1.0)
            .series(Series::line("s", vec![1.0, 2.0], vec![1.0, 2.0]));
    assert!(matches!(
        bad.save(dir.path(), "bad"),
        Err(PlotError::Limits { axis: "y", .. })
    ));
}
