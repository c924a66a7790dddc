//! Training runs with observers: GD or SGD on a model through the one training loop
//! (`imreg_sgd::train::train`), measured on a cadence by the observers of `imreg_sgd::observe` — the loss,
//! the step's gradient norm, the sharpness `λ_max(H)` by warm-started Lanczos, batch sharpness, `Tr K` and
//! `Tr F`, and the iterates — returned as numpy series for edge-of-stability plots.
use crate::convert::slice;
use crate::error::{bad_input, from_sgd};
use crate::model::PyModel;
use imreg_objective::partition::Remainder;
use imreg_objective::Objective;
use imreg_sgd::observe::{
    BatchSharpnessProbe, Cadence, FullLoss, GradNorm, GradientTraces, Iterates, Scheduled, SharpnessProbe,
};
use imreg_sgd::sampler::Sampler;
use imreg_sgd::train::{train, Blowup, Divergence, Optimizer, RunOutcome, Seeds, TrainOptions, Update};
use imreg_spectra::MonteCarloOptions;
use ndarray::Array2;
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The run's settings, a dict filled by the Python layer (`imreg.train`), which holds the defaults.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct RunArgs {
    lr: f64,
    steps: usize,
    sampler: String,
    batch_size: Option<usize>,
    drop_last: bool,
    momentum: f64,
    nesterov: bool,
    seed: u64,
    every: usize,
    divergence_loss: f64,
    lambda_max: bool,
    lanczos_iter: usize,
    lanczos_tol: f64,
    batch_sharpness: Option<usize>,
    mc_batches: usize,
    mc_rel_se: f64,
    gradient_traces: bool,
    record_theta: bool,
}

fn optimizer(n: usize, a: &RunArgs) -> PyResult<Optimizer<'static>> {
    let batch = |name: &str| {
        a.batch_size
            .ok_or_else(|| bad_input("batch_size", format!("the {name} sampler needs batch_size")))
    };
    let sampler = match a.sampler.as_str() {
        "full" => Sampler::Full,
        "reshuffling" => {
            let remainder = if a.drop_last {
                Remainder::Drop
            } else {
                Remainder::SmallerLastBatch
            };
            Sampler::reshuffling(batch("reshuffling")?, remainder)
        }
        "with_replacement" => Sampler::WithReplacement {
            batch_size: batch("with_replacement")?,
        },
        other => {
            return Err(bad_input(
                "sampler",
                format!("unknown sampler {other:?} (full, reshuffling, with_replacement)"),
            ))
        }
    };
    if let Some(b) = a.batch_size.filter(|&b| b == 0 || b > n) {
        return Err(bad_input("batch_size", format!("must lie in 1..={n}, got {b}")));
    }
    let momentum = a.momentum;
    if !(0.0..1.0).contains(&momentum) {
        return Err(bad_input(
            "momentum",
            format!("must lie in [0, 1), got {momentum}"),
        ));
    }
    let update = if a.nesterov {
        Update::Nesterov { momentum }
    } else if momentum > 0.0 {
        Update::HeavyBall { momentum }
    } else {
        Update::Plain
    };
    Ok(Optimizer {
        update,
        ..Optimizer::sgd(sampler)
    })
}

fn series<T>(records: &[(usize, T)], f: impl Fn(&T) -> f64) -> Vec<f64> {
    records.iter().map(|(_, r)| f(r)).collect()
}

/// Runs `args.steps` updates from `theta0`, observing every `args.every` steps (and the final iterate),
/// and returns the series with the run's outcome.
#[pyfunction]
pub fn run<'py>(
    py: Python<'py>,
    model: PyRef<'py, PyModel>,
    theta0: PyReadonlyArray1<'py, f64>,
    args: RunArgs,
) -> PyResult<Bound<'py, PyDict>> {
    let m: &PyModel = &model;
    let obj: &dyn Objective = m.obj();
    let n = obj.n_examples();
    let method = optimizer(n, &args)?;
    if args.every == 0 {
        return Err(bad_input("every", "must be ≥ 1"));
    }
    if let Some(b) = args.batch_sharpness.filter(|&b| b == 0 || b > n) {
        return Err(bad_input(
            "batch_sharpness",
            format!("batch size must lie in 1..={n}, got {b}"),
        ));
    }
    let theta0 = slice(&theta0, "theta0")?;
    let opts = TrainOptions {
        lr: args.lr,
        steps: args.steps,
        seeds: Seeds::from_seed(args.seed),
        divergence: Divergence {
            loss: args.divergence_loss,
            ..Divergence::default()
        },
    };
    let cadence = Cadence::Every(args.every);
    let mut loss = FullLoss::train();
    let mut grad_norm = GradNorm::default();
    let mut sharpness = SharpnessProbe::new(args.lanczos_iter, args.lanczos_tol, args.seed);
    let mut bs = BatchSharpnessProbe::new(
        args.batch_sharpness.unwrap_or(1),
        MonteCarloOptions {
            seed: args.seed,
            min_batches: args.mc_batches.min(20),
            max_batches: args.mc_batches,
            rel_se_tol: args.mc_rel_se,
            ..MonteCarloOptions::default()
        },
    );
    let mut traces = GradientTraces::new();
    let mut iterates = Iterates::default();
    let (done, outcome) = py
        .allow_threads(|| {
            let mut observers: Vec<Scheduled<'_, dyn Objective>> = vec![
                Scheduled::new(cadence, &mut loss),
                Scheduled::new(cadence, &mut grad_norm),
            ];
            if args.lambda_max {
                observers.push(Scheduled::new(cadence, &mut sharpness));
            }
            if args.batch_sharpness.is_some() {
                observers.push(Scheduled::new(cadence, &mut bs));
            }
            if args.gradient_traces {
                observers.push(Scheduled::new(cadence, &mut traces));
            }
            if args.record_theta {
                observers.push(Scheduled::new(cadence, &mut iterates));
            }
            let r = train(obj, theta0, &method, &opts, &mut observers);
            r.map(|t| (t.theta, t.outcome, t.gradient_calls))
                .map(|(theta, outcome, calls)| ((theta, calls), outcome))
        })
        .map_err(|e| from_sgd("theta0", e))?;
    let ((theta, calls), outcome) = (done, outcome);
    let d = PyDict::new(py);
    let steps: Vec<f64> = loss.records.iter().map(|(s, _)| *s as f64).collect();
    d.set_item("steps", steps.into_pyarray(py))?;
    d.set_item("loss", series(&loss.records, |l| *l).into_pyarray(py))?;
    d.set_item("grad_norm", series(&grad_norm.records, |g| *g).into_pyarray(py))?;
    let mut columns: Vec<(&str, Vec<f64>)> = Vec::new();
    if args.lambda_max {
        let r = &sharpness.records;
        columns.push(("lambda_max", series(r, |e| e.value)));
        columns.push(("lambda_max_residual", series(r, |e| e.residual_bound)));
        columns.push(("lanczos_iterations", series(r, |e| e.iterations as f64)));
    }
    if args.batch_sharpness.is_some() {
        let r = &bs.records;
        columns.push(("batch_sharpness", series(r, |s| s.mean_of_ratios.value)));
        columns.push(("batch_sharpness_se", series(r, |s| s.mean_of_ratios.std_error)));
        columns.push(("ratio_of_means", series(r, |s| s.ratio_of_means.value)));
        columns.push(("ratio_of_means_se", series(r, |s| s.ratio_of_means.std_error)));
    }
    if args.gradient_traces {
        columns.push(("trace_k", series(&traces.records, |t| t.covariance)));
        columns.push(("trace_f", series(&traces.records, |t| t.fisher)));
    }
    for (name, values) in columns {
        d.set_item(name, values.into_pyarray(py))?;
    }
    if args.record_theta {
        let r = &iterates.records;
        let p = obj.dim();
        d.set_item(
            "thetas",
            Array2::from_shape_fn((r.len(), p), |(i, j)| r[i].1[j]).into_pyarray(py),
        )?;
    }
    d.set_item("theta", theta.into_pyarray(py))?;
    d.set_item("gradient_calls", calls)?;
    let (status, step, blowup) = match outcome {
        RunOutcome::Completed => ("completed", None, None),
        RunOutcome::Stopped { step } => ("stopped", Some(step), None),
        RunOutcome::Diverged { step, blowup } => {
            let what = match blowup {
                Blowup::Loss(_) => "loss",
                Blowup::Norm(_) => "norm",
                Blowup::Observed(_) => "observed",
            };
            ("diverged", Some(step), Some((what, blowup.value())))
        }
    };
    d.set_item("outcome", status)?;
    d.set_item("diverged_step", step)?;
    d.set_item("blowup", blowup)?;
    Ok(d)
}
