//! Small dense-vector kernels on flat `&[f64]` slices (fixed summation order).
use rayon::prelude::*;

/// `xᵀy`.
#[inline]
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
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

/// Coordinates per block of the blocked, parallel Gram–Schmidt (fixed: results never depend on the thread
/// count).
const BLOCK: usize = 4096;
/// Below this dimension Gram–Schmidt runs on the calling thread.
const PAR_MIN: usize = 8 * BLOCK;

/// `c = Vᵀ v` over the rows of `basis`, blocked over coordinates, block partial sums added in block order.
fn coefficients(v: &[f64], basis: &[Vec<f64>]) -> Vec<f64> {
    let p = v.len();
    let block = |b: usize| -> Vec<f64> {
        let r = b * BLOCK..((b + 1) * BLOCK).min(p);
        basis.iter().map(|q| dot(&q[r.clone()], &v[r.clone()])).collect()
    };
    let nb = p.div_ceil(BLOCK);
    let parts: Vec<Vec<f64>> = if p >= PAR_MIN {
        (0..nb).into_par_iter().map(block).collect()
    } else {
        (0..nb).map(block).collect()
    };
    let mut c = vec![0.0; basis.len()];
    for part in parts {
        c.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    c
}

/// `v ← v − V c`, blocked over coordinates.
fn subtract(v: &mut [f64], basis: &[Vec<f64>], c: &[f64]) {
    let run = |(b, vb): (usize, &mut [f64])| {
        let off = b * BLOCK;
        for (q, &ck) in basis.iter().zip(c) {
            axpy(-ck, &q[off..off + vb.len()], vb);
        }
    };
    if v.len() >= PAR_MIN {
        v.par_chunks_mut(BLOCK).enumerate().for_each(run);
    } else {
        v.chunks_mut(BLOCK).enumerate().for_each(run);
    }
}

/// Orthogonalizes `v` against the orthonormal `basis` by classical Gram–Schmidt, repeated once when the
/// first pass cancels more than `1 − 1/√2` of the norm (the Daniel–Gragg–Kaufman–Stewart criterion; "twice
/// is enough", Giraud et al. 2005), which keeps `v` orthogonal to working precision. Each pass reads the
/// basis twice (blocked over coordinates, rayon-parallel for large `p`, deterministic). Returns the
/// accumulated coefficients `Vᵀv`.
pub fn orthogonalize(v: &mut [f64], basis: &[Vec<f64>]) -> Vec<f64> {
    let mut total = vec![0.0; basis.len()];
    if basis.is_empty() {
        return total;
    }
    for _ in 0..2 {
        let before = norm(v);
        let c = coefficients(v, basis);
        subtract(v, basis, &c);
        total.iter_mut().zip(&c).for_each(|(t, x)| *t += x);
        if norm(v) > before * std::f64::consts::FRAC_1_SQRT_2 {
            break;
        }
    }
    total
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
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut w = w0.clone();
                orthogonalize(&mut w, &basis);
                w
            })
        };
        let (a, b) = (run(1), run(2));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        let nw = norm(&a);
        for q in &basis {
            assert!(dot(q, &a).abs() < 1e-14 * nw);
        }
    }
}
