//! Tracked metrics of `imreg run`: each column equals an independent dense computation at the recorded
//! iterate, and each metric is recorded on its own period.
mod common;
use common::*;
use imreg_cli::config::ExperimentConfig;
use imreg_cli::experiment::prepare;
use imreg_objective::data::npy::read_npy;
use imreg_objective::Batch;
use nalgebra::DMatrix;

const TRACKED: &str = r#"
seed = 5
steps = 10

[data]
kind = "gaussian_linear"
n = 8
dim = 2
noise = 0.3

[model]
kind = "linear_regression"

[init]
scale = 0.5

[optimizer]
kind = "sgd"
lr = 0.05
batch_size = 2

[track]
every = 2
sharpness = true
batch_sharpness = 4
mini_bs = 5
lambda_k1 = true
trace_k = true
trace_f = 10
"#;

fn top_eigenvalue(m: DMatrix<f64>) -> f64 {
    m.symmetric_eigenvalues().max()
}

#[test]
fn tracked_metrics_match_dense_computations_and_follow_their_periods() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, h, rows) = run_metrics(dir.path(), "tracked", TRACKED);
    // Periods 2, 4, 5 and 10: rows only where some metric is due.
    assert_eq!(column(&h, &rows, "step"), [0.0, 2.0, 4.0, 5.0, 6.0, 8.0, 10.0]);
    let due = |name: &str| -> Vec<bool> { column(&h, &rows, name).iter().map(|v| !v.is_nan()).collect() };
    assert_eq!(due("loss"), [true, true, true, false, true, true, true]);
    assert_eq!(
        due("batch_sharpness"),
        [true, false, true, false, false, true, true]
    );
    assert_eq!(due("batch_sharpness_inside"), due("batch_sharpness"));
    assert_eq!(due("mini_bs"), [true, false, false, true, false, false, true]);
    assert_eq!(due("trace_f"), [true, false, false, false, false, false, true]);

    // Independent computation at the final iterate: per-example gradients, dense batch Hessians, and every
    // one of the C(8, 2) = 28 batches of size 2 (the CLI enumerates exactly below 2000 batches).
    let prep = prepare(ExperimentConfig::load(&cfg).unwrap(), &cfg).unwrap();
    let obj = prep.model.objective();
    let theta = read_npy(dir.path().join("tracked/theta_final.npy")).unwrap().data;
    let n = 8;
    let g: Vec<Vec<f64>> = (0..n)
        .map(|i| obj.grad(&theta, Batch::Indices(&[i])).unwrap())
        .collect();
    let p = theta.len();
    let mean: Vec<f64> = (0..p)
        .map(|j| g.iter().map(|gi| gi[j]).sum::<f64>() / n as f64)
        .collect();
    let k = DMatrix::from_fn(p, p, |a, b| {
        g.iter()
            .map(|gi| (gi[a] - mean[a]) * (gi[b] - mean[b]))
            .sum::<f64>()
            / n as f64
    });
    let tr_f = g
        .iter()
        .map(|gi| gi.iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        / n as f64;
    let (mut ratios, mut ghg_sum, mut gg_sum, mut lmax_sum, mut count) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        for j in i + 1..n {
            let b = [i, j];
            let gb: Vec<f64> = (0..p).map(|a| (g[i][a] + g[j][a]) / 2.0).collect();
            let hb = obj.dense_hessian(&theta, Batch::Indices(&b)).unwrap();
            let hg = &hb * nalgebra::DVector::from_column_slice(&gb);
            let ghg: f64 = gb.iter().zip(hg.iter()).map(|(a, b)| a * b).sum();
            let gg: f64 = gb.iter().map(|v| v * v).sum();
            ratios += ghg / gg;
            ghg_sum += ghg;
            gg_sum += gg;
            lmax_sum += top_eigenvalue(hb);
            count += 1.0;
        }
    }
    let last = |name: &str| *column(&h, &rows, name).last().unwrap();
    let close = |name: &str, want: f64, rel: f64| {
        let got = last(name);
        assert!(
            (got - want).abs() <= rel * want.abs().max(1e-12),
            "{name}: {got} vs {want}"
        );
    };
    // Same sums in a different order (and Lanczos / dense eigensolvers): agreement to 1e-10 relative.
    close("batch_sharpness", ratios / count, 1e-10);
    close("batch_sharpness_inside", ghg_sum / gg_sum, 1e-10);
    close("mini_bs", lmax_sum / count, 1e-8);
    close("lambda_k1", top_eigenvalue(k.clone()), 1e-10);
    close("trace_k", k.trace(), 1e-10);
    close("trace_f", tr_f, 1e-10);
    close(
        "sharpness",
        top_eigenvalue(obj.dense_hessian(&theta, Batch::Full).unwrap()),
        1e-10,
    );
    // The batch Hessians of linear regression are x xᵀ averages: MiniBS ≥ batch sharpness (λ_max ≥ any
    // Rayleigh quotient), a consistency check between the two columns.
    assert!(last("mini_bs") >= last("batch_sharpness") * (1.0 - 1e-12));
}

#[test]
fn imbalance_of_the_scalar_net_and_noise_injection() {
    let dir = tempfile::tempdir().unwrap();
    let scalar = r#"
seed = 2
steps = 30
[model]
kind = "scalar_net"
k = 3
phi = 1.0
[init]
scale = 0.7
[optimizer]
kind = "gd"
lr = 0.3
[track]
every = 3
imbalance = true
"#;
    let (_, h, rows) = run_metrics(dir.path(), "scalar", scalar);
    let theta = read_npy(dir.path().join("scalar/theta_final.npy")).unwrap().data;
    let (a, b) = theta.split_at(3);
    let want = a.iter().map(|v| v * v).sum::<f64>() - b.iter().map(|v| v * v).sum::<f64>();
    let imb = column(&h, &rows, "imbalance");
    assert_eq!(imb.last().unwrap().to_bits(), want.to_bits());
    // GD contracts the imbalance of the scalar net (|ε|η < √2 regime): it moves, and shrinks.
    assert!(imb.last().unwrap().abs() < imb[0].abs(), "{imb:?}");
    // imbalance is refused for other models (exit 2, field named).
    let bad = TRACKED.replace("trace_f = 10", "trace_f = 10\nimbalance = true");
    let cfg = write(dir.path(), "bad.toml", &bad);
    assert_eq!(
        cli(&[
            "run",
            cfg.to_str().unwrap(),
            "--out",
            dir.path().join("bad").to_str().unwrap()
        ]),
        2
    );

    // Noise-injected GD with σ = 0 is GD, bit for bit; σ > 0 moves θ and is reproducible.
    let gd = TRACKED
        .replace("kind = \"sgd\"", "kind = \"gd\"")
        .replace("batch_size = 2\n", "")
        .replace("[track]", "[track]\nbatch_size = 2");
    let noisy = |sigma: &str| gd.replace("kind = \"gd\"", &format!("kind = \"noisy_gd\"\nsigma = {sigma}"));
    run_metrics(dir.path(), "gd", &gd);
    run_metrics(dir.path(), "noisy0", &noisy("0.0"));
    run_metrics(dir.path(), "noisy1", &noisy("0.5"));
    run_metrics(dir.path(), "noisy1b", &noisy("0.5"));
    let th = |name: &str| {
        read_npy(dir.path().join(name).join("theta_final.npy"))
            .unwrap()
            .data
    };
    let bits = |v: Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(th("gd")), bits(th("noisy0")));
    assert_ne!(bits(th("gd")), bits(th("noisy1")));
    assert_eq!(bits(th("noisy1")), bits(th("noisy1b")));
}

/// The metrics use rayon inside (the MLP's chunked passes, Monte Carlo batch sharpness and MiniBS); a run is
/// still byte-identical on 1 and 2 threads.
#[test]
fn runs_are_bitwise_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
seed = 11
steps = 6
[data]
kind = "teacher_student_classification"
n = 96
dim = 4
classes = 3
[model]
kind = "mlp"
hidden = [6]
activation = "softplus"
loss = "cross_entropy"
[init]
scheme = "pytorch"
[optimizer]
kind = "sgd"
lr = 0.2
batch_size = 8
replacement = true
[track]
every = 3
sharpness = true
accuracy = true
batch_sharpness = true
mini_bs = 6
lambda_k1 = true
trace_k = true
trace_f = true
max_batches = 30
"#;
    let cfg = write(dir.path(), "mc.toml", text);
    let mut trees = Vec::new();
    for threads in [1, 2] {
        // the same leaf name: the run's default name is the folder's
        let out = dir.path().join(format!("t{threads}")).join("run");
        let code = imreg_objective::threads::on_threads(threads, || {
            cli(&[
                "run",
                cfg.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--no-figures",
            ])
        })
        .unwrap();
        assert_eq!(code, 0);
        trees.push(tree(&out));
    }
    let differing: Vec<&String> = trees[0]
        .iter()
        .zip(&trees[1])
        .filter(|(a, b)| a != b)
        .map(|(a, _)| &a.0)
        .collect();
    assert!(
        differing.is_empty() && trees[0].len() == trees[1].len(),
        "differ: {differing:?}"
    );
    // C(96, 8) batches: the batch expectations were Monte Carlo, and every metric is finite at the end.
    let (_, rows) = read_csv(&dir.path().join("t1/run/metrics.csv"));
    assert!(rows.last().unwrap().iter().all(|v| v.is_finite()), "{rows:?}");
}
