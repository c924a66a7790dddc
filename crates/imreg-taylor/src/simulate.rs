//! Trajectories of SGD on a [`Landscape`]: the shared update, seeded Monte Carlo (online SGD drift, GD on
//! random training sets) and one-step expectations by quadrature (real vs Gaussian gradient noise).
use crate::error::{check_len, Result, TaylorError};
use crate::landscape::{DataDist, Integration, Landscape, Measure};
use crate::quadrature::gauss_hermite_product;
use crate::tensors::PopulationTensors;
use imreg_objective::rng;
use nalgebra::{DVector, SymmetricEigen};
use rayon::prelude::*;

/// `θ ← θ − η · (1/|B|) Σ_{i∈B} ∇l_{x_i}(θ)` on the training points `data`. `step` labels a divergence.
pub(crate) fn sgd_step<L: Landscape + ?Sized>(
    landscape: &L,
    data: &[Vec<f64>],
    batch: &[usize],
    theta: &mut DVector<f64>,
    eta: f64,
    step: usize,
) -> Result<()> {
    let mut g = DVector::zeros(theta.len());
    for &i in batch {
        let x = data.get(i).ok_or(TaylorError::Length {
            name: "batch index",
            expected: data.len(),
            got: i,
        })?;
        let gx = landscape.grad(x, theta.as_slice())?;
        check_len("gradient returned by the landscape", gx.len(), theta.len())?;
        g += gx;
    }
    theta.axpy(-eta / batch.len().max(1) as f64, &g, 1.0);
    if let Some(bad) = theta.iter().find(|v| !v.is_finite()) {
        return Err(TaylorError::Diverged {
            step,
            what: "theta",
            value: *bad,
        });
    }
    Ok(())
}

/// A Monte Carlo mean with its standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanSe {
    pub mean: f64,
    /// Standard error of the mean, `sd/√n`.
    pub se: f64,
    pub samples: usize,
}

impl MeanSe {
    /// Two-pass mean and standard error, summed in the order given (deterministic).
    pub fn of(values: &[f64]) -> MeanSe {
        let n = values.len();
        if n == 0 {
            return MeanSe {
                mean: f64::NAN,
                se: f64::NAN,
                samples: 0,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        MeanSe {
            mean,
            se: (var / n as f64).sqrt(),
            samples: n,
        }
    }
}

/// Options of [`online_sgd_drift`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriftParams {
    /// Learning rate `η`.
    pub eta: f64,
    /// Steps discarded before measuring (relaxation into the valley's stationary state).
    pub burn_in: usize,
    /// Steps measured.
    pub steps: usize,
    /// Independent runs (≥ 2, for a standard error).
    pub trials: usize,
    /// Master seed; trial `k` uses stream `k`.
    pub seed: u64,
}

impl Default for DriftParams {
    fn default() -> Self {
        DriftParams {
            eta: 0.02,
            burn_in: 500,
            steps: 10_000,
            trials: 100,
            seed: 0,
        }
    }
}

/// Online SGD (a fresh `x ~ D` each step, `B = 1`, i.e. `N = ∞`) from `θ₀`: after `burn_in` steps, the
/// displacement per step over the next `steps` steps, `(θ_{burn_in+steps} − θ_{burn_in})/steps`, averaged
/// over `trials` seeded runs (trial `k` uses stream `k` of `seed`; rayon over trials, collected in trial
/// order, so the result does not depend on the thread count). One [`MeanSe`] per coordinate.
pub fn online_sgd_drift<L: Landscape + ?Sized>(
    landscape: &L,
    dist: &DataDist,
    theta0: &[f64],
    params: &DriftParams,
) -> Result<Vec<MeanSe>> {
    let DriftParams {
        eta,
        burn_in,
        steps,
        trials,
        seed,
    } = *params;
    let p = landscape.dim();
    check_len("theta0", theta0.len(), p)?;
    check_len(
        "x dimension of the distribution",
        dist.data_dim(),
        landscape.data_dim(),
    )?;
    if steps == 0 || trials < 2 {
        return Err(TaylorError::InvalidParam {
            name: if steps == 0 { "steps" } else { "trials" },
            value: if steps == 0 { 0.0 } else { trials as f64 },
            reason: "need steps ≥ 1 and trials ≥ 2 for a standard error",
        });
    }
    let per_trial: Vec<Vec<f64>> = (0..trials)
        .into_par_iter()
        .map(|k| {
            let mut r = rng::stream(seed, k as u64);
            let mut theta = DVector::from_column_slice(theta0);
            let mut start = theta.clone();
            let mut x = vec![Vec::new()];
            for s in 0..burn_in + steps {
                if s == burn_in {
                    start = theta.clone();
                }
                x[0] = dist.sample(&mut r);
                sgd_step(landscape, &x, &[0], &mut theta, eta, s)?;
            }
            Ok(((theta - start) / steps as f64).as_slice().to_vec())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((0..p)
        .map(|i| MeanSe::of(&per_trial.iter().map(|v| v[i]).collect::<Vec<_>>()))
        .collect())
}

/// Options of [`gd_overfit_monte_carlo`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverfitMcParams {
    /// Training points `N`.
    pub n: usize,
    /// Learning rate `η`.
    pub eta: f64,
    /// GD steps `T`.
    pub steps: usize,
    /// Training sets drawn (≥ 2).
    pub trials: usize,
    /// Master seed; trial `k` uses stream `k`.
    pub seed: u64,
}

/// Monte Carlo overfitting of full-batch GD: per trial, draw `n` training points from `dist`, run `steps`
/// GD steps from `θ₀` and record the overfit `l(θ_T) − l(θ₀)` and the gap `l(θ_T) − l̂(θ_T)` (test minus
/// train), with the test loss `l` integrated by `test` (e.g. quadrature). Rayon over trials, in trial order.
pub fn gd_overfit_monte_carlo<L: Landscape + ?Sized>(
    landscape: &L,
    dist: &DataDist,
    test: &Measure,
    theta0: &[f64],
    params: &OverfitMcParams,
) -> Result<(MeanSe, MeanSe)> {
    let OverfitMcParams {
        n,
        eta,
        steps,
        trials,
        seed,
    } = *params;
    check_len("theta0", theta0.len(), landscape.dim())?;
    if n == 0 || trials < 2 {
        return Err(TaylorError::InvalidParam {
            name: if n == 0 { "N" } else { "trials" },
            value: if n == 0 { 0.0 } else { trials as f64 },
            reason: "need N ≥ 1 and trials ≥ 2",
        });
    }
    let l0 = test.loss(landscape, theta0)?;
    let all: Vec<usize> = (0..n).collect();
    let pairs: Vec<(f64, f64)> = (0..trials)
        .into_par_iter()
        .map(|k| {
            let mut r = rng::stream(seed, k as u64);
            let data: Vec<Vec<f64>> = (0..n).map(|_| dist.sample(&mut r)).collect();
            let mut theta = DVector::from_column_slice(theta0);
            for s in 0..steps {
                sgd_step(landscape, &data, &all, &mut theta, eta, s)?;
            }
            let test_loss = test.loss(landscape, theta.as_slice())?;
            let mut train = 0.0;
            for x in &data {
                train += landscape.loss(x, theta.as_slice())?;
            }
            Ok((test_loss - l0, test_loss - train / n as f64))
        })
        .collect::<Result<Vec<_>>>()?;
    let overfit: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let gap: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    Ok((MeanSe::of(&overfit), MeanSe::of(&gap)))
}

/// `E_x[l(θ₀ − η∇l_x(θ₀))]`: the expected test loss after one SGD step (`B = 1`), the step's `x` integrated
/// by `step` and the test loss by `test`.
pub fn one_step_sgd_test_loss<L: Landscape + ?Sized>(
    landscape: &L,
    step: &Measure,
    test: &Measure,
    theta0: &[f64],
    eta: f64,
) -> Result<f64> {
    check_len("theta0", theta0.len(), landscape.dim())?;
    let mut e = 0.0;
    for (x, w) in step.points.iter().zip(&step.weights) {
        let mut theta = DVector::from_column_slice(theta0);
        sgd_step(landscape, std::slice::from_ref(x), &[0], &mut theta, eta, 0)?;
        e += w * test.loss(landscape, theta.as_slice())?;
    }
    Ok(e)
}

/// `E_z[l(θ₀ − η(G + C^{1/2}z))]`, `z ~ N(0, I_p)`: one step of "Gaussian-noise SGD" with the same gradient
/// mean and covariance as the real noise (what an SDE/Gaussian model sees), `z` by `nodes`-point
/// Gauss–Hermite per dimension, the test loss by `test`.
pub fn one_step_gaussian_noise_test_loss<L: Landscape + ?Sized>(
    landscape: &L,
    tensors: &PopulationTensors,
    nodes: usize,
    test: &Measure,
    theta0: &[f64],
    eta: f64,
) -> Result<f64> {
    let p = landscape.dim();
    check_len("theta0", theta0.len(), p)?;
    check_len("G", tensors.check_shapes()?, p)?;
    let eig = SymmetricEigen::new(tensors.c.clone());
    let sqrt_c = &eig.eigenvectors
        * nalgebra::DMatrix::from_diagonal(&eig.eigenvalues.map(|v| v.max(0.0).sqrt()))
        * eig.eigenvectors.transpose();
    let (zs, ws) = gauss_hermite_product(nodes, p)?;
    let mut e = 0.0;
    for (z, w) in zs.iter().zip(&ws) {
        let noise = &sqrt_c * DVector::from_column_slice(z);
        let theta = DVector::from_column_slice(theta0) - eta * (&tensors.g + noise);
        e += w * test.loss(landscape, theta.as_slice())?;
    }
    Ok(e)
}

/// Convenience: the measure of `dist` for the test loss (exact when finite, else `nodes`-point quadrature).
pub fn test_measure(dist: &DataDist, nodes: usize) -> Result<Measure> {
    match dist {
        DataDist::Finite(_) => dist.measure(Integration::Exact),
        DataDist::StandardNormal { .. } => dist.measure(Integration::Quadrature { nodes }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landscapes::{Helix, QuadraticNoise};

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        imreg_objective::threads::on_threads(threads, f).unwrap()
    }

    #[test]
    fn monte_carlo_is_bitwise_deterministic_across_thread_counts() {
        let dist = Helix.distribution();
        let run = || {
            online_sgd_drift(
                &Helix,
                &dist,
                &[0.0; 3],
                &DriftParams {
                    eta: 0.05,
                    burn_in: 10,
                    steps: 200,
                    trials: 16,
                    seed: 3,
                },
            )
            .unwrap()
        };
        let (a, b) = (in_pool(1, run), in_pool(2, run));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (x.mean.to_bits(), x.se.to_bits()),
                (y.mean.to_bits(), y.se.to_bits())
            );
        }
        let me = QuadraticNoise::mean_estimation(0.3, 2.0).unwrap();
        let d = me.gaussian_data();
        let test = test_measure(&d, 4).unwrap();
        let run = || {
            gd_overfit_monte_carlo(
                &me,
                &d,
                &test,
                &[0.0],
                &OverfitMcParams {
                    n: 5,
                    eta: 0.1,
                    steps: 10,
                    trials: 64,
                    seed: 9,
                },
            )
            .unwrap()
        };
        let (a, b) = (in_pool(1, run), in_pool(2, run));
        assert_eq!(a.0.mean.to_bits(), b.0.mean.to_bits());
        assert_eq!(a.1.mean.to_bits(), b.1.mean.to_bits());
    }

    #[test]
    fn bad_arguments_are_typed_errors() {
        let dist = Helix.distribution();
        assert!(online_sgd_drift(&Helix, &dist, &[0.0; 2], &DriftParams::default()).is_err());
        assert!(online_sgd_drift(
            &Helix,
            &dist,
            &[0.0; 3],
            &DriftParams {
                steps: 0,
                ..DriftParams::default()
            }
        )
        .is_err());
        assert!(matches!(
            online_sgd_drift(
                &Helix,
                &dist,
                &[0.0; 3],
                &DriftParams {
                    eta: 1e3,
                    trials: 4,
                    ..DriftParams::default()
                }
            ),
            Err(TaylorError::Diverged { .. })
        ));
        assert!(MeanSe::of(&[]).mean.is_nan());
    }
}
