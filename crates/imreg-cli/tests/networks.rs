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

/// `x.npy` (`[n, C, H, W]`) and `y.npy` (labels) from the fixture's data file.
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
    let (ys, y) = read("labels");
    let (xp, yp) = (
        dir.join(format!("{case}.x.npy")),
        dir.join(format!("{case}.y.npy")),
    );
    write_npy(&xp, &xs, &x).unwrap();
    assert_eq!(ys.len(), 1);
    write_labels(&yp, &y);
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
    assert_eq!(a.hessian_trace.estimator, "exact");
    let bs = a.batch_sharpness.unwrap();
    assert_eq!((bs.estimator, bs.samples), ("exact", Some(28)));
    check("Tr H", a.hessian_trace.value, num("hessian_trace"));
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
