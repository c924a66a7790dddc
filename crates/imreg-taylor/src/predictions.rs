//! Tenka's small-learning-rate predictions in scalar-η form, with the corrections of `docs/theory/tenka.md`.
//!
//! The paper writes the learning rate as a metric `η^{μν}`; everything here is the scalar-η conversion
//! (`G_μG^μ → η‖G‖²`, `GHG → η²GᵀHG`, `C_{μν}H^{μν} → η² tr(CH)`, `∇_μC^ν_ν G^μ → η² Gᵀ∇trC`).
use crate::error::{check_finite, check_len, Result, TaylorError};
use crate::schedule::Schedule;
use crate::tensors::PopulationTensors;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// The order-by-order pieces of `E[l(θ_T)]`: `order_k` is the `η^k` term (already multiplied by `η^k`).
#[derive(Clone, Debug, PartialEq)]
pub struct TestLossExpansion {
    /// `l(θ₀)`.
    pub order0: f64,
    /// `−Tη‖G‖²`.
    pub order1: f64,
    /// `T(T − ½)η²GᵀHG`.
    pub discretization: f64,
    /// `(TM/2)η² tr(CH)`.
    pub noise_curvature: f64,
    /// `(T(M − 1/B)/4)η² Gᵀ∇trC`.
    pub noise_gradient: f64,
}

impl TestLossExpansion {
    /// The whole `η²` term.
    pub fn order2(&self) -> f64 {
        self.discretization + self.noise_curvature + self.noise_gradient
    }

    /// The truncated prediction through order `k` (`k ≥ 2` gives the order-2 prediction).
    pub fn through(&self, k: usize) -> f64 {
        match k {
            0 => self.order0,
            1 => self.order0 + self.order1,
            _ => self.order0 + self.order1 + self.order2(),
        }
    }
}

fn check_eta(eta: f64) -> Result<()> {
    check_finite("eta", eta)?;
    if eta < 0.0 {
        return Err(TaylorError::InvalidParam {
            name: "eta",
            value: eta,
            reason: "learning rate must be ≥ 0",
        });
    }
    Ok(())
}

/// Tenka's order-η² law (Prop ordtwo; `docs/theory/tenka.md` §Order-η² law), for `T = MN` updates of batch
/// size `B | N`, batches without replacement within each epoch, expectation over the training set and the
/// batch orders:
///
/// `E[l(θ_T)] = l − Tη‖G‖² + T(T − ½)η²GᵀHG + (TM/2)η² tr(CH) + (T(M − 1/B)/4)η² Gᵀ∇trC + o(η²)`.
///
/// The schedule guarantees whole epochs ([`TaylorError::NotWholeEpochs`] otherwise).
///
/// ```
/// use imreg_taylor::{landscapes::RademacherToy, landscape::Integration, predictions::test_loss_expansion,
///                    schedule::Schedule, tensors::population_tensors};
/// let toy = RademacherToy::reference();
/// let t = population_tensors(&toy, &toy.distribution(), Integration::Exact, &[1.0]).unwrap();
/// let e = test_loss_expansion(&t, &Schedule::new(3, 1, 3).unwrap(), 0.005).unwrap();
/// assert!((e.through(2) - 0.485271875).abs() < 1e-12); // docs/theory/tenka.md table, recomputed
/// ```
pub fn test_loss_expansion(t: &PopulationTensors, sched: &Schedule, eta: f64) -> Result<TestLossExpansion> {
    check_eta(eta)?;
    t.check_shapes()?;
    let tt = sched.t() as f64;
    let m = sched.m();
    let b = sched.b() as f64;
    let ghg = t.g.dot(&(&t.h * &t.g));
    let tr_ch = (&t.c * &t.h).trace();
    let g_dc = t.g.dot(&t.grad_tr_c);
    Ok(TestLossExpansion {
        order0: t.loss,
        order1: -tt * eta * t.g_sq(),
        discretization: tt * (tt - 0.5) * eta * eta * ghg,
        noise_curvature: 0.5 * tt * m * eta * eta * tr_ch,
        noise_gradient: 0.25 * tt * (m - 1.0 / b) * eta * eta * g_dc,
    })
}

/// SGD minus GD at equal `T`, `η`, `N` (`docs/theory/tenka.md` §SGD minus GD): the discretization and
/// `tr(CH)` terms cancel, leaving
///
/// `E[l(θ_SGD,B)] − E[l(θ_GD)] = (T/4)(1/N − 1/B)η² Gᵀ∇trC + o(η²)`
///
/// (for `B = 1`: `−(M(N−1)/4)η² Gᵀ∇trC`: "SGD avoids high-C regions more than GD"). Both schedules must be
/// whole epochs.
pub fn sgd_minus_gd(t: &PopulationTensors, n: usize, b: usize, steps: usize, eta: f64) -> Result<f64> {
    check_eta(eta)?;
    t.check_shapes()?;
    Schedule::new(n, b, steps)?;
    Schedule::gd(n, steps)?;
    let tt = steps as f64;
    Ok(0.25 * tt * (1.0 / n as f64 - 1.0 / b as f64) * eta * eta * t.g.dot(&t.grad_tr_c))
}

/// **Corrected** Cor epochs (`docs/theory/tenka.md` §Epochs corollary): SGD with `E₀` epochs, `B = 1` and
/// rate `η/E₀`, against one epoch, `B = 1`, rate `η`:
///
/// `E[θ_{E₀} − θ_{E=1}] = ((E₀ − 1)/(4E₀)) N η² ∇(trC + ‖G‖²) + o(η²) = ((E₀ − 1)/(4E₀)) N η² ∇E_x‖∇l_x‖²`.
///
/// The paper states `∇trC` alone ([`epochs_displacement_as_published`]); that omits the discretization
/// term `∇‖G‖² = 2HG`, which differs between the two runs because their step sizes differ. The `∇trC`-only
/// form is right only when `G = 0`.
pub fn epochs_displacement(t: &PopulationTensors, n: usize, e0: usize, eta: f64) -> Result<DVector<f64>> {
    epochs_check(n, e0, eta)?;
    t.check_shapes()?;
    Ok(epochs_factor(n, e0, eta) * t.grad_second_moment())
}

/// The Cor epochs displacement **as published** (`∇trC` only) — incorrect when `G ≠ 0`; kept so that the
/// checks can show it misses the exact enumeration at order η². Use [`epochs_displacement`].
pub fn epochs_displacement_as_published(
    t: &PopulationTensors,
    n: usize,
    e0: usize,
    eta: f64,
) -> Result<DVector<f64>> {
    epochs_check(n, e0, eta)?;
    t.check_shapes()?;
    Ok(epochs_factor(n, e0, eta) * &t.grad_tr_c)
}

fn epochs_check(n: usize, e0: usize, eta: f64) -> Result<()> {
    check_eta(eta)?;
    if n == 0 || e0 == 0 {
        return Err(TaylorError::InvalidParam {
            name: if n == 0 { "N" } else { "E0" },
            value: 0.0,
            reason: "must be ≥ 1",
        });
    }
    Ok(())
}

fn epochs_factor(n: usize, e0: usize, eta: f64) -> f64 {
    let e0 = e0 as f64;
    (e0 - 1.0) / (4.0 * e0) * n as f64 * eta * eta
}

/// Drift of SGD along a valley (Cor entropic, scalar-η form of `docs/theory/tenka.md` §Valley drift).
#[derive(Clone, Debug, PartialEq)]
pub struct ValleyDrift {
    /// Eigenvalues `h_μ` of `H`, ascending.
    pub eigenvalues: DVector<f64>,
    /// Eigenvectors (columns) of `H`.
    pub eigenvectors: DMatrix<f64>,
    /// `v_λ = −(η²/2) Σ_{μν} C_{μν}J_{μνλ}/(h_μ + h_ν)` in the eigenbasis (per step for flat `λ`).
    pub v: DVector<f64>,
    /// Per-step drift along the flat directions (`h_λ ≤ flat_tol`), in the original coordinates.
    pub drift_per_step: DVector<f64>,
    /// Saturated displacement `v_λ/(ηh_λ)` along the stiff directions (0 for flat ones), eigenbasis.
    pub stiff_displacement: DVector<f64>,
}

/// The valley drift of SGD started on a valley of test minima (Cor entropic; `docs/theory/tenka.md` §Valley
/// drift), scalar-η form:
///
/// `v_λ = −(η²/2) Σ_{μν} C_{μν} J_{μνλ} / (h_μ + h_ν)` per step (eigenbasis of `H`),
///
/// derived from the stationary transverse covariance `HΣ + ΣH = ηC` and the semi-gradient of `½tr(HΣ)` at
/// fixed `Σ`. The paper's own statement has an ambiguous η-bookkeeping (it divides by `η(h_μ + h_ν)·h_λ`);
/// this is the corrected, dimensionally consistent per-step form, which gives the Helix `+η²/6`.
/// Pairs with `h_μ + h_ν ≤ flat_tol` (diffusion inside the valley) are left out; `H` must be positive
/// semi-definite up to `flat_tol`.
pub fn valley_drift(t: &PopulationTensors, eta: f64, flat_tol: f64) -> Result<ValleyDrift> {
    check_eta(eta)?;
    check_finite("flat_tol", flat_tol)?;
    let p = t.check_shapes()?;
    let eig = SymmetricEigen::new(t.h.clone());
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|a, b| eig.eigenvalues[*a].total_cmp(&eig.eigenvalues[*b]));
    let hs = DVector::from_iterator(p, order.iter().map(|&i| eig.eigenvalues[i]));
    let q = DMatrix::from_fn(p, p, |r, c| eig.eigenvectors[(r, order[c])]);
    if let Some(neg) = hs.iter().find(|h| **h < -flat_tol.abs()) {
        return Err(TaylorError::NotPositiveDefinite {
            name: "H (valley drift)",
            eigenvalue: *neg,
        });
    }
    let c = q.transpose() * &t.c * &q;
    let j = t.j.rotate(&q);
    let mut v = DVector::zeros(p);
    let mut drift = DVector::zeros(p);
    let mut stiff = DVector::zeros(p);
    for l in 0..p {
        let mut s = 0.0;
        for mu in 0..p {
            for nu in 0..p {
                let denom = hs[mu] + hs[nu];
                if denom > flat_tol.abs() {
                    s += c[(mu, nu)] * j.get(mu, nu, l).unwrap_or(0.0) / denom;
                }
            }
        }
        v[l] = -0.5 * eta * eta * s;
        if hs[l] <= flat_tol.abs() {
            drift.axpy(v[l], &q.column(l).into_owned(), 1.0);
        } else if eta > 0.0 {
            stiff[l] = v[l] / (eta * hs[l]);
        }
    }
    Ok(ValleyDrift {
        eigenvalues: hs,
        eigenvectors: q,
        v,
        drift_per_step: drift,
        stiff_displacement: stiff,
    })
}

/// Skewness correction of E = B = 1 SGD from a test minimum (Prop splash / Cor vssde; `docs/theory/tenka.md`
/// §Skewness), in excess over Gaussian noise with the same mean and covariance, small-`Tηh` form:
///
/// `−(Tη³/6) Σ_{μνλ} S_{μνλ} J_{μνλ} + o(η³)`.
///
/// **Sign: minus** — the paper's appendix ("direct perturbation") drops it; the main text and the
/// quadrature check agree on minus. On the Gauss landscape (`S·J = ½`) this is `−η³/12` at `T = 1`.
pub fn skewness_correction(t: &PopulationTensors, steps: usize, eta: f64) -> Result<f64> {
    check_eta(eta)?;
    t.check_shapes()?;
    Ok(-(steps as f64) * eta.powi(3) / 6.0 * t.s_dot_j())
}

/// The saturating form of the skewness correction (`docs/theory/tenka.md` §Skewness), eigenbasis of `H`:
///
/// `−(η³/6) Σ_{μνλ} S_{μνλ}J_{μνλ} (1 − e^{−Tη(h_μ+h_ν+h_λ)}) / (η(h_μ+h_ν+h_λ))`,
///
/// which tends to [`skewness_correction`] as `Tηh → 0` (terms with `h_μ+h_ν+h_λ = 0` use that limit `T`).
pub fn skewness_correction_saturating(t: &PopulationTensors, steps: usize, eta: f64) -> Result<f64> {
    check_eta(eta)?;
    let p = t.check_shapes()?;
    let eig = SymmetricEigen::new(t.h.clone());
    let q = eig.eigenvectors.clone();
    let (s, j) = (t.s.rotate(&q), t.j.rotate(&q));
    let tt = steps as f64;
    let mut sum = 0.0;
    for a in 0..p {
        for b in 0..p {
            for c in 0..p {
                let k = eta * (eig.eigenvalues[a] + eig.eigenvalues[b] + eig.eigenvalues[c]);
                let factor = if k.abs() * tt < 1e-12 {
                    tt
                } else {
                    -(-tt * k).exp_m1() / k
                };
                sum += s.get(a, b, c).unwrap_or(0.0) * j.get(a, b, c).unwrap_or(0.0) * factor;
            }
        }
    }
    Ok(-eta.powi(3) / 6.0 * sum)
}

/// Overfitting of GD from a test minimum on a quadratic with additive noise (Cor overfit;
/// `docs/theory/tenka.md` §Overfitting and the gap).
#[derive(Clone, Debug, PartialEq)]
pub struct OverfitPrediction {
    /// `E[l(θ_T)] − l(θ*) = Σ_μ C_μμ (1 − (1 − ηh_μ)^T)² / (2N h_μ)`.
    pub overfit: f64,
    /// `E[l(θ_T) − l̂(θ_T)] = Σ_μ C_μμ (1 − (1 − ηh_μ)^T) / (N h_μ)` (test minus train).
    pub gap: f64,
    /// The `T → ∞` limit of the gap, Takeuchi's `tr(C H⁻¹)/N`.
    pub tic: f64,
}

/// Overfitting and generalization gap of `T` GD steps from the test minimum `θ*` with `N` training points,
/// on `l_x(θ) = ½(θ−θ*)ᵀH(θ−θ*) + (θ−θ*)ᵀξ_x`, `E ξ = 0`, `Cov ξ = C` (MeanEstimation in 1-D):
/// exact (not only to leading order) for quadratics, with `(1 − ηh)^T` in place of the paper's `e^{−ηTh}`
/// (its small-η limit). `C_μμ` are the diagonal entries of `C` in `H`'s eigenbasis (off-diagonal entries do
/// not enter). The gap is the COLT form `(C/N)/H`; the AAAI version's `C/(2NH)` is off by a factor 2.
pub fn overfit_gd(
    h: &DMatrix<f64>,
    c: &DMatrix<f64>,
    n: usize,
    eta: f64,
    steps: usize,
) -> Result<OverfitPrediction> {
    check_eta(eta)?;
    let p = h.nrows();
    check_len("H columns", h.ncols(), p)?;
    check_len("C rows", c.nrows(), p)?;
    check_len("C columns", c.ncols(), p)?;
    if n == 0 {
        return Err(TaylorError::InvalidParam {
            name: "N",
            value: 0.0,
            reason: "needs at least one point",
        });
    }
    let eig = SymmetricEigen::new(h.clone());
    if let Some(bad) = eig.eigenvalues.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(TaylorError::NotPositiveDefinite {
            name: "H",
            eigenvalue: *bad,
        });
    }
    let ct = eig.eigenvectors.transpose() * c * &eig.eigenvectors;
    let nf = n as f64;
    let (mut overfit, mut gap, mut tic) = (0.0, 0.0, 0.0);
    for mu in 0..p {
        let hm = eig.eigenvalues[mu];
        let shrink = 1.0 - (1.0 - eta * hm).powi(steps.min(i32::MAX as usize) as i32);
        overfit += ct[(mu, mu)] * shrink * shrink / (2.0 * nf * hm);
        gap += ct[(mu, mu)] * shrink / (nf * hm);
        tic += ct[(mu, mu)] / (nf * hm);
    }
    Ok(OverfitPrediction { overfit, gap, tic })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::{exact_expectation, ExactParams};
    use crate::landscape::Integration;
    use crate::landscapes::{Helix, RademacherToy};
    use crate::tensors::population_tensors;

    fn toy_tensors() -> PopulationTensors {
        let toy = RademacherToy::reference();
        population_tensors(&toy, &toy.distribution(), Integration::Exact, &[1.0]).unwrap()
    }

    #[test]
    fn expansion_terms_by_hand() {
        // G = H = 1, trC = 2.25, ∇trC = 1.5; N = 3, B = 1, T = 6 (M = 2), η = 0.01.
        let e = test_loss_expansion(&toy_tensors(), &Schedule::new(3, 1, 6).unwrap(), 0.01).unwrap();
        let eta2 = 1e-4;
        assert!((e.order1 + 0.06).abs() < 1e-15);
        assert!((e.discretization - 6.0 * 5.5 * eta2).abs() < 1e-15);
        assert!((e.noise_curvature - 0.5 * 6.0 * 2.0 * 2.25 * eta2).abs() < 1e-15);
        assert!((e.noise_gradient - 0.25 * 6.0 * (2.0 - 1.0) * 1.5 * eta2).abs() < 1e-15);
    }

    #[test]
    fn epochs_numbers_of_the_reference_table_recomputed() {
        // docs/theory/tenka.md §Epochs corollary: E0 = 2, N = 3, η = 0.005: full formula 3.2813e-5,
        // ∇trC-only 1.4063e-5, enumeration 3.2509e-5.
        let t = toy_tensors();
        let eta = 0.005;
        let fixed = epochs_displacement(&t, 3, 2, eta).unwrap()[0];
        let paper = epochs_displacement_as_published(&t, 3, 2, eta).unwrap()[0];
        assert!((fixed - 3.28125e-5).abs() < 1e-17 && (paper - 1.40625e-5).abs() < 1e-17);
        let toy = RademacherToy::reference();
        let d = toy.distribution();
        let run = |e: usize, rate: f64| {
            exact_expectation(
                &toy,
                &d,
                &[1.0],
                &Schedule::epochs_of(3, 1, e).unwrap(),
                rate,
                ExactParams::default(),
            )
            .unwrap()
            .theta[0]
        };
        let measured = run(2, eta / 2.0) - run(1, eta);
        assert!((measured - 3.2509e-5).abs() < 1e-9, "{measured}");
        // GD − SGD at η = 0.005 (M = 1): enumeration 1.8398e-5, prediction 1.875e-5.
        assert!((sgd_minus_gd(&t, 3, 1, 3, eta).unwrap() + 1.875e-5).abs() < 1e-17);
    }

    #[test]
    fn formulas_refuse_partial_epochs() {
        let t = toy_tensors();
        assert!(matches!(
            sgd_minus_gd(&t, 4, 2, 3, 0.1),
            Err(TaylorError::NotWholeEpochs { t: 3, .. })
        ));
        assert!(matches!(
            sgd_minus_gd(&t, 4, 3, 4, 0.1),
            Err(TaylorError::BatchNotDivisor { .. })
        ));
        assert!(test_loss_expansion(&t, &Schedule::new(3, 1, 3).unwrap(), -0.1).is_err());
        assert!(epochs_displacement(&t, 3, 0, 0.1).is_err());
    }

    #[test]
    fn valley_drift_needs_psd_hessian_and_is_rotation_invariant() {
        let mut t = population_tensors(
            &Helix,
            &Helix.distribution(),
            Integration::Quadrature { nodes: 6 },
            &[0.0; 3],
        )
        .unwrap();
        let v = valley_drift(&t, 0.1, 1e-9).unwrap();
        assert!((v.drift_per_step[2] - 0.01 / 6.0).abs() < 1e-15);
        assert!(v.drift_per_step[0].abs() < 1e-15 && v.drift_per_step[1].abs() < 1e-15);
        t.h[(0, 0)] = -3.0;
        assert!(matches!(
            valley_drift(&t, 0.1, 1e-9),
            Err(TaylorError::NotPositiveDefinite { .. })
        ));
    }

    #[test]
    fn overfit_limits_and_errors() {
        let h = DMatrix::from_element(1, 1, 0.5);
        let c = DMatrix::from_element(1, 1, 2.0);
        // ηh = 1: one GD step lands on the training minimum: overfit C/(2Nh), gap C/(Nh) = TIC.
        let p = overfit_gd(&h, &c, 4, 2.0, 1).unwrap();
        assert!(
            (p.overfit - 0.5).abs() < 1e-15 && (p.gap - 1.0).abs() < 1e-15 && (p.tic - 1.0).abs() < 1e-15
        );
        // Very flat and very sharp minima both overfit little at fixed ηT (the 1-D claim).
        let of = |hh: f64| {
            overfit_gd(&DMatrix::from_element(1, 1, hh), &c, 4, 0.01, 100)
                .unwrap()
                .overfit
        };
        assert!(of(1e-3) < of(1.0) && of(1e3 * 0.199) < of(1.0));
        assert!(matches!(
            overfit_gd(&DMatrix::from_element(1, 1, -1.0), &c, 4, 0.1, 3),
            Err(TaylorError::NotPositiveDefinite { .. })
        ));
        assert!(overfit_gd(&h, &DMatrix::zeros(2, 2), 4, 0.1, 3).is_err());
    }
}
