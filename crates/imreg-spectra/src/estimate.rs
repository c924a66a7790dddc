//! Values that say whether they are exact or estimated.
//!
//! A quantity defined as an average `μ = (1/T) Σ_{t=1}^{T} x_t` over a finite set of `T` terms (all `C(N, b)`
//! batches, all `p` unit vectors) is **exact** when every term is evaluated, and a **Monte Carlo** estimate
//! `μ̂ = (1/n) Σ_{k=1}^{n} x_{t_k}` when `n` terms `t_k` are drawn independently and uniformly (or, for traces,
//! when `x_k = z_kᵀAz_k` for random probes `z_k` with `E zzᵀ = I`). The standard error of a Monte Carlo
//! mean is `SE = s/√n` with the sample variance `s² = Σ_k (x_k − μ̂)²/(n − 1)`; by the central limit theorem
//! `(μ̂ − μ)/SE` is approximately standard normal, so `μ` lies within `3 SE` of `μ̂` in about 99.7 % of runs.
//! A Monte Carlo loop that stops once `SE/|μ̂|` falls below a tolerance reports whether that happened.

/// How an [`Estimate`] was computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Estimator {
    /// Exact: every one of the `terms` terms of the average was evaluated (its only error is rounding).
    Exact {
        /// Number of terms evaluated (`C(N, b)` batches, `p` unit vectors, …).
        terms: u64,
    },
    /// Monte Carlo over `samples` independent random draws.
    MonteCarlo {
        /// Number of draws (batches, probes) the value averages.
        samples: usize,
        /// `Some(true)` if the stop rule on the relative standard error was met, `Some(false)` if the sample
        /// budget ran out first, `None` for a fixed sample count (no stop rule).
        converged: Option<bool>,
    },
}

/// A value with its standard error and how it was computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The value (the exact average, or the Monte Carlo estimate).
    pub value: f64,
    /// Its standard error (`0` when exact).
    pub std_error: f64,
    /// Exact or Monte Carlo, with the number of terms or samples.
    pub estimator: Estimator,
}

impl Estimate {
    /// An exact value over `terms` terms.
    pub fn exact(value: f64, terms: u64) -> Self {
        Estimate {
            value,
            std_error: 0.0,
            estimator: Estimator::Exact { terms },
        }
    }

    /// `true` if every term was evaluated.
    pub fn is_exact(&self) -> bool {
        matches!(self.estimator, Estimator::Exact { .. })
    }

    /// Terms evaluated (exact) or samples drawn (Monte Carlo).
    pub fn samples(&self) -> u64 {
        match self.estimator {
            Estimator::Exact { terms } => terms,
            Estimator::MonteCarlo { samples, .. } => samples as u64,
        }
    }

    /// `false` only for a Monte Carlo estimate whose stop rule was not met.
    pub fn converged(&self) -> bool {
        !matches!(
            self.estimator,
            Estimator::MonteCarlo {
                converged: Some(false),
                ..
            }
        )
    }

    /// `SE / |value|` (`0` when exact).
    pub fn rel_std_error(&self) -> f64 {
        if self.is_exact() {
            0.0
        } else {
            self.std_error / self.value.abs()
        }
    }
}

/// Mean and standard error `s/√n` of the samples (`SE = ∞` for fewer than 2 samples).
pub(crate) fn mean_se(samples: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let (n, sum) = samples.clone().fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    let mean = sum / n as f64;
    if n < 2 {
        return (mean, f64::INFINITY);
    }
    let var = samples.map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, (var / n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_standard_error_of_known_samples() {
        // 1, 2, 3, 4: mean 2.5, s² = 5/3, SE = √(5/12).
        let (m, se) = mean_se([1.0, 2.0, 3.0, 4.0].into_iter());
        assert_eq!(m, 2.5);
        assert!((se - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
        assert_eq!(mean_se([3.0].into_iter()).1, f64::INFINITY);
    }

    #[test]
    fn estimate_reports_itself() {
        let e = Estimate::exact(2.0, 10);
        assert!(e.is_exact() && e.converged() && e.samples() == 10 && e.rel_std_error() == 0.0);
        let mc = Estimate {
            value: -4.0,
            std_error: 0.5,
            estimator: Estimator::MonteCarlo {
                samples: 7,
                converged: Some(false),
            },
        };
        assert!(!mc.is_exact() && !mc.converged() && mc.samples() == 7 && mc.rel_std_error() == 0.125);
        let fixed = Estimate {
            estimator: Estimator::MonteCarlo {
                samples: 7,
                converged: None,
            },
            ..mc
        };
        assert!(fixed.converged());
    }
}
