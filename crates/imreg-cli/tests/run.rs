//! End to end: `imreg run` on small configs, outputs read back, bad configs rejected with exit code 2.
mod common;
use common::*;
use imreg_cli::config::ExperimentConfig;
use imreg_cli::experiment::prepare;
use imreg_cli::CliError;
use imreg_objective::data::npy::{read_npy, write_npy};
use imreg_objective::Batch;
use std::path::Path;

#[test]
fn run_writes_metrics_npy_figures_and_is_bitwise_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "small.toml", SMALL);
    let out = dir.path().join("out");
    assert_eq!(run_cli(&cfg, &out, &[]), 0);
    let (header, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(header, ["step", "loss", "grad_norm", "sharpness"]);
    // steps 0, 5, …, 40
    assert_eq!(
        rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
        (0..=8).map(|k| 5.0 * k as f64).collect::<Vec<_>>()
    );
    // Each .npy column equals the CSV column bit for bit.
    for (j, name) in header.iter().enumerate() {
        let a = read_npy(out.join(format!("{name}.npy"))).unwrap();
        assert_eq!(a.shape, vec![rows.len()]);
        for (x, r) in a.data.iter().zip(&rows) {
            assert_eq!(x.to_bits(), r[j].to_bits(), "{name}");
        }
    }
    // SGD made progress on this well-conditioned problem.
    assert!(
        rows.last().unwrap()[1] < 0.5 * rows[0][1],
        "loss did not decrease: {rows:?}"
    );
    let theta = read_npy(out.join("theta_final.npy")).unwrap();
    assert_eq!(theta.shape, vec![5]); // 4 weights + bias
    for f in [
        "fig_loss.svg",
        "fig_loss.png",
        "fig_loss.csv",
        "fig_sharpness.png",
        "config.toml",
        "summary.json",
        "_COMPLETE",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The resolved config parses back to the same config.
    let resolved = ExperimentConfig::load(&out.join("config.toml")).unwrap();
    assert_eq!(resolved, ExperimentConfig::load(&cfg).unwrap());
    // Same config, same bytes.
    let again = dir.path().join("again");
    assert_eq!(run_cli(&cfg, &again, &[]), 0);
    assert_eq!(tree(&out), tree(&again));
    // An existing output folder is bad input unless --force.
    assert_eq!(run_cli(&cfg, &out, &[]), 2);
    assert_eq!(run_cli(&cfg, &out, &["--force"]), 0);
}

/// GD through the CLI equals GD written out by hand against the library's objective, bit for bit, and the
/// recorded sharpness equals the dense Hessian's top eigenvalue.
#[test]
fn gd_run_matches_library_calls() {
    let dir = tempfile::tempdir().unwrap();
    let text = small_gd();
    let cfg_path = write(dir.path(), "gd.toml", &text);
    let out = dir.path().join("gd");
    assert_eq!(run_cli(&cfg_path, &out, &["--no-figures"]), 0);
    let prep = prepare(ExperimentConfig::load(&cfg_path).unwrap(), &cfg_path).unwrap();
    let obj = prep.model.objective();
    let mut theta = prep.theta0.clone();
    for _ in 0..40 {
        let g = obj.grad(&theta, Batch::Full).unwrap();
        theta.iter_mut().zip(&g).for_each(|(t, g)| *t -= 0.05 * g);
    }
    let cli_theta = read_npy(out.join("theta_final.npy")).unwrap().data;
    assert_eq!(
        cli_theta.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        theta.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let (_, rows) = read_csv(&out.join("metrics.csv"));
    let last = rows.last().unwrap();
    assert_eq!(
        last[1].to_bits(),
        obj.loss(&theta, Batch::Full).unwrap().to_bits()
    );
    let h = obj.dense_hessian(&theta, Batch::Full).unwrap();
    let lmax = h.symmetric_eigenvalues().max();
    assert!((last[3] - lmax).abs() <= 1e-10 * lmax, "{} vs {lmax}", last[3]);
    assert!(!out.join("fig_loss.png").exists() && out.join("fig_loss.csv").exists());
}

fn input_error(cfg: &Path) -> (String, String) {
    let r = ExperimentConfig::load(cfg).and_then(|c| prepare(c, cfg).map(|_| ()));
    match r {
        Err(CliError::Input { field, reason, .. }) => (field, reason),
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// Runs `imreg run` on a bad config: exit code 2, no output folder and no temporary folder left.
fn rejected(dir: &Path, name: &str, text: &str) -> (String, String) {
    let cfg = write(dir, &format!("{name}.toml"), text);
    let outs = dir.join("outs");
    std::fs::create_dir_all(&outs).unwrap();
    let out = outs.join(name);
    assert_eq!(run_cli(&cfg, &out, &[]), 2, "{name}");
    assert!(!out.exists(), "{name}: partial output left");
    assert_eq!(
        std::fs::read_dir(&outs).unwrap().count(),
        0,
        "{name}: temporary files left"
    );
    input_error(&cfg)
}

#[test]
fn bad_configs_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (f, r) = rejected(
        d,
        "unknown",
        &SMALL.replace("batch_size = 6", "batch_size = 6\nbatchsize = 6"),
    );
    assert!(
        f.ends_with("batchsize") && r.contains("unknown field"),
        "{f}: {r}"
    );
    let (f, r) = rejected(
        d,
        "unknown_top",
        &SMALL.replace("steps = 40", "steps = 40\nstpes = 3"),
    );
    assert_eq!(f, "stpes", "{r}");
    let (f, r) = rejected(d, "wrong_type", &SMALL.replace("steps = 40", "steps = \"forty\""));
    assert_eq!(f, "steps", "{r}");
    assert!(r.contains("invalid type"), "{r}");
    let (f, r) = rejected(
        d,
        "wrong_type_nested",
        &SMALL.replace("lr = 0.05", "lr = \"fast\""),
    );
    assert!(f.starts_with("optimizer"), "{f}: {r}");
    assert!(r.contains("invalid type"), "{r}");
    let (f, r) = rejected(
        d,
        "batch_too_big",
        &SMALL.replace("batch_size = 6", "batch_size = 25"),
    );
    assert_eq!(f, "optimizer.batch_size", "{r}");
    assert!(r.contains("25") && r.contains("N = 24"), "{r}");
    let (f, r) = rejected(d, "negative_lr", &SMALL.replace("lr = 0.05", "lr = -1.0"));
    assert_eq!(f, "optimizer.lr", "{r}");
    // Data files: missing, and inconsistent shapes.
    let npy_cfg = |x: &str, y: &str| {
        let start = SMALL.find("[data]").unwrap();
        let end = SMALL.find("[model]").unwrap();
        format!(
            "{}[data]\nkind = \"npy\"\nx = \"{x}\"\ny = \"{y}\"\n\n{}",
            &SMALL[..start],
            &SMALL[end..]
        )
    };
    let (f, r) = rejected(d, "missing_file", &npy_cfg("nope_x.npy", "nope_y.npy"));
    assert_eq!(f, "data.x", "{r}");
    assert!(r.contains("nope_x.npy"), "{r}");
    write_npy(d.join("x.npy"), &[24, 4], &[0.5; 96]).unwrap();
    write_npy(d.join("y.npy"), &[23], &[1.0; 23]).unwrap();
    let (f, r) = rejected(d, "shapes", &npy_cfg("x.npy", "y.npy"));
    assert_eq!(f, "data.y", "{r}");
    assert!(r.contains("23") && r.contains("24"), "{r}");
    // A good npy config runs (relative paths resolve against the config's folder).
    write_npy(d.join("y.npy"), &[24], &[1.0; 24]).unwrap();
    let cfg = write(d, "npy_ok.toml", &npy_cfg("x.npy", "y.npy"));
    assert_eq!(run_cli(&cfg, &d.join("npy_ok"), &["--no-figures"]), 0);
}

#[test]
fn divergence_is_reported_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = small_gd().replace("lr = 0.05", "lr = 50.0");
    let cfg = write(dir.path(), "div.toml", &text);
    let out = dir.path().join("div");
    assert_eq!(run_cli(&cfg, &out, &[]), 0);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let at = summary["diverged_at"].as_u64().expect("divergence step recorded");
    assert!((1..40).contains(&at), "{summary}");
}
