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
//!
//! `track_warm_cost drift [CONFIG EVERY]` measures instead what a warm start can reuse, along the same
//! full-batch GD trajectory (`θ ← θ − η∇C(θ)`, checked against the reference run's `λ_1`). Between two
//! evaluations: the sine of the largest principal angle between the previous and the new top-3 eigenvector
//! spaces, `‖(I − Q_new Q_newᵀ) Q_old‖₂ = (1 − σ_min(Q_oldᵀ Q_new)²)^{1/2}`, and the largest sine of the
//! angle between a previous eigenvector `y_i` and the new one; the largest residual `‖H y − θ y‖ / λ_1` of
//! the Rayleigh–Ritz pairs of `H` on the previous space (where a block warm start begins); the relative
//! change of `λ_1`. At each evaluation the gaps `λ_1 − λ_2`, `λ_2 − λ_3`, `λ_3 − λ_4`. Eigenpairs by cold
//! Lanczos to the residual bound `1e-12 · max|θ|`.
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

/// The config file argument, by default the Cohen et al. config.
fn config_file(arg: Option<String>) -> PathBuf {
    arg.map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs/cohen_eos_digits.toml"),
        PathBuf::from,
    )
}

/// `(median, 90th percentile)` of `v`.
fn quantiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

/// The `drift` mode (module docs).
fn drift(file: &std::path::Path, every: Option<usize>) {
    use imreg_objective::Batch;
    use imreg_spectra::{apply_vec, lanczos, symmetric_eigen, DenseOptions, HessianOperator, LanczosOptions};
    use nalgebra::DMatrix;
    let mut cfg = ExperimentConfig::load(file).unwrap();
    if let Some(e) = every {
        cfg.track.every = e;
    }
    let every = cfg.track.every.max(1);
    let lr = cfg.optimizer.lr();
    let reference = prepare(
        {
            let mut c = cfg.clone();
            eigen(4, false, LanczosStop::Residual, 1e-13)(&mut c);
            c
        },
        file,
    )
    .unwrap();
    let (_, ref_rows) = run(&reference);
    let ref_steps = column(&reference, &ref_rows, "step").unwrap();
    let ref_l1 = column(&reference, &ref_rows, "lambda_1").unwrap();
    let obj = reference.model.objective();
    let p = obj.dim();
    let mut theta = reference.theta0.clone();
    let (mut sines, mut singles, mut rr, mut moves) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut gaps = [Vec::new(), Vec::new(), Vec::new()];
    let mut prev: Option<(DMatrix<f64>, f64)> = None;
    let dense = DenseOptions::default();
    for t in 0..=reference.config.steps {
        if t % every == 0 {
            let h = HessianOperator::new(obj, &theta, Batch::Full).unwrap();
            let opts = LanczosOptions {
                max_iter: p,
                k_top: 4,
                tol: 1e-12,
                seed: 3,
                ..Default::default()
            };
            let r = lanczos(&h, &opts).unwrap();
            let lam: Vec<f64> = r.top.iter().map(|x| x.value).collect();
            let row = ref_steps.iter().position(|&s| s == t as f64).unwrap();
            assert!(
                (lam[0] - ref_l1[row]).abs() <= 1e-9 * lam[0],
                "step {t}: plain GD left the run's trajectory (λ_1 {} vs {})",
                lam[0],
                ref_l1[row]
            );
            let q = DMatrix::from_fn(p, 3, |i, j| r.top[j].vector.as_ref().unwrap()[i]);
            if let Some((old, l1)) = &prev {
                let m = old.transpose() * &q;
                let cos2 = symmetric_eigen(m.transpose() * m, &dense).unwrap().values[0];
                sines.push((1.0 - cos2).max(0.0).sqrt());
                let single = |j: usize| (1.0 - old.column(j).dot(&q.column(j)).powi(2)).max(0.0).sqrt();
                singles.push((0..3).map(single).fold(0.0, f64::max));
                let mut ay = DMatrix::zeros(p, 3);
                for j in 0..3 {
                    let y = apply_vec(&h, old.column(j).as_slice()).unwrap();
                    ay.column_mut(j).copy_from_slice(&y);
                }
                let rayleigh = symmetric_eigen(old.transpose() * &ay, &dense).unwrap();
                let worst = (0..3)
                    .map(|i| {
                        let s = rayleigh.vectors.column(i);
                        (&ay * s - (old * s) * rayleigh.values[i]).norm()
                    })
                    .fold(0.0, f64::max);
                rr.push(worst / lam[0]);
                moves.push((lam[0] - l1).abs() / l1);
            }
            for (i, g) in gaps.iter_mut().enumerate() {
                g.push(lam[i] - lam[i + 1]);
            }
            prev = Some((q, lam[0]));
        }
        if t < reference.config.steps {
            let g = obj.grad(&theta, Batch::Full).unwrap();
            theta.iter_mut().zip(&g).for_each(|(x, gi)| *x -= lr * gi);
        }
    }
    let line = |what: &str, v: &[f64]| {
        let (m, q90) = quantiles(v.to_vec());
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        println!("  {what:<58} median {m:9.2e}, 90th percentile {q90:9.2e}, min {min:9.2e}");
    };
    println!(
        "{} (p = {p}), every {every} steps: {} evaluations",
        file.display(),
        gaps[0].len()
    );
    line("sin of the largest principal angle, top-3 spaces", &sines);
    line("largest sin of the angle of each of y_1, y_2, y_3", &singles);
    line("Rayleigh–Ritz on the previous top-3: max residual / λ_1", &rr);
    line("relative change of λ_1", &moves);
    for (i, g) in gaps.iter().enumerate() {
        line(&format!("gap λ_{} − λ_{}", i + 1, i + 2), g);
    }
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("drift") {
        args.next();
        let file = config_file(args.next());
        return drift(&file, args.next().map(|s| s.parse().unwrap()));
    }
    let repeats: usize = args.next().map_or(5, |s| s.parse().unwrap());
    let tol: f64 = args.next().map_or(1e-14, |s| s.parse().unwrap());
    let file = config_file(args.next());
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
    let mut a_steps = None;
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
            // A1 runs A's Lanczos: its steps are A's Hessian-vector products.
            a_steps = a_steps.or(Some(steps));
        }
        println!();
    }
    if let Some(steps) = a_steps {
        // Wall time = floor + c · (products); A's tracking gives c. A run 1.5× faster than A has
        // floor + c · n ≤ a / 1.5.
        let evaluations = column(&cases[1].1, &last[1], "eigen_iterations")
            .map_or(0, |c| c.iter().filter(|x| !x.is_nan()).count());
        let per_product = (a - floor) / steps;
        let budget = (a / 1.5 - floor) / per_product;
        println!(
            "  a whole run 1.5× faster than A leaves {budget:.0} Hessian-vector products for the tracking \
             ({:.1} per evaluation; A takes {:.1}), at A's cost per product",
            budget / evaluations as f64,
            steps / evaluations as f64
        );
    }
}
