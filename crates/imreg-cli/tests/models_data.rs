//! MLPs (config and `analyze` on PyTorch-layout safetensors) and the data sources: embedded digits with a
//! train/test split, the seeded generators, `.npy` labels, MNIST IDX and CIFAR-10 binary files, with bad
//! files rejected naming the file and the field.
mod common;
use common::*;
use imreg_cli::analyze::{analyze, AnalyzeRequest};
use imreg_cli::config::{DataConfig, LossConfig, ModelConfig, SupportTargetConfig};
use imreg_cli::data::{build, split_seed};
use imreg_cli::CliError;
use imreg_objective::data::npy::{npy_bytes, write_npy};
use imreg_objective::data::{digits_split, synthetic};
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{Batch, LossKind, Objective};
use ndarray::Array2;
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;

/// An int64 `.npy` of labels (as `np.save(f, labels.astype(np.int64))` writes it).
fn write_labels(path: &Path, labels: &[i64]) {
    let mut bytes = npy_bytes(&[labels.len()], &vec![0.0; labels.len()]).unwrap();
    bytes.truncate(bytes.len() - 8 * labels.len());
    let at = bytes.windows(3).position(|w| w == b"<f8").unwrap();
    bytes[at + 1] = b'i';
    for l in labels {
        bytes.extend_from_slice(&l.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn input_error(r: imreg_cli::Result<impl std::fmt::Debug>) -> (String, String, String) {
    match r {
        Err(CliError::Input { file, field, reason }) => (file.display().to_string(), field, reason),
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// `nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))` saved with safetensors (names `0.weight`,
/// `0.bias`, `2.weight`, `2.bias`, float32 as PyTorch saves by default) gives through `analyze` the
/// numbers of the library's `Mlp` at the same θ.
#[test]
fn analyze_mlp_safetensors_in_pytorch_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 12;
    let x: Vec<f64> = (0..n * 3).map(|i| ((i * 7 % 13) as f64 - 6.0) / 5.0).collect();
    let y: Vec<f64> = (0..n * 2).map(|i| ((i * 5 % 9) as f64 - 4.0) / 4.0).collect();
    write_npy(d.join("x.npy"), &[n, 3], &x).unwrap();
    write_npy(d.join("y.npy"), &[n, 2], &y).unwrap();
    // float32-representable values, so the f32 file holds exactly θ.
    let vals =
        |len: usize, k: usize| -> Vec<f64> { (0..len).map(|i| ((i * k % 17) as f64 - 8.0) / 16.0).collect() };
    let (w0, b0, w2, b2) = (vals(15, 5), vals(5, 3), vals(10, 7), vals(2, 11));
    let f32_bytes = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect() };
    let bufs = [f32_bytes(&w2), f32_bytes(&b0), f32_bytes(&w0), f32_bytes(&b2)];
    let tensors = vec![
        (
            "2.weight",
            TensorView::new(Dtype::F32, vec![2, 5], &bufs[0]).unwrap(),
        ),
        ("0.bias", TensorView::new(Dtype::F32, vec![5], &bufs[1]).unwrap()),
        (
            "0.weight",
            TensorView::new(Dtype::F32, vec![5, 3], &bufs[2]).unwrap(),
        ),
        ("2.bias", TensorView::new(Dtype::F32, vec![2], &bufs[3]).unwrap()),
    ];
    let st = d.join("mlp.safetensors");
    std::fs::write(&st, safetensors::serialize(tensors, &None).unwrap()).unwrap();
    let model = ModelConfig::Mlp {
        hidden: vec![5],
        activation: Activation::Tanh,
        bias: true,
        loss: LossConfig::HalfMse,
    };
    let req = AnalyzeRequest {
        quantities: None,
        solver: Default::default(),
        out: None,
        exact_trace_max_p: imreg_cli::spectrum::DENSE_MAX_P,
        model,
        params: st.clone(),
        data: Some(DataConfig::Npy {
            x: d.join("x.npy"),
            y: d.join("y.npy"),
            classes: None,
        }),
        split: None,
        top_k: 2,
        bottom_k: 1,
        batch_size: Some(3),
        estimation: Default::default(),
        seed: 0,
        data_seed: 0,
    };
    let a = analyze(&req).unwrap();
    let spec = MlpSpec {
        widths: vec![3, 5, 2],
        activation: Activation::Tanh,
        bias: true,
        loss: LossKind::Mse { half: true },
    };
    let lib = Mlp::regression(
        spec,
        Array2::from_shape_vec((n, 3), x).unwrap(),
        Array2::from_shape_vec((n, 2), y).unwrap(),
    )
    .unwrap();
    assert_eq!(lib.param_names(), ["0.weight", "0.bias", "2.weight", "2.bias"]);
    let theta: Vec<f64> = [w0, b0, w2, b2].concat();
    assert_eq!(a.p, 32);
    assert_eq!(a.loss.to_bits(), lib.loss(&theta, Batch::Full).unwrap().to_bits());
    let g = lib.grad(&theta, Batch::Full).unwrap();
    assert_eq!(a.grad_norm, g.iter().map(|v| v * v).sum::<f64>().sqrt());
    let ev = lib
        .dense_hessian(&theta, Batch::Full)
        .unwrap()
        .symmetric_eigenvalues();
    let mut ev: Vec<f64> = ev.iter().copied().collect();
    ev.sort_by(f64::total_cmp);
    let scale = ev.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    // The same dense Hessian diagonalized twice: agreement to rounding.
    assert!(
        (a.hessian_top[0] - ev[31]).abs() <= 1e-12 * scale,
        "{:?} vs {ev:?}",
        a.hessian_top
    );
    assert!((a.hessian_top[1] - ev[30]).abs() <= 1e-12 * scale);
    assert!((a.hessian_bottom[0] - ev[0]).abs() <= 1e-12 * scale);
    let tr_f = (0..n)
        .map(|i| {
            lib.grad(&theta, Batch::Indices(&[i]))
                .unwrap()
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
        })
        .sum::<f64>()
        / n as f64;
    assert!((a.trace_f.unwrap().value - tr_f).abs() <= 1e-12 * tr_f);
    // The command line, with the MLP flags.
    let with_activation = |activation: &str, loss: &str, extra: &[&str]| -> i32 {
        let mut v = vec![
            "analyze",
            "--model",
            "mlp",
            "--hidden",
            "5",
            "--activation",
            activation,
            "--loss",
            loss,
            "--params",
            st.to_str().unwrap(),
            "--json",
        ];
        v.extend_from_slice(extra);
        cli(&v)
    };
    let args = |loss: &str, extra: &[&str]| with_activation("tanh", loss, extra);
    let (xs, ys) = (d.join("x.npy"), d.join("y.npy"));
    let data = ["--data", xs.to_str().unwrap(), "--targets", ys.to_str().unwrap()];
    assert_eq!(args("half_mse", &data), 0);
    // Cross-entropy on integer labels (`--classes`), same weights (2 outputs = 2 classes).
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 2).collect();
    write_labels(&d.join("labels.npy"), &labels);
    let lab = d.join("labels.npy");
    let ce = [
        "--data",
        xs.to_str().unwrap(),
        "--targets",
        lab.to_str().unwrap(),
        "--classes",
        "2",
    ];
    assert_eq!(args("cross_entropy", &ce), 0);
    // Cross-entropy without labels, an unknown activation, and a deep-linear-style layout are bad input.
    assert_eq!(args("cross_entropy", &data), 2);
    assert_eq!(with_activation("swish", "half_mse", &data), 2);
    let wrong = d.join("wrong.safetensors");
    let b5 = f64_bytes(&[0.0; 5]);
    let w15 = f64_bytes(&[0.0; 15]);
    let w10 = f64_bytes(&[0.0; 10]);
    let b2 = f64_bytes(&[0.0; 2]);
    let t = vec![
        ("0.weight", TensorView::new(Dtype::F64, vec![5, 3], &w15).unwrap()),
        ("0.bias", TensorView::new(Dtype::F64, vec![5], &b5).unwrap()),
        ("1.weight", TensorView::new(Dtype::F64, vec![2, 5], &w10).unwrap()),
        ("1.bias", TensorView::new(Dtype::F64, vec![2], &b2).unwrap()),
    ];
    std::fs::write(&wrong, safetensors::serialize(t, &None).unwrap()).unwrap();
    let (file, field, reason) = input_error(analyze(&AnalyzeRequest {
        quantities: None,
        solver: Default::default(),
        out: None,
        exact_trace_max_p: imreg_cli::spectrum::DENSE_MAX_P,
        params: wrong.clone(),
        ..req
    }));
    assert!(
        file.ends_with("wrong.safetensors") && field == "--params",
        "{file}: {field}"
    );
    assert!(
        reason.contains("1.weight") && reason.contains("2.weight"),
        "{reason}"
    );
}

/// The embedded digits with `[split]`: training is on `digits_split(n_train, split_seed(seed))`, and the
/// test columns are the same MLP evaluated on the held-out images.
#[test]
fn digits_with_split_tracks_test_loss_and_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "digits.toml", DIGITS_MLP);
    let out = dir.path().join("digits");
    assert_eq!(run_cli(&cfg, &out, &["--no-figures"]), 0);
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(
        h,
        [
            "step",
            "loss",
            "test_loss",
            "grad_norm",
            "accuracy",
            "test_accuracy"
        ]
    );
    // Step 0 by hand: the library split, the library MLP, θ₀ from the run folder.
    let (train, test) = digits_split(300, split_seed(4)).unwrap();
    let spec = MlpSpec {
        widths: vec![64, 8, 10],
        activation: Activation::Relu,
        bias: true,
        loss: LossKind::CrossEntropy,
    };
    let theta0 = imreg_objective::data::npy::read_npy(out.join("theta_init.npy"))
        .unwrap()
        .data;
    let tr = Mlp::classification(spec.clone(), train.x.clone(), train.labels.clone()).unwrap();
    let te = Mlp::classification(spec, test.x.clone(), test.labels.clone()).unwrap();
    assert_eq!(
        rows[0][1].to_bits(),
        tr.loss(&theta0, Batch::Full).unwrap().to_bits()
    );
    assert_eq!(
        rows[0][2].to_bits(),
        te.loss(&theta0, Batch::Full).unwrap().to_bits()
    );
    let acc = |m: &Mlp, labels: &[usize]| {
        use imreg_objective::Supervised;
        let out = m.outputs(&theta0, Batch::Full).unwrap();
        let hits = out
            .outer_iter()
            .zip(labels)
            .filter(|(row, &l)| {
                let best = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                row[l] == best
            })
            .count();
        hits as f64 / labels.len() as f64
    };
    assert_eq!(rows[0][4], acc(&tr, &train.labels));
    assert_eq!(rows[0][5], acc(&te, &test.labels));
    // Six SGD steps at η = 0.5 already fit the training set better than chance (10 classes).
    assert!(rows.last().unwrap()[4] > 0.2, "{rows:?}");
    // n_train ≥ N is bad input naming split.n_train.
    let bad = write(
        dir.path(),
        "bad.toml",
        &DIGITS_MLP.replace("n_train = 300", "n_train = 1797"),
    );
    let (_, field, _) = input_error(
        imreg_cli::config::ExperimentConfig::load(&bad)
            .and_then(|c| imreg_cli::experiment::prepare(c, &bad).map(|_| ())),
    );
    assert_eq!(field, "split.n_train");
    // accuracy on a regression model is refused.
    let reg = DIGITS_MLP
        .replace(
            "kind = \"digits\"",
            "kind = \"teacher_student\"\nn = 40\nwidths = [3, 2]",
        )
        .replace("cross_entropy", "half_mse")
        .replace("n_train = 300", "n_train = 30");
    let reg = write(dir.path(), "reg.toml", &reg);
    let (_, field, _) = input_error(
        imreg_cli::config::ExperimentConfig::load(&reg)
            .and_then(|c| imreg_cli::experiment::prepare(c, &reg).map(|_| ())),
    );
    assert_eq!(field, "track.accuracy");
}

/// Every generator is the library's, with the master seed.
#[test]
fn generators_are_the_library_generators() {
    let f = Path::new("c.toml");
    let ts = build(
        &DataConfig::TeacherStudent {
            n: 10,
            widths: vec![3, 4, 2],
            noise: 0.1,
        },
        9,
        f,
    )
    .unwrap();
    let lib = synthetic::teacher_student_mlp(10, &[3, 4, 2], 0.1, 9).unwrap();
    assert_eq!((ts.x, ts.y, ts.classes), (lib.x, lib.y, None));
    let tc = build(
        &DataConfig::TeacherStudentClassification {
            n: 10,
            dim: 3,
            classes: 4,
        },
        9,
        f,
    )
    .unwrap();
    let lib = synthetic::teacher_student_classification(10, 3, 4, 9).unwrap();
    assert_eq!(tc.labels().unwrap(), lib.labels);
    assert_eq!((tc.x, tc.classes), (lib.x, Some(4)));
    let ss = build(
        &DataConfig::SparseSupport {
            n: 6,
            d: 4,
            r: 2,
            target: SupportTargetConfig::Sin,
            noise: 0.01,
        },
        9,
        f,
    )
    .unwrap();
    let lib = synthetic::sparse_support(&synthetic::SupportParams {
        n: 6,
        d: 4,
        r: 2,
        target: synthetic::SupportTarget::Sin,
        noise: 0.01,
        seed: 9,
    })
    .unwrap();
    assert_eq!((ss.x, ss.y), (lib.x, lib.y));
    let sn = build(&DataConfig::ScalarNetData { n: 5, noise: 0.2 }, 9, f).unwrap();
    let (x, y) = synthetic::scalar_net_data(5, 0.2, 9).unwrap();
    assert_eq!((sn.x.column(0).to_vec(), sn.y.column(0).to_vec()), (x, y));
}

fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(body);
    b
}

/// MNIST IDX and CIFAR-10 binary files load (pixels / 255, `n` keeps the first examples), and a damaged
/// file is bad input naming the config field and the data file.
#[test]
fn idx_and_cifar_files_load_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 5 images of 2 × 3 pixels and their labels.
    let pixels: Vec<u8> = (0..30).map(|i| (i * 8) as u8).collect();
    std::fs::write(d.join("img.idx"), idx_bytes(0x0803, &[5, 2, 3], &pixels)).unwrap();
    std::fs::write(d.join("lab.idx"), idx_bytes(0x0801, &[5], &[3, 1, 4, 1, 5])).unwrap();
    let f = Path::new("c.toml");
    let idx = |images: &str, labels: &str, n| DataConfig::MnistIdx {
        images: d.join(images),
        labels: d.join(labels),
        n,
    };
    let ds = build(&idx("img.idx", "lab.idx", Some(4)), 0, f).unwrap();
    assert_eq!(ds.x.dim(), (4, 6));
    assert_eq!(ds.x[(1, 2)], 64.0 / 255.0); // pixel 8 of the file = 64
    assert_eq!(ds.labels().unwrap(), [3, 1, 4, 1]);
    // A run on it: MLP with cross-entropy over the 10 MNIST classes.
    let text = "steps = 3\n[data]\nkind = \"mnist_idx\"\nimages = \"img.idx\"\nlabels = \"lab.idx\"\n[model]\nkind = \"mlp\"\nhidden = [4]\nactivation = \"gelu\"\nloss = \"cross_entropy\"\n[init]\nscheme = \"pytorch\"\n[optimizer]\nkind = \"momentum\"\nlr = 0.1\nbeta = 0.9\nnesterov = true\n[track]\naccuracy = true\n";
    let c = write(d, "mnist.toml", text);
    assert_eq!(run_cli(&c, &d.join("mnist"), &["--no-figures"]), 0);
    // Bad magic in the image file: exit 2, field data.images, the file named.
    std::fs::write(d.join("bad.idx"), idx_bytes(0x0801, &[5], &[0; 5])).unwrap();
    let (file, field, reason) = input_error(build(&idx("bad.idx", "lab.idx", None), 0, f));
    assert_eq!((file.as_str(), field.as_str()), ("c.toml", "data.images"));
    assert!(reason.contains("bad.idx"), "{reason}");
    // Label count ≠ image count.
    std::fs::write(d.join("lab4.idx"), idx_bytes(0x0801, &[4], &[0; 4])).unwrap();
    let (_, field, reason) = input_error(build(&idx("img.idx", "lab4.idx", None), 0, f));
    assert_eq!(field, "data.labels", "{reason}");
    // CIFAR-10: two files of 2 and 1 records, concatenated.
    let record = |label: u8, v: u8| -> Vec<u8> {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(v, 3072));
        r
    };
    std::fs::write(d.join("b1.bin"), [record(7, 255), record(0, 51)].concat()).unwrap();
    std::fs::write(d.join("b2.bin"), record(9, 0)).unwrap();
    let cifar = DataConfig::Cifar10 {
        files: vec![d.join("b1.bin"), d.join("b2.bin")],
        n: None,
    };
    let ds = build(&cifar, 0, f).unwrap();
    assert_eq!(ds.x.dim(), (3, 3072));
    assert_eq!(ds.labels().unwrap(), [7, 0, 9]);
    assert_eq!((ds.x[(0, 5)], ds.x[(1, 0)]), (1.0, 0.2));
    // A ragged second file names data.files[1] and the file.
    std::fs::write(d.join("ragged.bin"), &record(1, 1)[..3000]).unwrap();
    let bad = DataConfig::Cifar10 {
        files: vec![d.join("b1.bin"), d.join("ragged.bin")],
        n: None,
    };
    let (_, field, reason) = input_error(build(&bad, 0, f));
    assert_eq!(field, "data.files[1]");
    assert!(reason.contains("ragged.bin"), "{reason}");
    // A missing file.
    let bad = DataConfig::Cifar10 {
        files: vec![d.join("nope.bin")],
        n: None,
    };
    let (_, field, reason) = input_error(build(&bad, 0, f));
    assert_eq!(field, "data.files[0]");
    assert!(reason.contains("nope.bin"), "{reason}");
    // npy labels must be integers when classes is set.
    write_npy(d.join("x.npy"), &[4, 2], &[0.5; 8]).unwrap();
    write_npy(d.join("yf.npy"), &[4], &[0.0, 1.0, 0.0, 1.0]).unwrap();
    let bad = DataConfig::Npy {
        x: d.join("x.npy"),
        y: d.join("yf.npy"),
        classes: Some(2),
    };
    let (_, field, reason) = input_error(build(&bad, 0, f));
    assert_eq!(field, "data.y", "{reason}");
    write_labels(&d.join("yi.npy"), &[0, 1, 2, 1]);
    let bad = DataConfig::Npy {
        x: d.join("x.npy"),
        y: d.join("yi.npy"),
        classes: Some(2),
    };
    let (_, field, reason) = input_error(build(&bad, 0, f));
    assert_eq!(field, "data.y", "{reason}"); // label 2 ≥ classes
    let ok = DataConfig::Npy {
        x: d.join("x.npy"),
        y: d.join("yi.npy"),
        classes: Some(3),
    };
    assert_eq!(build(&ok, 0, f).unwrap().classes, Some(3));
}
