//! The [`LinearOperator`] trait: a symmetric linear map `R^p → R^p` known only through products `y = A x`,
//! with a dense-matrix operator, a closure operator and composition helpers.
use crate::error::{check_dim, check_finite, Result, SpectraError};
use nalgebra::DMatrix;

/// A linear map `x ↦ A x` on `R^p`, accessed only through products. Every solver of this crate assumes `A`
/// is symmetric (Hessians, covariances, Fisher and Gauss–Newton matrices are).
///
/// `apply` may assume `x.len() == y.len() == dim()`; solvers call it through [`apply_checked`], which
/// validates the lengths first.
pub trait LinearOperator {
    /// The dimension `p`.
    fn dim(&self) -> usize;
    /// Writes `A x` into `y` (overwriting it).
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()>;
}

/// [`LinearOperator::apply`] after checking `x` and `y` have length `op.dim()`, and that `A x` is finite.
pub fn apply_checked<A: LinearOperator + ?Sized>(op: &A, x: &[f64], y: &mut [f64]) -> Result<()> {
    let p = op.dim();
    check_dim("operator input x", p, x.len())?;
    check_dim("operator output y", p, y.len())?;
    op.apply(x, y)?;
    check_finite("operator product A x", y)
}

/// `A x` as a new vector (checked).
pub fn apply_vec<A: LinearOperator + ?Sized>(op: &A, x: &[f64]) -> Result<Vec<f64>> {
    let mut y = vec![0.0; op.dim()];
    apply_checked(op, x, &mut y)?;
    Ok(y)
}

impl<A: LinearOperator + ?Sized> LinearOperator for &A {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        (**self).apply(x, y)
    }
}

impl<A: LinearOperator + ?Sized> LinearOperator for Box<A> {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        (**self).apply(x, y)
    }
}

/// A dense symmetric matrix as an operator.
#[derive(Clone, Debug)]
pub struct DenseOperator {
    matrix: DMatrix<f64>,
}

impl DenseOperator {
    /// Wraps a square, finite matrix. Symmetry is the caller's promise; [`DenseOperator::symmetric`] checks it.
    pub fn new(matrix: DMatrix<f64>) -> Result<Self> {
        if matrix.nrows() != matrix.ncols() {
            return Err(SpectraError::Dimension {
                what: format!(
                    "columns of a {}×{} operator matrix",
                    matrix.nrows(),
                    matrix.ncols()
                ),
                expected: matrix.nrows(),
                got: matrix.ncols(),
            });
        }
        check_finite("operator matrix", matrix.as_slice())?;
        Ok(DenseOperator { matrix })
    }

    /// Wraps a square matrix after checking `|A − Aᵀ|_max ≤ tol · |A|_max`.
    pub fn symmetric(matrix: DMatrix<f64>, tol: f64) -> Result<Self> {
        let op = Self::new(matrix)?;
        let asym = (&op.matrix - op.matrix.transpose()).amax();
        if asym > tol * op.matrix.amax() {
            return Err(SpectraError::invalid(
                "operator matrix",
                format!("not symmetric: max |A − Aᵀ| = {asym:.3e} (tolerance {tol:.1e} · max |A|)"),
            ));
        }
        Ok(op)
    }

    /// The matrix `Q diag(λ) Qᵀ` with a planted spectrum `λ` and a seeded random orthogonal `Q` (QR of a
    /// Gaussian matrix): the standard test operator with a known spectrum.
    pub fn planted(eigenvalues: &[f64], seed: u64) -> Result<Self> {
        let p = eigenvalues.len();
        if p == 0 {
            return Err(SpectraError::invalid("eigenvalues", "empty spectrum"));
        }
        check_finite("planted eigenvalues", eigenvalues)?;
        let mut rng = imreg_objective::rng::stream(seed, 0);
        let g = DMatrix::from_vec(p, p, imreg_objective::rng::normal_vec(&mut rng, p * p));
        let q = g.qr().q();
        let d = DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(eigenvalues));
        let a = &q * d * q.transpose();
        Self::new((&a + a.transpose()) * 0.5)
    }

    /// The matrix.
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.matrix
    }
}

impl LinearOperator for DenseOperator {
    fn dim(&self) -> usize {
        self.matrix.nrows()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        let p = self.dim();
        for (i, yi) in y.iter_mut().enumerate().take(p) {
            *yi = self.matrix.row(i).iter().zip(x).map(|(a, b)| a * b).sum();
        }
        Ok(())
    }
}

/// An operator given by a closure `(x, y) ↦ y = A x`.
pub struct FnOperator<F> {
    dim: usize,
    f: F,
}

impl<F: Fn(&[f64], &mut [f64]) -> Result<()>> FnOperator<F> {
    /// Wraps `f` as an operator of dimension `dim`.
    pub fn new(dim: usize, f: F) -> Self {
        FnOperator { dim, f }
    }
}

impl<F: Fn(&[f64], &mut [f64]) -> Result<()>> LinearOperator for FnOperator<F> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        (self.f)(x, y)
    }
}

/// `a A + σ I` (scale and shift), e.g. `−A` to reach the bottom of the spectrum with power iteration.
pub struct Affine<A> {
    inner: A,
    scale: f64,
    shift: f64,
}

impl<A: LinearOperator> Affine<A> {
    /// `scale · A + shift · I`.
    pub fn new(inner: A, scale: f64, shift: f64) -> Result<Self> {
        check_finite("affine scale and shift", &[scale, shift])?;
        Ok(Affine { inner, scale, shift })
    }
}

impl<A: LinearOperator> LinearOperator for Affine<A> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.inner.apply(x, y)?;
        y.iter_mut()
            .zip(x)
            .for_each(|(yi, xi)| *yi = self.scale * *yi + self.shift * xi);
        Ok(())
    }
}

/// `A + B` for two operators of the same dimension.
pub struct Sum<A, B> {
    a: A,
    b: B,
}

impl<A: LinearOperator, B: LinearOperator> Sum<A, B> {
    /// `A + B`; errors if the dimensions differ.
    pub fn new(a: A, b: B) -> Result<Self> {
        check_dim("second summand of an operator sum", a.dim(), b.dim())?;
        Ok(Sum { a, b })
    }
}

impl<A: LinearOperator, B: LinearOperator> LinearOperator for Sum<A, B> {
    fn dim(&self) -> usize {
        self.a.dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.a.apply(x, y)?;
        let mut t = vec![0.0; y.len()];
        self.b.apply(x, &mut t)?;
        y.iter_mut().zip(&t).for_each(|(yi, ti)| *yi += ti);
        Ok(())
    }
}

/// `A − Σ_j λ_j v_j v_jᵀ`: `A` with the given (orthonormal) eigenpairs projected out (Hotelling deflation).
pub struct Deflated<'v, A> {
    inner: A,
    pairs: Vec<(f64, &'v [f64])>,
}

impl<'v, A: LinearOperator> Deflated<'v, A> {
    /// Deflates `inner` by the pairs `(λ_j, v_j)`; each `v_j` must have length `p` and unit norm.
    pub fn new(inner: A, pairs: Vec<(f64, &'v [f64])>) -> Result<Self> {
        let p = inner.dim();
        for (j, (l, v)) in pairs.iter().enumerate() {
            check_dim(&format!("deflation vector {j}"), p, v.len())?;
            check_finite(&format!("deflation vector {j}"), v)?;
            check_finite(&format!("deflation eigenvalue {j}"), &[*l])?;
            let nv = crate::vector::norm(v);
            if (nv - 1.0).abs() > 1e-8 {
                return Err(SpectraError::invalid(
                    format!("deflation vector {j}"),
                    format!("norm {nv}, not 1"),
                ));
            }
        }
        Ok(Deflated { inner, pairs })
    }
}

impl<A: LinearOperator> LinearOperator for Deflated<'_, A> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.inner.apply(x, y)?;
        for (l, v) in &self.pairs {
            let c = l * crate::vector::dot(v, x);
            crate::vector::axpy(-c, v, y);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_apply_and_composition() {
        let a = DenseOperator::new(DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 3.0])).unwrap();
        assert_eq!(apply_vec(&a, &[1.0, 1.0]).unwrap(), vec![3.0, 4.0]);
        let s = Affine::new(&a, -1.0, 10.0).unwrap();
        assert_eq!(apply_vec(&s, &[1.0, 0.0]).unwrap(), vec![8.0, -1.0]);
        let sum = Sum::new(&a, &a).unwrap();
        assert_eq!(apply_vec(&sum, &[0.0, 1.0]).unwrap(), vec![2.0, 6.0]);
    }

    #[test]
    fn bad_shapes_are_typed_errors() {
        let a = DenseOperator::new(DMatrix::identity(3, 3)).unwrap();
        let b = DenseOperator::new(DMatrix::identity(4, 4)).unwrap();
        assert!(matches!(
            Sum::new(&a, &b),
            Err(SpectraError::Dimension {
                expected: 3,
                got: 4,
                ..
            })
        ));
        assert!(matches!(
            apply_vec(&a, &[1.0; 2]),
            Err(SpectraError::Dimension { .. })
        ));
        assert!(matches!(
            DenseOperator::new(DMatrix::zeros(2, 3)),
            Err(SpectraError::Dimension { .. })
        ));
        let asym = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 0.0, 1.0]);
        assert!(matches!(
            DenseOperator::symmetric(asym, 1e-12),
            Err(SpectraError::Invalid { .. })
        ));
        let nan = DMatrix::from_element(2, 2, f64::NAN);
        assert!(matches!(
            DenseOperator::new(nan),
            Err(SpectraError::NonFinite { .. })
        ));
    }

    #[test]
    fn planted_spectrum_is_planted() {
        let lam = [3.0, -1.0, 0.5, 2.0];
        let a = DenseOperator::planted(&lam, 1).unwrap();
        let mut ev: Vec<f64> = a
            .matrix()
            .clone()
            .symmetric_eigenvalues()
            .iter()
            .copied()
            .collect();
        ev.sort_by(f64::total_cmp);
        let mut want = lam.to_vec();
        want.sort_by(f64::total_cmp);
        for (x, y) in ev.iter().zip(&want) {
            assert!((x - y).abs() < 1e-13);
        }
    }
}
