//! `[track] eigenvalues`: the top-k / bottom-k Hessian eigenvalues along a run (warm-started Lanczos), the
//! Hessian trace, and the fixed measurement subset, each against dense `SymmetricEigen` computations at the
//! recorded iterate; old configs keep their resolved config and columns.
mod common;
use common::*;
use imreg_cli::config::ExperimentConfig;
use imreg_cli::experiment::prepare;
use imreg_cli::train::subset_indices;
use imreg_objective::data::npy::read_npy;
use imreg_objective::Batch;
use std::path::Path;

/// GD on a tanh MLP (p = 64·2 + 2 + 2·10 + 10 = 160) on 60 digits: Lanczos is iterative here (k ≪ p) and
/// the dense Hessian is cheap.
const MLP: &str = r#"
seed = 1
steps = 30

[data]
kind = "digits"

[split]
n_train = 60

[model]
kind = "mlp"
hidden = [2]
activation = "tanh"
loss = "half_mse"

[init]
scheme = "pytorch"

[optimizer]
kind = "gd"
lr = 0.2

[track]
every = 5
sharpness = true
eigenvalues = true
top_k = 3
bottom_k = 2
"#;

/// The eigenvalues of the dense Hessian of `batch` at the final iterate of the run in `dir/name`,
/// ascending, and the model's `N`.
fn dense_spectrum(cfg: &Path, dir: &Path, name: &str, subset: bool) -> Vec<f64> {
    let config = ExperimentConfig::load(cfg).unwrap();
    let prep = prepare(config.clone(), cfg).unwrap();
    let obj = prep.model.objective();
    let theta = read_npy(dir.join(name).join("theta_final.npy")).unwrap().data;
    let ix = config
        .track
        .subset
        .filter(|_| subset)
        .map(|s| subset_indices(&s, obj.n_examples()));
    let batch = ix.as_deref().map_or(Batch::Full, Batch::Indices);
    let mut e: Vec<f64> = obj
        .dense_hessian(&theta, batch)
        .unwrap()
        .symmetric_eigenvalues()
        .iter()
        .copied()
        .collect();
    e.sort_by(f64::total_cmp);
    e
}

#[test]
fn tracked_eigenvalues_match_the_dense_spectrum_within_their_residual_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, h, rows) = run_metrics(dir.path(), "mlp", MLP);
    let names = [
        "lambda_1",
        "lambda_2",
        "lambda_3",
        "lambda_min_1",
        "lambda_min_2",
        "eigen_residual",
        "eigen_value_bound",
        "eigen_iterations",
        "eigen_converged",
    ];
    let at = h.iter().position(|c| c == "sharpness").unwrap() + 1;
    assert_eq!(&h[at..at + names.len()], names);
    assert!(column(&h, &rows, "eigen_converged").iter().all(|&c| c == 1.0));
    // λ_1 of every row against the dense λ_max of the `sharpness` column (p ≤ 400: exact).
    for (l1, s) in column(&h, &rows, "lambda_1")
        .iter()
        .zip(column(&h, &rows, "sharpness"))
    {
        let bound = column(&h, &rows, "eigen_residual")
            .iter()
            .fold(0.0, |a: f64, b| a.max(*b))
            * s.abs();
        assert!((l1 - s).abs() <= bound, "{l1} vs {s} (bound {bound})");
    }
    // The final row against the dense spectrum: each Ritz value lies within its residual bound
    // (`eigen_residual · max|θ|`) of the eigenvalue of the same rank.
    let e = dense_spectrum(&cfg, dir.path(), "mlp", false);
    let p = e.len();
    assert_eq!(p, 160);
    let last = |name: &str| *column(&h, &rows, name).last().unwrap();
    let scale = e[p - 1].abs().max(e[0].abs());
    let bound = last("eigen_residual") * scale;
    assert!(bound <= 1e-8 * scale * (1.0 + 1e-12), "{bound}");
    assert_last_row_within(&h, &rows, &e, bound);
}

/// Each tracked value of the last row (top 3, bottom 2) within `bound` of the dense eigenvalue `e` (ascending)
/// of the same rank.
fn assert_last_row_within(h: &[String], rows: &[Vec<f64>], e: &[f64], bound: f64) {
    let p = e.len();
    for (name, want) in [
        ("lambda_1", e[p - 1]),
        ("lambda_2", e[p - 2]),
        ("lambda_3", e[p - 3]),
        ("lambda_min_1", e[0]),
        ("lambda_min_2", e[1]),
    ] {
        let got = *column(h, rows, name).last().unwrap();
        assert!(
            (got - want).abs() <= bound,
            "{name}: {got} vs {want} (bound {bound})"
        );
    }
}

#[test]
fn warm_starts_agree_with_cold_starts_and_take_fewer_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (_, hw, warm) = run_metrics(dir.path(), "warm", MLP);
    let cold_cfg = MLP.replace("bottom_k = 2", "bottom_k = 2\nwarm_start = false");
    let (_, hc, cold) = run_metrics(dir.path(), "cold", &cold_cfg);
    assert_eq!(hw, hc);
    // The first evaluation has nothing to start from: both start from the same seeded vector, bit for bit.
    assert_eq!(
        warm[0].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        cold[0].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let res = |h: &[String], r: &[Vec<f64>]| column(h, r, "eigen_residual");
    for name in ["lambda_1", "lambda_2", "lambda_3", "lambda_min_1", "lambda_min_2"] {
        for (i, (w, c)) in column(&hw, &warm, name)
            .iter()
            .zip(column(&hc, &cold, name))
            .enumerate()
        {
            // Both lie within their residual bounds of the same eigenvalue.
            let scale = column(&hw, &warm, "lambda_1")[i]
                .abs()
                .max(column(&hw, &warm, "lambda_min_1")[i].abs());
            let bound = (res(&hw, &warm)[i] + res(&hc, &cold)[i]) * scale;
            assert!((w - c).abs() <= bound, "{name} row {i}: {w} vs {c}");
        }
    }
    let steps = |h: &[String], r: &[Vec<f64>]| column(h, r, "eigen_iterations").iter().sum::<f64>();
    assert!(
        steps(&hw, &warm) < steps(&hc, &cold),
        "warm {} vs cold {} Lanczos steps",
        steps(&hw, &warm),
        steps(&hc, &cold)
    );
}

/// [`MLP`] with the eigenvalue stop rule at `1e-12` and the `extra` tracking keys.
fn eigenvalue_stop(extra: &str) -> String {
    MLP.replace(
        "top_k = 3",
        &format!("top_k = 3\nlanczos_stop = \"eigenvalue\"\nlanczos_tol = 1e-12\n{extra}"),
    )
}

#[test]
fn the_eigenvalue_stop_meets_its_bound_against_the_dense_spectrum() {
    let dir = tempfile::tempdir().unwrap();
    let text = eigenvalue_stop("");
    let (cfg, h, rows) = run_metrics(dir.path(), "value", &text);
    let (_, hr, residual_rows) = run_metrics(
        dir.path(),
        "residual",
        &MLP.replace("top_k = 3", "top_k = 3\nlanczos_tol = 1e-12"),
    );
    assert!(column(&h, &rows, "eigen_converged").iter().all(|&c| c == 1.0));
    assert!(column(&h, &rows, "eigen_value_bound").iter().all(|&b| b <= 1e-12));
    // The eigenvalue bound is met no later than the residual bound at the same tolerance.
    let steps = |h: &[String], r: &[Vec<f64>]| column(h, r, "eigen_iterations").iter().sum::<f64>();
    assert!(steps(&h, &rows) <= steps(&hr, &residual_rows));
    // The final row: each value within its eigenvalue bound (plus rounding) of the dense eigenvalue.
    let e = dense_spectrum(&cfg, dir.path(), "value", false);
    let p = e.len();
    let scale = e[p - 1].abs().max(e[0].abs());
    let last = |name: &str| *column(&h, &rows, name).last().unwrap();
    let bound = (last("eigen_value_bound") + 1e-13) * scale;
    assert_last_row_within(&h, &rows, &e, bound);
    // The key round-trips through the resolved config; an unknown rule is refused (exit 2).
    let back = ExperimentConfig::load(&dir.path().join("value/config.toml")).unwrap();
    assert_eq!(
        back.track.lanczos_stop,
        imreg_cli::config::LanczosStop::Eigenvalue
    );
    let bad = write(
        dir.path(),
        "bad.toml",
        &text.replace("\"eigenvalue\"", "\"eigen\""),
    );
    assert_eq!(run_cli(&bad, &dir.path().join("bad"), &[]), 2);
}

#[test]
fn the_subset_fixes_the_examples_of_every_hessian_metric() {
    let dir = tempfile::tempdir().unwrap();
    let text = MLP
        .replace(
            "bottom_k = 2",
            "bottom_k = 0\nhessian_trace = 10\nsubset = { n = 20, seed = 3 }",
        )
        .replace("top_k = 3", "top_k = 1");
    let (cfg, h, rows) = run_metrics(dir.path(), "subset", &text);
    let e = dense_spectrum(&cfg, dir.path(), "subset", true);
    let full = dense_spectrum(&cfg, dir.path(), "subset", false);
    let last = |name: &str| *column(&h, &rows, name).last().unwrap();
    let lmax = *e.last().unwrap();
    assert!(
        (last("sharpness") - lmax).abs() <= 1e-10 * lmax,
        "{} vs {lmax}",
        last("sharpness")
    );
    assert!((last("lambda_1") - lmax).abs() <= last("eigen_residual") * lmax);
    // Not the full-batch value: the subset is what is measured.
    assert!((full.last().unwrap() - lmax).abs() > 1e-6 * lmax);
    let trace: f64 = e.iter().sum();
    assert!((last("hessian_trace") - trace).abs() <= 1e-10 * trace.abs());
    assert_eq!(last("hessian_trace_se"), 0.0, "p ≤ 400: exact");
    // The subset: distinct, ascending, reproducible, and independent of the run's seed.
    let s = imreg_cli::config::SubsetConfig { n: 20, seed: 3 };
    let ix = subset_indices(&s, 60);
    assert!(ix.windows(2).all(|w| w[0] < w[1]) && ix.len() == 20 && ix[19] < 60);
    assert_eq!(ix, subset_indices(&s, 60));
}

#[test]
fn old_configs_keep_their_resolved_config_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (_, h, _) = run_metrics(dir.path(), "small", SMALL);
    assert_eq!(h, ["step", "loss", "grad_norm", "sharpness"]);
    let resolved = std::fs::read_to_string(dir.path().join("small/config.toml")).unwrap();
    for key in [
        "eigenvalues",
        "hessian_trace",
        "top_k",
        "bottom_k",
        "warm_start",
        "lanczos",
        "subset",
    ] {
        assert!(!resolved.contains(key), "{key} in\n{resolved}");
    }
    // A resolved config with the new keys reads back to the same config.
    let (cfg, _, _) = run_metrics(
        dir.path(),
        "mlp",
        &MLP.replace("top_k = 3", "top_k = 3\nwarm_start = false"),
    );
    let original = ExperimentConfig::load(&cfg).unwrap();
    let written = dir.path().join("mlp/config.toml");
    let back = ExperimentConfig::load(&written).unwrap();
    assert_eq!(back.track, original.track);
}

#[test]
fn bad_tracking_keys_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    // The MLP config with one more `[track]` key.
    let extra = |key: &str| MLP.replace("top_k = 3", &format!("top_k = 3\n{key}"));
    let cases = [
        (MLP.replace("top_k = 3", "top_k = 0"), "track.top_k"),
        (MLP.replace("top_k = 3", "top_k = 11"), "track.top_k"),
        (MLP.replace("bottom_k = 2", "bottom_k = 11"), "track.bottom_k"),
        (extra("lanczos_tol = -1"), "track.lanczos_tol"),
        (extra("lanczos_max_iter = 4"), "track.lanczos_max_iter"),
        (extra("subset = { n = 61 }"), "track.subset.n"),
        (extra("subset = { n = 0 }"), "track.subset.n"),
        (
            SMALL.replace("sharpness = true", "subset = { n = 3 }"),
            "track.subset",
        ),
        (
            SMALL.replace("sharpness = true", "eigenvalues = true\ntop_k = 4\nbottom_k = 2"),
            "track.top_k",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let cfg = write(dir.path(), &format!("bad{i}.toml"), text);
        let e = ExperimentConfig::load(&cfg)
            .and_then(|c| prepare(c, &cfg).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!(": {field}:")), "case {i}: {e}");
        assert_eq!(
            run_cli(&cfg, &dir.path().join(format!("out{i}")), &[]),
            2,
            "case {i}"
        );
    }
}

#[test]
fn tracked_eigenvalues_are_bitwise_identical_on_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "threads.toml",
        &eigenvalue_stop("hessian_trace = true"),
    );
    let csv: Vec<Vec<u8>> = [1, 2]
        .into_iter()
        .map(|threads| {
            let out = dir.path().join(format!("t{threads}"));
            let code =
                imreg_objective::threads::on_threads(threads, || run_cli(&cfg, &out, &["--no-figures"]))
                    .unwrap();
            assert_eq!(code, 0);
            std::fs::read(out.join("metrics.csv")).unwrap()
        })
        .collect();
    assert_eq!(csv[0], csv[1]);
}
