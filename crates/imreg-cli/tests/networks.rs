//! `imreg analyze` on PyTorch state dicts of networks, against the PyTorch fixture
//! (`scripts/torch_fixture.py`, `crates/imreg-objective/tests/fixtures/torch`): the loss, gradient norm, top
//! Hessian eigenvalues, exact Hessian trace and batch sharpness at b = 2 (exact over all 28 batches) agree to
//! 1e-10 relative. The fixture's data (`<case>.data.safetensors`: `x [n, C, H, W]`, `labels`) are written as
//! the `.npy` files `analyze` takes (`x` keeps its 4 axes; each row is read as its `C·H·W` features).
use imreg_cli::analyze::{table, Analysis};
use imreg_cli::{analyze_from_args, run_with_args, EXIT_BAD_INPUT};
use imreg_objective::data::npy::write_npy;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../imreg-objective/tests/fixtures/torch")
}

fn fixture(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_dir().join(format!("{case}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `x.npy` (`[n, C, H, W]`) and `y.npy` (labels, or the real targets `y` of a regression case) from the
/// fixture's data file.
fn data_npy(case: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let bytes = std::fs::read(fixture_dir().join(format!("{case}.data.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let read = |name: &str| {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F64);
        let v: Vec<f64> = t
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (t.shape().to_vec(), v)
    };
    let (xs, x) = read("x");
    let (xp, yp) = (
        dir.join(format!("{case}.x.npy")),
        dir.join(format!("{case}.y.npy")),
    );
    write_npy(&xp, &xs, &x).unwrap();
    if st.names().iter().any(|n| n.as_str() == "labels") {
        let (ys, y) = read("labels");
        assert_eq!(ys.len(), 1);
        write_labels(&yp, &y);
    } else {
        let (ys, y) = read("y");
        write_npy(&yp, &ys, &y).unwrap();
    }
    (xp, yp)
}

/// Integer labels as an int64 `.npy` vector (the fixture stores them as float64).
fn write_labels(path: &Path, y: &[f64]) {
    let mut header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}",
        y.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for &v in y {
        assert_eq!(v, v.round());
        bytes.extend((v as i64).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// Runs `imreg analyze` on the case with the preset or the fixture's spec and checks it against PyTorch.
fn analyze_case(case: &str, model: &[&str]) -> Analysis {
    let f = fixture(case);
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = data_npy(case, dir.path());
    let params = fixture_dir().join(format!("{case}.safetensors"));
    let classes = f["classes"].as_u64().unwrap().to_string();
    let p = f["n_params"].as_u64().unwrap().to_string();
    let mut args = vec!["imreg", "analyze", "--model", "network"];
    args.extend_from_slice(model);
    args.extend_from_slice(&["--loss", "cross_entropy", "--classes", &classes]);
    args.extend_from_slice(&["--params", params.to_str().unwrap()]);
    args.extend_from_slice(&["--data", x.to_str().unwrap(), "--targets", y.to_str().unwrap()]);
    args.extend_from_slice(&["--batch-size", "2", "--top-k", "3", "--bottom-k", "0"]);
    args.extend_from_slice(&["--exact-trace-max-p", &p]);
    let a = analyze_from_args(&args).unwrap();
    println!("{case}: imreg analyze {}\n{}", args[2..].join(" "), table(&a));
    assert_eq!(a.p as u64, f["n_params"].as_u64().unwrap());
    let num = |k: &str| f[k].as_f64().unwrap();
    let mut worst = 0.0f64;
    let mut check = |what: &str, got: f64, want: f64| {
        let r = rel(got, want);
        println!("  {what:<26} imreg {got:.15e}  torch {want:.15e}  rel {r:.1e}");
        worst = worst.max(r);
        assert!(r <= 1e-10, "{case} {what}: {got} vs {want} (rel {r:e})");
    };
    check("loss", a.loss, num("loss"));
    check("grad norm", a.grad_norm, num("grad_norm"));
    let top = f["lambda_top"].as_array().unwrap();
    assert_eq!(a.hessian_top.len(), top.len());
    for (k, (got, want)) in a.hessian_top.iter().zip(top).enumerate() {
        check(&format!("λ_{}", k + 1), *got, want.as_f64().unwrap());
    }
    check("λ_max (fixture)", a.hessian_top[0], num("lambda_max"));
    assert_eq!(a.hessian_trace.unwrap().estimator, "exact");
    let bs = a.batch_sharpness.unwrap();
    assert_eq!((bs.estimator, bs.samples), ("exact", Some(28)));
    check("Tr H", a.hessian_trace.unwrap().value, num("hessian_trace"));
    check("batch sharpness", bs.value, num("batch_sharpness"));
    check(
        "batch sharpness (inside)",
        a.batch_sharpness_inside.unwrap().value,
        num("batch_sharpness_inside"),
    );
    println!("  worst relative difference {worst:.1e}");
    a
}

#[test]
fn cnn_relu_state_dict_matches_pytorch() {
    let a = analyze_case("cnn-relu", &["--preset", "cnn-relu", "--input-shape", "1,12,12"]);
    assert!(table(&a).contains(&format!("{:.6e}", a.hessian_top[0])));
}

#[test]
fn resnet_state_dict_matches_pytorch_in_eval_and_train_mode() {
    for case in ["resnet-bn-eval", "resnet-bn-train"] {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.json");
        std::fs::write(&spec, fixture(case)["spec"].to_string()).unwrap();
        analyze_case(case, &["--spec", spec.to_str().unwrap()]);
    }
}

#[test]
fn state_dict_mismatches_are_typed_errors() {
    let case = "cnn-relu";
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = data_npy(case, dir.path());
    let bytes = std::fs::read(fixture_dir().join(format!("{case}.safetensors"))).unwrap();
    let mut tensors = imreg_objective::models::read_state_dict(&bytes).unwrap();
    let run = |tensors: &[imreg_objective::data::weights::NamedTensor]| {
        let path = dir.path().join("w.safetensors");
        std::fs::write(&path, imreg_objective::models::write_state_dict(tensors).unwrap()).unwrap();
        let args = [
            "imreg",
            "analyze",
            "--model",
            "network",
            "--preset",
            "cnn-relu",
            "--input-shape",
            "1,12,12",
            "--loss",
            "cross_entropy",
            "--classes",
            "4",
            "--params",
            path.to_str().unwrap(),
            "--data",
            x.to_str().unwrap(),
            "--targets",
            y.to_str().unwrap(),
        ];
        let msg = analyze_from_args(args).unwrap_err().to_string();
        assert_eq!(run_with_args(args), EXIT_BAD_INPUT);
        msg
    };
    // A wrong shape names the tensor, its expected and found shapes.
    let w = tensors.iter().position(|t| t.0 == "3.weight").unwrap();
    tensors[w].1 = vec![32, 32, 9];
    let msg = run(&tensors);
    assert!(
        msg.contains("3.weight") && msg.contains("[32, 32, 3, 3]") && msg.contains("[32, 32, 9]"),
        "{msg}"
    );
    tensors[w].1 = vec![32, 32, 3, 3];
    // A missing and an unexpected tensor are named.
    let bias = tensors.remove(tensors.iter().position(|t| t.0 == "7.bias").unwrap());
    let msg = run(&tensors);
    assert!(msg.contains("7.bias") && msg.contains("--params"), "{msg}");
    tensors.push(bias);
    tensors.push(("fc.weight".into(), vec![1], vec![0.0]));
    let msg = run(&tensors);
    assert!(msg.contains("fc.weight"), "{msg}");
}

/// `imreg analyze` of a PyTorch-trained MLP (`mlp-mse`: `nn.MSELoss()`; `mlp-ce-smooth`:
/// `nn.CrossEntropyLoss(label_smoothing=0.1)`), with `args` after the data; prints every comparison.
fn analyze_trained(case: &str, loss: &str, args: &[&str]) -> Analysis {
    let trained = TrainedCase::new(case);
    let mut all = trained.args(loss);
    if trained.spec["name"] == "mlp-ce-smooth" {
        all.extend(["--classes", "3"].map(String::from));
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let a = analyze_from_args(&all).unwrap();
    println!("{case}: imreg analyze {}\n{}", all[2..].join(" "), table(&a));
    a
}

/// A trained fixture case on disk: its spec as JSON and its data as `.npy` in a fresh folder, next to the
/// case's PyTorch state dict.
struct TrainedCase {
    _dir: tempfile::TempDir,
    spec: serde_json::Value,
    files: [PathBuf; 4],
}

impl TrainedCase {
    fn new(case: &str) -> Self {
        let spec = fixture(case)["spec"].clone();
        let dir = tempfile::tempdir().unwrap();
        let (x, y) = data_npy(case, dir.path());
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let params = fixture_dir().join(format!("{case}.safetensors"));
        TrainedCase {
            _dir: dir,
            spec,
            files: [spec_path, params, x, y],
        }
    }

    /// `imreg analyze --model network --spec … --loss <loss> --params … --data … --targets …`.
    fn args(&self, loss: &str) -> Vec<String> {
        let [spec, params, x, y] = self.files.each_ref().map(|p| p.to_str().unwrap().to_string());
        let flags = ["imreg", "analyze", "--model", "network", "--spec"];
        let mut all: Vec<String> = flags.map(String::from).into();
        all.extend([spec, "--loss".into(), loss.into(), "--params".into(), params]);
        all.extend(["--data".into(), x, "--targets".into(), y]);
        all
    }
}

/// The fixture's dense-PyTorch numbers against `a`, each to `tol` relative; returns the worst.
fn against_torch(case: &str, a: &Analysis, tol: f64) -> f64 {
    let f = fixture(case);
    let list = |k: &str| -> Vec<f64> {
        f[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let mut worst = 0.0f64;
    let mut check = |what: String, got: f64, want: f64| {
        let r = rel(got, want);
        println!("  {what:<12} imreg {got:+.15e}  torch {want:+.15e}  rel {r:.1e}");
        worst = worst.max(r);
        assert!(r <= tol, "{case} {what}: {got} vs {want} (rel {r:e})");
    };
    check("loss".into(), a.loss, f["loss"].as_f64().unwrap());
    for (k, (got, want)) in a.hessian_top.iter().zip(list("lambda_top")).enumerate() {
        check(format!("λ_top{}", k + 1), *got, want);
    }
    for (k, (got, want)) in a.hessian_bottom.iter().zip(list("lambda_bottom")).enumerate() {
        check(format!("λ_bottom{}", k + 1), *got, want);
    }
    if let Some(t) = a.hessian_trace {
        assert_eq!(t.estimator, "exact");
        check("Tr H".into(), t.value, f["hessian_trace"].as_f64().unwrap());
    }
    println!("  worst relative difference {worst:.1e}");
    worst
}

/// Lanczos instead of the dense route, with full reorthogonalization over all `p = 147` steps.
const FULL_LANCZOS: [&str; 6] = [
    "--dense-max-p",
    "0",
    "--lanczos-tol",
    "0",
    "--lanczos-max-iter",
    "147",
];

/// `--lanczos-stop eigenvalue` at a tight tolerance gives the top-3 to 1e-10 against PyTorch's dense Hessian
/// (as the residual rule does), in no more Lanczos steps than the residual rule at the same tolerance.
#[test]
fn eigenvalue_stop_rule_matches_the_dense_hessian() {
    let case = "mlp-mse";
    let run = |stop: &str| {
        let args = [
            "--quantities",
            "top-k",
            "--dense-max-p",
            "0",
            "--lanczos-tol",
            "1e-12",
            "--lanczos-stop",
            stop,
        ];
        analyze_trained(case, "MSELoss()", &args)
    };
    let (residual, eigenvalue) = (run("residual"), run("eigenvalue"));
    for a in [&residual, &eigenvalue] {
        assert_eq!((a.eigen_method, a.eigen_converged), ("lanczos", true));
        against_torch(case, a, 1e-10);
    }
    assert!(eigenvalue.eigen_iterations <= residual.eigen_iterations);
}

/// A model trained with `nn.MSELoss()` and analyzed with PyTorch's name for that loss: the loss and λ_max to
/// 1e-12, the top-3 and bottom-3 eigenvalues and the exact trace to 1e-10, by the dense route and by Lanczos
/// (`--dense-max-p 0`, full reorthogonalization over all p steps), against PyTorch's dense Hessian.
#[test]
fn mlp_trained_with_mse_loss_matches_pytorch_dense_hessian() {
    let case = "mlp-mse";
    let dense = analyze_trained(case, "MSELoss()", &["--quantities", "top-k,bottom-k,trace"]);
    assert_eq!((dense.p, dense.eigen_method), (147, "dense"));
    against_torch(case, &dense, 1e-10);
    let f = fixture(case);
    assert!(rel(dense.loss, f["loss"].as_f64().unwrap()) <= 1e-12);
    assert!(rel(dense.hessian_top[0], f["lambda_top"][0].as_f64().unwrap()) <= 1e-12);
    let args = [&["--quantities", "top-k,bottom-k"][..], &FULL_LANCZOS].concat();
    let lanczos = analyze_trained(case, "MSELoss(reduction=\"mean\")", &args);
    assert_eq!((lanczos.eigen_method, lanczos.eigen_converged), ("lanczos", true));
    assert_eq!(lanczos.top_residuals.len(), 3);
    against_torch(case, &lanczos, 1e-10);
    // λ_max alone computes nothing else.
    let one = analyze_trained(case, "MSELoss", &["--quantities", "lambda_max"]);
    assert_eq!(one.hessian_top.len(), 1);
    assert!(one.hessian_bottom.is_empty() && one.hessian_trace.is_none() && one.trace_k.is_none());
    assert!(rel(one.hessian_top[0], f["lambda_top"][0].as_f64().unwrap()) <= 1e-12);
    // PyTorch's sum reduction is refused with the conversion.
    let args = TrainedCase::new(case).args("MSELoss(reduction=\"sum\")");
    let msg = analyze_from_args(&args).unwrap_err().to_string();
    assert!(msg.contains("--loss") && msg.contains("squared_error"), "{msg}");
    assert_eq!(run_with_args(args), EXIT_BAD_INPUT);
}

/// `nn.CrossEntropyLoss(label_smoothing=0.1)`: the loss and λ_max to 1e-12, top-3, bottom-3 and the trace to
/// 1e-10 against PyTorch's dense Hessian.
#[test]
fn mlp_trained_with_label_smoothing_matches_pytorch_dense_hessian() {
    let case = "mlp-ce-smooth";
    let a = analyze_trained(
        case,
        "CrossEntropyLoss(label_smoothing=0.1)",
        &["--quantities", "top-k,bottom-k,trace"],
    );
    against_torch(case, &a, 1e-10);
    let f = fixture(case);
    assert!(rel(a.loss, f["loss"].as_f64().unwrap()) <= 1e-12);
    assert!(rel(a.hessian_top[0], f["lambda_top"][0].as_f64().unwrap()) <= 1e-12);
}

/// The files and per-layer numbers of `analyze` against the full dense eigendecomposition (all p = 147
/// eigenvectors from `--quantities eigenvectors --top-k 147`, checked against PyTorch's eigenvalues): the
/// SLQ density with `--slq-steps p` equals `(1/n_v) Σ_v Σ_i (vᵀu_i)² φ_σ(t − λ_i)` for the same probes,
/// the diagonal equals `Σ_i λ_i u_i²`, each layer's trace and top eigenvalue those of the principal block
/// `U_b Λ U_bᵀ`, and the eigenvector sidecar names the state dict's tensors in parameter order.
#[test]
fn density_diagonal_blocks_and_eigenvectors_match_the_dense_eigendecomposition() {
    let case = "mlp-mse";
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("analysis");
    let p = 147usize;
    let all_p = p.to_string();
    let a = analyze_trained(
        case,
        "mse",
        &[
            "--quantities",
            "top-k,eigenvectors,density,diagonal,blocks,trace",
            "--top-k",
            &all_p,
            "--slq-steps",
            &all_p,
            "--slq-probes",
            "3",
            "--out",
            out_dir.to_str().unwrap(),
            "--seed",
            "5",
        ],
    );
    let f = fixture(case);
    let npy = imreg_objective::data::npy::read_npy(out_dir.join("eigenvectors.npy")).unwrap();
    assert_eq!(npy.shape, vec![p, p]);
    let lam = &a.hessian_top;
    let torch_top: Vec<f64> = f["lambda_top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for k in 0..3 {
        assert!(rel(lam[k], torch_top[k]) <= 1e-10);
    }
    let scale = lam.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let u = |i: usize, j: usize| npy.data[i * p + j]; // eigenvector i, entry j
    let mut worst = 0.0f64;
    // Density.
    let d = a.density.as_ref().unwrap();
    assert_eq!((d.probes, d.steps), (3, p));
    let phi = |t: f64| (-0.5 * (t / d.sigma).powi(2)).exp() / (d.sigma * (2.0 * std::f64::consts::PI).sqrt());
    let probes: Vec<Vec<f64>> = (0..3)
        .map(|k| imreg_spectra::slq::probe(imreg_spectra::ProbeKind::Rademacher, p, 5, k))
        .collect();
    let weights: Vec<f64> = (0..p)
        .map(|i| {
            probes
                .iter()
                .map(|v| (0..p).map(|j| v[j] * u(i, j)).sum::<f64>().powi(2))
                .sum::<f64>()
                / 3.0
        })
        .collect();
    let peak = d.density.iter().fold(0.0f64, |m, v| m.max(*v));
    for (t, got) in d.grid.iter().zip(&d.density) {
        let want: f64 = (0..p).map(|i| weights[i] * phi(t - lam[i])).sum();
        let r = (got - want).abs() / peak;
        worst = worst.max(r);
        assert!(r <= 1e-10, "density at {t}: {got} vs {want}");
    }
    println!("density: worst |ρ − ρ_dense| / max ρ = {worst:.1e}");
    assert!(out_dir.join("density.svg").is_file() && out_dir.join("density.csv").is_file());
    // Diagonal.
    let diag = imreg_objective::data::npy::read_npy(out_dir.join("diagonal.npy")).unwrap();
    let mut worst = 0.0f64;
    for j in 0..p {
        let want: f64 = (0..p).map(|i| lam[i] * u(i, j) * u(i, j)).sum();
        worst = worst.max((diag.data[j] - want).abs() / scale);
    }
    println!("diagonal: worst |d − Σλu²| / ‖H‖ = {worst:.1e}");
    assert!(worst <= 1e-12);
    assert_eq!(a.diagonal.as_ref().unwrap().estimator, "exact");
    // Per-layer blocks.
    let blocks = a.blocks.as_ref().unwrap();
    let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["0", "2", "4"]);
    let total: f64 = blocks.iter().map(|b| b.trace.value).sum();
    assert!(rel(total, a.hessian_trace.unwrap().value) <= 1e-12);
    for b in blocks {
        let m = nalgebra::DMatrix::from_fn(b.len, b.len, |r, c| {
            (0..p)
                .map(|i| lam[i] * u(i, b.offset + r) * u(i, b.offset + c))
                .sum::<f64>()
        });
        let want = imreg_spectra::symmetric_eigen(m.clone(), &Default::default())
            .unwrap()
            .max();
        let r = rel(b.lambda_max.value, want);
        println!(
            "  layer {:<3} Tr {:+.12e} (want {:+.12e})  λ_max {:+.12e} (want {want:+.12e}, rel {r:.1e})",
            b.name,
            b.trace.value,
            m.trace(),
            b.lambda_max.value
        );
        assert!(r <= 1e-10 && rel(b.trace.value, m.trace()) <= 1e-10);
        assert_eq!((b.trace.estimator, b.lambda_max.estimator), ("exact", "exact"));
    }
    // The names sidecar.
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("eigenvectors.json")).unwrap()).unwrap();
    let tensors: Vec<(String, u64)> = side["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("0.weight", 0),
        ("0.bias", 40),
        ("2.weight", 48),
        ("2.bias", 112),
        ("4.weight", 120),
        ("4.bias", 144),
    ];
    assert_eq!(tensors, want.map(|(n, o)| (n.to_string(), o)).to_vec());
    assert_eq!(side["rows"][0]["eigenvalue"].as_f64().unwrap(), lam[0]);
    assert!(out_dir.join(".imreg-output").is_file());
}

#[test]
fn unknown_quantities_and_bad_knobs_are_named() {
    let trained = TrainedCase::new("mlp-mse");
    for (extra, flag) in [
        (["--quantities", "hessian"], "--quantities"),
        (["--lanczos-tol", "-1"], "--lanczos-tol"),
        (["--slq-probes", "0"], "--slq-probes"),
        (["--quantities", "eigenvectors"], "--out"),
        (["--quantities", "batch-sharpness"], "--batch-size"),
    ] {
        let mut args = trained.args("mse");
        args.extend(extra.map(String::from));
        let msg = analyze_from_args(&args).unwrap_err().to_string();
        assert!(msg.contains(flag), "{extra:?}: {msg}");
        assert_eq!(run_with_args(&args), EXIT_BAD_INPUT);
    }
}

/// The large-model routes on the same MLP: Lanczos eigenvectors (`--dense-max-p 0`, all p steps) are the
/// dense eigenvectors up to sign (`|⟨v, u⟩| = 1` to 1e-10) and their sidecar carries residual bounds; the
/// Hutchinson diagonal (`--exact-trace-max-p 0`) says it is an estimate and lies within 6 standard errors
/// of the exact diagonal in every entry.
#[test]
fn lanczos_eigenvectors_and_the_diagonal_estimate_match_the_dense_route() {
    let case = "mlp-mse";
    let p = 147usize;
    let tmp = tempfile::tempdir().unwrap();
    let (dense_dir, lanczos_dir) = (tmp.path().join("dense"), tmp.path().join("lanczos"));
    let common = [
        "--quantities",
        "top-k,bottom-k,eigenvectors,diagonal",
        "--top-k",
        "3",
        "--bottom-k",
        "2",
    ];
    let mut dense_args = common.to_vec();
    dense_args.extend_from_slice(&["--out", dense_dir.to_str().unwrap()]);
    let dense = analyze_trained(case, "mse", &dense_args);
    let mut lanczos_args = common.to_vec();
    lanczos_args.extend_from_slice(&["--out", lanczos_dir.to_str().unwrap()]);
    lanczos_args.extend_from_slice(&FULL_LANCZOS);
    lanczos_args.extend_from_slice(&["--exact-trace-max-p", "0", "--diagonal-probes", "200"]);
    let lanczos = analyze_trained(case, "mse", &lanczos_args);
    assert_eq!(lanczos.eigen_method, "lanczos");
    let read = |d: &Path, f: &str| imreg_objective::data::npy::read_npy(d.join(f)).unwrap();
    let (u, v) = (
        read(&dense_dir, "eigenvectors.npy"),
        read(&lanczos_dir, "eigenvectors.npy"),
    );
    assert_eq!((u.shape.clone(), v.shape.clone()), (vec![5, p], vec![5, p]));
    for k in 0..5 {
        let c: f64 = (0..p).map(|j| u.data[k * p + j] * v.data[k * p + j]).sum();
        println!("  row {k}: |⟨v_lanczos, u_dense⟩| − 1 = {:.1e}", c.abs() - 1.0);
        assert!((c.abs() - 1.0).abs() <= 1e-10, "row {k}: {c}");
    }
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lanczos_dir.join("eigenvectors.json")).unwrap())
            .unwrap();
    assert!(side["rows"][0]["residual_bound"].as_f64().unwrap() >= 0.0);
    let exact = read(&dense_dir, "diagonal.npy");
    let (est, se) = (
        read(&lanczos_dir, "diagonal.npy"),
        read(&lanczos_dir, "diagonal_std_error.npy"),
    );
    let summary = lanczos.diagonal.as_ref().unwrap();
    assert_eq!((summary.estimator, summary.probes), ("monte_carlo", Some(200)));
    assert_eq!(dense.diagonal.as_ref().unwrap().estimator, "exact");
    let worst = (0..p)
        .map(|j| (est.data[j] - exact.data[j]).abs() / se.data[j].max(1e-300))
        .fold(0.0f64, f64::max);
    println!("  diagonal estimate: worst |d̂ − d| / SE = {worst:.2}");
    assert!(worst <= 6.0);
}

/// The estimates of `analyze` (SLQ density, Hutch++ trace, Hutchinson diagonal, Lanczos eigenpairs, per-layer
/// blocks) are bitwise identical on 1 and 2 threads.
#[test]
fn estimates_are_bitwise_identical_on_one_and_two_threads() {
    let args = [
        "--quantities",
        "all",
        "--batch-size",
        "3",
        "--dense-max-p",
        "0",
        "--exact-trace-max-p",
        "0",
        "--slq-probes",
        "2",
        "--slq-steps",
        "20",
        "--seed",
        "9",
    ];
    let run = |threads: usize| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut with_out = args.to_vec();
        with_out.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let a =
            imreg_objective::threads::on_threads(threads, || analyze_trained("mlp-mse", "mse", &with_out))
                .unwrap();
        let mut json = serde_json::to_value(&a).unwrap();
        json["files"] = serde_json::Value::Null;
        let files: Vec<Vec<u8>> = ["eigenvectors.npy", "diagonal.npy", "density.csv"]
            .iter()
            .map(|f| std::fs::read(out.join(f)).unwrap())
            .collect();
        (json.to_string(), files)
    };
    assert_eq!(run(1), run(2));
}
