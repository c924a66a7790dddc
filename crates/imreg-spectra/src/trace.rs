//! Stochastic trace estimation with standard errors: Hutchinson with Rademacher probes and Hutch++
//! (Meyer, Musco, Musco & Woodruff 2021). Fixed probe counts, no heuristic stop; probe `k` comes from the
//! seeded stream `(seed, k)`, so the result is a pure function of the options.
use crate::error::{check_direction, Result, SpectraError};
use crate::estimate::{mean_se, Estimate, Estimator};
use crate::operator::{apply_checked, LinearOperator};
use crate::vector::{axpy, dot, norm, orthogonalize, scale};
use imreg_objective::rng;
use rand::Rng;

/// Options of [`hutchinson`] and [`hutch_plus_plus`].
#[derive(Clone, Debug)]
pub struct TraceOptions {
    /// Total operator applications (Hutchinson: probes; Hutch++: `m/3` sketch + `m/3` projected + the rest
    /// as residual probes).
    pub matvecs: usize,
    /// Seed of the probe streams.
    pub seed: u64,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions { matvecs: 60, seed: 0 }
    }
}

/// A trace estimate with its standard error.
#[derive(Clone, Debug)]
pub struct TraceEstimate {
    /// The estimate of `tr(A)`.
    pub estimate: f64,
    /// Standard error of the estimate (sample standard deviation of the probe values / √probes; for
    /// Hutch++ that of the residual part, the low-rank part being exact given the sketch).
    pub std_error: f64,
    /// Operator applications used.
    pub applications: usize,
    /// The per-probe values `zᵀAz` of the stochastic part.
    pub samples: Vec<f64>,
}

/// A Rademacher vector (`±1` entries) from stream `(seed, k)`.
pub fn rademacher(p: usize, seed: u64, k: u64) -> Vec<f64> {
    let mut r = rng::stream(seed, k);
    (0..p)
        .map(|_| if r.random::<bool>() { 1.0 } else { -1.0 })
        .collect()
}

impl TraceEstimate {
    /// The estimate as a Monte Carlo [`Estimate`] over the stochastic probes (a fixed probe count, so no stop
    /// rule: `converged` is `None`).
    pub fn to_estimate(&self) -> Estimate {
        Estimate {
            value: self.estimate,
            std_error: self.std_error,
            estimator: Estimator::MonteCarlo {
                samples: self.samples.len(),
                converged: None,
            },
        }
    }
}

/// Hutchinson's estimator `tr(A) ≈ (1/m) Σ_k z_kᵀ A z_k` with `m = matvecs` Rademacher probes.
///
/// ```
/// use imreg_spectra::{hutchinson, DenseOperator, TraceOptions};
/// let a = DenseOperator::planted(&[1.0, 2.0, 3.0, 4.0], 1).unwrap();
/// let t = hutchinson(&a, &TraceOptions { matvecs: 4000, seed: 3 }).unwrap();
/// assert!((t.estimate - 10.0).abs() < 4.0 * t.std_error);
/// ```
pub fn hutchinson<A: LinearOperator + ?Sized>(op: &A, opts: &TraceOptions) -> Result<TraceEstimate> {
    if opts.matvecs < 2 {
        return Err(SpectraError::invalid(
            "matvecs",
            "Hutchinson needs at least 2 probes for a standard error",
        ));
    }
    let p = op.dim();
    let probes = (0..opts.matvecs as u64).map(|k| rademacher(p, opts.seed, k));
    hutchinson_probes(op, probes)
}

/// Hutchinson's estimator on caller-given probes `z_k` (any distribution with `E zzᵀ = I`). Each probe
/// is validated (length, finite, non-zero).
pub fn hutchinson_with_probes<A: LinearOperator + ?Sized>(
    op: &A,
    probes: &[Vec<f64>],
) -> Result<TraceEstimate> {
    if probes.len() < 2 {
        return Err(SpectraError::invalid(
            "probes",
            "at least 2 probes are needed for a standard error",
        ));
    }
    for (k, z) in probes.iter().enumerate() {
        check_direction(&format!("probe {k}"), z, op.dim())?;
    }
    hutchinson_probes(op, probes.iter().cloned())
}

fn hutchinson_probes<A: LinearOperator + ?Sized>(
    op: &A,
    probes: impl Iterator<Item = Vec<f64>>,
) -> Result<TraceEstimate> {
    let mut az = vec![0.0; op.dim()];
    let mut samples = Vec::new();
    for z in probes {
        apply_checked(op, &z, &mut az)?;
        samples.push(dot(&z, &az));
    }
    let (estimate, std_error) = mean_se(samples.iter().copied());
    Ok(TraceEstimate {
        estimate,
        std_error,
        applications: samples.len(),
        samples,
    })
}

/// Hutch++: `tr(A) = tr(QᵀAQ) + tr((I − QQᵀ) A (I − QQᵀ))`, with `Q` an orthonormal basis of `A S` for a
/// Rademacher sketch `S` of `m/3` columns (exact part) and Hutchinson on the deflated remainder with the
/// remaining `m − 2m/3` probes. Unbiased; variance `O(1/m²)` instead of `O(1/m)` for fast-decaying spectra.
pub fn hutch_plus_plus<A: LinearOperator + ?Sized>(op: &A, opts: &TraceOptions) -> Result<TraceEstimate> {
    let p = op.dim();
    let k = (opts.matvecs / 3).min(p);
    let n_res = opts.matvecs.saturating_sub(2 * k);
    if k == 0 || n_res < 2 {
        return Err(SpectraError::invalid(
            "matvecs",
            "Hutch++ needs at least 4 applications (sketch + 2 probes)",
        ));
    }
    let mut buf = vec![0.0; p];
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
    for j in 0..k {
        let s = rademacher(p, opts.seed, (1u64 << 32) + j as u64);
        apply_checked(op, &s, &mut buf)?;
        let n0 = norm(&buf);
        let mut y = buf.clone();
        orthogonalize(&mut y, &q);
        let ny = norm(&y);
        // Drop directions already spanned (A of rank < k): they add nothing to the exact part.
        if ny > 1e-12 * n0 && ny > 0.0 {
            scale(1.0 / ny, &mut y);
            q.push(y);
        }
    }
    let mut exact = 0.0;
    for qj in &q {
        apply_checked(op, qj, &mut buf)?;
        exact += dot(qj, &buf);
    }
    let project = |z: &mut Vec<f64>| {
        for qj in &q {
            let c = dot(qj, z);
            axpy(-c, qj, z);
        }
    };
    let mut samples = Vec::with_capacity(n_res);
    for j in 0..n_res {
        let mut z = rademacher(p, opts.seed, (2u64 << 32) + j as u64);
        project(&mut z);
        apply_checked(op, &z, &mut buf)?;
        project(&mut buf);
        samples.push(dot(&z, &buf));
    }
    let (res, std_error) = mean_se(samples.iter().copied());
    Ok(TraceEstimate {
        estimate: exact + res,
        std_error,
        applications: k + q.len() + n_res,
        samples,
    })
}

/// The exact trace `Σ_i e_iᵀ A e_i` from `p` applications (oracle for small `p`); as an [`Estimate`]:
/// `Estimate::exact(t, p)`.
pub fn exact_trace<A: LinearOperator + ?Sized>(op: &A) -> Result<f64> {
    let p = op.dim();
    let mut e = vec![0.0; p];
    let mut col = vec![0.0; p];
    let mut t = 0.0;
    for i in 0..p {
        e[i] = 1.0;
        apply_checked(op, &e, &mut col)?;
        e[i] = 0.0;
        t += col[i];
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::DenseOperator;

    #[test]
    fn bad_probes_are_typed_errors() {
        let a = DenseOperator::planted(&[1.0, 2.0, 3.0], 1).unwrap();
        let zero = vec![vec![1.0, 1.0, 1.0], vec![0.0; 3]];
        assert!(matches!(
            hutchinson_with_probes(&a, &zero),
            Err(SpectraError::ZeroVector { .. })
        ));
        let nan = vec![vec![1.0, f64::NAN, 1.0], vec![1.0; 3]];
        assert!(matches!(
            hutchinson_with_probes(&a, &nan),
            Err(SpectraError::NonFinite { .. })
        ));
        let short = vec![vec![1.0; 2], vec![1.0; 3]];
        assert!(matches!(
            hutchinson_with_probes(&a, &short),
            Err(SpectraError::Dimension { .. })
        ));
        assert!(hutchinson(&a, &TraceOptions { matvecs: 1, seed: 0 }).is_err());
        assert!(hutch_plus_plus(&a, &TraceOptions { matvecs: 3, seed: 0 }).is_err());
    }

    #[test]
    fn hutch_plus_plus_is_exact_for_low_rank() {
        // rank 2 < m/3 = 4: the sketch captures the whole range and the residual part is zero.
        let a = DenseOperator::planted(&[5.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 2).unwrap();
        let t = hutch_plus_plus(&a, &TraceOptions { matvecs: 12, seed: 1 }).unwrap();
        assert!((t.estimate - 3.0).abs() < 1e-12, "{}", t.estimate);
        assert!(t.std_error < 1e-12);
    }
}
