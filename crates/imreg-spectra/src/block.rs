//! Principal blocks of a symmetric operator: for an index range `b = [start, start + len)` (one layer's
//! parameters), `A_bb = P_bᵀ A P_b` with `P_b` the embedding of `R^len` into the range. Its trace is the sum
//! of the diagonal over the range (the per-layer Hessian trace), its top eigenvalue the curvature of the
//! loss in that layer's parameters alone with the others frozen.
use crate::error::{Result, SpectraError};
use crate::operator::LinearOperator;
use std::cell::RefCell;
use std::ops::Range;

/// The principal block `A_bb` of `op` over `range`, as an operator on `R^{range.len()}`.
pub struct PrincipalBlock<'a, A: LinearOperator + ?Sized> {
    op: &'a A,
    range: Range<usize>,
    /// The embedded input and the full product, reused across applications.
    work: RefCell<(Vec<f64>, Vec<f64>)>,
}

impl<'a, A: LinearOperator + ?Sized> PrincipalBlock<'a, A> {
    /// The block over `range`, which must be a non-empty part of `0..op.dim()`.
    pub fn new(op: &'a A, range: Range<usize>) -> Result<Self> {
        let p = op.dim();
        if range.is_empty() || range.end > p {
            return Err(SpectraError::invalid(
                "block range",
                format!("{range:?} must be a non-empty part of 0..{p}"),
            ));
        }
        Ok(PrincipalBlock {
            op,
            range,
            work: RefCell::new((vec![0.0; p], vec![0.0; p])),
        })
    }
}

impl<A: LinearOperator + ?Sized> LinearOperator for PrincipalBlock<'_, A> {
    fn dim(&self) -> usize {
        self.range.len()
    }

    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        let mut work = self.work.borrow_mut();
        let (full_x, full_y) = &mut *work;
        full_x[self.range.clone()].copy_from_slice(x);
        let r = self.op.apply(full_x, full_y);
        full_x[self.range.clone()].iter_mut().for_each(|v| *v = 0.0);
        r?;
        y.copy_from_slice(&full_y[self.range.clone()]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::{dense_eigen, dense_matrix, symmetric_eigen, DenseOptions};
    use crate::operator::DenseOperator;

    #[test]
    fn block_is_the_principal_submatrix() {
        let a = DenseOperator::planted(&[3.0, -1.0, 0.5, 2.0, 0.0, 1.0], 5).unwrap();
        let m = dense_matrix(&a).unwrap();
        let b = PrincipalBlock::new(&a, 2..5).unwrap();
        let mb = dense_matrix(&b).unwrap();
        let sub = m.view((2, 2), (3, 3)).into_owned();
        assert!((&mb - &sub).abs().max() <= 1e-14 * 3.0);
        let want = symmetric_eigen(sub, &DenseOptions::default()).unwrap().max();
        let got = dense_eigen(&b, &DenseOptions::default()).unwrap().max();
        assert!((got - want).abs() <= 1e-13 * 3.0);
        assert!(PrincipalBlock::new(&a, 4..7).is_err());
        assert!(PrincipalBlock::new(&a, 3..3).is_err());
    }
}
