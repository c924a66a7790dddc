//! Empirical studies end to end: `imreg study` runs and reports a study, a study run is a pure function of
//! its config (bitwise identical with one and two rayon threads), a study kept by the files `.gitignore` keeps
//! resumes and reports as the whole folder did, bad input exits 2 naming the argument, and
//! the two run-config options the studies need — `optimizer.graft` and `track.micro_grad_norm` — do what
//! their formulas say.
mod common;
use common::*;
use imreg_cli::experiment::{prepare, FolderOptions};
use imreg_cli::study::{self, ClaimOutcome, StudyDataset, StudyOptions, StudyScale};
use imreg_cli::sweep::Shard;
use imreg_objective::Batch;
use std::path::Path;

fn smoke_digits() -> StudyOptions {
    StudyOptions::new(StudyDataset::Digits, StudyScale::Smoke)
}

/// Runs the smoke instance of Novack's study on the digits in a rayon pool of `threads` threads.
fn run_in_pool(threads: usize, out: &Path) {
    let studies = study::registry();
    let novack = study::find(&studies, "novack").unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let folder = FolderOptions {
        force: true,
        no_figures: true,
    };
    pool.install(|| study::run(novack, &smoke_digits(), out, Shard::ALL, &folder, &|| {}))
        .unwrap();
}

#[test]
fn a_study_run_is_bitwise_identical_at_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    run_in_pool(1, &one);
    run_in_pool(2, &two);
    let (a, b) = (tree(&one), tree(&two));
    assert!(a.iter().any(|(name, _)| name.ends_with("theta_final.npy")));
    assert_eq!(a.len(), b.len());
    for ((na, ba), (nb, bb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ba == bb, "{na} differs between one and two threads");
    }
}

#[test]
fn the_study_command_runs_reports_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("novack");
    let o = out.to_str().unwrap();
    assert_eq!(cli(&["study", "list"]), 0);
    let run = |scale| {
        cli(&[
            "study",
            "run",
            "novack",
            "--dataset",
            "digits",
            "--scale",
            scale,
            "--out",
            o,
        ])
    };
    assert_eq!(run("smoke"), 0);
    assert_eq!(cli(&["study", "report", "novack", "--out", o]), 0);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## digits (smoke scale, seeds [0])"), "{md}");
    assert!(md.contains("it is not evidence"), "{md}");
    // One seed: every verdict is inconclusive (no standard error).
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let verdicts = json["datasets"][0]["verdicts"].as_array().unwrap();
    assert!(verdicts.len() >= 8);
    assert!(
        verdicts.iter().all(|v| v["outcome"] == "inconclusive"),
        "{verdicts:?}"
    );
    assert!(out.join("digits/fig_micro_grad_norm.svg").is_file());
    // A second dataset prepared but not run (its script written, as for Slurm) makes the whole study
    // incomplete; the finished dataset alone can still be reported.
    let prepared = cli(&[
        "study",
        "submit",
        "novack",
        "--dataset",
        "mnist",
        "--scale",
        "smoke",
        "--out",
        o,
    ]);
    assert_eq!(prepared, 0);
    assert_eq!(cli(&["study", "report", "novack", "--out", o]), 1);
    assert_eq!(
        cli(&["study", "report", "novack", "--out", o, "--dataset", "digits"]),
        0
    );
    assert_eq!(
        cli(&["study", "report", "novack", "--out", o, "--dataset", "cifar"]),
        2
    );
    // Rerunning skips every finished run and changes nothing.
    let before = tree(&out.join("digits/run-0000"));
    assert_eq!(run("smoke"), 0);
    assert_eq!(tree(&out.join("digits/run-0000")), before);
    // Another scale in the same folder is another manifest: refused.
    assert_eq!(run("reduced"), 2);
    assert_eq!(cli(&["study", "run", "no-such-study", "--out", o]), 2);
    assert_eq!(
        cli(&["study", "run", "novack", "--dataset", "cifar", "--out", o]),
        2
    );
    assert_eq!(cli(&["study", "run", "novack", "--scale", "huge", "--out", o]), 2);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(
        cli(&["study", "report", "novack", "--out", empty.to_str().unwrap()]),
        2
    );
}

#[test]
fn outcomes_follow_the_standard_error_of_the_difference() {
    assert_eq!(ClaimOutcome::of_effect(0.03, 0.01, 2.0), ClaimOutcome::Reproduced);
    assert_eq!(
        ClaimOutcome::of_effect(0.01, 0.01, 2.0),
        ClaimOutcome::NotReproduced
    );
    assert_eq!(ClaimOutcome::of_effect(-0.03, 0.01, 2.0), ClaimOutcome::Reversed);
}

/// [`SMALL`] at 12 steps with batches of 12, tracking the micro-batch gradient norm on micro-batches of 4.
fn grafted() -> String {
    SMALL
        .replace("seed = 7", "seed = 4")
        .replace("steps = 40", "steps = 12")
        .replace("batch_size = 6", "batch_size = 12")
        .replace("every = 5\nsharpness = true", "every = 3\nmicro_grad_norm = 4")
}

/// [`grafted`] with the step grafted onto the norm of the first micro-batch of size `m`.
fn grafted_on(m: usize) -> String {
    grafted().replace(
        "batch_size = 12\n",
        &format!("batch_size = 12\ngraft = {{ micro_batch = {m} }}\n"),
    )
}

fn theta_after(dir: &Path, name: &str, text: &str) -> Vec<u8> {
    let cfg = write(dir, &format!("{name}.toml"), text);
    let out = dir.join(name);
    assert_eq!(run_cli(&cfg, &out, &[]), 0, "{name}");
    std::fs::read(out.join("theta_final.npy")).unwrap()
}

/// Grafting with a micro-batch equal to the batch rescales the step to its own norm: the trajectory of
/// plain SGD (up to rounding, so compared to 1e-12); a smaller micro-batch changes it. A micro-batch that
/// does not divide the batch is refused naming the field.
#[test]
fn grafting_takes_the_norm_of_the_first_micro_batch() {
    let dir = tempfile::tempdir().unwrap();
    let plain = theta_after(dir.path(), "plain", &grafted());
    let whole = theta_after(dir.path(), "whole", &grafted_on(12));
    let small = theta_after(dir.path(), "small", &grafted_on(3));
    let floats = |b: &[u8]| -> Vec<f64> {
        b[b.len() - 8 * 5..]
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let (p, w, s) = (floats(&plain), floats(&whole), floats(&small));
    for (a, b) in p.iter().zip(&w) {
        assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{p:?} vs {w:?}");
    }
    assert!(
        p.iter().zip(&s).any(|(a, b)| (a - b).abs() > 1e-6),
        "{p:?} vs {s:?}"
    );
    let bad = write(dir.path(), "bad.toml", &grafted_on(5));
    assert_eq!(run_cli(&bad, &dir.path().join("bad"), &[]), 2);
}

/// `micro_grad_norm_sq` at a recorded step is `mean_j ‖∇L_{M_j}(θ_t)‖²` over the consecutive size-4
/// micro-batches of that step's batch: with full-batch GD, rows 0–3, 4–7, …, 20–23 at every step;
/// recomputed here from the recorded iterates (θ₀ and the GD steps). No batch at the final iterate: NaN.
#[test]
fn the_micro_batch_gradient_norm_is_the_mean_over_micro_batches() {
    let dir = tempfile::tempdir().unwrap();
    let text = grafted()
        .replace("kind = \"sgd\"", "kind = \"gd\"")
        .replace("batch_size = 12\n", "")
        .replace("every = 3", "every = 1");
    let cfg = write(dir.path(), "m.toml", &text);
    let out = dir.path().join("m");
    assert_eq!(run_cli(&cfg, &out, &[]), 0);
    let (header, rows) = read_csv(&out.join("metrics.csv"));
    let col = header.iter().position(|h| h == "micro_grad_norm_sq").unwrap();
    assert_eq!(rows.len(), 13);
    assert!(rows[12][col].is_nan(), "no batch at the final iterate");
    let config = imreg_cli::config::ExperimentConfig::load(&cfg).unwrap();
    let prepared = prepare(config, &cfg).unwrap();
    let obj = prepared.model.objective();
    let mut theta = prepared.theta0.clone();
    let mut g = vec![0.0; obj.dim()];
    for row in &rows[..12] {
        let idx: Vec<usize> = (0..24).collect();
        let mut total = 0.0;
        for m in idx.chunks(4) {
            obj.loss_grad(&theta, Batch::Indices(m), &mut g).unwrap();
            total += g.iter().map(|v| v * v).sum::<f64>();
        }
        let expected = total / 6.0;
        assert!(
            (row[col] - expected).abs() <= 1e-12 * expected,
            "step {}: {} vs {expected}",
            row[0],
            row[col]
        );
        obj.loss_grad(&theta, Batch::Full, &mut g).unwrap();
        theta.iter_mut().zip(&g).for_each(|(t, d)| *t -= 0.05 * d);
    }
}

/// Deletes under `out` (standing for `studies/<name>-full`) every file the repository's `.gitignore` leaves
/// out of a kept study: its `/studies/**/<glob>` lines at any depth, its `/studies/*/*/<glob>` lines in the
/// dataset folders. The globs hold at most one `*`.
fn strip_as_gitignore(out: &Path) {
    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.gitignore")).unwrap();
    let (mut anywhere, mut in_dataset) = (Vec::new(), Vec::new());
    for line in rules.lines() {
        if let Some(glob) = line.strip_prefix("/studies/**/") {
            anywhere.push(glob.to_string());
        } else if let Some(glob) = line.strip_prefix("/studies/*/*/") {
            in_dataset.push(glob.to_string());
        }
    }
    assert!(anywhere.len() >= 5 && !in_dataset.is_empty(), "{rules}");
    let matches = |glob: &str, name: &str| match glob.split_once('*') {
        Some((pre, post)) => {
            name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post)
        }
        None => name == glob,
    };
    for (rel, _) in tree(out) {
        let path = Path::new(&rel);
        let name = path.file_name().unwrap().to_str().unwrap();
        let depth = path.components().count();
        if anywhere.iter().any(|g| matches(g, name))
            || (depth == 2 && in_dataset.iter().any(|g| matches(g, name)))
        {
            std::fs::remove_file(out.join(path)).unwrap();
        }
    }
}

/// docs/studies.md, "Across machines": a study kept in the repository by the files `.gitignore` keeps is
/// resumed without running a finished run again and reports exactly what the whole folder reported.
#[test]
fn a_study_kept_by_its_metrics_alone_resumes_and_reports_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smith-full");
    let o = out.to_str().unwrap();
    let run = || {
        cli(&[
            "study",
            "run",
            "smith",
            "--dataset",
            "digits",
            "--scale",
            "smoke",
            "--out",
            o,
        ])
    };
    let report = || {
        assert_eq!(cli(&["study", "report", "smith", "--out", o]), 0);
        let read = |name: &str| std::fs::read(out.join(name)).unwrap();
        (read("report.md"), read("report.json"))
    };
    assert_eq!(run(), 0);
    let whole = report();
    strip_as_gitignore(&out);
    let kept = tree(&out);
    assert!(kept.iter().any(|(name, _)| name.ends_with("metrics.csv")));
    assert!(!kept
        .iter()
        .any(|(name, _)| name.ends_with(".npy") || name.starts_with("report")));
    assert_eq!(run(), 0);
    assert_eq!(tree(&out), kept, "a finished run was run again");
    assert!(report() == whole, "the report of the kept files differs");
}
