//! Partitions of the `N` examples into the `m` minibatches of one epoch.
use crate::error::{ObjectiveError, Result};

/// What to do when the batch size `B` does not divide `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remainder {
    /// Refuse: `B ∤ N` is a [`ObjectiveError::Invalid`] naming `batch_size`.
    Error,
    /// Drop the last `N mod B` examples of the (shuffled) order: `m = ⌊N/B⌋` equal batches (PyTorch's
    /// `drop_last=True`).
    Drop,
    /// Keep them as a smaller last batch: `m = ⌈N/B⌉` (PyTorch's default `drop_last=False`).
    SmallerLastBatch,
}

/// A partition of (a subset of) the examples `0..N` into disjoint, non-empty minibatches, in a fixed order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    batches: Vec<Vec<usize>>,
    n_examples: usize,
}

impl Partition {
    /// Consecutive blocks `{0..B}, {B..2B}, …` of `0..n`.
    pub fn consecutive(n: usize, batch_size: usize, remainder: Remainder) -> Result<Self> {
        let order: Vec<usize> = (0..n).collect();
        Self::from_order(&order, n, batch_size, remainder)
    }

    /// Cuts an ordering of the examples (e.g. a shuffled permutation of `0..n`) into consecutive batches of
    /// size `batch_size`, handling a remainder as `remainder` says.
    pub fn from_order(order: &[usize], n: usize, batch_size: usize, remainder: Remainder) -> Result<Self> {
        if batch_size == 0 || batch_size > order.len() {
            return Err(ObjectiveError::invalid(
                "batch_size",
                format!(
                    "must lie in 1..={} (the number of examples), got {batch_size}",
                    order.len()
                ),
            ));
        }
        let rem = order.len() % batch_size;
        let take = match (rem, remainder) {
            (0, _) | (_, Remainder::SmallerLastBatch) => order.len(),
            (_, Remainder::Drop) => order.len() - rem,
            (_, Remainder::Error) => {
                return Err(ObjectiveError::invalid(
                    "batch_size",
                    format!(
                        "B = {batch_size} does not divide N = {}; choose Remainder::Drop or Remainder::SmallerLastBatch",
                        order.len()
                    ),
                ))
            }
        };
        let batches = order[..take].chunks(batch_size).map(<[usize]>::to_vec).collect();
        Self::from_batches(batches, n)
    }

    /// An explicit partition; batches must be non-empty, disjoint and inside `0..n_examples`.
    pub fn from_batches(batches: Vec<Vec<usize>>, n_examples: usize) -> Result<Self> {
        if batches.is_empty() {
            return Err(ObjectiveError::invalid(
                "batches",
                "a partition needs at least one batch",
            ));
        }
        let mut seen = vec![false; n_examples];
        for (k, b) in batches.iter().enumerate() {
            if b.is_empty() {
                return Err(ObjectiveError::invalid("batches", format!("batch {k} is empty")));
            }
            for &i in b {
                if i >= n_examples {
                    return Err(ObjectiveError::invalid(
                        "batches",
                        format!("index {i} in batch {k} is ≥ N = {n_examples}"),
                    ));
                }
                if seen[i] {
                    return Err(ObjectiveError::invalid(
                        "batches",
                        format!("index {i} appears twice (batch {k})"),
                    ));
                }
                seen[i] = true;
            }
        }
        Ok(Partition { batches, n_examples })
    }

    /// The batches in their order.
    pub fn batches(&self) -> &[Vec<usize>] {
        &self.batches
    }
    /// Number of batches `m`.
    pub fn m(&self) -> usize {
        self.batches.len()
    }
    /// `N`, the size of the dataset the indices refer to.
    pub fn n_examples(&self) -> usize {
        self.n_examples
    }
    /// Why this partition cannot split a dataset of `n` examples (it was cut for another `N`), or `None`.
    pub fn mismatch(&self, n: usize) -> Option<String> {
        (self.n_examples != n).then(|| format!("refers to N = {}, the objective has {n}", self.n_examples))
    }
    /// `true` if every batch has the same size.
    pub fn is_equal_sized(&self) -> bool {
        self.batches.iter().all(|b| b.len() == self.batches[0].len())
    }
    /// The same batches in the order `order` (a permutation of `0..m`).
    pub fn reordered(&self, order: &[usize]) -> Result<Self> {
        let m = self.m();
        let mut seen = vec![false; m];
        if order.len() != m
            || order
                .iter()
                .any(|&k| k >= m || std::mem::replace(&mut seen[k], true))
        {
            return Err(ObjectiveError::invalid(
                "order",
                format!("must be a permutation of 0..{m}, got {order:?}"),
            ));
        }
        Ok(Partition {
            batches: order.iter().map(|&k| self.batches[k].clone()).collect(),
            n_examples: self.n_examples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remainder_choices() {
        assert!(matches!(
            Partition::consecutive(7, 2, Remainder::Error),
            Err(ObjectiveError::Invalid { field, .. }) if field == "batch_size"
        ));
        let d = Partition::consecutive(7, 2, Remainder::Drop).unwrap();
        assert_eq!(d.batches(), &[vec![0, 1], vec![2, 3], vec![4, 5]]);
        let s = Partition::consecutive(7, 2, Remainder::SmallerLastBatch).unwrap();
        assert_eq!(s.m(), 4);
        assert_eq!(s.batches()[3], vec![6]);
        assert!(!s.is_equal_sized());
        assert!(Partition::consecutive(6, 2, Remainder::Error)
            .unwrap()
            .is_equal_sized());
        assert!(Partition::consecutive(6, 0, Remainder::Drop).is_err());
        assert!(Partition::from_batches(vec![vec![0], vec![0]], 2).is_err());
        assert!(Partition::from_batches(vec![vec![0], vec![2]], 2).is_err());
        assert!(d.reordered(&[0, 0, 1]).is_err());
        assert_eq!(d.reordered(&[2, 0, 1]).unwrap().batches()[0], vec![4, 5]);
    }
}
