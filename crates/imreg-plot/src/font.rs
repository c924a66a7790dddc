//! The embedded font: DejaVu Sans (Bitstream Vera license, `assets/DejaVuSans-LICENSE.txt`), registered once
//! with plotters' `ab_glyph` text backend so rendering needs no system fonts.
use crate::PlotError;
use plotters::style::FontStyle;
use std::sync::OnceLock;

/// The font family name figures use; the embedded font is registered under it.
pub const FONT_FAMILY: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers the embedded font with plotters (idempotent, thread-safe).
pub fn ensure_font() -> Result<(), PlotError> {
    let ok = *REGISTERED.get_or_init(|| {
        // Bold/italic fall back to the normal face inside plotters.
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}
