//! Every config in `examples/configs/` parses and validates (sweeps expand), and every one runs end to end
//! with its step count capped (the `--max-steps` path), so the examples cannot rot.
mod common;
use common::*;
use imreg_cli::config::ExperimentConfig;
use imreg_cli::experiment::{prepare, run_to_folder, FolderOptions};
use imreg_cli::sweep::expand;
use std::path::PathBuf;

/// Steps each example runs here: enough to record step 0, a middle row and the last step.
const CAP: usize = 4;

fn example_configs() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_config_parses_and_runs_capped() {
    let files = example_configs();
    assert!(files.len() >= 8, "{files:?}");
    let dir = tempfile::tempdir().unwrap();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // A sweep runs its first grid point; a plain config runs as is.
        let mut cfg = if text.contains("\n[sweep]") {
            let entries = expand(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert!(entries.len() >= 2, "{}", f.display());
            entries[0].config.clone()
        } else {
            ExperimentConfig::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        };
        assert!(cfg.steps > CAP, "{}: the cap must shorten it", f.display());
        cfg.steps = CAP;
        let prep = prepare(cfg, f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let out = dir.path().join(f.file_stem().unwrap());
        let opts = FolderOptions {
            force: false,
            no_figures: true,
        };
        let s = run_to_folder(&prep, &out, &opts, &|| {}).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!((s.steps_run, s.diverged_at), (CAP, None), "{}", f.display());
        let (_, rows) = read_csv(&out.join("metrics.csv"));
        assert_eq!(rows.last().unwrap()[0], CAP as f64, "{}", f.display());
        // The last row records every enabled metric, finite.
        assert!(
            rows.last().unwrap().iter().all(|v| v.is_finite()),
            "{}: {rows:?}",
            f.display()
        );
    }
}

/// `imreg run --max-steps N` caps the steps and records the cap in the resolved config.
#[test]
fn max_steps_flag_caps_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let f = example_configs()
        .into_iter()
        .find(|p| p.ends_with("linreg_sgd.toml"))
        .unwrap();
    let out = dir.path().join("capped");
    assert_eq!(run_cli(&f, &out, &["--max-steps", "7", "--no-figures"]), 0);
    let (_, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(rows.last().unwrap()[0], 7.0);
    let resolved = ExperimentConfig::load(&out.join("config.toml")).unwrap();
    assert_eq!(resolved.steps, 7);
}
