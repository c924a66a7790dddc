//! Dense fallback for small `p`: form the matrix from `p` operator applications and diagonalize it with
//! nalgebra's `SymmetricEigen` under an iteration cap. Also the oracle every iterative solver is tested
//! against.
use crate::error::{Result, SpectraError};
use crate::operator::{apply_checked, LinearOperator};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Options of [`dense_eigen`].
#[derive(Clone, Debug)]
pub struct DenseOptions {
    /// Convergence threshold passed to `SymmetricEigen::try_new` (off-diagonal size).
    pub eps: f64,
    /// Iteration cap of the implicit QR sweeps (`0` = unlimited, as in nalgebra).
    pub max_iter: usize,
    /// Refuse to form matrices larger than this (memory guard: `p²` doubles).
    pub max_dim: usize,
}

impl Default for DenseOptions {
    fn default() -> Self {
        DenseOptions {
            eps: f64::EPSILON,
            max_iter: 10_000,
            max_dim: 8192,
        }
    }
}

/// A full symmetric eigendecomposition, eigenvalues in **ascending** order.
#[derive(Clone, Debug)]
pub struct DenseEigen {
    /// Eigenvalues `λ_1 ≤ … ≤ λ_p`.
    pub values: Vec<f64>,
    /// Orthonormal eigenvectors, column `j` for `values[j]`.
    pub vectors: DMatrix<f64>,
    /// `max |A − Aᵀ|` of the formed matrix before symmetrization (0 for an exactly symmetric operator).
    pub asymmetry: f64,
}

impl DenseEigen {
    /// The largest eigenvalue.
    pub fn max(&self) -> f64 {
        self.values.last().copied().unwrap_or(f64::NAN)
    }
    /// The smallest eigenvalue.
    pub fn min(&self) -> f64 {
        self.values.first().copied().unwrap_or(f64::NAN)
    }
    /// The `k` largest eigenvalues, descending.
    pub fn top(&self, k: usize) -> Vec<f64> {
        self.values.iter().rev().take(k).copied().collect()
    }
    /// The `k` smallest eigenvalues, ascending.
    pub fn bottom(&self, k: usize) -> Vec<f64> {
        self.values.iter().take(k).copied().collect()
    }
}

/// The matrix of `op`, column `j` = `A e_j` (not symmetrized).
pub fn dense_matrix<A: LinearOperator + ?Sized>(op: &A) -> Result<DMatrix<f64>> {
    let p = op.dim();
    let mut m = DMatrix::<f64>::zeros(p, p);
    let mut e = vec![0.0; p];
    let mut col = vec![0.0; p];
    for j in 0..p {
        e[j] = 1.0;
        apply_checked(op, &e, &mut col)?;
        e[j] = 0.0;
        m.column_mut(j).copy_from_slice(&col);
    }
    Ok(m)
}

/// Eigendecomposition of a symmetric matrix (symmetrized as `(M + Mᵀ)/2`), ascending; each eigenvalue is the
/// Rayleigh quotient `vᵀMv` of the eigenvector it is returned with.
pub fn symmetric_eigen(m: DMatrix<f64>, opts: &DenseOptions) -> Result<DenseEigen> {
    let n = m.nrows();
    if m.ncols() != n {
        return Err(SpectraError::Dimension {
            what: "columns of a square matrix".into(),
            expected: n,
            got: m.ncols(),
        });
    }
    crate::error::check_finite("dense matrix", m.as_slice())?;
    let asymmetry = if n == 0 { 0.0 } else { (&m - m.transpose()).amax() };
    let sym = (&m + m.transpose()) * 0.5;
    let eig =
        SymmetricEigen::try_new(sym.clone(), opts.eps, opts.max_iter).ok_or(SpectraError::DenseEigen {
            n,
            max_iter: opts.max_iter,
        })?;
    // nalgebra's implicit QR can hand back an eigenvalue beside another eigenpair's vector (the vectors are
    // right and orthonormal, the pairing is not: `V Λ Vᵀ` then misses `M` by far more than rounding). Each
    // vector's own eigenvalue is its Rayleigh quotient `λ_j = v_jᵀ M v_j`, accurate to `O(ε‖M‖)` for an
    // accurate eigenvector, so the pairs are formed from it: one `n × n` product, cheaper than the QR sweeps.
    let rayleigh: Vec<f64> = (&sym * &eig.eigenvectors)
        .column_iter()
        .zip(eig.eigenvectors.column_iter())
        .map(|(mv, v)| mv.dot(&v))
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| rayleigh[a].total_cmp(&rayleigh[b]));
    let values: Vec<f64> = order.iter().map(|&j| rayleigh[j]).collect();
    let mut vectors = DMatrix::<f64>::zeros(n, n);
    for (dst, &src) in order.iter().enumerate() {
        vectors.column_mut(dst).copy_from(&eig.eigenvectors.column(src));
    }
    Ok(DenseEigen {
        values,
        vectors,
        asymmetry,
    })
}

/// Forms the matrix of `op` from `p` applications and diagonalizes it: the dense fallback for small `p`.
pub fn dense_eigen<A: LinearOperator + ?Sized>(op: &A, opts: &DenseOptions) -> Result<DenseEigen> {
    let p = op.dim();
    if p > opts.max_dim {
        return Err(SpectraError::TooMany {
            what: "dense dimension (DenseOptions::max_dim)".into(),
            k: p,
            p: opts.max_dim,
        });
    }
    symmetric_eigen(dense_matrix(op)?, opts)
}

/// Eigenvalues (ascending) and eigenvectors of the symmetric tridiagonal matrix with diagonal `alpha` and
/// off-diagonal `beta` (`beta.len() ≥ alpha.len() − 1`; extra entries are ignored).
pub fn tridiagonal_eigen(alpha: &[f64], beta: &[f64], opts: &DenseOptions) -> Result<DenseEigen> {
    let m = alpha.len();
    if m > 0 && beta.len() + 1 < m {
        return Err(SpectraError::Dimension {
            what: "tridiagonal off-diagonal β".into(),
            expected: m - 1,
            got: beta.len(),
        });
    }
    let mut t = DMatrix::<f64>::from_diagonal(&DVector::from_column_slice(alpha));
    for i in 1..m {
        t[(i, i - 1)] = beta[i - 1];
        t[(i - 1, i)] = beta[i - 1];
    }
    symmetric_eigen(t, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::DenseOperator;

    #[test]
    fn dense_recovers_planted_spectrum_ascending() {
        let op = DenseOperator::planted(&[2.0, -3.0, 1.0], 3).unwrap();
        let e = dense_eigen(&op, &DenseOptions::default()).unwrap();
        for (x, y) in e.values.iter().zip([-3.0, 1.0, 2.0]) {
            assert!((x - y).abs() < 1e-13);
        }
        assert_eq!(e.top(1), vec![e.max()]);
        // eigenvector residual ‖A v − λ v‖
        for j in 0..3 {
            let v = e.vectors.column(j);
            let r = op.matrix() * v - v * e.values[j];
            assert!(r.norm() < 1e-13);
        }
    }

    /// A 4 × 4 matrix on which nalgebra's `SymmetricEigen` returns two eigenvalues beside each other's
    /// eigenvectors (`V Λ Vᵀ` misses `M` by 340 % there): the pairs returned here rebuild `M` and have small
    /// residuals `‖M v − λ v‖`.
    #[test]
    #[rustfmt::skip]
    fn eigenpairs_are_paired_by_their_rayleigh_quotients() {
        let m = DMatrix::from_row_slice(4, 4, &[
            -19884.07, -10.07188, 11.277279, -188560.63,
            -10.07188, 12.518197, 1.3770627, -102.97504,
            11.277279, 1.3770627, 14.587362, 113.26099,
            -188560.63, -102.97504, 113.26099, -1788112.3,
        ]);
        let e = symmetric_eigen(m.clone(), &DenseOptions::default()).unwrap();
        let lambda = DMatrix::from_diagonal(&DVector::from_column_slice(&e.values));
        let rebuilt = &e.vectors * lambda * e.vectors.transpose();
        let scale = m.amax();
        assert!((&rebuilt - &m).amax() < 1e-12 * scale, "{}", (&rebuilt - &m).amax() / scale);
        for j in 0..4 {
            let v = e.vectors.column(j);
            assert!((&m * v - v * e.values[j]).norm() < 1e-12 * scale);
        }
        assert!(e.values.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn iteration_cap_is_a_typed_error() {
        let op = DenseOperator::planted(&(0..40).map(|i| i as f64).collect::<Vec<_>>(), 1).unwrap();
        let r = dense_eigen(
            &op,
            &DenseOptions {
                max_iter: 1,
                ..Default::default()
            },
        );
        assert!(matches!(r, Err(SpectraError::DenseEigen { n: 40, max_iter: 1 })));
    }
}
