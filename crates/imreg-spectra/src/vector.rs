//! Small dense-vector kernels on flat `&[f64]` slices (fixed summation order).
use rayon::prelude::*;

/// `xᵀy`, with 16 interleaved partial sums combined in a fixed order: a single running sum is one chain of
/// dependent additions (4 cycles per element), which made the Gram–Schmidt dot products latency-bound;
/// independent lanes let the compiler vectorize and keep the loop memory-bound. Deterministic.
#[inline]
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    lane_sum(x, y, |a, b| a * b)
}

/// `‖x − y‖₂`, summed as [`dot`] sums. Deterministic.
#[inline]
pub fn dist(x: &[f64], y: &[f64]) -> f64 {
    lane_sum(x, y, |a, b| (a - b) * (a - b)).sqrt()
}

/// `Σ_i term(x_i, y_i)` over the common length, in 16 interleaved partial sums combined pairwise in a fixed
/// order, then the tail.
#[inline(always)]
fn lane_sum(x: &[f64], y: &[f64], term: impl Fn(f64, f64) -> f64) -> f64 {
    const LANES: usize = 16;
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0; LANES];
    let mut xc = x.chunks_exact(LANES);
    let mut yc = y.chunks_exact(LANES);
    for (a, b) in (&mut xc).zip(&mut yc) {
        for l in 0..LANES {
            acc[l] += term(a[l], b[l]);
        }
    }
    let tail: f64 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| term(*a, *b))
        .sum();
    // pairwise combination of the lanes, in a fixed order
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0] + tail
}

/// `‖x‖₂`.
#[inline]
pub fn norm(x: &[f64]) -> f64 {
    dot(x, x).sqrt()
}

/// `y ← y + a x`.
#[inline]
pub fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(yi, xi)| *yi += a * xi);
}

/// `x ← a x`.
#[inline]
pub fn scale(a: f64, x: &mut [f64]) {
    x.iter_mut().for_each(|xi| *xi *= a);
}

/// Coordinates per block of the blocked, parallel kernels below (fixed: results never depend on the thread
/// count). A block of a vector is 32 KiB, so the block of `w` stays in L1 while the basis streams past it.
const BLOCK: usize = 4096;
/// Below this dimension the blocked kernels run on the calling thread.
const PAR_MIN: usize = 8 * BLOCK;

/// Runs `f(offset, block of w)` over the coordinate blocks of `w` (rayon-parallel for large `p`) and returns
/// the per-block results in block order, so any reduction of them is deterministic.
fn over_blocks<R: Send>(w: &mut [f64], f: impl Fn(usize, &mut [f64]) -> R + Sync + Send) -> Vec<R> {
    let run = |(b, wb): (usize, &mut [f64])| f(b * BLOCK, wb);
    if w.len() >= PAR_MIN {
        w.par_chunks_mut(BLOCK).enumerate().map(run).collect()
    } else {
        w.chunks_mut(BLOCK).enumerate().map(run).collect()
    }
}

/// Adds per-block vectors in block order.
fn sum_parts(parts: Vec<Vec<f64>>, len: usize) -> Vec<f64> {
    let mut c = vec![0.0; len];
    for part in parts {
        c.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    c
}

/// The first step of a Lanczos iteration in one pass over memory: `w ← w − β q` (when `prev = Some((β, q))`)
/// and then `α = vᵀw`.
pub fn recurrence_step(w: &mut [f64], prev: Option<(f64, &[f64])>, v: &[f64]) -> f64 {
    over_blocks(w, |off, wb| {
        let r = off..off + wb.len();
        if let Some((b, q)) = prev {
            axpy(-b, &q[r.clone()], wb);
        }
        dot(&v[r], wb)
    })
    .iter()
    .sum()
}

/// `y = a x`, blocked and parallel like the kernels above.
pub fn scaled(a: f64, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    over_blocks(&mut y, |off, yb| {
        let n = yb.len();
        yb.iter_mut()
            .zip(&x[off..off + n])
            .for_each(|(yi, &xi)| *yi = a * xi)
    });
    y
}

/// Orthogonalizes `v` against the orthonormal `basis` by classical Gram–Schmidt, repeated once when the
/// first pass cancels more than `1 − 1/√2` of the norm (the Daniel–Gragg–Kaufman–Stewart criterion; "twice
/// is enough", Giraud et al. 2005), which keeps `v` orthogonal to working precision. Returns the accumulated
/// coefficients `Vᵀv`.
pub fn orthogonalize(v: &mut [f64], basis: &[Vec<f64>]) -> Vec<f64> {
    orthogonalize_shifted(v, basis, None).0
}

/// [`orthogonalize`] after first applying `v ← v − α u` (`shift = Some((α, u))`), and returning the final
/// `‖v‖` as well. Each Gram–Schmidt pass reads the basis twice and fuses everything else into those reads:
/// pass 1 applies the shift and computes `‖v‖²` with `c = Vᵀv`; pass 2 applies `v ← v − V c` and computes the
/// new `‖v‖²`. Blocked over coordinates, rayon-parallel for large `p`, block sums added in block order
/// (deterministic at any thread count).
pub fn orthogonalize_shifted(
    v: &mut [f64],
    basis: &[Vec<f64>],
    shift: Option<(f64, &[f64])>,
) -> (Vec<f64>, f64) {
    let k = basis.len();
    let mut total = vec![0.0; k];
    let mut shift = shift;
    for _ in 0..2 {
        // pass 1: (shift), ‖v‖², c = Vᵀv
        let parts = over_blocks(v, |off, vb| {
            let r = off..off + vb.len();
            if let Some((a, u)) = shift {
                axpy(-a, &u[r.clone()], vb);
            }
            let mut out = Vec::with_capacity(k + 1);
            out.push(dot(vb, vb));
            out.extend(basis.iter().map(|q| dot(&q[r.clone()], vb)));
            out
        });
        shift = None;
        let sums = sum_parts(parts, k + 1);
        let before = sums[0].sqrt();
        let c = &sums[1..];
        if k == 0 {
            return (total, before);
        }
        // pass 2: v ← v − V c, ‖v‖²
        let after = over_blocks(v, |off, vb| {
            for (q, &ck) in basis.iter().zip(c) {
                axpy(-ck, &q[off..off + vb.len()], vb);
            }
            dot(vb, vb)
        })
        .iter()
        .sum::<f64>()
        .sqrt();
        total.iter_mut().zip(c).for_each(|(t, x)| *t += x);
        if after > before * std::f64::consts::FRAC_1_SQRT_2 {
            return (total, after);
        }
    }
    let n = norm(v);
    (total, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_parallel_gram_schmidt_is_orthogonal_and_deterministic() {
        let p = PAR_MIN + 1234;
        let mut r = imreg_objective::rng::stream(1, 0);
        let mut basis: Vec<Vec<f64>> = Vec::new();
        for _ in 0..6 {
            let mut v = imreg_objective::rng::normal_vec(&mut r, p);
            orthogonalize(&mut v, &basis);
            let n = norm(&v);
            scale(1.0 / n, &mut v);
            basis.push(v);
        }
        let w0 = imreg_objective::rng::normal_vec(&mut r, p);
        let run = |threads| {
            imreg_objective::threads::on_threads(threads, || {
                let mut w = w0.clone();
                orthogonalize(&mut w, &basis);
                w
            })
            .unwrap()
        };
        let (a, b) = (run(1), run(2));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        let nw = norm(&a);
        for q in &basis {
            assert!(dot(q, &a).abs() < 1e-14 * nw);
        }
    }

    #[test]
    fn lane_sums_match_the_plain_sums() {
        // 37 entries: two full chunks of 16 lanes and a tail of 5.
        let mut r = imreg_objective::rng::stream(2, 0);
        let x = imreg_objective::rng::normal_vec(&mut r, 37);
        let y = imreg_objective::rng::normal_vec(&mut r, 37);
        let plain_dot: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        let plain_dist = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        assert!((dot(&x, &y) - plain_dot).abs() <= 1e-14 * norm(&x) * norm(&y));
        assert!((dist(&x, &y) - plain_dist).abs() <= 1e-14 * plain_dist);
        assert_eq!(dist(&x, &x), 0.0);
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
    }
}
