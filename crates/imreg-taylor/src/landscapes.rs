//! The toy landscapes of `docs/theory/tenka.md`, each with hand-written derivatives up to third order.
use crate::error::{check_finite, check_len, check_positive, Result};
use crate::landscape::{DataDist, FiniteDist, Landscape};
use crate::tensor::Tensor3;
use nalgebra::{DMatrix, DVector};
use std::f64::consts::FRAC_PI_4;

/// The Rademacher toy (`docs/theory/tenka.md` §Reference values): `l_x(θ) = ½hθ² + x(θ + βθ²/2)`, `x = ±1`
/// with probability ½.
///
/// `l(θ) = ½hθ²`, `G = hθ`, `H = h`, `C(θ) = (1 + βθ)²`, `∇trC = 2β(1 + βθ)`, `J = 0`.
#[derive(Clone, Debug, PartialEq)]
pub struct RademacherToy {
    pub h: f64,
    pub beta: f64,
}

impl RademacherToy {
    /// Validates `h`, `β` finite.
    pub fn new(h: f64, beta: f64) -> Result<Self> {
        check_finite("h", h)?;
        check_finite("beta", beta)?;
        Ok(RademacherToy { h, beta })
    }

    /// The reference toy of the theory page: `h = 1`, `β = 0.5` (start it at `θ₀ = 1`).
    pub fn reference() -> Self {
        RademacherToy { h: 1.0, beta: 0.5 }
    }

    /// Its data distribution: Rademacher.
    pub fn distribution(&self) -> DataDist {
        DataDist::Finite(FiniteDist::rademacher())
    }
}

impl Landscape for RademacherToy {
    fn name(&self) -> String {
        format!("Rademacher toy ½·{}θ² + x(θ + {}θ²/2)", self.h, self.beta)
    }
    fn dim(&self) -> usize {
        1
    }
    fn data_dim(&self) -> usize {
        1
    }
    fn loss_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<f64> {
        let (x, t) = (x[0], theta[0]);
        Ok(0.5 * self.h * t * t + x * (t + 0.5 * self.beta * t * t))
    }
    fn grad_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DVector<f64>> {
        let (x, t) = (x[0], theta[0]);
        Ok(DVector::from_element(1, self.h * t + x * (1.0 + self.beta * t)))
    }
    fn hessian_unchecked(&self, x: &[f64], _theta: &[f64]) -> Result<DMatrix<f64>> {
        Ok(DMatrix::from_element(1, 1, self.h + x[0] * self.beta))
    }
    fn third_unchecked(&self, _x: &[f64], _theta: &[f64]) -> Result<Tensor3> {
        Ok(Tensor3::zeros(1))
    }
}

/// Tenka's Helix landscape (`docs/theory/tenka.md` §Valley drift): `θ = (u, v, z)`,
/// `l_x = ½H(θ) + x·S(θ)`, `H(θ) = u² + v² + (cos z·u + sin z·v)²`,
/// `S(θ) = cos(z − π/4)u + sin(z − π/4)v`, `x ~ N(0, 1)`. The valley `u = v = 0` is flat along `z`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Helix;

impl Helix {
    /// Its data distribution: `N(0, 1)`.
    pub fn distribution(&self) -> DataDist {
        DataDist::StandardNormal { dim: 1 }
    }
}

/// The pieces of the Helix formulas at `(u, v, z)`: `w = cu + sv`, `w' = ∂_z w = −su + cv`, and the
/// noise direction `(a, b) = (cos(z − π/4), sin(z − π/4))`.
struct HelixParts {
    u: f64,
    v: f64,
    c: f64,
    s: f64,
    w: f64,
    wp: f64,
    a: f64,
    b: f64,
}

fn helix_parts(theta: &[f64]) -> HelixParts {
    let (u, v, z) = (theta[0], theta[1], theta[2]);
    let (s, c) = z.sin_cos();
    let (b, a) = (z - FRAC_PI_4).sin_cos();
    HelixParts {
        u,
        v,
        c,
        s,
        w: c * u + s * v,
        wp: -s * u + c * v,
        a,
        b,
    }
}

impl Landscape for Helix {
    fn name(&self) -> String {
        "Helix ½(u² + v² + (cos z·u + sin z·v)²) + x(cos(z−π/4)u + sin(z−π/4)v)".into()
    }
    fn dim(&self) -> usize {
        3
    }
    fn data_dim(&self) -> usize {
        1
    }
    fn loss_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<f64> {
        let q = helix_parts(theta);
        Ok(0.5 * (q.u * q.u + q.v * q.v + q.w * q.w) + x[0] * (q.a * q.u + q.b * q.v))
    }
    fn grad_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DVector<f64>> {
        let (q, x) = (helix_parts(theta), x[0]);
        Ok(DVector::from_vec(vec![
            q.u + q.w * q.c + x * q.a,
            q.v + q.w * q.s + x * q.b,
            q.w * q.wp + x * (-q.b * q.u + q.a * q.v),
        ]))
    }
    fn hessian_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DMatrix<f64>> {
        let (q, x) = (helix_parts(theta), x[0]);
        let uz = q.wp * q.c - q.w * q.s - x * q.b;
        let vz = q.wp * q.s + q.w * q.c + x * q.a;
        let zz = q.wp * q.wp - q.w * q.w - x * (q.a * q.u + q.b * q.v);
        Ok(DMatrix::from_row_slice(
            3,
            3,
            &[
                1.0 + q.c * q.c,
                q.c * q.s,
                uz,
                q.c * q.s,
                1.0 + q.s * q.s,
                vz,
                uz,
                vz,
                zz,
            ],
        ))
    }
    fn third_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<Tensor3> {
        let (q, x) = (helix_parts(theta), x[0]);
        let mut t = Tensor3::zeros(3);
        t.set_sym(0, 0, 2, -2.0 * q.c * q.s);
        t.set_sym(0, 1, 2, q.c * q.c - q.s * q.s);
        t.set_sym(1, 1, 2, 2.0 * q.s * q.c);
        t.set_sym(0, 2, 2, -2.0 * q.w * q.c - 2.0 * q.wp * q.s - x * q.a);
        t.set_sym(1, 2, 2, 2.0 * q.wp * q.c - 2.0 * q.w * q.s - x * q.b);
        t.set_sym(2, 2, 2, -4.0 * q.w * q.wp + x * (q.b * q.u - q.a * q.v));
        Ok(t)
    }
}

/// Tenka's Gauss landscape (`docs/theory/tenka.md` §Skewness): `l_x(θ) = ½(θ + x²e^{−θ})`, `x ~ N(0, 1)`;
/// test minimum `θ = 0` with `G = 0`, `H = ½`, `J = −½`, `C = ½`, `S = −1`. Its gradient noise is skewed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GaussLandscape;

impl GaussLandscape {
    /// Its data distribution: `N(0, 1)`.
    pub fn distribution(&self) -> DataDist {
        DataDist::StandardNormal { dim: 1 }
    }
}

impl Landscape for GaussLandscape {
    fn name(&self) -> String {
        "Gauss ½(θ + x²e^{−θ})".into()
    }
    fn dim(&self) -> usize {
        1
    }
    fn data_dim(&self) -> usize {
        1
    }
    fn loss_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<f64> {
        Ok(0.5 * (theta[0] + x[0] * x[0] * (-theta[0]).exp()))
    }
    fn grad_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DVector<f64>> {
        Ok(DVector::from_element(
            1,
            0.5 * (1.0 - x[0] * x[0] * (-theta[0]).exp()),
        ))
    }
    fn hessian_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DMatrix<f64>> {
        Ok(DMatrix::from_element(1, 1, 0.5 * x[0] * x[0] * (-theta[0]).exp()))
    }
    fn third_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<Tensor3> {
        let mut t = Tensor3::zeros(1);
        t.set(0, 0, 0, -0.5 * x[0] * x[0] * (-theta[0]).exp());
        Ok(t)
    }
}

/// A quadratic with additive linear noise: `l_x(θ) = ½θᵀHθ + θᵀ(S x)`, `H` (`p × p`, symmetric),
/// `S` (`p × d`). Gradient `Hθ + Sx`; for `x ~ N(0, I_d)` or Rademacher coordinates, `C = S Sᵀ`.
/// Tenka's MeanEstimation landscape is the 1-D case `½Hθ² + xSθ` ([`QuadraticNoise::mean_estimation`]).
#[derive(Clone, Debug, PartialEq)]
pub struct QuadraticNoise {
    h: DMatrix<f64>,
    s: DMatrix<f64>,
}

impl QuadraticNoise {
    /// Validates shapes (`H` square, `S` with as many rows as `H`), finiteness and symmetry of `H`.
    pub fn new(h: DMatrix<f64>, s: DMatrix<f64>) -> Result<Self> {
        check_len("H columns", h.ncols(), h.nrows())?;
        check_len("S rows", s.nrows(), h.nrows())?;
        for v in h.iter().chain(s.iter()) {
            check_finite("H or S entry", *v)?;
        }
        let asym = (&h - h.transpose()).amax();
        if asym > 1e-12 * h.amax().max(1.0) {
            return Err(crate::error::TaylorError::InvalidParam {
                name: "H",
                value: asym,
                reason: "must be symmetric (largest |H − Hᵀ| entry given)",
            });
        }
        Ok(QuadraticNoise { h, s })
    }

    /// MeanEstimation: `l_x(θ) = ½Hθ² + xSθ` with `H, S > 0` (so `C = S²` for unit-variance `x`).
    pub fn mean_estimation(h: f64, s: f64) -> Result<Self> {
        check_positive("H", h)?;
        check_positive("S", s)?;
        QuadraticNoise::new(DMatrix::from_element(1, 1, h), DMatrix::from_element(1, 1, s))
    }

    pub fn h(&self) -> &DMatrix<f64> {
        &self.h
    }

    pub fn s(&self) -> &DMatrix<f64> {
        &self.s
    }

    /// `N(0, I_d)` data.
    pub fn gaussian_data(&self) -> DataDist {
        DataDist::StandardNormal { dim: self.s.ncols() }
    }
}

impl Landscape for QuadraticNoise {
    fn name(&self) -> String {
        format!(
            "quadratic ½θᵀHθ + θᵀSx (p = {}, d = {})",
            self.h.nrows(),
            self.s.ncols()
        )
    }
    fn dim(&self) -> usize {
        self.h.nrows()
    }
    fn data_dim(&self) -> usize {
        self.s.ncols()
    }
    fn loss_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<f64> {
        let t = DVector::from_column_slice(theta);
        let sx = &self.s * DVector::from_column_slice(x);
        Ok(0.5 * t.dot(&(&self.h * &t)) + t.dot(&sx))
    }
    fn grad_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DVector<f64>> {
        Ok(&self.h * DVector::from_column_slice(theta) + &self.s * DVector::from_column_slice(x))
    }
    fn hessian_unchecked(&self, _x: &[f64], _theta: &[f64]) -> Result<DMatrix<f64>> {
        Ok(self.h.clone())
    }
    fn third_unchecked(&self, _x: &[f64], _theta: &[f64]) -> Result<Tensor3> {
        Ok(Tensor3::zeros(self.h.nrows()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landscape::finite_difference_check;

    /// Central differences with r = 1e-4 have truncation error ≈ r²/6·|next derivative| ≈ 1e-8 and
    /// round-off ≈ 1e-16/r = 1e-12, so 1e-6 cannot be met by a wrong derivative of order one.
    const FD_TOL: f64 = 1e-6;

    fn assert_fd<L: Landscape>(l: &L, xs: &[Vec<f64>], thetas: &[Vec<f64>]) {
        for (i, x) in xs.iter().enumerate() {
            for (j, t) in thetas.iter().enumerate() {
                let rep = finite_difference_check(l, x, t, 1e-4, 6, (i * 31 + j) as u64).unwrap();
                assert!(
                    rep.grad < FD_TOL && rep.hessian < FD_TOL && rep.third < FD_TOL,
                    "{}: {rep:?}",
                    l.name()
                );
                assert!(rep.asymmetry < 1e-14, "{}: {rep:?}", l.name());
            }
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let xs = vec![vec![-1.3], vec![0.4], vec![2.1]];
        assert_fd(
            &RademacherToy::new(0.7, -0.3).unwrap(),
            &xs,
            &[vec![0.9], vec![-2.0]],
        );
        assert_fd(&GaussLandscape, &xs, &[vec![0.0], vec![0.8], vec![-0.5]]);
        assert_fd(
            &Helix,
            &xs,
            &[vec![0.3, -0.7, 1.1], vec![-1.2, 0.5, -2.4], vec![0.0, 0.0, 0.6]],
        );
        let q = QuadraticNoise::new(
            DMatrix::from_row_slice(2, 2, &[2.0, 0.3, 0.3, 0.5]),
            DMatrix::from_row_slice(2, 3, &[1.0, 0.0, 0.5, -0.2, 0.7, 0.1]),
        )
        .unwrap();
        assert_fd(&q, &[vec![0.3, -1.0, 2.0]], &[vec![0.4, -0.6]]);
    }

    #[test]
    fn helix_closed_forms_on_the_valley() {
        // At u = v = 0 the Hessian of ½H is I + nnᵀ with n = (cos z, sin z), and ∂_z of it is nn⊥ᵀ + n⊥nᵀ.
        let z = 0.37;
        let h = Helix.hessian(&[0.0], &[0.0, 0.0, z]).unwrap();
        let (s, c) = z.sin_cos();
        assert!((h[(0, 0)] - (1.0 + c * c)).abs() < 1e-15 && (h[(0, 1)] - c * s).abs() < 1e-15);
        assert!(h[(2, 2)].abs() < 1e-15);
        let t = Helix.third(&[0.0], &[0.0, 0.0, z]).unwrap();
        assert!((t.get(0, 1, 2).unwrap() - (c * c - s * s)).abs() < 1e-15);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        use crate::error::TaylorError;
        assert!(matches!(
            Helix.loss(&[0.0], &[0.0, 0.0]),
            Err(TaylorError::Length { name: "theta", .. })
        ));
        assert!(matches!(
            GaussLandscape.grad(&[0.0, 1.0], &[0.0]),
            Err(TaylorError::Length { name: "x", .. })
        ));
        assert!(QuadraticNoise::mean_estimation(-1.0, 1.0).is_err());
        assert!(QuadraticNoise::new(
            DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 0.0, 1.0]),
            DMatrix::zeros(2, 1)
        )
        .is_err());
        assert!(RademacherToy::new(f64::NAN, 0.0).is_err());
    }
}
