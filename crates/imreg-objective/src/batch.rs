//! Batches are index sets into the dataset.
use crate::error::{ObjectiveError, Result};

/// Which examples a loss, gradient or HVP averages over.
#[derive(Clone, Copy, Debug)]
pub enum Batch<'a> {
    /// All `N` examples, in order.
    Full,
    /// These examples (repetitions allowed: a with-replacement batch counts an index twice).
    Indices(&'a [usize]),
}

impl<'a> Batch<'a> {
    /// Number of examples in the batch, for a dataset of `n` examples.
    pub fn len(&self, n: usize) -> usize {
        match self {
            Batch::Full => n,
            Batch::Indices(ix) => ix.len(),
        }
    }

    /// `true` if the batch holds no example.
    pub fn is_empty(&self, n: usize) -> bool {
        self.len(n) == 0
    }

    /// The `k`-th example index of the batch.
    #[inline]
    pub fn index(&self, k: usize) -> usize {
        match self {
            Batch::Full => k,
            Batch::Indices(ix) => ix[k],
        }
    }

    /// Iterates over the example indices.
    pub fn iter(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.len(n)).map(move |k| self.index(k))
    }

    /// Errors on an empty batch or an index `≥ n`.
    pub fn validate(&self, n: usize) -> Result<()> {
        if self.is_empty(n) {
            return Err(ObjectiveError::EmptyBatch);
        }
        if let Batch::Indices(ix) = self {
            if let Some(&index) = ix.iter().find(|&&i| i >= n) {
                return Err(ObjectiveError::IndexOutOfRange { index, n });
            }
        }
        Ok(())
    }

    /// The sub-batch of positions `start..end` of this batch, as owned indices.
    pub fn slice(&self, start: usize, end: usize) -> Vec<usize> {
        (start..end).map(|k| self.index(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_indices_agree() {
        let ix = [0, 1, 2];
        assert_eq!(
            Batch::Full.iter(3).collect::<Vec<_>>(),
            Batch::Indices(&ix).iter(3).collect::<Vec<_>>()
        );
        assert_eq!(Batch::Full.len(3), 3);
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(Batch::Indices(&[]).validate(3), Err(ObjectiveError::EmptyBatch));
        assert_eq!(
            Batch::Indices(&[0, 5]).validate(3),
            Err(ObjectiveError::IndexOutOfRange { index: 5, n: 3 })
        );
        assert!(Batch::Full.validate(0).is_err());
    }
}
