//! The training schedule of Tenka's analysis: `N` training points, batch size `B`, `T` updates, batches
//! drawn without replacement within each epoch. Epochs `E = TB/N`, updates per training point `M = T/N`.
use crate::error::{Result, TaylorError};

/// A validated `(N, B, T)` with `B | N` and `T` a whole number of epochs (a multiple of `N/B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    n: usize,
    b: usize,
    t: usize,
}

impl Schedule {
    /// Errors: `N = 0` or `B = 0` ([`TaylorError::InvalidParam`]), `B ∤ N`
    /// ([`TaylorError::BatchNotDivisor`]), `T` not a multiple of `N/B` ([`TaylorError::NotWholeEpochs`]).
    pub fn new(n: usize, b: usize, t: usize) -> Result<Self> {
        if n == 0 {
            return Err(TaylorError::InvalidParam {
                name: "N",
                value: 0.0,
                reason: "needs at least one point",
            });
        }
        if b == 0 {
            return Err(TaylorError::InvalidParam {
                name: "B",
                value: 0.0,
                reason: "batch size must be ≥ 1",
            });
        }
        if !n.is_multiple_of(b) {
            return Err(TaylorError::BatchNotDivisor { n, b });
        }
        let per_epoch = n / b;
        if !t.is_multiple_of(per_epoch) {
            return Err(TaylorError::NotWholeEpochs { t, n, b, per_epoch });
        }
        Ok(Schedule { n, b, t })
    }

    /// Full-batch GD (`B = N`) for `T` steps.
    pub fn gd(n: usize, t: usize) -> Result<Self> {
        Schedule::new(n, n, t)
    }

    /// `E` epochs of batch size `B`: `T = E·N/B`.
    pub fn epochs_of(n: usize, b: usize, epochs: usize) -> Result<Self> {
        if b == 0 || !n.is_multiple_of(b) {
            return Schedule::new(n, b, 0);
        }
        Schedule::new(n, b, epochs * (n / b))
    }

    /// Training points `N`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Batch size `B`.
    pub fn b(&self) -> usize {
        self.b
    }

    /// Updates `T`.
    pub fn t(&self) -> usize {
        self.t
    }

    /// Updates per epoch `N/B`.
    pub fn steps_per_epoch(&self) -> usize {
        self.n / self.b
    }

    /// Epochs `E = TB/N`.
    pub fn epochs(&self) -> usize {
        self.t / self.steps_per_epoch()
    }

    /// Updates per training point `M = T/N` (an integer only when `E` is a multiple of `B`).
    pub fn m(&self) -> f64 {
        self.t as f64 / self.n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_counts() {
        let s = Schedule::new(6, 2, 9).unwrap();
        assert_eq!((s.epochs(), s.steps_per_epoch()), (3, 3));
        assert!((s.m() - 1.5).abs() < 1e-15);
        assert_eq!(
            Schedule::new(6, 4, 3),
            Err(TaylorError::BatchNotDivisor { n: 6, b: 4 })
        );
        assert_eq!(
            Schedule::new(6, 2, 4),
            Err(TaylorError::NotWholeEpochs {
                t: 4,
                n: 6,
                b: 2,
                per_epoch: 3
            })
        );
        assert!(Schedule::new(0, 1, 0).is_err() && Schedule::new(3, 0, 3).is_err());
        assert_eq!(Schedule::epochs_of(3, 1, 2).unwrap().t(), 6);
        let msg = Schedule::new(6, 2, 4).unwrap_err().to_string();
        assert!(msg.contains("T = 4") && msg.contains("N/B = 6/2"), "{msg}");
    }
}
