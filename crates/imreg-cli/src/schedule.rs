//! The scheduled quantities of `imreg run` (`[[track.schedule]]`): any scalar quantity of `imreg analyze`
//! — `λ_max`, top-k and bottom-k Hessian eigenvalues, `Tr H`, the SLQ spectral density, `Tr K` and `λ_K¹`,
//! `Tr F`, batch sharpness, per-layer traces and `λ_max` — measured at steps `0, every, 2·every, …` and at
//! the final iterate by an observer of the training loop, through the same function as `analyze`
//! ([`crate::quantities::measure`]), so each point equals `imreg analyze` on that step's `θ` with the same
//! knobs. Each quantity becomes a series of `(step, value)` with the accuracy `analyze` reports for it
//! (estimator, standard error, samples, converged flag, residual bound), written to
//! `quantities/series.json`, one CSV per series and one figure per series (the densities of the scheduled
//! steps in one figure).
use crate::config::{ExperimentConfig, SubsetConfig};
use crate::density::Density;
use crate::error::{CliError, Result};
use crate::experiment::{pretty, save_figure, FolderOptions};
use crate::model::Model;
use crate::quantities::{measure, Measured, Plan, Quantity};
use crate::spectrum::Reported;
use imreg_objective::{Batch, Objective};
use imreg_plot::{write_atomic, Figure, Series};
use imreg_sgd::observe::{Cadence, Control, Observer, Scheduled, StepView};
use serde::Serialize;
use std::path::Path;

/// The folder of a run that holds the scheduled series.
pub const FOLDER: &str = "quantities";

/// One point of a series: the step and the value with its accuracy, as `analyze` reports it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Point {
    pub step: usize,
    #[serde(flatten)]
    pub value: Reported,
}

/// One scalar along the run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SeriesOf {
    /// The series' name (`hessian_trace`, `lambda_1`, `block_0_trace`, …), also its files' stem.
    pub name: String,
    /// The `analyze` quantity it belongs to.
    pub quantity: &'static str,
    pub points: Vec<Point>,
}

/// The spectral density at one scheduled step.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DensityAt {
    pub step: usize,
    #[serde(flatten)]
    pub density: Density,
}

/// What one `[[track.schedule]]` entry recorded.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Tracked {
    pub quantities: Vec<String>,
    pub every: usize,
    /// The estimators' seed (the same at every step).
    pub seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetConfig>,
    pub series: Vec<SeriesOf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub densities: Vec<DensityAt>,
}

/// The observer of one entry: measures its plan at each scheduled `θ_t` and appends the points.
pub struct Entry<'m> {
    model: &'m Model,
    plan: Plan,
    /// The examples of `subset` (none: all training examples).
    subset: Option<Vec<usize>>,
    record: Tracked,
}

/// The observers of `cfg`'s `[[track.schedule]]` on `model` (validated by `ExperimentConfig::validate`
/// and [`check`]).
pub fn entries<'m>(model: &'m Model, cfg: &ExperimentConfig) -> Result<Vec<Entry<'m>>> {
    let n = model.objective().n_examples();
    cfg.track
        .schedule
        .iter()
        .map(|s| {
            let plan = s
                .plan()
                .map_err(|f| CliError::Failed(format!("track.schedule: {}: {}", f.knob, f.reason)))?;
            Ok(Entry {
                model,
                plan,
                subset: s.subset.map(|sub| crate::train::subset_indices(&sub, n)),
                record: Tracked {
                    quantities: s.quantities.clone(),
                    every: s.every,
                    seed: s.seed,
                    subset: s.subset,
                    series: Vec::new(),
                    densities: Vec::new(),
                },
            })
        })
        .collect()
}

/// Checks `cfg`'s schedule against the model and its `n` training examples: `subset.n ≤ N`, and the plan
/// on the measured examples (`batch_size` within them), naming `track.schedule[i].<key>`.
pub fn check(cfg: &ExperimentConfig, model: &Model, file: &Path) -> Result<()> {
    let n = model.objective().n_examples();
    for (i, s) in cfg.track.schedule.iter().enumerate() {
        let field = |knob: &str| format!("track.schedule[{i}].{knob}");
        let measured = match s.subset {
            Some(sub) if sub.n > n => {
                return Err(CliError::input(
                    file,
                    field("subset.n"),
                    format!("{} exceeds the number of examples N = {n}", sub.n),
                ))
            }
            Some(sub) => sub.n,
            None => n,
        };
        let plan = s
            .plan()
            .map_err(|f| CliError::input(file, field(f.knob), f.reason))?;
        plan.check(model, measured)
            .map_err(|f| CliError::input(file, field(f.knob), f.reason))?;
    }
    Ok(())
}

impl<'m> Entry<'m> {
    /// This entry as an observer of the training loop, on its schedule.
    pub fn scheduled<'s, E: From<CliError>>(&'s mut self) -> Scheduled<'s, dyn Objective + 's, E>
    where
        'm: 's,
    {
        Scheduled::new(Cadence::Every(self.record.every), self)
    }

    /// Measures the plan at `θ_t` and appends the points of step `t`.
    fn measure(&mut self, step: usize, theta: &[f64]) -> Result<()> {
        let batch = self.subset.as_deref().map_or(Batch::Full, Batch::Indices);
        let m = measure(self.model, theta, batch, &self.plan)
            .map_err(|e| CliError::Failed(format!("step {step}: {e}")))?;
        for (name, quantity, value) in points(&m, &self.plan) {
            let series = match self.record.series.iter().position(|s| s.name == name) {
                Some(i) => &mut self.record.series[i],
                None => {
                    self.record.series.push(SeriesOf {
                        name,
                        quantity,
                        points: Vec::new(),
                    });
                    self.record.series.last_mut().expect("just pushed")
                }
            };
            series.points.push(Point { step, value });
        }
        if let Some(density) = m.density {
            self.record.densities.push(DensityAt { step, density });
        }
        Ok(())
    }

    /// What the entry recorded.
    pub fn finish(self) -> Tracked {
        self.record
    }
}

impl<'o, E: From<CliError>> Observer<dyn Objective + 'o, E> for Entry<'_> {
    fn observe(&mut self, at: &StepView<'_, dyn Objective + 'o>) -> std::result::Result<Control, E> {
        // An iterate that blew up has nothing to measure; the run's rows report the divergence.
        if at.theta.iter().all(|v| v.is_finite()) {
            self.measure(at.step, at.theta)?;
        }
        Ok(Control::Continue)
    }
}

/// The named scalars of a measurement: `(series name, analyze quantity, value with its accuracy)`.
fn points(m: &Measured, plan: &Plan) -> Vec<(String, &'static str, Reported)> {
    let wants = |q| plan.quantities.has(q);
    let mut out = Vec::new();
    if let Some(e) = &m.extremes {
        let top = |i: usize| Reported::eigenvalue(e, e.top[i], e.top_residuals.get(i).copied());
        if wants(Quantity::LambdaMax) && !e.top.is_empty() {
            out.push(("lambda_max".to_string(), "lambda_max", top(0)));
        }
        if wants(Quantity::TopK) {
            out.extend((0..e.top.len()).map(|i| (format!("lambda_{}", i + 1), "top-k", top(i))));
        }
        out.extend(e.bottom.iter().enumerate().map(|(i, &v)| {
            let r = Reported::eigenvalue(e, v, e.bottom_residuals.get(i).copied());
            (format!("lambda_min_{}", i + 1), "bottom-k", r)
        }));
    }
    let scalars = [
        ("hessian_trace", "trace", m.hessian_trace),
        ("trace_k", "k-spectrum", m.trace_k),
        ("lambda_k1", "k-spectrum", m.lambda_k1),
        ("trace_f", "fisher", m.trace_f),
        (
            "batch_sharpness",
            "batch-sharpness",
            m.batch_sharpness.map(|b| b.0),
        ),
        (
            "batch_sharpness_inside",
            "batch-sharpness",
            m.batch_sharpness.map(|b| b.1),
        ),
        ("density_trace", "density", m.density.as_ref().map(|d| d.trace)),
    ];
    out.extend(
        scalars
            .into_iter()
            .filter_map(|(name, q, r)| Some((name.to_string(), q, r?))),
    );
    for b in m.blocks.iter().flatten() {
        let stem: String = b
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        out.push((format!("block_{stem}_trace"), "blocks", b.trace));
        out.push((format!("block_{stem}_lambda_max"), "blocks", b.lambda_max));
    }
    out
}

/// Axis label of a series.
fn label(name: &str) -> String {
    if let Some(i) = name.strip_prefix("lambda_min_") {
        return format!("λ_min,{i}(∇²C)");
    }
    match name {
        "lambda_max" => "λ_max(∇²C)".into(),
        "density_trace" => "Tr ∇²C from the SLQ density".into(),
        _ => match name.strip_prefix("lambda_") {
            Some(i) if i.parse::<usize>().is_ok() => format!("λ_{i}(∇²C)"),
            _ => pretty(name).to_string(),
        },
    }
}

/// Most densities drawn in the density figure (evenly spaced over the evaluations, the first and last
/// included); `series.json` holds all of them.
const DRAWN_DENSITIES: usize = 6;

/// Writes the recorded series into `dir/quantities/`: `series.json` (every entry with its points and
/// densities), `<name>.csv` per series (`step,value,estimator,std_error,samples,unit,converged,
/// residual_bound`; empty cells where a field does not apply), `fig_<name>` per series (value against
/// the step, with ±2 standard errors where the value is an estimate; eigenvalues against `2/η`) and
/// `fig_density` (the densities of up to `DRAWN_DENSITIES` = 6 scheduled steps). Lists the files, relative
/// to `dir`, in `files`.
pub fn write(
    tracked: &[Tracked],
    dir: &Path,
    name: &str,
    eta: f64,
    opts: &FolderOptions,
    files: &mut Vec<String>,
) -> Result<()> {
    if tracked.is_empty() {
        return Ok(());
    }
    let folder = dir.join(FOLDER);
    std::fs::create_dir_all(&folder).map_err(|e| CliError::io(&folder, e))?;
    let mut written = Vec::new();
    let json = serde_json::to_string_pretty(&serde_json::json!({ "schedule": tracked }))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    write_atomic(&folder.join("series.json"), json.as_bytes())?;
    written.push("series.json".to_string());
    for s in tracked.iter().flat_map(|t| &t.series) {
        write_atomic(&folder.join(format!("{}.csv", s.name)), csv(s).as_bytes())?;
        written.push(format!("{}.csv", s.name));
        save_figure(
            series_figure(s, name, eta),
            &folder,
            &format!("fig_{}", s.name),
            opts,
            &mut written,
        )?;
    }
    for t in tracked.iter().filter(|t| !t.densities.is_empty()) {
        let d = &t.densities;
        let shown = DRAWN_DENSITIES.min(d.len());
        let mut fig = Figure::new(format!("{name}: Hessian spectral density (SLQ)"))
            .x_label("eigenvalue λ")
            .y_label("density ρ(λ)");
        let mut last = None;
        for k in 0..shown {
            let i = if shown == 1 {
                0
            } else {
                k * (d.len() - 1) / (shown - 1)
            };
            if last.replace(i) == Some(i) {
                continue;
            }
            let at = &d[i];
            fig = fig.series(Series::line(
                format!("step {}", at.step),
                at.density.grid.clone(),
                at.density.density.clone(),
            ));
        }
        save_figure(fig, &folder, "fig_density", opts, &mut written)?;
    }
    files.extend(written.into_iter().map(|f| format!("{FOLDER}/{f}")));
    Ok(())
}

/// The figure of one series.
fn series_figure(s: &SeriesOf, name: &str, eta: f64) -> Figure {
    let xs: Vec<f64> = s.points.iter().map(|p| p.step as f64).collect();
    let ys: Vec<f64> = s.points.iter().map(|p| p.value.value).collect();
    let y_label = label(&s.name);
    let mut fig = Figure::new(format!("{name}: {y_label}"))
        .x_label("step")
        .y_label(y_label);
    if s.points.iter().any(|p| p.value.std_error.is_some()) {
        let band = |sign: f64| -> Vec<f64> {
            s.points
                .iter()
                .map(|p| p.value.value + sign * 2.0 * p.value.std_error.unwrap_or(0.0))
                .collect()
        };
        fig = fig
            .series(Series::line("value − 2 SE", xs.clone(), band(-1.0)))
            .series(Series::line("value + 2 SE", xs.clone(), band(1.0)));
    }
    fig = fig.series(Series::line_markers(s.name.clone(), xs, ys));
    if s.name == "lambda_max"
        || s.quantity == "top-k"
        || s.quantity == "batch-sharpness"
        || s.name.ends_with("_lambda_max")
    {
        fig = fig.hline("2/η", 2.0 / eta);
    }
    fig
}

/// The CSV of one series: every point with its accuracy fields.
fn csv(s: &SeriesOf) -> String {
    let mut out = String::from("step,value,estimator,std_error,samples,unit,converged,residual_bound\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for p in &s.points {
        let r = &p.value;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            p.step,
            r.value,
            r.estimator,
            opt(r.std_error),
            r.samples.map_or(String::new(), |n| n.to_string()),
            r.unit.unwrap_or(""),
            r.converged,
            opt(r.residual_bound),
        ));
    }
    out
}
