//! Measures what `imreg analyze --quantities lambda_max` costs against the library call it wraps
//! (`imreg_spectra::sharpness` on an already built objective, the same Lanczos options) on the cnn-relu
//! PyTorch fixture (p = 10 724). Prints the median of `REPEATS` wall times of each and their ratio; the
//! analyze side includes reading the files, building the network and one gradient.
//!
//! Run: `cargo run --release -p imreg-cli --example lambda_max_cost`
use imreg_objective::models::{
    preset, read_state_dict, Network, NetworkObjective, SpecNetwork, StandardLoss,
};
use imreg_objective::Batch;
use imreg_spectra::{sharpness, LanczosOptions};
use std::time::Instant;

const REPEATS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn tensor(st: &safetensors::SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = st.tensor(name).expect("fixture tensor");
    let v = t
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), v)
}

/// Labels as an int64 `.npy` vector: the library's `<f8` header with the dtype swapped (same length).
fn int64_npy(labels: &[usize]) -> Vec<u8> {
    // The header starts with the non-UTF-8 magic `\x93NUMPY`: swap the dtype in the bytes.
    let mut bytes = imreg_objective::data::npy::npy_header(&[labels.len()]).unwrap();
    let at = bytes.windows(5).position(|w| w == b"'<f8'").unwrap();
    bytes[at..at + 5].copy_from_slice(b"'<i8'");
    labels
        .iter()
        .for_each(|&l| bytes.extend((l as i64).to_le_bytes()));
    bytes
}

fn main() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../imreg-objective/tests/fixtures/torch");
    let bytes = std::fs::read(dir.join("cnn-relu.data.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (xs, x) = tensor(&st, "x");
    let (_, labels) = tensor(&st, "labels");
    let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
    let tmp = tempfile::tempdir().unwrap();
    let (xp, yp) = (tmp.path().join("x.npy"), tmp.path().join("y.npy"));
    imreg_objective::data::npy::write_npy(&xp, &xs, &x).unwrap();
    std::fs::write(&yp, int64_npy(&labels)).unwrap();
    let params = dir.join("cnn-relu.safetensors");
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
        params.to_str().unwrap(),
        "--data",
        xp.to_str().unwrap(),
        "--targets",
        yp.to_str().unwrap(),
        "--quantities",
        "lambda_max",
    ];

    let mut net = SpecNetwork::new(preset("cnn-relu", &[1, 12, 12], 4).unwrap()).unwrap();
    let theta = net
        .load_state_dict(&read_state_dict(&std::fs::read(&params).unwrap()).unwrap())
        .unwrap();
    let x = ndarray::Array2::from_shape_vec((xs[0], x.len() / xs[0]), x).unwrap();
    let obj = NetworkObjective::classification(net, StandardLoss::CrossEntropy, x, labels).unwrap();
    assert_eq!(obj.network().n_params(), theta.len());
    // analyze's options: 300 steps at most, tol 1e-8, start from seed 0 ^ STREAM_SPECTRUM (= 4).
    let opts = LanczosOptions {
        max_iter: 300,
        tol: 1e-8,
        seed: 4,
        ritz_vectors: false,
        ..Default::default()
    };

    let (mut t_cli, mut t_lib) = (Vec::new(), Vec::new());
    let (mut v_cli, mut v_lib) = (0.0, 0.0);
    for _ in 0..REPEATS {
        let t = Instant::now();
        v_cli = imreg_cli::analyze_from_args(args).unwrap().hessian_top[0];
        t_cli.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        v_lib = sharpness(&obj, &theta, Batch::Full, &opts).unwrap().value;
        t_lib.push(t.elapsed().as_secs_f64());
    }
    let (c, l) = (median(t_cli), median(t_lib));
    println!("λ_max analyze {v_cli:.15e}  library {v_lib:.15e}");
    println!("median of {REPEATS}: analyze --quantities lambda_max {c:.4} s, library sharpness() {l:.4} s, ratio {:.2}", c / l);
}
