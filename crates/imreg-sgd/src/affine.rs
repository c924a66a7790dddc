//! Fast exact expectations for models whose minibatch gradients are **affine** in θ,
//! `ĝ_k(θ) = A_k θ − b_k` (linear regression, quadratics). One SGD step on batch `k` is the affine map
//! `θ ↦ M_k θ + c_k` with `M_k = I − ε A_k`, `c_k = ε b_k`, precomputed once.
//!
//! Two exact algorithms for the mean over all `m!` batch orders ([`AffineAlgorithm`]):
//! - `PrefixTree`: a depth-first walk over the permutation tree, each shared prefix computed once
//!   (`≈ e·m!` affine steps instead of `m·m!`), rayon-parallel over the fixed list of `m(m−1)` two-step
//!   prefixes, reduced in a fixed order (bitwise identical for any thread count);
//! - `SubsetDp`: because the maps are affine, the mean over orders of a set `S` of batches satisfies
//!   `V̄_S = (1/|S|) Σ_{k∈S} (M_k V̄_{S∖k} + c_k)` (the last batch `k` is uniform over `S` and, given it,
//!   the order of `S∖k` is uniform), an `O(2^m m d²)` dynamic program over subsets — exact, and it scales
//!   to `m ≈ 20`.
//!
//! Several epochs (independent reshuffles) compose the mean epoch map, computed on the augmented block
//! `[I | 0]` (`d × (d+1)`, last column affine), so both algorithms give exact multi-epoch means.
use crate::error::{check_len, check_lr, Result, SgdError};
use crate::expectation::{monte_carlo_chunks, ordered_sum, ExactMean, McEstimate, McOptions};
use imreg_flow::Partition;
use imreg_objective::{Batch, Objective};
use nalgebra::{DMatrix, DVector};
use rand::seq::SliceRandom;

/// Which exact algorithm averages over the `m!` orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffineAlgorithm {
    /// Enumerate every order with prefix sharing.
    PrefixTree,
    /// Dynamic program over subsets of batches.
    SubsetDp,
}

/// The per-batch affine step maps of one SGD epoch over a fixed partition.
#[derive(Clone, Debug)]
pub struct AffineEpoch {
    d: usize,
    m: usize,
    /// `M_k = I − ε A_k`, column-major `d × d`, concatenated over `k`.
    maps: Vec<f64>,
    /// `c_k = ε b_k`, concatenated.
    shifts: Vec<f64>,
}

impl AffineEpoch {
    /// From explicit `A_k` (`d × d`) and `b_k` with `ĝ_k(θ) = A_k θ − b_k`, for learning rate `lr`.
    pub fn from_parts(a: &[DMatrix<f64>], b: &[DVector<f64>], lr: f64) -> Result<Self> {
        check_lr("lr", lr)?;
        if a.is_empty() || a.len() != b.len() {
            return Err(SgdError::invalid(
                "a",
                format!("need one (A_k, b_k) per batch, got {} and {}", a.len(), b.len()),
            ));
        }
        if a.len() > 63 {
            return Err(SgdError::invalid(
                "a",
                format!("{} batches: at most 63 supported", a.len()),
            ));
        }
        let d = a[0].nrows();
        let mut maps = Vec::with_capacity(a.len() * d * d);
        let mut shifts = Vec::with_capacity(a.len() * d);
        for (k, (ak, bk)) in a.iter().zip(b).enumerate() {
            if ak.nrows() != d || ak.ncols() != d || bk.len() != d {
                return Err(SgdError::invalid(
                    "a",
                    format!(
                        "batch {k}: expected {d}×{d} and {d}, got {}×{} and {}",
                        ak.nrows(),
                        ak.ncols(),
                        bk.len()
                    ),
                ));
            }
            let mk = DMatrix::<f64>::identity(d, d) - ak * lr;
            maps.extend_from_slice(mk.as_slice());
            shifts.extend(bk.iter().map(|v| v * lr));
        }
        Ok(AffineEpoch {
            d,
            m: a.len(),
            maps,
            shifts,
        })
    }

    /// Extracts `A_k = Ĥ_k` and `b_k = A_k θ_p − ĝ_k(θ_p)` from any objective at a probe point, and verifies
    /// affinity at a second probe point (relative residual ≤ 1e-9, else [`SgdError::NotAffine`]).
    pub fn from_objective(obj: &dyn Objective, partition: &Partition, lr: f64) -> Result<Self> {
        let d = obj.dim();
        if partition.n_examples() != obj.n_examples() {
            return Err(SgdError::invalid(
                "partition",
                format!(
                    "refers to N = {}, the objective has {}",
                    partition.n_examples(),
                    obj.n_examples()
                ),
            ));
        }
        let mut rng = imreg_objective::rng::stream(0x5eed, 0);
        let p1 = DVector::from_vec(imreg_objective::rng::normal_vec(&mut rng, d));
        let p2 = DVector::from_vec(imreg_objective::rng::normal_vec(&mut rng, d));
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (k, batch) in partition.batches().iter().enumerate() {
            let ak = obj.dense_hessian(p1.as_slice(), Batch::Indices(batch))?;
            let g1 = DVector::from_vec(obj.grad(p1.as_slice(), Batch::Indices(batch))?);
            let bk = &ak * &p1 - g1;
            let g2 = DVector::from_vec(obj.grad(p2.as_slice(), Batch::Indices(batch))?);
            let pred = &ak * &p2 - &bk;
            let residual = (&g2 - &pred).amax() / (1.0 + g2.amax());
            if residual.is_nan() || residual > 1e-9 {
                return Err(SgdError::NotAffine { batch: k, residual });
            }
            a.push(ak);
            b.push(bk);
        }
        Self::from_parts(&a, &b, lr)
    }

    /// Number of batches `m`.
    pub fn m(&self) -> usize {
        self.m
    }

    /// `y = M_k x (+ c_k on the affine column)` for a `d × r` column-major block whose last column is
    /// affine (`r = 1`: a single iterate).
    #[inline]
    fn apply(&self, k: usize, x: &[f64], r: usize, y: &mut [f64]) {
        let d = self.d;
        let mk = &self.maps[k * d * d..(k + 1) * d * d];
        let ck = &self.shifts[k * d..(k + 1) * d];
        for col in 0..r {
            let xc = &x[col * d..(col + 1) * d];
            let yc = &mut y[col * d..(col + 1) * d];
            if col + 1 == r {
                yc.copy_from_slice(ck);
            } else {
                yc.iter_mut().for_each(|v| *v = 0.0);
            }
            for (j, &xj) in xc.iter().enumerate() {
                let mcol = &mk[j * d..(j + 1) * d];
                for (yi, mi) in yc.iter_mut().zip(mcol) {
                    *yi += mi * xj;
                }
            }
        }
    }

    /// `y = M_k x + c_k` for a single iterate (the hot loop of the Monte Carlo path).
    #[inline]
    fn apply_vec(&self, k: usize, x: &[f64], y: &mut [f64]) {
        let d = self.d;
        let mk = &self.maps[k * d * d..(k + 1) * d * d];
        y.copy_from_slice(&self.shifts[k * d..(k + 1) * d]);
        for (mcol, &xj) in mk.chunks_exact(d).zip(x) {
            for (yi, mi) in y.iter_mut().zip(mcol) {
                *yi += mi * xj;
            }
        }
    }

    /// Sum over all orders of the unused batches (`used` bit mask) of the final block, from block `x`.
    fn tree_sum(&self, x: &[f64], r: usize, used: u64, bufs: &mut [Vec<f64>], acc: &mut [f64]) {
        let remaining = self.m - used.count_ones() as usize;
        if remaining == 1 {
            let k = (!used).trailing_zeros() as usize;
            let (buf, _) = bufs.split_first_mut().expect("one buffer per level");
            self.apply(k, x, r, buf);
            for (a, v) in acc.iter_mut().zip(buf.iter()) {
                *a += v;
            }
            return;
        }
        let (buf, rest) = bufs.split_first_mut().expect("one buffer per level");
        for k in 0..self.m {
            if used & (1 << k) == 0 {
                self.apply(k, x, r, buf);
                self.tree_sum(buf, r, used | (1 << k), rest, acc);
            }
        }
    }

    /// Mean over all `m!` orders of the final block after one epoch from block `x0` (`d × r`).
    fn epoch_mean_block(&self, x0: &[f64], r: usize, algo: AffineAlgorithm) -> Vec<f64> {
        let len = self.d * r;
        match algo {
            AffineAlgorithm::PrefixTree => {
                if self.m == 1 {
                    let mut y = vec![0.0; len];
                    self.apply(0, x0, r, &mut y);
                    return y;
                }
                // Fixed task list: all two-step prefixes (k1, k2), k1 ≠ k2 (or one step if m = 2).
                let depth = if self.m >= 3 { 2 } else { 1 };
                let mut tasks: Vec<(u64, Vec<f64>)> = Vec::new();
                for k1 in 0..self.m {
                    let mut y1 = vec![0.0; len];
                    self.apply(k1, x0, r, &mut y1);
                    if depth == 1 {
                        tasks.push((1 << k1, y1));
                        continue;
                    }
                    for k2 in (0..self.m).filter(|&k| k != k1) {
                        let mut y2 = vec![0.0; len];
                        self.apply(k2, &y1, r, &mut y2);
                        tasks.push(((1 << k1) | (1 << k2), y2));
                    }
                }
                let (sum, _) = ordered_sum(&tasks, len, |(used, x), acc| {
                    let mut bufs: Vec<Vec<f64>> = (0..self.m).map(|_| vec![0.0; len]).collect();
                    self.tree_sum(x, r, *used, &mut bufs, acc);
                    Ok(0.0)
                })
                .expect("infallible");
                let count: f64 = (1..=self.m).map(|k| k as f64).product();
                sum.iter().map(|v| v / count).collect()
            }
            AffineAlgorithm::SubsetDp => {
                let n_sets = 1usize << self.m;
                let mut v = vec![0.0; n_sets * len];
                v[..len].copy_from_slice(x0);
                let mut tmp = vec![0.0; len];
                for s in 1..n_sets {
                    let size = s.count_ones() as f64;
                    let (done, cur) = v.split_at_mut(s * len);
                    let cur = &mut cur[..len];
                    for k in 0..self.m {
                        if s & (1 << k) != 0 {
                            let prev = s & !(1 << k);
                            self.apply(k, &done[prev * len..(prev + 1) * len], r, &mut tmp);
                            for (c, t) in cur.iter_mut().zip(&tmp) {
                                *c += t / size;
                            }
                        }
                    }
                }
                v[(n_sets - 1) * len..].to_vec()
            }
        }
    }

    /// Exact `E[θ]` after `epochs` epochs over all `m!` orders per epoch (independent across epochs).
    pub fn mean_over_orders(
        &self,
        theta0: &[f64],
        epochs: usize,
        algo: AffineAlgorithm,
    ) -> Result<ExactMean> {
        check_len("theta0", theta0, self.d)?;
        if epochs == 0 {
            return Err(SgdError::invalid("epochs", "must be ≥ 1"));
        }
        if algo == AffineAlgorithm::SubsetDp && self.m > 24 {
            return Err(SgdError::invalid(
                "algo",
                format!("SubsetDp needs 2^m states; m = {} > 24", self.m),
            ));
        }
        let per_epoch: f64 = (1..=self.m).map(|k| k as f64).product();
        let sequences = per_epoch.powi(epochs as i32);
        let mean = if epochs == 1 {
            self.epoch_mean_block(theta0, 1, algo)
        } else {
            // Mean epoch map on [I | 0], then compose.
            let d = self.d;
            let mut x0 = vec![0.0; d * (d + 1)];
            for i in 0..d {
                x0[i * d + i] = 1.0;
            }
            let map = self.epoch_mean_block(&x0, d + 1, algo);
            let p = DMatrix::from_column_slice(d, d, &map[..d * d]);
            let q = DVector::from_column_slice(&map[d * d..]);
            let mut w = DVector::from_column_slice(theta0);
            for _ in 0..epochs {
                w = &p * w + &q;
            }
            w.as_slice().to_vec()
        };
        if let Some(bad) = mean.iter().find(|v| !v.is_finite()) {
            return Err(SgdError::Diverged {
                step: self.m * epochs,
                what: format!("non-finite mean {bad}"),
            });
        }
        Ok(ExactMean {
            mean,
            sequences,
            steps_computed: f64::NAN,
        })
    }

    /// Exact `E[θ]` for `m` i.i.d. uniform batch draws per epoch: `E[θ_{t+1}] = M̄ E[θ_t] + c̄` exactly,
    /// with `M̄, c̄` the means over batches (no enumeration needed; agrees with the `m^m` enumeration).
    pub fn mean_with_replacement(&self, theta0: &[f64], epochs: usize) -> Result<ExactMean> {
        check_len("theta0", theta0, self.d)?;
        let d = self.d;
        let inv = 1.0 / self.m as f64;
        let mut mbar = vec![0.0; d * d];
        let mut cbar = vec![0.0; d];
        for k in 0..self.m {
            for (a, v) in mbar.iter_mut().zip(&self.maps[k * d * d..(k + 1) * d * d]) {
                *a += v * inv;
            }
            for (a, v) in cbar.iter_mut().zip(&self.shifts[k * d..(k + 1) * d]) {
                *a += v * inv;
            }
        }
        let p = DMatrix::from_column_slice(d, d, &mbar);
        let q = DVector::from_vec(cbar);
        let mut w = DVector::from_column_slice(theta0);
        for _ in 0..self.m * epochs {
            w = &p * w + &q;
        }
        Ok(ExactMean {
            mean: w.as_slice().to_vec(),
            sequences: (self.m as f64).powi((self.m * epochs) as i32),
            steps_computed: (self.m * epochs) as f64,
        })
    }

    /// Seeded Monte Carlo over uniformly random batch orders (one independent order per epoch).
    pub fn monte_carlo_orders(&self, theta0: &[f64], epochs: usize, opts: &McOptions) -> Result<McEstimate> {
        check_len("theta0", theta0, self.d)?;
        let d = self.d;
        monte_carlo_chunks(d, opts, |rng, count, mom| {
            let mut order: Vec<u8> = (0..self.m as u8).collect();
            let mut x = vec![0.0; d];
            let mut y = vec![0.0; d];
            for _ in 0..count {
                x.copy_from_slice(theta0);
                for _ in 0..epochs {
                    order.shuffle(rng);
                    for &k in &order {
                        self.apply_vec(k as usize, &x, &mut y);
                        std::mem::swap(&mut x, &mut y);
                    }
                }
                let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
                if !(norm.is_finite() && norm <= opts.divergence_norm) {
                    return Err(SgdError::Diverged {
                        step: self.m * epochs,
                        what: format!("‖θ‖ = {norm:e}"),
                    });
                }
                mom.push(&x);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectation::{exact_mean, Averaging, ExactOptions};
    use imreg_flow::toy::{LogCoshQuartic, PerExampleQuadratic};
    use imreg_flow::Remainder;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    /// Prefix tree, subset DP and the generic enumeration agree (1 and 2 epochs); the with-replacement
    /// recursion agrees with the m^m enumeration.
    #[test]
    fn affine_paths_agree_with_generic_enumeration() {
        let obj = PerExampleQuadratic::random_least_squares(10, 3, 2).unwrap();
        let part = Partition::consecutive(10, 2, Remainder::Error).unwrap();
        let lr = 0.2;
        let w0 = [0.3, -0.1, 0.5];
        let aff = AffineEpoch::from_objective(&obj, &part, lr).unwrap();
        for epochs in [1, 2] {
            let g = exact_mean(
                &obj,
                &part,
                &w0,
                lr,
                epochs,
                Averaging::BatchOrders,
                &ExactOptions::default(),
            )
            .unwrap();
            let t = aff
                .mean_over_orders(&w0, epochs, AffineAlgorithm::PrefixTree)
                .unwrap();
            let s = aff
                .mean_over_orders(&w0, epochs, AffineAlgorithm::SubsetDp)
                .unwrap();
            // Different summation orders of 120 (or 14400) O(1) terms: agreement to ~1e-14.
            assert!(close(&t.mean, &g.mean, 1e-13), "{:?} vs {:?}", t.mean, g.mean);
            assert!(close(&s.mean, &g.mean, 1e-13), "{:?} vs {:?}", s.mean, g.mean);
            let wr = exact_mean(
                &obj,
                &part,
                &w0,
                lr,
                epochs,
                Averaging::WithReplacement,
                &ExactOptions::default(),
            )
            .unwrap();
            let wa = aff.mean_with_replacement(&w0, epochs).unwrap();
            assert!(close(&wa.mean, &wr.mean, 1e-13), "{:?} vs {:?}", wa.mean, wr.mean);
        }
    }

    #[test]
    fn prefix_tree_is_bitwise_deterministic_and_mc_covers_exact() {
        let obj = PerExampleQuadratic::random_least_squares(16, 4, 3).unwrap();
        let part = Partition::consecutive(16, 2, Remainder::Error).unwrap();
        let aff = AffineEpoch::from_objective(&obj, &part, 0.3).unwrap();
        let w0 = [1.0, -1.0, 0.5, 0.0];
        let run = |threads: usize| {
            imreg_objective::threads::on_threads(threads, || {
                (
                    aff.mean_over_orders(&w0, 1, AffineAlgorithm::PrefixTree)
                        .unwrap()
                        .mean,
                    aff.monte_carlo_orders(
                        &w0,
                        1,
                        &McOptions {
                            samples: 50_000,
                            ..Default::default()
                        },
                    )
                    .unwrap(),
                )
            })
            .unwrap()
        };
        let (a, b) = (run(1), run(2));
        assert_eq!(
            a.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(a.1, b.1);
        // z = 4 (see expectation::tests): MC over 8! orders covers the exact mean.
        assert!(
            a.1.contains(&a.0, 4.0),
            "{:?} vs {:?} ± {:?}",
            a.0,
            a.1.mean,
            a.1.std_error
        );
    }

    #[test]
    fn non_affine_models_are_rejected() {
        let obj = LogCoshQuartic::random(4, 2, 1).unwrap();
        let part = Partition::consecutive(4, 2, Remainder::Error).unwrap();
        assert!(matches!(
            AffineEpoch::from_objective(&obj, &part, 0.1),
            Err(SgdError::NotAffine { .. })
        ));
        let q = PerExampleQuadratic::random_least_squares(4, 2, 1).unwrap();
        assert!(matches!(
            AffineEpoch::from_objective(&q, &part, 0.0),
            Err(SgdError::NonPositiveStep { .. })
        ));
    }
}

#[cfg(test)]
mod throughput {
    use super::*;
    use imreg_flow::toy::PerExampleQuadratic;
    use imreg_flow::Remainder;

    /// Not a timed assertion (speed is measured in `benches/expectation.rs`): runs 4e6 permutations of the
    /// bench problem on one thread so that `/usr/bin/time` can report CPU time on a loaded machine.
    #[test]
    #[ignore]
    fn mc_cpu_time_probe() {
        let obj = PerExampleQuadratic::random_least_squares(32, 10, 1).unwrap();
        let part = Partition::consecutive(32, 4, Remainder::Error).unwrap();
        let e = AffineEpoch::from_objective(&obj, &part, 0.05).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let t = std::time::Instant::now();
        let mc = pool.install(|| {
            e.monte_carlo_orders(
                &[0.1; 10],
                1,
                &McOptions {
                    samples: 4_000_000,
                    ..Default::default()
                },
            )
            .unwrap()
        });
        println!("wall {:.3}s, mean[0] {}", t.elapsed().as_secs_f64(), mc.mean[0]);
    }
}
