/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Style {
    /// A polyline through the points.
    #[default]
    Line,
    /// Markers only.
    Points,
    /// A polyline with a marker at each point.
    LineMarkers,
}

/// One named series of `(x, y)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub style: Style,
}

impl Series {
    pub fn new(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>, style: Style) -> Self {
        Series {
            name: name.into(),
            x,
            y,
            style,
        }
    }
    /// A polyline.
    pub fn line(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series::new(name, x, y, Style::Line)
    }
    /// Markers only.
    pub fn points(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series::new(name, x, y, Style::Points)
    }
    /// A polyline with markers.
    pub fn line_markers(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series::new(name, x, y, Style::LineMarkers)
    }
    /// `y` against its index `0, 1, 2, …` (e.g. a loss curve by step).
    pub fn indexed(name: impl Into<String>, y: Vec<f64>) -> Self {
        let x = (0..y.len()).map(|i| i as f64).collect();
        Series::line(name, x, y)
    }
}
