//! Measures what tracking the top-3 Hessian eigenvalues with warm-started Lanczos (`[track] eigenvalues =
//! true`, `top_k = 3`) costs against the cold-started `λ_max`-only tracking (`sharpness = true`) on the
//! edge-of-stability config `examples/configs/cohen_eos_digits.toml` (GD on a tanh MLP, p = 1210, 151
//! evaluations), and against the same run without curvature tracking (the floor). The runs are interleaved
//! (A, B, C, floor, A, B, C, floor, …) so that load from other processes hits each alike; prints the median
//! wall time of each, the tracking cost above the floor, the Lanczos steps of the eigenvalue runs and the
//! largest relative difference between their `lambda_1` and the `sharpness` column (equal accuracy: both stop
//! at residual bound `≤ 1e-8 · max|θ|`).
//!
//! Run: `cargo run --release -p imreg-cli --example track_warm_cost [-- REPEATS]` (default 9).
use imreg_cli::config::{Every, ExperimentConfig};
use imreg_cli::experiment::{prepare, Prepared};
use std::path::Path;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The CPU time of this process so far (user + system, all threads), in seconds, from `/proc/self/stat`
/// (clock ticks of 10 ms); NaN where there is no such file.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name `(…)`: state is field 3, utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// Runs `prep` once: its wall and CPU times in seconds and its rows.
fn run(prep: &Prepared) -> ((f64, f64), Vec<Vec<f64>>) {
    let mut rows = Vec::new();
    let cpu = cpu_seconds();
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
    ((t.elapsed().as_secs_f64(), cpu_seconds() - cpu), rows)
}

fn column(prep: &Prepared, rows: &[Vec<f64>], name: &str) -> Vec<f64> {
    let cols = imreg_cli::train::columns(&prep.config, prep.test_model.is_some());
    let j = cols.iter().position(|c| *c == name).unwrap();
    rows.iter().map(|r| r[j]).collect()
}

fn main() {
    let repeats: usize = std::env::args().nth(1).map_or(9, |s| s.parse().unwrap());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs/cohen_eos_digits.toml");
    let base = ExperimentConfig::load(&file).unwrap();
    let variant = |f: &dyn Fn(&mut ExperimentConfig)| {
        let mut c = base.clone();
        f(&mut c);
        prepare(c, &file).unwrap()
    };
    let eigen = |warm: bool| {
        move |c: &mut ExperimentConfig| {
            c.track.sharpness = Every::Flag(false);
            c.track.eigenvalues = Every::Flag(true);
            c.track.top_k = 3;
            c.track.warm_start = warm;
        }
    };
    let cases = [
        ("A: sharpness (cold λ_max, as shipped)", variant(&|_| {})),
        ("B: eigenvalues top_k = 3, warm", variant(&eigen(true))),
        ("C: eigenvalues top_k = 3, cold", variant(&eigen(false))),
        (
            "floor: no curvature tracking",
            variant(&|c| c.track.sharpness = Every::Flag(false)),
        ),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    let mut cpu = vec![Vec::new(); cases.len()];
    let mut last = vec![Vec::new(); cases.len()];
    for _ in 0..repeats {
        for (i, (_, prep)) in cases.iter().enumerate() {
            let ((t, c), rows) = run(prep);
            times[i].push(t);
            cpu[i].push(c);
            last[i] = rows;
        }
    }
    let floor = median(times[3].clone());
    let cpu_floor = median(cpu[3].clone());
    println!("{repeats} interleaved repeats; median wall and CPU time, and above the floor (the tracking):");
    for (i, (name, _)) in cases.iter().enumerate() {
        let (m, c) = (median(times[i].clone()), median(cpu[i].clone()));
        println!(
            "  {name:<40} wall {m:7.3} s (tracking {:7.3} s)   CPU {c:7.2} s (tracking {:7.2} s)",
            m - floor,
            c - cpu_floor
        );
    }
    let a = median(times[0].clone()) - floor;
    for (i, label) in [(1, "B"), (2, "C")] {
        let prep = &cases[i].1;
        let steps = column(prep, &last[i], "eigen_iterations");
        let mean = steps.iter().sum::<f64>() / steps.len() as f64;
        let l1 = column(prep, &last[i], "lambda_1");
        let s = column(&cases[0].1, &last[0], "sharpness");
        let diff = l1
            .iter()
            .zip(&s)
            .map(|(x, y)| ((x - y) / y).abs())
            .fold(0.0, f64::max);
        let res = column(prep, &last[i], "eigen_residual")
            .into_iter()
            .fold(0.0, f64::max);
        println!(
            "  {label}: {mean:.2} Lanczos steps per evaluation; max relative residual bound {res:.1e}; \
             max |λ_1 − sharpness|/sharpness {diff:.1e}; tracking speed-up over A {:.2}×",
            a / (median(times[i].clone()) - floor)
        );
    }
    let whole = median(times[0].clone()) / median(times[1].clone());
    println!("  whole-run speed-up of B over A: {whole:.2}×");
}
