//! The diagonal `diag(A)` of a symmetric operator: exact from the `p` unit vectors (`A_ii = e_iᵀ A e_i`), or
//! Hutchinson's diagonal estimator (Bekas, Kokiopoulou & Saad 2007) `d̂ = (1/m) Σ_k z_k ⊙ A z_k` over
//! Rademacher probes `z_k`, unbiased because `E[z_i z_j] = δ_ij`, with a standard error per entry.
use crate::error::{Result, SpectraError};
use crate::estimate::mean_se;
use crate::operator::apply_checked;
use crate::operator::LinearOperator;
use crate::trace::rademacher;

/// A diagonal and how it was computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagonal {
    /// `d_i ≈ A_ii`.
    pub values: Vec<f64>,
    /// The standard error of each entry (all zero when exact).
    pub std_errors: Vec<f64>,
    /// `None` when exact (`p` unit vectors), else the number of Rademacher probes.
    pub probes: Option<usize>,
}

impl Diagonal {
    /// Whether every entry is exact.
    pub fn is_exact(&self) -> bool {
        self.probes.is_none()
    }
}

/// `diag(A)` exactly, from `p` applications to the unit vectors.
pub fn exact_diagonal<A: LinearOperator + ?Sized>(op: &A) -> Result<Diagonal> {
    let p = op.dim();
    let mut e = vec![0.0; p];
    let mut col = vec![0.0; p];
    let mut values = Vec::with_capacity(p);
    for i in 0..p {
        e[i] = 1.0;
        apply_checked(op, &e, &mut col)?;
        e[i] = 0.0;
        values.push(col[i]);
    }
    Ok(Diagonal {
        values,
        std_errors: vec![0.0; p],
        probes: None,
    })
}

/// Hutchinson's diagonal estimate from `probes ≥ 2` Rademacher probes drawn from `seed` (probe `k` from
/// stream `(seed, k)`): entry `i` is the mean of `z_{k,i} (A z_k)_i` with its standard error over the probes.
pub fn hutchinson_diagonal<A: LinearOperator + ?Sized>(op: &A, probes: usize, seed: u64) -> Result<Diagonal> {
    if probes < 2 {
        return Err(SpectraError::invalid(
            "probes",
            format!("the diagonal estimate needs ≥ 2 probes for its standard error, got {probes}"),
        ));
    }
    let p = op.dim();
    let mut samples = vec![Vec::with_capacity(probes); p];
    let mut az = vec![0.0; p];
    for k in 0..probes {
        let z = rademacher(p, seed, k as u64);
        apply_checked(op, &z, &mut az)?;
        for (i, s) in samples.iter_mut().enumerate() {
            s.push(z[i] * az[i]);
        }
    }
    let (values, std_errors) = samples.iter().map(|s| mean_se(s.iter().copied())).unzip();
    Ok(Diagonal {
        values,
        std_errors,
        probes: Some(probes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::dense_matrix;
    use crate::operator::DenseOperator;

    #[test]
    fn exact_diagonal_matches_the_dense_matrix() {
        let a = DenseOperator::planted(&[3.0, -1.0, 0.5, 2.0, 0.0], 7).unwrap();
        let m = dense_matrix(&a).unwrap();
        let d = exact_diagonal(&a).unwrap();
        for i in 0..5 {
            assert!((d.values[i] - m[(i, i)]).abs() <= 1e-14 * 3.0);
        }
        assert!(d.is_exact());
    }

    #[test]
    fn hutchinson_diagonal_is_within_its_standard_errors() {
        let a = DenseOperator::planted(&[3.0, -1.0, 0.5, 2.0, 0.0, 1.5, -0.5, 4.0], 3).unwrap();
        let m = dense_matrix(&a).unwrap();
        let d = hutchinson_diagonal(&a, 400, 11).unwrap();
        assert_eq!(d.probes, Some(400));
        for i in 0..8 {
            let z = (d.values[i] - m[(i, i)]).abs() / d.std_errors[i];
            assert!(
                z < 5.0,
                "entry {i}: {} vs {} (SE {})",
                d.values[i],
                m[(i, i)],
                d.std_errors[i]
            );
        }
        assert!(hutchinson_diagonal(&a, 1, 0).is_err());
    }
}
