//! `[[regularizer]]` and `optimizer.clip_grad_norm` in `imreg run`: the regularized update equals a
//! hand-written loop on the library objective bit for bit, GN/FT/AJ/UJ/FP/GP_x/GP_r runs are seeded and
//! reproducible, and bad regularizer input exits with code 2 naming the field.
mod common;
use common::*;
use imreg_cli::config::ExperimentConfig;
use imreg_cli::data::STREAM_BATCHES;
use imreg_cli::experiment::prepare;
use imreg_cli::CliError;
use imreg_objective::data::npy::read_npy;
use imreg_objective::rng::stream;
use imreg_objective::Batch;
use imreg_sgd::regularizers::clip_grad_norm;
use rand::Rng;
use std::path::Path;

fn run_ok(dir: &Path, name: &str, text: &str) -> (std::path::PathBuf, Vec<f64>) {
    let cfg = write(dir, &format!("{name}.toml"), text);
    let out = dir.join(name);
    let code = run_cli(&cfg, &out, &["--no-figures"]);
    assert_eq!(code, 0, "{name}");
    let theta = read_npy(out.join("theta_final.npy")).unwrap().data;
    (cfg, theta)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// GD with weight decay 0.3: `θ ← θ − η (∇C(θ) + wd θ)` by hand on the library objective, bit for bit (the
/// CLI adds `wd θ` to `∇C` in the same order of operations, so no rounding difference is possible).
#[test]
fn weight_decay_gd_matches_hand_loop_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let text = small_gd() + "\n[[regularizer]]\nkind = \"weight_decay\"\ncoefficient = 0.3\n";
    let (cfg, cli_theta) = run_ok(dir.path(), "wd", &text);
    let prep = prepare(ExperimentConfig::load(&cfg).unwrap(), &cfg).unwrap();
    let obj = prep.model.objective();
    let mut theta = prep.theta0.clone();
    for _ in 0..40 {
        let mut g = obj.grad(&theta, Batch::Full).unwrap();
        g.iter_mut().zip(&theta).for_each(|(g, t)| *g += 0.3 * t);
        theta.iter_mut().zip(&g).for_each(|(t, g)| *t -= 0.05 * g);
    }
    assert_eq!(bits(&cli_theta), bits(&theta));
    // Weight decay changed the trajectory (the test would pass vacuously otherwise).
    let (_, plain) = run_ok(dir.path(), "plain", &small_gd());
    assert_ne!(bits(&plain), bits(&theta));
}

/// SGD with replacement, weight decay and clipping at a norm that binds: the same batches (the trajectory's
/// sampler: stream 0 of the derived seed, `batch_size` uniform indices per step), `g + wd θ`, torch
/// `clip_grad_norm_`, then the step — bit for bit.
#[test]
fn weight_decay_and_clipping_sgd_match_hand_loop_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let text = SMALL.replace(
        "batch_size = 6\n",
        "batch_size = 6\nreplacement = true\nclip_grad_norm = 0.2\n",
    ) + "\n[[regularizer]]\nkind = \"weight_decay\"\ncoefficient = 0.1\n";
    let (cfg, cli_theta) = run_ok(dir.path(), "wdclip", &text);
    let prep = prepare(ExperimentConfig::load(&cfg).unwrap(), &cfg).unwrap();
    let obj = prep.model.objective();
    let seed = stream(7, STREAM_BATCHES).random::<u64>();
    let mut rng = stream(seed, 0);
    let mut theta = prep.theta0.clone();
    let mut clipped = 0;
    for _ in 0..40 {
        let rows: Vec<usize> = (0..6).map(|_| rng.random_range(0..24)).collect();
        let mut g = obj.grad(&theta, Batch::Indices(&rows)).unwrap();
        g.iter_mut().zip(&theta).for_each(|(g, t)| *g += 0.1 * t);
        if clip_grad_norm(&mut g, 0.2) > 0.2 {
            clipped += 1;
        }
        theta.iter_mut().zip(&g).for_each(|(t, g)| *t -= 0.05 * g);
    }
    assert!(clipped > 0, "the clipping never bound");
    assert_eq!(bits(&cli_theta), bits(&theta));
}

/// GN on linear regression, one GD step: `θ₁ = θ₀ − η (∇C + 2λ mean_j H_j g_j)` over the consecutive
/// micro-batches of the full batch, with `H_j` the dense Hessian (an oracle independent of the HVP the
/// penalty uses). Tolerance 1e-12 relative: HVP and dense products round differently, at ~1e-16 per op.
#[test]
fn gradient_norm_step_matches_dense_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let text = small_gd().replace("steps = 40", "steps = 1")
        + "\n[[regularizer]]\nkind = \"gradient_norm\"\nlambda = 0.5\nmicro_batch = 6\n";
    let (cfg, cli_theta) = run_ok(dir.path(), "gn1", &text);
    let prep = prepare(ExperimentConfig::load(&cfg).unwrap(), &cfg).unwrap();
    let obj = prep.model.objective();
    let t0 = &prep.theta0;
    let mut d = obj.grad(t0, Batch::Full).unwrap();
    for j in 0..4 {
        let rows: Vec<usize> = (6 * j..6 * (j + 1)).collect();
        let gj = obj.grad(t0, Batch::Indices(&rows)).unwrap();
        let h = obj.dense_hessian(t0, Batch::Indices(&rows)).unwrap();
        for a in 0..d.len() {
            d[a] += 2.0 * 0.5 / 4.0 * (0..d.len()).map(|b| h[(a, b)] * gj[b]).sum::<f64>();
        }
    }
    for (c, (t, g)) in cli_theta.iter().zip(t0.iter().zip(&d)) {
        let want = t - 0.05 * g;
        assert!((c - want).abs() <= 1e-12 * want.abs().max(1.0), "{c} vs {want}");
    }
}

/// A tanh regression MLP trained by SGD (teacher–student data), without regularizers.
const TEACHER_MLP: &str = r#"
name = "teacher_mlp"
seed = 3
steps = 12
[data]
kind = "teacher_student"
n = 32
widths = [3, 4, 1]
noise = 0.1
[model]
kind = "mlp"
hidden = [5]
activation = "tanh"
loss = "half_mse"
[init]
scheme = "pytorch"
[optimizer]
kind = "sgd"
lr = 0.1
batch_size = 8
[track]
every = 4
"#;

/// A cross-entropy ReLU MLP on 64 digits trained by momentum, without regularizers.
fn digits_classifier() -> String {
    DIGITS_MLP
        .replace("seed = 4", "name = \"digits_mlp\"\nseed = 1")
        .replace("n_train = 300", "n_train = 64")
        .replace(
            "kind = \"sgd\"\nlr = 0.5\nbatch_size = 32",
            "kind = \"momentum\"\nlr = 0.1\nbeta = 0.9\nbatch_size = 16",
        )
}

/// GN with micro-batches on an SGD-trained tanh MLP and FT on a cross-entropy digits classifier: both run,
/// change the trajectory, and the same config gives the same bytes.
#[test]
fn gradient_norm_and_fisher_trace_run_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let gn =
        &format!("{TEACHER_MLP}[[regularizer]]\nkind = \"gradient_norm\"\nlambda = 0.5\nmicro_batch = 2\n");
    let ft = &format!(
        "{}[[regularizer]]\nkind = \"fisher_trace\"\nlambda = 0.5\nmicro_batch = 4\n",
        digits_classifier()
    );
    for (name, text, off) in [
        ("gn", gn.as_str(), "kind = \"gradient_norm\"\nlambda = 0.5"),
        ("ft", ft.as_str(), "kind = \"fisher_trace\"\nlambda = 0.5"),
    ] {
        let (cfg, a) = run_ok(dir.path(), name, text);
        // The resolved config (with its [[regularizer]] tables) parses back to the same config.
        let resolved = ExperimentConfig::load(&dir.path().join(name).join("config.toml")).unwrap();
        assert_eq!(resolved, ExperimentConfig::load(&cfg).unwrap(), "{name}");
        assert_eq!(resolved.regularizers.len(), 1);
        let (_, b) = run_ok(dir.path(), &format!("{name}_again"), text);
        assert!(a.iter().all(|v| v.is_finite()), "{name}");
        let same = tree(&dir.path().join(name)) == tree(&dir.path().join(format!("{name}_again")));
        assert!(same, "{name}: the rerun wrote different bytes");
        assert_eq!(bits(&a), bits(&b));
        // λ = 0: the same run without the penalty's effect differs from the regularized one.
        let (_, zero) = run_ok(
            dir.path(),
            &format!("{name}_zero"),
            &text.replace(off, &off.replace("0.5", "0.0")),
        );
        assert_ne!(bits(&a), bits(&zero), "{name}: the penalty had no effect");
    }
}

/// AJ, UJ, FP (both powers), GP_x and GP_r on a cross-entropy digits classifier, and AJ/GP_x on a regression
/// MLP: each runs, is bitwise reproducible (its randomness comes from the seed), and changes the trajectory
/// (coefficient 0 gives a different run). GP_r needs class labels: on the regression MLP it exits 2.
#[test]
fn network_penalties_run_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let classifier = digits_classifier();
    let classifier = classifier.as_str();
    let regression = TEACHER_MLP;
    let tables = [
        (
            classifier,
            "kind = \"average_jacobian\"\nlambda = 0.5\nmicro_batch = 4",
        ),
        (
            classifier,
            "kind = \"unit_jacobian\"\nlambda = 0.5\nmicro_batch = 2",
        ),
        (classifier, "kind = \"fisher_penalty\"\nalpha = 0.5"),
        (
            classifier,
            "kind = \"fisher_penalty\"\nalpha = 0.5\nsquared = false",
        ),
        (classifier, "kind = \"input_gradient_penalty\"\nalpha = 0.5"),
        (classifier, "kind = \"random_label_penalty\"\nalpha = 0.5"),
        (
            regression,
            "kind = \"average_jacobian\"\nlambda = 0.5\nmicro_batch = 4",
        ),
        (regression, "kind = \"input_gradient_penalty\"\nalpha = 0.5"),
    ];
    for (i, (base, table)) in tables.iter().enumerate() {
        let text = format!("{base}\n[[regularizer]]\n{table}\n");
        let (_, a) = run_ok(dir.path(), &format!("p{i}"), &text);
        let (_, b) = run_ok(dir.path(), &format!("p{i}_again"), &text);
        assert!(a.iter().all(|v| v.is_finite()), "{table}");
        assert_eq!(bits(&a), bits(&b), "{table}: not reproducible");
        let zero = text.replace("= 0.5", "= 0.0");
        let (_, z) = run_ok(dir.path(), &format!("p{i}_zero"), &zero);
        assert_ne!(bits(&a), bits(&z), "{table}: the penalty had no effect");
    }
    let gpr = format!("{regression}\n[[regularizer]]\nkind = \"random_label_penalty\"\nalpha = 0.5\n");
    assert_eq!(
        rejected(dir.path(), "gpr_regression", &gpr),
        "regularizer[0].kind"
    );
}

/// Runs `imreg run` on a bad config: exit code 2 and no output; returns the named field.
fn rejected(dir: &Path, name: &str, text: &str) -> String {
    let cfg = write(dir, &format!("{name}.toml"), text);
    let out = dir.join(format!("out-{name}"));
    assert_eq!(run_cli(&cfg, &out, &[]), 2, "{name}");
    assert!(!out.exists(), "{name}: partial output left");
    match ExperimentConfig::load(&cfg).and_then(|c| prepare(c, &cfg).map(|_| ())) {
        Err(CliError::Input { field, .. }) => field,
        other => panic!("{name}: expected an input error, got {other:?}"),
    }
}

#[test]
fn bad_regularizer_input_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = |body: &str| format!("{SMALL}\n[[regularizer]]\n{body}\n");
    let cases = [
        (
            "neg_wd",
            reg("kind = \"weight_decay\"\ncoefficient = -0.1"),
            "regularizer[0].coefficient",
        ),
        (
            "neg_gp",
            reg("kind = \"gradient_penalty\"\nalpha = -1.0"),
            "regularizer[0].alpha",
        ),
        (
            "nan_gn",
            reg("kind = \"gradient_norm\"\nlambda = nan\nmicro_batch = 2"),
            "regularizer[0].lambda",
        ),
        // micro-batch 4 does not divide the batch size 6
        (
            "micro",
            reg("kind = \"gradient_norm\"\nlambda = 0.1\nmicro_batch = 4"),
            "regularizer[0].micro_batch",
        ),
        (
            "micro0",
            reg("kind = \"gradient_norm\"\nlambda = 0.1\nmicro_batch = 0"),
            "regularizer[0].micro_batch",
        ),
        // FT samples labels from a softmax: linear regression has none
        (
            "ft_regression",
            reg("kind = \"fisher_trace\"\nlambda = 0.1\nmicro_batch = 2"),
            "regularizer[0].kind",
        ),
        // the penalties through the network need an MLP
        (
            "gpx_regression",
            reg("kind = \"input_gradient_penalty\"\nalpha = 0.1"),
            "regularizer[0].kind",
        ),
        (
            "neg_fp",
            reg("kind = \"fisher_penalty\"\nalpha = -0.1"),
            "regularizer[0].alpha",
        ),
        (
            "aj_micro",
            reg("kind = \"average_jacobian\"\nlambda = 0.1\nmicro_batch = 4"),
            "regularizer[0].micro_batch",
        ),
        (
            "clip",
            SMALL.replace("batch_size = 6\n", "batch_size = 6\nclip_grad_norm = -1.0\n"),
            "optimizer.clip_grad_norm",
        ),
    ];
    for (name, text, field) in &cases {
        assert_eq!(rejected(d, name, text), *field, "{name}");
    }
    // Full batch: the micro-batch must divide N = 24 (5 does not); the second table is named by its index.
    let gd = small_gd()
        + "\n[[regularizer]]\nkind = \"weight_decay\"\ncoefficient = 0.1\n"
        + "\n[[regularizer]]\nkind = \"gradient_norm\"\nlambda = 0.1\nmicro_batch = 5\n";
    assert_eq!(rejected(d, "micro_n", &gd), "regularizer[1].micro_batch");
    // Without replacement the smaller last batch (24 mod 9 = 6) must be divisible too: 3 divides 9 and 6, 9 does not.
    let rr = |m: usize| {
        SMALL.replace("batch_size = 6", "batch_size = 9")
            + &format!("\n[[regularizer]]\nkind = \"gradient_norm\"\nlambda = 0.1\nmicro_batch = {m}\n")
    };
    assert_eq!(rejected(d, "micro_last", &rr(9)), "regularizer[0].micro_batch");
    run_ok(d, "micro_ok", &rr(3));
    // Unknown keys and kinds inside a regularizer table.
    let f = rejected(
        d,
        "unknown_key",
        &reg("kind = \"weight_decay\"\ncoefficient = 0.1\nlamda = 1.0"),
    );
    assert!(f.contains("lamda"), "{f}");
    let f = rejected(d, "unknown_kind", &reg("kind = \"dropout\"\np = 0.1"));
    assert!(f.starts_with("regularizer"), "{f}");
}

/// GP `α‖∇C‖²`, Smith's stochastic `(λ/4)‖∇C_B‖²` and Smith's epoch term `(λ/(4m))Σ_k‖∇Ĉ_k‖²` (full batch:
/// `m = 1`), one GD step each on linear regression: `θ₁ = θ₀ − η (g + c H g)` with `c = 2α`, `λ/2`, `λ/2` and
/// `H` the dense Hessian (independent of the penalties' HVPs; 1e-12 relative for rounding as above).
#[test]
fn gradient_penalty_and_smith_terms_step_match_dense_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let gd = small_gd().replace("steps = 40", "steps = 1");
    for (name, body, c) in [
        ("gp", "kind = \"gradient_penalty\"\nalpha = 0.3", 0.6),
        ("smith_st", "kind = \"smith_stochastic\"\nlambda = 0.4", 0.2),
        ("smith_ep", "kind = \"smith_lambda\"\nlambda = 0.4", 0.2),
    ] {
        let (cfg, cli_theta) = run_ok(dir.path(), name, &format!("{gd}\n[[regularizer]]\n{body}\n"));
        let prep = prepare(ExperimentConfig::load(&cfg).unwrap(), &cfg).unwrap();
        let obj = prep.model.objective();
        let t0 = &prep.theta0;
        let g = obj.grad(t0, Batch::Full).unwrap();
        let h = obj.dense_hessian(t0, Batch::Full).unwrap();
        for a in 0..g.len() {
            let d = g[a] + c * (0..g.len()).map(|b| h[(a, b)] * g[b]).sum::<f64>();
            let want = t0[a] - 0.05 * d;
            let got = cli_theta[a];
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{name}: {got} vs {want}"
            );
        }
    }
}

/// A sweep grid addresses a `[[regularizer]]` table by index; a missing index is bad input.
#[test]
fn sweep_grid_sets_a_regularizer_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SMALL}\n[[regularizer]]\nkind = \"weight_decay\"\ncoefficient = 0.1\n\n[sweep]\nseeds = [0]\n\
         [sweep.grid]\n\"regularizer.0.coefficient\" = [0.0, 0.5]\n"
    );
    let cfg = write(dir.path(), "sw.toml", &text);
    let entries = imreg_cli::sweep::expand(&cfg).unwrap();
    let wd: Vec<_> = entries
        .iter()
        .map(|e| e.config.regularizers[0].coefficient().1)
        .collect();
    assert_eq!(wd, [0.0, 0.5]);
    let bad = write(
        dir.path(),
        "bad.toml",
        &text.replace("regularizer.0.", "regularizer.3."),
    );
    assert!(matches!(
        imreg_cli::sweep::expand(&bad),
        Err(CliError::Input { .. })
    ));
}
