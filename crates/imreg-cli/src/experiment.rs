//! `imreg run`: one experiment from a config, written atomically to its own folder (a temporary folder
//! beside the target, renamed into place when complete, with a completion marker inside).
use crate::config::{ExperimentConfig, InitConfig, InitScheme};
use crate::data::{self, Dataset, STREAM_INIT};
use crate::error::{CliError, Result};
use crate::model::Model;
use crate::output;
use crate::record::{Recorded, Recorder};
use crate::train::{train, TrainOutcome};
use imreg_objective::data::npy::npy_bytes;
use imreg_objective::rng;
use imreg_plot::{write_atomic, Figure, PlotError, Series};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The completion marker written last into every finished run folder.
pub const COMPLETE_MARKER: &str = "_COMPLETE";

/// A validated experiment, ready to run: every bad-input error has been raised by now.
pub struct Prepared {
    pub config: ExperimentConfig,
    /// The training data (after `[split]`).
    pub data: Option<Dataset>,
    pub model: Model,
    /// The same model on the test part of `[split]`.
    pub test_model: Option<Model>,
    pub theta0: Vec<f64>,
    /// The config file (or manifest) the run came from: never replaced by `--force`.
    pub file: PathBuf,
}

/// The `summary.json` of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub name: String,
    pub seed: u64,
    pub model: String,
    /// Number of parameters `p`.
    pub p: usize,
    /// Number of examples `N`.
    pub n: usize,
    pub steps_run: usize,
    pub diverged_at: Option<usize>,
    /// The last recorded value of each tracked metric.
    pub final_metrics: Vec<(String, f64)>,
    /// Files written, relative to the run folder.
    pub files: Vec<String>,
}

/// Validates `config` (from `file`) and builds data, model and `θ₀`. All input errors surface here.
pub fn prepare(config: ExperimentConfig, file: &Path) -> Result<Prepared> {
    config.validate(file)?;
    let full = config
        .data
        .as_ref()
        .map(|d| data::build(d, config.seed, file))
        .transpose()?;
    let (data, test) = match (full, &config.split) {
        (Some(d), Some(s)) => {
            let (tr, te) = data::split(&d, s, config.seed, file)?;
            (Some(tr), Some(te))
        }
        (d, _) => (d, None),
    };
    let mut model = Model::build(&config.model, data.as_ref(), file, config.seed)?;
    let test_model = test
        .as_ref()
        .map(|t| Model::build(&config.model, Some(t), file, config.seed))
        .transpose()?;
    if config.track.accuracy.period(1).is_some() && !model.is_classifier() {
        return Err(CliError::input(
            file,
            "track.accuracy",
            format!(
                "accuracy needs a classifier (logistic_regression, or mlp on class labels); model {} on data {} is not",
                config.model.kind(),
                config.data.as_ref().map_or("none", |d| d.kind())
            ),
        ));
    }
    let n = model.objective().n_examples();
    crate::train::check_memory(&config, model.objective().dim(), n, file)?;
    crate::train::check_tracking(&config, model.objective().dim(), n, file)?;
    crate::schedule::check(&config, &model, file)?;
    for (b, field) in [
        (config.optimizer.batch_size(), "optimizer.batch_size"),
        (config.track.batch_size, "track.batch_size"),
    ] {
        if let Some(b) = b.filter(|&b| b > n) {
            return Err(CliError::input(
                file,
                field,
                format!("batch size {b} exceeds the number of examples N = {n}"),
            ));
        }
    }
    if crate::regularize::is_regularized(&config) {
        // Builds the penalties once so every model-dependent regularizer error surfaces here (exit 2).
        crate::regularize::penalties(&config, &model, file)?;
    }
    let theta0 = init_theta(&config.init, &mut model, config.seed, file)?;
    Ok(Prepared {
        config,
        data,
        model,
        test_model,
        theta0,
        file: file.to_path_buf(),
    })
}

fn init_theta(init: &InitConfig, model: &mut Model, seed: u64, file: &Path) -> Result<Vec<f64>> {
    let p = model.objective().dim();
    if let Some(from) = &init.from {
        if !from.exists() {
            return Err(CliError::input(
                file,
                "init.from",
                format!("file {} does not exist", from.display()),
            ));
        }
        return model.load_theta(from, "init.from");
    }
    let scale = init.scale();
    if let (InitScheme::Pytorch, Model::Mlp(m, _)) = (init.scheme, &*model) {
        return Ok(m.init_params(rng::stream(seed, STREAM_INIT).random::<u64>(), scale));
    }
    if let (InitScheme::Pytorch, Model::Network(m, _)) = (init.scheme, &*model) {
        let net_seed = rng::stream(seed, STREAM_INIT).random::<u64>();
        return Ok(crate::network::pytorch_init(m.network(), net_seed, scale));
    }
    if scale == 0.0 {
        return Ok(vec![0.0; p]);
    }
    let mut r = rng::stream(seed, STREAM_INIT);
    Ok(rng::normal_vec(&mut r, p)
        .into_iter()
        .map(|v| scale * v)
        .collect())
}

/// Options of [`run_to_folder`].
#[derive(Clone, Debug, Default)]
pub struct FolderOptions {
    /// Replace an existing output folder.
    pub force: bool,
    /// Skip the SVG/PNG figures (the CSV series and `.npy` arrays are still written).
    pub no_figures: bool,
}

/// Checks that `out` may receive the run: it does not exist, or `force` is set and it is a folder imreg
/// wrote that is not protected (`output::check_replaceable`).
pub fn check_out(prep: &Prepared, out: &Path, force: bool) -> Result<()> {
    if std::fs::symlink_metadata(out).is_ok() && !force {
        return Err(CliError::input(
            out,
            "--out",
            "already exists (use --force to replace a folder imreg wrote)",
        ));
    }
    output::check_replaceable(out, Some(&prep.file))
}

/// Runs a prepared experiment and writes it to `out` atomically. `tick` is called once per recorded row.
pub fn run_to_folder(
    prep: &Prepared,
    out: &Path,
    opts: &FolderOptions,
    tick: &dyn Fn(),
) -> Result<RunSummary> {
    let (parent, leaf) = output::parent_and_leaf(out);
    check_out(prep, out, opts.force)?;
    std::fs::create_dir_all(&parent).map_err(|e| CliError::io(&parent, e))?;
    let prefix = format!(".tmp-{leaf}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The run folder gets the usual `0o777 & !umask`, not the temporary folder's private 0o700.
        builder.permissions(std::fs::Permissions::from_mode(0o777));
    }
    let tmp = builder
        .tempdir_in(&parent)
        .map_err(|e| CliError::io(&parent, e))?;
    // Marked from the start, so a folder left by a killed run is recognizably imreg's.
    output::mark(tmp.path(), "run")?;
    let columns = crate::train::columns(&prep.config, prep.test_model.is_some());
    let mut recorder = Recorder::new(tmp.path(), columns)?;
    let outcome = train(
        &prep.model,
        prep.test_model.as_ref(),
        prep.theta0.clone(),
        &prep.config,
        &mut |row| {
            recorder.push(row)?;
            tick();
            Ok(())
        },
    )?;
    let recorded = recorder.finish()?;
    let summary = write_outputs(prep, &outcome, &recorded, tmp.path(), &leaf, opts)?;
    if std::fs::symlink_metadata(out).is_ok() {
        // Checked again: only a folder carrying imreg's marker is ever deleted.
        output::check_replaceable(out, Some(&prep.file))?;
        std::fs::remove_dir_all(out).map_err(|e| CliError::io_while("removing", out, e))?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        CliError::io(out, e)
    })?;
    Ok(summary)
}

fn write_outputs(
    prep: &Prepared,
    outcome: &TrainOutcome,
    recorded: &Recorded,
    dir: &Path,
    default_name: &str,
    opts: &FolderOptions,
) -> Result<RunSummary> {
    let cfg = &prep.config;
    write_atomic(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    // metrics.csv and the column .npy files were streamed by the recorder.
    let mut files = vec!["config.toml".to_string(), "metrics.csv".to_string()];
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        write_atomic(&dir.join(name), bytes)?;
        files.push(name.to_string());
        Ok(())
    };
    let p = prep.theta0.len();
    put("theta_init.npy", &npy(&[p], &prep.theta0)?)?;
    put("theta_final.npy", &npy(&[p], &outcome.theta)?)?;
    prep.model
        .save_theta(&dir.join("theta_final.safetensors"), &outcome.theta)?;
    files.push("theta_final.safetensors".into());
    files.extend(recorded.columns.iter().map(|c| format!("{c}.npy")));
    let name = cfg.name.clone().unwrap_or_else(|| default_name.to_string());
    let eta = cfg.optimizer.lr();
    for (col, series) in recorded.columns.iter().skip(1).zip(&recorded.series) {
        // Rows where the metric was not due hold NaN: the series has only the recorded points, as one line.
        let mut fig = Figure::new(format!("{name}: {}", pretty(col)))
            .x_label("step")
            .y_label(pretty(col))
            .series(Series::line(*col, series.xs.clone(), series.ys.clone()));
        if matches!(
            *col,
            "loss" | "test_loss" | "grad_norm" | "trace_k" | "trace_f" | "eigen_residual"
        ) {
            fig = fig.log_y();
        }
        if matches!(
            *col,
            "sharpness" | "batch_sharpness" | "batch_sharpness_inside" | "mini_bs"
        ) || crate::train::is_top_eigenvalue(col)
        {
            fig = fig.hline("2/η", 2.0 / eta);
        }
        save_figure(fig, dir, &format!("fig_{col}"), opts, &mut files)?;
    }
    // The tracked eigenvalues together, against 2/η.
    let eigen: Vec<Series> = recorded
        .columns
        .iter()
        .skip(1)
        .zip(&recorded.series)
        .filter(|(c, _)| crate::train::is_top_eigenvalue(c) || crate::train::is_bottom_eigenvalue(c))
        .map(|(c, series)| Series::line(*c, series.xs.clone(), series.ys.clone()))
        .collect();
    if !eigen.is_empty() {
        let mut fig = Figure::new(format!("{name}: Hessian eigenvalues"))
            .x_label("step")
            .y_label("λ_i(∇²C)")
            .hline("2/η", 2.0 / eta);
        for s in eigen {
            fig = fig.series(s);
        }
        save_figure(fig, dir, "fig_eigenvalues", opts, &mut files)?;
    }
    crate::schedule::write(&outcome.schedule, dir, &name, eta, opts, &mut files)?;
    let final_metrics = recorded
        .columns
        .iter()
        .zip(&recorded.last)
        .skip(1)
        .map(|(c, v)| (c.to_string(), *v))
        .collect();
    let summary = RunSummary {
        name,
        seed: cfg.seed,
        model: prep.model.objective().name(),
        p,
        n: prep.model.objective().n_examples(),
        steps_run: outcome.steps_run,
        diverged_at: outcome.diverged_at,
        final_metrics,
        files: {
            let mut f = files.clone();
            f.push("summary.json".into());
            f
        },
    };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| CliError::Failed(e.to_string()))?;
    write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    write_atomic(&dir.join(COMPLETE_MARKER), b"complete\n")?;
    Ok(summary)
}

/// Saves `fig` as `stem.svg/.png/.csv` into `dir` (only its CSV with `no_figures`), listing the files.
pub(crate) fn save_figure(
    fig: Figure,
    dir: &Path,
    stem: &str,
    opts: &FolderOptions,
    files: &mut Vec<String>,
) -> Result<()> {
    if opts.no_figures {
        imreg_plot::write_csv(&dir.join(format!("{stem}.csv")), &fig.series)?;
        files.push(format!("{stem}.csv"));
        return Ok(());
    }
    match fig.save(dir, stem) {
        Ok(paths) => files.extend(
            paths
                .iter()
                .filter_map(|p| p.file_name()?.to_str().map(String::from)),
        ),
        // A metric with no drawable point (e.g. diverged at step 0) has no figure; its CSV still exists.
        Err(PlotError::Empty { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The `.npy` bytes of `data` with `shape`.
fn npy(shape: &[usize], data: &[f64]) -> Result<Vec<u8>> {
    npy_bytes(shape, data).map_err(|e| CliError::Failed(e.to_string()))
}

/// Axis label of a metric column.
pub(crate) fn pretty(col: &str) -> &str {
    match col {
        "loss" => "loss C(θ)",
        "test_loss" => "test loss",
        "grad_norm" => "‖∇C(θ)‖",
        "sharpness" => "sharpness λ_max(∇²C)",
        "accuracy" => "accuracy",
        "test_accuracy" => "test accuracy",
        "batch_sharpness" => "batch sharpness E_B[g_BᵀH_Bg_B/‖g_B‖²]",
        "batch_sharpness_inside" => "batch sharpness E_B[g_BᵀH_Bg_B]/E_B[‖g_B‖²]",
        "mini_bs" => "MiniBS E_B[λ_max(H_B)]",
        "lambda_k1" => "λ_K¹",
        "trace_k" => "Tr K",
        "trace_f" => "Tr F (empirical)",
        "imbalance" => "imbalance ‖a‖² − ‖b‖²",
        "hessian_trace" => "Tr ∇²C",
        "hessian_trace_se" => "standard error of Tr ∇²C (0: exact)",
        "eigen_residual" => "largest relative Lanczos residual bound",
        "eigen_value_bound" => "largest relative Lanczos eigenvalue bound min(r, r²/δ̂)",
        "eigen_iterations" => "Lanczos steps",
        "eigen_converged" => "Lanczos converged (1) or not (0)",
        other => other,
    }
}
