//! The checks of the MLP experiments (see `docs/edge-of-stability.md` for the measured values):
//! `eos.mlp-edge-of-stability`, registered, and `eos.edge-of-stochastic-stability`, not registered (see
//! [`unregistered_checks`]).
use imreg_check::{loglog_slope, Check, CheckContext, CheckError, OrCheckError, Outcome};
use imreg_eos::break_even::{break_even, conjecture_one, BreakEvenOptions, BreakEvenRun};
use imreg_eos::edge_of_stability::{
    edge_of_stability, sweep_edge_of_stability, DigitsMlp, EosOptions, EosRun, GfHorizon, GfOptions,
};
use imreg_eos::stochastic_stability::{
    sweep_edge_of_stochastic_stability, EossOptions, EossRun, MiniBsOptions,
};
use imreg_eos::tracking::{epoch_stream_reshuffling, Hover, RunOutcome};
use imreg_objective::models::Mlp;
use imreg_plot::{Figure, Series};
use imreg_sgd::sampler::Sampler;
use imreg_spectra::MonteCarloOptions;
use rayon::prelude::*;
use std::path::PathBuf;

fn xs(steps: &[usize]) -> Vec<f64> {
    steps.iter().map(|&s| s as f64).collect()
}

/// The EoS setting of the check: problem, step sizes and their step counts, measurement period.
pub struct EosSetting {
    pub problem: DigitsMlp,
    /// `(η, GD steps)`; each run lasts about three times its first crossing, so that the overshoot right
    /// after the crossing (up to ≈ 1.15 × 2/η, ≈ 1.2 × the crossing step) lies in the first half.
    pub runs: Vec<(f64, usize)>,
    /// Sharpness (and the GD–GF distance) every this many steps.
    pub every: usize,
    /// Gradient flow alongside each run, to 1.5 × its crossing time (full mode).
    pub flow: bool,
    /// Step sizes of the first-order study, as fractions of the largest η.
    pub order_fractions: Vec<f64>,
}

impl EosSetting {
    /// Full mode: 1 000 digits, tanh **64-400-400-10** (p = 187 210), η ∈ {0.07, 0.08, 0.09} (2/η = 28.6,
    /// 25, 22.2, reached by progressive sharpening from λ_max(θ₀) = 7.43 at steps ≈ 1 350, 1 000, 800), with
    /// gradient flow alongside. Width 400 is what the issue's "GD tracks gradient flow to a relative distance
    /// < 1e-3 until the crossing" needs: before the crossing the distance is GD's Euler error ≈ c·η, and the
    /// crossing needs 2/η within the reach of progressive sharpening. At width 100 (Cohen's fc-tanh scaled to
    /// the digits) sharpening saturates near 20 and c ≈ 0.02–0.05 (5.4e-3 at η = 0.1); width 200 gives 1.8e-3
    /// at η = 0.1 and never reaches 2/η = 40; width 400 gives 7.8e-4 at η = 0.08 and 6.1e-4 at η = 0.05
    /// (`docs/edge-of-stability.md`). Quick mode (CI): 512 digits, width 100, η ∈ {0.35, 0.4} (crossings by
    /// step ≈ 160), 600 steps, gradient flow only in the first-order study.
    pub fn new(quick: bool) -> Self {
        if quick {
            EosSetting {
                problem: DigitsMlp::cohen(512),
                runs: vec![(0.35, 600), (0.4, 600)],
                every: 20,
                flow: false,
                order_fractions: vec![0.5, 0.25, 0.125],
            }
        } else {
            EosSetting {
                problem: DigitsMlp {
                    hidden: vec![400, 400],
                    ..DigitsMlp::cohen(1000)
                },
                runs: vec![(0.07, 3800), (0.08, 2700), (0.09, 2100)],
                every: 100,
                flow: true,
                order_fractions: vec![1.0, 0.5, 0.25],
            }
        }
    }

    pub fn options(&self, lr: f64, steps: usize) -> EosOptions {
        EosOptions {
            lr,
            steps,
            every: self.every,
            gradient_flow: self.flow.then(|| GfOptions {
                horizon: GfHorizon::CrossingTimes(1.5),
                // The flow's sharpness is drawn in the figure only: every fourth measurement is enough.
                sharpness_every: Some(4 * self.every),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// `eos.mlp-edge-of-stability`.
pub fn check_mlp_eos(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    let set = EosSetting::new(ctx.quick);
    let (mlp, theta0) = set.problem.build().or_check()?;
    let opts: Vec<EosOptions> = set
        .runs
        .iter()
        .map(|&(lr, steps)| set.options(lr, steps))
        .collect();
    let runs: Vec<EosRun> = sweep_edge_of_stability(&mlp, &theta0, &opts)
        .into_iter()
        .collect::<Result<_, _>>()
        .or_check()?;
    let mut parts = Vec::new();
    for (r, &(_, steps)) in runs.iter().zip(&set.runs) {
        let eta = r.lr;
        parts.push(Outcome::new(
            format!(
                "η={eta}: completes, λ_max(θ₀) < 2/η and first reaches 2/η = {:.3} before the second half",
                r.threshold
            ),
            format!(
                "{:?}, λ₀ = {:.3}, crossing at step {:?}",
                r.outcome, r.sharpness[0].value, r.first_crossing
            ),
            r.outcome == RunOutcome::Completed
                && r.sharpness[0].value < r.threshold
                && r.first_crossing.is_some_and(|c| c < steps / 2),
        ));
        // ±10%: the band; Cohen et al. report λ_max "at, or just above" 2/η.
        parts.push(Outcome::new(
            format!("η={eta}: λ_max/(2/η) ∈ [0.9, 1.1] over the second half"),
            format!(
                "[{:.3}, {:.3}] (mean {:.3}, {} points)",
                r.hover.min_ratio, r.hover.max_ratio, r.hover.mean_ratio, r.hover.count
            ),
            r.hover.within(0.10),
        ));
        if let Some(gf) = &r.gradient_flow {
            // Cohen et al.: GD tracks gradient flow (at equal t = ηk) until λ_max first reaches 2/η ...
            parts.push(Outcome::new(
                format!(
                    "η={eta}: GD tracks gradient flow until the crossing: ‖θ_k − θ_GF(ηk)‖/‖θ_GF(ηk)‖ < 1e-3"
                ),
                format!(
                    "max over the {} measurements before step {:?}: {:.3e}",
                    gf.steps
                        .iter()
                        .filter(|&&s| r.first_crossing.is_none_or(|c| s < c))
                        .count(),
                    r.first_crossing,
                    gf.max_before_crossing
                ),
                r.first_crossing.is_some() && gf.max_before_crossing < 1e-3,
            ));
            // ... and leaves it after: half the crossing time later the distance is several times the
            // largest distance before it.
            parts.push(Outcome::new(
                format!("η={eta}: GD leaves gradient flow after the crossing (distance at 1.5× crossing ≥ 2× before)"),
                format!("{:.3e} at step {:?}", gf.final_distance, gf.steps.last()),
                gf.final_distance >= 2.0 * gf.max_before_crossing,
            ));
        }
    }
    parts.push(first_order_tracking(&mlp, &theta0, &set, &runs)?);
    let mut outcome = Outcome::all(parts);
    if let Some(dir) = ctx.figure_dir("eos.mlp-edge-of-stability") {
        outcome = outcome.with_figures(eos_figures(&set.problem, &runs, &dir)?);
    }
    Ok(outcome)
}

/// GD tracks gradient flow to first order before the crossing: at a fixed time `t₀` before every run's
/// crossing, `‖θ_GD(t₀/η) − θ_GF(t₀)‖/‖θ_GF(t₀)‖` is `O(η)` (Euler's global error), log-log slope 1 ± 0.15
/// over η/2, η/4, η/8 (η the largest step size).
fn first_order_tracking(
    mlp: &Mlp,
    theta0: &[f64],
    set: &EosSetting,
    runs: &[EosRun],
) -> Result<Outcome, CheckError> {
    let eta_max = set.runs.iter().map(|r| r.0).fold(0.0, f64::max);
    let run = runs
        .iter()
        .find(|r| r.lr == eta_max)
        .ok_or_else(|| "missing run".to_string())?;
    let crossing = run
        .first_crossing
        .ok_or_else(|| "no crossing at the largest η".to_string())?;
    // t₀ = half the crossing time of the largest η, on the grid of every η below.
    let k0 = (crossing / 2).max(4) / 4 * 4;
    let t0 = eta_max * k0 as f64;
    let etas: Vec<f64> = set.order_fractions.iter().map(|f| eta_max * f).collect();
    let dists: Vec<f64> = etas
        .par_iter()
        .map(|&eta| {
            let steps = (t0 / eta).round() as usize;
            let opts = EosOptions {
                every: steps,
                lanczos_iters: 2,
                gradient_flow: Some(GfOptions {
                    horizon: GfHorizon::Step(steps),
                    sharpness_every: None,
                    ..Default::default()
                }),
                ..set.options(eta, steps)
            };
            edge_of_stability(mlp, theta0, &opts)
                .map(|r| r.gradient_flow.map_or(f64::NAN, |g| g.final_distance))
        })
        .collect::<Result<_, _>>()
        .or_check()?;
    let fit = loglog_slope(&etas, &dists)?;
    // First-order accuracy of Euler: the slope is 1; ±0.15 is the tolerance of every order claim here (the
    // O(η²) remainder bends the fit by a few percent over a factor 4 in η).
    Ok(Outcome::new(
        format!("GD–GF relative distance at t₀ = {t0:.1} (before every crossing) is O(η): slope 1 ± 0.15"),
        format!(
            "η = {etas:?}: distances {:?}, slope {:.3} ± {:.3}; η for 1e-3 ≈ {:.3}",
            dists.iter().map(|d| format!("{d:.2e}")).collect::<Vec<_>>(),
            fit.slope,
            fit.slope_se,
            etas[0] * 1e-3 / dists[0]
        ),
        (fit.slope - 1.0).abs() <= 0.15,
    ))
}

fn eos_figures(
    problem: &DigitsMlp,
    runs: &[EosRun],
    dir: &std::path::Path,
) -> Result<Vec<PathBuf>, CheckError> {
    let widths: Vec<String> = problem.widths().iter().map(usize::to_string).collect();
    let mut fig = Figure::new(format!(
        "GD on tanh MLP {}, ½-MSE, {} digits: sharpness vs step",
        widths.join("-"),
        problem.n_examples
    ))
    .x_label("step")
    .y_label("λ_max(∇²C)");
    let mut dist = Figure::new("GD vs gradient flow at t = ηk: ‖θ_GD − θ_GF‖/‖θ_GF‖")
        .x_label("step")
        .y_label("relative distance")
        .log_y();
    for r in runs {
        fig = fig
            .series(Series::line(
                format!("GD η={}", r.lr),
                xs(&r.steps),
                r.sharpness_values(),
            ))
            .hline(format!("2/η for η = {}", r.lr), r.threshold);
        if let Some(gf) = &r.gradient_flow {
            if !gf.sharpness.is_empty() {
                fig = fig.series(Series::line(
                    format!("gradient flow (t = {}k)", r.lr),
                    xs(&gf.sharpness_steps),
                    gf.sharpness.clone(),
                ));
            }
            dist = dist.series(Series::line(
                format!("η={}", r.lr),
                xs(&gf.steps),
                gf.relative_distance.clone(),
            ));
        }
    }
    let mut files = fig.save(dir, "sharpness_vs_step").or_check()?;
    // Quick runs do not integrate the gradient flow alongside; the distance figure exists only when they do.
    if !dist.series.is_empty() {
        files.extend(dist.save(dir, "gd_vs_gradient_flow").or_check()?);
    }
    let mut loss = Figure::new("GD full-batch loss")
        .x_label("step")
        .y_label("loss")
        .log_y();
    for r in runs {
        let steps: Vec<f64> = (0..r.loss.len()).map(|s| s as f64).collect();
        loss = loss.series(Series::line(format!("η={}", r.lr), steps, r.loss.clone()));
    }
    files.extend(loss.save(dir, "loss_vs_step").or_check()?);
    Ok(files)
}

/// The EoSS setting of the check.
pub struct EossSetting {
    pub problem: DigitsMlp,
    pub lr: f64,
    pub batch_sizes: Vec<usize>,
    /// Batch-order seeds: every batch size runs once per seed.
    pub seeds: Vec<u64>,
    pub steps: usize,
    pub every: usize,
}

/// Initialization scale of the EoSS runs: `0.2 ×` PyTorch's default, the official EoSS code's default
/// `--init-scale 0.2` (docs/theory/stochastic-stability.md §Measurement; read here as a multiplier of every
/// layer's default bound).
pub const EOSS_INIT_SCALE: f64 = 0.2;

impl EossSetting {
    /// Full mode: 1 000 digits, tanh 64-100-100-10 at `0.2 ×` the default initialization, ½-MSE,
    /// **η = 0.75** (2/η = 2.67), b ∈ {8, 12}, 6 000 steps (48 and 72 epochs), measurements every 100 steps.
    /// Quick (CI): the same with 256 digits and 1 500 steps.
    ///
    /// Why this setting (measured, `docs/edge-of-stability.md`): on the digits, SGD fits the data (loss
    /// ≈ 2e-3) and progressive sharpening stops before batch sharpness reaches 2/η unless η is large: its
    /// plateau rises with η and falls with b (b = 8: 0.46, 0.68, 0.84 × 2/η at η = 0.2, 0.4, 0.6 with the
    /// default init; at η = 0.5 it stays at 0.82 from step 5 000 to 12 000, so longer runs do not help, nor
    /// do N = 1797 or widths 32/50). The loss convention is no lever: SGD on the MSE without ½ at η is SGD on
    /// the ½-MSE at 2η, bitwise, and batch sharpness/(2/η) is the same number. The default init starts at
    /// batch sharpness ≈ 0.93 × 2/η for η = 0.5 (b = 8 diverges from η = 0.7 on); the 0.2-scaled init starts
    /// at ≈ 0.38 × 2/η for η = 0.75 and so admits the larger η at which the plateau reaches the band.
    /// Over 6 batch-order seeds at η = 0.75, second-half means: b = 8: 0.94–0.98, b = 12: 0.87–0.93 (b = 16,
    /// 4 seeds of 8 000 steps: 0.84–0.85, below the band), and one of the six b = 8 runs diverged (a catapult
    /// that did not recover, step 3 743). η, b and the initialization scale were therefore **selected by
    /// that exploration**: the check shows that a setting exists on the digits where batch sharpness hovers
    /// at 2/η, not that it does so generally (below η ≈ 0.6 it does not: not reproduced there). The single
    /// batch-order seed the check once kept (7, after measuring six) is replaced by the seeds 0, 1, 2, fixed
    /// before they were run, and every claim must hold for each of them.
    pub fn new(quick: bool) -> Self {
        let problem = |n| DigitsMlp {
            init_scale: EOSS_INIT_SCALE,
            ..DigitsMlp::cohen(n)
        };
        if quick {
            EossSetting {
                problem: problem(256),
                lr: 0.75,
                batch_sizes: vec![8, 12],
                seeds: vec![0, 1, 2],
                steps: 1500,
                every: 100,
            }
        } else {
            EossSetting {
                problem: problem(1000),
                lr: 0.75,
                batch_sizes: vec![8, 12],
                seeds: vec![0, 1, 2],
                steps: 6000,
                every: 100,
            }
        }
    }

    pub fn options(&self, b: usize, seed: u64, quick: bool) -> EossOptions {
        EossOptions {
            lr: self.lr,
            batch_size: b,
            steps: self.steps,
            every: self.every,
            seed,
            batch_sharpness: MonteCarloOptions {
                seed: 0,
                min_batches: 40,
                max_batches: if quick { 200 } else { 400 },
                rel_se_tol: 0.01,
                round: 20,
            },
            mini_bs: Some(MiniBsOptions {
                monte_carlo: MonteCarloOptions {
                    seed: 0,
                    min_batches: 10,
                    max_batches: if quick { 20 } else { 50 },
                    rel_se_tol: 0.05,
                    round: 10,
                },
                lanczos_iters: 20,
            }),
            ..Default::default()
        }
    }
}

/// The edge-of-stochastic-stability check, **not registered**: with the batch-order seeds fixed in advance
/// (0, 1, 2, in place of the seed 7 once kept after measuring six), its full mode passes, but its quick mode
/// (the scale CI runs) fails one claim: in one of the six quick runs (b = 8, seed 2) the ratio-of-means batch
/// sharpness reaches 1.200 × 2/η at one measurement, above the 1.15 × 2/η that quick mode asserts for every
/// point. A check that fails as specified is not put where CI runs it, and it was not re-specified after the
/// fact; `cargo test -p imreg-theorems --release --test eos -- --ignored --nocapture` runs it (`EOS_FULL=1`:
/// full mode).
pub fn unregistered_checks() -> Vec<Check> {
    vec![Check {
        id: "eos.edge-of-stochastic-stability",
        claim: "under SGD batch sharpness hovers at 2/η (full mode: second-half mean over batch-order seeds 0, 1, 2 \
                within ±15%, b = 8 and 12; quick: ≤ 1.15·2/η at every point) while λ_max plateaus below 2/η, lower \
                for smaller batches; MiniBS ≥ λ_max; at η = 0.75 and init 0.2 × default, a setting selected by \
                measurement; full mode also: break-even conjecture 1 for λ_H¹",
        run: check_eoss,
    }]
}

/// The EoSS band: batch sharpness within ±15% of 2/η.
const EOSS_BAND: f64 = 0.15;

/// `eos.edge-of-stochastic-stability`.
///
/// Full mode asserts the claim for every batch size of [`EossSetting`]: the second-half mean of the
/// mean-of-ratios batch sharpness lies in `[0.85, 1.15] · 2/η` and `λ_max < 2/η` over the second half, with
/// a lower `λ_max` for the smaller batch; it also asserts the `λ_H¹` part of the break-even conjecture 1 on
/// [`break_even_study`] (maxima over 3 000 steps smaller for the larger η and for the smaller b). Quick mode
/// (256 digits, 1 500 steps: the plateau of the larger batch is not reached) asserts the weaker facts that
/// hold there (batch sharpness ≤ 1.15 · 2/η, above `λ_max` at the smallest b) and reports the band.
pub fn check_eoss(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    let set = EossSetting::new(ctx.quick);
    let (mlp, theta0) = set.problem.build().or_check()?;
    let runs_of = seeded_runs(&set.batch_sizes, &set.seeds);
    let opts: Vec<EossOptions> = runs_of
        .iter()
        .map(|&(b, s)| set.options(b, s, ctx.quick))
        .collect();
    // Break-even (Jastrzębski's conjecture 1) along GD/SGD from the same θ₀: measured in full mode (quick
    // runs of 600 steps end while λ_H¹ is still rising, so their maxima compare nothing), and for figures.
    // Run beside the EoSS sweep so that both share the cores.
    let figure_dir = ctx.figure_dir("eos.edge-of-stochastic-stability");
    let (runs, break_even_runs) = rayon::join(
        || {
            sweep_edge_of_stochastic_stability(&mlp, &theta0, &opts)
                .into_iter()
                .collect::<Result<Vec<EossRun>, _>>()
                .or_check()
        },
        || {
            (!ctx.quick || figure_dir.is_some())
                .then(|| break_even_study(&mlp, &theta0, ctx.quick))
                .transpose()
        },
    );
    let (runs, break_even_runs) = (runs?, break_even_runs?);
    let mut parts = Vec::new();
    let band = if ctx.quick {
        RunBandClaim::UpperEdge
    } else {
        RunBandClaim::Reported
    };
    for (r, &(b, seed)) in runs.iter().zip(&runs_of) {
        parts.extend(eoss_run_outcomes(
            r,
            &format!("b={b}, seed {seed}"),
            set.steps,
            band,
            false,
        ));
    }
    let over_seeds = OverSeeds {
        runs: &runs,
        seeds: &set.seeds,
    };
    if !ctx.quick {
        // The claim, exactly: ±15% around 2/η, on the second-half mean of the mean-of-ratios
        // (Def. 3, the official code's default) batch sharpness, averaged over the seeds.
        for &b in &set.batch_sizes {
            parts.push(over_seeds.band("", b));
        }
    }
    // Lower λ_max for smaller batches (docs/theory/stochastic-stability.md §Claims).
    parts.push(over_seeds.lambda_max_increasing("", &set.batch_sizes));
    let small = *set
        .batch_sizes
        .first()
        .ok_or_else(|| "no batch sizes".to_string())?;
    let (bs, lm) = (
        over_seeds.mean_and_se(small, |r| r.hover_batch_sharpness.mean_ratio),
        over_seeds.mean_and_se(small, |r| r.lambda_max_second_half.mean_ratio),
    );
    parts.push(Outcome::new(
        format!("b={small}: batch sharpness > λ_max over the second half (means over seeds)"),
        format!("{:.3} ± {:.3} vs {:.3} ± {:.3} (× 2/η)", bs.0, bs.1, lm.0, lm.1),
        bs.0 > lm.0,
    ));
    if let (false, Some(be)) = (ctx.quick, &break_even_runs) {
        parts.push(conjecture_one_outcome(be));
    }
    let mut outcome = Outcome::all(parts);
    if let (Some(dir), Some(be)) = (figure_dir, &break_even_runs) {
        let mut files = eoss_figures(&runs, &runs_of, &dir)?;
        files.extend(break_even_figures(be, &dir)?);
        outcome = outcome.with_figures(files);
    }
    Ok(outcome)
}

/// Mean and standard error (`s/√n`; 0 for one value) of `v`.
fn mean_and_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// The `(batch size, batch-order seed)` of every run of an EoSS sweep over `batch_sizes × seeds`, in the
/// order of the sweep's options.
pub(crate) fn seeded_runs(batch_sizes: &[usize], seeds: &[u64]) -> Vec<(usize, u64)> {
    batch_sizes
        .iter()
        .flat_map(|&b| seeds.iter().map(move |&s| (b, s)))
        .collect()
}

/// The runs of an EoSS sweep over batch sizes × batch-order seeds, and the claims on their means over the
/// seeds: per batch size `b`, the mean `m̄ = (1/S) Σ_s m_s` of the runs' second-half means with its standard
/// error `s/√S`.
pub(crate) struct OverSeeds<'a> {
    pub runs: &'a [EossRun],
    pub seeds: &'a [u64],
}

impl OverSeeds<'_> {
    /// Mean and standard error over the seeds of `f` on the runs at batch size `b`.
    pub fn mean_and_se(&self, b: usize, f: impl Fn(&EossRun) -> f64) -> (f64, f64) {
        let v: Vec<f64> = self.runs.iter().filter(|r| r.batch_size == b).map(f).collect();
        mean_and_se(&v)
    }

    /// The band claim at batch size `b` (labelled with the prefix `who`): the mean over the seeds of the
    /// second-half mean of the mean-of-ratios batch sharpness `E[gᵀH_Bg/‖g‖²]` lies in `[0.85, 1.15] · 2/η`.
    pub fn band(&self, who: &str, b: usize) -> Outcome {
        let (m, se) = self.mean_and_se(b, |r| r.hover_batch_sharpness.mean_ratio);
        Outcome::new(
            format!(
                "{who}b={b}: second-half mean of batch sharpness E[gᵀH_Bg/‖g‖²], mean over seeds {:?}, ∈ [0.85, \
                 1.15]·2/η",
                self.seeds
            ),
            format!("{m:.3} ± {se:.3} (SE over seeds) × 2/η"),
            (m - 1.0).abs() <= EOSS_BAND,
        )
    }

    /// Lower `λ_max` for smaller batches: the means over the seeds of the second-half mean of `λ_max/(2/η)`
    /// increase along `batch_sizes` (labelled with the prefix `who`).
    pub fn lambda_max_increasing(&self, who: &str, batch_sizes: &[usize]) -> Outcome {
        let means: Vec<(f64, f64)> = batch_sizes
            .iter()
            .map(|&b| self.mean_and_se(b, |r| r.lambda_max_second_half.mean_ratio))
            .collect();
        Outcome::new(
            format!("{who}second-half mean λ_max/(2/η), mean over seeds, increases with b = {batch_sizes:?}"),
            format!("{means:.3?} (mean, SE)"),
            means.windows(2).all(|w| w[0].0 < w[1].0),
        )
    }
}

/// What a single EoSS run asserts about its own batch sharpness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunBandClaim {
    /// Both variants `≤ 1.15 · 2/η` at every second-half measurement (the band itself reported).
    UpperEdge,
    /// Nothing: the second-half values are reported (the band is judged over the seeds).
    Reported,
}

/// The claims every EoSS run must meet on its own, labelled `who` (batch size and seed): it completes,
/// `λ_max < 2/η` over the second half, its batch sharpness as `band` says, and the MiniBS bounds
/// ([`mini_bs_bounds`] with `every_measured`).
pub(crate) fn eoss_run_outcomes(
    r: &EossRun,
    who: &str,
    steps: usize,
    band: RunBandClaim,
    every_measured: bool,
) -> Vec<Outcome> {
    let mut parts = vec![Outcome::new(
        format!("{who}: SGD completes"),
        r.outcome.to_string(),
        r.outcome == RunOutcome::Completed,
    )];
    let lm = &r.lambda_max_second_half;
    parts.push(Outcome::new(
        format!("{who}: λ_max < 2/η over the second half"),
        format!("λ_max/(2/η) ∈ [{:.3}, {:.3}]", lm.min_ratio, lm.max_ratio),
        lm.count > 0 && lm.max_ratio < 1.0,
    ));
    let (bs, rm) = (&r.hover_batch_sharpness, &r.hover_ratio_of_means);
    let mini = Hover::over(&r.steps, &r.mini_bs(), steps / 2, r.threshold);
    let in_band = |h: &Hover| h.count > 0 && (h.mean_ratio - 1.0).abs() <= EOSS_BAND;
    let measured = format!(
        "second half, × 2/η: mean of ratios mean {:.3} ∈ [{:.3}, {:.3}] (every point in band: {}); ratio of \
         means mean {:.3} ∈ [{:.3}, {:.3}] (mean in band: {}, every point: {}); MiniBS mean {:.3}; {} points",
        bs.mean_ratio,
        bs.min_ratio,
        bs.max_ratio,
        bs.within(EOSS_BAND),
        rm.mean_ratio,
        rm.min_ratio,
        rm.max_ratio,
        in_band(rm),
        rm.within(EOSS_BAND),
        mini.mean_ratio,
        bs.count
    );
    if band == RunBandClaim::UpperEdge {
        // Stability edge (docs/theory/stochastic-stability.md, fact 4): a non-diverging run keeps batch
        // sharpness at or below 2/η on average; 1.15 is the band's upper edge. The band itself is
        // reported.
        parts.push(Outcome::new(
            format!(
                "{who}: batch sharpness (both variants) ≤ 1.15·2/η over the second half (issue band on the mean: \
                 {})",
                if in_band(bs) { "met" } else { "NOT met" }
            ),
            measured,
            bs.count > 0 && bs.max_ratio <= 1.0 + EOSS_BAND && rm.max_ratio <= 1.0 + EOSS_BAND,
        ));
    } else {
        parts.push(Outcome::new(
            format!("{who}: second-half batch sharpness"),
            measured,
            true,
        ));
    }
    parts.push(mini_bs_bounds(r, who, every_measured));
    parts
}

/// The exact facts MiniBS ≥ λ_max and MiniBS ≥ batch sharpness (Jensen; Rayleigh quotients) at every
/// measurement of `r`, up to the Monte Carlo errors (3 standard errors); a measurement without MiniBS fails
/// the claim when `every_measured`, and is skipped otherwise.
fn mini_bs_bounds(r: &EossRun, who: &str, every_measured: bool) -> Outcome {
    let mut ok = !(every_measured && r.measurements.is_empty());
    let mut worst = f64::INFINITY;
    for m in &r.measurements {
        let Some(mb) = m.mini_bs else {
            ok &= !every_measured;
            continue;
        };
        let se = mb.estimate.std_error + m.batch_sharpness.mean_of_ratios.std_error;
        let slack_l = mb.estimate.value - m.lambda_max.value + 3.0 * mb.estimate.std_error;
        let slack_b = mb.estimate.value - m.batch_sharpness.mean_of_ratios.value + 3.0 * se;
        worst = worst.min(slack_l.min(slack_b));
        ok &= slack_l >= 0.0 && slack_b >= 0.0;
    }
    Outcome::new(
        format!("{who}: MiniBS ≥ λ_max and MiniBS ≥ batch sharpness at every measurement (3 SE)"),
        format!("smallest slack {worst:.3}"),
        ok,
    )
}

/// Conjecture 1 of Jastrzębski et al. on the break-even runs of [`break_even_study`] (full mode): the
/// `λ_H¹` part is asserted (every pairwise comparison holds: the maximum over the 3 000 steps is smaller
/// for the larger η and for the smaller b); the `λ_K¹` part is reported (measured: it holds for the smaller
/// b at both η, not for the larger η, where the maxima, attained in the first few hundred steps, are equal
/// to 0.1% at b = N and reversed by 2% at b = 32).
fn conjecture_one_outcome(runs: &[BreakEvenRun]) -> Outcome {
    let comparisons = conjecture_one(runs);
    let completed = runs.iter().all(|r| r.outcome == RunOutcome::Completed);
    let text: Vec<String> = comparisons
        .iter()
        .map(|c| {
            format!(
                "{}: λ_H¹ {:.3} vs {:.3} ({}), λ_K¹ {:.4} vs {:.4} ({})",
                c.what,
                c.lambda_h.0,
                c.lambda_h.1,
                if c.lambda_h_holds { "holds" } else { "fails" },
                c.lambda_k.0,
                c.lambda_k.1,
                if c.lambda_k_holds { "holds" } else { "fails" }
            )
        })
        .collect();
    Outcome::new(
        "break-even conjecture 1, λ_H¹ part: max λ_H¹ smaller for the larger η (same b) and for the smaller b \
         (same η), η ∈ {0.1, 0.3} × b ∈ {32, N}; λ_K¹ part reported",
        format!("{}; all runs completed: {completed}", text.join("; ")),
        completed && comparisons.len() == 4 && comparisons.iter().all(|c| c.lambda_h_holds),
    )
}

fn eoss_figures(
    runs: &[EossRun],
    runs_of: &[(usize, u64)],
    dir: &std::path::Path,
) -> Result<Vec<PathBuf>, CheckError> {
    let mut files = Vec::new();
    for (r, &(b, seed)) in runs.iter().zip(runs_of) {
        let x = xs(&r.steps);
        let fig = Figure::new(format!(
            "SGD η={}, b={b}, batch-order seed {seed}: batch sharpness and λ_max",
            r.lr
        ))
        .x_label("step")
        .y_label("curvature")
        .series(Series::line(
            "batch sharpness E[gᵀHg/‖g‖²]",
            x.clone(),
            r.batch_sharpness(),
        ))
        .series(Series::line(
            "batch sharpness E[gᵀHg]/E‖g‖²",
            x.clone(),
            r.batch_sharpness_ratio_of_means(),
        ))
        .series(Series::line("MiniBS E λ_max(H_B)", x.clone(), r.mini_bs()))
        .series(Series::line("λ_max(H)", x, r.lambda_max()))
        .hline("2/η", r.threshold);
        files.extend(fig.save(dir, &format!("eoss_b{b}_seed{seed}")).or_check()?);
    }
    Ok(files)
}

/// Break-even tracking for two learning rates and two batch sizes, η ∈ {0.1, 0.3} × b ∈ {32, N} (full mode:
/// 3 000 steps, measured every 100 on a 256-example subset; quick: 600 steps every 60, subset 64).
pub fn break_even_study(mlp: &Mlp, theta0: &[f64], quick: bool) -> Result<Vec<BreakEvenRun>, CheckError> {
    let (steps, every, subset) = if quick { (600, 60, 64) } else { (3000, 100, 256) };
    let n = imreg_objective::Objective::n_examples(mlp);
    let mut opts = Vec::new();
    for lr in [0.1, 0.3] {
        for b in [32, n] {
            opts.push(BreakEvenOptions {
                lr,
                sampler: if b == n {
                    Sampler::Full
                } else {
                    epoch_stream_reshuffling(b)
                },
                sampler_seed: 7,
                steps,
                every,
                subset,
                ..Default::default()
            });
        }
    }
    opts.par_iter()
        .map(|o| break_even(mlp, theta0, o))
        .collect::<Result<Vec<_>, _>>()
        .or_check()
}

fn break_even_figures(runs: &[BreakEvenRun], dir: &std::path::Path) -> Result<Vec<PathBuf>, CheckError> {
    let mut h = Figure::new("break-even: λ_H¹ along GD/SGD")
        .x_label("step")
        .y_label("λ_H¹");
    let mut k = Figure::new("break-even: λ_K¹ along GD/SGD")
        .x_label("step")
        .y_label("λ_K¹");
    for r in runs {
        let x = xs(&r.steps);
        let name = format!("η={} b={}", r.lr, r.batch_size);
        h = h.series(Series::line(
            name.clone(),
            x.clone(),
            r.points.iter().map(|p| p.lambda_h).collect(),
        ));
        k = k.series(Series::line(
            name,
            x,
            r.points.iter().map(|p| p.lambda_k).collect(),
        ));
    }
    let mut files = h.save(dir, "break_even_lambda_h").or_check()?;
    files.extend(k.save(dir, "break_even_lambda_k").or_check()?);
    let mut table = String::from("lr,batch_size,status,max_lambda_h,max_lambda_k,max_trace_k,max_trace_f\n");
    for r in runs {
        table.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.lr,
            r.batch_size,
            r.outcome,
            r.maxima.lambda_h,
            r.maxima.lambda_k,
            r.maxima.trace_k,
            r.maxima.trace_f
        ));
    }
    table
        .push_str("\ncomparison,lambda_h_a,lambda_h_b,lambda_h_holds,lambda_k_a,lambda_k_b,lambda_k_holds\n");
    for c in conjecture_one(runs) {
        table.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            c.what,
            c.lambda_h.0,
            c.lambda_h.1,
            c.lambda_h_holds,
            c.lambda_k.0,
            c.lambda_k.1,
            c.lambda_k_holds
        ));
    }
    let path = dir.join("break_even_maxima.csv");
    imreg_plot::write_atomic(&path, table.as_bytes())?;
    files.push(path);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run at batch size `b` whose second-half means are `bs` (batch sharpness) and `lm` (λ_max), × 2/η.
    fn run(b: usize, bs: f64, lm: f64) -> EossRun {
        let hover = |mean_ratio| Hover {
            target: 2.0,
            count: 20,
            min_ratio: mean_ratio,
            max_ratio: mean_ratio,
            mean_ratio,
        };
        EossRun {
            lr: 1.0,
            batch_size: b,
            threshold: 2.0,
            steps: Vec::new(),
            loss: Vec::new(),
            measurements: Vec::new(),
            outcome: RunOutcome::Completed,
            hover_batch_sharpness: hover(bs),
            hover_ratio_of_means: hover(bs),
            lambda_max_second_half: hover(lm),
        }
    }

    #[test]
    fn claims_over_seeds_use_the_mean_over_the_seeds_and_its_standard_error() {
        let batch_sizes = [8, 32];
        let seeds = [0, 1, 2];
        assert_eq!(
            seeded_runs(&batch_sizes, &seeds),
            [(8, 0), (8, 1), (8, 2), (32, 0), (32, 1), (32, 2)]
        );
        // b = 8: one seed outside the band, the mean (0.86) inside; b = 32: every seed at 0.84, outside.
        let runs = [
            run(8, 0.70, 0.60),
            run(8, 0.94, 0.70),
            run(8, 0.94, 0.95),
            run(32, 0.84, 0.80),
            run(32, 0.84, 0.80),
            run(32, 0.84, 0.80),
        ];
        let over = OverSeeds {
            runs: &runs,
            seeds: &seeds,
        };
        let (m, se) = over.mean_and_se(8, |r| r.hover_batch_sharpness.mean_ratio);
        assert!(
            (m - 0.86).abs() < 1e-12 && (se - 0.08).abs() < 1e-12,
            "{m} ± {se}"
        );
        assert!(over.band("net: ", 8).passed);
        let b32 = over.band("net: ", 32);
        assert!(!b32.passed);
        assert!(b32.expected.starts_with("net: b=32:") && b32.measured.starts_with("0.840 ± 0.000"));
        // λ_max means 0.75 < 0.80: increasing in b although one b = 8 seed (0.95) exceeds every b = 32 one.
        assert!(over.lambda_max_increasing("net: ", &batch_sizes).passed);
        assert!(!over.lambda_max_increasing("net: ", &[32, 8]).passed);
    }
}
