//! SGD without replacement (random reshuffling) against SGD with replacement and noise-injected GD
//! (Beneventano 2023; statement derived in `docs/theory/without-replacement.md`, verified by exact
//! enumeration).
//!
//! Notation: per-sample noise `g_p = ∇ℓ_p − ∇L`, `G_p = ∇²ℓ_p − H`, per-sample covariance
//! `Σ(θ) = (1/n) Σ_p g_p g_pᵀ`, batch-noise covariance `S = E ξ_Bξ_Bᵀ = ((n−b)/(n−1)) Σ/b` (a uniform
//! `b`-subset), `k = n/b` steps per epoch, and `A = I − ηH` frozen at the start of the epoch.
//!
//! **Epoch drift** (second order in the noise, the third-derivative terms left out):
//!
//! `E[θ_k^{w/o}] − E[θ_k^{iid}] = −(η²/(2(n−1))) Σ_{i=1}^{k−1} A^{k−1−i} ∇_θ tr[(Σ_{m<i} A^m) Σ(θ)]`
//!
//! with `Σ_{m<i} A^m` accumulated as a polynomial in `H` (never `(ηH)^{-1}`), so it is defined for singular
//! and indefinite `H`. Along an eigenvector with eigenvalue `λ` (`a = 1 − ηλ`) the step-`i` weight is
//! `Σ_{m<i} a^m`: `i` on flat directions (so the epoch weight is `k(k−1)/2`, growing like `k²`),
//! saturating at `1/(ηλ)` on sharp ones, geometric for `λ < 0`.
//!
//! **Displacement variance** along a flat direction after `i` steps: `η² S i(k−i)/(k−1)` without
//! replacement (zero at the end of the epoch, as `Σ_j ξ_j = 0`) and `η² S i` with replacement.
//!
//! The exact references here do not use the formula: [`orders_mean`] enumerates all `n!` orders,
//! [`iid_sequences_mean`] all `C(n,b)^k` with-replacement batch sequences, and [`exact_moments`] computes
//! the first two moments of every step exactly for per-example quadratics (a dynamic program over the set
//! of examples already used, for reshuffling; exact moment recursions for the other processes).
use crate::reg_error::{check_positive, RegError, RegResult};
use imreg_objective::{Batch, Objective, Quadratic};
use nalgebra::{DMatrix, DVector};

/// `Σ_{m<i} a^m` with `a = 1 − ηλ`: the weight of the step-`i` regularizer along an eigen-direction of
/// curvature `λ` (`eta_lambda = ηλ`). Accumulated as a sum, so `ηλ = 0` gives `i` exactly.
pub fn regularizer_weight(eta_lambda: f64, i: usize) -> f64 {
    let a = 1.0 - eta_lambda;
    let (mut s, mut p) = (0.0, 1.0);
    for _ in 0..i {
        s += p;
        p *= a;
    }
    s
}

/// `Σ_{i=1}^{k−1} a^{k−1−i} Σ_{m<i} a^m`: the epoch weight of the drift along an eigen-direction
/// (`k(k−1)/2` when flat, `→ 1/(ηλ)²` for `0 < ηλ < 2`, geometric growth for `λ < 0`).
pub fn epoch_weight(eta_lambda: f64, k: usize) -> f64 {
    let a = 1.0 - eta_lambda;
    (1..k)
        .map(|i| a.powi((k - 1 - i) as i32) * regularizer_weight(eta_lambda, i))
        .sum()
}

/// How the batches of consecutive steps are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Random reshuffling: each epoch a fresh permutation cut into `k = n/b` disjoint batches.
    WithoutReplacement,
    /// Independent uniform `b`-subsets at every step.
    WithReplacement,
}

/// The flat-direction displacement variance after `i` steps of an epoch of `k` steps, batch-noise variance
/// `s` (the flat diagonal entry of `S`): `η² s i(k−i)/(k−1)` without replacement, `η² s i` with.
pub fn flat_displacement_variance(eta: f64, s: f64, i: usize, k: usize, sampling: Sampling) -> f64 {
    match sampling {
        Sampling::WithReplacement => eta * eta * s * i as f64,
        Sampling::WithoutReplacement if k <= 1 => 0.0,
        Sampling::WithoutReplacement => eta * eta * s * (i * (k - i.min(k))) as f64 / (k - 1) as f64,
    }
}

fn check_batch_size(n: usize, b: usize) -> RegResult<usize> {
    if b == 0 || b > n || !n.is_multiple_of(b) {
        return Err(RegError::invalid(
            "batch_size",
            format!("must divide the n = {n} examples, got {b}"),
        ));
    }
    Ok(n / b)
}

/// The per-sample gradients `∇ℓ_p(θ)` (rows) and their mean `∇L(θ)`.
fn per_sample_grads(obj: &dyn Objective, theta: &[f64]) -> RegResult<(Vec<DVector<f64>>, DVector<f64>)> {
    let n = obj.n_examples();
    let grads: Vec<DVector<f64>> = (0..n)
        .map(|p| obj.grad(theta, Batch::Indices(&[p])).map(DVector::from_vec))
        .collect::<Result<_, _>>()?;
    let mean = grads.iter().fold(DVector::zeros(obj.dim()), |s, g| s + g) / n as f64;
    Ok((grads, mean))
}

/// The per-sample gradient covariance `Σ(θ) = (1/n) Σ_p g_p g_pᵀ`, `g_p = ∇ℓ_p − ∇L` (denominator `n`).
pub fn noise_covariance(obj: &dyn Objective, theta: &[f64]) -> RegResult<DMatrix<f64>> {
    let (grads, mean) = per_sample_grads(obj, theta)?;
    let n = grads.len() as f64;
    let d = obj.dim();
    Ok(grads.iter().fold(DMatrix::zeros(d, d), |s, g| {
        let c = g - &mean;
        s + &c * c.transpose()
    }) / n)
}

/// `S = E ξ_Bξ_Bᵀ = ((n−b)/(n−1)) Σ(θ)/b`, the covariance of the noise of a uniform `b`-subset mean gradient.
pub fn batch_noise_covariance(obj: &dyn Objective, theta: &[f64], b: usize) -> RegResult<DMatrix<f64>> {
    let n = obj.n_examples();
    if b == 0 || b > n {
        return Err(RegError::invalid(
            "batch_size",
            format!("must lie in 1..={n}, got {b}"),
        ));
    }
    let factor = if n > 1 {
        (n - b) as f64 / ((n - 1) as f64 * b as f64)
    } else {
        0.0
    };
    Ok(noise_covariance(obj, theta)? * factor)
}

/// `∇_θ tr(M Σ(θ))` for a fixed symmetric `M`: `(2/n) Σ_p (H_p − H) M g_p = (2/n) Σ_p H_p M g_p` (the
/// `H M Σ_p g_p` term vanishes because `Σ_p g_p = 0`). One per-example HVP per sample.
pub fn grad_trace_noise_covariance(
    obj: &dyn Objective,
    theta: &[f64],
    m: &DMatrix<f64>,
) -> RegResult<DVector<f64>> {
    let d = obj.dim();
    if m.shape() != (d, d) {
        return Err(RegError::invalid(
            "m",
            format!("must be {d}×{d}, got {:?}", m.shape()),
        ));
    }
    let (grads, mean) = per_sample_grads(obj, theta)?;
    let n = grads.len();
    let mut out = DVector::zeros(d);
    let mut hv = vec![0.0; d];
    for (p, g) in grads.iter().enumerate() {
        let v = m * (g - &mean);
        obj.hvp(theta, Batch::Indices(&[p]), v.as_slice(), &mut hv)?;
        out += DVector::from_column_slice(&hv);
    }
    Ok(out * (2.0 / n as f64))
}

/// The derived epoch drift of SGD without replacement relative to i.i.d. batches, and its ingredients.
#[derive(Clone, Debug)]
pub struct EpochDrift {
    /// `−(η²/(2(n−1))) Σ_{i=1}^{k−1} A^{k−1−i} ∇tr[(Σ_{m<i} A^m) Σ(θ)]`.
    pub drift: DVector<f64>,
    /// The full-batch Hessian `H(θ)` the propagators were frozen at.
    pub hessian: DMatrix<f64>,
    /// Steps per epoch `k = n/b`.
    pub k: usize,
}

/// The epoch drift at `θ` (see the module doc) for batch size `b` dividing `n`. For `b = n` (`k = 1`) the sum
/// is empty and the drift is zero.
pub fn epoch_drift(obj: &dyn Objective, theta: &[f64], eta: f64, b: usize) -> RegResult<EpochDrift> {
    check_positive("eta", eta)?;
    let n = obj.n_examples();
    let k = check_batch_size(n, b)?;
    let d = obj.dim();
    let h = obj.dense_hessian(theta, Batch::Full)?;
    let a = DMatrix::identity(d, d) - &h * eta;
    let mut drift = DVector::zeros(d);
    if k > 1 {
        // partial[i] = Σ_{m<i} A^m, powers[j] = A^j.
        let mut powers = vec![DMatrix::identity(d, d)];
        for j in 1..k {
            let next = &a * &powers[j - 1];
            powers.push(next);
        }
        let mut partial = DMatrix::zeros(d, d);
        for i in 1..k {
            partial += &powers[i - 1];
            let grad_tr = grad_trace_noise_covariance(obj, theta, &partial)?;
            drift += &powers[k - 1 - i] * grad_tr;
        }
        drift *= -(eta * eta) / (2.0 * (n - 1) as f64);
    }
    Ok(EpochDrift { drift, hessian: h, k })
}

/// Settings of the verification toy (`docs/theory/without-replacement.md` §Verification toy): `d = h.len()`,
/// `H = diag(h)`, per-sample losses
/// `½θᵀ(H + G_p)θ + g_pᵀθ` with `Σ_p g_p = 0`, `Σ_p G_p = 0`, entries of size `amplitude`.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyParams {
    pub h: Vec<f64>,
    pub n: usize,
    pub amplitude: f64,
    pub seed: u64,
    /// `false`: `g_p ~ a N(0, I)`, `G_p = a·sym N(0, 1)` (both centered). `true`: diagonal `G_p` whose
    /// entries are correlated with `g_p` (`G_p,jj = a(s_pj + u_pj)`, `g_pj = a s_pj`), which decouples the
    /// eigen-directions and keeps `∂_j Σ_jj = (2/n) Σ_p G_p,jj g_pj` well away from zero.
    pub diagonal_noise: bool,
}

/// The toy of [`ToyParams`] as a [`Quadratic`] (`A_p = H + G_p`, `b_p = g_p`), from `rng::stream(seed, 0)`.
pub fn toy(p: &ToyParams) -> RegResult<Quadratic> {
    let d = p.h.len();
    if d == 0 || p.n < 2 {
        return Err(RegError::invalid(
            "toy",
            format!("needs d ≥ 1 and n ≥ 2, got d = {d}, n = {}", p.n),
        ));
    }
    let mut rng = imreg_objective::rng::stream(p.seed, 0);
    let mut gs: Vec<DVector<f64>> = Vec::with_capacity(p.n);
    let mut ms: Vec<DMatrix<f64>> = Vec::with_capacity(p.n);
    for _ in 0..p.n {
        let z = imreg_objective::rng::normal_vec(&mut rng, d);
        let w = imreg_objective::rng::normal_vec(&mut rng, d * d);
        if p.diagonal_noise {
            gs.push(DVector::from_vec(z.clone()));
            ms.push(DMatrix::from_diagonal(&DVector::from_fn(d, |j, _| {
                z[j] + 0.5 * w[j]
            })));
        } else {
            gs.push(DVector::from_vec(z));
            let m = DMatrix::from_vec(d, d, w);
            ms.push((&m + m.transpose()) * 0.5);
        }
    }
    let gm = gs.iter().fold(DVector::zeros(d), |s, g| s + g) / p.n as f64;
    let mm = ms.iter().fold(DMatrix::zeros(d, d), |s, m| s + m) / p.n as f64;
    let h = DMatrix::from_diagonal(&DVector::from_column_slice(&p.h));
    let a = ms.iter().map(|m| &h + (m - &mm) * p.amplitude).collect();
    let b = gs.iter().map(|g| (g - &gm) * p.amplitude).collect();
    Ok(Quadratic::new(a, b)?)
}

/// One SGD step on the minibatch `batch` of a quadratic: `θ ← (I − ηH_B)θ − η ḡ_B`.
fn quad_step(q: &Quadratic, theta: &mut DVector<f64>, batch: &[usize], eta: f64) {
    let mut g = DVector::zeros(theta.len());
    for &i in batch {
        g += &q.a()[i] * &*theta + &q.b()[i];
    }
    *theta -= g * (eta / batch.len() as f64);
}

/// `E[θ_k]` over all `n!` orders of one reshuffled epoch (`k = n/b` steps), by brute-force enumeration of
/// the permutations (Heap's algorithm). Refuses `n > 10`.
pub fn orders_mean(q: &Quadratic, theta0: &[f64], eta: f64, b: usize) -> RegResult<DVector<f64>> {
    let n = q.n_examples();
    check_batch_size(n, b)?;
    if n > 10 {
        return Err(RegError::TooLarge {
            what: "permutations",
            count: (1..=n).map(|v| v as f64).product(),
            limit: 3_628_800.0,
        });
    }
    let run = |perm: &[usize]| {
        let mut th = DVector::from_column_slice(theta0);
        for chunk in perm.chunks(b) {
            quad_step(q, &mut th, chunk, eta);
        }
        th
    };
    let mut perm: Vec<usize> = (0..n).collect();
    let mut sum = run(&perm);
    let mut count = 1.0;
    let mut c = vec![0usize; n];
    let mut i = 1;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                perm.swap(0, i);
            } else {
                perm.swap(c[i], i);
            }
            sum += run(&perm);
            count += 1.0;
            c[i] += 1;
            i = 1;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    Ok(sum / count)
}

/// All `b`-subsets of `items` (lexicographic), each as a vector of items.
fn subsets_of(items: &[usize], b: usize) -> Vec<Vec<usize>> {
    let n = items.len();
    let mut out = Vec::new();
    if b == 0 || b > n {
        return out;
    }
    let mut c: Vec<usize> = (0..b).collect();
    loop {
        out.push(c.iter().map(|&j| items[j]).collect());
        let mut j = b;
        while j > 0 && c[j - 1] == n - b + j - 1 {
            j -= 1;
        }
        if j == 0 {
            return out;
        }
        c[j - 1] += 1;
        for l in j..b {
            c[l] = c[l - 1] + 1;
        }
    }
}

/// `E[θ_steps]` over all `C(n,b)^steps` sequences of independent uniform `b`-subsets (with replacement
/// across steps), by brute-force enumeration. Refuses more than `10⁷` sequences.
pub fn iid_sequences_mean(
    q: &Quadratic,
    theta0: &[f64],
    eta: f64,
    b: usize,
    steps: usize,
) -> RegResult<DVector<f64>> {
    let n = q.n_examples();
    let all: Vec<usize> = (0..n).collect();
    let subsets = subsets_of(&all, b);
    if subsets.is_empty() {
        return Err(RegError::invalid(
            "batch_size",
            format!("must lie in 1..={n}, got {b}"),
        ));
    }
    let count = (subsets.len() as f64).powi(steps as i32);
    if count > 1e7 {
        return Err(RegError::TooLarge {
            what: "with-replacement sequences",
            count,
            limit: 1e7,
        });
    }
    fn rec(
        q: &Quadratic,
        th: &DVector<f64>,
        subsets: &[Vec<usize>],
        eta: f64,
        left: usize,
        sum: &mut DVector<f64>,
    ) {
        if left == 0 {
            *sum += th;
            return;
        }
        for s in subsets {
            let mut next = th.clone();
            quad_step(q, &mut next, s, eta);
            rec(q, &next, subsets, eta, left - 1, sum);
        }
    }
    let mut sum = DVector::zeros(theta0.len());
    rec(
        q,
        &DVector::from_column_slice(theta0),
        &subsets,
        eta,
        steps,
        &mut sum,
    );
    Ok(sum / count)
}

/// Which covariance the noise of noise-injected GD has (all built from the batch-noise covariance `S` at
/// the start point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseShape {
    /// `(tr S/d) I`.
    Isotropic,
    /// `diag(S)`.
    Diagonal,
    /// `S`.
    Full,
}

/// A process whose first two moments [`exact_moments`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// SGD with random reshuffling (one epoch of `k = n/b` steps).
    WithoutReplacement,
    /// SGD with independent uniform `b`-subsets.
    WithReplacement,
    /// `θ ← θ − η∇L(θ) + η ξ`, `ξ ~ N(0, S_shape)` with `S` frozen at `θ₀`.
    NoiseInjected(NoiseShape),
}

/// Mean and covariance of the iterate after each step `t = 0..=k` of one epoch.
#[derive(Clone, Debug)]
pub struct Moments {
    pub mean: Vec<DVector<f64>>,
    pub cov: Vec<DMatrix<f64>>,
}

/// Exact first and second moments of `θ_t`, `t = 0..=k` (`k = n/b`), for a per-example [`Quadratic`].
///
/// * Without replacement: given the set `U` of examples used after `t` steps, the last batch is a uniform
///   `b`-subset of `U` and the earlier steps are a uniform ordered partition of `U ∖ B`, so
///   `m(U) = avg_B [M_B m(U∖B) + c_B]` (and the same for second moments) with `M_B = I − ηH_B`,
///   `c_B = −η ḡ_B`: a dynamic program over the `2ⁿ` subsets (refuses `n > 20`).
/// * With replacement: the batch is independent of `θ_t`, so the moments recurse over the `C(n,b)` subsets.
/// * Noise-injected GD: the Gaussian moment recursion `m' = M m + c`, `C' = M C Mᵀ + η² S_shape`.
pub fn exact_moments(
    q: &Quadratic,
    theta0: &[f64],
    eta: f64,
    b: usize,
    process: Process,
) -> RegResult<Moments> {
    check_positive("eta", eta)?;
    let n = q.n_examples();
    let k = check_batch_size(n, b)?;
    let d = q.dim();
    imreg_objective::check_len("theta0", theta0, d)?;
    let m0 = DVector::from_column_slice(theta0);
    let step_of = |batch: &[usize]| -> (DMatrix<f64>, DVector<f64>) {
        let mut h = DMatrix::zeros(d, d);
        let mut g = DVector::zeros(d);
        for &i in batch {
            h += &q.a()[i];
            g += &q.b()[i];
        }
        let s = eta / batch.len() as f64;
        (DMatrix::identity(d, d) - h * s, -g * s)
    };
    // (m, S2) ↦ E over the step (M, c) of (M m + c, M S2 Mᵀ + M m cᵀ + c mᵀ Mᵀ + c cᵀ).
    let push = |m: &DVector<f64>, s2: &DMatrix<f64>, mc: &(DMatrix<f64>, DVector<f64>)| {
        let (mm, c) = mc;
        let mmv = mm * m;
        let mean = &mmv + c;
        let second =
            mm * s2 * mm.transpose() + &mmv * c.transpose() + c * mmv.transpose() + c * c.transpose();
        (mean, second)
    };
    let mut means = vec![m0.clone()];
    let mut seconds = vec![&m0 * m0.transpose()];
    match process {
        Process::WithoutReplacement => {
            if n > 20 {
                return Err(RegError::TooLarge {
                    what: "subsets",
                    count: 2f64.powi(n as i32),
                    limit: 2f64.powi(20),
                });
            }
            let size = 1usize << n;
            let mut mean_of: Vec<Option<(DVector<f64>, DMatrix<f64>)>> = vec![None; size];
            mean_of[0] = Some((m0.clone(), seconds[0].clone()));
            let mut by_count: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
            for mask in 0..size {
                by_count[(mask as u64).count_ones() as usize].push(mask);
            }
            for t in 1..=k {
                let mut sum_m = DVector::zeros(d);
                let mut sum_s = DMatrix::zeros(d, d);
                let masks = &by_count[t * b];
                for &u in masks {
                    let items: Vec<usize> = (0..n).filter(|&i| u >> i & 1 == 1).collect();
                    let subs = subsets_of(&items, b);
                    let mut am = DVector::zeros(d);
                    let mut a2 = DMatrix::zeros(d, d);
                    for s in &subs {
                        let bm = s.iter().fold(0usize, |acc, &i| acc | 1 << i);
                        let (pm, ps) = mean_of[u ^ bm]
                            .as_ref()
                            .ok_or_else(|| RegError::invalid("exact_moments", "missing predecessor state"))?;
                        let (nm, ns) = push(pm, ps, &step_of(s));
                        am += nm;
                        a2 += ns;
                    }
                    let inv = 1.0 / subs.len() as f64;
                    am *= inv;
                    a2 *= inv;
                    sum_m += &am;
                    sum_s += &a2;
                    mean_of[u] = Some((am, a2));
                }
                let inv = 1.0 / masks.len() as f64;
                means.push(sum_m * inv);
                seconds.push(sum_s * inv);
                // States two layers back are no longer needed.
                if t >= 2 {
                    for &u in &by_count[(t - 2) * b] {
                        mean_of[u] = None;
                    }
                }
            }
        }
        Process::WithReplacement => {
            let all: Vec<usize> = (0..n).collect();
            let steps: Vec<_> = subsets_of(&all, b).iter().map(|s| step_of(s)).collect();
            for t in 1..=k {
                let mut am = DVector::zeros(d);
                let mut a2 = DMatrix::zeros(d, d);
                for st in &steps {
                    let (nm, ns) = push(&means[t - 1], &seconds[t - 1], st);
                    am += nm;
                    a2 += ns;
                }
                let inv = 1.0 / steps.len() as f64;
                means.push(am * inv);
                seconds.push(a2 * inv);
            }
        }
        Process::NoiseInjected(shape) => {
            let s = batch_noise_covariance(q, theta0, b)?;
            let sc = match shape {
                NoiseShape::Full => s,
                NoiseShape::Diagonal => DMatrix::from_diagonal(&s.diagonal()),
                NoiseShape::Isotropic => DMatrix::identity(d, d) * (s.trace() / d as f64),
            };
            let all: Vec<usize> = (0..n).collect();
            let full = step_of(&all);
            let mut cov = DMatrix::zeros(d, d);
            let mut covs = vec![cov.clone()];
            for t in 1..=k {
                let m = &full.0 * &means[t - 1] + &full.1;
                cov = &full.0 * &cov * full.0.transpose() + &sc * (eta * eta);
                seconds.push(&cov + &m * m.transpose());
                means.push(m);
                covs.push(cov.clone());
            }
            return Ok(Moments {
                mean: means,
                cov: covs,
            });
        }
    }
    let cov = means
        .iter()
        .zip(&seconds)
        .map(|(m, s2)| s2 - m * m.transpose())
        .collect();
    Ok(Moments { mean: means, cov })
}

/// The three processes on the same problem, side by side: exact moments of each and the derived drift.
#[derive(Clone, Debug)]
pub struct ProcessComparison {
    pub without_replacement: Moments,
    pub with_replacement: Moments,
    pub noise_isotropic: Moments,
    pub noise_diagonal: Moments,
    pub noise_full: Moments,
    /// The derived epoch drift (w/o replacement minus with replacement, second order).
    pub predicted_drift: DVector<f64>,
}

/// Runs [`exact_moments`] for every [`Process`] and [`epoch_drift`] at `θ₀`.
pub fn compare_processes(q: &Quadratic, theta0: &[f64], eta: f64, b: usize) -> RegResult<ProcessComparison> {
    Ok(ProcessComparison {
        without_replacement: exact_moments(q, theta0, eta, b, Process::WithoutReplacement)?,
        with_replacement: exact_moments(q, theta0, eta, b, Process::WithReplacement)?,
        noise_isotropic: exact_moments(q, theta0, eta, b, Process::NoiseInjected(NoiseShape::Isotropic))?,
        noise_diagonal: exact_moments(q, theta0, eta, b, Process::NoiseInjected(NoiseShape::Diagonal))?,
        noise_full: exact_moments(q, theta0, eta, b, Process::NoiseInjected(NoiseShape::Full))?,
        predicted_drift: epoch_drift(q, theta0, eta, b)?.drift,
    })
}

// ---- Measurements on networks: the weighted noise trace, flat distances, matched noise ----------------

/// Top Hessian eigenpairs `(λ_j, v_j)` of the full-batch loss at `θ` from `steps` Lanczos steps (full
/// reorthogonalization, so the Ritz vectors are orthonormal), largest first. `m` pairs are returned
/// (fewer if `p < m`).
pub fn top_hessian_pairs(
    obj: &dyn Objective,
    theta: &[f64],
    m: usize,
    steps: usize,
    seed: u64,
) -> RegResult<Vec<(f64, Vec<f64>)>> {
    if m == 0 || steps < m {
        return Err(RegError::invalid(
            "lanczos_steps",
            format!("need 1 ≤ m ≤ steps, got m = {m}, steps = {steps}"),
        ));
    }
    let op = imreg_spectra::HessianOperator::new(obj, theta, Batch::Full)?;
    let res = imreg_spectra::lanczos(
        &op,
        &imreg_spectra::LanczosOptions {
            max_iter: steps,
            k_top: m,
            tol: 0.0,
            seed,
            check_every: steps,
            ..Default::default()
        },
    )?;
    res.top
        .into_iter()
        .map(|r| {
            let v = r
                .vector
                .ok_or_else(|| RegError::invalid("lanczos", "no Ritz vector returned"))?;
            Ok((r.value, v))
        })
        .collect()
}

/// `(tr Σ(θ), [v_jᵀ Σ(θ) v_j]_j)` for the per-sample gradient covariance `Σ = (1/n) Σ_p g_p g_pᵀ`
/// (`g_p = ∇ℓ_p − ∇L`), in one streamed pass over the per-example gradients:
/// `tr Σ = (1/n) Σ_p ‖∇ℓ_p‖² − ‖∇L‖²`, `vᵀΣv = (1/n) Σ_p (vᵀ∇ℓ_p)² − (vᵀ∇L)²`.
pub fn noise_covariance_along(
    obj: &dyn Objective,
    theta: &[f64],
    directions: &[Vec<f64>],
) -> RegResult<(f64, Vec<f64>)> {
    let p = obj.dim();
    if let Some(v) = directions.iter().find(|v| v.len() != p) {
        return Err(RegError::invalid(
            "directions",
            format!("every direction needs p = {p} entries, got {}", v.len()),
        ));
    }
    let n = obj.n_examples();
    let mean = obj.grad(theta, Batch::Full)?;
    let mut sq = 0.0;
    let mut along = vec![0.0; directions.len()];
    obj.per_example_grads(theta, Batch::Full, 64, &mut |_, rows| {
        for row in rows.rows() {
            sq += row.iter().map(|v| v * v).sum::<f64>();
            for (a, v) in along.iter_mut().zip(directions) {
                let d: f64 = row.iter().zip(v).map(|(x, y)| x * y).sum();
                *a += d * d;
            }
        }
        Ok(())
    })?;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let nf = n as f64;
    let trace = sq / nf - dot(&mean, &mean);
    let along = along
        .into_iter()
        .zip(directions)
        .map(|(a, v)| a / nf - dot(v, &mean).powi(2))
        .collect();
    Ok((trace, along))
}

/// The trace of the noise covariance weighted as the epoch regularizer of SGD without replacement weighs it
/// (`docs/theory/without-replacement.md` §Eigen-directions): along an eigen-direction of `H` with `ηλ`, the
/// epoch weight `epoch_weight(ηλ, k)`, normalized by the flat weight `k(k−1)/2`. With the top eigenpairs
/// `(λ_j, v_j)` and every other direction counted as flat,
/// `T_w = Σ_j ŵ_j v_jᵀΣv_j + (tr Σ − Σ_j v_jᵀΣv_j)`, `ŵ_j = epoch_weight(ηλ_j, k)/(k(k−1)/2)`.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedNoiseTrace {
    /// `tr Σ(θ)`.
    pub trace: f64,
    /// `T_w`.
    pub weighted: f64,
    /// `λ_j` of the pairs used.
    pub eigenvalues: Vec<f64>,
    /// `v_jᵀ Σ v_j`.
    pub variances: Vec<f64>,
    /// `ŵ_j`.
    pub weights: Vec<f64>,
}

/// [`WeightedNoiseTrace`] at `θ` for step size `eta` and `k ≥ 2` steps per epoch, given orthonormal top
/// eigenpairs of `H(θ)` (e.g. from [`top_hessian_pairs`]).
pub fn weighted_noise_trace(
    obj: &dyn Objective,
    theta: &[f64],
    eta: f64,
    k: usize,
    pairs: &[(f64, Vec<f64>)],
) -> RegResult<WeightedNoiseTrace> {
    check_positive("eta", eta)?;
    if k < 2 {
        return Err(RegError::invalid(
            "k",
            format!("need ≥ 2 steps per epoch, got {k}"),
        ));
    }
    let vecs: Vec<Vec<f64>> = pairs.iter().map(|(_, v)| v.clone()).collect();
    let (trace, variances) = noise_covariance_along(obj, theta, &vecs)?;
    let flat = (k * (k - 1)) as f64 / 2.0;
    let weights: Vec<f64> = pairs
        .iter()
        .map(|(l, _)| epoch_weight(eta * l, k) / flat)
        .collect();
    let weighted = trace
        - variances
            .iter()
            .zip(&weights)
            .map(|(v, w)| (1.0 - w) * v)
            .sum::<f64>();
    Ok(WeightedNoiseTrace {
        trace,
        weighted,
        eigenvalues: pairs.iter().map(|(l, _)| *l).collect(),
        variances,
        weights,
    })
}

/// `(‖(I − VVᵀ)δ‖, ‖VVᵀδ‖)` for orthonormal columns `V` (the sharp directions): the parts of a displacement
/// `δ` along the flat complement and along the sharp subspace.
pub fn flat_and_sharp_norms(sharp: &[Vec<f64>], delta: &[f64]) -> (f64, f64) {
    let coeffs: Vec<f64> = sharp
        .iter()
        .map(|v| v.iter().zip(delta).map(|(a, b)| a * b).sum())
        .collect();
    let sharp_sq: f64 = coeffs.iter().map(|c| c * c).sum();
    let total: f64 = delta.iter().map(|v| v * v).sum();
    ((total - sharp_sq).max(0.0).sqrt(), sharp_sq.sqrt())
}

/// The isotropic noise level `σ` of noise-injected GD `θ ← θ − η(∇L + ξ)`, `ξ ~ N(0, σ²I)`, that matches
/// the total variance of SGD's batch noise at `θ`: `pσ² = tr S = ((n − b)/(n − 1)) tr Σ(θ)/b`.
pub fn matched_isotropic_sigma(obj: &dyn Objective, theta: &[f64], b: usize) -> RegResult<f64> {
    let n = obj.n_examples();
    if b == 0 || b > n || n < 2 {
        return Err(RegError::invalid(
            "batch_size",
            format!("must lie in 1..={n} (n ≥ 2), got {b}"),
        ));
    }
    let (trace, _) = noise_covariance_along(obj, theta, &[])?;
    let s = (n - b) as f64 / (n - 1) as f64 * trace.max(0.0) / b as f64;
    Ok((s / obj.dim() as f64).sqrt())
}

/// The first recorded step whose value is at most `threshold` (`None`: never), e.g. the saddle-escape time
/// as the first step where the training loss drops below a fixed fraction of its value at the saddle.
pub fn first_step_at_most(series: &[(usize, f64)], threshold: f64) -> Option<usize> {
    series.iter().find(|(_, v)| *v <= threshold).map(|(s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_polynomial_sums() {
        assert_eq!(regularizer_weight(0.0, 5), 5.0);
        assert_eq!(epoch_weight(0.0, 6), 15.0);
        // sharp: (1 − a^i)/(ηλ)
        let w = regularizer_weight(0.5, 7);
        assert!((w - (1.0 - 0.5f64.powi(7)) / 0.5).abs() < 1e-15);
    }

    #[test]
    fn subsets_count_binomial() {
        let items: Vec<usize> = (0..6).collect();
        assert_eq!(subsets_of(&items, 2).len(), 15);
        assert_eq!(subsets_of(&items, 6).len(), 1);
    }
}
