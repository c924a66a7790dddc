//! Lanczos with full reorthogonalization: both ends of the spectrum of a symmetric operator, the tridiagonal
//! coefficients `(α, β)`, Ritz vectors with residual bounds, warm starts.
//!
//! After `m` steps from a unit vector `v₁`, `A V_m = V_m T_m + β_m v_{m+1} e_mᵀ` with `T_m` tridiagonal
//! (diagonal `α`, off-diagonal `β`). A Ritz pair `(θ_i, y_i = V_m s_i)` of `T_m s_i = θ_i s_i` has the residual
//! `‖A y_i − θ_i y_i‖ = β_m |e_mᵀ s_i|` (the *residual bound*, free to compute), and there is an eigenvalue of
//! `A` within that distance of `θ_i`. Every new Lanczos vector is orthogonalized against all previous ones
//! (classical Gram–Schmidt, twice), so the basis stays orthonormal to working precision and no spurious
//! copies appear. On breakdown (`β_j ≈ 0`: an invariant subspace was found) with the wanted pairs not yet
//! converged, the iteration restarts from a fresh random vector orthogonal to the basis (`β_j = 0` in `T`),
//! which finds further copies of repeated eigenvalues. Single-vector Lanczos cannot see a second copy of an
//! eigenvalue before such a breakdown, and residuals cannot reveal a missing copy: ask for `k > 1` on
//! degenerate spectra with `tol = 0` and `max_iter = p` (the run then spans the whole space).
//!
//! **Eigenvalue error bounds.** A Ritz value is far more accurate than its residual: if `λ` is the eigenvalue
//! of `A` nearest `θ_i` and `δ_i = min_{λ_j ≠ λ} |λ_j − θ_i|` the gap to the rest of the spectrum, then
//! `|λ − θ_i| ≤ r_i² / δ_i` with `r_i = β_m|e_mᵀs_i|` (the gap theorem; Parlett, *The Symmetric Eigenvalue
//! Problem*, §11.7). The gap is unknown; it is estimated from the other Ritz pairs as
//! `δ̂_i = min_{j≠i} (|θ_i − θ_j| − r_j)` (each neighbour moved towards `θ_i` by its own residual bound, so an
//! unconverged neighbour shrinks the gap), and each pair reports the *eigenvalue bound* `min(r_i, r_i²/δ̂_i)`
//! (`r_i` when `δ̂_i ≤ 0` or there is no other Ritz value). It is an estimate: it holds when every eigenvalue
//! of `A` next to `θ_i` already has a Ritz value near it. An eigenvalue no Ritz value has found yet (a copy
//! in an unresolved cluster, a neighbour inside a dense bulk, any neighbour early in a run) makes `δ̂_i` too
//! large and the bound too small; the residual bound `r_i` stays the proven one. [`StopRule::Eigenvalue`]
//! stops on it: `max_i min(r_i, r_i²/δ̂_i) ≤ tol · max|θ|`, met once `r_i ≈ √(tol · max|θ| · δ̂_i)`. Since
//! Lanczos converges superlinearly on separated outliers, the steps saved are few at tight tolerances
//! (tests/eigenvalue_bound.rs shows where the bound holds and where it does not).
use crate::dense::{tridiagonal_eigen, DenseOptions};
use crate::error::{check_direction, check_finite, Result, SpectraError};
use crate::operator::{apply_checked, LinearOperator};
use crate::vector::{axpy, norm, orthogonalize, orthogonalize_shifted, recurrence_step, scale, scaled};
use imreg_objective::rng;

/// Which bound of the wanted Ritz pairs [`LanczosOptions::tol`] applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StopRule {
    /// The residual bound: `β_m|e_mᵀs_i| ≤ tol · max|θ|` (an eigenvalue of `A` within `tol · max|θ|` of each
    /// Ritz value, and a Ritz vector with that residual).
    #[default]
    Residual,
    /// The eigenvalue bound (module docs): `min(r_i, r_i²/δ̂_i) ≤ tol · max|θ|`, with the gap `δ̂_i` estimated
    /// from the Ritz values. Certifies the eigenvalues, not the Ritz vectors (their residuals stay larger).
    Eigenvalue,
}

/// Options of [`lanczos`].
#[derive(Clone, Debug)]
pub struct LanczosOptions {
    /// Maximum number of Lanczos steps (operator applications), capped at `p`.
    pub max_iter: usize,
    /// Number of largest eigenpairs wanted.
    pub k_top: usize,
    /// Number of smallest eigenpairs wanted.
    pub k_bottom: usize,
    /// Stop when every wanted Ritz pair has its bound of [`stop`](Self::stop) (by default the residual bound
    /// `β_m|e_mᵀs_i|`) `≤ tol · max_i|θ_i|`; `0` runs all `max_iter` steps.
    pub tol: f64,
    /// The bound that `tol` applies to.
    pub stop: StopRule,
    /// Warm start (e.g. the previous top eigenvector along a trajectory); a seeded Gaussian vector if `None`.
    pub start: Option<Vec<f64>>,
    /// Seed of the random start and of restart vectors.
    pub seed: u64,
    /// Check convergence every this many steps (a dense `m × m` tridiagonal eigensolve each time).
    pub check_every: usize,
    /// Form the Ritz vectors `y_i = V s_i` of the wanted pairs.
    pub ritz_vectors: bool,
    /// Also compute the true residuals `‖A y_i − θ_i y_i‖` (one extra application per wanted pair).
    pub true_residuals: bool,
    /// Restart from a fresh orthogonal random vector on breakdown (else stop there).
    pub restart_on_breakdown: bool,
    /// Breakdown threshold: `β_j ≤ breakdown_tol · max_i|θ_i|` counts as an invariant subspace.
    pub breakdown_tol: f64,
    /// Options of the tridiagonal eigensolves.
    pub dense: DenseOptions,
}

impl Default for LanczosOptions {
    fn default() -> Self {
        LanczosOptions {
            max_iter: 100,
            k_top: 1,
            k_bottom: 0,
            tol: 1e-10,
            stop: StopRule::Residual,
            start: None,
            seed: 0,
            check_every: 1,
            ritz_vectors: true,
            true_residuals: false,
            restart_on_breakdown: true,
            breakdown_tol: 1e-12,
            dense: DenseOptions::default(),
        }
    }
}

/// A Ritz pair `(θ, y)` with its residual bound.
#[derive(Clone, Debug)]
pub struct RitzPair {
    /// The Ritz value `θ`.
    pub value: f64,
    /// The unit Ritz vector `y = V s` (when [`LanczosOptions::ritz_vectors`]).
    pub vector: Option<Vec<f64>>,
    /// `β_m |e_mᵀ s|` = `‖A y − θ y‖` in exact arithmetic; some eigenvalue of `A` lies within it of `θ`.
    pub residual_bound: f64,
    /// The eigenvalue bound `min(r, r²/δ̂)` with the gap `δ̂` estimated from the other Ritz pairs (module docs):
    /// an estimate of how far the nearest eigenvalue of `A` can be from `θ`.
    pub value_bound: f64,
    /// The measured `‖A y − θ y‖` (when [`LanczosOptions::true_residuals`]).
    pub residual: Option<f64>,
}

/// What the Lanczos run did.
#[derive(Clone, Debug)]
pub struct LanczosReport {
    /// Lanczos steps taken (= dimension of the Krylov space, = operator applications excluding residuals).
    pub iterations: usize,
    /// All operator applications, including those for true residuals.
    pub applications: usize,
    /// Every wanted pair met the tolerance under [`stop`](Self::stop) (or the whole space was spanned).
    pub converged: bool,
    /// Largest relative residual bound `bound / max|θ|` among the wanted pairs at exit.
    pub max_relative_residual: f64,
    /// Largest relative eigenvalue bound `min(r, r²/δ̂) / max|θ|` among the wanted pairs at exit (an estimate).
    pub max_relative_value_bound: f64,
    /// The stopping rule used.
    pub stop: StopRule,
    /// Number of restarts after breakdowns.
    pub restarts: usize,
    /// The tolerance used.
    pub tol: f64,
}

/// The result of [`lanczos`].
#[derive(Clone, Debug)]
pub struct LanczosResult {
    /// The `k_top` largest Ritz pairs, descending.
    pub top: Vec<RitzPair>,
    /// The `k_bottom` smallest Ritz pairs, ascending.
    pub bottom: Vec<RitzPair>,
    /// Diagonal of `T_m`.
    pub alpha: Vec<f64>,
    /// Off-diagonal of `T_m` (`m − 1` entries; a zero marks a restart), then `β_m`, the norm of the final
    /// residual, so `beta.len() == alpha.len()`.
    pub beta: Vec<f64>,
    /// All Ritz values (eigenvalues of `T_m`), ascending.
    pub ritz_values: Vec<f64>,
    /// First components `s_{1i}` of the normalized eigenvectors of `T_m`, in the order of `ritz_values`:
    /// their squares are the Gauss quadrature weights of the start vector's spectral measure (SLQ).
    pub first_components: Vec<f64>,
    /// The run's report.
    pub report: LanczosReport,
}

impl LanczosResult {
    /// The largest Ritz value (`λ_max` estimate); NaN if no top pair was requested.
    pub fn max(&self) -> f64 {
        self.top.first().map_or(f64::NAN, |r| r.value)
    }
    /// The smallest Ritz value (`λ_min` estimate); NaN if no bottom pair was requested.
    pub fn min(&self) -> f64 {
        self.bottom.first().map_or(f64::NAN, |r| r.value)
    }
}

/// The Ritz values of the leading `k × k` block of the tridiagonal `(α, β)`, ascending.
pub fn ritz_values(alpha: &[f64], beta: &[f64], k: usize) -> Result<Vec<f64>> {
    if k > alpha.len() {
        return Err(SpectraError::TooMany {
            what: "leading block size k".into(),
            k,
            p: alpha.len(),
        });
    }
    Ok(tridiagonal_eigen(
        &alpha[..k],
        &beta[..k.saturating_sub(1)],
        &DenseOptions::default(),
    )?
    .values)
}

/// Runs Lanczos on the symmetric operator `op` (see the module docs).
///
/// ```
/// use imreg_spectra::{lanczos, DenseOperator, LanczosOptions};
/// let a = DenseOperator::planted(&[5.0, 1.0, 0.5, -2.0], 7).unwrap();
/// let r = lanczos(&a, &LanczosOptions { k_top: 1, k_bottom: 1, ..Default::default() }).unwrap();
/// assert!((r.max() - 5.0).abs() < 1e-12 && (r.min() + 2.0).abs() < 1e-12 && r.report.converged);
/// ```
pub fn lanczos<A: LinearOperator + ?Sized>(op: &A, opts: &LanczosOptions) -> Result<LanczosResult> {
    let p = op.dim();
    validate(p, opts)?;
    let m_max = opts.max_iter.min(p);
    let mut v = match &opts.start {
        Some(s) => {
            check_direction("Lanczos start vector", s, p)?;
            s.clone()
        }
        None => random_direction(p, opts.seed, 0, &[])?,
    };
    let n0 = norm(&v);
    scale(1.0 / n0, &mut v);

    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(m_max);
    let mut alpha: Vec<f64> = Vec::with_capacity(m_max);
    let mut beta: Vec<f64> = Vec::with_capacity(m_max);
    let mut w = vec![0.0; p];
    let mut restarts = 0usize;
    let mut state = None;
    let check_every = opts.check_every.max(1);
    loop {
        let j = basis.len();
        // Dimensions were validated; finiteness of A v is read off α below instead of a separate pass.
        op.apply(&v, &mut w)?;
        // w ← A v_j − β_{j−1} v_{j−1}, α_j = v_jᵀ w; then w ← w − α_j v_j and full reorthogonalization against
        // v_0 … v_j, fused into the Gram–Schmidt passes (three reads of memory besides the basis).
        let prev = (j > 0).then(|| (beta[j - 1], basis[j - 1].as_slice()));
        let a = recurrence_step(&mut w, prev, &v);
        if !a.is_finite() {
            // A NaN or ±∞ anywhere in A v makes α non-finite; name the entry, else α itself overflowed.
            check_finite("operator product A x", &w)?;
            return Err(SpectraError::NonFinite {
                what: "Lanczos coefficient α".into(),
                index: j,
                value: a,
            });
        }
        basis.push(std::mem::take(&mut v));
        let (_, b) = orthogonalize_shifted(&mut w, &basis, Some((a, &basis[j])));
        alpha.push(a);
        beta.push(b);
        let m = basis.len();
        let last = m == m_max;
        // Scale of the spectrum seen so far, for relative tests.
        let scale_est = alpha
            .iter()
            .chain(beta.iter())
            .fold(0.0_f64, |s, x| s.max(x.abs()));
        let breakdown = b <= opts.breakdown_tol * scale_est || b == 0.0;
        if last || breakdown || m.is_multiple_of(check_every) {
            let st = ritz_state(&alpha, &beta, opts)?;
            let done = st.met(opts);
            state = Some(st);
            if done || last || (breakdown && !opts.restart_on_breakdown) {
                break;
            }
        }
        if breakdown {
            // Invariant subspace: restart orthogonally with β_j = 0.
            restarts += 1;
            if let Some(last_beta) = beta.last_mut() {
                *last_beta = 0.0;
            }
            match random_direction(p, opts.seed, restarts as u64, &basis) {
                Ok(r) => v = r,
                Err(_) => break, // the basis spans everything reachable: T is exact
            }
        } else {
            v = scaled(1.0 / b, &w);
        }
    }
    let st = match state {
        Some(s) if s.m == alpha.len() => s,
        _ => ritz_state(&alpha, &beta, opts)?,
    };
    finish(op, opts, basis, alpha, beta, st, restarts)
}

fn validate(p: usize, opts: &LanczosOptions) -> Result<()> {
    if p == 0 {
        return Err(SpectraError::invalid("operator dimension", "p = 0"));
    }
    let k = opts.k_top + opts.k_bottom;
    if k == 0 {
        return Err(SpectraError::invalid(
            "k_top + k_bottom",
            "no eigenpair requested",
        ));
    }
    if k > p {
        return Err(SpectraError::TooMany {
            what: "k_top + k_bottom".into(),
            k,
            p,
        });
    }
    if opts.max_iter < k {
        return Err(SpectraError::invalid(
            "max_iter",
            format!("{} is smaller than k_top + k_bottom = {k}", opts.max_iter),
        ));
    }
    if opts.tol.is_nan() || opts.tol < 0.0 || opts.breakdown_tol.is_nan() || opts.breakdown_tol < 0.0 {
        return Err(SpectraError::invalid("tol", "tolerances must be ≥ 0"));
    }
    Ok(())
}

/// A seeded Gaussian unit vector orthogonal to `basis`; errors if none is left (norm collapses).
fn random_direction(p: usize, seed: u64, stream: u64, basis: &[Vec<f64>]) -> Result<Vec<f64>> {
    let mut r = rng::normal_vec(&mut rng::stream(seed, stream), p);
    let n0 = norm(&r);
    orthogonalize(&mut r, basis);
    let n = norm(&r);
    if n <= 1e-10 * n0 || basis.len() >= p {
        return Err(SpectraError::ZeroVector {
            what: "restart vector after orthogonalization".into(),
        });
    }
    scale(1.0 / n, &mut r);
    Ok(r)
}

struct RitzState {
    m: usize,
    values: Vec<f64>,
    vectors: nalgebra::DMatrix<f64>,
    bounds: Vec<f64>,
    /// Eigenvalue bounds of the wanted pairs, in the order of `wanted`.
    value_bounds: Vec<f64>,
    wanted: Vec<usize>,
    /// Largest relative residual bound of the wanted pairs (∞ while fewer Ritz values than wanted pairs).
    max_rel: f64,
    /// Largest relative eigenvalue bound of the wanted pairs (∞ likewise).
    max_rel_value: f64,
}

impl RitzState {
    /// The largest relative bound of the wanted pairs under the stopping rule.
    fn max_rel_stop(&self, stop: StopRule) -> f64 {
        match stop {
            StopRule::Residual => self.max_rel,
            StopRule::Eigenvalue => self.max_rel_value,
        }
    }

    fn met(&self, opts: &LanczosOptions) -> bool {
        self.max_rel_stop(opts.stop) <= opts.tol
    }
}

/// The eigenvalue bound `min(r_i, r_i²/δ̂_i)` of the ascending Ritz value `i`, with the gap
/// `δ̂_i = min_{j≠i} (|θ_i − θ_j| − r_j)`; `r_i` when `δ̂_i ≤ 0` or `θ_i` is the only Ritz value.
fn value_bound(values: &[f64], bounds: &[f64], i: usize) -> f64 {
    let r = bounds[i];
    let gap = (0..values.len())
        .filter(|&j| j != i)
        .map(|j| (values[i] - values[j]).abs() - bounds[j])
        .fold(f64::INFINITY, f64::min);
    if gap > 0.0 && gap.is_finite() {
        r.min(r * r / gap)
    } else {
        r
    }
}

fn ritz_state(alpha: &[f64], beta: &[f64], opts: &LanczosOptions) -> Result<RitzState> {
    let m = alpha.len();
    let eig = tridiagonal_eigen(alpha, beta, &opts.dense)?;
    let b_m = beta[m - 1];
    let bounds: Vec<f64> = (0..m).map(|i| (b_m * eig.vectors[(m - 1, i)]).abs()).collect();
    let scale_est = eig
        .values
        .iter()
        .fold(0.0_f64, |s, x| s.max(x.abs()))
        .max(f64::MIN_POSITIVE);
    let kt = opts.k_top.min(m);
    let kb = opts.k_bottom.min(m - kt);
    let mut wanted: Vec<usize> = (0..kt).map(|i| m - 1 - i).collect();
    wanted.extend(0..kb);
    let value_bounds: Vec<f64> = wanted
        .iter()
        .map(|&i| value_bound(&eig.values, &bounds, i))
        .collect();
    let enough = opts.k_top + opts.k_bottom <= m;
    let largest = |b: &mut dyn Iterator<Item = f64>| {
        if enough {
            b.map(|x| x / scale_est).fold(0.0, f64::max)
        } else {
            f64::INFINITY
        }
    };
    let max_rel = largest(&mut wanted.iter().map(|&i| bounds[i]));
    let max_rel_value = largest(&mut value_bounds.iter().copied());
    Ok(RitzState {
        m,
        values: eig.values,
        vectors: eig.vectors,
        bounds,
        value_bounds,
        wanted,
        max_rel,
        max_rel_value,
    })
}

fn finish<A: LinearOperator + ?Sized>(
    op: &A,
    opts: &LanczosOptions,
    basis: Vec<Vec<f64>>,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    st: RitzState,
    restarts: usize,
) -> Result<LanczosResult> {
    let m = st.m;
    let p = op.dim();
    let mut applications = m;
    let mut pairs = Vec::with_capacity(st.wanted.len());
    for (&i, &value_bound) in st.wanted.iter().zip(&st.value_bounds) {
        let mut pair = RitzPair {
            value: st.values[i],
            vector: None,
            residual_bound: st.bounds[i],
            value_bound,
            residual: None,
        };
        if opts.ritz_vectors || opts.true_residuals {
            let mut y = vec![0.0; p];
            for (k, q) in basis.iter().enumerate() {
                axpy(st.vectors[(k, i)], q, &mut y);
            }
            if opts.true_residuals {
                let mut ay = vec![0.0; p];
                apply_checked(op, &y, &mut ay)?;
                applications += 1;
                axpy(-pair.value, &y, &mut ay);
                pair.residual = Some(norm(&ay));
            }
            if opts.ritz_vectors {
                pair.vector = Some(y);
            }
        }
        pairs.push(pair);
    }
    let kt = opts.k_top.min(m);
    let bottom = pairs.split_off(kt);
    let spanned = m == p || (restarts > 0 && st.max_rel.is_finite() && st.bounds.iter().all(|&b| b == 0.0));
    let converged = st.met(opts) || spanned;
    let first_components = (0..m).map(|i| st.vectors[(0, i)]).collect();
    Ok(LanczosResult {
        top: pairs,
        bottom,
        ritz_values: st.values,
        first_components,
        report: LanczosReport {
            iterations: m,
            applications,
            converged,
            max_relative_residual: st.max_rel,
            max_relative_value_bound: st.max_rel_value,
            stop: opts.stop,
            restarts,
            tol: opts.tol,
        },
        alpha,
        beta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::DenseOperator;

    #[test]
    fn bad_inputs_are_typed_errors() {
        let a = DenseOperator::planted(&[1.0, 2.0, 3.0], 1).unwrap();
        let o = |k_top, k_bottom| LanczosOptions {
            k_top,
            k_bottom,
            ..Default::default()
        };
        assert!(matches!(
            lanczos(&a, &o(3, 1)),
            Err(SpectraError::TooMany { k: 4, p: 3, .. })
        ));
        assert!(matches!(lanczos(&a, &o(0, 0)), Err(SpectraError::Invalid { .. })));
        let start = |s: Vec<f64>| LanczosOptions {
            start: Some(s),
            ..Default::default()
        };
        assert!(matches!(
            lanczos(&a, &start(vec![0.0; 3])),
            Err(SpectraError::ZeroVector { .. })
        ));
        assert!(matches!(
            lanczos(&a, &start(vec![f64::NAN, 1.0, 1.0])),
            Err(SpectraError::NonFinite { .. })
        ));
        assert!(matches!(
            lanczos(&a, &start(vec![1.0; 4])),
            Err(SpectraError::Dimension { .. })
        ));
    }

    #[test]
    fn too_few_iterations_is_reported_not_silent() {
        let lam: Vec<f64> = (0..200).map(|i| 1.0 + (i as f64) * 0.01).collect();
        let a = DenseOperator::planted(&lam, 2).unwrap();
        let r = lanczos(
            &a,
            &LanczosOptions {
                max_iter: 5,
                tol: 1e-12,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!r.report.converged);
        assert_eq!(r.report.iterations, 5);
        assert!(r.report.max_relative_residual > 1e-12);
    }
}

#[cfg(test)]
mod restart_tests {
    use super::*;
    use crate::operator::DenseOperator;

    #[test]
    fn breakdown_restarts_find_every_copy() {
        // two distinct eigenvalues, each three times: the Krylov space of any start vector is invariant after
        // 2 steps, so the run must restart to see the other copies.
        let a = DenseOperator::planted(&[1.0, 1.0, 1.0, 2.0, 2.0, 2.0], 3).unwrap();
        let r = lanczos(
            &a,
            &LanczosOptions {
                max_iter: 6,
                tol: 0.0,
                k_top: 3,
                k_bottom: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.report.restarts, 2, "{:?}", r.report);
        assert!(r.report.converged);
        assert_eq!(r.beta[1], 0.0);
        for t in &r.top {
            assert!((t.value - 2.0).abs() < 1e-13);
        }
        for t in &r.bottom {
            assert!((t.value - 1.0).abs() < 1e-13);
        }
        // without restarts the run stops at the invariant subspace, converged for top-1
        let r = lanczos(
            &a,
            &LanczosOptions {
                restart_on_breakdown: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.report.iterations, 2);
        assert!(r.report.converged && (r.max() - 2.0).abs() < 1e-13);
    }
}
