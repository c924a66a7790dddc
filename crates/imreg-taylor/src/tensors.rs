//! Population tensors of a distribution over per-example losses, evaluated at `θ₀` (`docs/theory/tenka.md`
//! §Setting):
//! `G = E[∇l_x]`, `H = E[∇∇l_x]`, `J = E[∇³l_x]`, `C = E[(∇l_x − G)^{⊗2}]`, `S = E[(∇l_x − G)^{⊗3}]`,
//! and `∇trC`.
use crate::error::{check_len, Result};
use crate::landscape::{DataDist, Integration, Landscape, Measure};
use crate::tensor::Tensor3;
use nalgebra::{DMatrix, DVector};

/// Tenka's tensors at `θ₀` (expectations over `x ~ D`).
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationTensors {
    /// `l(θ₀) = E[l_x(θ₀)]`, the testing loss.
    pub loss: f64,
    /// `G = E[∇l_x]`.
    pub g: DVector<f64>,
    /// `H = E[∇∇l_x]`.
    pub h: DMatrix<f64>,
    /// `J = E[∇³l_x]`.
    pub j: Tensor3,
    /// `C = E[(∇l_x − G)(∇l_x − G)ᵀ]`, the per-sample gradient covariance.
    pub c: DMatrix<f64>,
    /// `S = E[(∇l_x − G)^{⊗3}]`, the third central moment of the gradients.
    pub s: Tensor3,
    /// `∇trC(θ₀) = 2(E[∇∇l_x ∇l_x] − H G)`, exact from the per-example Hessians (no differencing).
    pub grad_tr_c: DVector<f64>,
}

impl PopulationTensors {
    /// Checks that all fields share the parameter dimension `p = G.len()` (they are public, so a caller may
    /// assemble them by hand) and returns `p`. Every prediction calls this first.
    pub fn check_shapes(&self) -> Result<usize> {
        let p = self.g.len();
        check_len("H rows", self.h.nrows(), p)?;
        check_len("H columns", self.h.ncols(), p)?;
        check_len("C rows", self.c.nrows(), p)?;
        check_len("C columns", self.c.ncols(), p)?;
        check_len("J side", self.j.dim(), p)?;
        check_len("S side", self.s.dim(), p)?;
        check_len("∇trC", self.grad_tr_c.len(), p)?;
        Ok(p)
    }

    /// `trC`.
    pub fn tr_c(&self) -> f64 {
        self.c.trace()
    }

    /// `‖G‖²`.
    pub fn g_sq(&self) -> f64 {
        self.g.norm_squared()
    }

    /// `∇‖G‖² = 2HG`.
    pub fn grad_g_sq(&self) -> DVector<f64> {
        2.0 * &self.h * &self.g
    }

    /// `∇E_x‖∇l_x‖² = ∇(trC + ‖G‖²)`.
    pub fn grad_second_moment(&self) -> DVector<f64> {
        &self.grad_tr_c + self.grad_g_sq()
    }

    /// `S·J = Σ_{μνλ} S_{μνλ}J_{μνλ}`.
    pub fn s_dot_j(&self) -> f64 {
        self.s.contract(&self.j)
    }
}

/// The tensors at `θ₀` under a weighted point set (exact support, quadrature, Monte Carlo). Two passes:
/// first the means (and `E[∇∇l_x ∇l_x]`), then the central moments around the computed `G`, each summed
/// in the fixed order of the points.
pub fn population_tensors_with<L: Landscape + ?Sized>(
    landscape: &L,
    measure: &Measure,
    theta0: &[f64],
) -> Result<PopulationTensors> {
    let p = landscape.dim();
    check_len("theta0", theta0.len(), p)?;
    let mut loss = 0.0;
    let mut g = DVector::zeros(p);
    let mut h = DMatrix::zeros(p, p);
    let mut j = Tensor3::zeros(p);
    let mut hg = DVector::zeros(p);
    let mut grads = Vec::with_capacity(measure.points.len());
    for (x, w) in measure.points.iter().zip(&measure.weights) {
        loss += w * landscape.loss(x, theta0)?;
        let gx = landscape.grad(x, theta0)?;
        let hx = landscape.hessian(x, theta0)?;
        let jx = landscape.third(x, theta0)?;
        check_len("gradient returned by the landscape", gx.len(), p)?;
        check_len("Hessian rows returned by the landscape", hx.nrows(), p)?;
        check_len("Hessian columns returned by the landscape", hx.ncols(), p)?;
        check_len("third-derivative side returned by the landscape", jx.dim(), p)?;
        g.axpy(*w, &gx, 1.0);
        h += *w * &hx;
        j.axpy(*w, &jx);
        hg.axpy(*w, &(&hx * &gx), 1.0);
        grads.push(gx);
    }
    let mut c = DMatrix::zeros(p, p);
    let mut s = Tensor3::zeros(p);
    for (gx, w) in grads.iter().zip(&measure.weights) {
        let d = gx - &g;
        c += *w * &d * d.transpose();
        s.axpy(*w, &Tensor3::outer3(&d));
    }
    let grad_tr_c = 2.0 * (hg - &h * &g);
    Ok(PopulationTensors {
        loss,
        g,
        h,
        j,
        c,
        s,
        grad_tr_c,
    })
}

/// The tensors at `θ₀` for `x ~ dist`, integrated as asked (`Exact` for finite supports, `Quadrature` for
/// Gaussian data, `MonteCarlo` for either).
pub fn population_tensors<L: Landscape + ?Sized>(
    landscape: &L,
    dist: &DataDist,
    how: Integration,
    theta0: &[f64],
) -> Result<PopulationTensors> {
    check_len(
        "x dimension of the distribution",
        dist.data_dim(),
        landscape.data_dim(),
    )?;
    population_tensors_with(landscape, &dist.measure(how)?, theta0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landscapes::{GaussLandscape, Helix, RademacherToy};

    #[test]
    fn rademacher_toy_closed_forms() {
        let toy = RademacherToy::reference();
        let t = population_tensors(&toy, &toy.distribution(), Integration::Exact, &[1.0]).unwrap();
        assert!(
            (t.loss - 0.5).abs() < 1e-15 && (t.g[0] - 1.0).abs() < 1e-15 && (t.h[(0, 0)] - 1.0).abs() < 1e-15
        );
        assert!((t.tr_c() - 2.25).abs() < 1e-15, "C = (1 + βθ)² = 2.25");
        assert!((t.grad_tr_c[0] - 1.5).abs() < 1e-15, "∇C = 2β(1 + βθ) = 1.5");
        // ∇trC against a central difference of trC(θ).
        let r = 1e-5;
        let trc = |th: f64| {
            population_tensors(&toy, &toy.distribution(), Integration::Exact, &[th])
                .unwrap()
                .tr_c()
        };
        let fd = (trc(1.0 + r) - trc(1.0 - r)) / (2.0 * r);
        assert!((fd - t.grad_tr_c[0]).abs() < 1e-8);
    }

    #[test]
    fn gauss_landscape_by_quadrature() {
        let t = population_tensors(
            &GaussLandscape,
            &GaussLandscape.distribution(),
            Integration::Quadrature { nodes: 20 },
            &[0.0],
        )
        .unwrap();
        // G = 0, H = ½, J = −½, C = ½, S = E[((1 − x²)/2)³] = (1 − 3 + 9 − 15)/8 = −1 (polynomial: exact).
        assert!(
            t.g[0].abs() < 1e-14 && (t.h[(0, 0)] - 0.5).abs() < 1e-14 && (t.c[(0, 0)] - 0.5).abs() < 1e-13
        );
        assert!(
            (t.j.get(0, 0, 0).unwrap() + 0.5).abs() < 1e-14
                && (t.s.get(0, 0, 0).unwrap() + 1.0).abs() < 1e-12
        );
        assert!((t.s_dot_j() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn monte_carlo_agrees_with_quadrature_within_se() {
        let q = population_tensors(
            &Helix,
            &Helix.distribution(),
            Integration::Quadrature { nodes: 10 },
            &[0.1, -0.2, 0.4],
        )
        .unwrap();
        let mc = population_tensors(
            &Helix,
            &Helix.distribution(),
            Integration::MonteCarlo {
                samples: 40_000,
                seed: 5,
            },
            &[0.1, -0.2, 0.4],
        )
        .unwrap();
        // C has entries O(1) and per-sample spread O(1): SE ≈ 1/√40000 = 0.005; allow 5 SE.
        assert!((&q.c - &mc.c).amax() < 0.025, "{} vs {}", q.c, mc.c);
        assert!((&q.g - &mc.g).amax() < 0.025);
    }

    #[test]
    fn exact_integration_of_gaussian_is_an_error() {
        let e = population_tensors(&Helix, &Helix.distribution(), Integration::Exact, &[0.0; 3]);
        assert!(matches!(e, Err(crate::error::TaylorError::NotFinite { .. })));
    }
}
