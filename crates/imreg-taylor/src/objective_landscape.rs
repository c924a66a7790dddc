//! A finite dataset as a [`Landscape`]: any [`imreg_objective::Objective`] with `N` examples, the "data"
//! `x = [i]` being the example index, so `l_x = ℓ_i`. With [`ExampleLandscape::empirical`] (uniform over the
//! `N` examples) the population tensors are the exact dataset moments, and the exact engine resamples
//! training sets from the dataset.
use crate::error::{Result, TaylorError};
use crate::landscape::{FiniteDist, Landscape};
use crate::tensor::Tensor3;
use imreg_objective::{Batch, Objective, ObjectiveError};
use nalgebra::{DMatrix, DVector};

/// Adapter from an [`Objective`] to a [`Landscape`] over example indices.
#[derive(Clone, Debug)]
pub struct ExampleLandscape<O> {
    objective: O,
}

impl From<ObjectiveError> for TaylorError {
    fn from(err: ObjectiveError) -> Self {
        TaylorError::Objective {
            message: err.to_string(),
        }
    }
}

impl<O: Objective> ExampleLandscape<O> {
    pub fn new(objective: O) -> Self {
        ExampleLandscape { objective }
    }

    pub fn objective(&self) -> &O {
        &self.objective
    }

    /// The empirical distribution: example `i` with probability `1/N`.
    pub fn empirical(&self) -> Result<FiniteDist> {
        FiniteDist::uniform((0..self.objective.n_examples()).map(|i| vec![i as f64]).collect())
    }

    /// The example index `x[0]` (`x` of checked length 1), an integer in `0..N`.
    fn index(&self, x: &[f64]) -> Result<usize> {
        let v = x[0];
        let n = self.objective.n_examples();
        if !(v >= 0.0 && v.fract() == 0.0 && v < n as f64) {
            return Err(TaylorError::InvalidParam {
                name: "x (example index)",
                value: v,
                reason: "must be an integer in 0..N",
            });
        }
        Ok(v as usize)
    }
}

impl<O: Objective> Landscape for ExampleLandscape<O> {
    fn name(&self) -> String {
        format!("examples of {}", self.objective.name())
    }
    fn dim(&self) -> usize {
        self.objective.dim()
    }
    fn data_dim(&self) -> usize {
        1
    }
    fn loss_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<f64> {
        let i = self.index(x)?;
        Ok(self.objective.loss(theta, Batch::Indices(&[i]))?)
    }
    fn grad_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DVector<f64>> {
        let i = self.index(x)?;
        Ok(DVector::from_vec(
            self.objective.grad(theta, Batch::Indices(&[i]))?,
        ))
    }
    fn hessian_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<DMatrix<f64>> {
        let i = self.index(x)?;
        Ok(self.objective.dense_hessian(theta, Batch::Indices(&[i]))?)
    }
    /// Assembled from `p²` third-order directional derivatives `T[e_j, e_k]`, then symmetrized.
    fn third_unchecked(&self, x: &[f64], theta: &[f64]) -> Result<Tensor3> {
        let i = self.index(x)?;
        let p = self.dim();
        let mut t = Tensor3::zeros(p);
        let (mut u, mut v, mut out) = (vec![0.0; p], vec![0.0; p], vec![0.0; p]);
        for j in 0..p {
            u[j] = 1.0;
            for k in 0..p {
                v[k] = 1.0;
                self.objective
                    .third_order(theta, Batch::Indices(&[i]), &u, &v, &mut out)?;
                v[k] = 0.0;
                for (a, val) in out.iter().enumerate() {
                    t.set(a, j, k, *val);
                }
            }
            u[j] = 0.0;
        }
        let mut sym = Tensor3::zeros(p);
        for a in 0..p {
            for b in 0..p {
                for c in 0..p {
                    let perms = [(a, b, c), (a, c, b), (b, a, c), (b, c, a), (c, a, b), (c, b, a)];
                    let s: f64 = perms.iter().map(|&(i, j, k)| t.get(i, j, k).unwrap_or(0.0)).sum();
                    sym.set(a, b, c, s / 6.0);
                }
            }
        }
        Ok(sym)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landscape::{finite_difference_check, DataDist, Integration};
    use crate::tensors::population_tensors;
    use imreg_objective::ScalarNet;

    fn net() -> ExampleLandscape<ScalarNet> {
        ExampleLandscape::new(
            ScalarNet::from_data(2, vec![0.5, -1.0, 1.5, 0.8], vec![0.3, -0.7, 1.2, 0.1]).unwrap(),
        )
    }

    #[test]
    fn derivatives_and_tensors_match_the_objective() {
        let l = net();
        let theta = [0.4, -0.3, 0.9, 0.2];
        for i in 0..4 {
            let rep = finite_difference_check(&l, &[i as f64], &theta, 1e-4, 5, i).unwrap();
            assert!(
                rep.grad < 1e-6 && rep.hessian < 1e-6 && rep.third < 1e-6,
                "{rep:?}"
            );
        }
        let dist = DataDist::Finite(l.empirical().unwrap());
        let t = population_tensors(&l, &dist, Integration::Exact, &theta).unwrap();
        let g_full = l.objective().grad(&theta, Batch::Full).unwrap();
        let h_full = l.objective().dense_hessian(&theta, Batch::Full).unwrap();
        assert!((t.g - DVector::from_vec(g_full)).amax() < 1e-14);
        assert!((t.h - h_full).amax() < 1e-13);
        // ∇trC against central differences of trC(θ).
        let r = 1e-5;
        for k in 0..4 {
            let mut tp = theta;
            let mut tm = theta;
            tp[k] += r;
            tm[k] -= r;
            let trc = |th: &[f64]| {
                population_tensors(&l, &dist, Integration::Exact, th)
                    .unwrap()
                    .tr_c()
            };
            let fd = (trc(&tp) - trc(&tm)) / (2.0 * r);
            assert!((fd - t.grad_tr_c[k]).abs() < 1e-7, "{fd} vs {}", t.grad_tr_c[k]);
        }
    }

    #[test]
    fn bad_index_is_a_typed_error() {
        let l = net();
        assert!(matches!(
            l.loss(&[4.0], &[0.0; 4]),
            Err(TaylorError::InvalidParam { .. })
        ));
        assert!(matches!(
            l.loss(&[0.5], &[0.0; 4]),
            Err(TaylorError::InvalidParam { .. })
        ));
        assert!(matches!(
            l.loss(&[0.0], &[0.0; 2]),
            Err(TaylorError::Length { .. })
        ));
    }
}
