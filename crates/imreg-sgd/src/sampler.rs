//! Which examples each step of a training run uses: the full batch, i.i.d. draws with replacement, random
//! reshuffling (epochs of a permutation cut into batches) or a fixed partition visited cyclically.
//!
//! A sampler is a pure description; the batch stream it produces is seeded by one ChaCha stream
//! ([`crate::train::Seeds::sampler`]), so a run's batches are a function of the seed only.
//!
//! Random reshuffling comes in three seeding conventions ([`EpochOrder`]); they produce different (equally
//! valid) batch orders and exist so that each of our studies keeps the stream it was published with.
use crate::error::{Result, SgdError};
use imreg_objective::rng::{self, ChaCha8Rng};
use imreg_objective::Batch;
use imreg_objective::{Partition, Remainder};
use rand::seq::SliceRandom;
use rand::Rng;

/// How random reshuffling draws the permutation of each epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EpochOrder {
    /// Every epoch shuffles `0..N` afresh with the sampler's stream.
    #[default]
    Fresh,
    /// Epoch `e` shuffles `0..N` with its own stream `rng::stream(seed, stream + e)`.
    StreamPerEpoch,
    /// Every epoch shuffles the previous epoch's order again with the sampler's stream (a persistent
    /// index list reshuffled in place, as a torch `DataLoader(shuffle=True)` with one generator does).
    Continued,
}

/// Which examples each step uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Sampler {
    /// Full batch (GD): `B_t = {1, …, N}`, evaluated as [`Batch::Full`].
    #[default]
    Full,
    /// Each step draws `batch_size` examples uniformly **with replacement** (i.i.d. indices).
    WithReplacement { batch_size: usize },
    /// Random reshuffling: each epoch a seeded permutation of `0..N` cut into consecutive batches of
    /// `batch_size`, the remainder handled by `remainder`; `order` says how the permutations are drawn.
    RandomReshuffling {
        batch_size: usize,
        remainder: Remainder,
        order: EpochOrder,
    },
    /// A fixed partition, its batches visited in the given order every epoch (cyclic).
    FixedPartition { partition: Partition },
}

impl Sampler {
    /// Random reshuffling with fresh permutations ([`EpochOrder::Fresh`]).
    pub fn reshuffling(batch_size: usize, remainder: Remainder) -> Self {
        Sampler::RandomReshuffling {
            batch_size,
            remainder,
            order: EpochOrder::Fresh,
        }
    }

    /// Steps per epoch on `n` examples: 1 for the full batch, `⌈N/b⌉` draws with replacement, the number of
    /// batches of a reshuffled epoch or of the partition.
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        match self {
            Sampler::Full => 1,
            Sampler::WithReplacement { batch_size } => n.div_ceil((*batch_size).max(1)),
            Sampler::RandomReshuffling {
                batch_size,
                remainder,
                ..
            } => match remainder {
                Remainder::Drop => n / (*batch_size).max(1),
                _ => n.div_ceil((*batch_size).max(1)),
            }
            .max(1),
            Sampler::FixedPartition { partition } => partition.m(),
        }
    }
}

/// The seeded stream of batches of a [`Sampler`].
pub(crate) struct BatchStream<'s> {
    sampler: &'s Sampler,
    n: usize,
    rng: ChaCha8Rng,
    seed: u64,
    stream: u64,
    epoch: u64,
    order: Vec<usize>,
    epoch_batches: Vec<Vec<usize>>,
    pos: usize,
    buf: Vec<usize>,
}

impl<'s> BatchStream<'s> {
    /// Validates the sampler against `n` examples; randomness from `rng::stream(seed, stream)`.
    pub(crate) fn new(sampler: &'s Sampler, n: usize, seed: u64, stream: u64) -> Result<Self> {
        match sampler {
            Sampler::Full => {}
            Sampler::WithReplacement { batch_size } => {
                if *batch_size == 0 {
                    return Err(SgdError::invalid("batch_size", "must be ≥ 1"));
                }
            }
            Sampler::RandomReshuffling {
                batch_size,
                remainder,
                ..
            } => {
                Partition::consecutive(n, *batch_size, *remainder)?;
            }
            Sampler::FixedPartition { partition } => {
                if let Some(reason) = partition.mismatch(n) {
                    return Err(SgdError::invalid("partition", reason));
                }
            }
        }
        Ok(BatchStream {
            sampler,
            n,
            rng: rng::stream(seed, stream),
            seed,
            stream,
            epoch: 0,
            order: (0..n).collect(),
            epoch_batches: Vec::new(),
            pos: 0,
            buf: Vec::new(),
        })
    }

    /// The batch of the next step.
    pub(crate) fn next_batch(&mut self) -> Result<Batch<'_>> {
        match self.sampler {
            Sampler::Full => Ok(Batch::Full),
            Sampler::WithReplacement { batch_size } => {
                self.buf.clear();
                for _ in 0..*batch_size {
                    self.buf.push(self.rng.random_range(0..self.n));
                }
                Ok(Batch::Indices(&self.buf))
            }
            Sampler::RandomReshuffling {
                batch_size,
                remainder,
                order,
            } => {
                if self.pos == self.epoch_batches.len() {
                    match order {
                        EpochOrder::Fresh => {
                            self.order = (0..self.n).collect();
                            self.order.shuffle(&mut self.rng);
                        }
                        EpochOrder::StreamPerEpoch => {
                            self.order = (0..self.n).collect();
                            let s = self.stream.wrapping_add(self.epoch);
                            self.order.shuffle(&mut rng::stream(self.seed, s));
                        }
                        EpochOrder::Continued => self.order.shuffle(&mut self.rng),
                    }
                    self.epoch += 1;
                    self.epoch_batches = Partition::from_order(&self.order, self.n, *batch_size, *remainder)?
                        .batches()
                        .to_vec();
                    self.pos = 0;
                }
                self.pos += 1;
                Ok(Batch::Indices(&self.epoch_batches[self.pos - 1]))
            }
            Sampler::FixedPartition { partition } => {
                let b = &partition.batches()[self.pos % partition.m()];
                self.pos += 1;
                Ok(Batch::Indices(b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(sampler: &Sampler, n: usize, steps: usize) -> Vec<Vec<usize>> {
        let mut s = BatchStream::new(sampler, n, 7, 0).unwrap();
        (0..steps)
            .map(|_| s.next_batch().unwrap().iter(n).collect())
            .collect()
    }

    /// Every reshuffled epoch covers the kept examples exactly once; the three epoch orders differ; the
    /// per-epoch stream is `rng::stream(seed, e)` shuffling the identity.
    #[test]
    fn reshuffled_epochs_are_permutations_in_each_convention() {
        let n = 10;
        let mut seen = Vec::new();
        for order in [
            EpochOrder::Fresh,
            EpochOrder::StreamPerEpoch,
            EpochOrder::Continued,
        ] {
            let s = Sampler::RandomReshuffling {
                batch_size: 3,
                remainder: Remainder::Drop,
                order,
            };
            assert_eq!(s.steps_per_epoch(n), 3);
            let b = epochs(&s, n, 6);
            for epoch in b.chunks(3) {
                let mut all: Vec<usize> = epoch.concat();
                assert_eq!(all.len(), 9);
                all.sort_unstable();
                all.dedup();
                assert_eq!(all.len(), 9);
            }
            seen.push(b);
        }
        assert_ne!(seen[0], seen[1]);
        assert_ne!(seen[0], seen[2]);
        let mut e1: Vec<usize> = (0..n).collect();
        e1.shuffle(&mut rng::stream(7, 1));
        assert_eq!(seen[1][3..6].concat(), e1[..9]);
    }
}
