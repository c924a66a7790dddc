//! Small dense-vector kernels on flat `&[f64]` slices (sequential, fixed summation order).

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

/// Orthogonalizes `v` against the orthonormal `basis` by classical Gram–Schmidt applied twice ("twice is
/// enough", Giraud et al. 2005), which keeps `v` orthogonal to working precision. Returns the coefficients
/// of the first pass plus the second.
pub fn orthogonalize(v: &mut [f64], basis: &[Vec<f64>]) -> Vec<f64> {
    let mut coeff = vec![0.0; basis.len()];
    for _ in 0..2 {
        for (c, q) in coeff.iter_mut().zip(basis) {
            let h = dot(q, v);
            axpy(-h, q, v);
            *c += h;
        }
    }
    coeff
}
