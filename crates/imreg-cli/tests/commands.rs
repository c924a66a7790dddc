//! End to end: `verify --json`, `reproduce`, `analyze` on PyTorch-layout safetensors.
mod common;
use common::*;
use imreg_check::CheckContext;
use imreg_cli::analyze::{analyze, AnalyzeRequest};
use imreg_cli::config::{DataConfig, ModelConfig};
use imreg_cli::registry;
use imreg_objective::data::npy::write_npy;
use imreg_objective::models::DeepLinear;
use imreg_objective::{Batch, Objective};
use ndarray::Array2;
use safetensors::tensor::{Dtype, TensorView};

/// The cheapest registered check, so this test does not depend on the speed of the theory crates.
fn some_check_id() -> Option<String> {
    registry::all_checks().first().map(|c| c.id.to_string())
}

#[test]
fn verify_json_parses_with_the_documented_fields() {
    let Some(id) = some_check_id() else { return };
    let checks = registry::select(registry::all_checks(), std::slice::from_ref(&id)).unwrap();
    let records = registry::run_all(
        &checks,
        &CheckContext {
            out_dir: None,
            quick: true,
        },
        &|_| {},
    );
    let text = imreg_cli::verify_json(&records).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    for key in ["id", "claim", "expected", "measured", "passed"] {
        assert!(arr[0].get(key).is_some(), "{key} missing");
    }
    assert_eq!(arr[0]["id"], id.as_str());
    let code = cli(&["verify", "--json", "--only", &id]);
    assert_eq!(code, if records[0].passed { 0 } else { 1 });
    assert_eq!(cli(&["verify", "--only", "no-such-check"]), 2);
}

#[test]
fn reproduce_writes_markdown_and_json_reports() {
    let Some(id) = some_check_id() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rep");
    let code = cli(&[
        "reproduce",
        "--quick",
        "--out",
        out.to_str().unwrap(),
        "--only",
        &id,
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["total"], 1);
    assert_eq!(json["checks"][0]["id"], id.as_str());
    assert_eq!(code, if json["failed"] == 0 { 0 } else { 1 });
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# imreg reproduce report") && md.contains(&format!("`{id}`")));
    // Every figure the report links exists.
    for f in json["checks"][0]["figures"].as_array().into_iter().flatten() {
        assert!(std::path::Path::new(f.as_str().unwrap()).exists(), "{f}");
    }
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A state dict in PyTorch's `nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))` layout, saved as
/// safetensors, analyzed through the CLI, agrees with direct library calls.
#[test]
fn analyze_safetensors_matches_library() {
    let dir = tempfile::tempdir().unwrap();
    let (n, widths) = (10usize, [3usize, 4, 2]);
    let x: Vec<f64> = (0..n * 3).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
    let y: Vec<f64> = (0..n * 2).map(|i| ((i * 5 % 7) as f64 - 3.0) / 3.0).collect();
    write_npy(dir.path().join("x.npy"), &[n, 3], &x).unwrap();
    write_npy(dir.path().join("y.npy"), &[n, 2], &y).unwrap();
    let w0: Vec<f64> = (0..12).map(|i| (i as f64 - 6.0) / 10.0).collect();
    let b0: Vec<f64> = vec![0.1, -0.2, 0.05, 0.0];
    let w1: Vec<f64> = (0..8).map(|i| (3.0 - i as f64) / 9.0).collect();
    let b1: Vec<f64> = vec![0.3, -0.1];
    // Written in a scrambled key order, as PyTorch's dict order need not match θ's.
    let bufs = [f64_bytes(&b1), f64_bytes(&w0), f64_bytes(&w1), f64_bytes(&b0)];
    let tensors = vec![
        ("1.bias", TensorView::new(Dtype::F64, vec![2], &bufs[0]).unwrap()),
        (
            "0.weight",
            TensorView::new(Dtype::F64, vec![4, 3], &bufs[1]).unwrap(),
        ),
        (
            "1.weight",
            TensorView::new(Dtype::F64, vec![2, 4], &bufs[2]).unwrap(),
        ),
        ("0.bias", TensorView::new(Dtype::F64, vec![4], &bufs[3]).unwrap()),
    ];
    let st = dir.path().join("w.safetensors");
    std::fs::write(&st, safetensors::serialize(tensors, &None).unwrap()).unwrap();
    let req = AnalyzeRequest {
        quantities: None,
        solver: Default::default(),
        out: None,
        exact_trace_max_p: imreg_cli::spectrum::DENSE_MAX_P,
        model: ModelConfig::DeepLinear {
            hidden: vec![4],
            bias: true,
        },
        params: st.clone(),
        data: Some(DataConfig::Npy {
            x: dir.path().join("x.npy"),
            y: dir.path().join("y.npy"),
            classes: None,
        }),
        split: None,
        top_k: 2,
        bottom_k: 2,
        batch_size: Some(5),
        estimation: Default::default(),
        seed: 0,
        data_seed: 0,
    };
    let a = analyze(&req).unwrap();
    // The library, directly: θ = [0.weight, 0.bias, 1.weight, 1.bias].
    let lib = DeepLinear::new(
        widths.to_vec(),
        Array2::from_shape_vec((n, 3), x).unwrap(),
        Array2::from_shape_vec((n, 2), y).unwrap(),
        true,
    )
    .unwrap();
    let theta: Vec<f64> = [w0, b0, w1, b1].concat();
    assert_eq!(a.p, lib.dim());
    assert_eq!(a.loss.to_bits(), lib.loss(&theta, Batch::Full).unwrap().to_bits());
    let g = lib.grad(&theta, Batch::Full).unwrap();
    assert_eq!(a.grad_norm, g.iter().map(|v| v * v).sum::<f64>().sqrt());
    let mut ev: Vec<f64> = lib
        .dense_hessian(&theta, Batch::Full)
        .unwrap()
        .symmetric_eigenvalues()
        .iter()
        .copied()
        .collect();
    ev.sort_by(f64::total_cmp);
    let scale = ev.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    // Both sides diagonalize the same symmetric matrix: agreement to rounding (1e-12 relative to ‖H‖).
    assert!((a.hessian_top[0] - ev[ev.len() - 1]).abs() <= 1e-12 * scale);
    assert!((a.hessian_top[1] - ev[ev.len() - 2]).abs() <= 1e-12 * scale);
    assert!((a.hessian_bottom[0] - ev[0]).abs() <= 1e-12 * scale);
    let trace: f64 = ev.iter().sum();
    assert!((a.hessian_trace.unwrap().value - trace).abs() <= 1e-12 * scale * ev.len() as f64);
    // Tr F = mean ‖g_i‖² and Tr K = Tr F − ‖ḡ‖² (population covariance), from per-example gradients.
    let per: Vec<Vec<f64>> = (0..n)
        .map(|i| lib.grad(&theta, Batch::Indices(&[i])).unwrap())
        .collect();
    let tr_f = per
        .iter()
        .map(|gi| gi.iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        / n as f64;
    let gg: f64 = g.iter().map(|v| v * v).sum();
    assert!((a.trace_f.unwrap().value - tr_f).abs() <= 1e-12 * tr_f.max(1.0));
    assert!((a.trace_k.unwrap().value - (tr_f - gg)).abs() <= 1e-10 * tr_f.max(1.0));
    assert!(
        a.lambda_k1.unwrap().value > 0.0
            && a.lambda_k1.unwrap().value <= a.trace_k.unwrap().value * (1.0 + 1e-12)
    );
    assert!(a.batch_sharpness.is_some());
    // The same through the command line, as JSON.
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let analyze = |extra: &[&str]| {
        let mut args = vec!["analyze", "--model", "deep_linear", "--hidden", "4", "--params"];
        args.extend([
            st.to_str().unwrap(),
            "--data",
            x.to_str().unwrap(),
            "--targets",
            y.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        cli(&args)
    };
    assert_eq!(analyze(&["--bias", "true", "--json"]), 0);
    // Wrong layout (no biases) → bad input, exit 2.
    assert_eq!(analyze(&[]), 2);
}
