//! The edge of stochastic stability (Andreyev & Beneventano 2024/25).
//!
//! SGD `θ_{t+1} = θ_t − η∇C_{B_t}(θ_t)` with random-reshuffling batches of size `b`. Along the run, every
//! `k` steps (before the update), with `g_B = ∇C_B`, `H_B = ∇²C_B`, `B` a uniformly random size-`b` subset of
//! the training set:
//!
//! - `λ_max = λ_max(∇²C)`, the full-batch sharpness (Lanczos, warm-started);
//! - **batch sharpness** in both published variants, `E_B[g_BᵀH_Bg_B/‖g_B‖²]` (mean of ratios, Def. 3 and the
//!   official code's default) and `E_B[g_BᵀH_Bg_B]/E_B[‖g_B‖²]` (ratio of means, App. F), Monte Carlo over
//!   fresh seeded batches with a relative-standard-error stop (as the official code);
//! - **MiniBS** `E_B[λ_max(H_B)]` (v1 of the paper), Monte Carlo, Lanczos per batch.
//!
//! Claim (`docs/theory/stochastic-stability.md` §Claims): batch sharpness rises to `2/η` and hovers there,
//! while `λ_max` plateaus **below** `2/η`, the lower the smaller `b`. Exact facts used as sanity bounds
//! (§Exact facts there): `MiniBS ≥ λ_max` (Jensen) and mean-of-ratios batch sharpness `≤ MiniBS` (Rayleigh
//! quotients), for every θ.
use crate::tracking::{
    epoch_stream_reshuffling, sharpness_probe, train_options, Hover, LossCurve, TopEigen, TrackError,
    TrackResult,
};
use imreg_objective::Objective;
use imreg_sgd::observe::{BatchSharpnessProbe, Cadence, MiniBsProbe, Scheduled};
use imreg_sgd::train::{train, Optimizer, RunOutcome};
use imreg_spectra::{BatchSharpness, LanczosOptions, MiniBs, MonteCarloOptions};
use rayon::prelude::*;

/// Options of the MiniBS measurement.
#[derive(Clone, Debug)]
pub struct MiniBsOptions {
    /// Monte Carlo over batches (the seed is re-derived at every measurement step).
    pub monte_carlo: MonteCarloOptions,
    /// Lanczos steps per batch Hessian.
    pub lanczos_iters: usize,
}

impl Default for MiniBsOptions {
    fn default() -> Self {
        MiniBsOptions {
            monte_carlo: MonteCarloOptions {
                seed: 0,
                min_batches: 10,
                max_batches: 50,
                rel_se_tol: 0.05,
                round: 10,
            },
            lanczos_iters: 20,
        }
    }
}

/// Options of [`edge_of_stochastic_stability`].
#[derive(Clone, Debug)]
pub struct EossOptions {
    /// Step size η.
    pub lr: f64,
    /// SGD batch size `b` (random reshuffling).
    pub batch_size: usize,
    /// SGD steps.
    pub steps: usize,
    /// Measure every this many steps.
    pub every: usize,
    /// Seed of the batch order (and, derived per step, of the Monte Carlo batches).
    pub seed: u64,
    /// Lanczos steps per full-batch `λ_max` (warm-started).
    pub lanczos_iters: usize,
    /// Lanczos relative tolerance.
    pub lanczos_tol: f64,
    /// Monte Carlo of batch sharpness (its seed is re-derived per step from [`EossOptions::seed`]).
    pub batch_sharpness: MonteCarloOptions,
    /// MiniBS (`None`: not measured).
    pub mini_bs: Option<MiniBsOptions>,
    /// Loss above which the run counts as diverged.
    pub divergence_loss: f64,
}

impl Default for EossOptions {
    fn default() -> Self {
        EossOptions {
            lr: 0.1,
            batch_size: 32,
            steps: 2000,
            every: 50,
            seed: 0,
            lanczos_iters: 20,
            lanczos_tol: 1e-8,
            batch_sharpness: MonteCarloOptions {
                seed: 0,
                min_batches: 20,
                max_batches: 400,
                rel_se_tol: 0.01,
                round: 20,
            },
            mini_bs: Some(MiniBsOptions::default()),
            divergence_loss: 1e6,
        }
    }
}

/// The quantities measured at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EossMeasurement {
    /// `λ_max(∇²C)`.
    pub lambda_max: TopEigen,
    /// Batch sharpness, both variants.
    pub batch_sharpness: BatchSharpness,
    /// MiniBS, if measured.
    pub mini_bs: Option<MiniBs>,
}

/// One EoSS run.
#[derive(Clone, Debug, PartialEq)]
pub struct EossRun {
    pub lr: f64,
    pub batch_size: usize,
    /// `2/η`.
    pub threshold: f64,
    /// Measurement steps.
    pub steps: Vec<usize>,
    /// Full-batch loss at the measurement steps.
    pub loss: Vec<f64>,
    pub measurements: Vec<EossMeasurement>,
    /// Completed, or diverged at a step (a batch loss or a measured full-batch loss above
    /// [`EossOptions::divergence_loss`]).
    pub outcome: RunOutcome,
    /// Mean-of-ratios batch sharpness over the second half, relative to `2/η`.
    pub hover_batch_sharpness: Hover,
    /// Ratio-of-means batch sharpness over the second half, relative to `2/η`.
    pub hover_ratio_of_means: Hover,
    /// `λ_max` over the second half, relative to `2/η`.
    pub lambda_max_second_half: Hover,
}

impl EossRun {
    /// `λ_max` series.
    pub fn lambda_max(&self) -> Vec<f64> {
        self.measurements.iter().map(|m| m.lambda_max.value).collect()
    }
    /// Mean-of-ratios batch sharpness series.
    pub fn batch_sharpness(&self) -> Vec<f64> {
        self.measurements
            .iter()
            .map(|m| m.batch_sharpness.mean_of_ratios.value)
            .collect()
    }
    /// Ratio-of-means batch sharpness series.
    pub fn batch_sharpness_ratio_of_means(&self) -> Vec<f64> {
        self.measurements
            .iter()
            .map(|m| m.batch_sharpness.ratio_of_means.value)
            .collect()
    }
    /// MiniBS series (NaN where not measured).
    pub fn mini_bs(&self) -> Vec<f64> {
        self.measurements
            .iter()
            .map(|m| m.mini_bs.map_or(f64::NAN, |x| x.estimate.value))
            .collect()
    }
}

/// SGD from `θ₀` with `λ_max`, batch sharpness (both variants) and MiniBS tracked every `opts.every` steps.
/// Batches by [`epoch_stream_reshuffling`] with seed [`EossOptions::seed`]; divergence is reported in
/// [`EossRun::outcome`].
pub fn edge_of_stochastic_stability<O: Objective + ?Sized>(
    obj: &O,
    theta0: &[f64],
    opts: &EossOptions,
) -> TrackResult<EossRun> {
    let b = opts.batch_size;
    let mut sharp = sharpness_probe(opts.lanczos_iters, opts.lanczos_tol, opts.seed)?;
    // Each Monte Carlo estimate draws fresh batches at every step (`step_seed` of its base seed).
    let mut bs = BatchSharpnessProbe::new(
        b,
        MonteCarloOptions {
            seed: opts.seed,
            ..opts.batch_sharpness
        },
    );
    let mut mbs = opts.mini_bs.as_ref().map(|m| MiniBsProbe {
        batch_size: b,
        monte_carlo: MonteCarloOptions {
            seed: opts.seed ^ 0x4D49_4E49,
            ..m.monte_carlo
        },
        lanczos: LanczosOptions {
            max_iter: m.lanczos_iters,
            tol: opts.lanczos_tol,
            seed: opts.seed,
            ..Default::default()
        },
        records: Vec::new(),
    });
    // The full-batch loss first: a blown-up loss ends the run before the measurements at that iterate.
    let mut loss = LossCurve::new(opts.divergence_loss);
    let every = Cadence::Every(opts.every);
    let mut observers = vec![
        Scheduled::new(every, &mut loss),
        Scheduled::new(every, &mut sharp),
        Scheduled::new(every, &mut bs),
    ];
    if let Some(m) = mbs.as_mut() {
        observers.push(Scheduled::new(every, m));
    }
    let train_opts = train_options(opts.lr, opts.steps, opts.seed, opts.divergence_loss);
    let method = Optimizer::sgd(epoch_stream_reshuffling(b));
    let end = train::<_, TrackError>(obj, theta0, &method, &train_opts, &mut observers)?;
    // A measurement step is recorded by every observer or (diverged there) by the loss alone.
    let steps: Vec<usize> = sharp.records.iter().map(|r| r.0).collect();
    let mut mini_bs = mbs.map(|m| m.records.into_iter().map(|r| r.1));
    let measurements: Vec<EossMeasurement> = sharp
        .records
        .iter()
        .zip(&bs.records)
        .map(|(l, b)| EossMeasurement {
            lambda_max: l.1,
            batch_sharpness: b.1,
            mini_bs: mini_bs.as_mut().and_then(Iterator::next),
        })
        .collect();
    let threshold = 2.0 / opts.lr;
    let from = opts.steps / 2;
    let series = |f: fn(&EossMeasurement) -> f64| measurements.iter().map(f).collect::<Vec<f64>>();
    let bs = series(|m| m.batch_sharpness.mean_of_ratios.value);
    let rm = series(|m| m.batch_sharpness.ratio_of_means.value);
    let lm = series(|m| m.lambda_max.value);
    Ok(EossRun {
        lr: opts.lr,
        batch_size: b,
        threshold,
        hover_batch_sharpness: Hover::over(&steps, &bs, from, threshold),
        hover_ratio_of_means: Hover::over(&steps, &rm, from, threshold),
        lambda_max_second_half: Hover::over(&steps, &lm, from, threshold),
        loss: loss.records.iter().take(steps.len()).map(|r| r.1).collect(),
        measurements,
        steps,
        outcome: end.outcome,
    })
}

/// Runs [`edge_of_stochastic_stability`] for each options set, rayon-parallel, results in input order
/// (bitwise deterministic).
pub fn sweep_edge_of_stochastic_stability<O: Objective + ?Sized>(
    obj: &O,
    theta0: &[f64],
    runs: &[EossOptions],
) -> Vec<TrackResult<EossRun>> {
    runs.par_iter()
        .map(|o| edge_of_stochastic_stability(obj, theta0, o))
        .collect()
}
