//! Exact expectations for small finite problems: the average over **all training sets** of `N` i.i.d.
//! points from a finite distribution (weighted by their probabilities) and **all reshuffles** (each epoch an
//! independent uniformly random ordered partition of the `N` points into `N/B` batches, i.e. batches
//! without replacement within each epoch, fresh order every epoch).
//!
//! Orders that differ only inside a batch give the same update, so each epoch enumerates the
//! `N!/(B!)^{N/B}` ordered partitions (all equally likely under a uniform permutation). The total number of
//! runs is `K^N · (N!/(B!)^{N/B})^E` for support size `K`; above [`ExactParams::max_runs`] the engine refuses
//! with [`TaylorError::TooLarge`] naming the count.
use crate::error::{check_finite, check_len, Result, TaylorError};
use crate::landscape::{DataDist, Landscape, Measure};
use crate::schedule::Schedule;
use crate::simulate::sgd_step;
use nalgebra::DVector;
use rayon::prelude::*;

/// Limits of the enumeration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExactParams {
    /// Refuse enumerations of more (training set, batch order) runs than this.
    pub max_runs: u128,
}

impl Default for ExactParams {
    fn default() -> Self {
        ExactParams { max_runs: 50_000_000 }
    }
}

/// Exact expectations at the end of training.
#[derive(Clone, Debug, PartialEq)]
pub struct ExactReport {
    /// `E[l(θ_T)]`, the test (population) loss.
    pub test_loss: f64,
    /// `E[(1/N) Σ_n l_{x_n}(θ_T)]`, the training loss.
    pub train_loss: f64,
    /// `E[θ_T]`.
    pub theta: DVector<f64>,
    /// `K^N` training sets.
    pub training_sets: u128,
    /// `N!/(B!)^{N/B}` batch orders per epoch.
    pub orders_per_epoch: u128,
    /// Total runs enumerated.
    pub runs: u128,
}

/// All ordered partitions of `0..n` into consecutive batches of size `b` (batch contents sorted).
pub fn ordered_partitions(n: usize, b: usize) -> Vec<Vec<Vec<usize>>> {
    fn rec(remaining: &[usize], b: usize, prefix: &mut Vec<Vec<usize>>, out: &mut Vec<Vec<Vec<usize>>>) {
        if remaining.is_empty() {
            out.push(prefix.clone());
            return;
        }
        let mut chosen = Vec::with_capacity(b);
        combos(remaining, b, 0, &mut chosen, &mut |batch: &[usize]| {
            let rest: Vec<usize> = remaining.iter().copied().filter(|i| !batch.contains(i)).collect();
            prefix.push(batch.to_vec());
            rec(&rest, b, prefix, out);
            prefix.pop();
        });
    }
    fn combos(items: &[usize], k: usize, from: usize, chosen: &mut Vec<usize>, f: &mut dyn FnMut(&[usize])) {
        if chosen.len() == k {
            f(chosen);
            return;
        }
        for i in from..items.len() {
            if items.len() - i < k - chosen.len() {
                break;
            }
            chosen.push(items[i]);
            combos(items, k, i + 1, chosen, f);
            chosen.pop();
        }
    }
    let mut out = Vec::new();
    if b == 0 || !n.is_multiple_of(b) {
        return out;
    }
    let items: Vec<usize> = (0..n).collect();
    rec(&items, b, &mut Vec::new(), &mut out);
    out
}

/// The number of runs `K^N · (N!/(B!)^{N/B})^E`, or `None` on overflow of `u128`.
pub fn run_count(support: usize, sched: &Schedule) -> Option<(u128, u128, u128)> {
    let sets = (support as u128).checked_pow(u32::try_from(sched.n()).ok()?)?;
    let mut orders: u128 = 1;
    // multinomial N!/(B!)^{N/B} = Π_k C(N − kB, B)
    let mut left = sched.n() as u128;
    while left > 0 {
        orders = orders.checked_mul(binomial(left, sched.b() as u128)?)?;
        left -= sched.b() as u128;
    }
    let per_set = orders.checked_pow(u32::try_from(sched.epochs()).ok()?)?;
    Some((sets, orders, sets.checked_mul(per_set)?))
}

fn binomial(n: u128, k: u128) -> Option<u128> {
    let mut r: u128 = 1;
    for i in 0..k {
        r = r.checked_mul(n - i)? / (i + 1);
    }
    Some(r)
}

/// Exact `E[l(θ_T)]`, `E[l̂(θ_T)]` and `E[θ_T]` of SGD with the schedule `(N, B, T)` and rate `η` from
/// `θ₀`, over all training sets from the finite `dist` and all reshuffles (module doc).
///
/// Errors: a continuous `dist` ([`TaylorError::NotFinite`]), too many runs ([`TaylorError::TooLarge`]),
/// a diverging run ([`TaylorError::Diverged`] with the step). Rayon runs the training sets in parallel;
/// the per-set results are collected in index order and summed sequentially, so the result is bitwise
/// identical for any thread count.
pub fn exact_expectation<L: Landscape + ?Sized>(
    landscape: &L,
    dist: &DataDist,
    theta0: &[f64],
    sched: &Schedule,
    eta: f64,
    params: ExactParams,
) -> Result<ExactReport> {
    let finite = dist.as_finite()?;
    check_len("theta0", theta0.len(), landscape.dim())?;
    check_len(
        "x dimension of the distribution",
        finite.data_dim(),
        landscape.data_dim(),
    )?;
    check_finite("eta", eta)?;
    let k = finite.len();
    let steps = sched.t();
    let (sets, orders_per_epoch, runs) = run_count(k, sched).ok_or(TaylorError::TooLarge {
        count: u128::MAX,
        steps,
        limit: params.max_runs,
    })?;
    if runs > params.max_runs {
        return Err(TaylorError::TooLarge {
            count: runs,
            steps,
            limit: params.max_runs,
        });
    }
    let partitions = ordered_partitions(sched.n(), sched.b());
    let test = Measure {
        points: finite.points().to_vec(),
        weights: finite.probs().to_vec(),
    };
    let n = sched.n();
    let epochs = sched.epochs();
    let p = landscape.dim();

    // Average over all epoch orderings below `epoch`, returning (test, train, θ) sums already averaged.
    struct Ctx<'a, L: ?Sized> {
        landscape: &'a L,
        data: Vec<Vec<f64>>,
        partitions: &'a [Vec<Vec<usize>>],
        test: &'a Measure,
        epochs: usize,
        eta: f64,
    }
    fn descend<L: Landscape + ?Sized>(
        c: &Ctx<'_, L>,
        theta: &DVector<f64>,
        epoch: usize,
    ) -> Result<(f64, f64, DVector<f64>)> {
        if epoch == c.epochs {
            let test = c.test.loss(c.landscape, theta.as_slice())?;
            let mut train = 0.0;
            for x in &c.data {
                train += c.landscape.loss(x, theta.as_slice())?;
            }
            return Ok((test, train / c.data.len() as f64, theta.clone()));
        }
        let per = c.partitions.len() as f64;
        if let [only] = c.partitions {
            // One batch order per epoch (B = N, or N = 1): no branching, so loop instead of recursing
            // (GD may run for arbitrarily many epochs).
            let mut t = theta.clone();
            for ep in epoch..c.epochs {
                for (s, batch) in only.iter().enumerate() {
                    sgd_step(c.landscape, &c.data, batch, &mut t, c.eta, ep * only.len() + s)?;
                }
            }
            return descend(c, &t, c.epochs);
        }
        // Otherwise per^(epochs) ≤ max_runs bounds the recursion depth by log2(max_runs).
        let (mut a, mut b, mut th) = (0.0, 0.0, DVector::zeros(theta.len()));
        for order in c.partitions {
            let mut t = theta.clone();
            for (s, batch) in order.iter().enumerate() {
                sgd_step(
                    c.landscape,
                    &c.data,
                    batch,
                    &mut t,
                    c.eta,
                    epoch * order.len() + s,
                )?;
            }
            let (x, y, z) = descend(c, &t, epoch + 1)?;
            a += x;
            b += y;
            th += z;
        }
        Ok((a / per, b / per, th / per))
    }

    let sets_usize = usize::try_from(sets).map_err(|_| TaylorError::TooLarge {
        count: sets,
        steps,
        limit: params.max_runs,
    })?;
    let theta_start = DVector::from_column_slice(theta0);
    let per_set: Vec<(f64, f64, f64, DVector<f64>)> = (0..sets_usize)
        .into_par_iter()
        .map(|idx| {
            // idx in base K: digit j is the support index of training point j.
            let mut rest = idx;
            let mut prob = 1.0;
            let mut data = Vec::with_capacity(n);
            for _ in 0..n {
                let d = rest % k;
                rest /= k;
                prob *= finite.probs()[d];
                data.push(finite.points()[d].clone());
            }
            if prob == 0.0 {
                return Ok((0.0, 0.0, 0.0, DVector::zeros(p)));
            }
            let ctx = Ctx {
                landscape,
                data,
                partitions: &partitions,
                test: &test,
                epochs,
                eta,
            };
            let (a, b, th) = descend(&ctx, &theta_start, 0)?;
            Ok((prob, a, b, th))
        })
        .collect::<Result<Vec<_>>>()?;
    let (mut test_loss, mut train_loss, mut theta) = (0.0, 0.0, DVector::zeros(p));
    for (w, a, b, th) in &per_set {
        test_loss += w * a;
        train_loss += w * b;
        theta.axpy(*w, th, 1.0);
    }
    Ok(ExactReport {
        test_loss,
        train_loss,
        theta,
        training_sets: sets,
        orders_per_epoch,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landscapes::{GaussLandscape, RademacherToy};

    #[test]
    fn partitions_are_counted_right() {
        assert_eq!(ordered_partitions(3, 1).len(), 6);
        assert_eq!(ordered_partitions(4, 2).len(), 6); // 4!/(2!·2!)
        assert_eq!(ordered_partitions(6, 2).len(), 90);
        assert_eq!(ordered_partitions(3, 3).len(), 1);
        let s = Schedule::new(4, 2, 4).unwrap();
        assert_eq!(run_count(2, &s), Some((16, 6, 16 * 36)));
    }

    #[test]
    fn reference_table_recomputed() {
        // The table of docs/theory/tenka.md: our own enumeration must reproduce the quoted values (a
        // cross-check; the checks assert the η³ convergence itself).
        let toy = RademacherToy::reference();
        let d = toy.distribution();
        let cases = [
            (1usize, 3usize, 0.01, 0.471068689909),
            (1, 3, 0.005, 0.485269511901),
            (3, 3, 0.01, 0.471140888897),
            (3, 3, 0.005, 0.485287909760),
            (1, 6, 0.005, 0.471191537931),
        ];
        for (b, t, eta, quoted) in cases {
            let r = exact_expectation(
                &toy,
                &d,
                &[1.0],
                &Schedule::new(3, b, t).unwrap(),
                eta,
                ExactParams::default(),
            )
            .unwrap();
            assert!(
                (r.test_loss - quoted).abs() < 1e-11,
                "B={b} T={t} η={eta}: {} vs {quoted}",
                r.test_loss
            );
        }
    }

    #[test]
    fn typed_errors() {
        let s = Schedule::new(3, 1, 3).unwrap();
        let e = exact_expectation(
            &GaussLandscape,
            &GaussLandscape.distribution(),
            &[0.0],
            &s,
            0.1,
            ExactParams::default(),
        );
        assert!(matches!(e, Err(TaylorError::NotFinite { .. })));
        let toy = RademacherToy::reference();
        let big = Schedule::new(8, 1, 16).unwrap();
        let e = exact_expectation(
            &toy,
            &toy.distribution(),
            &[1.0],
            &big,
            0.1,
            ExactParams::default(),
        );
        match e {
            Err(TaylorError::TooLarge { count, .. }) => assert_eq!(count, 256 * 40320u128 * 40320),
            other => panic!("{other:?}"),
        }
        assert!(e.unwrap_err().to_string().contains("416179814400"));
    }

    #[test]
    fn divergence_is_reported_with_the_step() {
        let toy = RademacherToy::new(1.0, 0.0).unwrap();
        let s = Schedule::new(1, 1, 2000).unwrap();
        // θ ← θ(1 − 3h) − 3x: |1 − 3| = 2 per step overflows after ~1030 steps.
        let e = exact_expectation(&toy, &toy.distribution(), &[1.0], &s, 3.0, ExactParams::default());
        match e {
            Err(TaylorError::Diverged { step, .. }) => assert!(step > 1000 && step < 1100, "{step}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bitwise_deterministic_across_thread_counts() {
        let toy = RademacherToy::new(0.9, 0.7).unwrap();
        let s = Schedule::new(4, 1, 8).unwrap();
        let run = |threads: usize| {
            imreg_objective::threads::on_threads(threads, || {
                exact_expectation(
                    &toy,
                    &toy.distribution(),
                    &[0.8],
                    &s,
                    0.03,
                    ExactParams::default(),
                )
                .unwrap()
            })
            .unwrap()
        };
        let (a, b) = (run(1), run(2));
        assert_eq!(a.test_loss.to_bits(), b.test_loss.to_bits());
        assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
        assert_eq!(a.theta[0].to_bits(), b.theta[0].to_bits());
    }
}
