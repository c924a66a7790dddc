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
    // It can also return vectors that are no eigenvectors at all (mixtures of two eigenvectors whose
    // eigenvalues are close to `±λ`): every pair's residual `‖M v − λ v‖` is checked from the same product,
    // and the cyclic Jacobi iteration, slower but accurate, replaces the result when one fails.
    let mv = &sym * &eig.eigenvectors;
    let rayleigh: Vec<f64> = mv
        .column_iter()
        .zip(eig.eigenvectors.column_iter())
        .map(|(mv, v)| mv.dot(&v))
        .collect();
    let worst = mv
        .column_iter()
        .zip(eig.eigenvectors.column_iter())
        .zip(&rayleigh)
        .map(|((mv, v), l)| (mv - v * *l).norm())
        .fold(0.0, f64::max);
    let norm = sym.norm();
    // (Jacobi up to `JACOBI_MAX_DIM`; larger matrices keep the QR result, as before the check.)
    let (rayleigh, eigenvectors) =
        if worst <= RESIDUAL_CHECK * (n as f64) * f64::EPSILON * norm || n > JACOBI_MAX_DIM {
            (rayleigh, eig.eigenvectors)
        } else {
            jacobi_eigen(sym, opts.max_iter).ok_or(SpectraError::DenseEigen {
                n,
                max_iter: opts.max_iter,
            })?
        };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| rayleigh[a].total_cmp(&rayleigh[b]));
    let values: Vec<f64> = order.iter().map(|&j| rayleigh[j]).collect();
    let mut vectors = DMatrix::<f64>::zeros(n, n);
    for (dst, &src) in order.iter().enumerate() {
        vectors.column_mut(dst).copy_from(&eigenvectors.column(src));
    }
    Ok(DenseEigen {
        values,
        vectors,
        asymmetry,
    })
}

/// Largest accepted residual `‖M v − λ v‖` of a QR eigenpair, in units of `n ε ‖M‖_F`.
const RESIDUAL_CHECK: f64 = 64.0;

/// Largest matrix the Jacobi fallback diagonalizes (a sweep is `O(n³)`): Lanczos tridiagonals and the dense
/// references of small models.
const JACOBI_MAX_DIM: usize = 1024;

/// The cyclic Jacobi eigenvalue iteration (Golub & Van Loan, *Matrix Computations*, §8.5): sweeps of plane
/// rotations `A ← JᵀAJ`, each zeroing one off-diagonal entry, until a sweep finds every `|a_pq|` at most
/// `ε √|a_pp a_qq|` (or below `ε ‖A‖_F / n`, set to zero); the eigenvalues are the diagonal, the eigenvectors
/// the accumulated rotations. `O(n³)` per sweep, a handful of sweeps; `None` after `max_sweeps` sweeps
/// (`0`: unlimited).
fn jacobi_eigen(mut a: DMatrix<f64>, max_sweeps: usize) -> Option<(Vec<f64>, DMatrix<f64>)> {
    let n = a.nrows();
    let mut v = DMatrix::<f64>::identity(n, n);
    let floor = f64::EPSILON * a.norm() / (n.max(1) as f64);
    let mut sweeps = 0usize;
    loop {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[(p, q)];
                if apq.abs() <= floor || apq.abs() <= f64::EPSILON * (a[(p, p)] * a[(q, q)]).abs().sqrt() {
                    a[(p, q)] = 0.0;
                    a[(q, p)] = 0.0;
                    continue;
                }
                rotated = true;
                // The 2 × 2 symmetric Schur decomposition: t = tan of the rotation angle, the smaller root.
                let tau = (a[(q, q)] - a[(p, p)]) / (2.0 * apq);
                let t = if tau >= 0.0 { 1.0 } else { -1.0 } / (tau.abs() + tau.hypot(1.0));
                let c = 1.0 / t.hypot(1.0);
                let s = t * c;
                for m in [&mut a, &mut v] {
                    for k in 0..n {
                        let (kp, kq) = (m[(k, p)], m[(k, q)]);
                        m[(k, p)] = c * kp - s * kq;
                        m[(k, q)] = s * kp + c * kq;
                    }
                }
                for k in 0..n {
                    let (pk, qk) = (a[(p, k)], a[(q, k)]);
                    a[(p, k)] = c * pk - s * qk;
                    a[(q, k)] = s * pk + c * qk;
                }
            }
        }
        if !rotated {
            break;
        }
        sweeps += 1;
        if max_sweeps > 0 && sweeps >= max_sweeps {
            return None;
        }
    }
    Some(((0..n).map(|i| a[(i, i)]).collect(), v))
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

    /// The tridiagonal `T` of 38 Lanczos steps on a planted spectrum with outliers at ±2 next to a bulk
    /// edge at 2: nalgebra's `SymmetricEigen` returns two vectors that mix the eigenvectors of `≈ −2` and
    /// `≈ 2` (residuals `‖T v − θ v‖ ≈ 0.1`); the residual check catches them and Jacobi replaces them.
    #[test]
    fn eigenpairs_failing_their_residuals_are_recomputed() {
        let mut lam: Vec<f64> = (0..146)
            .map(|i| -1.0 + 3.0 * (i as f64 / 145.0).powi(3))
            .collect();
        lam.extend([5.0, 4.2, 3.9, -2.0]);
        let a = DenseOperator::planted(&lam, 1).unwrap();
        let r = crate::lanczos::lanczos(
            &a,
            &crate::lanczos::LanczosOptions {
                max_iter: 38,
                k_top: 3,
                k_bottom: 2,
                tol: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        let m = r.alpha.len();
        let e = tridiagonal_eigen(&r.alpha, &r.beta[..m - 1], &DenseOptions::default()).unwrap();
        let mut t = DMatrix::<f64>::from_diagonal(&DVector::from_column_slice(&r.alpha));
        for i in 1..m {
            t[(i, i - 1)] = r.beta[i - 1];
            t[(i - 1, i)] = r.beta[i - 1];
        }
        for j in 0..m {
            let v = e.vectors.column(j);
            assert!((&t * v - v * e.values[j]).norm() < 1e-13, "pair {j}");
        }
        let jac = jacobi_eigen(t.clone(), 0).unwrap();
        let rebuilt =
            &jac.1 * DMatrix::from_diagonal(&DVector::from_column_slice(&jac.0)) * jac.1.transpose();
        assert!((&rebuilt - &t).amax() < 1e-13);
        assert!((jac.1.transpose() * &jac.1 - DMatrix::<f64>::identity(m, m)).amax() < 1e-13);
        // the bottom Ritz value is the outlier −2, to the accuracy its residual bound promises
        assert!((r.bottom[0].value + 2.0).abs() <= r.bottom[0].residual_bound + 1e-13);
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
