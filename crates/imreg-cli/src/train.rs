//! The optimizer of `imreg run`: every optimizer runs through the training loop of `imreg-sgd`
//! (`imreg_sgd::train::train`: GD, SGD with and without replacement, heavy-ball and Nesterov momentum,
//! noise-injected GD), with `[[regularizer]]`/clipping as its gradient transform (`crate::regularize`). At
//! each step where some metric is due the loop hands the iterate to an observer, which evaluates the
//! tracked metrics on it at once — on the full (training) batch, and on the test set with `[split]` — and
//! streams the row out; no iterate is kept, so a run's memory does not grow with its recorded steps.
//! Seeded, so a run is bitwise reproducible.
use crate::config::{Every, ExperimentConfig, OptimizerConfig, SubsetConfig, MAX_TRACKED_K};
use crate::data::STREAM_BATCHES;
use crate::error::{CliError, Result};
use crate::model::Model;
use crate::spectrum::{
    batch_expectation, full_sharpness, hessian_extremes, lambda_k1, mini_batch_sharpness, operator_trace,
    ExtremeOptions, DENSE_MAX_P, RUN_MAX_EXACT,
};
use imreg_objective::rng::stream;
use imreg_objective::Batch;
use imreg_objective::Remainder;
use imreg_sgd::observe::{
    Cadence, Control, ExtremeEigenProbe, MicroBatchGradNormProbe, Observer, Scheduled, StepView,
};
use imreg_sgd::regularizers::grafting::IterativeGrafting;
use imreg_sgd::sampler::Sampler;
use imreg_sgd::train::{
    train as train_loop, Divergence, GradientTransform, Noise, Optimizer, RunOutcome, Seeds, StreamId,
    TrainOptions, Update,
};
use imreg_sgd::SgdError;
use imreg_spectra::{Estimate, HessianOperator, LanczosOptions, TraceOptions};
use rand::Rng;
use std::path::Path;

/// When a run counts as diverged: a recorded full-batch loss with magnitude above `loss` (or non-finite),
/// or an iterate with `‖θ‖` above `norm` (or non-finite).
pub const DIVERGENCE: Divergence = Divergence {
    loss: 1e100,
    norm: 1e12,
};

/// What a training run produced.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub theta: Vec<f64>,
    /// The step at which the loss or the parameters became non-finite or exceeded [`DIVERGENCE`];
    /// training stopped there.
    pub diverged_at: Option<usize>,
    /// Optimizer steps taken.
    pub steps_run: usize,
    /// The series of `[[track.schedule]]`, one per entry.
    pub schedule: Vec<crate::schedule::Tracked>,
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
                "eigenvalues" => TOP_COLUMNS[..cfg.track.top_k]
                    .iter()
                    .chain(&BOTTOM_COLUMNS[..cfg.track.bottom_k])
                    .chain(&[
                        "eigen_residual",
                        "eigen_value_bound",
                        "eigen_iterations",
                        "eigen_converged",
                    ])
                    .copied()
                    .collect(),
                "hessian_trace" => vec!["hessian_trace", "hessian_trace_se"],
                k => vec![k],
            };
            Some(Tracked { key, columns, period })
        })
        .chain(cfg.track.micro_grad_norm.map(|_| Tracked {
            key: "micro_grad_norm",
            columns: vec!["micro_grad_norm_sq"],
            period: base,
        }))
        .collect()
}

/// The columns of the `top_k` largest eigenvalues, `λ_1 ≥ λ_2 ≥ …`.
const TOP_COLUMNS: [&str; MAX_TRACKED_K] = [
    "lambda_1",
    "lambda_2",
    "lambda_3",
    "lambda_4",
    "lambda_5",
    "lambda_6",
    "lambda_7",
    "lambda_8",
    "lambda_9",
    "lambda_10",
];

/// The columns of the `bottom_k` smallest eigenvalues, `λ_p ≤ λ_{p−1} ≤ …`.
const BOTTOM_COLUMNS: [&str; MAX_TRACKED_K] = [
    "lambda_min_1",
    "lambda_min_2",
    "lambda_min_3",
    "lambda_min_4",
    "lambda_min_5",
    "lambda_min_6",
    "lambda_min_7",
    "lambda_min_8",
    "lambda_min_9",
    "lambda_min_10",
];

/// Whether `col` is a column of the tracked largest eigenvalues.
pub fn is_top_eigenvalue(col: &str) -> bool {
    TOP_COLUMNS.contains(&col)
}

/// Whether `col` is a column of the tracked smallest eigenvalues.
pub fn is_bottom_eigenvalue(col: &str) -> bool {
    BOTTOM_COLUMNS.contains(&col)
}

/// Stream of the measurement subset, drawn from `track.subset.seed` (not the master seed).
const STREAM_SUBSET: u64 = 0x7375_6273;

/// The examples of `[track] subset` among `n`: `subset.n` distinct indices, ascending, drawn by a ChaCha
/// stream of `subset.seed` (`subset.n ≤ n` was checked by [`check_tracking`]).
pub fn subset_indices(subset: &SubsetConfig, n: usize) -> Vec<usize> {
    let mut ix = rand::seq::index::sample(&mut stream(subset.seed, STREAM_SUBSET), n, subset.n).into_vec();
    ix.sort_unstable();
    ix
}

/// The tracked metrics and what they keep between evaluations: the eigenvalue probe (its warm start),
/// the measurement subset of the Hessian metrics, and the micro-batch gradient norm measured on the
/// current step's batch.
struct Trackers<'m> {
    metrics: &'m [Tracked],
    eigen: Option<ExtremeEigenProbe>,
    subset: Option<Vec<usize>>,
    micro_grad_norm: Option<f64>,
}

impl<'m> Trackers<'m> {
    fn new(metrics: &'m [Tracked], cfg: &ExperimentConfig, p: usize, n: usize) -> Self {
        let t = &cfg.track;
        let subset = t.subset.as_ref().map(|s| subset_indices(s, n));
        let eigen = t.eigenvalues.period(1).map(|_| {
            let mut probe = ExtremeEigenProbe::new(
                LanczosOptions {
                    max_iter: t.lanczos_max_iter.min(p),
                    k_top: t.top_k,
                    k_bottom: t.bottom_k,
                    tol: t.lanczos_tol,
                    stop: t.lanczos_stop.into(),
                    seed: cfg.seed ^ crate::data::STREAM_SPECTRUM,
                    ..LanczosOptions::default()
                },
                t.warm_start,
            );
            probe.subset = subset.clone();
            probe
        });
        Trackers {
            metrics,
            eigen,
            subset,
            micro_grad_norm: None,
        }
    }

    /// The batch of the Hessian metrics.
    fn hessian_batch(&self) -> Batch<'_> {
        self.subset.as_deref().map_or(Batch::Full, Batch::Indices)
    }
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
        (Some(batch_size), false) => Sampler::reshuffling(batch_size, Remainder::SmallerLastBatch),
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
    trackers: &mut Trackers<'_>,
) -> Result<(Vec<f64>, f64)> {
    let obj = model.objective();
    let due = |m: &Tracked| all || step.is_multiple_of(m.period);
    // The training loss is needed at every row (divergence stops the run); its gradient only for `grad_norm`,
    // so the other rows pay a forward pass, not a backward one.
    let (loss, grad_norm) = if trackers.metrics.iter().any(|m| m.key == "grad_norm" && due(m)) {
        let (loss, g) = model.loss_grad(theta).map_err(|e| failed(step, "loss", e))?;
        (loss, Some(g.iter().map(|v| v * v).sum::<f64>().sqrt()))
    } else {
        (model.loss(theta).map_err(|e| failed(step, "loss", e))?, None)
    };
    let finite = loss.is_finite() && theta.iter().all(|v| v.is_finite());
    let b = cfg.track.batch_size.or(cfg.optimizer.batch_size()).unwrap_or(1);
    // Each evaluation draws its batches from its own seed, a pure function of (seed, step).
    let eval_seed = stream(cfg.seed, STREAM_BATCHES ^ 0x5eed).random::<u64>() ^ step as u64;
    let rel_se = imreg_spectra::MonteCarloOptions::default().rel_se_tol;
    let mode = batch_expectation(eval_seed, RUN_MAX_EXACT, cfg.track.max_batches, rel_se);
    let mut row = vec![step as f64];
    for m in trackers.metrics {
        if !due(m) || !finite {
            row.extend(std::iter::repeat_n(f64::NAN, m.columns.len()));
            continue;
        }
        let sp = |what: &str, e: imreg_spectra::SpectraError| failed(step, what, e);
        match m.key {
            "loss" => {
                row.push(loss);
                if let Some(t) = test {
                    row.push(t.loss(theta).map_err(|e| failed(step, "test loss", e))?);
                }
            }
            // computed above whenever this row is due
            "grad_norm" => row.push(grad_norm.unwrap_or(f64::NAN)),
            "sharpness" => row.push(
                match trackers.subset.as_deref() {
                    None => full_sharpness(obj, theta, cfg.seed),
                    Some(ix) => hessian_extremes(
                        obj,
                        theta,
                        Batch::Indices(ix),
                        1,
                        0,
                        cfg.seed,
                        &ExtremeOptions::default(),
                    )
                    .map(|e| e.top.first().copied().unwrap_or(f64::NAN)),
                }
                .map_err(|e| sp("sharpness", e))?,
            ),
            "eigenvalues" => {
                let probe = trackers.eigen.as_mut().ok_or_else(|| {
                    CliError::Failed("eigenvalues is tracked but its probe was not built".into())
                })?;
                let e = probe
                    .measure_ritz(obj, theta)
                    .map_err(|e| failed(step, "Hessian eigenvalues", e))?;
                row.extend(e.top.iter().chain(&e.bottom).map(|r| r.value));
                row.push(e.report.max_relative_residual);
                row.push(e.report.max_relative_value_bound);
                row.push(e.report.iterations as f64);
                row.push(f64::from(u8::from(e.report.converged)));
            }
            "hessian_trace" => {
                let h =
                    HessianOperator::new(obj, theta, trackers.hessian_batch()).map_err(|e| sp("Tr H", e))?;
                let t = operator_trace(&h, eval_seed, DENSE_MAX_P, TraceOptions::default().matvecs)
                    .map_err(|e| sp("Tr H", e))?;
                row.push(t.value);
                row.push(t.std_error.unwrap_or(0.0));
            }
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
            "micro_grad_norm" => row.push(trackers.micro_grad_norm.unwrap_or(f64::NAN)),
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

/// What ends the optimizer loop early: the trajectory's own error, or one of computing or writing a row.
enum LoopError {
    Optimizer(SgdError),
    Row(CliError),
}

impl From<SgdError> for LoopError {
    fn from(e: SgdError) -> Self {
        LoopError::Optimizer(e)
    }
}

impl From<CliError> for LoopError {
    fn from(e: CliError) -> Self {
        LoopError::Row(e)
    }
}

/// Runs the optimizer of `cfg` from `theta0` on `model`, tracking metrics (test metrics on `test`).
/// Each row of [`columns`] is computed at its step from that step's iterate and handed to `row` at once
/// (the caller streams it to disk); neither rows nor iterates are kept here — only the current iterate
/// of the trajectory, returned at the end as [`TrainOutcome::theta`].
pub fn train(
    model: &Model,
    test: Option<&Model>,
    theta0: Vec<f64>,
    cfg: &ExperimentConfig,
    row: &mut dyn FnMut(&[f64]) -> Result<()>,
) -> Result<TrainOutcome> {
    let obj = model.objective();
    let tracked = tracked(cfg, test.is_some());
    let mut trackers = Trackers::new(&tracked, cfg, obj.dim(), obj.n_examples());
    let n_columns = columns(cfg, test.is_some()).len();
    let record_every = tracked.iter().map(|t| t.period).fold(0, gcd).max(1);
    let (sampler, update, noise) = method(&cfg.optimizer);
    // One derived seed for the sampler (stream 0) and the noise (stream 1); the penalties draw from stream
    // `STREAM_REGULARIZERS` of the master seed.
    let derived = stream(cfg.seed, STREAM_BATCHES).random::<u64>();
    let opts = TrainOptions {
        lr: cfg.optimizer.lr(),
        steps: cfg.steps,
        seeds: Seeds {
            penalties: StreamId {
                seed: cfg.seed,
                stream: crate::data::STREAM_REGULARIZERS,
            },
            ..Seeds::from_seed(derived)
        },
        // The loss is checked on the recorded rows (full batch), the iterate at every step.
        divergence: Divergence {
            loss: f64::INFINITY,
            norm: DIVERGENCE.norm,
        },
    };
    // With `[[regularizer]]` or clipping the optimizer steps on `clip(∇L_B + Σ ∇R)`; metrics stay on C.
    let penalties = if crate::regularize::is_regularized(cfg) {
        crate::regularize::penalties(cfg, model, Path::new("<config>"))?
    } else {
        Vec::new()
    };
    let method = Optimizer {
        sampler,
        update,
        noise,
        transform: GradientTransform {
            penalties,
            clip: cfg.optimizer.clip_grad_norm(),
            grafting: graft(cfg, obj.n_examples())?,
            ..Default::default()
        },
    };
    let mut micro_probe = cfg.track.micro_grad_norm.map(|micro| MicroBatchGradNormProbe {
        micro,
        records: Vec::new(),
    });
    let last = cfg.steps;
    // Steps where the gcd of the periods lands but no metric is due record no row.
    let due =
        |step: usize| step == 0 || step == last || tracked.iter().any(|t| step.is_multiple_of(t.period));
    // Writes the row of `step` if one is due; `Stop` when its loss blew up (training stops there).
    let mut emit =
        |at: &StepView<'_, dyn imreg_objective::Objective>| -> std::result::Result<Control, LoopError> {
            if !due(at.step) {
                return Ok(Control::Continue);
            }
            trackers.micro_grad_norm = match micro_probe.as_mut() {
                Some(probe) => {
                    probe.records.clear();
                    Observer::<dyn imreg_objective::Objective, LoopError>::observe(probe, at)?;
                    probe.records.last().map(|&(_, v)| v)
                }
                None => None,
            };
            let (values, loss) = record(
                model,
                test,
                at.theta,
                at.step,
                at.step == 0 || at.last,
                cfg,
                &mut trackers,
            )?;
            row(&values)?;
            Ok(if loss.is_finite() && loss.abs() < DIVERGENCE.loss {
                Control::Continue
            } else {
                Control::Stop
            })
        };
    let mut schedule = crate::schedule::entries(model, cfg)?;
    let mut observers = vec![Scheduled::new(Cadence::Every(record_every), &mut emit)];
    observers.extend(schedule.iter_mut().map(|e| e.scheduled()));
    let end = train_loop(obj, &theta0, &method, &opts, &mut observers).map_err(|e| match e {
        LoopError::Optimizer(e) => CliError::Failed(format!("optimizer: {e}")),
        LoopError::Row(e) => e,
    })?;
    drop(observers);
    let schedule: Vec<_> = schedule.into_iter().map(|e| e.finish()).collect();
    let diverged = |step: usize, theta: Vec<f64>| TrainOutcome {
        theta,
        diverged_at: Some(step),
        steps_run: step,
        schedule: schedule.clone(),
    };
    match end.outcome {
        // The loss of a recorded row blew up.
        RunOutcome::Stopped { step } => Ok(diverged(step, end.theta)),
        // The parameters blew up after `step - 1`: a row of NaN marks the step.
        RunOutcome::Diverged { step, .. } => {
            let mut values = vec![f64::NAN; n_columns];
            values[0] = step as f64;
            row(&values)?;
            Ok(diverged(step, end.theta))
        }
        RunOutcome::Completed => Ok(TrainOutcome {
            theta: end.theta,
            diverged_at: None,
            steps_run: last,
            schedule,
        }),
    }
}

/// The iterative grafting of `optimizer.graft` on `n` examples; its micro-batch must fit in every batch
/// (also the smaller last batch of an epoch).
fn graft(cfg: &ExperimentConfig, n: usize) -> Result<Option<IterativeGrafting>> {
    let Some(g) = cfg.optimizer.graft() else {
        return Ok(None);
    };
    let b = cfg.optimizer.batch_size().unwrap_or(n);
    let last = if cfg.optimizer.replacement() || n.is_multiple_of(b) {
        b
    } else {
        n % b
    };
    if g.micro_batch > last {
        return Err(CliError::input(
            Path::new("<config>"),
            "optimizer.graft.micro_batch",
            format!(
                "{} exceeds the last batch of an epoch ({last} of N = {n} examples)",
                g.micro_batch
            ),
        ));
    }
    Ok(Some(IterativeGrafting { micro: g.micro_batch }))
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

/// Our estimate of the bytes a run of `cfg` holds at once with `p` parameters and `n` examples
/// (`limits::run_memory`): a fixed number of length-`p` vectors — the trajectory hands each recorded
/// iterate to the row writer and keeps none —, per-example gradients when covariance / Fisher metrics are
/// tracked. Metric rows are streamed to disk (`crate::record`, bounded by `limits::MAX_RECORDED_ROWS`);
/// the figure series are thinned to a fixed size (`record::FIGURE_POINTS`).
pub fn memory_estimate(cfg: &ExperimentConfig, p: usize, n: usize) -> crate::limits::RunMemory {
    let per_example = per_example_metric(cfg).is_some();
    crate::limits::run_memory(p, n, per_example)
}

/// The first tracked metric that forms per-example gradients (its config key).
fn per_example_metric(cfg: &ExperimentConfig) -> Option<&'static str> {
    let t = &cfg.track;
    [
        ("lambda_k1", t.lambda_k1),
        ("trace_k", t.trace_k),
        ("trace_f", t.trace_f),
    ]
    .into_iter()
    .find_map(|(key, e)| e.period(1).map(|_| key))
}

/// Refuses a run of `cfg` that would record more than `limits::MAX_RECORDED_ROWS` rows (naming `steps`), or
/// whose [`memory_estimate`] exceeds `limits::MAX_MEMORY_BYTES`, naming the field that sets its larger part:
/// the per-example metric or `model` (the parameter vectors).
pub fn check_memory(cfg: &ExperimentConfig, p: usize, n: usize, file: &Path) -> Result<()> {
    crate::limits::at_most(
        file,
        "steps",
        "recorded metric rows (raise track.every, lower steps or pass --max-steps)",
        expected_rows(cfg),
        crate::limits::MAX_RECORDED_ROWS,
    )?;
    let m = memory_estimate(cfg, p, n);
    let field = per_example_metric(cfg)
        .filter(|_| m.per_example >= m.vectors)
        .map_or_else(|| "model".to_string(), |k| format!("track.{k}"));
    crate::limits::at_most(
        file,
        &field,
        &format!(
            "estimated bytes held at once ({} vectors of p = {p}: {}; per-example gradients N·p: {})",
            crate::limits::RUN_VECTORS,
            m.vectors,
            m.per_example,
        ),
        m.total(),
        crate::limits::MAX_MEMORY_BYTES,
    )
}

/// Checks what `[track]` asks of the eigenvalue tracking against the model and data: `top_k + bottom_k ≤ p`,
/// `subset.n ≤ N`, and the Lanczos basis (`min(lanczos_max_iter, p)` vectors of `p` values, besides the
/// run's own vectors) within `limits::MAX_MEMORY_BYTES`.
pub fn check_tracking(cfg: &ExperimentConfig, p: usize, n: usize, file: &Path) -> Result<()> {
    let t = &cfg.track;
    if let Some(s) = &t.subset {
        if s.n > n {
            return Err(CliError::input(
                file,
                "track.subset.n",
                format!("{} exceeds the number of examples N = {n}", s.n),
            ));
        }
    }
    if t.eigenvalues.period(1).is_none() {
        return Ok(());
    }
    if t.top_k + t.bottom_k > p {
        return Err(CliError::input(
            file,
            "track.top_k",
            format!(
                "top_k + bottom_k = {} exceeds the number of parameters p = {p}",
                t.top_k + t.bottom_k
            ),
        ));
    }
    let basis = (t.lanczos_max_iter.min(p) as u64)
        .saturating_mul(p as u64)
        .saturating_mul(8);
    crate::limits::at_most(
        file,
        "track.lanczos_max_iter",
        &format!(
            "bytes of the Lanczos basis ({} vectors of p = {p})",
            t.lanczos_max_iter.min(p)
        ),
        basis.saturating_add(memory_estimate(cfg, p, n).total()),
        crate::limits::MAX_MEMORY_BYTES,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::prepare;

    const TINY: &str = r#"
seed = 3
steps = 200000
[data]
kind = "gaussian_linear"
n = 8
dim = 2
noise = 0.1
[model]
kind = "linear_regression"
[optimizer]
kind = "sgd"
lr = 0.05
batch_size = 2
[track]
every = 1
"#;

    fn config(text: &str) -> ExperimentConfig {
        ExperimentConfig::from_toml_str(text, Path::new("tiny.toml")).unwrap()
    }

    /// Recording every one of 2·10⁵ steps: each row arrives in step order as it is computed (the rows are
    /// streamed, the trajectory keeps no iterate — `imreg-sgd`'s `observed_memory` test measures that), and
    /// the memory estimate does not depend on the number of steps.
    #[test]
    fn a_run_recording_every_step_streams_its_rows() {
        let cfg = config(TINY);
        let run = prepare(cfg.clone(), Path::new("tiny.toml")).unwrap();
        let mut rows = 0usize;
        let mut last_loss = f64::NAN;
        let out = train(&run.model, None, run.theta0.clone(), &run.config, &mut |row| {
            assert_eq!(row[0], rows as f64);
            assert!(row[1].is_finite());
            last_loss = row[1];
            rows += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, 200_001);
        assert_eq!((out.steps_run, out.diverged_at), (200_000, None));
        let final_loss = run.model.loss_grad(&out.theta).unwrap().0;
        assert_eq!(final_loss, last_loss);
        // The estimate's parts: parameter vectors, independent of the steps.
        let p = run.model.objective().dim();
        let m = memory_estimate(&cfg, p, 8);
        assert_eq!(m.vectors, crate::limits::RUN_VECTORS * 8 * p as u64);
        assert_eq!(m.per_example, 0);
        let longer = config(&TINY.replace("steps = 200000", "steps = 20000000"));
        assert_eq!(memory_estimate(&longer, p, 8).vectors, m.vectors);
    }

    /// The memory check accepts 2·10⁷ recorded steps (the case that used to need 4.7 GB), refuses more rows
    /// than the recorded-rows limit naming `steps`, and names the per-example metric or the model when the
    /// memory estimate is too large.
    #[test]
    fn the_memory_check_names_the_part_that_dominates() {
        let file = Path::new("tiny.toml");
        let long = config(&TINY.replace("steps = 200000", "steps = 20000000"));
        check_memory(&long, 3, 8, file).unwrap();
        let endless = config(&TINY.replace("steps = 200000", "steps = 1000000000000000"));
        let e = check_memory(&endless, 3, 8, file).unwrap_err().to_string();
        assert!(e.starts_with("tiny.toml: steps: recorded metric rows"), "{e}");
        assert!(e.contains("--max-steps"), "{e}");
        let fisher = config(&TINY.replace("every = 1", "every = 100\ntrace_f = true"));
        let e = check_memory(&fisher, 1_000_000, 1_000_000, file)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tiny.toml: track.trace_f: "), "{e}");
        let e = check_memory(&config(TINY), 100_000_000, 8, file)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tiny.toml: model: "), "{e}");
        assert!(!e.contains("--max-steps"), "{e}");
    }
}
