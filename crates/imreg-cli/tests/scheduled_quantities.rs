//! `[[track.schedule]]`: quantities of `imreg analyze` measured along a run. Each point equals
//! `imreg analyze` on that step's parameters with the same knobs (bitwise, every accuracy field included);
//! bad entries are refused with exit 2 naming `track.schedule[i].<key>`; the series are bitwise identical
//! on one and two threads; configs without a schedule write no `quantities/` folder.
mod common;
use common::*;
use imreg_cli::config::ExperimentConfig;
use imreg_cli::experiment::prepare;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// GD on a tanh MLP (p = 64·3 + 3 + 3·10 + 10 = 235) on 60 digits, with trace, top-k and density every 4
/// steps — Lanczos, Hutch++ and SLQ (`dense_max_p = 0`, `exact_trace_max_p = 0`), so every accuracy field
/// is exercised — and `λ_max`, `Tr K`, `Tr F` every 6 steps on a fixed subset of 20 examples.
const MLP: &str = r#"
seed = 2
steps = 12

[data]
kind = "digits"

[split]
n_train = 60

[model]
kind = "mlp"
hidden = [3]
activation = "tanh"
loss = "half_mse"

[init]
scheme = "pytorch"

[optimizer]
kind = "gd"
lr = 0.3

[track]
every = 4

[[track.schedule]]
quantities = ["trace", "top-k", "density"]
every = 4
top_k = 2
dense_max_p = 0
exact_trace_max_p = 0
trace_matvecs = 30
slq_probes = 3
slq_steps = 20
density_points = 50
seed = 5

[[track.schedule]]
quantities = ["lambda_max", "k-spectrum", "fisher"]
every = 6
subset = { n = 20, seed = 1 }
"#;

/// `analyze`'s flags with the knobs of the first schedule entry.
const ANALYZE_KNOBS: [&str; 18] = [
    "--quantities",
    "trace,top-k,density",
    "--top-k",
    "2",
    "--dense-max-p",
    "0",
    "--exact-trace-max-p",
    "0",
    "--trace-matvecs",
    "30",
    "--slq-probes",
    "3",
    "--slq-steps",
    "20",
    "--density-points",
    "50",
    "--seed",
    "5",
];

/// `imreg analyze ARGS…` as the command computes it.
fn analyze(args: &[&str]) -> imreg_cli::analyze::Analysis {
    imreg_cli::analyze_from_args(["imreg", "analyze"].iter().chain(args).copied()).unwrap()
}

fn series_json(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("quantities/series.json")).unwrap()).unwrap()
}

/// The point of `series` at `step` of schedule entry `entry`, without its `step`.
fn point(v: &Value, entry: usize, series: &str, step: u64) -> Value {
    let s = v["schedule"][entry]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == series)
        .unwrap_or_else(|| panic!("no series {series}"));
    let mut p = s["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["step"] == step)
        .unwrap_or_else(|| panic!("{series} has no step {step}"))
        .clone();
    p.as_object_mut().unwrap().remove("step");
    p
}

/// The parameters `θ_t` of the run of `cfg` at `step`: the final parameters of the same run stopped there.
fn theta_at(dir: &Path, step: usize) -> PathBuf {
    let text = MLP.replace("steps = 12", &format!("steps = {step}"));
    let cfg = write(dir, &format!("to{step}.toml"), &text);
    let out = dir.join(format!("to{step}"));
    assert_eq!(run_cli(&cfg, &out, &["--no-figures"]), 0);
    out.join("theta_final.npy")
}

#[test]
fn each_scheduled_point_equals_analyze_at_that_steps_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", MLP);
    let out = dir.path().join("run");
    assert_eq!(run_cli(&cfg, &out, &[]), 0);
    let v = series_json(&out);
    let steps = [0u64, 4, 8, 12];
    for &step in &steps {
        let theta = match step {
            0 => out.join("theta_init.npy"),
            12 => out.join("theta_final.npy"),
            s => theta_at(dir.path(), s as usize),
        };
        let mut args = vec![
            "--config",
            cfg.to_str().unwrap(),
            "--params",
            theta.to_str().unwrap(),
        ];
        args.extend(ANALYZE_KNOBS);
        let a = analyze(&args);
        assert_eq!(a.eigen_method, "lanczos");
        // Tr H: Hutch++ with its standard error and probe count, all fields equal.
        let trace = serde_json::to_value(a.hessian_trace.unwrap()).unwrap();
        assert_eq!(trace["estimator"], "monte_carlo", "{trace}");
        assert_eq!(point(&v, 0, "hessian_trace", step), trace, "step {step}");
        // λ_1, λ_2: value, residual bound, Lanczos steps and converged flag.
        for i in 0..2 {
            let p = point(&v, 0, &format!("lambda_{}", i + 1), step);
            assert_eq!(p["value"].as_f64().unwrap(), a.hessian_top[i], "step {step}");
            assert_eq!(
                p["residual_bound"].as_f64().unwrap(),
                a.top_residuals[i],
                "step {step}"
            );
            assert_eq!(p["samples"].as_u64().unwrap(), a.eigen_iterations as u64);
            assert_eq!(p["converged"].as_bool().unwrap(), a.eigen_converged);
            assert_eq!(p["estimator"], "lanczos");
        }
        // The density: nodes, weights, grid, values and its trace estimate.
        let density = v["schedule"][0]["densities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["step"] == step)
            .unwrap()
            .clone();
        let mut expected = serde_json::to_value(a.density.as_ref().unwrap()).unwrap();
        expected["step"] = Value::from(step);
        assert_eq!(density, expected, "step {step}");
        assert_eq!(
            point(&v, 0, "density_trace", step),
            serde_json::to_value(a.density.unwrap().trace).unwrap()
        );
    }
    // Exactly the scheduled steps, in order, in each series of the first entry; the second entry's at
    // 0, 6 and the final step.
    for (entry, want) in [(0, steps.to_vec()), (1, vec![0, 6, 12])] {
        for s in v["schedule"][entry]["series"].as_array().unwrap() {
            let got: Vec<u64> = s["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["step"].as_u64().unwrap())
                .collect();
            assert_eq!(got, want, "{}", s["name"]);
        }
    }
    // The CSV of a series holds the same numbers; a figure and its raw series are written beside it.
    let (h, rows) = read_quantity_csv(&out.join("quantities/hessian_trace.csv"));
    assert_eq!(
        h,
        "step,value,estimator,std_error,samples,unit,converged,residual_bound"
    );
    for (row, &step) in rows.iter().zip(&steps) {
        let p = point(&v, 0, "hessian_trace", step);
        assert_eq!(row[0], step.to_string());
        assert_eq!(row[1].parse::<f64>().unwrap(), p["value"].as_f64().unwrap());
        assert_eq!(row[3].parse::<f64>().unwrap(), p["std_error"].as_f64().unwrap());
    }
    for f in [
        "fig_hessian_trace.svg",
        "fig_hessian_trace.png",
        "fig_hessian_trace.csv",
        "fig_lambda_1.png",
        "fig_density.png",
        "fig_density.csv",
        "fig_lambda_max.png",
        "fig_trace_f.png",
    ] {
        assert!(out.join("quantities").join(f).is_file(), "{f}");
    }
    let summary: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let files: Vec<&str> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(files.contains(&"quantities/series.json"), "{files:?}");
    // A run's config.toml keeps the schedule.
    let back = ExperimentConfig::load(&out.join("config.toml")).unwrap();
    assert_eq!(back.track, ExperimentConfig::load(&cfg).unwrap().track);
}

fn read_quantity_csv(path: &Path) -> (String, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let rows = lines.map(|l| l.split(',').map(String::from).collect()).collect();
    (header, rows)
}

/// The subset entry measures on the subset's examples: its `Tr F` equals `analyze` on a data file that
/// holds exactly those examples (same θ), to rounding.
#[test]
fn the_subset_entry_measures_on_the_subset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", MLP);
    let out = dir.path().join("run");
    assert_eq!(run_cli(&cfg, &out, &["--no-figures"]), 0);
    let v = series_json(&out);
    let prep = prepare(ExperimentConfig::load(&cfg).unwrap(), &cfg).unwrap();
    let data = prep.data.as_ref().unwrap();
    let ix = imreg_cli::train::subset_indices(&imreg_cli::config::SubsetConfig { n: 20, seed: 1 }, data.n());
    // The subset's inputs and class labels.
    let x: Vec<f64> = ix.iter().flat_map(|&i| data.x.row(i).to_vec()).collect();
    let y: Vec<i64> = ix.iter().map(|&i| data.y[[i, 0]] as i64).collect();
    let xp = dir.path().join("x.npy");
    let yp = dir.path().join("y.npy");
    let x = imreg_objective::data::npy::npy_bytes(&[20, data.dim()], &x).unwrap();
    std::fs::write(&xp, x).unwrap();
    write_int_labels(&yp, &y);
    let theta = out.join("theta_final.npy");
    let a = analyze(&[
        "--model",
        "mlp",
        "--hidden",
        "3",
        "--activation",
        "tanh",
        "--loss",
        "half_mse",
        "--data",
        xp.to_str().unwrap(),
        "--targets",
        yp.to_str().unwrap(),
        "--classes",
        "10",
        "--params",
        theta.to_str().unwrap(),
        "--quantities",
        "lambda_max,fisher",
    ]);
    let f = point(&v, 1, "trace_f", 12)["value"].as_f64().unwrap();
    let want = a.trace_f.unwrap().value;
    assert!((f - want).abs() <= 1e-12 * want.abs(), "{f} vs {want}");
    let l = point(&v, 1, "lambda_max", 12)["value"].as_f64().unwrap();
    assert!(
        (l - a.hessian_top[0]).abs() <= 1e-12 * l.abs(),
        "{l} vs {}",
        a.hessian_top[0]
    );
    // On the full training set Tr F differs.
    let full = analyze(&[
        "--config",
        cfg.to_str().unwrap(),
        "--params",
        theta.to_str().unwrap(),
        "--quantities",
        "fisher",
    ]);
    assert!((full.trace_f.unwrap().value - f).abs() > 1e-6 * f.abs());
}

#[test]
fn bad_schedule_entries_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let first = |old: &str, new: &str| MLP.replacen(old, new, 1);
    let cases = [
        (
            first(r#"["trace", "top-k", "density"]"#, r#"["trace", "nope"]"#),
            "track.schedule[0].quantities",
        ),
        (
            first(r#"["trace", "top-k", "density"]"#, r#"["diagonal"]"#),
            "track.schedule[0].quantities",
        ),
        (
            first(r#"["trace", "top-k", "density"]"#, r#"["fisher"]"#),
            "track.schedule[1].quantities",
        ),
        (
            first("every = 4\ntop_k", "every = 0\ntop_k"),
            "track.schedule[0].every",
        ),
        (
            first("seed = 5", "seed = 5\nlanczos_tol = -1"),
            "track.schedule[0].lanczos_tol",
        ),
        (
            first("slq_probes = 3", "slq_probes = 0"),
            "track.schedule[0].slq_probes",
        ),
        (
            first("seed = 5", "seed = 5\ndensity_sigma = 0"),
            "track.schedule[0].density_sigma",
        ),
        (
            first("seed = 5", "seed = 5\nmc_batches = 1"),
            "track.schedule[0].mc_batches",
        ),
        (
            first(r#"["trace", "top-k", "density"]"#, r#"["batch-sharpness"]"#),
            "track.schedule[0].batch_size",
        ),
        (
            first("seed = 5", "seed = 5\nbatch_size = 61"),
            "track.schedule[0].batch_size",
        ),
        (
            MLP.replace("n = 20, seed = 1", "n = 61, seed = 1"),
            "track.schedule[1].subset.n",
        ),
        (
            MLP.replace(
                r#"["lambda_max", "k-spectrum", "fisher"]"#,
                r#"["batch-sharpness"]"#,
            )
            .replace("subset = { n = 20", "batch_size = 21\nsubset = { n = 20"),
            "track.schedule[1].batch_size",
        ),
    ];
    assert_refused(dir.path(), &cases);
    // An unknown key of an entry is named too.
    let cfg = write(
        dir.path(),
        "unknown.toml",
        &first("seed = 5", "seed = 5\nslq_prob = 3"),
    );
    let e = ExperimentConfig::load(&cfg).unwrap_err().to_string();
    assert!(e.contains("slq_prob"), "{e}");
    assert_eq!(run_cli(&cfg, &dir.path().join("unknown"), &[]), 2);
}

#[test]
fn scheduled_series_are_bitwise_identical_on_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", MLP);
    let runs: Vec<Vec<(String, Vec<u8>)>> = [1, 2]
        .into_iter()
        .map(|threads| {
            let out = dir.path().join(format!("t{threads}"));
            let code =
                imreg_objective::threads::on_threads(threads, || run_cli(&cfg, &out, &["--no-figures"]))
                    .unwrap();
            assert_eq!(code, 0);
            tree(&out.join("quantities"))
        })
        .collect();
    assert!(runs[0].iter().any(|(f, _)| f == "series.json"));
    assert_eq!(runs[0], runs[1]);
}

/// A config without `[[track.schedule]]` writes no `quantities/` folder.
#[test]
fn runs_without_a_schedule_write_no_series() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, _) = run_metrics(dir.path(), "small", SMALL);
    assert!(!dir.path().join("small/quantities").exists());
}
