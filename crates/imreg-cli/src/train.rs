//! The optimizer loop of `imreg run`: every optimizer runs through `imreg_sgd::trajectory::run` (GD, SGD
//! with and without replacement, heavy-ball and Nesterov momentum, noise-injected GD) — on the model's
//! objective, or with `[[regularizer]]`/clipping on [`Regularized`] (`crate::regularize`) — recording the
//! iterates at the steps where some metric is due; the tracked metrics are then evaluated on those iterates
//! on the full (training) batch, and on the test set with `[split]`. Seeded, so a run is bitwise
//! reproducible.
use crate::config::{Every, ExperimentConfig, OptimizerConfig};
use crate::data::STREAM_BATCHES;
use crate::error::{CliError, Result};
use crate::model::Model;
use crate::regularize::Regularized;
use crate::spectrum::{batch_expectation, full_sharpness, lambda_k1, mini_batch_sharpness, RUN_MAX_EXACT};
use imreg_flow::Remainder;
use imreg_objective::rng::stream;
use imreg_sgd::trajectory::{self, Noise, RunOptions, RunStatus, Sampler, Update};
use imreg_spectra::Estimate;
use rand::Rng;
use std::path::Path;

/// Loss magnitude treated as divergence (with any NaN or infinity).
pub const DIVERGENCE_LOSS: f64 = 1e100;
/// Parameter norm treated as divergence by the trajectory.
pub const DIVERGENCE_NORM: f64 = 1e12;

/// What a training run produced.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub theta: Vec<f64>,
    /// The step at which the loss or the parameters became non-finite (the loss exceeded
    /// [`DIVERGENCE_LOSS`] or `‖θ‖` exceeded [`DIVERGENCE_NORM`]); training stopped there.
    pub diverged_at: Option<usize>,
    /// Optimizer steps taken.
    pub steps_run: usize,
}

fn failed(step: usize, what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("step {step}: {what}: {e}"))
}

/// One metric: its config key, its columns and its period.
struct Tracked {
    key: &'static str,
    columns: Vec<&'static str>,
    period: usize,
}

/// The enabled metrics in column order (test columns follow their training metric).
fn tracked(cfg: &ExperimentConfig, has_test: bool) -> Vec<Tracked> {
    let base = cfg.track.every;
    cfg.track
        .switches()
        .into_iter()
        .filter_map(|(key, e): (&'static str, Every)| {
            let period = e.period(base)?;
            let columns = match key {
                "loss" if has_test => vec!["loss", "test_loss"],
                "accuracy" if has_test => vec!["accuracy", "test_accuracy"],
                "batch_sharpness" => vec![
                    "batch_sharpness",
                    "batch_sharpness_inside",
                    "batch_sharpness_se",
                    "batch_sharpness_inside_se",
                    "batch_sharpness_batches",
                    "batch_sharpness_estimator",
                ],
                "mini_bs" => vec!["mini_bs", "mini_bs_se", "mini_bs_batches", "mini_bs_estimator"],
                k => vec![k],
            };
            Some(Tracked { key, columns, period })
        })
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The sampler, update rule and noise of the optimizer.
fn method(opt: &OptimizerConfig) -> (Sampler, Update, Noise) {
    let sampler = match (opt.batch_size(), opt.replacement()) {
        (None, _) => Sampler::Full,
        (Some(batch_size), true) => Sampler::WithReplacement { batch_size },
        (Some(batch_size), false) => Sampler::RandomReshuffling {
            batch_size,
            remainder: Remainder::SmallerLastBatch,
        },
    };
    let (update, noise) = match *opt {
        OptimizerConfig::Momentum { beta, nesterov, .. } => (
            if nesterov {
                Update::Nesterov { momentum: beta }
            } else {
                Update::HeavyBall { momentum: beta }
            },
            Noise::None,
        ),
        OptimizerConfig::NoisyGd { sigma, .. } => (Update::Plain, Noise::Isotropic { sigma }),
        _ => (Update::Plain, Noise::None),
    };
    (sampler, update, noise)
}

/// Appends expectations over batches from the same batches as columns: the values, their standard errors
/// (0 when exact), the batches evaluated (`C(N, b)` when exact), and the estimator: 0 exact, 1 Monte Carlo
/// whose relative-SE stop was met, 2 Monte Carlo that ran out of batches first.
fn push_estimates(row: &mut Vec<f64>, estimates: &[Estimate]) {
    row.extend(estimates.iter().map(|e| e.value));
    row.extend(estimates.iter().map(|e| e.std_error));
    let first = estimates[0];
    row.push(first.samples() as f64);
    row.push(match (first.is_exact(), first.converged()) {
        (true, _) => 0.0,
        (false, true) => 1.0,
        (false, false) => 2.0,
    });
}

/// Evaluates the metrics due at `step` (all of them when `all`); returns the row and the training loss.
fn record(
    model: &Model,
    test: Option<&Model>,
    theta: &[f64],
    step: usize,
    all: bool,
    cfg: &ExperimentConfig,
    metrics: &[Tracked],
) -> Result<(Vec<f64>, f64)> {
    let obj = model.objective();
    let (loss, g) = model.loss_grad(theta).map_err(|e| failed(step, "loss", e))?;
    let finite = loss.is_finite() && theta.iter().all(|v| v.is_finite());
    let b = cfg.track.batch_size.or(cfg.optimizer.batch_size()).unwrap_or(1);
    // Each evaluation draws its batches from its own seed, a pure function of (seed, step).
    let eval_seed = stream(cfg.seed, STREAM_BATCHES ^ 0x5eed).random::<u64>() ^ step as u64;
    let rel_se = imreg_spectra::MonteCarloOptions::default().rel_se_tol;
    let mode = batch_expectation(eval_seed, RUN_MAX_EXACT, cfg.track.max_batches, rel_se);
    let mut row = vec![step as f64];
    for m in metrics {
        if !(all || step.is_multiple_of(m.period)) || !finite {
            row.extend(std::iter::repeat_n(f64::NAN, m.columns.len()));
            continue;
        }
        let sp = |what: &str, e: imreg_spectra::SpectraError| failed(step, what, e);
        match m.key {
            "loss" => {
                row.push(loss);
                if let Some(t) = test {
                    row.push(t.loss_grad(theta).map_err(|e| failed(step, "test loss", e))?.0);
                }
            }
            "grad_norm" => row.push(g.iter().map(|v| v * v).sum::<f64>().sqrt()),
            "sharpness" => row.push(full_sharpness(obj, theta, cfg.seed).map_err(|e| sp("sharpness", e))?),
            "accuracy" => {
                row.push(model.accuracy(theta)?.unwrap_or(f64::NAN));
                if let Some(t) = test {
                    row.push(t.accuracy(theta)?.unwrap_or(f64::NAN));
                }
            }
            "batch_sharpness" => {
                let s = imreg_spectra::batch_sharpness(obj, theta, imreg_objective::Batch::Full, b, &mode)
                    .map_err(|e| sp("batch sharpness", e))?;
                push_estimates(&mut row, &[s.mean_of_ratios, s.ratio_of_means]);
            }
            "mini_bs" => {
                let e = mini_batch_sharpness(obj, theta, b, &mode, eval_seed).map_err(|e| sp("MiniBS", e))?;
                push_estimates(&mut row, &[e]);
            }
            "lambda_k1" => row.push(lambda_k1(obj, theta, cfg.seed).map_err(|e| sp("λ_K¹", e))?.value),
            "trace_k" => row.push(
                imreg_spectra::trace_gradient_covariance(
                    obj,
                    theta,
                    imreg_objective::Batch::Full,
                    Default::default(),
                )
                .map_err(|e| sp("Tr K", e))?,
            ),
            "trace_f" => row.push(
                imreg_spectra::empirical_fisher_trace(obj, theta, imreg_objective::Batch::Full)
                    .map_err(|e| sp("Tr F", e))?,
            ),
            "imbalance" => row.push(model.imbalance(theta).unwrap_or(f64::NAN)),
            _ => row.extend(std::iter::repeat_n(f64::NAN, m.columns.len())),
        }
    }
    Ok((row, loss))
}

/// The metric columns of a run of `cfg` (`step` first; test columns follow their training metric).
pub fn columns(cfg: &ExperimentConfig, has_test: bool) -> Vec<&'static str> {
    let mut columns = vec!["step"];
    for t in &tracked(cfg, has_test) {
        columns.extend(&t.columns);
    }
    columns
}

/// Runs the optimizer of `cfg` from `theta0` on `model`, tracking metrics (test metrics on `test`).
/// Each row of [`columns`] is handed to `row` as soon as it is computed (the caller streams it to disk);
/// no row is kept here.
pub fn train(
    model: &Model,
    test: Option<&Model>,
    theta0: Vec<f64>,
    cfg: &ExperimentConfig,
    row: &mut dyn FnMut(&[f64]) -> Result<()>,
) -> Result<TrainOutcome> {
    let obj = model.objective();
    let tracked = tracked(cfg, test.is_some());
    let n_columns = columns(cfg, test.is_some()).len();
    let record_every = tracked.iter().map(|t| t.period).fold(0, gcd).max(1);
    let (sampler, update, noise) = method(&cfg.optimizer);
    let opts = RunOptions {
        steps: cfg.steps,
        record_every,
        divergence_norm: DIVERGENCE_NORM,
        // One derived seed for the sampler (stream 0) and the noise (stream 1) of the trajectory.
        seed: stream(cfg.seed, STREAM_BATCHES).random::<u64>(),
    };
    // With `[[regularizer]]` or clipping the optimizer steps on `L_B + Σ R` (clipped); metrics stay on C.
    let regularized = if crate::regularize::is_regularized(cfg) {
        let penalties = crate::regularize::penalties(cfg, model, Path::new("<config>"))?;
        Some(Regularized::new(obj, penalties, cfg))
    } else {
        None
    };
    let train_obj: &dyn imreg_objective::Objective = match &regularized {
        Some(r) => r,
        None => obj,
    };
    let tr = trajectory::run(
        train_obj,
        &theta0,
        cfg.optimizer.lr(),
        &sampler,
        &update,
        &noise,
        &opts,
    )
    .map_err(|e| CliError::Failed(format!("optimizer: {e}")))?;
    let recorded = tr
        .recorded_steps
        .iter()
        .zip(&tr.iterates)
        .map(|(s, t)| (*s, t.as_slice()));
    let blown_at = match tr.status {
        RunStatus::Diverged { step, .. } => Some(step),
        RunStatus::Completed => None,
    };
    // A completed run ends with the last iterate, recorded or not.
    let last_point = (blown_at.is_none() && tr.recorded_steps.last() != Some(&cfg.steps))
        .then_some((cfg.steps, tr.theta.as_slice()));
    let last = cfg.steps;
    // Steps where the gcd of the periods lands but no metric is due record no row.
    let due =
        |step: usize| step == 0 || step == last || tracked.iter().any(|t| step.is_multiple_of(t.period));
    for (step, theta) in recorded.chain(last_point).filter(|(s, _)| due(*s)) {
        let (values, loss) = record(model, test, theta, step, step == 0 || step == last, cfg, &tracked)?;
        row(&values)?;
        if !(loss.is_finite() && loss.abs() < DIVERGENCE_LOSS) {
            return Ok(TrainOutcome {
                theta: theta.to_vec(),
                diverged_at: Some(step),
                steps_run: step,
            });
        }
    }
    if let Some(step) = blown_at {
        let mut values = vec![f64::NAN; n_columns];
        values[0] = step as f64;
        row(&values)?;
        return Ok(TrainOutcome {
            theta: tr.theta,
            diverged_at: Some(step),
            steps_run: step,
        });
    }
    Ok(TrainOutcome {
        theta: tr.theta,
        diverged_at: None,
        steps_run: cfg.steps,
    })
}

/// The periods of the enabled metrics.
fn periods(cfg: &ExperimentConfig) -> Vec<usize> {
    tracked(cfg, false).iter().map(|t| t.period).collect()
}

/// The number of rows [`train`] records for `cfg` without divergence (for progress bars), counted in
/// constant time per metric set (`limits::recorded_rows`), never by visiting the steps.
pub fn expected_rows(cfg: &ExperimentConfig) -> u64 {
    crate::limits::recorded_rows(cfg.steps, &periods(cfg))
}

/// Our estimate of the bytes a run of `cfg` holds at once with `p` parameters and `n` examples: the
/// trajectory keeps every iterate at the gcd of the periods until the run ends (`imreg_sgd::trajectory`
/// records them), and covariance / Fisher metrics form per-example gradients. Metric rows are streamed to
/// disk (`crate::record`) and not counted.
pub fn memory_estimate(cfg: &ExperimentConfig, p: usize, n: usize) -> u64 {
    let every = periods(cfg).into_iter().fold(0, gcd).max(1);
    let iterates = crate::limits::recorded_rows(cfg.steps, &[every]);
    let t = &cfg.track;
    let per_example = [t.lambda_k1, t.trace_k, t.trace_f]
        .iter()
        .any(|e| e.period(1).is_some());
    crate::limits::run_memory(iterates, p, n, per_example)
}
