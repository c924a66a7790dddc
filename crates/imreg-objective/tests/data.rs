//! Datasets, generators and loaders: shapes, exact identities of the generators, and a typed error for
//! every malformed file the tests can write.
use imreg_objective::data::cifar::{parse_cifar10, CIFAR_RECORD};
use imreg_objective::data::idx::{
    load_images, load_labels, load_mnist, parse_images, parse_labels, IMAGES_MAGIC, LABELS_MAGIC,
};
use imreg_objective::data::limits::{MAX_FILE_BYTES, MAX_VALUES};
use imreg_objective::data::npy::{npy_bytes, parse_npy, read_npy, write_npy, NpyDtype};
use imreg_objective::data::synthetic::*;
use imreg_objective::data::weights::{flatten_params, load_safetensors, save_safetensors};
use imreg_objective::data::{self, Classification, DataError, Regression};
use imreg_objective::models::ScalarNet;
use imreg_objective::{Batch, Objective, ObjectiveError};
use ndarray::{Array2, Axis};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

fn tmp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---- embedded digits ------------------------------------------------------------------------------------

/// FNV-1a 64 of the raw file, and the per-class counts and pixel total, computed by the conversion script
/// (Python, from scikit-learn's `digits.csv.gz`); the class counts are scikit-learn's documented ones.
#[test]
fn digits_shape_counts_and_checksum() {
    let raw = data::digits::DIGITS_RAW;
    assert_eq!(raw.len(), 1797 * 65);
    let fnv = raw.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    assert_eq!(fnv, 0x7768_69cc_e379_5967);
    let d = data::digits();
    assert_eq!(d.x.dim(), (1797, 64));
    assert_eq!(d.classes, 10);
    assert_eq!(d.counts(), vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    assert_eq!(d.counts().iter().sum::<usize>(), 1797);
    assert!(d.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let pixel_total: f64 = d.x.iter().map(|v| v * 16.0).sum();
    assert_eq!(pixel_total.round() as u64, 561_718);
    // the first image of the file is a 0 (sklearn's digits.images[0])
    assert_eq!(d.labels[0], 0);
    assert_eq!(d.x[(0, 2)], 5.0 / 16.0);
}

#[test]
fn digits_split_is_a_seeded_partition() {
    let (tr, te) = data::digits_split(1500, 3).unwrap();
    assert_eq!((tr.n(), te.n()), (1500, 297));
    assert_eq!(
        tr.counts()
            .iter()
            .zip(te.counts())
            .map(|(a, b)| a + b)
            .collect::<Vec<_>>(),
        data::digits().counts()
    );
    let (tr2, _) = data::digits_split(1500, 3).unwrap();
    assert_eq!(tr, tr2);
    let (tr3, _) = data::digits_split(1500, 4).unwrap();
    assert_ne!(tr, tr3);
    assert!(matches!(
        data::digits_split(1798, 0),
        Err(ObjectiveError::Invalid { .. })
    ));
}

// ---- containers -----------------------------------------------------------------------------------------

#[test]
fn containers_validate_and_subset() {
    let x = Array2::from_shape_fn((4, 2), |(i, j)| (i * 2 + j) as f64);
    let r = Regression::new(x.clone(), Array2::zeros((4, 1))).unwrap();
    let s = r.subset(&[3, 3, 0]).unwrap();
    assert_eq!(s.x.row(0), x.row(3));
    assert_eq!(s.n(), 3);
    assert_eq!(
        r.subset(&[4]),
        Err(ObjectiveError::IndexOutOfRange { index: 4, n: 4 })
    );
    assert!(matches!(
        Regression::new(x.clone(), Array2::zeros((3, 1))),
        Err(ObjectiveError::Shape { .. })
    ));
    let mut bad = x.clone();
    bad[(1, 1)] = f64::NAN;
    assert!(matches!(
        Regression::new(bad, Array2::zeros((4, 1))),
        Err(ObjectiveError::NonFinite { .. })
    ));
    assert_eq!(
        Classification::new(x.clone(), vec![0, 1, 2, 1], 2),
        Err(ObjectiveError::LabelOutOfRange {
            index: 2,
            label: 2,
            classes: 2
        })
    );
    assert!(matches!(
        Classification::new(x.clone(), vec![0, 1], 2),
        Err(ObjectiveError::Length { .. })
    ));
    let c = Classification::new(x, vec![0, 1, 1, 0], 2).unwrap();
    assert_eq!(c.one_hot().row(1).to_vec(), vec![0.0, 1.0]);
    let (a, b) = c.split(3, 1).unwrap();
    assert_eq!((a.n(), b.n()), (3, 1));
    let lr = c.logistic_regression().unwrap();
    assert_eq!(lr.n_examples(), 4);
}

// ---- generators -----------------------------------------------------------------------------------------

/// Least-squares residual RMS of regressing `y` (one column) on `x` via the normal equations.
fn lstsq_rms(x: &Array2<f64>, y: &[f64]) -> f64 {
    let (n, d) = x.dim();
    let xm = nalgebra::DMatrix::from_fn(n, d, |i, j| x[(i, j)]);
    let yv = nalgebra::DVector::from_column_slice(y);
    let w = (xm.transpose() * &xm)
        .cholesky()
        .unwrap()
        .solve(&(xm.transpose() * &yv));
    ((&xm * w - yv).norm_squared() / n as f64).sqrt()
}

#[test]
fn teacher_student_generators() {
    let clean = teacher_student_linear(200, 5, 1, 0.0, 7).unwrap();
    assert_eq!((clean.x.dim(), clean.y.dim()), ((200, 5), (200, 1)));
    assert!(lstsq_rms(&clean.x, &clean.y.column(0).to_vec()) < 1e-12);
    // noise σ = 0.5: the residual RMS estimates σ with relative SE ≈ 1/√(2n) ≈ 1.6% at n = 2000; ±10% is > 6 SE
    let noisy = teacher_student_linear(2000, 5, 1, 0.5, 7).unwrap();
    let rms = lstsq_rms(&noisy.x, &noisy.y.column(0).to_vec());
    assert!((rms - 0.5).abs() < 0.05, "noise rms {rms}");
    assert_eq!(
        teacher_student_linear(20, 3, 2, 0.1, 1).unwrap(),
        teacher_student_linear(20, 3, 2, 0.1, 1).unwrap()
    );
    assert_ne!(
        teacher_student_linear(20, 3, 2, 0.1, 1).unwrap(),
        teacher_student_linear(20, 3, 2, 0.1, 2).unwrap()
    );
    // a tanh teacher is not linear: the linear fit leaves a residual; outputs are bounded by Σ|W_L| since |tanh| ≤ 1
    let mlp = teacher_student_mlp(500, &[4, 8, 1], 0.0, 3).unwrap();
    assert!(lstsq_rms(&mlp.x, &mlp.y.column(0).to_vec()) > 1e-3);
    assert!(matches!(
        teacher_student_mlp(5, &[4], 0.0, 0),
        Err(ObjectiveError::Invalid { .. })
    ));
    assert!(matches!(
        teacher_student_linear(5, 2, 1, -1.0, 0),
        Err(ObjectiveError::Invalid { .. })
    ));

    let c = teacher_student_classification(600, 4, 3, 5).unwrap();
    assert_eq!(c.n(), 600);
    assert!(
        c.counts().iter().all(|&k| k > 0),
        "all classes present: {:?}",
        c.counts()
    );
}

#[test]
fn sparse_support_matches_the_notebook_construction() {
    for target in [
        SupportTarget::Linear,
        SupportTarget::Sin,
        SupportTarget::Staircase,
    ] {
        let p = SupportParams {
            n: 300,
            d: 6,
            r: 2,
            target,
            noise: 0.01,
            seed: 9,
        };
        let ds = sparse_support(&p).unwrap();
        assert_eq!((ds.x.dim(), ds.y.dim()), ((600, 6), (600, 1)));
        let (top, bot) = (
            ds.x.slice(ndarray::s![..300, ..]),
            ds.x.slice(ndarray::s![300.., ..]),
        );
        assert_eq!(top, bot, "each sample is duplicated");
        // irrelevant coordinates are centered empirically (to rounding: 300 terms of size O(3))
        let means = top.slice(ndarray::s![.., 2..]).mean_axis(Axis(0)).unwrap();
        assert!(means.iter().all(|m| m.abs() < 1e-14), "{means}");
        for i in 0..300 {
            let (x0, x1) = (top[(i, 0)], top[(i, 1)]);
            let f = match target {
                SupportTarget::Linear => x0 + x1,
                SupportTarget::Sin => (x0 + x1).sin(),
                SupportTarget::Staircase => x0 + x1 * x1,
            };
            let (y1, y2) = (ds.y[(i, 0)], ds.y[(300 + i, 0)]);
            assert!(
                ((y1 + y2) / 2.0 - f).abs() < 1e-14 * f.abs().max(1.0),
                "mean of the pair is f*(x)"
            );
            assert!((y1 - y2).abs() < 0.2, "opposite noise of scale 0.01");
        }
    }
    let paper = SupportParams::paper(SupportTarget::Staircase, 0);
    assert_eq!((paper.n, paper.d, paper.r, paper.noise), (5000, 15, 5, 0.0));
    assert!(sparse_support(&SupportParams {
        r: 7,
        d: 6,
        ..SupportParams::default()
    })
    .is_err());
}

#[test]
fn scalar_net_data_has_phi_one_and_unit_sigma() {
    let (x, y) = scalar_net_data(100, 0.3, 4).unwrap();
    let net = ScalarNet::from_data(3, x, y).unwrap();
    assert!((net.sigma2() - 1.0).abs() < 1e-14);
    assert!((net.phi() - 1.0).abs() < 1e-14);
    // the data-form loss is (σ²/2)(aᵀb − Φ)² + const: its minimizers have aᵀb = 1 and gradient 0
    let g = net.grad(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], Batch::Full).unwrap();
    assert!(g.iter().all(|v| v.abs() < 1e-14));
    assert_eq!(label_oscillation().0.len(), 2);
    assert_eq!(input_oscillation().0, vec![1.0 / 3.0, 3.0]);
}

// ---- MNIST IDX ----------------------------------------------------------------------------------------------

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

#[test]
fn mnist_idx_loader_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..12).map(|k| (k * 20) as u8).collect();
    let img = tmp(&dir, "img", &idx(IMAGES_MAGIC, &[2, 2, 3], &pixels));
    let lab = tmp(&dir, "lab", &idx(LABELS_MAGIC, &[2], &[7, 3]));
    let ds = load_mnist(&img, &lab).unwrap();
    assert_eq!(ds.x.dim(), (2, 6));
    assert_eq!(ds.x[(1, 2)], 160.0 / 255.0);
    assert_eq!(ds.labels, vec![7, 3]);

    let e = load_images(tmp(&dir, "m", &idx(0x0000_0804, &[2, 2, 3], &pixels))).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                expected: IMAGES_MAGIC,
                got: 0x804,
                ..
            }
        ),
        "{e}"
    );
    let e = load_images(tmp(&dir, "h", &IMAGES_MAGIC.to_be_bytes()[..])).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    let e = load_images(tmp(&dir, "t", &idx(IMAGES_MAGIC, &[2, 2, 3], &pixels[..11]))).unwrap_err();
    assert_eq!(
        e,
        DataError::Truncated {
            what: dir.path().join("t").display().to_string(),
            expected: 28,
            got: 27
        }
    );
    let mut long = pixels.clone();
    long.push(0);
    assert!(matches!(
        load_images(tmp(&dir, "l", &idx(IMAGES_MAGIC, &[2, 2, 3], &long))),
        Err(DataError::Shape { .. })
    ));
    assert!(matches!(
        load_labels(tmp(&dir, "b", &idx(LABELS_MAGIC, &[2], &[7, 10]))),
        Err(DataError::Value { index: 1, .. })
    ));
    let lab3 = tmp(&dir, "lab3", &idx(LABELS_MAGIC, &[3], &[1, 2, 3]));
    assert!(matches!(load_mnist(&img, &lab3), Err(DataError::Shape { .. })));
    assert!(matches!(
        load_images(dir.path().join("nope")),
        Err(DataError::Io { .. })
    ));
    // converts into the objective layer's error
    let o: ObjectiveError = load_images(dir.path().join("nope")).unwrap_err().into();
    assert!(matches!(o, ObjectiveError::Data(_)));
}

// ---- CIFAR-10 -----------------------------------------------------------------------------------------------

#[test]
fn cifar10_loader_and_its_errors() {
    let mut bytes = Vec::new();
    for (label, fill) in [(3u8, 255u8), (9, 51)] {
        bytes.push(label);
        bytes.extend(std::iter::repeat_n(fill, 3072));
    }
    let (x, labels) = parse_cifar10(&bytes, "batch").unwrap();
    assert_eq!((x.dim(), labels), ((2, 3072), vec![3, 9]));
    assert_eq!((x[(0, 0)], x[(1, 3071)]), (1.0, 0.2));
    let dir = tempfile::tempdir().unwrap();
    let p = tmp(&dir, "b.bin", &bytes);
    let ds = data::cifar::load_cifar10(&[&p, &p]).unwrap();
    assert_eq!(ds.n(), 4);
    assert_eq!(data::cifar::read_cifar10(&p).unwrap(), (x.clone(), vec![3, 9]));
    assert_eq!(
        parse_cifar10(&bytes[..100], "b"),
        Err(DataError::Truncated {
            what: "b".into(),
            expected: CIFAR_RECORD,
            got: 100
        })
    );
    assert_eq!(
        parse_cifar10(&bytes[..5000], "b"),
        Err(DataError::Ragged {
            what: "b".into(),
            len: 5000,
            record: CIFAR_RECORD
        })
    );
    let mut bad = bytes.clone();
    bad[CIFAR_RECORD] = 10;
    assert!(matches!(
        parse_cifar10(&bad, "b"),
        Err(DataError::Value { index: 1, .. })
    ));
}

// ---- .npy ---------------------------------------------------------------------------------------------------

fn npy_raw(version: u8, header: &str, body: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY".to_vec();
    v.extend([version, 0]);
    if version == 1 {
        v.extend((header.len() as u16).to_le_bytes());
    } else {
        v.extend((header.len() as u32).to_le_bytes());
    }
    v.extend(header.as_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn npy_roundtrip_and_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    for shape in [vec![3, 4], vec![5], vec![]] {
        let n: usize = shape.iter().product();
        let data: Vec<f64> = (0..n).map(|k| k as f64 * 0.1 - 0.7).collect();
        let p = dir.path().join("a.npy");
        write_npy(&p, &shape, &data).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 8 * n) % 64, 0, "preamble padded to 64 bytes");
        let a = read_npy(&p).unwrap();
        assert_eq!((a.shape, a.dtype, a.data), (shape, NpyDtype::F64, data));
    }
    let m = read_npy({
        let p = dir.path().join("m.npy");
        data::npy::write_npy_array2(&p, &Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f64)).unwrap();
        p
    })
    .unwrap()
    .into_array2()
    .unwrap();
    assert_eq!(m[(1, 2)], 5.0);

    let f4: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let a = parse_npy(
        &npy_raw(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n",
            &f4,
        ),
        "f4",
    )
    .unwrap();
    assert_eq!((a.dtype, a.data), (NpyDtype::F32, vec![1.5, -2.0]));
    let i8s: Vec<u8> = [3i64, -4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let a = parse_npy(
        &npy_raw(
            2,
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }\n",
            &i8s,
        ),
        "i8",
    )
    .unwrap();
    assert_eq!(
        (a.dtype, a.shape.clone(), a.data.clone()),
        (NpyDtype::I64, vec![1, 2], vec![3.0, -4.0])
    );
    assert!(matches!(a.into_labels(), Err(DataError::Value { index: 1, .. })));
    let i4: Vec<u8> = [7i32, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let a = parse_npy(
        &npy_raw(
            1,
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n",
            &i4,
        ),
        "i4",
    )
    .unwrap();
    assert_eq!(a.into_labels().unwrap(), vec![7, 0]);
    let a = parse_npy(
        &npy_raw(
            1,
            "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n",
            &[1, 2, 255],
        ),
        "u1",
    )
    .unwrap();
    assert_eq!((a.dtype, a.data), (NpyDtype::U8, vec![1.0, 2.0, 255.0]));
}

#[test]
fn npy_errors_are_typed() {
    let good = npy_bytes(&[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let e = parse_npy(&good[..good.len() - 3], "x").unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    let mut long = good.clone();
    long.extend([0; 8]);
    assert!(matches!(parse_npy(&long, "x"), Err(DataError::Shape { .. })));
    let mut magic = good.clone();
    magic[1] = b'X';
    assert!(matches!(parse_npy(&magic, "x"), Err(DataError::Header { .. })));
    assert!(matches!(
        parse_npy(&good[..5], "x"),
        Err(DataError::Truncated { .. })
    ));
    let mut ver = good.clone();
    ver[6] = 9;
    assert!(matches!(parse_npy(&ver, "x"), Err(DataError::Header { .. })));
    let be = npy_raw(
        1,
        "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }\n",
        &[0; 8],
    );
    assert_eq!(
        parse_npy(&be, "x"),
        Err(DataError::Dtype {
            what: "x".into(),
            dtype: ">f8".into()
        })
    );
    let c16 = npy_raw(
        1,
        "{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }\n",
        &[0; 16],
    );
    assert!(matches!(parse_npy(&c16, "x"), Err(DataError::Dtype { .. })));
    let fo = npy_raw(
        1,
        "{'descr': '<f8', 'fortran_order': True, 'shape': (1,), }\n",
        &[0; 8],
    );
    assert!(
        matches!(parse_npy(&fo, "x"), Err(DataError::Header { ref reason, .. }) if reason.contains("fortran"))
    );
    let noshape = npy_raw(1, "{'descr': '<f8', 'fortran_order': False, }\n", &[0; 8]);
    assert!(
        matches!(parse_npy(&noshape, "x"), Err(DataError::Header { ref reason, .. }) if reason.contains("shape"))
    );
    let badshape = npy_raw(
        1,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (a,), }\n",
        &[0; 8],
    );
    assert!(matches!(parse_npy(&badshape, "x"), Err(DataError::Header { .. })));
    let mut hlen = good.clone();
    hlen[8] = 0xff;
    hlen[9] = 0xff;
    assert!(matches!(parse_npy(&hlen, "x"), Err(DataError::Truncated { .. })));
    assert!(matches!(
        npy_bytes(&[2, 3], &[0.0; 5]),
        Err(DataError::Shape { .. })
    ));
    let f = parse_npy(
        &npy_raw(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n",
            &[0; 8],
        ),
        "x",
    )
    .unwrap();
    assert!(matches!(f.into_labels(), Err(DataError::Dtype { .. })));
}

// ---- safetensors --------------------------------------------------------------------------------------------

#[test]
fn safetensors_weights_flatten_in_pytorch_layout() {
    let ds = teacher_student_linear(5, 3, 2, 0.0, 1).unwrap();
    let model = ds.deep_linear(&[4], true).unwrap();
    let theta: Vec<f64> = (0..model.dim()).map(|k| k as f64 / 7.0).collect();
    // cut θ into the named tensors, in reverse order so the file order differs from θ's
    let mut tensors = Vec::new();
    let mut off = 0;
    for (name, shape) in model.param_names().into_iter().zip(model.layer_shapes()) {
        let len: usize = shape.iter().product();
        tensors.push((name, shape, theta[off..off + len].to_vec()));
        off += len;
    }
    tensors.reverse();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    save_safetensors(&p, &tensors).unwrap();
    let loaded = load_safetensors(&p).unwrap();
    assert_eq!(loaded.len(), 4);
    let flat = flatten_params(&loaded, &model.param_names(), &model.layer_shapes()).unwrap();
    assert_eq!(flat, theta);

    let names = model.param_names();
    let mut missing = names.clone();
    missing[1] = "0.bais".into();
    assert_eq!(
        flatten_params(&loaded, &missing, &model.layer_shapes()),
        Err(DataError::MissingTensor {
            name: "0.bais".into()
        })
    );
    let mut shapes = model.layer_shapes();
    shapes[0] = vec![3, 4];
    assert!(
        matches!(flatten_params(&loaded, &names, &shapes), Err(DataError::Shape { ref what, .. }) if what.contains("0.weight"))
    );

    // F32 tensors load (exactly, for values representable in f32); other dtypes are rejected by name
    use safetensors::tensor::{Dtype, TensorView};
    let f32s: Vec<u8> = [0.5f32, -1.25].iter().flat_map(|v| v.to_le_bytes()).collect();
    let i32s: Vec<u8> = [1i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let f = safetensors::serialize(
        [("w", TensorView::new(Dtype::F32, vec![2], &f32s).unwrap())],
        &None,
    )
    .unwrap();
    let t = data::weights::parse_safetensors(&f, "f32").unwrap();
    assert_eq!(t, vec![("w".to_string(), vec![2], vec![0.5, -1.25])]);
    let f = safetensors::serialize(
        [("idx", TensorView::new(Dtype::I32, vec![2], &i32s).unwrap())],
        &None,
    )
    .unwrap();
    assert!(
        matches!(data::weights::parse_safetensors(&f, "i"), Err(DataError::Dtype { ref what, .. }) if what.contains("idx"))
    );
    assert!(matches!(
        data::weights::parse_safetensors(&[1, 2, 3], "junk"),
        Err(DataError::Truncated { .. })
    ));
    let bad = tmp(&dir, "trunc.safetensors", &std::fs::read(&p).unwrap()[..40]);
    assert!(load_safetensors(bad).is_err());
}

// ---- sizes, limits and allocation -------------------------------------------------------------------------

/// The system allocator, recording the largest single request made on each thread, so a test can check
/// that a loader rejected a file before allocating for its declared size.
struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; `note` only touches a const-initialized
// thread-local `Cell` (no allocation, no re-entry).
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// The error of `f` and the largest single allocation made while computing it, which must stay under
/// 64 KiB (every input here is a few hundred bytes; the declared sizes are up to 2⁶⁴).
fn rejected_small<T: std::fmt::Debug>(f: impl FnOnce() -> data::DataResult<T>) -> DataError {
    PEAK.with(|p| p.set(0));
    let e = f().expect_err("a malformed file must be rejected");
    let peak = PEAK.with(Cell::get);
    assert!(peak < 64 << 10, "{e}: allocated {peak} bytes at once");
    e
}

fn npy_shape(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
    npy_raw(
        1,
        &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n"),
        body,
    )
}

#[test]
fn npy_declared_sizes_are_checked_before_allocation() {
    // 2⁶¹ values of 8 bytes: the byte count 2⁶⁴ wrapped to 0, so an empty body used to be accepted
    let e = rejected_small(|| parse_npy(&npy_shape("<f8", "(2305843009213693952,)", &[]), "x.npy"));
    assert_eq!(
        e,
        DataError::Overflow {
            what: "x.npy".into(),
            shape: "[2305843009213693952]".into()
        }
    );
    // the value count itself overflows
    let e = rejected_small(|| parse_npy(&npy_shape("|u1", "(4294967296, 4294967296)", &[]), "x.npy"));
    assert!(matches!(e, DataError::Overflow { .. }), "{e}");
    // representable but beyond the limit, with no data: refused by the limit, nothing allocated
    let e = rejected_small(|| parse_npy(&npy_shape("<f4", "(1048576, 1048576)", &[0; 4]), "x.npy"));
    assert_eq!(
        e,
        DataError::TooLarge {
            what: "x.npy with shape [1048576, 1048576]".into(),
            size: 1 << 40,
            limit: MAX_VALUES as u64,
            unit: "values"
        }
    );
    // within the limit but missing its data
    let e = rejected_small(|| parse_npy(&npy_shape("<f8", "(1000, 1000)", &[0; 16]), "x.npy"));
    assert!(
        matches!(e, DataError::Truncated { expected, got, .. } if expected - got == 8_000_000 - 16),
        "{e}"
    );
    // a zero-length axis anywhere is refused, naming the file and the shape
    for (shape, text) in [("(5, 0)", "[5, 0]"), ("(0,)", "[0]"), ("(0, 3)", "[0, 3]")] {
        let e = rejected_small(|| parse_npy(&npy_shape("<f8", shape, &[]), "x.npy"));
        assert_eq!(
            e,
            DataError::EmptyAxis {
                what: "x.npy".into(),
                shape: text.into()
            }
        );
        assert!(e.to_string().contains("zero-length axis"), "{e}");
    }
    // negative and non-numeric shape entries, unsupported dtypes
    for shape in ["(-1,)", "(1e3,)", "(18446744073709551616,)"] {
        let e = rejected_small(|| parse_npy(&npy_shape("<f8", shape, &[0; 8]), "x.npy"));
        assert!(matches!(e, DataError::Header { .. }), "{shape}: {e}");
    }
    for descr in ["<f2", ">i4", "<U8", "O"] {
        let e = rejected_small(|| parse_npy(&npy_shape(descr, "(1,)", &[0; 8]), "x.npy"));
        assert!(matches!(e, DataError::Dtype { .. }), "{descr}: {e}");
    }
    // a version-2 header length far beyond the file
    let mut v2 = npy_raw(
        2,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n",
        &[0; 8],
    );
    v2[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = rejected_small(|| parse_npy(&v2, "x.npy"));
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    // the writer's shape product is checked too
    assert!(matches!(
        npy_bytes(&[usize::MAX, 2], &[]),
        Err(DataError::Overflow { .. })
    ));
}

#[test]
fn idx_and_cifar_declared_sizes_are_checked_before_allocation() {
    let what = "idx";
    let big = rejected_small(|| parse_images(&idx(IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX], &[]), what));
    assert!(matches!(big, DataError::Overflow { .. }), "{big}");
    let e = rejected_small(|| parse_images(&idx(IMAGES_MAGIC, &[60000, 28, 28], &[0; 100]), what));
    assert!(
        matches!(e, DataError::Truncated { expected, .. } if expected == 16 + 60000 * 784),
        "{e}"
    );
    let e = rejected_small(|| parse_images(&idx(IMAGES_MAGIC, &[1 << 20, 1 << 10, 1 << 10], &[]), what));
    assert!(matches!(e, DataError::TooLarge { unit: "values", .. }), "{e}");
    for dims in [[0, 28, 28], [2, 0, 3], [2, 3, 0]] {
        let e = rejected_small(|| parse_images(&idx(IMAGES_MAGIC, &dims, &[]), what));
        assert_eq!(
            e,
            DataError::EmptyAxis {
                what: what.into(),
                shape: format!("{dims:?}")
            }
        );
    }
    let e = rejected_small(|| parse_labels(&idx(LABELS_MAGIC, &[0], &[]), what));
    assert!(matches!(e, DataError::EmptyAxis { .. }), "{e}");
    let e = rejected_small(|| parse_labels(&idx(LABELS_MAGIC, &[1 << 20], &[1, 2]), what));
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    let e = rejected_small(|| parse_labels(&idx(LABELS_MAGIC, &[u32::MAX], &[1, 2]), what));
    assert!(matches!(e, DataError::TooLarge { .. }), "{e}");
    // a header cut inside the dimensions
    let e = rejected_small(|| parse_images(&idx(IMAGES_MAGIC, &[2, 2], &[]), what));
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");

    // CIFAR-10: no records, a partial record
    let e = rejected_small(|| parse_cifar10(&[], "batch"));
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    let e = rejected_small(|| parse_cifar10(&[0; CIFAR_RECORD + 1], "batch"));
    assert!(matches!(e, DataError::Ragged { .. }), "{e}");
}

#[test]
fn files_beyond_the_size_limit_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.npy");
    // a sparse file: its length is past the limit, its blocks are never written or read
    std::fs::File::create(&p)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();
    let e = rejected_small(|| read_npy(&p));
    assert_eq!(
        e,
        DataError::TooLarge {
            what: p.display().to_string(),
            size: MAX_FILE_BYTES + 1,
            limit: MAX_FILE_BYTES,
            unit: "bytes"
        }
    );
    assert!(matches!(load_images(&p), Err(DataError::TooLarge { .. })));
    assert!(matches!(load_safetensors(&p), Err(DataError::TooLarge { .. })));
    assert!(matches!(
        data::cifar::load_cifar10(&[&p]),
        Err(DataError::TooLarge { .. })
    ));
    assert!(matches!(
        data::cifar::read_cifar10(&p),
        Err(DataError::TooLarge { .. })
    ));
}

/// A safetensors buffer with a raw JSON header and data.
fn safetensors_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend(header.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn safetensors_headers_are_checked_before_allocation() {
    use data::weights::parse_safetensors;
    let one = |dtype: &str, shape: &str, offsets: &str, data: &[u8]| {
        safetensors_raw(
            &format!(r#"{{"w":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#),
            data,
        )
    };
    assert_eq!(
        parse_safetensors(&one("F64", "[1, 2]", "[0, 16]", &[0; 16]), "w.st").unwrap(),
        vec![("w".to_string(), vec![1, 2], vec![0.0, 0.0])]
    );
    let parse = |b: Vec<u8>| rejected_small(|| parse_safetensors(&b, "w.st"));
    // a data end near 2⁶⁴ (the crate adds it to the header length unchecked)
    let e = parse(one(
        "F32",
        "[4611686018427387903]",
        "[0, 18446744073709551612]",
        &[],
    ));
    assert!(
        matches!(e, DataError::TooLarge { ref what, .. } if what.contains("tensor w")),
        "{e}"
    );
    let e = parse(one("F64", "[4294967296, 4294967296]", "[0, 0]", &[]));
    assert!(
        matches!(e, DataError::Overflow { ref what, .. } if what == "w.st: tensor w"),
        "{e}"
    );
    // a zero-length axis, named by tensor and shape
    assert_eq!(
        parse(one("F64", "[0, 3]", "[0, 0]", &[])),
        DataError::EmptyAxis {
            what: "w.st: tensor w".into(),
            shape: "[0, 3]".into()
        }
    );
    // offsets beyond the data (a truncated file), or not matching the shape
    let e = parse(one("F64", "[2]", "[0, 16]", &[0; 8]));
    assert!(
        matches!(e, DataError::Truncated { ref what, .. } if what.contains("tensor w")),
        "{e}"
    );
    let e = parse(one("F64", "[2]", "[0, 8]", &[0; 8]));
    assert!(
        matches!(e, DataError::Shape { ref what, .. } if what == "w.st: tensor w"),
        "{e}"
    );
    let e = parse(one("F64", "[1]", "[16, 8]", &[0; 16]));
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    // dtypes imreg does not read, known to safetensors or not
    for dtype in ["I64", "BF16", "F65"] {
        let e = parse(one(dtype, "[1]", "[0, 8]", &[0; 8]));
        assert_eq!(
            e,
            DataError::Dtype {
                what: "w.st: tensor w".into(),
                dtype: dtype.into()
            }
        );
    }
    // malformed headers
    for header in [
        r#"{"w":{"dtype":"F64","shape":[-1],"data_offsets":[0,8]}}"#,
        r#"{"w":{"dtype":"F64","shape":[1],"data_offsets":[0]}}"#,
        r#"{"w":{"dtype":"F64","shape":[1]}}"#,
        r#"{"w":{"dtype":8,"shape":[1],"data_offsets":[0,8]}}"#,
        r#"[1, 2]"#,
        "{",
    ] {
        let e = parse(safetensors_raw(header, &[0; 8]));
        assert!(matches!(e, DataError::Header { .. }), "{header}: {e}");
    }
    // a header length beyond the file, or beyond the format's limit
    let mut b = one("F64", "[1]", "[0, 8]", &[0; 8]);
    b[..8].copy_from_slice(&1000u64.to_le_bytes());
    assert!(matches!(parse(b.clone()), DataError::Truncated { .. }));
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse(b), DataError::TooLarge { unit: "bytes", .. }));
    assert!(matches!(parse(vec![1, 2, 3]), DataError::Truncated { .. }));
}

#[test]
fn weights_that_do_not_fit_the_architecture_name_the_tensor_and_both_shapes() {
    let ds = teacher_student_linear(6, 3, 2, 0.0, 1).unwrap();
    let model = ds.deep_linear(&[4], true).unwrap();
    let (names, shapes) = (model.param_names(), model.layer_shapes());
    // a state dict for hidden width 5 instead of 4
    let wrong: Vec<_> = names
        .iter()
        .zip([vec![5, 3], vec![5], vec![2, 5], vec![2]])
        .map(|(n, s)| (n.clone(), s.clone(), vec![0.0; s.iter().product()]))
        .collect();
    assert_eq!(
        flatten_params(&wrong, &names, &shapes),
        Err(DataError::Shape {
            what: format!("tensor {}", names[0]),
            expected: format!("{:?}", shapes[0]),
            got: "[5, 3]".into()
        })
    );
    let e = flatten_params(&wrong, &names, &shapes).unwrap_err().to_string();
    assert!(
        e.contains("0.weight") && e.contains("[4, 3]") && e.contains("[5, 3]"),
        "{e}"
    );
}
