//! Thick antialiased polylines for the bitmap (PNG) figures.
//!
//! A polyline of width `w` is the set of points within `w/2` of one of its segments (a union of capsules:
//! round ends and joins). Each pixel is painted with the opacity
//!
//! `c = clamp(w/2 + 1/2 − d, 0, 1)`,
//!
//! `d` the distance from the pixel's centre to the nearest segment: 1 well inside, 0 well outside, and the
//! fraction of the pixel inside the line (to first order) on its edge. The painted ink per unit length is
//! then `w` in every direction. Plotters' own thick lines are polygons with corners rounded to whole pixels,
//! which paints a line between 2.3 and 3.6 pixels wide at stroke width 2 depending on its direction, and its
//! thick polylines join with unlimited miters, which paint long spikes where a trajectory reverses.

use std::ops::Range;

/// The opacity of every pixel a polyline of `width` pixels through `points` (continuous pixel coordinates,
/// pixel `(i, j)` centred at `(i, j)`; finite) touches inside `clip` (the plotting area: nothing is painted
/// outside), each pixel once, with its largest opacity over the segments. A single point paints a dot.
pub(crate) fn coverage(
    points: &[(f64, f64)],
    width: f64,
    clip: &(Range<i32>, Range<i32>),
) -> Vec<((i32, i32), f64)> {
    let reach = width / 2.0 + 0.5;
    // The pixels within `reach` of the interval [lo, hi] of one axis, inside `within`.
    let near = |lo: f64, hi: f64, within: &Range<i32>| {
        let clamp = |v: f64| v.clamp(f64::from(within.start), f64::from(within.end)) as i32;
        clamp((lo - reach).ceil())..clamp((hi + reach).floor() + 1.0)
    };
    let Some(((x_lo, x_hi), (y_lo, y_hi))) = points.iter().fold(None, |b, &(x, y)| {
        let ((a, b_), (c, d)) = b.unwrap_or(((x, x), (y, y)));
        Some(((a.min(x), b_.max(x)), (c.min(y), d.max(y))))
    }) else {
        return Vec::new();
    };
    // The box of pixels the line can touch, inside the clip.
    let (xs, ys) = (near(x_lo, x_hi, &clip.0), near(y_lo, y_hi, &clip.1));
    if xs.is_empty() || ys.is_empty() {
        return Vec::new();
    }
    let nx = (xs.end - xs.start) as usize;
    let mut cover = vec![0.0_f64; nx * (ys.end - ys.start) as usize];
    let segments = points.windows(2).map(|w| (w[0], w[1]));
    let dot = (points.len() == 1).then(|| (points[0], points[0]));
    for ((px, py), (qx, qy)) in segments.chain(dot) {
        let (dx, dy) = (qx - px, qy - py);
        let len2 = dx * dx + dy * dy;
        let x_range = near(px.min(qx), px.max(qx), &xs);
        for y in near(py.min(qy), py.max(qy), &ys) {
            for x in x_range.clone() {
                let (ex, ey) = (f64::from(x) - px, f64::from(y) - py);
                // The nearest point of the segment is p + s (q − p), s the clamped projection.
                let s = if len2 > 0.0 {
                    ((ex * dx + ey * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = (ex - s * dx).hypot(ey - s * dy);
                let c = (reach - d).clamp(0.0, 1.0);
                let k = (y - ys.start) as usize * nx + (x - xs.start) as usize;
                cover[k] = cover[k].max(c);
            }
        }
    }
    cover
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c > 0.0)
        .map(|(k, &c)| ((xs.start + (k % nx) as i32, ys.start + (k / nx) as i32), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: (Range<i32>, Range<i32>) = (-1000..1000, -1000..1000);

    /// The ink (sum of opacities) of a long segment per unit length is its width, in every direction: 3.001
    /// at every angle of the test but the diagonals, where the pixel centres fall on the ramp's corners in
    /// step and the sum gives 2.95.
    #[test]
    fn the_ink_per_length_is_the_width_in_every_direction() {
        for k in 0..=24 {
            let a = f64::from(k) * std::f64::consts::PI / 24.0;
            let q = ((400.0 * a.cos()).round(), (400.0 * a.sin()).round());
            let len = q.0.hypot(q.1);
            let ink: f64 = coverage(&[(0.0, 0.0), q], 3.0, &CLIP)
                .iter()
                .map(|(_, c)| c)
                .sum();
            // The round caps add a half-disc at each end: π (w/2)² in all.
            let per_length = (ink - std::f64::consts::PI * 2.25) / len;
            assert!(
                (per_length - 3.0).abs() < 0.06,
                "{:.1}°: {per_length:.3}",
                a.to_degrees()
            );
        }
    }

    #[test]
    fn a_pixel_is_painted_once_and_nothing_outside_the_clip() {
        // A trajectory that reverses on itself: the shared pixels appear once.
        let px = coverage(&[(0.0, 0.0), (50.0, 0.0), (0.0, 1.0), (50.0, 1.0)], 3.0, &CLIP);
        let mut seen: Vec<_> = px.iter().map(|(p, _)| *p).collect();
        seen.sort_unstable();
        let n = seen.len();
        seen.dedup();
        assert_eq!(seen.len(), n);
        let clip = (10..20, -1..1);
        let px = coverage(&[(0.0, 0.0), (50.0, 0.0)], 3.0, &clip);
        assert!(!px.is_empty());
        assert!(px
            .iter()
            .all(|((x, y), _)| clip.0.contains(x) && clip.1.contains(y)));
        assert!(coverage(&[(0.0, 0.0), (50.0, 0.0)], 3.0, &(100..200, 0..10)).is_empty());
        assert!(coverage(&[], 3.0, &CLIP).is_empty());
        // A single point is a dot.
        assert!(coverage(&[(5.0, 5.0)], 3.0, &CLIP)
            .iter()
            .any(|(p, c)| *p == (5, 5) && *c == 1.0));
    }

    /// A line between pixels puts its ink between them: the ink-weighted column of a vertical line is its x.
    #[test]
    fn a_line_between_pixels_is_drawn_between_them() {
        for x in [10.0, 10.25, 10.5, 10.8] {
            let row: Vec<_> = coverage(&[(x, 0.0), (x, 40.0)], 3.0, &CLIP)
                .into_iter()
                .filter(|((_, y), _)| *y == 20)
                .collect();
            let ink: f64 = row.iter().map(|(_, c)| c).sum();
            let centre = row.iter().map(|((px, _), c)| f64::from(*px) * c).sum::<f64>() / ink;
            assert!(
                (ink - 3.0).abs() < 1e-12 && (centre - x).abs() < 1e-12,
                "{x}: {ink} at {centre}"
            );
        }
    }
}
