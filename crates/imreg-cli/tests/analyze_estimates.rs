//! `imreg analyze` says which numbers are estimates: batch sharpness is exact (printed as such, with the
//! number of batches) where there are at most 10⁵ batches, otherwise `value ± SE` with the sample count and
//! "not converged" when the Monte Carlo stop rule was not met; `--seed` moves every Monte Carlo estimate and
//! no exact value, and repeats bitwise; the estimation flags are validated with exit 2 naming the flag.
mod common;
use common::{cli, run_cli};
use imreg_cli::analyze::{analyze, render, Analysis, AnalyzeRequest, BatchEstimation};
use imreg_cli::config::{DataConfig, ModelConfig};
use imreg_cli::CliError;
use imreg_objective::data::npy::write_npy;
use std::path::{Path, PathBuf};

/// Linear regression on `n` examples in `d` dimensions (deterministic, seed-free data) and weights.
fn problem(dir: &Path, n: usize, d: usize) -> [PathBuf; 3] {
    let x: Vec<f64> = (0..n * d)
        .map(|i| ((i * 7 % 13) as f64 - 6.0) / 5.0 + (i % 3) as f64 * 0.1)
        .collect();
    let y: Vec<f64> = (0..n).map(|i| ((i * 5 % 11) as f64 - 5.0) / 4.0).collect();
    let w: Vec<f64> = (0..=d).map(|i| 0.3 - 0.1 * i as f64).collect();
    let files = [dir.join("x.npy"), dir.join("y.npy"), dir.join("w.npy")];
    write_npy(&files[0], &[n, d], &x).unwrap();
    write_npy(&files[1], &[n], &y).unwrap();
    write_npy(&files[2], &[d + 1], &w).unwrap();
    files
}

fn request(files: &[PathBuf; 3], b: usize, seed: u64, estimation: BatchEstimation) -> AnalyzeRequest {
    AnalyzeRequest {
        quantities: None,
        solver: Default::default(),
        out: None,
        exact_trace_max_p: imreg_cli::spectrum::DENSE_MAX_P,
        model: ModelConfig::LinearRegression { bias: true },
        params: files[2].clone(),
        data: Some(DataConfig::Npy {
            x: files[0].clone(),
            y: files[1].clone(),
            classes: None,
        }),
        split: None,
        top_k: 1,
        bottom_k: 1,
        batch_size: Some(b),
        estimation,
        seed,
        data_seed: 0,
    }
}

/// The same request through the command line (exit code only: the printed text is [`render`]'s).
fn cli_args(files: &[PathBuf; 3], b: usize, extra: &[&str]) -> i32 {
    let b = b.to_string();
    let mut v = vec![
        "analyze",
        "--model",
        "linear_regression",
        "--params",
        files[2].to_str().unwrap(),
        "--data",
        files[0].to_str().unwrap(),
        "--targets",
        files[1].to_str().unwrap(),
        "--batch-size",
        &b,
    ];
    v.extend_from_slice(extra);
    cli(&v)
}

fn line<'a>(table: &'a str, key: &str) -> &'a str {
    table
        .lines()
        .find(|l| {
            l.starts_with(key)
                && l[key.len()..].starts_with(' ')
                && !l[key.len()..].trim_start().starts_with('(')
        })
        .unwrap_or_else(|| panic!("no row {key:?} in\n{table}"))
}

fn json(a: &Analysis) -> serde_json::Value {
    serde_json::from_str(&render(a, true).unwrap()).unwrap()
}

#[test]
fn batch_sharpness_is_exact_up_to_1e5_batches() {
    let dir = tempfile::tempdir().unwrap();
    // C(23, 4) = 8855 batches: exact by default (the former threshold of 2000 made it Monte Carlo).
    let files = problem(dir.path(), 23, 2);
    let a = analyze(&request(&files, 4, 0, BatchEstimation::default())).unwrap();
    let table = render(&a, false).unwrap();
    let row = line(&table, "batch sharpness");
    assert!(
        row.ends_with("(exact, 8855 batches)") && !row.contains('±'),
        "{row}"
    );
    let row = line(&table, "batch sharpness (inside)");
    assert!(row.ends_with("(exact, 8855 batches)"), "{row}");
    // p = 3: the Hessian trace is exact over the unit vectors, Tr K and Tr F over the examples.
    assert!(
        line(&table, "Tr H").ends_with("(exact, 3 unit vectors)"),
        "{table}"
    );
    assert!(line(&table, "Tr F").ends_with("(exact, 23 examples)"), "{table}");
    let v = json(&a);
    for key in ["batch_sharpness", "batch_sharpness_inside"] {
        let bs = &v[key];
        assert_eq!(bs["estimator"], "exact", "{bs}");
        assert_eq!(bs["samples"], 8855);
        assert_eq!(bs["unit"], "batches");
        assert_eq!(bs["converged"], true);
        assert!(bs.get("std_error").is_none(), "{bs}");
    }
    assert_eq!(v["batch_size"], 4);
    assert_eq!(cli_args(&files, 4, &["--json"]), 0);
    assert_eq!(cli_args(&files, 4, &[]), 0);
}

#[test]
fn batch_sharpness_above_the_threshold_is_value_plus_minus_se_with_the_sample_count() {
    let dir = tempfile::tempdir().unwrap();
    // C(45, 4) = 148 995 batches > 10⁵: Monte Carlo by default.
    let files = problem(dir.path(), 45, 2);
    let a = analyze(&request(&files, 4, 0, BatchEstimation::default())).unwrap();
    let bs = a.batch_sharpness.unwrap();
    let (se, n) = (bs.std_error.unwrap(), bs.samples.unwrap());
    assert!(
        bs.estimator == "monte_carlo" && se > 0.0 && (20..=1000).contains(&n),
        "{bs:?}"
    );
    let table = render(&a, false).unwrap();
    let row = line(&table, "batch sharpness");
    assert!(
        row.contains(&format!(" ± {se:.1e} (Monte Carlo, {n} batches")),
        "{row}"
    );
    assert_eq!(row.contains("not converged"), !bs.converged, "{row}");
    let v = json(&a);
    assert_eq!(v["batch_sharpness"]["estimator"], "monte_carlo");
    assert_eq!(v["batch_sharpness"]["samples"], n);
    assert_eq!(v["batch_sharpness"]["std_error"].as_f64(), Some(se));
    // An unmet stop rule is flagged: 50 batches, relative SE 0 never reached.
    let short = BatchEstimation {
        mc_batches: 50,
        mc_rel_se: 0.0,
        ..Default::default()
    };
    let a = analyze(&request(&files, 4, 0, short)).unwrap();
    let table = render(&a, false).unwrap();
    let row = line(&table, "batch sharpness");
    assert!(row.contains("(Monte Carlo, 50 batches, not converged)"), "{row}");
    assert_eq!(json(&a)["batch_sharpness"]["converged"], false);
    // Raising --max-exact-batches makes the same expectation exact, and the estimate agrees with it.
    let exact = BatchEstimation {
        max_exact: 200_000,
        ..Default::default()
    };
    let e = analyze(&request(&files, 4, 0, exact))
        .unwrap()
        .batch_sharpness
        .unwrap();
    assert_eq!((e.estimator, e.samples), ("exact", Some(148_995)));
    assert!((e.value - bs.value).abs() <= 4.0 * se, "{e:?} vs {bs:?}");
    assert_eq!(
        cli_args(&files, 4, &["--mc-batches", "50", "--mc-rel-se", "0", "--json"]),
        0
    );
    assert_eq!(cli_args(&files, 4, &["--max-exact-batches", "200000"]), 0);
}

/// The JSON text of one field: serde_json prints the shortest round-trip form, so equal text is equal bits.
fn field(v: &serde_json::Value, key: &str) -> String {
    v[key].to_string()
}

#[test]
fn seed_moves_monte_carlo_estimates_only_and_repeats_bitwise() {
    let (small, large, wide) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let run = |files: &[PathBuf; 3], seed: u64| {
        json(&analyze(&request(files, 4, seed, BatchEstimation::default())).unwrap())
    };
    // Exact (8855 batches, p = 3): nothing depends on the seed.
    let files = problem(small.path(), 23, 2);
    let (a, b) = (run(&files, 1), run(&files, 2));
    assert_eq!(a["batch_sharpness"]["estimator"], "exact");
    for key in [
        "batch_sharpness",
        "batch_sharpness_inside",
        "hessian_trace",
        "hessian_top",
        "lambda_k1",
    ] {
        assert_eq!(field(&a, key), field(&b, key), "{key}");
    }
    // Monte Carlo batches (148 995 > 10⁵): another seed, another estimate; the same seed, the same bits.
    let files = problem(large.path(), 45, 2);
    let (a, a2, b) = (run(&files, 1), run(&files, 1), run(&files, 2));
    assert_eq!(a["batch_sharpness"]["estimator"], "monte_carlo");
    assert_eq!(a.to_string(), a2.to_string());
    for key in ["batch_sharpness", "batch_sharpness_inside"] {
        assert_ne!(a[key]["value"], b[key]["value"], "{key}");
    }
    // p = 421 > 400: Hutch++ probes and Lanczos start vectors come from the seed too.
    let files = problem(wide.path(), 30, 420);
    let (a, a2, b) = (run(&files, 1), run(&files, 1), run(&files, 2));
    assert_eq!(a.to_string(), a2.to_string());
    assert_eq!(a["hessian_trace"]["estimator"], "monte_carlo");
    assert_ne!(a["hessian_trace"]["value"], b["hessian_trace"]["value"]);
    assert_eq!(a["eigen_method"], "lanczos");
    let table = render(
        &analyze(&request(&files, 4, 1, BatchEstimation::default())).unwrap(),
        false,
    )
    .unwrap();
    assert!(
        line(&table, "Tr H").contains(" ± ") && line(&table, "Tr H").contains("probes)"),
        "{table}"
    );
}

#[test]
fn estimation_flags_are_validated_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let files = problem(dir.path(), 10, 2);
    let d = BatchEstimation::default();
    for (est, flag) in [
        (BatchEstimation { mc_batches: 1, ..d }, "--mc-batches"),
        (
            BatchEstimation {
                mc_batches: 10_000_001,
                ..d
            },
            "--mc-batches",
        ),
        (
            BatchEstimation {
                mc_rel_se: f64::NAN,
                ..d
            },
            "--mc-rel-se",
        ),
        (BatchEstimation { mc_rel_se: -0.1, ..d }, "--mc-rel-se"),
        (
            BatchEstimation {
                mc_rel_se: f64::INFINITY,
                ..d
            },
            "--mc-rel-se",
        ),
        (
            BatchEstimation {
                max_exact: 10_000_001,
                ..d
            },
            "--max-exact-batches",
        ),
    ] {
        match analyze(&request(&files, 2, 0, est)) {
            Err(CliError::Input { field, .. }) => assert_eq!(field, flag, "{est:?}"),
            r => panic!("{est:?}: {r:?}"),
        }
    }
    for args in [
        ["--mc-batches", "1"],
        ["--mc-batches", "0"],
        ["--mc-batches", "99999999999999999999999"],
        ["--mc-rel-se", "NaN"],
        ["--mc-rel-se", "inf"],
        ["--mc-rel-se", "-1"],
        ["--max-exact-batches", "10000001"],
        ["--max-exact-batches", "-5"],
    ] {
        assert_eq!(cli_args(&files, 2, &args), 2, "{args:?}");
    }
    assert_eq!(
        cli_args(&files, 2, &["--mc-batches", "2", "--max-exact-batches", "0"]),
        0
    );
}

/// `imreg run` records the same information next to its batch expectations: standard errors, batch
/// counts and the estimator (0 exact, 1 Monte Carlo converged, 2 Monte Carlo not converged).
#[test]
fn run_records_standard_errors_batch_counts_and_the_estimator() {
    let dir = tempfile::tempdir().unwrap();
    // N = 24: b = 2 has C(24, 2) = 276 batches (exact); b = 6 has 134 596 (Monte Carlo, ≤ 30 batches).
    for (b, max_batches) in [(2usize, 30usize), (6, 30)] {
        let text = common::SMALL.replace(
            "[track]\nevery = 5\nsharpness = true",
            &format!(
                "[track]\nevery = 5\nsharpness = true\nbatch_sharpness = true\nmini_bs = 10\n\
                 batch_size = {b}\nmax_batches = {max_batches}"
            ),
        );
        let cfg = common::write(dir.path(), &format!("b{b}.toml"), &text);
        let out = dir.path().join(format!("out{b}"));
        assert_eq!(run_cli(&cfg, &out, &[]), 0);
        let (header, rows) = common::read_csv(&out.join("metrics.csv"));
        let col = |name: &str| {
            let j = header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("{name}: {header:?}"));
            rows.iter()
                .map(|r| r[j])
                .filter(|v| !v.is_nan())
                .collect::<Vec<f64>>()
        };
        for key in ["batch_sharpness", "mini_bs"] {
            let (se, batches, estimator) = (
                col(&format!("{key}_se")),
                col(&format!("{key}_batches")),
                col(&format!("{key}_estimator")),
            );
            assert!(!se.is_empty() && se.len() == batches.len() && se.len() == estimator.len());
            for ((s, n), e) in se.iter().zip(&batches).zip(&estimator) {
                if b == 2 {
                    assert_eq!((*s, *n, *e), (0.0, 276.0, 0.0), "{key}");
                } else {
                    assert!(
                        *s > 0.0 && (20.0..=30.0).contains(n) && (*e == 1.0 || *e == 2.0),
                        "{key}: {s} {n} {e}"
                    );
                    assert!(
                        *e == 1.0 || *n == 30.0,
                        "{key}: unconverged before the budget ran out"
                    );
                }
            }
        }
        assert_eq!(
            col("batch_sharpness_inside_se").len(),
            col("batch_sharpness_se").len()
        );
    }
}
