//! What tracking the top-3 Hessian eigenvalues with warm-started Lanczos costs against the cold-started
//! `λ_max`-only tracking (`sharpness = true`), at measured accuracy, on an edge-of-stability config (default
//! `examples/configs/cohen_eos_digits.toml`: GD on a tanh MLP, p = 1210, 151 evaluations).
//!
//! The variants differ only in `[track]` (the trajectory is the same, so the rows of one step are at the same
//! `θ`):
//! - `A` `sharpness = true` — cold `λ_max`, residual bound `≤ 1e-8 · max|θ|` (as shipped);
//! - `A1` `eigenvalues`, `top_k = 1`, cold, the same residual rule (counts the Lanczos steps of `A`);
//! - `B` `eigenvalues`, `top_k = 3`, warm, `lanczos_stop = "eigenvalue"`, `lanczos_tol = TOL`;
//! - `C` `eigenvalues`, `top_k = 3`, warm, residual rule `1e-8` (the warm start alone);
//! - `D` `eigenvalues`, `top_k = 1`, cold, `lanczos_stop = "eigenvalue"`, `TOL` (the stop rule alone);
//! - `floor` no curvature tracking.
//!
//! The reference is `top_k = 4` from a cold start with residual bound `≤ 1e-13 · max|θ|` (at most `p`
//! steps). Printed per variant: Lanczos steps (= Hessian-vector products) in all, the largest relative error
//! of every tracked eigenvalue against the reference, the largest reported bound, and the median wall time
//! of interleaved repeats (A, A1, B, C, D, floor, A, …) with the tracking cost above the floor.
//!
//! Run: `cargo run --release -p imreg-cli --example track_warm_cost [-- REPEATS TOL CONFIG EVERY]`
//! (defaults 5, 1e-14, the Cohen et al. config, its `track.every`).
use imreg_cli::config::{Every, ExperimentConfig, LanczosStop};
use imreg_cli::experiment::{prepare, Prepared};
use std::path::PathBuf;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `prep` once: its wall time in seconds and its rows.
fn run(prep: &Prepared) -> (f64, Vec<Vec<f64>>) {
    let mut rows = Vec::new();
    let t = Instant::now();
    imreg_cli::train::train(
        &prep.model,
        prep.test_model.as_ref(),
        prep.theta0.clone(),
        &prep.config,
        &mut |r| {
            rows.push(r.to_vec());
            Ok(())
        },
    )
    .unwrap();
    (t.elapsed().as_secs_f64(), rows)
}

/// The column `name` of `rows` (rows where it was not due hold NaN).
fn column(prep: &Prepared, rows: &[Vec<f64>], name: &str) -> Option<Vec<f64>> {
    let cols = imreg_cli::train::columns(&prep.config, prep.test_model.is_some());
    let j = cols.iter().position(|c| *c == name)?;
    Some(rows.iter().map(|r| r[j]).collect())
}

/// `[track] eigenvalues` with `top_k`, the warm start, the stop rule and tolerance; `sharpness` off.
fn eigen(top_k: usize, warm: bool, stop: LanczosStop, tol: f64) -> impl Fn(&mut ExperimentConfig) {
    move |c: &mut ExperimentConfig| {
        c.track.sharpness = Every::Flag(false);
        c.track.eigenvalues = Every::Flag(true);
        c.track.top_k = top_k;
        c.track.warm_start = warm;
        c.track.lanczos_stop = stop;
        c.track.lanczos_tol = tol;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let repeats: usize = args.next().map_or(5, |s| s.parse().unwrap());
    let tol: f64 = args.next().map_or(1e-14, |s| s.parse().unwrap());
    let file = args.next().map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs/cohen_eos_digits.toml"),
        PathBuf::from,
    );
    let mut base = ExperimentConfig::load(&file).unwrap();
    if let Some(every) = args.next() {
        base.track.every = every.parse().unwrap();
    }
    let variant = |f: &dyn Fn(&mut ExperimentConfig)| {
        let mut c = base.clone();
        f(&mut c);
        prepare(c, &file).unwrap()
    };
    let p = variant(&|_| {}).model.objective().dim();
    let reference = variant(&|c| {
        eigen(4, false, LanczosStop::Residual, 1e-13)(c);
        c.track.lanczos_max_iter = p;
    });
    let (_, ref_rows) = run(&reference);
    let ref_col = |i: usize| column(&reference, &ref_rows, &format!("lambda_{i}")).unwrap();
    let residual = LanczosStop::Residual;
    let cases = [
        ("A  sharpness (cold λ_max, residual 1e-8)", variant(&|_| {})),
        (
            "A1 top-1 cold, residual 1e-8",
            variant(&eigen(1, false, residual, 1e-8)),
        ),
        (
            "B  top-3 warm, eigenvalue bound TOL",
            variant(&eigen(3, true, LanczosStop::Eigenvalue, tol)),
        ),
        (
            "C  top-3 warm, residual 1e-8",
            variant(&eigen(3, true, residual, 1e-8)),
        ),
        (
            "D  top-1 cold, eigenvalue bound TOL",
            variant(&eigen(1, false, LanczosStop::Eigenvalue, tol)),
        ),
        (
            "floor: no curvature tracking",
            variant(&|c| c.track.sharpness = Every::Flag(false)),
        ),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    let mut last = vec![Vec::new(); cases.len()];
    for _ in 0..repeats {
        for (i, (_, prep)) in cases.iter().enumerate() {
            let (t, rows) = run(prep);
            times[i].push(t);
            last[i] = rows;
        }
    }
    let floor = median(times[cases.len() - 1].clone());
    let a = median(times[0].clone());
    println!(
        "{} (p = {p}); TOL = {tol:e}; {repeats} interleaved repeats, median wall time",
        file.display()
    );
    for (i, (name, prep)) in cases.iter().enumerate() {
        let t = median(times[i].clone());
        let rows = &last[i];
        print!(
            "  {name:<42} wall {t:7.3} s (tracking {:7.3} s, whole run {:.2}× A)",
            t - floor,
            a / t
        );
        let tracked: Vec<(usize, Vec<f64>)> = match column(prep, rows, "sharpness") {
            Some(s) => vec![(1, s)],
            None => (1..=3)
                .filter_map(|k| column(prep, rows, &format!("lambda_{k}")).map(|c| (k, c)))
                .collect(),
        };
        if tracked.is_empty() {
            println!();
            continue;
        }
        // Largest relative error of each tracked eigenvalue against the reference, over the recorded rows.
        let errors: Vec<String> = tracked
            .iter()
            .map(|(k, c)| {
                let e = c
                    .iter()
                    .zip(ref_col(*k))
                    .filter(|(x, _)| !x.is_nan())
                    .map(|(x, r)| ((x - r) / r).abs())
                    .fold(0.0, f64::max);
                format!("λ_{k} {e:.1e}")
            })
            .collect();
        let sum =
            |name: &str| column(prep, rows, name).map(|c| c.iter().filter(|x| !x.is_nan()).sum::<f64>());
        let max = |name: &str| {
            column(prep, rows, name).map(|c| c.iter().copied().filter(|x| !x.is_nan()).fold(0.0, f64::max))
        };
        print!("; max rel. error vs reference: {}", errors.join(", "));
        if let (Some(steps), Some(res), Some(val)) = (
            sum("eigen_iterations"),
            max("eigen_residual"),
            max("eigen_value_bound"),
        ) {
            print!(
                "; Lanczos steps {steps} in all; largest bounds: residual {res:.1e}, eigenvalue {val:.1e}"
            );
        }
        println!();
    }
}
