//! Headless figures for imreg: SVG + PNG rendered with plotters and an embedded font (DejaVu Sans, so no
//! system fonts are needed and Unicode labels such as `η`, `λ_max`, `2/η` render), with the raw series kept
//! beside every figure as a long-format CSV (`series,x,y`).
//!
//! ```
//! use imreg_plot::{Figure, Series};
//! let dir = tempfile::tempdir().unwrap();
//! let etas = vec![0.1, 0.05, 0.025];
//! let errs: Vec<f64> = etas.iter().map(|h: &f64| h.powi(3)).collect();
//! let files = Figure::new("global error vs η")
//!     .x_label("step size η")
//!     .y_label("‖θ_n − θ(t)‖")
//!     .log_x()
//!     .log_y()
//!     .series(Series::line_markers("measured", etas, errs))
//!     .hline("2/η", 1e-4)
//!     .save(dir.path(), "order")
//!     .unwrap();
//! assert_eq!(files.len(), 3); // order.svg, order.png, order.csv
//! ```
//!
//! Axis ranges are the data's (padded by 5 %) unless fixed with [`Figure::x_limits`] / [`Figure::y_limits`];
//! lines are clipped to the plotting area (a segment leaving the range ends on the frame). The PNG paints
//! its lines pixel by pixel (antialiased, 3 pixels wide in every direction, round joins, placed between
//! pixels where the data fall between them), so a steep segment is as wide as a flat one and a trajectory
//! that reverses direction grows no miter spike past the frame. The legend goes in the corner of the
//! plotting area that hides the least of the drawn data (upper right when several tie), so a curve that ends
//! high on the right is not covered. A log axis labels its powers of ten when at least three fall in its
//! range, and otherwise the 1-2-5 sequence (or every digit), so a narrow range such as a learning-rate grid
//! 0.025–0.4 is read off its labels.
//!
//! Every file is written atomically (a temporary file in the same folder, then a rename), so a reader never
//! sees a half-written figure. Points that cannot be drawn (non-finite values, non-positive values on a log
//! axis) are skipped and counted ([`Figure::skipped_points`]); they are still kept in the CSV.

mod atomic;
mod csv;
mod error;
mod figure;
mod font;
mod legend;
mod render;
mod series;
mod stroke;

pub use atomic::{write_atomic, write_atomic_with};
pub use csv::{read_csv, write_csv};
pub use error::PlotError;
pub use figure::Figure;
pub use font::{ensure_font, FONT_FAMILY};
pub use series::{Series, Style};
