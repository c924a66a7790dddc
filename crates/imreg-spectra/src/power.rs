//! Power iteration with deflation: the `k` eigenpairs of largest **magnitude**, one after another, each on
//! `A − Σ_{j<i} λ_j v_j v_jᵀ` (Hotelling deflation). Converges at the rate `|λ_{i+1}/λ_i|`, so slowly when
//! the top eigenvalues are close (prefer [`crate::lanczos()`]); kept as the simple, widely used baseline (the
//! EoSS and many EoS codes use it). For the top of an indefinite spectrum, shift first with
//! [`crate::operator::Affine`].
use crate::error::{check_direction, Result, SpectraError};
use crate::operator::{apply_checked, Deflated, LinearOperator};
use crate::vector::{axpy, dot, norm, scale};
use imreg_objective::rng;

/// Options of [`power_iteration`].
#[derive(Clone, Debug)]
pub struct PowerOptions {
    /// Number of eigenpairs (by decreasing `|λ|`).
    pub k: usize,
    /// Iteration cap per eigenpair.
    pub max_iter: usize,
    /// Stop an eigenpair when `‖A v − θ v‖ ≤ tol · |θ|`.
    pub tol: f64,
    /// Warm start of the first eigenpair; seeded Gaussian otherwise.
    pub start: Option<Vec<f64>>,
    /// Seed of the random starts (stream `i` for eigenpair `i`).
    pub seed: u64,
}

impl Default for PowerOptions {
    fn default() -> Self {
        PowerOptions {
            k: 1,
            max_iter: 1000,
            tol: 1e-8,
            start: None,
            seed: 0,
        }
    }
}

/// One eigenpair from power iteration.
#[derive(Clone, Debug)]
pub struct PowerPair {
    /// Rayleigh quotient `θ = vᵀAv`.
    pub value: f64,
    /// Unit vector.
    pub vector: Vec<f64>,
    /// `‖A_defl v − θ v‖` at exit.
    pub residual: f64,
    /// Iterations used.
    pub iterations: usize,
    /// Met the tolerance.
    pub converged: bool,
}

/// The result of [`power_iteration`].
#[derive(Clone, Debug)]
pub struct PowerResult {
    /// The eigenpairs in the order found (decreasing `|λ|`).
    pub pairs: Vec<PowerPair>,
    /// Total operator applications.
    pub applications: usize,
    /// Every pair converged.
    pub converged: bool,
}

/// Power iteration with deflation (see the module docs).
pub fn power_iteration<A: LinearOperator + ?Sized>(op: &A, opts: &PowerOptions) -> Result<PowerResult> {
    let p = op.dim();
    if opts.k == 0 {
        return Err(SpectraError::invalid("k", "no eigenpair requested"));
    }
    if opts.k > p {
        return Err(SpectraError::TooMany {
            what: "k".into(),
            k: opts.k,
            p,
        });
    }
    if let Some(s) = &opts.start {
        check_direction("power-iteration start vector", s, p)?;
    }
    let mut pairs: Vec<PowerPair> = Vec::with_capacity(opts.k);
    let mut applications = 0;
    for i in 0..opts.k {
        let defl = Deflated::new(op, pairs.iter().map(|q| (q.value, q.vector.as_slice())).collect())?;
        let mut v = match (&opts.start, i) {
            (Some(s), 0) => s.clone(),
            _ => rng::normal_vec(&mut rng::stream(opts.seed, i as u64), p),
        };
        // Start orthogonal to the pairs found (their deflated eigenvalue is 0, but rounding re-excites them).
        for q in &pairs {
            let c = dot(&q.vector, &v);
            axpy(-c, &q.vector, &mut v);
        }
        let nv = norm(&v);
        if nv == 0.0 {
            return Err(SpectraError::ZeroVector {
                what: format!("power-iteration start vector {i}"),
            });
        }
        scale(1.0 / nv, &mut v);
        let mut av = vec![0.0; p];
        let (mut theta, mut residual, mut converged, mut it) = (0.0, f64::INFINITY, false, 0);
        while it < opts.max_iter {
            apply_checked(&defl, &v, &mut av)?;
            applications += 1;
            it += 1;
            theta = dot(&v, &av);
            let mut r = av.clone();
            axpy(-theta, &v, &mut r);
            residual = norm(&r);
            if residual <= opts.tol * theta.abs() {
                converged = true;
                break;
            }
            let na = norm(&av);
            if na == 0.0 {
                // v is in the null space of the deflated operator: θ = 0 exactly.
                converged = true;
                residual = 0.0;
                break;
            }
            v.copy_from_slice(&av);
            scale(1.0 / na, &mut v);
        }
        pairs.push(PowerPair {
            value: theta,
            vector: v,
            residual,
            iterations: it,
            converged,
        });
    }
    let converged = pairs.iter().all(|q| q.converged);
    Ok(PowerResult {
        pairs,
        applications,
        converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::DenseOperator;

    #[test]
    fn finds_dominant_pairs_in_magnitude_order() {
        let a = DenseOperator::planted(&[10.0, -6.0, 3.0, 1.0, 0.5, 0.1], 4).unwrap();
        let r = power_iteration(
            &a,
            &PowerOptions {
                k: 3,
                tol: 1e-12,
                max_iter: 5000,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(r.converged);
        for (q, want) in r.pairs.iter().zip([10.0, -6.0, 3.0]) {
            // residual ≤ 1e-12 |θ| bounds the eigenvalue error by the same amount
            assert!(
                (q.value - want).abs() <= 1e-10 * want.abs(),
                "{} vs {want}",
                q.value
            );
        }
    }

    #[test]
    fn non_convergence_is_reported() {
        let a = DenseOperator::planted(&[1.0, 0.999, 0.5], 4).unwrap();
        let r = power_iteration(
            &a,
            &PowerOptions {
                max_iter: 10,
                tol: 1e-12,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!r.converged && !r.pairs[0].converged && r.pairs[0].iterations == 10);
        let bad = PowerOptions {
            k: 4,
            ..Default::default()
        };
        assert!(matches!(
            power_iteration(&a, &bad),
            Err(SpectraError::TooMany { k: 4, p: 3, .. })
        ));
    }
}
