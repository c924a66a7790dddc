use std::path::PathBuf;

/// Everything that can go wrong while building or saving a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The figure has no drawable point (no series, or every point skipped).
    #[error("figure {title:?} has nothing to draw ({series} series, {skipped} points skipped)")]
    Empty {
        title: String,
        series: usize,
        skipped: usize,
    },
    /// A series whose `x` and `y` differ in length.
    #[error("series {series:?}: x has {x_len} values but y has {y_len}")]
    LengthMismatch {
        series: String,
        x_len: usize,
        y_len: usize,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// plotters failed while drawing.
    #[error("rendering {path}: {message}")]
    Render { path: PathBuf, message: String },
    /// A CSV file that is not in the `series,x,y` long format.
    #[error("{path}, line {line}: {reason}")]
    Csv {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// Fixed axis limits that cannot be drawn.
    #[error("{axis} limits [{lo}, {hi}]: {reason}")]
    Limits {
        axis: &'static str,
        lo: f64,
        hi: f64,
        reason: &'static str,
    },
    /// The embedded font could not be registered.
    #[error("embedded font could not be loaded")]
    Font,
    /// A file stem that would escape the output folder or is empty.
    #[error("invalid file stem {stem:?}: {reason}")]
    Stem { stem: String, reason: &'static str },
}

impl PlotError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PlotError::Io {
            path: path.into(),
            source,
        }
    }
}
