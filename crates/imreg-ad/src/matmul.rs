//! The one place where imreg multiplies matrices: `C ← op(A)·op(B)` and `C ← C + op(A)·op(B)` on f64
//! `ndarray` views of any strides.
//!
//! The kernel is the `gemm` crate (faer's GEMM) with its AVX-512 (`x86-v4`) micro-kernels, run
//! single-threaded: imreg parallelizes over chunks of examples instead, so every product is computed by one
//! thread in one fixed order and results do not depend on the thread count. On this project's machine it is
//! ~13% faster than matrixmultiply's AVX-512 kernel on the MLP layer shapes (docs/performance.md).
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// `C ← C + A·B` (`accumulate`) or `C ← A·B`, for `A: m×k`, `B: k×n`, `C: m×n` (shapes are the caller's
/// invariant and are asserted).
pub fn gemm_into(
    c: &mut ArrayViewMut2<'_, f64>,
    a: ArrayView2<'_, f64>,
    b: ArrayView2<'_, f64>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(
        b.nrows() == k && c.dim() == (m, n),
        "gemm shapes {:?}·{:?} → {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let (cs, rs) = (c.strides()[1], c.strides()[0]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked above, so every
    // element gemm touches, `p + i·rs + j·cs` for `i < rows` and `j < cols`, lies inside its view; `c` is a
    // unique (mutable) view, so it does not alias `a` or `b`. With `read_dst = false` gemm does not read `c`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            cs,
            rs,
            accumulate,
            a.as_ptr(),
            a.strides()[1],
            a.strides()[0],
            b.as_ptr(),
            b.strides()[1],
            b.strides()[0],
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `A·B` into a new row-major matrix.
pub fn matmul(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut c = Array2::<f64>::uninit((a.nrows(), b.ncols()));
    if a.ncols() == 0 || a.ncols() != b.nrows() {
        // Zero inner dimension (or a shape error, which `gemm_into` reports): go through a zeroed buffer.
        let mut z = Array2::zeros((a.nrows(), b.ncols()));
        gemm_into(&mut z.view_mut(), a, b, false);
        return z;
    }
    // SAFETY: `MaybeUninit<f64>` and `f64` have the same layout; gemm with `read_dst = false` writes every
    // element of the m×n output (k ≥ 1 here) before anything reads it.
    unsafe {
        let mut view = ArrayViewMut2::from_shape_ptr((a.nrows(), b.ncols()), c.as_mut_ptr() as *mut f64);
        gemm_into(&mut view, a, b, false);
        c.assume_init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    fn naive(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|l| a[(i, l)] * b[(l, j)]).sum()
        })
    }

    fn mat(r: usize, c: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((r, c), |(i, j)| {
            (((i * 31 + j * 17 + seed * 7) % 23) as f64 - 11.0) / 7.0
        })
    }

    #[test]
    fn products_of_strided_and_transposed_views_match_the_naive_sum() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 2),
            (17, 33, 9),
            (64, 10, 32),
            (70, 129, 31),
            (5, 0, 4),
            (0, 3, 2),
        ] {
            let a = mat(m, k, 1);
            let b = mat(k, n, 2);
            let at = a.t().to_owned();
            let bt = b.t().to_owned();
            let want = naive(a.view(), b.view());
            let tol = 1e-13 * (k as f64 + 1.0);
            for (av, bv) in [
                (a.view(), b.view()),
                (at.t(), b.view()),
                (a.view(), bt.t()),
                (at.t(), bt.t()),
            ] {
                let got = matmul(av, bv);
                assert!((&got - &want).iter().all(|d| d.abs() <= tol), "{m}x{k}x{n}");
            }
            // accumulate into a strided (column-sliced) destination
            let mut big = Array2::from_elem((m, 2 * n), 1.0);
            let mut dst = big.slice_mut(s![.., ..;2]);
            gemm_into(&mut dst, a.view(), b.view(), true);
            for i in 0..m {
                for j in 0..n {
                    assert!((big[(i, 2 * j)] - 1.0 - want[(i, j)]).abs() <= tol);
                    if 2 * j + 1 < 2 * n {
                        assert_eq!(big[(i, 2 * j + 1)], 1.0);
                    }
                }
            }
        }
    }
}
